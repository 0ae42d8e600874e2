//! Thin HTTP handlers: match notary's route, parse the request, call one [`Repo`] function,
//! and write notary's response (status, headers, bytes) or its error envelope.

mod migration;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use time::OffsetDateTime;

use crate::error::{ApiError, Error, WireCode};
use crate::metrics::Metrics;
use crate::repo::Repo;
use crate::routes::{Cache, CachePolicy, Route, route};
use crate::storage::Stored;

pub struct App {
    pub bridge: Option<Arc<crate::bridge::Bridge>>,
    pub auth: Option<crate::auth::TokenAuth>,
    pub issuer: Option<crate::auth::issuer::Issuer>,
    pub repo: Repo,
    pub metrics: Metrics,
    /// `caching.max_age`: the Cache-Control of metadata reads.
    pub caching: CachePolicy,
    pub gun_prefixes: Vec<String>,
    /// The migration control room (status page, DCT usage, brownouts, read-only GUNs).
    pub control: Arc<crate::migration::ControlRoom>,
}

/// How much of a refused request's body is read before answering.
const DRAIN: usize = 1 << 20;
const TEXT: &str = "text/plain; charset=utf-8";
pub(crate) const JSON: &str = "application/json; charset=utf-8";

/// Every request comes here: route, handle, record metrics.
pub async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = percent_decode(req.uri().path());
    if let Some(clean) = crate::routes::clean_path(&path) {
        let resp = redirect(&clean, req.uri().query());
        // Read (a little of) what the client is sending, so it sees the 301 and not a reset.
        let _ = axum::body::to_bytes(req.into_body(), DRAIN).await;
        app.metrics.request(
            "redirect",
            method.as_str(),
            resp.status().as_u16(),
            start.elapsed().as_secs_f64(),
        );
        return resp;
    }
    let r = route(&method, &path);
    let name = r.name();
    // A DCT read is counted (by GUN, client and day) once it is answered.
    let read = r.dct_read().map(|gun| {
        (
            gun.to_string(),
            req.headers().get(header::USER_AGENT).cloned(),
        )
    });
    let resp = handle(&app, r, req).await;
    if let Some((gun, ua)) = read
        && resp.status() == StatusCode::OK
    {
        app.control.usage.record(
            &gun,
            ua.as_ref().and_then(|v| v.to_str().ok()),
            OffsetDateTime::now_utc(),
        );
    }
    app.metrics.request(
        name,
        method.as_str(),
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// notary's 301 to the clean path (Go's `http.Redirect` body), query kept.
fn redirect(clean: &str, query: Option<&str>) -> Response {
    let encoded: String = percent_encoding::utf8_percent_encode(clean, PATH_CHARS).to_string();
    let location = match query {
        Some(q) => format!("{encoded}?{q}"),
        None => encoded,
    };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// What a path keeps unescaped in a `Location` (Go's `url.URL.EscapedPath`).
const PATH_CHARS: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Percent-decoding: Go matches routes against the decoded path.
fn percent_decode(p: &str) -> String {
    percent_encoding::percent_decode_str(p)
        .decode_utf8_lossy()
        .into_owned()
}

fn allowed(app: &App, gun: &str) -> bool {
    app.gun_prefixes.is_empty() || app.gun_prefixes.iter().any(|p| gun.starts_with(p.as_str()))
}

async fn handle(app: &App, r: Route, req: Request) -> Response {
    let cache = r.cache();
    if let Some(gun) = r.gun()
        && !allowed(app, gun)
    {
        let e = Error::InvalidGun(app.gun_prefixes.clone());
        return match r {
            Route::Update { .. } => {
                let _ = axum::body::to_bytes(req.into_body(), DRAIN).await;
                e.for_update().into_response()
            }
            _ => ApiError::new(WireCode::MetadataNotFound, None).into_response(),
        };
    }
    if let Some(auth) = &app.auth {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Err(refusal) = auth.check(req.headers(), &r, now) {
            if let crate::auth::Refusal::InvalidToken(why) = &refusal {
                tracing::info!(route = r.name(), why = %why, "token refused");
            }
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            let resp = auth.challenge(&r, &refusal, host);
            // Read what the client is sending first (at most DRAIN: an unauthenticated
            // client gets no more of our time), so it sees the 401 and not a reset.
            let _ = axum::body::to_bytes(req.into_body(), DRAIN).await;
            return resp;
        }
    }
    if let Some(gun) = r.dct_read()
        && let Some(b) = app.control.config.brownout(gun, OffsetDateTime::now_utc())
    {
        return migration::brownout(b);
    }
    // What the route may read of the body (only updates and imports read one).
    let body_limit = r.body_limit();
    match r {
        Route::Control(view) => {
            migration::control(app.control.clone(), view, req.uri().query().unwrap_or("")).await
        }
        Route::Token => match &app.issuer {
            Some(issuer) => {
                let addr = req
                    .extensions()
                    .get::<std::net::SocketAddr>()
                    .map(|a| a.ip());
                issuer.issue(req.headers(), req.uri().query(), addr).await
            }
            None => ApiError::new(WireCode::MetadataNotFound, None).into_response(),
        },
        Route::CosignPub => match &app.bridge {
            Some(b) => match b.public_pem().await {
                Ok(pem) => text(StatusCode::OK, pem.into_bytes()),
                Err(e) => {
                    tracing::warn!(error = %e, "cosign.pub");
                    ApiError::new(WireCode::Unknown, None).into_response()
                }
            },
            None => ApiError::new(WireCode::MetadataNotFound, None).into_response(),
        },
        Route::NotationCa => match &app.bridge {
            Some(b) => match b.notation_chain().await {
                Ok(c) => text(StatusCode::OK, c.root_pem().into_bytes()),
                Err(e) => {
                    tracing::warn!(error = %e, "notation-ca.crt");
                    ApiError::new(WireCode::MetadataNotFound, None).into_response()
                }
            },
            None => ApiError::new(WireCode::MetadataNotFound, None).into_response(),
        },
        Route::BridgeStatus => {
            let query = form_urlencoded(req.uri().query().unwrap_or(""));
            let param = |name: &str| {
                query
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            let answer = match (&app.bridge, param("gun"), param("prefix")) {
                (None, _, _) => {
                    return ApiError::new(WireCode::MetadataNotFound, None).into_response();
                }
                (Some(b), Some(gun), _) if !gun.is_empty() => b.status(&gun),
                (Some(b), _, Some(prefix)) => b.statuses(&prefix),
                (Some(_), _, _) => {
                    return Error::InvalidParameters("gun or prefix is required".into())
                        .for_read()
                        .into_response();
                }
            };
            match answer {
                Ok(v) => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, JSON)],
                    v.to_string(),
                )
                    .into_response(),
                Err(_) => ApiError::new(WireCode::Unknown, None).into_response(),
            }
        }
        Route::V2Root => text(StatusCode::OK, b"{}".to_vec()),
        Route::ReadOnly { gun, on } => migration::read_only(app.control.clone(), gun, on).await,
        Route::Update { gun } if app.control.read_only(&gun).unwrap_or(false) => {
            let _ = axum::body::to_bytes(req.into_body(), DRAIN).await;
            tracing::info!(%gun, "update refused: DCT is read-only for this repository");
            Error::Invalid(crate::error::ValidationError::Validation(format!(
                "{gun} has moved to Cosign: DCT publishing is switched off for it; sign with cosign instead"
            )))
            .for_update()
            .into_response()
        }
        Route::Update { gun } => match update(app, &gun, req, body_limit).await {
            Ok(()) => StatusCode::OK.into_response(),
            Err(e) => {
                tracing::info!(%gun, error = %e, "update refused");
                e.for_update().into_response()
            }
        },
        Route::ByChecksum {
            gun,
            role,
            checksum,
        } => meta(
            app,
            app.repo.by_checksum(&gun, &role, &checksum).await,
            cache,
        ),
        Route::ByVersion { gun, role, version } => {
            let v: i64 = match version.parse() {
                Ok(v) => v,
                Err(_) => return Error::NotFound.for_read().into_response(),
            };
            meta(app, app.repo.by_version(&gun, &role, v).await, cache)
        }
        Route::Current { gun, role } => meta(app, app.repo.current(&gun, &role).await, cache),
        Route::GetKey { gun, role } => key(app.repo.get_or_create_key(&gun, &role).await),
        Route::RotateKey { gun, role } => key(app.repo.rotate_key(&gun, &role).await),
        Route::Delete { gun } => match app.repo.delete(&gun).await {
            Ok(()) => StatusCode::OK.into_response(),
            Err(e) => e.for_read().into_response(),
        },
        Route::Import { gun } => match import(app, &gun, req, body_limit).await {
            Ok(n) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, JSON)],
                json!({"gun": gun, "files": n}).to_string(),
            )
                .into_response(),
            Err(e) => e.for_update().into_response(),
        },
        Route::GunChangefeed { gun } => changefeed(app, Some(gun), req.uri().query()).await,
        Route::Changefeed => changefeed(app, None, req.uri().query()).await,
        Route::Health => health(app).await,
        Route::Metrics => {
            app.metrics.cache(app.repo.cache_usage());
            (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                app.metrics.render(),
            )
                .into_response()
        }
        Route::NotFound => ApiError::new(WireCode::MetadataNotFound, None).into_response(),
        Route::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

