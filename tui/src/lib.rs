//! The boxoffice operator console: ratatui + crossterm, and nothing of the box itself.
//!
//! It follows the Elm architecture:
//!
//! - [`data`]: the [`Backend`] trait the console needs (queries in, snapshots out; actions in,
//!   outcomes out) and its plain data types. `boxoffice` implements it in-process and over HTTP.
//! - [`model`]: [`Model`], the closed [`Msg`] enum and [`update`], where all behaviour lives.
//! - [`view`]: [`view`], a pure function from the model to a frame.
//! - [`keys`]: the key map that `update`, the help screen and the command palette share.
//! - [`traffic`]: requests per second, latency percentiles and the cache hit rate of the last
//!   seconds, from successive samples of the box's counters.
//! - [`term`]: the run loop: terminal setup and restore, the worker and input threads, the tick.
//!
//! This crate never imports `boxoffice` (a tidy test keeps it so): the box depends on the console's
//! trait, not the other way round.

pub mod data;
pub mod format;
pub mod keys;
pub mod model;
pub mod term;
pub mod traffic;
pub mod view;

pub use data::{
    Action, AuditFilter, AuditRow, Backend, Dashboard, Data, Deliveries, Done, DoorResult,
    EventChanges, EventDetail, EventFields, EventRow, EventState, Failure, Latency, Message,
    Millis, Origin, OutboxFigures, Query, Seat, SeatState, Traffic,
};
pub use model::{update, Effect, Model, Msg, Options};
pub use term::{restore_terminal, Console, Handle};
pub use view::view;
