//! SQL for API tokens. Only the SHA-256 of a secret is stored.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{decode, ts, ts_opt, StoreError, Tx};
use crate::domain::{Role, Timestamp, TokenId};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Token {
    #[serde(skip)]
    pub seq: i64,
    pub id: TokenId,
    pub name: String,
    pub role: Role,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

const COLS: &str = "seq, id, name, role, created_at, revoked_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Token> {
    let id: String = r.get(1)?;
    let role: String = r.get(3)?;
    Ok(Token {
        seq: r.get(0)?,
        id: decode("token id", &id, TokenId::parse)?,
        name: r.get(2)?,
        role: decode("role", &role, Role::parse)?,
        created_at: ts(r.get(4)?),
        revoked_at: ts_opt(r.get(5)?),
    })
}

/// Inserts; an active token with the same name surfaces as a unique violation.
pub fn insert(
    tx: &Tx<'_>,
    id: TokenId,
    name: &str,
    role: Role,
    secret_hash: &str,
    now: i64,
) -> Result<Token, StoreError> {
    tx.prepare_cached(
        "INSERT INTO tokens (id, name, role, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id.to_string(),
        name,
        role.as_str(),
        secret_hash,
        now
    ])?;
    Ok(Token {
        seq: tx.last_insert_rowid(),
        id,
        name: name.to_string(),
        role,
        created_at: ts(now),
        revoked_at: None,
    })
}

/// The active token whose secret hashes to `secret_hash`.
pub fn find_active(conn: &Connection, secret_hash: &str) -> Result<Option<Token>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM tokens WHERE secret_hash = ?1 AND revoked_at IS NULL"
    ))?;
    Ok(st.query_row([secret_hash], from_row).optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<Token>, StoreError> {
    let mut st = conn.prepare_cached(&format!("SELECT {COLS} FROM tokens ORDER BY seq"))?;
    let rows = st
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Revokes the active token with this name or id; returns it, or `None` when there is none.
pub fn revoke(tx: &Tx<'_>, name_or_id: &str, now: i64) -> Result<Option<Token>, StoreError> {
    let found = {
        let mut st = tx.prepare_cached(&format!(
            "SELECT {COLS} FROM tokens WHERE (name = ?1 OR id = ?1) AND revoked_at IS NULL"
        ))?;
        st.query_row([name_or_id], from_row).optional()?
    };
    let Some(mut token) = found else {
        return Ok(None);
    };
    tx.prepare_cached("UPDATE tokens SET revoked_at = ?2 WHERE seq = ?1")?
        .execute(params![token.seq, now])?;
    token.revoked_at = Some(ts(now));
    Ok(Some(token))
}
