//! The integration tests: one binary, a module per area, real HTTP on 127.0.0.1 and real SQLite files.

mod auth;
mod bad_input;
mod cli;
mod console;
mod door;
mod hardening;
mod health;
mod idempotency;
mod layers;
mod model;
mod onsale;
mod support;
mod webhooks;
mod writer;