fn text(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, TEXT)], body).into_response()
}

/// Go's `http.TimeFormat` with the zone name Go prints for UTC ("UTC", not "GMT").
fn last_modified(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] UTC"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// A metadata GET: the stored bytes verbatim, with notary's cache headers.
fn meta(app: &App, res: Result<Stored, Error>, cache: Cache) -> Response {
    let s = match res {
        Ok(s) => s,
        Err(e) => return e.for_read().into_response(),
    };
    let current = cache == Cache::Current;
    let max_age = app.caching.max_age(cache).unwrap_or(0);
    // The stored bytes themselves (shared with the cache), not a copy: a 9 MiB targets file
    // was copied once per concurrent GET.
    let mut resp = Response::new(Body::from(Bytes::from_owner(s.data)));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT));
    if max_age == 0 {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=0, no-cache, no-store"),
        );
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    } else {
        let v = if current {
            format!("public, max-age={max_age}, s-maxage={max_age}, must-revalidate")
        } else {
            format!("public, max-age={max_age}, s-maxage={max_age}")
        };
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(header::CACHE_CONTROL, v);
        }
        if let Ok(v) = HeaderValue::from_str(&last_modified(s.created_at)) {
            h.insert(header::LAST_MODIFIED, v);
        }
    }
    resp
}

