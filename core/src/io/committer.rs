//! [`OutputCommitter`]: the commit protocol of text output (Hadoop's
//! `FileOutputCommitter`, algorithm v1). The protocol is described in the
//! [module docs](super#the-commit-protocol).

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutPayload};

use super::error::IoError;
use super::location::DataLocation;
use super::writer::TextPartWriter;

/// Directory of in-progress output, below the output location.
pub const TEMPORARY_DIR: &str = "_temporary";

/// Marker written in the output location when every part is in place.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// Part files moved concurrently by [`OutputCommitter::commit_job`].
const MOVE_CONCURRENCY: usize = 8;

/// The name of partition `partition`'s part file: `part-00007`.
pub fn part_name(partition: u32) -> String {
    format!("part-{partition:05}")
}

/// The partition of a part file's path (`…/part-00007` → 7).
fn partition_of(path: &Path) -> Option<u32> {
    path.filename()?.strip_prefix("part-")?.parse().ok()
}

/// Writes text output to a location so that it appears complete or not at all.
///
/// Stateless: the driver and every task may build their own committer for the same
/// location; all state lives in the store under `_temporary/`.
///
/// Cancellation and crashes: every step leaves the store in a state from which the
/// same step can be redone (`commit_task` by the winning attempt, `commit_job`,
/// `abort_job`), so a cancelled call is handled like a crash: call it again, or abort.
#[derive(Debug, Clone)]
pub struct OutputCommitter {
    location: DataLocation,
}

impl OutputCommitter {
    /// A committer for output at `location`.
    pub fn new(location: DataLocation) -> Self {
        Self { location }
    }

    /// The output location.
    pub fn location(&self) -> &DataLocation {
        &self.location
    }

    fn store(&self) -> &dyn ObjectStore {
        self.location.store().as_ref()
    }

    fn temporary(&self) -> Path {
        self.location.path().child(TEMPORARY_DIR)
    }

    fn attempt_path(&self, partition: u32, attempt: u32) -> Path {
        self.temporary().child(attempt.to_string()).child(part_name(partition))
    }

    fn claim_path(&self, partition: u32) -> Path {
        self.temporary().child("claims").child(part_name(partition))
    }

    fn committed_path(&self, partition: u32) -> Path {
        self.temporary().child("committed").child(part_name(partition))
    }

    fn final_path(&self, partition: u32) -> Path {
        self.location.path().child(part_name(partition))
    }

    fn error(&self, path: &Path, source: object_store::Error) -> IoError {
        IoError::from_store(self.location.uri_of(path), source)
    }

    /// Checks that the output location holds nothing: no object at it and none below
    /// it, a leftover `_temporary/` included. Otherwise [`IoError::OutputExists`].
    #[tracing::instrument(name = "weft.core.io.setup_job", skip_all, fields(uri = %self.location))]
    pub async fn setup_job(&self) -> Result<(), IoError> {
        let path = self.location.path();
        if !path.as_ref().is_empty() {
            match self.store().head(path).await {
                Ok(_) => return Err(self.exists(path)),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => return Err(self.error(path, source)),
            }
        }
        match self.store().list(Some(path)).next().await {
            None | Some(Err(object_store::Error::NotFound { .. })) => Ok(()),
            Some(Ok(meta)) => Err(self.exists(&meta.location)),
            Some(Err(source)) => Err(self.error(path, source)),
        }
    }

    fn exists(&self, found: &Path) -> IoError {
        IoError::OutputExists { uri: self.location.uri(), found: self.location.uri_of(found) }
    }

    /// A writer of `_temporary/<attempt>/part-<partition:05>`.
    pub fn task_writer(&self, partition: u32, attempt: u32) -> TextPartWriter {
        let path = self.attempt_path(partition, attempt);
        let uri = self.location.uri_of(&path);
        TextPartWriter::new(std::sync::Arc::clone(self.location.store()), path, uri)
    }

