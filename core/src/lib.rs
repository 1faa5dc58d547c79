//! weft-core: the domain shared by weft's master, agents and CLI.
//!
//! # Modules
//!
//! - [`artifact`]: the content-addressed artifact store. User code ships as WebAssembly
//!   components addressed by their blake3 [`Digest`](artifact::Digest); this module
//!   stores them ([`ArtifactStore`](artifact::ArtifactStore)), names them by URI
//!   ([`ArtifactUri`](artifact::ArtifactUri): `blake3:`, `file://`, `s3://`,
//!   `http(s)://`), fetches and verifies them ([`Resolver`](artifact::Resolver)) and
//!   caches them on agents ([`ArtifactCache`](artifact::ArtifactCache)).
//! - [`ids`]: typed ids (`DatasetId`, `StageId`, `ShuffleId`, `PartitionId`) from one macro.
//! - [`plan`]: the logical plan a driver builds — datasets with lineage.
//! - [`task`]: a task attempt's key and its state machine (PENDING → … → FINISHED).
//! - [`proto`]: the gRPC contract, generated from `proto/` without a system `protoc`,
//!   and the one conversion layer between its messages and domain types.
//! - [`io`]: datasets in object stores (`s3://`, `file://`, plain paths): input split
//!   planning, a line reader per split, and the atomic text-output commit protocol.
//! - [`metering`]: the per-task metering record and the typed [`metering::EndReason`]
//!   that says how a task attempt ended.
//! - [`limits`]: the budget of one task (fuel, memory, deadline, log and output sizes).
//!
//! The record and batch codec lives in the dependency-free `weft-codec` crate so that
//! guests compile it too; it is re-exported here as [`codec`].

pub use weft_codec as codec;

pub mod access;
pub mod artifact;
pub mod fold;
pub mod ids;
pub mod io;
pub mod limits;
pub mod metering;
pub mod plan;
pub mod proto;
pub mod range;
pub mod task;
pub mod token;
