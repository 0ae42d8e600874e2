//! What the Cosign side must say, and the jobs that make it say so.
//!
//! The bridge's one rule: **a tag is signed on the Cosign side iff a fresh DCT client, resolving
//! as docker does, resolves it to that digest.** A fresh client trusts `targets` only when its
//! signatures meet the current root's `targets` keys and threshold, and a delegation only when
//! its file meets the keys and threshold its (trusted) parent gives it now; docker then asks for
//! `targets/releases` first and `targets` (with its tree, paths applied) after. So every change
//! that moves that resolution — an update, a delegation's keys or threshold changed, a root
//! rotation that drops a role's keys, a deleted repository, an import — is turned into the sign
//! and revoke jobs between the set before and the set after, by the same two functions.

use std::collections::BTreeMap;

use trustbridge_tuf::metadata::TargetsIndex;
use trustbridge_tuf::{GoTime, Root, Signed};

use crate::storage::{Action, Mirrored, NewJob};

/// What the Cosign side does with tags of an expired role (`trustbridge.bridge.on_expiry`).
/// A DCT client refuses an expired root or `targets` outright and skips an expired
/// delegation; `Keep` (the default) leaves such tags signed, since an expired role is an
/// owner's oversight more often than a revocation, and flags them (status `expired`,
/// `trustbridge_bridge_expired_tags`); `Revoke` follows DCT exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnExpiry {
    #[default]
    Keep,
    Revoke,
}

impl OnExpiry {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "keep" => Some(OnExpiry::Keep),
            "revoke" => Some(OnExpiry::Revoke),
            _ => None,
        }
    }
}

/// A metadata file's bytes as [`mirror_set`] takes them: a stored or uploaded file is
/// already shared and is parsed where it lies (a 100k-target file is 9 MiB: a copy per
/// summary was a fifth of the summarizer's peak); a plain slice is copied once.
pub trait FileBytes {
    fn shared(self) -> std::sync::Arc<[u8]>;
}

impl FileBytes for &[u8] {
    fn shared(self) -> std::sync::Arc<[u8]> {
        std::sync::Arc::from(self)
    }
}

impl FileBytes for &std::sync::Arc<[u8]> {
    fn shared(self) -> std::sync::Arc<[u8]> {
        self.clone()
    }
}

/// The tags a fresh DCT client resolves from a repository's current files (`root`, `targets`
/// and delegations; other roles are ignored), each with its digest, role and real signers.
/// Files that do not parse, roles that do not verify, and everything without a root are left
/// out: a client would not trust them. With [`OnExpiry::Revoke`], expired roles are left out
/// too (an expired root or `targets`: everything).
pub fn mirror_set<'a, B: FileBytes>(
    files: impl IntoIterator<Item = (&'a str, B)>,
    on_expiry: OnExpiry,
) -> BTreeMap<String, Mirrored> {
    mirror_set_and_expiry(files, on_expiry).0
}

/// [`mirror_set`], and when `root` and each targets role among `files` that parses expire,
/// from one parse of the files: the bridge's reconciler wants both.
pub fn mirror_set_and_expiry<'a, B: FileBytes>(
    files: impl IntoIterator<Item = (&'a str, B)>,
    on_expiry: OnExpiry,
) -> (
    BTreeMap<String, Mirrored>,
    BTreeMap<String, time::OffsetDateTime>,
) {
    resolve_files(files, on_expiry, |tags, signers, _| {
        tags.into_iter()
            .filter_map(|r| {
                let digest = r.meta.as_ref()?;
                Some((
                    r.name.to_string(),
                    Mirrored {
                        digest_hex: hex::encode(digest),
                        role: r.role.to_string(),
                        signers: signers[r.role].clone(),
                    },
                ))
            })
            .collect()
    })
}

