//! weft-master: the agent registry, the allocator and the per-job DAG scheduler.
//!
//! Built so far: [`dag`], which cuts a job's lineage into stages — narrow steps
//! pipelined into one task chain, stages cut at shuffles and joins, map-side
//! combiners and host-side aggregations chosen per operation. The registry,
//! allocator, task scheduling and the gRPC services come with the grid.

pub mod dag;
