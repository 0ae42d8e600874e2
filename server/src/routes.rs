//! notary-server's routes (reference §1.1) with gorilla/mux's regexes: `{gun}` is `[^*]+`
//! (slashes allowed), roles are `root|targets(?:/[^/\s]+)*|snapshot|timestamp`, checksums are
//! 64/96/128 hex digits and versions `[1-9]*[0-9]+`. Checked in registration order; the first
//! match wins.

use std::sync::OnceLock;

use regex::Regex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    V2Root,
    Update {
        gun: String,
    },
    ByChecksum {
        gun: String,
        role: String,
        checksum: String,
    },
    ByVersion {
        gun: String,
        role: String,
        version: String,
    },
    Current {
        gun: String,
        role: String,
    },
    GetKey {
        gun: String,
        role: String,
    },
    RotateKey {
        gun: String,
        role: String,
    },
    Delete {
        gun: String,
    },
    GunChangefeed {
        gun: String,
    },
    Changefeed,
    Health,
    Metrics,
    /// trustbridge's built-in token issuer.
    Token,
    /// The Cosign bridge public key.
    CosignPub,
    /// The Notation chain's root certificate: the trust anchor for `notation cert add`.
    NotationCa,
    /// The Cosign mirror state of a GUN.
    BridgeStatus,
    /// `POST /_trustbridge/v1/import/<gun>`: a repository's history copied from another
    /// notary server (the client's `trustbridge import`).
    Import {
        gun: String,
    },
    /// The migration control room: the status page and its JSON (see [`crate::migration`]).
    Control(Control),
    /// `POST` (switch DCT publishing off) or `DELETE` (back on)
    /// `/_trustbridge/v1/read-only/<gun>`.
    ReadOnly {
        gun: String,
        on: bool,
    },
    /// notary's catch-all: 404 METADATA_NOT_FOUND for GET/POST/PUT/HEAD/DELETE.
    NotFound,
    MethodNotAllowed,
}

/// One (type, name, action) a route needs from a bearer token (reference §7.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub typ: &'static str,
    pub name: String,
    pub action: &'static str,
}

/// How a route's answer may be cached (notary-server's `caching.max_age`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Not a metadata read: no cache headers of notary's.
    None,
    /// The current version of a role (`<role>.json`): may change at any update.
    Current,
    /// A role by checksum or version: never changes.
    Consistent,
}

/// notary-server's `caching.max_age` section: seconds a client or proxy may cache each kind of
/// metadata read (0 = `no-cache, no-store`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachePolicy {
    /// `caching.max_age.current_metadata` (notary's default 300).
    pub current: u32,
    /// `caching.max_age.consistent_metadata` (notary's default 30 days).
    pub consistent: u32,
}

impl CachePolicy {
    /// notary-server refuses more than a year.
    pub const MAX: u32 = 31_536_000;

    /// The max-age for an answer of `cache` kind, `None` for a route notary sets none on.
    pub fn max_age(&self, cache: Cache) -> Option<u32> {
        match cache {
            Cache::None => None,
            Cache::Current => Some(self.current),
            Cache::Consistent => Some(self.consistent),
        }
    }
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            current: 300,
            consistent: 30 * 24 * 3600,
        }
    }
}

/// What of the control room a GET asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// `/_trustbridge/`: overview and a page of GUNs (HTML).
    Page,
    /// `/_trustbridge/gun?gun=`: one GUN (HTML).
    GunPage,
    /// `/_trustbridge/v1/migration`
    Overview,
    /// `/_trustbridge/v1/migration/guns`
    Guns,
    /// `/_trustbridge/v1/migration/gun?gun=`
    Gun,
    /// `/_trustbridge/v1/migration/usage`
    Usage,
    /// `/_trustbridge/v1/migration/expiring`
    Expiring,
}

impl Control {
    fn of_path(path: &str) -> Option<Control> {
        Some(match path {
            "/_trustbridge/" | "/_trustbridge" => Control::Page,
            "/_trustbridge/gun" => Control::GunPage,
            "/_trustbridge/v1/migration" => Control::Overview,
            "/_trustbridge/v1/migration/guns" => Control::Guns,
            "/_trustbridge/v1/migration/gun" => Control::Gun,
            "/_trustbridge/v1/migration/usage" => Control::Usage,
            "/_trustbridge/v1/migration/expiring" => Control::Expiring,
            _ => return None,
        })
    }
}

