//! SQL for the audit log: who did what, when, from where.

use rusqlite::params;

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
    .execute(params![
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
