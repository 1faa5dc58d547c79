//! weft-master: the agent registry, the allocator and the per-job DAG scheduler.
//!
//! Built so far:
//! - [`dag`]: cuts a job's lineage into stages — narrow steps pipelined into one
//!   task chain, stages cut at shuffles and joins, map-side combiners and
//!   host-side aggregations chosen per operation;
//! - [`job`]: one job's run through its stages — ready tasks, attempts, retries of host
//!   errors, fast failure on guest errors, recomputation of lost map outputs;
//! - [`launch`]: the edge to agents — a stage's task plan becomes the proto `TaskSpec`;
//! - [`launcher`]: launches tasks on agents over gRPC;
//! - [`node`]: the master process — `Master`, `Artifacts`, `Jobs` and `Driver` on one
//!   port, with the loop that owns the scheduler;
//! - [`registry`]: the agents, their resources and health (LOST after missed heartbeats);
//! - [`scheduler`]: places ready tasks of running jobs on free agent slots, launches
//!   them through a `Launcher`, places drivers apart from task slots, applies task and
//!   agent events, answers job waiters;
//! - [`service`]: the `Master` gRPC service agents register, heartbeat and report to,
//!   checked for protocol version and cluster token, feeding [`service::MasterEvent`]s
//!   to the scheduler.
//!
//! Next: the agent process wired to it end to end, the CLI, DRF allocation across tenants.

pub mod dag;
pub mod job;
pub mod launch;
pub mod launcher;
pub mod node;
pub mod registry;
pub mod scheduler;
pub mod service;
