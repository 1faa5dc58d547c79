//! The heartbeat loop: tell the master the agent is alive and what it runs,
//! every interval the master asked for; register again when told to.
//!
//! A registration with a master of another run (it restarted: the new id's
//! incarnation differs) also kills every attempt of that earlier run, drivers
//! included. No master will ever take their ends (the new one never heard of
//! them), and each holds a slot the new master counts as free: left running,
//! they would make its launches refused until they ended by themselves. Once
//! they have ended, the files of the earlier run's jobs (`<work>/jobs/<job>`)
//! are removed: only their own master removed them, when their drivers ended,
//! and the new one never will.

use super::Shared;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use weft_core::ids::{Incarnation, JobId};

/// Heartbeat every `interval` until the shutdown signal. A failed heartbeat is
/// logged and the next one tried on time (the master declares the agent lost
/// only after several missed intervals); `reregister` registers again, and the
/// master's new interval applies from then on; when it is another master run,
/// the earlier run's attempts are killed and its jobs' files removed.
///
/// Cancel safe: it holds no state worth keeping between beats.
pub(crate) async fn run(shared: Arc<Shared>, mut interval: Duration, mut shutdown: broadcast::Receiver<()>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.recv() => return,
        }
        let beat = async {
            // Best effort: a drop the master misses shows as a cache miss,
            // and the partition is computed then.
            let dropped = shared
                .cache
                .take_dropped()
                .into_iter()
                .map(|k| weft_core::proto::v1::DroppedPartition {
                    job: Some(k.job.into()),
                    dataset: k.dataset.0,
                    partition: k.partition,
                })
                .collect();
            // What runs here, and what ended here but has not reached the
            // master yet: its reconciliation waits for those ends.
            let mut running = shared.running_refs();
            let listed: std::collections::HashSet<_> = running.iter().copied().collect();
            running.extend(shared.master.unsent().into_iter().filter(|t| !listed.contains(t)));
            let answer = shared.master.heartbeat(running, memory(&shared), dropped).await;
            if let Ok(answer) = &answer {
                // Fetches from agents the master lost fail now, not at their timeout.
                shared.peers.set_lost(answer.lost_peers.iter().cloned().collect());
            }
            match answer.map(|a| a.reregister) {
                Ok(false) => None,
                Ok(true) => {
                    let before = shared.master.agent_id();
                    tracing::warn!(agent_id = ?before, "weft.agent.reregister");
                    match shared.master.register().await {
                        Ok(new) => {
                            let run = shared.master.agent_id().map(|id| id.incarnation);
                            if let Some(run) = run
                                && before.map(|id| id.incarnation) != Some(run)
                            {
                                kill_other_runs(&shared, run);
                                tokio::spawn(remove_other_runs(Arc::clone(&shared), run));
                            }
                            Some(new)
                        }
                        Err(status) => {
                            tracing::warn!(%status, "weft.agent.reregister.failed");
                            None
                        }
                    }
                }
                Err(status) => {
                    tracing::warn!(%status, "weft.agent.heartbeat.failed");
                    None
                }
            }
        };
        tokio::select! {
            new = beat => if let Some(new) = new { interval = new },
            _ = shutdown.recv() => return,
        }
    }
}

/// The agent's memory now: its budget, the memory limits running tasks hold
/// against it, and the process's resident set (now and at its peak, from
/// `/proc/self/status`; zero where there is none).
fn memory(shared: &Shared) -> weft_core::proto::v1::AgentMemory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |k| k << 10)
    };
    weft_core::proto::v1::AgentMemory {
        budget_bytes: shared.config.memory.as_u64(),
        held_bytes: shared.memory_held(),
        resident_bytes: kib("VmRSS:"),
        peak_resident_bytes: kib("VmHWM:"),
        cached_memory_bytes: shared.cache.memory_used(),
        cached_disk_bytes: shared.cache.disk_used(),
    }
}

/// Kill every attempt launched by a master run other than `run`.
fn kill_other_runs(shared: &Shared, run: Incarnation) {
    for (key, kill) in shared.running().iter() {
        if key.job().incarnation != run {
            tracing::warn!(task = %key, master_run = %run, "weft.agent.stale_attempt.kill");
            kill.send_replace(true);
        }
    }
}

/// How long killed attempts of an earlier run may take to end before their
/// jobs' files are removed anyway.
const STALE_GRACE: Duration = Duration::from_secs(30);

/// Once no attempt of a run other than `run` is left, remove the directories
/// of jobs of other runs from the work directory; unless the agent has
/// registered with yet another run meanwhile (that registration cleans up).
async fn remove_other_runs(shared: Arc<Shared>, run: Incarnation) {
    let stale = |shared: &Shared| shared.running().keys().any(|k| k.job().incarnation != run);
    let deadline = Instant::now() + STALE_GRACE;
    while stale(&shared) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let removed = tokio::task::spawn_blocking(move || {
        let jobs = shared.blocks.work_dir().join("jobs");
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(&jobs).into_iter().flatten().flatten() {
            let Some(job) = entry.file_name().to_str().and_then(|n| n.parse::<JobId>().ok()) else {
                continue;
            };
            if job.incarnation == run || shared.master.agent_id().map(|id| id.incarnation) != Some(run) {
                continue;
            }
            match shared.blocks.remove_job(&job.into()) {
                Ok(_) => removed.push(job),
                Err(e) => tracing::warn!(error = %e, "weft.agent.stale_job.remove_failed"),
            }
        }
        removed
    })
    .await;
    for job in removed.unwrap_or_default() {
        tracing::warn!(job_id = %job, master_run = %run, "weft.agent.stale_job.removed");
    }
}
