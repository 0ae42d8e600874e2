//! The control room's routes: parse the query, call one [`ControlRoom`] function, answer JSON
//! or the HTML page; and the brownout answer a DCT read gets.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use super::{JSON, form_urlencoded};
use crate::error::Error;
use crate::migration::{Brownout, ControlRoom, DEFAULT_PAGE, page};
use crate::routes::Control;
use crate::storage::migration::PageQuery;

const HTML: &str = "text/html; charset=utf-8";

struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").to_string()
    }

    fn int(&self, name: &str) -> Result<Option<i64>, Error> {
        match self.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Error::InvalidParameters(format!("{name} must be an integer"))),
        }
    }

    fn page(&self) -> Result<PageQuery, Error> {
        let ready = match self.get("ready").unwrap_or("") {
            "" => None,
            "true" => Some(true),
            "false" => Some(false),
            v => {
                return Err(Error::InvalidParameters(format!(
                    "ready {v:?} must be true or false"
                )));
            }
        };
        Ok(PageQuery {
            prefix: self.text("prefix"),
            after: self.text("after"),
            limit: self.int("limit")?.unwrap_or(DEFAULT_PAGE),
            ready,
        })
    }
}

fn json(v: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, JSON)],
        v.to_string(),
    )
        .into_response()
}

fn html(body: String) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HTML),
            // The page loads nothing from anywhere, and no script runs in it.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

fn answer(cr: &ControlRoom, view: Control, q: Query) -> Result<Response, Error> {
    let gun = || -> Result<String, Error> {
        q.get("gun")
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::InvalidParameters("gun is required".into()))
    };
    let limit = q.int("limit")?.unwrap_or(1000);
    Ok(match view {
        Control::Overview => json(cr.overview()?),
        Control::Guns => json(cr.guns(&q.page()?)?),
        Control::Gun => match cr.gun(&gun()?)? {
            Some(v) => json(v),
            None => return Err(Error::NotFound),
        },
        Control::Usage => json(cr.usage(&q.text("prefix"), q.int("days")?.unwrap_or(30), limit)?),
        Control::Expiring => json(cr.expiring(&q.text("prefix"), q.int("days")?, limit)?),
        Control::Page => {
            let p = q.page()?;
            let expiring = cr.expiring(&p.prefix, None, 50)?;
            html(page::overview(&cr.overview()?, &cr.guns(&p)?, &expiring))
        }
        Control::GunPage => match cr.gun(&gun()?)? {
            Some(v) => html(page::gun(&v)),
            None => return Err(Error::NotFound),
        },
    })
}

/// A control room GET. The store is synchronous: the queries run off the async workers.
pub async fn control(cr: std::sync::Arc<ControlRoom>, view: Control, query: &str) -> Response {
    let q = Query(form_urlencoded(query));
    let res = tokio::task::spawn_blocking(move || answer(&cr, view, q))
        .await
        .map_err(|e| Error::internal("control room task", e))
        .and_then(|r| r);
    match res {
        Ok(r) => r,
        Err(e) => {
            if !matches!(e, Error::NotFound | Error::InvalidParameters(_)) {
                tracing::warn!(error = %e, "migration status");
            }
            e.for_read().into_response()
        }
    }
}

/// `POST`/`DELETE /_trustbridge/v1/read-only/<gun>`.
pub async fn read_only(cr: std::sync::Arc<ControlRoom>, gun: String, on: bool) -> Response {
    match tokio::task::spawn_blocking(move || cr.switch_read_only(&gun, on)).await {
        Ok(Ok(v)) => json(v),
        Ok(Err(e)) => e.for_read().into_response(),
        Err(e) => Error::internal("read-only switch task", e)
            .for_read()
            .into_response(),
    }
}

/// What a DCT read gets during a brownout: notary's error envelope with the migration's
/// message, also as a validation detail (the notary client prints that detail on a 400).
pub fn brownout(b: &Brownout) -> Response {
    let detail = serde_json::json!({"Name": "ErrValidation", "Error": {"Msg": b.message}});
    let body = format!(
        "{{\"errors\":[{{\"code\":\"UNAVAILABLE\",\"message\":{},\"detail\":{}}}]}}\n",
        serde_json::Value::from(b.message.as_str()),
        detail
    );
    let status = StatusCode::from_u16(b.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut resp = (status, [(header::CONTENT_TYPE, JSON)], body).into_response();
    let warning = format!("299 trustbridge {:?}", b.message);
    if let Ok(v) = HeaderValue::from_str(&warning) {
        resp.headers_mut().insert(header::WARNING, v);
    }
    resp
}
