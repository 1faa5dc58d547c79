//! The heartbeat loop: tell the master the agent is alive and what it runs,
//! every interval the master asked for; register again when told to.

use super::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Heartbeat every `interval` until the shutdown signal. A failed heartbeat is
/// logged and the next one tried on time (the master declares the agent lost
/// only after several missed intervals); `reregister` registers again, and the
/// master's new interval applies from then on.
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
                        Ok(new) => Some(new),
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
