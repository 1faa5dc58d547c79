//! The heartbeat loop: tell the master the agent is alive and what it runs,
//! every interval the master asked for; register again when told to.
//!
//! A registration with a master of another run (it restarted: the new id's
//! incarnation differs) also kills every attempt of that earlier run, drivers
//! included. No master will ever take their ends (the new one never heard of
//! them), and each holds a slot the new master counts as free: left running,
//! they would make its launches refused until they ended by themselves.

use super::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use weft_core::ids::Incarnation;

/// Heartbeat every `interval` until the shutdown signal. A failed heartbeat is
/// logged and the next one tried on time (the master declares the agent lost
/// only after several missed intervals); `reregister` registers again, and the
/// master's new interval applies from then on; attempts of another master run
/// are killed then.
///
/// Cancel safe: it holds no state worth keeping between beats.
pub(crate) async fn run(shared: Arc<Shared>, mut interval: Duration, mut shutdown: broadcast::Receiver<()>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.recv() => return,
        }
        let beat = async {
            match shared.master.heartbeat(shared.running_refs()).await {
                Ok(false) => None,
                Ok(true) => {
                    tracing::warn!(agent_id = ?shared.master.agent_id(), "weft.agent.reregister");
                    match shared.master.register().await {
                        Ok(new) => {
                            if let Some(id) = shared.master.agent_id() {
                                kill_other_runs(&shared, id.incarnation);
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

/// Kill every attempt launched by a master run other than `run` (none when
/// the agent registered again with the same run, e.g. after being lost).
fn kill_other_runs(shared: &Shared, run: Incarnation) {
    for (key, kill) in shared.running().iter() {
        if key.job().incarnation != run {
            tracing::warn!(task = %key, master_run = %run, "weft.agent.stale_attempt.kill");
            kill.send_replace(true);
        }
    }
}
