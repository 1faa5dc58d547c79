//! End-to-end tests: the real `weft` binary, as separate master and agent
//! processes talking gRPC over loopback, and as `weft local`. Outputs are
//! compared with a plain native computation of the same result.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod access;
mod bad_input;
mod bulk;
mod cache;
mod chaos;
mod cluster;
mod conformance;
mod fairness;
mod faults;
mod ha;
mod isolation;
mod iterative;
mod ops;
mod paths;
mod reservations;
mod restart;
mod s3;
mod shuffle_read;
mod sort;
mod support;
mod tenants;
mod text_input;
mod tls;
mod usage;
