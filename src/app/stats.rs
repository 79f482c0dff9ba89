//! Box-wide figures for the console's dashboard and `GET /api/v1/stats`: counters the writer
//! keeps, the outbox's counts, the size of the database file and how long the app has been open.
//! Request rates, latency percentiles and cache figures are not here: they are `/metrics` series
//! (`crate::metrics`), which the console does not read yet; it shows them as "n/a" rather than guess.

use serde::Serialize;

use super::{App, Result};
use crate::domain::Timestamp;
use crate::store::stats;

/// The dashboard's figures. The outbox part leaves out per-endpoint URLs (admin information): this
/// is readable by operators.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct BoxStats {
    pub at: Timestamp,
    pub started_at: Timestamp,
    pub uptime_seconds: u64,
    /// The database file and its write-ahead log, in bytes.
    pub db_bytes: u64,
    /// Registrations ever made; only grows.
    pub registrations_total: i64,
    /// People checked in now, over every event.
    pub checked_in_total: i64,
    pub outbox: OutboxCounts,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, utoipa::ToSchema)]
pub struct OutboxCounts {
    pub pending_count: i64,
    pub dead_count: i64,
    pub oldest_pending_age_seconds: f64,
    pub processed_total: u64,
    pub failed_total: u64,
    pub dead_total: u64,
}

impl App {
    /// When this app opened its database (its clock): the start of `uptime_seconds`.
    pub fn started_at(&self) -> Timestamp {
        self.opened_at
    }

    pub fn box_stats(&self) -> Result<BoxStats> {
        let at = self.now();
        let totals = self.store.read(stats::totals)?;
        let outbox = self.outbox_stats()?;
        let path = self.store.path();
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let db_bytes = size(path) + size(std::path::Path::new(&wal));
        Ok(BoxStats {
            at,
            started_at: self.opened_at,
            uptime_seconds: u64::try_from((at.millis() - self.opened_at.millis()) / 1000)
                .unwrap_or(0),
            db_bytes,
            registrations_total: totals.registrations,
            checked_in_total: totals.checked_in,
            outbox: OutboxCounts {
                pending_count: outbox.pending_count,
                dead_count: outbox.dead_count,
                oldest_pending_age_seconds: outbox.oldest_pending_age_seconds,
                processed_total: outbox.processed_total,
                failed_total: outbox.failed_total,
                dead_total: outbox.dead_total,
            },
        })
    }
}
