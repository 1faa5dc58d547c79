//! [`ExecError`]: what can fail around the guest, and the one mapping from it
//! to the attempt's [`EndReason`].
//!
//! The guest's own failures (traps, fuel, deadline, memory, its errors) are
//! classified by the sandbox. Everything the executor does around it — reading
//! input, fetching shuffle blocks, writing and committing output — fails with
//! an `ExecError`, which always ends the attempt as [`EndReason::HostError`]
//! (retryable) with a message naming what failed, or, when the task's
//! deadline passed while the host was still at such work, what stalled
//! ([`ExecError::Stalled`]). A shuffle fetch failure is
//! kept apart ([`ExecError::FetchFailed`]) so that the outcome can tell the
//! scheduler to recompute the lost map output rather than retry the reduce.

use super::spec::SpecError;
use crate::PoolClosed;
use crate::shuffle::{BlockId, FetchError, ShuffleError};
use weft_core::io::IoError;
use weft_core::metering::EndReason;

/// A failure of the host side of a task attempt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The spec does not fit together.
    #[error("invalid task spec: {0}")]
    Spec(#[from] SpecError),
    /// Reading the text input failed (missing object, storage error, truncated file).
    #[error("reading input failed: {0}")]
    Input(#[source] IoError),
    /// A shuffle block could not be fetched or is invalid; its map output must
    /// be recomputed.
    #[error("shuffle fetch failed for block {block}: {source}")]
    FetchFailed {
        /// The block.
        block: BlockId,
        /// Why.
        #[source]
        source: FetchError,
    },
    /// Merging or aggregating fetched blocks failed.
    #[error("reading shuffle input failed: {0}")]
    ShuffleRead(#[source] ShuffleError),
    /// Writing the shuffle output failed.
    #[error("writing shuffle output failed: {0}")]
    ShuffleWrite(#[source] ShuffleError),
    /// The guest's output is not a well-formed batch of the expected shape.
    #[error("the chain's output is malformed: {0}")]
    Malformed(#[source] weft_codec::DecodeError),
    /// Writing the text output failed (the location is unreachable, not
    /// writable, or the store refused).
    #[error("cannot write part {partition} to {location}: {source}")]
    Output {
        /// The partition whose part file was being written.
        partition: u32,
        /// The output location, as the job named it.
        location: String,
        /// What failed (boxed: an object-store error is large).
        #[source]
        source: Box<IoError>,
    },
    /// Committing the text output failed (including a denied commit: another
    /// attempt of the partition won).
    #[error("cannot commit part {partition} to {location}: {source}")]
    Commit {
        /// The partition being committed.
        partition: u32,
        /// The output location, as the job named it.
        location: String,
        /// What failed (boxed: an object-store error is large).
        #[source]
        source: Box<IoError>,
    },
    /// The task's deadline passed while the host was still reading its input
    /// or writing its output (a slow peer, a slow store): the host's fault,
    /// not the guest's, so the attempt is retried.
    #[error("the deadline of {limit:?} passed while {doing}")]
    Stalled {
        /// The task's deadline.
        limit: std::time::Duration,
        /// The host work under way, naming what it waited on.
        doing: String,
    },
    /// The WebAssembly pool shut down (or the task panicked on it).
    #[error("the task could not run: {0}")]
    Pool(#[from] PoolClosed),
    /// A blocking helper thread panicked or was cancelled.
    #[error("a blocking helper failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl ExecError {
    /// The end reason of an attempt that failed with this error: always a
    /// host error (retryable), its message naming what failed.
    pub fn end_reason(&self) -> EndReason {
        EndReason::HostError { message: self.to_string() }
    }

    /// The block whose fetch failed, when that is the failure.
    pub fn fetch_failed(&self) -> Option<BlockId> {
        match self {
            Self::FetchFailed { block, .. } => Some(*block),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::shuffle::{MapId, ReduceId, ShuffleId};

    #[test]
    fn every_host_failure_is_a_retryable_host_error_naming_its_cause() {
        let block = BlockId::new(ShuffleId(1), MapId(2), 0, ReduceId(3));
        let missing = FetchError::Missing { path: "/x/shuffle_1_2_0.data".into() };
        let cases: Vec<(ExecError, &str)> = vec![
            (ExecError::Spec(SpecError::TextOfPairs), "text output"),
            (ExecError::Input(IoError::NotFound { uri: "file:///in.txt".into(), source: None }), "/in.txt"),
            (ExecError::FetchFailed { block, source: missing }, "shuffle_1_2_0_3"),
            (ExecError::ShuffleWrite(ShuffleError::Unsorted), "writing shuffle output"),
            (ExecError::Pool(PoolClosed), "pool"),
            (
                ExecError::Output {
                    partition: 2,
                    location: "file:///out".into(),
                    source: Box::new(IoError::Local {
                        uri: "file:///out/x".into(),
                        source: std::io::ErrorKind::PermissionDenied.into(),
                    }),
                },
                "cannot write part 2 to file:///out",
            ),
            (
                ExecError::Stalled {
                    limit: std::time::Duration::from_secs(30),
                    doing: "committing part 3 to file:///out".into(),
                },
                "the deadline of 30s passed while committing part 3 to file:///out",
            ),
        ];
        for (err, needle) in cases {
            let end = err.end_reason();
            assert!(end.is_retryable(), "{end:?}");
            let EndReason::HostError { message } = end else { unreachable!() };
            assert!(message.contains(needle), "{message} should name {needle}");
            assert_eq!(err.fetch_failed().is_some(), needle == "shuffle_1_2_0_3");
        }
    }
}
