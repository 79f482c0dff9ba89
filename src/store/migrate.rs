//! The schema at open: a new file gets `schema.sql` whole; an older file is brought up to it step by
//! step, each step in the same transaction as the version it writes (`PRAGMA user_version`).
//!
//! A step that changes a table's definition rebuilds the table the way SQLite documents it (a new
//! table, the rows copied, the old one dropped), taking the new definition and the table's indexes
//! from `schema.sql` itself, so an upgraded file and a new one hold the same schema by construction.

use rusqlite::Connection;

use super::{StoreError, SCHEMA, SCHEMA_VERSION};

/// What each version after the first changed, in order: the step from version `i + 1` to `i + 2` is
/// `STEPS[i]`.
const STEPS: [Step; 3] = [
    // 2: the status of registrations and the state of outbox messages are checked with ORs, and the
    // one-active index is `status <> 'cancelled'`, instead of `IN` lists of three or four constants,
    // for which SQLite builds a temporary b-tree every time a statement checks them (a sale checked
    // three: about a quarter of the writer's work). The values allowed are the same.
    Step::Rebuild(&["registrations", "outbox"]),
    // 3: the outbox's state index holds only pending and dead messages (`outbox_unsettled`), so a
    // message stored or settled as delivered writes no index entry for it.
    Step::Reindex(&["outbox"]),
    // 4: an email's uniqueness key is also in Unicode normalization form C (`email_key`), not only
    // lower case; the keys of stored addresses are computed again.
    Step::RekeyEmails,
];

// One step for every version after the first.
const _: () = assert!(STEPS.len() as i64 == SCHEMA_VERSION - 1);

enum Step {
    /// Rebuilds these tables, with their indexes, to their definitions in `schema.sql`.
    Rebuild(&'static [&'static str]),
    /// Replaces the indexes of these tables (their columns unchanged) with those of `schema.sql`.
    Reindex(&'static [&'static str]),
    /// Computes `attendees.email_key` again from each stored email (`domain::email_key`).
    RekeyEmails,
}

/// Brings the file to `SCHEMA_VERSION`: applies the schema to a new file, upgrades an older one,
/// refuses a newer one.
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    // A rebuild must not let SQLite act on foreign keys while a table is briefly gone; the setting
    // cannot change inside a transaction. Every pooled connection turns it on again in `configure`.
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    let outcome = in_transaction(conn);
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    outcome
}

