//! weft-master: the agent registry, the allocator and the per-job DAG scheduler.
//!
//! Not built yet: this crate holds the place the architecture gives it
//! (`docs/architecture.md`). The grid issue fills it in.
