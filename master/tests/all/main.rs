//! weft-master's integration tests: real gRPC over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod agents;
mod driver;
mod node;
mod public;