/// notary's key JSON, Go field order: `{"keytype":..,"keyval":{"public":..,"private":null}}`.
fn key(res: Result<trustbridge_tuf::PublicKey, Error>) -> Response {
    use base64::Engine as _;
    match res {
        Ok(k) => {
            let body = format!(
                r#"{{"keytype":"{}","keyval":{{"public":"{}","private":null}}}}"#,
                k.key_type,
                base64::engine::general_purpose::STANDARD.encode(&k.public)
            );
            text(StatusCode::OK, body.into_bytes())
        }
        Err(e) => {
            tracing::warn!(error = %e, "key request failed");
            e.for_read().into_response()
        }
    }
}

/// Read the multipart upload into role → (version, bytes) (reference §1.2).
/// `{"files":[{"role","version","data":<base64>}]}` → [`Repo::import`].
async fn import(app: &App, gun: &str, req: Request, limit: usize) -> Result<usize, Error> {
    #[derive(serde::Deserialize)]
    struct File {
        role: String,
        version: i64,
        data: String,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        files: Vec<File>,
    }
    let body = crate::upload::read_body(req, limit).await?;
    let body: Body =
        serde_json::from_slice(&body).map_err(|e| Error::MalformedJson(e.to_string()))?;
    let mut files = Vec::with_capacity(body.files.len());
    for f in body.files {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD
            .decode(f.data.as_bytes())
            .map_err(|e| Error::MalformedJson(format!("{} v{}: {e}", f.role, f.version)))?;
        files.push(crate::storage::Update {
            role: f.role,
            version: f.version,
            data: Arc::from(data),
        });
    }
    app.repo.import(gun, files).await
}

