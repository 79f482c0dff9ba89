//! The integration tests: one binary, a module per area, real HTTP on 127.0.0.1 and real SQLite files.

mod audit;
mod auth;
mod bad_input;
mod cli;
mod console;
mod door;
mod hardening;
mod health;
mod hosts;
mod idempotency;
mod layers;
mod limits;
mod logs;
mod metrics;
mod model;
mod onsale;
mod openapi;
mod personal;
mod plans;
mod reads;
mod schemathesis;
mod service;
mod support;
mod tokens;
mod webhooks;
mod writer;
