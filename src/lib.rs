//! boxoffice: a venue's box office in one binary. The crate in reading order:
//!
//! - [`domain`]: pure types and rules (ids, events, attendees, registrations, seat decisions); no IO.
//! - [`store`]: every SQL statement, the reader pool, and the one writer thread with group commit.
//! - [`app`]: one method per use case; sequences store, outbox rows and audit rows in one transaction.
//! - [`cache`]: the read cache: LRUs per kind with TTLs, invalidated exactly by each commit.
//! - [`http`]: the JSON API: route table, thin handlers, problem documents, hardening.
//! - [`outbox`]: the webhook processor: delivers the outbox, signed, at least once, ordered per aggregate.
//! - [`console`]: the operator console's backend: implements the `tui` crate's trait in-process and over HTTP.
//! - [`config`]: defaults -> TOML file -> `BOXOFFICE_*` environment -> validation.
//! - [`metrics`]: the Prometheus text of `/metrics`.
//! - [`demo`]: the demo data loaded on an empty database by a bare `boxoffice`.
//!
//! Dependencies point one way: `domain <- store <- app <- {http, outbox, console}`. Only `store` holds SQL; only `http`
//! knows request bodies, headers and status codes.

pub mod app;
pub mod cache;
pub mod config;
pub mod console;
pub mod demo;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod outbox;
pub mod store;
