//! Box-wide counters for the console's dashboard and `GET /api/v1/stats`: cheap reads of the
//! counters the writer already keeps, never a scan of the registrations.

use rusqlite::Connection;

use super::StoreError;

/// Counters over the whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Registrations ever made (the largest `seq`: rows are never deleted), so it only grows.
    pub registrations: i64,
    /// People checked in now at the events that are open (published): the door's live counters.
    /// Finished and cancelled events are left out, so this reads a few rows of the status index
    /// however many events the file has held.
    pub checked_in: i64,
}

pub fn totals(conn: &Connection) -> Result<Totals, StoreError> {
    let registrations = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM registrations")?
        .query_row([], |r| r.get(0))?;
    let checked_in = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(checked_in), 0) FROM events WHERE status = 'published'",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(Totals {
        registrations,
        checked_in,
    })
}