impl Route {
    /// A DCT client reading trust data (counted as DCT usage; refused during a brownout).
    pub fn dct_read(&self) -> Option<&str> {
        match self {
            Route::ByChecksum { gun, .. }
            | Route::ByVersion { gun, .. }
            | Route::Current { gun, .. } => Some(gun),
            _ => None,
        }
    }

    /// The access the route needs (reference §1.1 and §7.2): one place per route, read by
    /// token auth for its check and for the scope of its challenge.
    pub fn access(&self) -> Vec<Access> {
        let repo = |gun: &str, actions: &[&'static str]| {
            actions
                .iter()
                .map(|a| Access {
                    typ: "repository",
                    name: gun.to_string(),
                    action: a,
                })
                .collect()
        };
        let catalog = || {
            vec![Access {
                typ: "registry",
                name: "catalog".into(),
                action: "*",
            }]
        };
        match self {
            Route::Health
            | Route::Metrics
            | Route::Token
            | Route::CosignPub
            | Route::NotationCa => {
                vec![]
            }
            Route::BridgeStatus | Route::Control(_) => catalog(),
            Route::Update { gun } | Route::GetKey { gun, .. } => repo(gun, &["push", "pull"]),
            Route::ByChecksum { gun, .. }
            | Route::ByVersion { gun, .. }
            | Route::Current { gun, .. }
            | Route::GunChangefeed { gun } => repo(gun, &["pull"]),
            Route::RotateKey { gun, .. }
            | Route::Delete { gun }
            | Route::Import { gun }
            | Route::ReadOnly { gun, .. } => repo(gun, &["*"]),
            Route::V2Root | Route::Changefeed | Route::NotFound | Route::MethodNotAllowed => {
                catalog()
            }
        }
    }

    /// How the route's answer may be cached.
    pub fn cache(&self) -> Cache {
        match self {
            Route::Current { .. } => Cache::Current,
            Route::ByChecksum { .. } | Route::ByVersion { .. } => Cache::Consistent,
            _ => Cache::None,
        }
    }

    /// The label used in metrics (never the GUN).
    pub fn name(&self) -> &'static str {
        match self {
            Route::V2Root => "v2",
            Route::Update { .. } => "update",
            Route::ByChecksum { .. } => "get_checksum",
            Route::ByVersion { .. } => "get_version",
            Route::Current { .. } => "get_current",
            Route::GetKey { .. } => "get_key",
            Route::RotateKey { .. } => "rotate_key",
            Route::Delete { .. } => "delete",
            Route::GunChangefeed { .. } => "changefeed_gun",
            Route::Changefeed => "changefeed",
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::Token => "token",
            Route::CosignPub => "cosign_pub",
            Route::NotationCa => "notation_ca",
            Route::BridgeStatus => "bridge_status",
            Route::Import { .. } => "import",
            Route::Control(_) => "migration",
            Route::ReadOnly { .. } => "read_only",
            Route::NotFound => "not_found",
            Route::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// How many bytes of request body the route reads at most. notary-server set no limit;
    /// its client sends one update of a few KiB to a few MiB (100k targets are ~9 MiB), so
    /// 100 MiB refuses only abuse. An import carries a repository's whole history (every
    /// version, base64 in JSON) and needs `*` access, so it may be larger. No other route
    /// reads its body.
    pub fn body_limit(&self) -> usize {
        match self {
            Route::Update { .. } => 100 << 20,
            Route::Import { .. } => 400 << 20,
            _ => 0,
        }
    }

    /// The GUN the route names, for the prefix filter.
    pub fn gun(&self) -> Option<&str> {
        match self {
            Route::Update { gun }
            | Route::ByChecksum { gun, .. }
            | Route::ByVersion { gun, .. }
            | Route::Current { gun, .. }
            | Route::GetKey { gun, .. }
            | Route::RotateKey { gun, .. }
            | Route::Delete { gun }
            | Route::Import { gun }
            | Route::ReadOnly { gun, .. }
            | Route::GunChangefeed { gun } => Some(gun),
            _ => None,
        }
    }
}

const ROLE: &str = r"root|targets(?:/[^/\s]+)*|snapshot|timestamp";

struct Patterns {
    tuf_dir: Regex,
    checksum: Regex,
    version: Regex,
    current: Regex,
    key: Regex,
    gun_changefeed: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: String| Regex::new(&s).expect("route regex");
        Patterns {
            tuf_dir: re(r"^/v2/(?P<gun>[^*]+)/_trust/tuf/$".into()),
            checksum: re(format!(
                r"^/v2/(?P<gun>[^*]+)/_trust/tuf/(?P<role>{ROLE})\.(?P<sum>[a-fA-F0-9]{{64}}|[a-fA-F0-9]{{96}}|[a-fA-F0-9]{{128}})\.json$"
            )),
            version: re(format!(
                r"^/v2/(?P<gun>[^*]+)/_trust/tuf/(?P<ver>[1-9]*[0-9]+)\.(?P<role>{ROLE})\.json$"
            )),
            current: re(format!(r"^/v2/(?P<gun>[^*]+)/_trust/tuf/(?P<role>{ROLE})\.json$")),
            key: re(r"^/v2/(?P<gun>[^*]+)/_trust/tuf/(?P<role>snapshot|timestamp)\.key$".into()),
            gun_changefeed: re(r"^/v2/(?P<gun>[^*]+)/_trust/changefeed$".into()),
        }
    })
}

