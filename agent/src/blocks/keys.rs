//! The capabilities of the jobs this agent runs tasks of, as the master sent
//! them: a peer presents its job's capability to fetch that job's shuffle
//! blocks here, and this agent presents it to fetch from peers and to act
//! for a job's driver. With them come the S3 settings of the job's grants
//! that carry their own, which its tasks' reads and writes under those roots
//! use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use weft_core::access::{JobCapability, S3Grants};
use weft_core::ids::JobId;

/// Capabilities (and S3 settings) by job, shared by the `Agent` service
/// (which installs them), the task runner (which fetches and reads with
/// them) and the `Blocks` service (which checks them).
#[derive(Debug, Clone, Default)]
pub struct JobKeys {
    keys: Arc<Mutex<HashMap<JobId, JobCapability>>>,
    s3: Arc<Mutex<HashMap<JobId, Arc<S3Grants>>>>,
}

impl JobKeys {
    /// `job`'s capability is `key`.
    pub fn install(&self, job: JobId, key: JobCapability) {
        lock(&self.keys).insert(job, key);
    }

    /// `job`'s capability, if the master sent it.
    pub fn get(&self, job: JobId) -> Option<JobCapability> {
        lock(&self.keys).get(&job).copied()
    }

    /// The S3 settings of `job`'s grants are `grants`.
    pub fn install_s3(&self, job: JobId, grants: S3Grants) {
        lock(&self.s3).insert(job, Arc::new(grants));
    }

    /// The S3 settings of `job`'s grants (none if the master sent none).
    pub fn s3(&self, job: JobId) -> Arc<S3Grants> {
        lock(&self.s3).get(&job).cloned().unwrap_or_default()
    }

    /// Forget `job`'s capability and S3 settings.
    pub fn remove(&self, job: JobId) {
        lock(&self.keys).remove(&job);
        lock(&self.s3).remove(&job);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