/// What the control room keeps of a GUN's trust (`trust_tags`, `trust_roles`): the tags of
/// [`mirror_set`] with their role's expiry, and when root, targets and each delegation expire
/// (what the server cannot renew). Built straight from the resolution, sorted by tag, without
/// the owned [`mirror_set`] in between (a 100k-tag repository's set was tens of MiB).
pub fn trust_state<'a, B: FileBytes>(
    files: impl IntoIterator<Item = (&'a str, B)>,
    on_expiry: OnExpiry,
) -> crate::storage::TrustState {
    let (mut state, expiry) = resolve_files(files, on_expiry, |mut tags, signers, expiry| {
        tags.sort_unstable_by(|a, b| a.name.cmp(b.name));
        let mut state = crate::storage::TrustState::with_capacity(tags.len(), Vec::new());
        for r in tags {
            let Some(digest) = r.meta else { continue };
            state.push(
                r.name,
                &hex::encode(digest),
                r.role,
                &signers[r.role],
                expiry.get(r.role).copied(),
            );
        }
        state.shrink_to_fit();
        state
    });
    state.roles = expiry.into_iter().collect();
    state
}

/// A resolved target: its name and role borrowed from the parsed files, its digest if any.
type Tag<'a> = trustbridge_tuf::resolve::ResolvedRef<'a, Option<[u8; 32]>>;

/// The one resolution behind [`mirror_set`] and [`trust_state`]: parse `files` (targets roles
/// as a [`TargetsIndex`], names and digests only), keep the roles a fresh client trusts (and,
/// with [`OnExpiry::Revoke`], has not expired), resolve in docker's order, and hand `then` the
/// tags, each trusted role's real signers (comma-joined) and the roles' expiries; returns what
/// `then` made and the expiries (`root` and every targets role that parses).
fn resolve_files<'a, B: FileBytes, R: Default>(
    files: impl IntoIterator<Item = (&'a str, B)>,
    on_expiry: OnExpiry,
    then: impl FnOnce(
        Vec<Tag<'_>>,
        &BTreeMap<&str, String>,
        &BTreeMap<String, time::OffsetDateTime>,
    ) -> R,
) -> (R, BTreeMap<String, time::OffsetDateTime>) {
    let mut root = None;
    let mut docs: BTreeMap<String, Signed<TargetsIndex>> = BTreeMap::new();
    for (role, data) in files {
        if role == "root" {
            root = Signed::<Root>::from_shared(role, data.shared()).ok();
        } else if (role == "targets" || role.starts_with("targets/"))
            && let Ok(d) = Signed::<TargetsIndex>::from_shared(role, data.shared())
        {
            docs.insert(role.to_string(), d);
        }
    }
    let mut expiry: BTreeMap<String, time::OffsetDateTime> = docs
        .iter()
        .map(|(role, d)| (role.clone(), d.signed.expires.as_offset_datetime()))
        .collect();
    let Some(root) = root else {
        return (R::default(), expiry);
    };
    expiry.insert("root".into(), root.signed.expires.as_offset_datetime());
    if on_expiry == OnExpiry::Revoke {
        let now = GoTime::now();
        if root.signed.expires.is_before(&now) {
            return (R::default(), expiry);
        }
        docs.retain(|_, d| !d.signed.expires.is_before(&now));
    }
    let trusted = trustbridge_tuf::resolve::trusted(&root.signed, &docs);
    // One signers string per role, shared by its tags.
    let signers: BTreeMap<&str, String> = trusted
        .iter()
        .map(|(role, ids)| (role.as_str(), ids.join(",")))
        .collect();
    let roles: BTreeMap<String, &TargetsIndex> = trusted
        .keys()
        .map(|name| (name.clone(), &docs[name].signed))
        .collect();
    let (tags, _) =
        trustbridge_tuf::resolve::resolve_refs(&roles, trustbridge_tuf::resolve::DOCKER_ORDER);
    let made = then(tags, &signers, &expiry);
    (made, expiry)
}