/// The path gorilla/mux routes (Go's `path.Clean`, keeping a trailing slash), when it differs
/// from `path`: notary's router answers such a request with a 301 to the clean path before
/// any route sees it, so `a/../b` never names a repository.
pub fn clean_path(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("/".into());
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut clean = format!("/{}", parts.join("/"));
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    (clean != path).then_some(clean)
}

/// Match `method` and `path` (already percent-decoded) against notary's route table.
pub fn route(method: &http::Method, path: &str) -> Route {
    use http::Method as M;
    let p = patterns();
    let get = method == M::GET;
    let post = method == M::POST;
    let cap = |re: &Regex| re.captures(path);
    let s = |c: &regex::Captures<'_>, n: &str| c[n].to_string();
    if get && path == "/v2/" {
        return Route::V2Root;
    }
    if post && let Some(c) = cap(&p.tuf_dir) {
        return Route::Update { gun: s(&c, "gun") };
    }
    if get {
        if let Some(c) = cap(&p.checksum) {
            return Route::ByChecksum {
                gun: s(&c, "gun"),
                role: s(&c, "role"),
                checksum: s(&c, "sum"),
            };
        }
        if let Some(c) = cap(&p.version) {
            return Route::ByVersion {
                gun: s(&c, "gun"),
                role: s(&c, "role"),
                version: s(&c, "ver"),
            };
        }
        if let Some(c) = cap(&p.current) {
            return Route::Current {
                gun: s(&c, "gun"),
                role: s(&c, "role"),
            };
        }
        if let Some(c) = cap(&p.key) {
            return Route::GetKey {
                gun: s(&c, "gun"),
                role: s(&c, "role"),
            };
        }
    }
    if post && let Some(c) = cap(&p.key) {
        return Route::RotateKey {
            gun: s(&c, "gun"),
            role: s(&c, "role"),
        };
    }
    if post
        && let Some(gun) = path.strip_prefix("/_trustbridge/v1/import/")
        && !gun.is_empty()
        && !gun.contains('*')
    {
        return Route::Import { gun: gun.into() };
    }
    if (post || method == M::DELETE)
        && let Some(gun) = path.strip_prefix("/_trustbridge/v1/read-only/")
        && !gun.is_empty()
        && !gun.contains('*')
    {
        return Route::ReadOnly {
            gun: gun.into(),
            on: post,
        };
    }
    if method == M::DELETE
        && let Some(c) = cap(&p.tuf_dir)
    {
        return Route::Delete { gun: s(&c, "gun") };
    }
    if get {
        if let Some(c) = cap(&p.gun_changefeed) {
            return Route::GunChangefeed { gun: s(&c, "gun") };
        }
        match path {
            "/v2/_trust/changefeed" => return Route::Changefeed,
            "/_notary_server/health" => return Route::Health,
            "/metrics" => return Route::Metrics,
            "/_trustbridge/v1/token" => return Route::Token,
            "/_trustbridge/v1/cosign.pub" => return Route::CosignPub,
            "/_trustbridge/v1/notation-ca.crt" => return Route::NotationCa,
            "/_trustbridge/v1/status" => return Route::BridgeStatus,
            _ => {}
        }
        if let Some(c) = Control::of_path(path) {
            return Route::Control(c);
        }
    }
    if [M::GET, M::POST, M::PUT, M::HEAD, M::DELETE].contains(method) {
        Route::NotFound
    } else {
        Route::MethodNotAllowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn paths_are_cleaned_as_gorilla_mux_does() {
        assert_eq!(clean_path("/v2/a/_trust/tuf/root.json"), None);
        assert_eq!(clean_path("/v2/a/_trust/tuf/"), None);
        assert_eq!(
            clean_path("/v2/a/../b/_trust/tuf/root.json").as_deref(),
            Some("/v2/b/_trust/tuf/root.json")
        );
        assert_eq!(
            clean_path("/v2/a/./b//_trust/tuf/").as_deref(),
            Some("/v2/a/b/_trust/tuf/")
        );
        assert_eq!(clean_path("/../../etc").as_deref(), Some("/etc"));
        assert_eq!(clean_path("/v2/..").as_deref(), Some("/"));
        assert_eq!(clean_path("/_trustbridge/"), None);
    }

    #[test]
    fn notary_route_table() {
        let g = |p: &str| route(&Method::GET, p);
        assert_eq!(
            g("/v2/docker.io/library/alpine/_trust/tuf/root.json"),
            Route::Current {
                gun: "docker.io/library/alpine".into(),
                role: "root".into()
            }
        );
        assert_eq!(
            g("/v2/a/b/_trust/tuf/targets/releases.json"),
            Route::Current {
                gun: "a/b".into(),
                role: "targets/releases".into()
            }
        );
        assert_eq!(
            g("/v2/a/_trust/tuf/3.root.json"),
            Route::ByVersion {
                gun: "a".into(),
                role: "root".into(),
                version: "3".into()
            }
        );
        let sum = "a".repeat(64);
        assert_eq!(
            g(&format!("/v2/a/_trust/tuf/snapshot.{sum}.json")),
            Route::ByChecksum {
                gun: "a".into(),
                role: "snapshot".into(),
                checksum: sum.clone()
            }
        );
        assert_eq!(
            g("/v2/a/_trust/tuf/timestamp.key"),
            Route::GetKey {
                gun: "a".into(),
                role: "timestamp".into()
            }
        );
        assert_eq!(
            route(&Method::POST, "/v2/a/_trust/tuf/"),
            Route::Update { gun: "a".into() }
        );
        assert_eq!(
            route(&Method::DELETE, "/v2/a/_trust/tuf/"),
            Route::Delete { gun: "a".into() }
        );
        assert_eq!(g("/v2/_trust/changefeed"), Route::Changefeed);
        assert_eq!(
            g("/v2/a/_trust/changefeed"),
            Route::GunChangefeed { gun: "a".into() }
        );
        assert_eq!(g("/v2/a/_trust/tuf/root.key"), Route::NotFound);
        assert_eq!(g("/v2/a*b/_trust/tuf/root.json"), Route::NotFound);
        assert_eq!(
            route(&Method::HEAD, "/v2/a/_trust/tuf/root.json"),
            Route::NotFound
        );
        assert_eq!(
            route(&Method::PATCH, "/v2/a/_trust/tuf/root.json"),
            Route::MethodNotAllowed
        );
        // The route regex is looser than upload validation: uppercase roles still route.
        assert_eq!(
            g("/v2/a/_trust/tuf/targets/Foo.json"),
            Route::Current {
                gun: "a".into(),
                role: "targets/Foo".into()
            }
        );
    }
}