fn in_transaction(conn: &Connection) -> Result<(), StoreError> {
    // Checked again inside the write lock, so two processes opening a new file cannot both apply it.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let applied = (|| {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found: version });
        }
        if version == 0 {
            conn.execute_batch(SCHEMA)?;
        } else if version < SCHEMA_VERSION {
            let target = target_schema()?;
            for step in &STEPS[usize::try_from(version - 1).unwrap_or(0)..] {
                match step {
                    Step::Rebuild(tables) => {
                        for table in *tables {
                            rebuild(conn, &target, table)?;
                        }
                    }
                    Step::Reindex(tables) => {
                        for table in *tables {
                            reindex(conn, &target, table)?;
                        }
                    }
                    Step::RekeyEmails => rekey_emails(conn)?,
                }
            }
            let broken: i64 =
                conn.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })?;
            if broken > 0 {
                return Err(StoreError::Corrupt(format!(
                    "{broken} rows point at rows that do not exist after the upgrade"
                )));
            }
            tracing::info!(
                from = version,
                to = SCHEMA_VERSION,
                "upgraded the database schema"
            );
        }
        if version != SCHEMA_VERSION {
            conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        }
        Ok(())
    })();
    match applied {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(_) => {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    applied
}

/// Brings every `email_key` to the current `domain::email_key` of its email. Only keys with a
/// non-ASCII character can change (ASCII ones were already lower case), so only those are read. Two
/// attendees whose addresses now share a key were two people before: the one whose key would change
/// keeps its old key (a warning counts them, without the addresses) rather than the upgrade failing
/// or merging people.
fn rekey_emails(conn: &Connection) -> Result<(), StoreError> {
    let rows: Vec<(i64, String, String)> = conn
        .prepare(
            "SELECT seq, email, email_key FROM attendees WHERE email_key IS NOT NULL \
             AND length(CAST(email_key AS BLOB)) <> length(email_key) ORDER BY seq",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = conn.prepare("UPDATE attendees SET email_key = ?2 WHERE seq = ?1")?;
    let mut kept = 0u64;
    for (seq, email, old) in rows {
        let key = crate::domain::email_key(&email);
        if key == old {
            continue;
        }
        if let Err(e) = update.execute(rusqlite::params![seq, key]) {
            let e = StoreError::from(e);
            if !e.is_unique_violation_of("attendees.email_key") {
                return Err(e);
            }
            kept += 1;
        }
    }
    if kept > 0 {
        tracing::warn!(
            attendees = kept,
            "attendees share an email address but for how its accents were composed; their keys were left as they were"
        );
    }
    Ok(())
}

/// `schema.sql` applied to an empty database in memory: where a rebuild reads its definitions.
fn target_schema() -> Result<Connection, StoreError> {
    let fresh = Connection::open_in_memory()?;
    fresh.execute_batch(SCHEMA)?;
    Ok(fresh)
}

/// Rebuilds `table` to its definition in `target`: renames the old table aside, creates the new
/// one and its indexes as `schema.sql` writes them, copies every row (same columns by name, `seq`
/// included, so ids, order and references stay), and drops the old table.
fn rebuild(conn: &Connection, target: &Connection, table: &str) -> Result<(), StoreError> {
    let [(_, create_table)]: [(String, String); 1] = definitions(target, table, "table")?
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("schema.sql has no table {table}")))?;
    let columns = {
        let mut st = conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
        let names = st
            .query_map([table], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        names.join(", ")
    };
    let old = format!("{table}_before_upgrade");
    // Renaming must not rewrite other tables' references to this name (`deliveries` points at
    // `outbox`): they are to point at the new table, which takes the name back.
    conn.execute_batch("PRAGMA legacy_alter_table = ON")?;
    for (index, _) in definitions(conn, table, "index")? {
        conn.execute_batch(&format!("DROP INDEX \"{index}\""))?;
    }
    conn.execute_batch(&format!("ALTER TABLE \"{table}\" RENAME TO \"{old}\""))?;
    conn.execute_batch(&create_table)?;
    conn.execute_batch(&format!(
        "INSERT INTO \"{table}\" ({columns}) SELECT {columns} FROM \"{old}\"; DROP TABLE \"{old}\";"
    ))?;
    for (_, create_index) in definitions(target, table, "index")? {
        conn.execute_batch(&create_index)?;
    }
    conn.execute_batch("PRAGMA legacy_alter_table = OFF")?;
    Ok(())
}

/// Brings the indexes of `table` (the automatic ones of its UNIQUE columns aside) to those `target`
/// has for it: drops each one `target` lacks or defines otherwise, creates each one it lacks. An
/// index both define the same way is left as it is (no work on a large table).
fn reindex(conn: &Connection, target: &Connection, table: &str) -> Result<(), StoreError> {
    let have = definitions(conn, table, "index")?;
    let want = definitions(target, table, "index")?;
    for (index, sql) in &have {
        if !want.iter().any(|w| w.0 == *index && w.1 == *sql) {
            conn.execute_batch(&format!("DROP INDEX \"{index}\""))?;
        }
    }
    for (index, sql) in &want {
        if !have.iter().any(|h| h.0 == *index && h.1 == *sql) {
            conn.execute_batch(sql)?;
        }
    }
    Ok(())
}

/// (name, sql) of the schema objects of one kind that belong to `table` and have SQL of their own.
fn definitions(
    conn: &Connection,
    table: &str,
    kind: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut st = conn.prepare(
        "SELECT name, sql FROM sqlite_schema WHERE tbl_name = ?1 AND type = ?2 AND sql IS NOT NULL",
    )?;
    let rows = st
        .query_map([table, kind], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
