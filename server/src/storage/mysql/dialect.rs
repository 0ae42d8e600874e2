//! The shared SQL (written once, PostgreSQL's spelling, see [`crate::storage::migration`] and
//! [`crate::storage::renewals`]) in MySQL's: `$n` parameters become positional `?` (a `$n`
//! used twice is bound twice), `ON CONFLICT (k) DO UPDATE SET a = excluded.a` becomes
//! `ON DUPLICATE KEY UPDATE a = VALUES(a)`, `DO NOTHING` a no-op update (so the affected-row
//! count still says whether a row was inserted), `CAST(… AS VARCHAR(n) | BIGINT)` MySQL's
//! `CHAR(n)` / `SIGNED`, and the reserved word `reads` is quoted. Statements that do not
//! translate (PostgreSQL's `RETURNING`, `FILTER`) are written by hand in the store.

use ::mysql::{Params, Value};

/// One translated statement and, per `?`, which argument it takes.
pub(super) struct Stmt {
    pub sql: String,
    order: Vec<usize>,
}

impl Stmt {
    /// The positional parameters for `args` (`args[i]` is PostgreSQL's `$i+1`).
    pub fn params(&self, args: &[Value]) -> Params {
        if self.order.is_empty() {
            return Params::Empty;
        }
        Params::Positional(
            self.order
                .iter()
                .map(|&i| args.get(i).cloned().unwrap_or(Value::NULL))
                .collect(),
        )
    }
}

pub(super) fn stmt(pg: &str) -> Stmt {
    let mut sql = String::with_capacity(pg.len() + 16);
    let mut order = Vec::new();
    let mut chars = pg.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '$' {
            let digits: String = pg[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                order.push(n - 1);
                sql.push('?');
                for _ in 0..digits.len() {
                    chars.next();
                }
                continue;
            }
        }
        sql.push(c);
    }
    let sql = upsert(&sql)
        .replace("AS VARCHAR(255))", "AS CHAR(255))")
        .replace("AS BIGINT)", "AS SIGNED)")
        .replace("excluded.", "VALUES__.");
    Stmt {
        sql: quote_reads(&values(&sql)),
        order,
    }
}

/// `ON CONFLICT (k, …) DO UPDATE SET` / `DO NOTHING` → `ON DUPLICATE KEY UPDATE …`.
fn upsert(sql: &str) -> String {
    let Some(at) = sql.find("ON CONFLICT (") else {
        return sql.to_string();
    };
    let rest = &sql[at + "ON CONFLICT (".len()..];
    let Some(close) = rest.find(')') else {
        return sql.to_string();
    };
    let first_key = rest[..close].split(',').next().unwrap_or("").trim();
    let after = rest[close + 1..].trim_start();
    if let Some(set) = after.strip_prefix("DO UPDATE SET") {
        format!("{}ON DUPLICATE KEY UPDATE{set}", &sql[..at])
    } else if let Some(tail) = after.strip_prefix("DO NOTHING") {
        format!(
            "{}ON DUPLICATE KEY UPDATE {first_key} = {first_key}{tail}",
            &sql[..at]
        )
    } else {
        sql.to_string()
    }
}

/// `VALUES__.col` (PostgreSQL's `excluded.col`) → `VALUES(col)`.
fn values(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("VALUES__.") {
        out.push_str(&rest[..at]);
        let col = &rest[at + "VALUES__.".len()..];
        let end = col
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(col.len());
        out.push_str(&format!("VALUES({})", &col[..end]));
        rest = &col[end..];
    }
    out.push_str(rest);
    out
}

/// `reads` is reserved in MySQL; quoted where it is not qualified (`t.reads` needs nothing).
fn quote_reads(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < sql.len() {
        let word = sql[i..].starts_with("reads")
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
            && sql[i + 5..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if word && (i == 0 || bytes[i - 1] != b'.') {
            out.push_str("`reads`");
            i += 5;
        } else {
            let c = sql[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{migration as m, renewals};

    #[test]
    fn shared_statements_read_as_mysql() {
        let s = stmt(m::MARK);
        assert_eq!(
            s.sql,
            "INSERT INTO migration_dirty (gun, trust, seq) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE trust = CASE WHEN VALUES(trust) > migration_dirty.trust THEN VALUES(trust) ELSE migration_dirty.trust END, seq = migration_dirty.seq + 1"
        );
        assert_eq!(s.order, [0, 1]);
        let s = stmt(m::SET_READ_ONLY);
        assert!(
            s.sql.ends_with("ON DUPLICATE KEY UPDATE gun = gun"),
            "{}",
            s.sql
        );
        let s = stmt(m::ADD_USAGE);
        assert!(
            s.sql.contains("version, `reads`, last_seen)")
                && s.sql
                    .contains("`reads` = dct_usage.reads + VALUES(`reads`)"),
            "{}",
            s.sql
        );
        // A parameter used three times is bound three times.
        let s = stmt(m::REFRESH);
        assert_eq!(s.order, [0, 0, 1, 0, 0]);
        assert!(!s.sql.contains("excluded") && !s.sql.contains('$'));
        let s = stmt(m::PAGE_FROM);
        assert!(
            s.sql.contains("CAST(? AS CHAR(255))") && s.sql.contains("CAST(? AS SIGNED)"),
            "{}",
            s.sql
        );
        assert_eq!(
            stmt(renewals::UPSERT).sql,
            "INSERT INTO renewals (gun, timestamp_expires, snapshot_expires) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE timestamp_expires = COALESCE(VALUES(timestamp_expires), renewals.timestamp_expires), snapshot_expires = COALESCE(VALUES(snapshot_expires), renewals.snapshot_expires)"
        );
    }
}
