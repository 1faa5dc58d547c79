//! The gRPC contract (`proto/weft/v1/*.proto`), generated at build time, and
//! the one place where its messages turn into domain types and back.
//!
//! Services: `Agent` (launch and kill tasks), `Blocks` (shuffle blocks for
//! peers), `Master` (agent registration, heartbeats, task updates), `Jobs`
//! (clients), `Driver` (a driver task's dataset definitions and actions) and
//! `Artifacts` (the master-hosted component store). Every RPC carries the
//! [`PROTOCOL_VERSION`] and a token in its metadata.

pub mod auth;
mod convert;
mod descriptor;
mod plan;
pub mod tls;

pub use convert::{ProtoError, job_id, task_state};
pub use descriptor::DescriptorError;

/// The wire protocol version; the master refuses agents that speak another.
/// 2: tenants from tokens (no tenant in `SubmitRequest`), authenticated
/// `Artifacts` and `Blocks`, map-output tables and job capabilities in
/// `LaunchTasks`.
pub const PROTOCOL_VERSION: u32 = 2;

/// Metadata key carrying [`PROTOCOL_VERSION`] on every RPC.
pub const PROTOCOL_HEADER: &str = "weft-protocol";

/// The metadata key a driver's calls carry its attempt number in: the
/// master refuses the calls of an attempt it has replaced (its agent was
/// lost and came back), so that only one run of a job's driver acts.
pub const DRIVER_ATTEMPT_HEADER: &str = "weft-driver-attempt";

/// The generated messages, clients and servers of `weft.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic, rust_2018_idioms, unreachable_pub)]
#[allow(rustdoc::invalid_html_tags, rustdoc::bare_urls, rustdoc::broken_intra_doc_links)]
pub mod v1 {
    tonic::include_proto!("weft.v1");
}
