//! SQL for API tokens. Only the SHA-256 of a secret is stored.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{decode, ts, ts_opt, StoreError, Tx};
use crate::domain::{Role, Timestamp, TokenId};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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

/// Tokens in the order they were made, after `after_seq` (keyset), at most `limit`; `revoked`
/// picks active (`false`) or revoked (`true`) ones, `None` both. The table holds a handful of rows
/// per venue; the primary key serves the order.
pub fn list_page(
    conn: &Connection,
    revoked: Option<bool>,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<Token>, StoreError> {
    let which = match revoked {
        None => "",
        Some(false) => " AND revoked_at IS NULL",
        Some(true) => " AND revoked_at IS NOT NULL",
    };
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM tokens WHERE seq > ?1{which} ORDER BY seq LIMIT ?2"
    ))?;
    let rows = st
        .query_map(
            params![after_seq, i64::try_from(limit).unwrap_or(i64::MAX)],
            from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The token with this id, active or revoked.
pub fn get(conn: &Connection, id: TokenId) -> Result<Option<Token>, StoreError> {
    let mut st = conn.prepare_cached(&format!("SELECT {COLS} FROM tokens WHERE id = ?1"))?;
    Ok(st.query_row([id.to_string()], from_row).optional()?)
}

/// The active token with this name or id.
pub fn find_active_by_name_or_id(
    conn: &Connection,
    name_or_id: &str,
) -> Result<Option<Token>, StoreError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM tokens WHERE (name = ?1 OR id = ?1) AND revoked_at IS NULL"
    ))?;
    Ok(st.query_row([name_or_id], from_row).optional()?)
}

/// How many admin tokens are active.
pub fn count_active_admins(conn: &Connection) -> Result<i64, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT COUNT(*) FROM tokens WHERE role = 'admin' AND revoked_at IS NULL",
    )?;
    Ok(st.query_row([], |r| r.get(0))?)
}

/// Marks the token revoked as of `now`.
pub fn revoke(tx: &Tx<'_>, seq: i64, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE tokens SET revoked_at = ?2 WHERE seq = ?1 AND revoked_at IS NULL")?
        .execute(params![seq, now])?;
    Ok(())
}