async fn update(app: &App, gun: &str, req: Request, limit: usize) -> Result<(), Error> {
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    // Read the whole body before answering, so a client still sending sees our 400 rather
    // than a reset stream.
    let body = crate::upload::read_body(req, limit).await?;
    let Some(boundary) = boundary else {
        return Err(Error::MalformedUpload("not multipart/form-data".into()));
    };
    let uploads = crate::upload::parts(body, boundary).await?;
    // No parts at all is what the notary client sends for a publish that changed nothing
    // while the server holds the snapshot; notary-server answers it with a new snapshot and
    // timestamp, and so does the update below.
    app.repo.update(gun, uploads).await
}

async fn changefeed(app: &App, gun: Option<String>, query: Option<&str>) -> Response {
    let mut change_id = String::new();
    let mut records: Option<String> = None;
    for (k, v) in form_urlencoded(query.unwrap_or("")) {
        match k.as_str() {
            "change_id" => change_id = v,
            "records" => records = Some(v),
            _ => {}
        }
    }
    let bad = |d: String| Error::InvalidParameters(d).for_read().into_response();
    // notary parses records with int32 rules even when absent.
    let records: i64 = match records.unwrap_or_default().parse::<i32>() {
        Ok(0) => 100,
        Ok(n) => n as i64,
        Err(_) => return bad("records must be an integer".into()),
    };
    let change_id: i64 = if change_id.is_empty() {
        0
    } else {
        match change_id.parse::<i32>() {
            Ok(n) => n as i64,
            Err(_) => return bad(format!("change_id {change_id:?} is not an integer")),
        }
    };
    match app.repo.changes(gun, change_id, records).await {
        Ok(rows) => {
            let records: Vec<serde_json::Value> = rows
                .iter()
                .map(|c| {
                    json!({
                        "ID": c.id.to_string(),
                        "CreatedAt": trustbridge_tuf::GoTime::from_offset_datetime(c.created_at).to_string(),
                        "GUN": c.gun,
                        "Version": c.version,
                        "SHA256": c.sha256,
                        "Category": c.category,
                    })
                })
                .collect();
            let body = json!({"count": records.len(), "records": records});
            text(
                StatusCode::OK,
                serde_json::to_vec(&body).unwrap_or_default(),
            )
        }
        Err(e) => e.for_read().into_response(),
    }
}

/// A query string's pairs, decoded as Go's `url.ParseQuery` does (`+` is a space).
pub(crate) fn form_urlencoded(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// "DB operational" and "Trust operational", as notary-server reports them.
async fn health(app: &App) -> Response {
    let mut failed = serde_json::Map::new();
    let store = app.repo.store().clone();
    let db = tokio::task::spawn_blocking(move || store.check_health())
        .await
        .map_err(|e| Error::internal("health task", e))
        .and_then(|r| r.map_err(Error::from));
    if let Err(e) = db {
        failed.insert("DB operational".into(), e.to_string().into());
    }
    if let Err(e) = app.repo.signer().check_health().await {
        failed.insert("Trust operational".into(), e.to_string().into());
    }
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, JSON)],
        serde_json::to_vec(&failed).unwrap_or_default(),
    )
        .into_response()
}
