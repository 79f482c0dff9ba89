//! SQL for the audit log: who did what, when, from where. Read newest first by `(at, seq)`; every
//! filter is served by an index of `schema.sql` that starts with its column and goes on with `at`.

use rusqlite::{params_from_iter, types::Value};

use super::{StoreError, Tx};

/// One admin or operator action.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub remote_addr: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub detail: Option<&'a str>,
}

pub fn record(tx: &Tx<'_>, e: &Entry<'_>, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO audit (at, actor, action, target, remote_addr, request_id, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(rusqlite::params![
        now,
        e.actor,
        e.action,
        e.target,
        e.remote_addr,
        e.request_id,
        e.detail
    ])?;
    Ok(())
}

/// One stored audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub remote_addr: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}

/// How the action filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionMatch<'a> {
    /// Exactly this action (`event.capacity`).
    Exact(&'a str),
    /// Every action of this noun: the noun alone and each `noun.verb` (`event`).
    Noun(&'a str),
}

/// Which rows to list. Every field narrows; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub actor: Option<&'a str>,
    pub action: Option<ActionMatch<'a>>,
    pub target: Option<&'a str>,
    /// Rows at or after this time (ms).
    pub since: Option<i64>,
    /// Rows at or before this time (ms).
    pub until: Option<i64>,
}

/// Where the previous page ended: the `(at, seq)` of its last row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: i64,
    pub seq: i64,
}

const COLS: &str = "seq, at, actor, action, target, remote_addr, request_id, detail";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        target: r.get(4)?,
        remote_addr: r.get(5)?,
        request_id: r.get(6)?,
        detail: r.get(7)?,
    })
}

/// The statement for a filter, with its parameters. Only the constraints a filter has are written
/// out, never `(? IS NULL OR col = ?)`, which no index can serve: the planner then walks the index
/// of the equality it finds (actor, action, noun or target, each followed by `at`) or `audit_by_at`,
/// in order, from the cursor, and stops after `limit` rows.
pub fn list_query(
    filter: &Filter<'_>,
    after: Option<Cursor>,
    limit: usize,
) -> (String, Vec<Value>) {
    let mut sql = format!("SELECT {COLS} FROM audit WHERE 1");
    let mut args: Vec<Value> = Vec::new();
    let mut push = |sql: &mut String, clause: &str, v: Value| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(a) = filter.actor {
        push(&mut sql, " AND actor = ?", Value::Text(a.to_string()));
    }
    match filter.action {
        Some(ActionMatch::Exact(a)) => {
            push(&mut sql, " AND action = ?", Value::Text(a.to_string()))
        }
        Some(ActionMatch::Noun(n)) => push(&mut sql, " AND noun = ?", Value::Text(n.to_string())),
        None => {}
    }
    if let Some(t) = filter.target {
        push(&mut sql, " AND target = ?", Value::Text(t.to_string()));
    }
    if let Some(s) = filter.since {
        push(&mut sql, " AND at >= ?", s.into());
    }
    if let Some(u) = filter.until {
        push(&mut sql, " AND at <= ?", u.into());
    }
    if let Some(c) = after {
        args.push(c.at.into());
        args.push(c.seq.into());
        let (a, s) = (args.len() - 1, args.len());
        sql.push_str(&format!(" AND (at, seq) < (?{a}, ?{s})"));
    }
    args.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    sql.push_str(&format!(
        " ORDER BY at DESC, seq DESC LIMIT ?{}",
        args.len()
    ));
    (sql, args)
}

/// Newest first: rows after `after` (keyset on `(at, seq)`), at most `limit`.
pub fn list(
    conn: &rusqlite::Connection,
    filter: &Filter<'_>,
    after: Option<Cursor>,
    limit: usize,
) -> Result<Vec<Row>, StoreError> {
    let (sql, args) = list_query(filter, after, limit);
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st
        .query_map(params_from_iter(args), from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Every row whose target is one of `targets`, oldest first (the target index, one range each).
pub fn for_targets(
    conn: &rusqlite::Connection,
    targets: &[String],
) -> Result<Vec<Row>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM audit WHERE target = ?1 ORDER BY at, seq"
    ))?;
    let mut rows = Vec::new();
    for t in targets {
        for r in st.query_map([t], from_row)? {
            rows.push(r?);
        }
    }
    rows.sort_by_key(|r| (r.at, r.seq));
    Ok(rows)
}
