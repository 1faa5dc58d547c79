//! weft-master: the agent registry, the allocator and the per-job DAG
//! scheduler, as one state machine behind the master's gRPC services.
//!
//! # Core concepts
//!
//! - [`state::Core`]: the master as one sans-I/O state machine. Agents, jobs,
//!   their actions, stages and task attempts live in it; inputs are plain
//!   values (an agent registered, attempts ended, an action to run, the
//!   clock) and its decisions come out as [`state::Effect`]s (launch these
//!   tasks on that agent in one call, kill those, an action ended).
//! - [`dag`]: cuts a job's lineage into stages: narrow steps pipelined into
//!   one task chain, stages cut at shuffles and joins, map-side combiners and
//!   host-side aggregations chosen per operation.
//! - [`job::JobRun`]: one action's run through its stages: ready tasks,
//!   attempts, retries of host errors, fast failure on guest errors,
//!   recomputation of lost map outputs; placement against a
//!   [`free::FreeIndex`] of the cluster's free task places and memory.
//! - [`launch`]: a stage's task plan becomes the
//!   [`TaskDescriptor`](weft_core::task::TaskDescriptor) an agent runs.
//! - [`ledger::Ledger`]: one record per ended task and driver attempt
//!   (tenant, ids, agent, times, end label, metering); every total the
//!   master reports is a sum of its records, and fuel budgets and tenant
//!   fuel quotas are read from it.
//! - [`persist`]: the state store (redb) that lets a killed master start
//!   again where it stopped: jobs, their drivers' progress and the ledger.
//! - [`node`]: the master process: `Master`, `Artifacts`, `Jobs` and `Driver`
//!   on one port, whose handlers only send commands to the loop that owns
//!   the core and carries out its effects ([`launcher`]: the calls to agents).
//!
//! See `docs/architecture.md` for how a job runs through them.

pub mod dag;
pub mod free;
pub mod ha;
pub mod job;
pub mod launch;
pub mod launcher;
pub mod ledger;
pub mod node;
pub mod persist;
pub(crate) mod service;
pub mod state;
pub mod tenants;
