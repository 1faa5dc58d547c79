//! The loop that owns the scheduler: every change arrives as a [`Command`],
//! after which ready work is placed and launched.

use crate::job::JobRun;
use crate::launch::JobContext;
use crate::scheduler::{DriverEnd, JobResult, Scheduler};
use crate::service::MasterEvent;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use weft_core::ids::AgentId;
use weft_core::proto::v1;
use weft_core::task::TaskKey;

/// What the core loop acts on.
pub enum Command {
    /// An agent's news.
    Event(MasterEvent),
    /// Run one action's job.
    Submit {
        /// Its tasks' shared context.
        ctx: Box<JobContext>,
        /// Its run.
        run: Box<JobRun>,
        /// Gets the job's result.
        reply: oneshot::Sender<JobResult>,
    },
    /// Run a job's driver.
    Driver {
        /// The job.
        job: String,
        /// The driver task.
        spec: Box<v1::TaskSpec>,
        /// Gets the driver's end.
        reply: oneshot::Sender<DriverEnd>,
    },
    /// A launch did not reach its agent.
    LaunchFailed(TaskKey, AgentId, String),
    /// Kill a submitted job: its driver and its actions. Answers whether it had a driver.
    Kill(String, oneshot::Sender<bool>),
    /// Read a submitted job's accumulator (job, name); `None` when the job has no driver.
    Accumulator(String, String, oneshot::Sender<Option<i64>>),
}

/// Run the loop until every sender is gone.
pub async fn run(mut scheduler: Scheduler, tx: mpsc::Sender<Command>, mut rx: mpsc::Receiver<Command>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let command = tokio::select! {
            c = rx.recv() => match c { Some(c) => Some(c), None => return },
            _ = tick.tick() => None,
        };
        match command {
            Some(Command::Event(e)) => scheduler.on_event(&e),
            Some(Command::Submit { ctx, run, reply }) => forward(scheduler.submit(*ctx, *run), reply),
            Some(Command::Driver { job, spec, reply }) => {
                forward(scheduler.submit_driver(&job, *spec), reply)
            }
            Some(Command::LaunchFailed(key, agent, error)) => scheduler.on_launch_failed(&key, agent, &error),
            Some(Command::Kill(job, reply)) => {
                let _ = reply.send(scheduler.kill(&job));
            }
            Some(Command::Accumulator(job, name, reply)) => {
                let _ = reply.send(scheduler.accumulator(&job, &name));
            }
            None => {}
        }
        for chore in scheduler.take_chores() {
            tokio::spawn(async move {
                if let Err(e) = chore.await {
                    tracing::debug!(error = %e, "an agent missed a kill or clean-up");
                }
            });
        }
        for (key, agent, launch) in scheduler.schedule() {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Err(e) = launch.await {
                    let _ = tx.send(Command::LaunchFailed(key, agent, e)).await;
                }
            });
        }
    }
}

fn forward<T: Send + 'static>(rx: oneshot::Receiver<T>, reply: oneshot::Sender<T>) {
    tokio::spawn(async move {
        if let Ok(v) = rx.await {
            let _ = reply.send(v);
        }
    });
}

/// Relay the `Master` service's events into the loop.
pub async fn relay(mut events: mpsc::Receiver<MasterEvent>, tx: mpsc::Sender<Command>) {
    while let Some(e) = events.recv().await {
        if tx.send(Command::Event(e)).await.is_err() {
            return;
        }
    }
}