/// The jobs that take the Cosign side from `before` to `after`: a tag resolving to a new
/// digest, role or set of signers gets a `sign` job; what it resolved to before gets a
/// `revoke` job, queued after the signs so a `.sig` manifest being rewritten is never empty in
/// between.
pub fn jobs_between(
    before: &BTreeMap<String, Mirrored>,
    after: &BTreeMap<String, Mirrored>,
) -> Vec<NewJob> {
    let mut jobs: Vec<NewJob> = after
        .iter()
        .filter(|(tag, now)| before.get(*tag) != Some(now))
        .map(|(tag, now)| NewJob::new(Action::Sign, tag, now))
        .collect();
    jobs.extend(
        before
            .iter()
            .filter(|(tag, was)| after.get(*tag) != Some(was))
            .map(|(tag, was)| NewJob::new(Action::Revoke, tag, was)),
    );
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use trustbridge_tuf::metadata::{DelegationRole, FileMeta, Signature};
    use trustbridge_tuf::{GoTime, KeyType, PrivateKey, Targets};

    fn key() -> PrivateKey {
        PrivateKey::generate(KeyType::Ecdsa).unwrap()
    }

    fn targets(names: &[&str], delegations: Vec<(String, Vec<&PrivateKey>)>) -> Targets {
        let mut t = Targets {
            type_: "Targets".into(),
            delegations: Default::default(),
            expires: GoTime::now().plus_years(3),
            targets: names
                .iter()
                .map(|n| (n.to_string(), FileMeta::from_bytes(n.as_bytes())))
                .collect(),
            version: 1,
        };
        for (name, keys) in delegations {
            for k in &keys {
                t.delegations.keys.insert(k.id(), k.public_key().clone());
            }
            t.delegations.roles.push(DelegationRole {
                keyids: keys.iter().map(|k| k.id()).collect(),
                name,
                paths: vec![String::new()],
                path_hash_prefixes: None,
                threshold: 1,
            });
        }
        t
    }

    struct Repo {
        root: Vec<u8>,
        targets_key: PrivateKey,
    }

    fn repo() -> Repo {
        let (r, t, s, ts) = (key(), key(), key(), key());
        let root = Root::initial([
            ("root", r.public_key().clone()),
            ("targets", t.public_key().clone()),
            ("snapshot", s.public_key().clone()),
            ("timestamp", ts.public_key().clone()),
        ]);
        Repo {
            root: Signed::sign(root, &[&r]).unwrap().raw().to_vec(),
            targets_key: t,
        }
    }

    fn signed(t: Targets, keys: &[&PrivateKey]) -> Vec<u8> {
        Signed::sign(t, keys).unwrap().raw().to_vec()
    }

    #[test]
    fn signers_are_the_keys_whose_signatures_verified() {
        let r = repo();
        let stranger = key();
        let doc = Signed::sign(targets(&["v1"], vec![]), &[&r.targets_key]).unwrap();
        // A second entry claiming the stranger's key, with a signature that does not verify,
        // and one more entry for the real key: neither may count.
        let mut sigs = doc.signatures.clone();
        sigs.push(Signature {
            keyid: stranger.id(),
            method: "ecdsa".into(),
            sig: vec![0; 64],
        });
        sigs.push(doc.signatures[0].clone());
        let forged = Signed::from_parts(doc.signed.clone(), sigs).unwrap();
        let set = mirror_set(
            [("root", &r.root[..]), ("targets", forged.raw())],
            OnExpiry::Keep,
        );
        assert_eq!(set["v1"].signers, r.targets_key.id());
    }

    #[test]
    fn the_control_rooms_rows_are_the_mirror_set_with_expiries() {
        let r = repo();
        let alice = key();
        let mut rel = targets(&["rel", "v1"], vec![]);
        rel.expires = GoTime::now().plus_years(1);
        let releases = signed(rel, &[&alice]);
        let tg = signed(
            targets(
                &["v1", "v2", "zz"],
                vec![("targets/releases".into(), vec![&alice])],
            ),
            &[&r.targets_key],
        );
        let files = [
            ("root", &r.root[..]),
            ("targets", &tg[..]),
            ("targets/releases", &releases[..]),
        ];
        let (set, expiry) = mirror_set_and_expiry(files, OnExpiry::Keep);
        let state = trust_state(files, OnExpiry::Keep);
        let rows: Vec<(&str, &str, &str, &str, Option<time::OffsetDateTime>)> = state
            .tags()
            .map(|t| (t.tag, t.digest_hex, t.role, t.signers, t.expires))
            .collect();
        let want: Vec<(&str, &str, &str, &str, Option<time::OffsetDateTime>)> = set
            .iter()
            .map(|(tag, m)| {
                let at = expiry.get(&m.role).copied();
                (
                    tag.as_str(),
                    m.digest_hex.as_str(),
                    m.role.as_str(),
                    m.signers.as_str(),
                    at,
                )
            })
            .collect();
        assert_eq!(rows, want);
        assert_eq!(rows.len(), 4, "rel, v1 (from releases), v2, zz");
        assert_eq!(rows[1].2, "targets/releases");
        assert_ne!(rows[1].4, rows[2].4, "each row has its own role's expiry");
        assert_eq!(state.roles, expiry.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn roles_that_do_not_verify_are_not_mirrored() {
        let r = repo();
        let (alice, bob) = (key(), key());
        let releases = signed(targets(&["rel"], vec![]), &[&alice]);
        // releases signed by alice, delegated to alice: trusted.
        let tg = signed(
            targets(&["v1"], vec![("targets/releases".into(), vec![&alice])]),
            &[&r.targets_key],
        );
        let set = mirror_set(
            [
                ("root", &r.root[..]),
                ("targets", &tg[..]),
                ("targets/releases", &releases[..]),
            ],
            OnExpiry::Keep,
        );
        assert_eq!(set["rel"].role, "targets/releases");
        assert_eq!(set["rel"].signers, alice.id());
        // The delegation now names bob only: alice's file no longer verifies, rel is gone.
        let rotated = signed(
            targets(&["v1"], vec![("targets/releases".into(), vec![&bob])]),
            &[&r.targets_key],
        );
        let after = mirror_set(
            [
                ("root", &r.root[..]),
                ("targets", &rotated[..]),
                ("targets/releases", &releases[..]),
            ],
            OnExpiry::Keep,
        );
        assert_eq!(after.keys().collect::<Vec<_>>(), ["v1"]);
        let jobs = jobs_between(&set, &after);
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            (jobs[0].action, jobs[0].tag.as_str()),
            (Action::Revoke, "rel")
        );
        // targets signed by a key the root does not name: nothing at all.
        let other = signed(targets(&["v1"], vec![]), &[&bob]);
        assert!(
            mirror_set(
                [("root", &r.root[..]), ("targets", &other[..])],
                OnExpiry::Keep
            )
            .is_empty()
        );
        // An expired delegation: kept by default, left out (with its tags) under Revoke.
        let mut old = targets(&["rel"], vec![]);
        old.expires = GoTime::parse("2020-01-01T00:00:00Z").unwrap();
        let expired = signed(old, &[&alice]);
        let files = [
            ("root", &r.root[..]),
            ("targets", &tg[..]),
            ("targets/releases", &expired[..]),
        ];
        assert!(mirror_set(files, OnExpiry::Keep).contains_key("rel"));
        assert_eq!(
            mirror_set(files, OnExpiry::Revoke)
                .keys()
                .collect::<Vec<_>>(),
            ["v1"]
        );
        assert!(
            mirror_set_and_expiry(files, OnExpiry::Keep).1["targets/releases"]
                < time::OffsetDateTime::now_utc()
        );
        // No root: nothing is trusted.
        assert!(mirror_set([("targets", &tg[..])], OnExpiry::Keep).is_empty());
    }
}
