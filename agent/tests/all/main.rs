//! weft-agent's integration tests, one binary (as wasmtime does) to keep link time down.
//!
//! They run real guest components built from `tests/guests/` by the project's own
//! tooling (see `support::guest`), in the real sandbox, with real limits.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod blocks;
mod driver;
mod ends;
mod executor;
mod hostile;
mod load;
mod metering;
mod node;
mod params;
mod support;
