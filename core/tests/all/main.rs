//! weft-core integration tests, one binary (as wasmtime does) to keep link time down.
//!
//! The S3 tests start a real S3-compatible server (moto) on a free loopback port; it is
//! installed by `ci/setup-test-services.sh`, which `cargo xtask test` runs first. The
//! HTTP tests serve artifacts from an in-process axum server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod artifact_cache;
mod artifact_grpc;
mod artifact_resolver;
mod artifact_store;
mod io_commit;
mod io_splits;
mod support;
