//! The block service: how shuffle blocks leave the agent that wrote them.
//!
//! A map task's [`ShuffleWriter`](crate::shuffle::ShuffleWriter) leaves one
//! data file and one index per map output in its job's shuffle directory. The
//! reduce tasks that need those blocks usually run on other agents, so every
//! agent runs a `Blocks` gRPC service over its files, and reduce tasks read
//! through a [`RemoteFetcher`].
//!
//! # Serving ([`BlockStore`], [`BlockService`], [`serve_blocks`])
//!
//! 1. **Layout.** Shuffle files live in `<work_dir>/jobs/<job_id>/shuffle/`
//!    under the writer's names, which hold the map task's attempt (see the
//!    [shuffle's files](crate::shuffle#files)). Requests name a job by its
//!    typed `JobRef`, parsed once (a missing or malformed one is
//!    `INVALID_ARGUMENT`); the directory name is made from the parsed id, and
//!    a [`JobId`] admits only `[A-Za-z0-9._-]`, not starting with `.`, so no
//!    name can reach `..` or an absolute path.
//! 2. **Fetch.** `FetchBlock(job, shuffle, map, attempt, reduce)` parses the
//!    index of that map attempt's output, reads the block's *stored* bytes
//!    (still lz4-compressed if the map output is) and verifies them against
//!    the index's crc32c before sending anything, so a damaged disk is
//!    reported as `DATA_LOSS` by the agent that owns it instead of
//!    travelling. The bytes go out in chunks of [`CHUNK`] (1 MiB): the first
//!    chunk announces the length, the last carries the checksum and the
//!    compression.
//! 3. **Lifetime.** Only callers with the cluster token and the job's
//!    capability ([`JobKeys`], from the master with the job's tasks) are
//!    served. The service knows nothing of tasks. A map output is
//!    served from the moment the writer renames its index into place until
//!    `RemoveJob` deletes the job's directory, however long ago its task
//!    ended (Spark's external shuffle service). A missing job, map output
//!    (of the attempt asked for) or partition is `NOT_FOUND`, naming the
//!    block.
//!
//! # Fetching ([`RemoteFetcher`], [`PeerChannels`])
//!
//! 4. **Locate.** The scheduler knows which agent ran each map task. It sends
//!    each agent a shuffle's [`MapTable`](weft_core::task::MapTable) (map →
//!    address, the attempt that wrote it, and block sizes) once, with the
//!    first task there that reads it; [`MapTables`] keeps it until the job
//!    is removed, and a reduce task's fetcher is built from it.
//! 5. **Connect.** One lazily connected HTTP/2 channel per agent address, in a
//!    [`PeerChannels`] pool the agent shares across tasks, so a reducer
//!    reading from a hundred map outputs on one peer uses one connection.
//! 6. **Stay local.** A map output located at the reducer's own address is
//!    read from this agent's [`BlockStore`] on a blocking thread, not through
//!    its own gRPC server: the same index and crc32c checks as the service
//!    makes, then decompression. A missing or corrupt local block is a
//!    [`StoreError`] inside
//!    [`FetchError::Local`](crate::shuffle::FetchError::Local), a fetch
//!    failure like a remote one.
//! 7. **Verify.** Each fetch runs under one timeout (request and stream). The
//!    received bytes must match the announced length and the sender's
//!    checksum, then are decompressed if flagged. The fetcher returns the
//!    block's pair batch, which the [`ShuffleReader`](crate::shuffle::ShuffleReader)
//!    checks for order and merges.
//! 8. **Fail typed.** Connection refused, timeout, `NOT_FOUND`, `DATA_LOSS`,
//!    checksum mismatch and a truncated stream are each a [`RemoteError`]
//!    inside [`FetchError::Remote`](crate::shuffle::FetchError::Remote), so the
//!    reader reports `FetchFailed { block, .. }` and the scheduler recomputes
//!    that map output rather than retrying the reduce task against a dead peer.

mod cache;
mod keys;
mod remote;
mod service;
mod store;
mod tables;

pub use cache::{CacheError, CacheKey, CacheStore, Kept};
pub use keys::JobKeys;
pub use remote::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_FETCH_TIMEOUT, PeerChannels, RemoteError, RemoteFetcher};
pub use service::{BlockService, CHUNK, forget_job, serve_blocks, status};
pub use store::{BlockStore, InvalidJobId, JobId, MAX_JOB_ID_LEN, MapFiles, StoreError, StoredBlock};
pub use tables::MapTables;