    /// Commits a finished attempt: claims the partition, then copies the attempt's file
    /// to `_temporary/committed/part-<partition:05>`.
    ///
    /// The claim is an object created with a conditional PUT (create only if absent),
    /// so exactly one attempt per partition wins, however many race. Committing the
    /// winning attempt again is a no-op that redoes the copy (safe after a crash); any
    /// other attempt of a committed partition gets [`IoError::CommitDenied`] and must
    /// be discarded. An attempt whose file was never finished is
    /// [`IoError::AttemptNotFound`].
    #[tracing::instrument(name = "weft.core.io.commit_task", skip(self), fields(uri = %self.location))]
    pub async fn commit_task(&self, partition: u32, attempt: u32) -> Result<(), IoError> {
        let from = self.attempt_path(partition, attempt);
        match self.store().head(&from).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => {
                return Err(IoError::AttemptNotFound { uri: self.location.uri(), partition, attempt });
            }
            Err(source) => return Err(self.error(&from, source)),
        }
        let claim = self.claim_path(partition);
        let ours = attempt.to_string();
        let put = self.store().put_opts(&claim, PutPayload::from(ours.clone()), PutMode::Create.into()).await;
        match put {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                let winner = self.read_claim(&claim).await?;
                if winner != ours {
                    return Err(IoError::CommitDenied {
                        uri: self.location.uri(),
                        partition,
                        attempt,
                        winner,
                    });
                }
            }
            Err(source) => return Err(self.error(&claim, source)),
        }
        let to = self.committed_path(partition);
        self.store().copy(&from, &to).await.map_err(|source| self.error(&to, source))?;
        tracing::debug!(partition, attempt, "task committed");
        Ok(())
    }

    /// Settles an attempt whose [`commit_task`](Self::commit_task) was
    /// [`IoError::CommitDenied`]: the partition is done, by the winner. Makes
    /// sure the winner's committed part exists (a winner that died between its
    /// claim and its copy left none: this attempt's file, the same records
    /// for a deterministic task, takes its place), then deletes this
    /// attempt's file. Either way the partition is published once, whole.
    #[tracing::instrument(name = "weft.core.io.settle_denied", skip(self), fields(uri = %self.location))]
    pub async fn settle_denied(&self, partition: u32, attempt: u32) -> Result<(), IoError> {
        let to = self.committed_path(partition);
        // Neither committed nor (by the job's commit) published already.
        if !self.is_there(&to).await? && !self.is_there(&self.final_path(partition)).await? {
            let from = self.attempt_path(partition, attempt);
            self.store().copy(&from, &to).await.map_err(|source| self.error(&to, source))?;
            tracing::warn!(
                partition,
                attempt,
                "the winning attempt left no committed part; this one's took its place"
            );
        }
        self.abort_task(partition, attempt).await
    }

    async fn is_there(&self, path: &Path) -> Result<bool, IoError> {
        match self.store().head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(self.error(path, source)),
        }
    }

    async fn read_claim(&self, claim: &Path) -> Result<String, IoError> {
        let result = self.store().get(claim).await;
        let bytes = match result {
            Ok(got) => got.bytes().await,
            Err(source) => Err(source),
        }
        .map_err(|source| self.error(claim, source))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Deletes an attempt's file (a failed or losing attempt); missing is fine.
    pub async fn abort_task(&self, partition: u32, attempt: u32) -> Result<(), IoError> {
        let path = self.attempt_path(partition, attempt);
        match self.store().delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(self.error(&path, source)),
        }
    }

    /// Publishes the job's `partitions` parts: checks that every partition
    /// `0..partitions` was committed, moves each committed part to
    /// `<location>/part-<n>`, writes `_SUCCESS`, then deletes `_temporary/`.
    ///
    /// All or nothing: when any partition has neither a committed nor an already
    /// published part, nothing is moved, the job is rolled back as by
    /// [`abort_job`](Self::abort_job) (so the location is empty again), and the
    /// result is [`IoError::IncompleteOutput`] naming the missing partitions. Claims
    /// of partitions outside `0..partitions` are not the job's: they are never
    /// published, and go with `_temporary/`.
    ///
    /// Idempotent: after a crash, calling it again finishes the job (parts already
    /// moved are recognised). A failure of the store part-way (not an incomplete
    /// output) leaves the parts where they are: call it again, or abort.
    #[tracing::instrument(name = "weft.core.io.commit_job", skip(self), fields(uri = %self.location))]
    pub async fn commit_job(&self, partitions: u32) -> Result<(), IoError> {
        let missing = self.missing_partitions(partitions).await?;
        if !missing.is_empty() {
            let err = IoError::IncompleteOutput { uri: self.location.uri(), missing, partitions };
            tracing::warn!(%err, "job output incomplete; rolling back");
            if let Err(rollback) = self.abort_job().await {
                tracing::warn!(%rollback, "rolling back incomplete output failed; call abort_job again");
            }
            return Err(err);
        }
        // By value, not `&u32`: a closure over a reference makes this future's
        // `Send` unprovable to callers in `async_trait` services (rustc #102211).
        futures::stream::iter((0..partitions).map(|partition| self.publish(partition, partitions)))
            .buffer_unordered(MOVE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let success = self.location.path().child(SUCCESS_MARKER);
        self.store()
            .put(&success, PutPayload::default())
            .await
            .map_err(|source| self.error(&success, source))?;
        self.delete_temporary().await?;
        tracing::info!(parts = partitions, "job output committed");
        Ok(())
    }

    /// The partitions of `0..partitions` with neither a committed part (below
    /// `_temporary/committed/`) nor a published one (a retried `commit_job`), sorted.
    async fn missing_partitions(&self, partitions: u32) -> Result<Vec<u32>, IoError> {
        let mut present = vec![false; partitions as usize];
        let committed = self.temporary().child("committed");
        for dir in [&committed, self.location.path()] {
            for partition in self.parts_in(dir).await? {
                if let Some(seen) = present.get_mut(partition as usize) {
                    *seen = true;
                }
            }
        }
        Ok((0..partitions).filter(|&p| !present[p as usize]).collect())
    }

    /// The partitions whose part file is directly in `dir` (not below it).
    async fn parts_in(&self, dir: &Path) -> Result<Vec<u32>, IoError> {
        let listed = match self.store().list_with_delimiter(Some(dir)).await {
            Ok(listed) => listed.objects,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(source) => return Err(self.error(dir, source)),
        };
        Ok(listed.iter().filter_map(|meta| partition_of(&meta.location)).collect())
    }

    async fn publish(&self, partition: u32, partitions: u32) -> Result<(), IoError> {
        let (from, to) = (self.committed_path(partition), self.final_path(partition));
        match self.store().rename(&from, &to).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => match self.store().head(&to).await {
                Ok(_) => Ok(()),
                // Checked just before: only a concurrent abort gets here.
                Err(object_store::Error::NotFound { .. }) => Err(IoError::IncompleteOutput {
                    uri: self.location.uri(),
                    missing: vec![partition],
                    partitions,
                }),
                Err(source) => Err(self.error(&to, source)),
            },
            Err(source) => Err(self.error(&from, source)),
        }
    }

    /// The partitions with a claim, i.e. committed (or being committed) by a task.
    async fn claimed_partitions(&self) -> Result<Vec<u32>, IoError> {
        let claims = self.temporary().child("claims");
        let listed: Vec<_> = match self.store().list(Some(&claims)).try_collect().await {
            Ok(listed) => listed,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(source) => return Err(self.error(&claims, source)),
        };
        Ok(listed.iter().filter_map(|meta| partition_of(&meta.location)).collect())
    }

    /// Whether the job's output was committed in full (`_SUCCESS` is there):
    /// what a master that restarted asks of an output its action set up.
    pub async fn is_committed(&self) -> Result<bool, IoError> {
        let success = self.location.path().child(SUCCESS_MARKER);
        match self.store().head(&success).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(self.error(&success, source)),
        }
    }

    /// Abandons the job: removes what it published, if it got that far without
    /// writing `_SUCCESS` (the parts of claimed partitions), then `_temporary/`.
    /// A job that did write `_SUCCESS` is complete and only loses its `_temporary/`.
    #[tracing::instrument(name = "weft.core.io.abort_job", skip_all, fields(uri = %self.location))]
    pub async fn abort_job(&self) -> Result<(), IoError> {
        let success = self.location.path().child(SUCCESS_MARKER);
        let committed = match self.store().head(&success).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(source) => return Err(self.error(&success, source)),
        };
        if !committed {
            for partition in self.claimed_partitions().await? {
                let path = self.final_path(partition);
                match self.store().delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(source) => return Err(self.error(&path, source)),
                }
            }
        }
        self.delete_temporary().await?;
        if let Some(dir) = self.location.local_path().filter(|_| !committed) {
            // Leaves no empty output directory behind; fails harmlessly when not empty.
            let _ = tokio::fs::remove_dir(dir).await;
        }
        Ok(())
    }

    /// Deletes every object below `_temporary/` (and, locally, its directories).
    async fn delete_temporary(&self) -> Result<(), IoError> {
        let temporary = self.temporary();
        let paths = self.store().list(Some(&temporary)).map_ok(|meta| meta.location).boxed();
        let deleted = self.store().delete_stream(paths).try_collect::<Vec<Path>>().await;
        match deleted {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(self.error(&temporary, source)),
        }
        if let Some(dir) = self.location.child(TEMPORARY_DIR).local_path() {
            match tokio::fs::remove_dir_all(dir).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(IoError::Local { uri: dir.display().to_string(), source }),
            }
        }
        Ok(())
    }
}
