//! The status page at `/_trustbridge/`: server-rendered HTML from the same JSON documents the
//! API serves (so the numbers cannot disagree), one inline stylesheet, no script, no CDN, no
//! external font — it works offline. Every string that comes from users (GUNs, tags, errors,
//! client versions) goes through [`esc`].

use serde_json::Value;

/// HTML-escape text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query-string component.
fn q(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:76em;padding:0 1em;color:#1d2330}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
a{color:#1652b5}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid #e2e5ea;vertical-align:top}
th{background:#f4f6f9}code{font:12px ui-monospace,monospace;word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:.6em}.card{border:1px solid #e2e5ea;border-radius:6px;padding:.5em .8em;min-width:8em}
.card b{display:block;font-size:1.4em}
.bar{background:#e2e5ea;border-radius:4px;height:14px;overflow:hidden;position:relative;margin:.3em 0}
.bar span{position:absolute;top:0;left:0;bottom:0}.bar .m{background:#9cc1f0}.bar .v{background:#2f8f4e}
.st{border-radius:3px;padding:0 .4em;font-size:12px;white-space:nowrap}
.verified,.ready,.mirrored{background:#d8f0df}.pending,.failed,.soon{background:#fdf0c8}
.dead,.drift,.expired,.not-configured,.active{background:#f8d3d0}.unmirrored,.dropped,.notready{background:#eceef2}
form{margin:.8em 0}input{padding:.2em .4em}
"#;

fn frame(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

fn b(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"st {}\">{}</span>", esc(class), esc(text))
}

fn pct(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        (part as f64 * 100.0 / whole as f64).clamp(0.0, 100.0)
    }
}

/// The overview and one page of GUNs.
pub fn overview(ov: &Value, page: &Value, expiring: &Value) -> String {
    let t = &ov["totals"];
    let card = |id: &str, label: &str, v: i64| {
        format!("<div class=\"card\">{label}<b id=\"total-{id}\">{v}</b></div>")
    };
    let mut h = String::from("<h1>trustbridge — DCT → Sigstore migration</h1>");
    let (tags, mirrored, verified) = (n(t, "tags"), n(t, "mirrored"), n(t, "verified"));
    h.push_str(&format!(
        "<p>{verified} of {tags} tags trusted by DCT are verified in the registry ({:.1}%); {mirrored} mirrored.</p>\
         <div class=\"bar\" title=\"mirrored / verified\"><span class=\"m\" style=\"width:{:.1}%\"></span><span class=\"v\" style=\"width:{:.1}%\"></span></div>",
        pct(verified, tags),
        pct(mirrored, tags),
        pct(verified, tags)
    ));
    if !b(ov, "bridge") {
        h.push_str("<p><b>The Cosign bridge is not configured</b>: nothing is mirrored (trustbridge.bridge).</p>");
    }
    h.push_str("<div class=\"cards\">");
    for (id, label) in [
        ("guns", "repositories"),
        ("tags", "tags trusted by DCT"),
        ("mirrored", "mirrored"),
        ("verified", "verified in registry"),
        ("queued", "pending / failed jobs"),
        ("dead", "dead jobs"),
        ("drift", "drifted tags"),
        ("ready_guns", "ready to switch off DCT"),
        ("expired_roles", "expired roles"),
        ("expiring_roles", "roles expiring soon"),
        ("read_7d", "read through DCT, 7 days"),
        ("read_30d", "read through DCT, 30 days"),
    ] {
        h.push_str(&card(id, label, n(t, id)));
    }
    h.push_str("</div>");
    if let Some(list) = ov["brownouts"].as_array().filter(|l| !l.is_empty()) {
        h.push_str("<h2>Brownouts</h2><table><tr><th>prefix</th><th>window (UTC)</th><th>status</th><th>message</th></tr>");
        for w in list {
            h.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{} – {}</td><td>{}</td><td>{}</td></tr>",
                esc(s(w, "prefix")),
                esc(s(w, "start")),
                esc(s(w, "end")),
                if b(w, "active") {
                    badge("active", "active")
                } else {
                    badge("notready", "scheduled or over")
                },
                esc(s(w, "message"))
            ));
        }
        h.push_str("</table>");
    }
    if let Some(list) = expiring["roles"].as_array().filter(|l| !l.is_empty()) {
        h.push_str(&format!(
            "<h2>Roles expiring within {} days</h2><table id=\"expiring\"><tr><th>repository</th><th>role</th><th>expires</th><th>renew with</th></tr>",
            n(expiring, "days")
        ));
        for r in list {
            h.push_str(&format!(
                "<tr><td><a href=\"gun?gun={}\">{}</a></td><td>{}</td><td>{} {}</td><td><code>{}</code></td></tr>",
                q(s(r, "gun")),
                esc(s(r, "gun")),
                esc(s(r, "role")),
                esc(s(r, "expires")),
                if b(r, "expired") { badge("expired", "expired") } else { badge("soon", "soon") },
                esc(s(r, "renew"))
            ));
        }
        h.push_str("</table>");
    }
    let prefix = s(page, "prefix");
    let ready = page.get("ready").and_then(Value::as_bool);
    let sel = |v: Option<bool>| if ready == v { " selected" } else { "" };
    h.push_str(&format!(
        "<h2>Repositories</h2><form method=\"get\" action=\"\"><input name=\"prefix\" placeholder=\"GUN prefix\" value=\"{}\" size=\"40\"> \
         <select name=\"ready\"><option value=\"\"{}>all</option><option value=\"true\"{}>ready</option><option value=\"false\"{}>not ready</option></select> \
         <button type=\"submit\">search</button></form>",
        esc(prefix),
        sel(None),
        sel(Some(true)),
        sel(Some(false))
    ));
    h.push_str("<table id=\"guns\"><tr><th>repository</th><th>tags</th><th>mirrored</th><th>verified</th><th>pending/failed</th><th>dead</th><th>drift</th><th>earliest expiry</th><th>last DCT read</th><th>switch off DCT</th></tr>");
    let empty = vec![];
    for g in page["guns"].as_array().unwrap_or(&empty) {
        let gun = s(g, "gun");
        h.push_str(&format!(
            "<tr data-gun=\"{}\"><td><a href=\"gun?gun={}\">{}</a></td><td data-k=\"tags\">{}</td><td data-k=\"mirrored\">{}</td><td data-k=\"verified\">{}</td><td data-k=\"queued\">{}</td><td data-k=\"dead\">{}</td><td data-k=\"drift\">{}</td><td>{} {}</td><td data-k=\"last_read\">{}</td><td data-k=\"ready\">{}</td></tr>",
            esc(gun),
            q(gun),
            esc(gun),
            n(g, "tags"),
            n(g, "mirrored"),
            n(g, "verified"),
            n(g, "queued"),
            n(g, "dead"),
            n(g, "drift"),
            esc(s(g, "expires")),
            if b(g, "expired") { badge("expired", "expired") } else { String::new() },
            esc(g.get("last_read").and_then(Value::as_str).unwrap_or("never")),
            if b(g, "ready") { badge("ready", "ready") } else { badge("notready", "not yet") },
        ));
    }
    h.push_str("</table>");
    if let Some(next) = page["next"].as_str() {
        let r = match ready {
            Some(v) => format!("&amp;ready={v}"),
            None => String::new(),
        };
        h.push_str(&format!(
            "<p><a id=\"next\" href=\"?prefix={}&amp;after={}{r}\">next page →</a></p>",
            q(prefix),
            q(next)
        ));
    }
    h.push_str("<p>The same data as JSON: <a href=\"v1/migration\">v1/migration</a>, <a href=\"v1/migration/guns\">v1/migration/guns</a>, <a href=\"v1/migration/usage\">v1/migration/usage</a>, <a href=\"v1/migration/expiring\">v1/migration/expiring</a>.</p>");
    frame("trustbridge migration", &h)
}

/// One GUN: its tags (DCT and Cosign state), roles and DCT reads.
pub fn gun(d: &Value) -> String {
    let gun = s(d, "gun");
    let sm = &d["summary"];
    let mut h = format!(
        "<p><a href=\"./\">← all repositories</a></p><h1><code>{}</code></h1><p id=\"ready\">{} — {} of {} tags verified in the registry, {} drifted.{}</p>",
        esc(gun),
        if b(sm, "ready") {
            badge("ready", "ready to switch off DCT")
        } else {
            badge("notready", "not ready to switch off DCT")
        },
        n(sm, "verified"),
        n(sm, "tags"),
        n(sm, "drift"),
        if b(d, "read_only") {
            " DCT publishing is switched off (read-only)."
        } else {
            ""
        }
    );
    h.push_str("<h2>Tags</h2><table id=\"tags\"><tr><th>tag</th><th>digest (DCT)</th><th>role</th><th>signers</th><th>expires</th><th>Cosign</th><th>Notation</th><th>last error</th></tr>");
    let empty = vec![];
    for t in d["tags"].as_array().unwrap_or(&empty) {
        let c = &t["cosign"];
        let signers: Vec<String> = t["signers"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter_map(Value::as_str)
            .map(|k| format!("<code>{}</code>", esc(&k[..k.len().min(12)])))
            .collect();
        let err = [s(c, "check_error"), s(c, "last_error")]
            .into_iter()
            .filter(|e| !e.is_empty())
            .collect::<Vec<_>>()
            .join(" · ");
        let reg = match c.get("registry_digest").and_then(Value::as_str) {
            Some(r) if b(c, "drift") => format!("<br>registry has <code>{}</code>", esc(r)),
            _ => String::new(),
        };
        h.push_str(&format!(
            "<tr data-tag=\"{}\"><td class=\"tag\">{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{} {}</td><td data-k=\"cosign\">{}{}</td><td data-k=\"notation\">{}</td><td>{}</td></tr>",
            esc(s(t, "tag")),
            esc(s(t, "tag")),
            esc(s(t, "digest")),
            esc(s(t, "role")),
            signers.join(" "),
            esc(s(t, "expires")),
            if b(t, "expired") { badge("expired", "expired") } else { String::new() },
            badge(s(c, "state"), s(c, "state")),
            reg,
            match t.get("notation") {
                Some(n) => badge(s(n, "state"), s(n, "state")),
                None => "off".to_string(),
            },
            esc(&err)
        ));
    }
    h.push_str("</table><h2>Roles</h2><table id=\"roles\"><tr><th>role</th><th>expires</th><th>renew with</th></tr>");
    for r in d["roles"].as_array().unwrap_or(&empty) {
        let state = if b(r, "expired") {
            badge("expired", "expired")
        } else if b(r, "soon") {
            badge("soon", "soon")
        } else {
            String::new()
        };
        h.push_str(&format!(
            "<tr><td>{}</td><td>{} {state}</td><td><code>{}</code></td></tr>",
            esc(s(r, "role")),
            esc(s(r, "expires")),
            esc(s(r, "renew"))
        ));
    }
    h.push_str("</table><h2>DCT reads, last 30 days</h2><table id=\"usage\"><tr><th>day</th><th>client</th><th>version</th><th>reads</th><th>last seen</th></tr>");
    for u in d["usage"].as_array().unwrap_or(&empty) {
        h.push_str(&format!(
            "<tr data-client=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td data-k=\"reads\">{}</td><td>{}</td></tr>",
            esc(s(u, "client")),
            esc(s(u, "day")),
            esc(s(u, "client_name")),
            esc(s(u, "version")),
            n(u, "reads"),
            esc(s(u, "last_seen"))
        ));
    }
    h.push_str("</table>");
    frame(&format!("{gun} — trustbridge migration"), &h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')&\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&amp;&quot;&lt;/script&gt;"
        );
        let d = serde_json::json!({"gun": "a/<b>", "summary": {}, "tags": [{"tag": "<script>", "cosign": {"state": "x\"y"}}]});
        let html = gun(&d);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
    }
}
