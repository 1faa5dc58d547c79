//! The capabilities of the jobs this agent runs tasks of, as the master sent
//! them: a peer presents its job's capability to fetch that job's shuffle
//! blocks here, and this agent presents it to fetch from peers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use weft_core::access::JobCapability;

/// Capabilities by job id (as the block store names jobs), shared by the
/// `Agent` service (which installs them), the task runner (which fetches
/// with them) and the `Blocks` service (which checks them).
#[derive(Debug, Clone, Default)]
pub struct JobKeys {
    keys: Arc<Mutex<HashMap<String, JobCapability>>>,
}

impl JobKeys {
    /// `job`'s capability is `key`.
    pub fn install(&self, job: &str, key: JobCapability) {
        self.lock().insert(job.to_string(), key);
    }

    /// `job`'s capability, if the master sent it.
    pub fn get(&self, job: &str) -> Option<JobCapability> {
        self.lock().get(job).copied()
    }

    /// Forget `job`'s.
    pub fn remove(&self, job: &str) {
        self.lock().remove(job);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, JobCapability>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
