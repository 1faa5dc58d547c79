//! The capabilities of the jobs this agent runs tasks of, as the master sent
//! them: a peer presents its job's capability to fetch that job's shuffle
//! blocks here, and this agent presents it to fetch from peers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use weft_core::access::JobCapability;
use weft_core::ids::JobId;

/// Capabilities by job, shared by the
/// `Agent` service (which installs them), the task runner (which fetches
/// with them) and the `Blocks` service (which checks them).
#[derive(Debug, Clone, Default)]
pub struct JobKeys {
    keys: Arc<Mutex<HashMap<JobId, JobCapability>>>,
}

impl JobKeys {
    /// `job`'s capability is `key`.
    pub fn install(&self, job: JobId, key: JobCapability) {
        self.lock().insert(job, key);
    }

    /// `job`'s capability, if the master sent it.
    pub fn get(&self, job: JobId) -> Option<JobCapability> {
        self.lock().get(&job).copied()
    }

    /// Forget `job`'s.
    pub fn remove(&self, job: JobId) {
        self.lock().remove(&job);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, JobCapability>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
