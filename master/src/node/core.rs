//! The I/O layer around the [`Core`]: one loop owns it; every change arrives
//! as a [`Command`], commands are applied in batches, then ready work is
//! placed once, what must survive a restart is committed to the state store,
//! and only then are the core's [`Effect`]s carried out (launch and kill
//! calls to agents, answers to waiting actions, job views to watchers) and
//! the answers that wait for the commit sent ([`CoreHandle::call_kept`]).

use crate::dag::JobGraph;
use crate::launch::JobContext;
use crate::launcher::Launcher;
use crate::persist::{Store, Writes};
use crate::state::{Core, Effect, JobResult, JobView, Refused, TaskEnd};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::Status;
use weft_core::access::{JobCapability, S3Grants};
use weft_core::artifact::ArtifactStore;
use weft_core::ids::{ActionId, AgentId, JobId};
use weft_core::proto::v1;
use weft_core::task::{MapTable, TaskDescriptor, TaskKey};

/// A change for the core, or a question to it.
pub(crate) enum Command {
    /// Run `f` on the core (a query or a simple change; it answers through
    /// its own channel).
    With(Box<dyn FnOnce(&mut Core) + Send>),
    /// Run `f` on the core; what it returns runs once the state store has
    /// kept the change (it sends the answer).
    Kept(Box<dyn FnOnce(&mut Core) -> Reply + Send>),
    /// Run an action; `reply` gets its end.
    RunAction { ctx: Box<JobContext>, graph: Box<JobGraph>, reply: oneshot::Sender<(ActionId, JobResult)> },
    /// Follow a job's view; `None` for an unknown job.
    Watch { job: JobId, reply: oneshot::Sender<Option<watch::Receiver<JobView>>> },
    /// Task attempts on an agent ended; `reply` gets `false` for an unknown agent.
    TaskEnds { agent: AgentId, ends: Vec<TaskEnd>, reply: oneshot::Sender<bool> },
    /// An agent did not start some tasks it was sent.
    Refused { agent: AgentId, refused: Vec<(TaskKey, Refused, String)> },
    /// A launch call to an agent ended: `ended` says how (`None`: every
    /// task started), `delivered` which attempts the agent took, and the
    /// agent's next batch may go.
    Launched { agent: AgentId, ended: Option<Box<Command>>, delivered: Vec<TaskKey> },
    /// A launch did not reach its agent.
    LaunchFailed { agent: AgentId, tasks: Vec<TaskKey>, error: String },
}

/// An answer sent once the state store has kept what led to it.
pub(crate) type Reply = Box<dyn FnOnce() + Send>;

/// How handlers reach the core.
#[derive(Clone)]
pub(crate) struct CoreHandle {
    tx: mpsc::Sender<Command>,
}

fn gone() -> Status {
    Status::unavailable("the master is shutting down")
}

impl CoreHandle {
    /// Send `command`.
    pub(crate) async fn send(&self, command: Command) -> Result<(), Status> {
        self.tx.send(command).await.map_err(|_| gone())
    }

    /// Run `f` on the core and return what it returns.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::With(Box::new(move |core| {
            let _ = reply.send(f(core));
        })))
        .await?;
        answer.await.map_err(|_| gone())
    }

    /// Run `f` on the core and return what it returns once the state store
    /// has kept what `f` changed: for a change a client or a driver must not
    /// hear of unless it survives a restart (a job accepted, an action's
    /// answer).
    pub(crate) async fn call_kept<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Kept(Box::new(move |core| {
            let value = f(core);
            Box::new(move || {
                let _ = reply.send(value);
            })
        })))
        .await?;
        answer.await.map_err(|_| gone())
    }

    /// Run `f` on the core without waiting (from code that cannot await);
    /// `false` when the loop is gone or its queue is full.
    pub(crate) fn post(&self, f: impl FnOnce(&mut Core) + Send + 'static) -> bool {
        self.tx.try_send(Command::With(Box::new(f))).is_ok()
    }

    /// Run an action to its end.
    pub(crate) async fn run_action(
        &self,
        ctx: JobContext,
        graph: JobGraph,
    ) -> Result<(ActionId, JobResult), Status> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::RunAction { ctx: Box::new(ctx), graph: Box::new(graph), reply }).await?;
        answer.await.map_err(|_| gone())
    }
}

/// Most commands applied before one scheduling round.
const BATCH: usize = 4096;

/// How often a running job's watchers hear of its progress, at most: a
/// view costs the core a copy of the job's stages, totals and driver log,
/// and the watcher a message, so thousands of task ends a second must not
/// each send one. A job's end is sent at once.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// How often the ledger's new records are committed when no job changed.
const RECORDS_EVERY: Duration = Duration::from_secs(1);

/// Start the loop; it runs until every handle is gone or `stop` turns
/// true. With `state`, what must survive a restart is committed there (and
/// the store is closed when the loop ends).
pub(crate) fn start(
    core: Core,
    launcher: Arc<dyn Launcher>,
    store: ArtifactStore,
    state: Option<Store>,
    tick: Duration,
    stop: watch::Receiver<bool>,
) -> (CoreHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(BATCH);
    let handle = CoreHandle { tx: tx.clone() };
    let io = Io {
        core,
        launcher,
        store,
        tx,
        waiters: HashMap::new(),
        watchers: HashMap::new(),
        unwatched: std::collections::BTreeSet::new(),
        watched: Instant::now(),
        launching: HashMap::new(),
        state,
        unkept: Writes::default(),
        kept_at: Instant::now(),
        after_kept: Vec::new(),
    };
    let running = tokio::spawn(io.run(rx, tick, stop));
    (handle, running)
}

struct Io {
    core: Core,
    launcher: Arc<dyn Launcher>,
    /// The master's artifact store, where blocks of driver traffic live.
    store: ArtifactStore,
    /// For launch results coming back.
    tx: mpsc::Sender<Command>,
    waiters: HashMap<ActionId, oneshot::Sender<(ActionId, JobResult)>>,
    watchers: HashMap<JobId, watch::Sender<JobView>>,
    /// Watched jobs that changed since their watchers last heard.
    unwatched: std::collections::BTreeSet<JobId>,
    /// When watchers last heard of progress.
    watched: Instant,
    /// Agents with a launch call in flight, and what waits to go to each
    /// next. One call at a time per agent keeps launches in order, so a
    /// map-output table reaches an agent before (or with) every task that
    /// reads it; what is placed meanwhile goes in one larger call.
    launching: HashMap<AgentId, Option<Queued>>,
    /// The state store, if the master keeps its state.
    state: Option<Store>,
    /// Writes the store refused, tried again with the next ones.
    unkept: Writes,
    /// When the ledger's records were last committed.
    kept_at: Instant,
    /// Answers waiting for the next commit.
    after_kept: Vec<Reply>,
}

/// Launches waiting for an agent's call in flight.
struct Queued {
    address: String,
    tasks: Vec<TaskDescriptor>,
    tables: Vec<Arc<MapTable>>,
    access: Vec<(JobId, JobCapability)>,
    s3: Vec<(JobId, Arc<S3Grants>)>,
}

impl Io {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, tick: Duration, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                c = rx.recv() => match c {
                    Some(c) => self.apply(c),
                    None => {
                        self.keep(true).await;
                        return;
                    }
                },
                _ = ticker.tick() => {
                    self.core.tick(Instant::now());
                    self.publish();
                }
                changed = stop.changed() => {
                    let stopping = changed.is_err() || *stop.borrow_and_update();
                    if stopping {
                        self.keep(true).await;
                        return;
                    }
                }
            }
            for _ in 1..BATCH {
                match rx.try_recv() {
                    Ok(c) => self.apply(c),
                    Err(_) => break,
                }
            }
            self.core.schedule(Instant::now());
            let records = self.kept_at.elapsed() >= RECORDS_EVERY;
            self.keep(records).await;
            self.carry_out();
            for answer in self.after_kept.drain(..) {
                answer();
            }
        }
    }

    /// Commit what the core says must survive a restart (with the ledger's
    /// new records, when `records` or with jobs). A store that refuses
    /// (disk full, gone) is logged, and what it refused is tried again with
    /// the next commit; the master goes on serving.
    async fn keep(&mut self, records: bool) {
        let Some(state) = self.state.clone() else {
            self.core.skip_writes();
            return;
        };
        let new = self.core.take_writes(records);
        if new.is_empty() && (self.unkept.is_empty() || !records) {
            return;
        }
        let mut writes = std::mem::take(&mut self.unkept);
        writes.merge(new);
        self.kept_at = Instant::now();
        match state.write(writes).await {
            (_, Ok(())) => {}
            (writes, Err(e)) => {
                tracing::error!(error = %e, jobs = writes.jobs.len(), "weft.master.state_store.write_failed");
                self.unkept = writes;
            }
        }
    }

    fn apply(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::With(f) => f(&mut self.core),
            Command::Kept(f) => {
                let answer = f(&mut self.core);
                self.after_kept.push(answer);
            }
            Command::RunAction { ctx, graph, reply } => {
                let action = self.core.run_action(*ctx, *graph);
                self.waiters.insert(action, reply);
            }
            Command::Watch { job, reply } => {
                let rx = self.core.view(job).map(|view| {
                    if view.phase == crate::state::JobPhase::Running {
                        self.watchers.entry(job).or_insert_with(|| watch::channel(view).0).subscribe()
                    } else {
                        // Ended: its last view is final, and nobody keeps the sender.
                        watch::channel(view).1
                    }
                });
                let _ = reply.send(rx);
            }
            Command::TaskEnds { agent, ends, reply } => {
                let _ = reply.send(self.core.task_ends(agent, ends, now));
            }
            Command::Refused { agent, refused } => self.core.launch_refused(agent, refused, now),
            Command::Launched { agent, ended, delivered } => {
                self.core.launch_delivered(agent, &delivered, now);
                if let Some(ended) = ended {
                    self.apply(*ended);
                }
                if let Some(next) = self.launching.remove(&agent).flatten() {
                    self.launch(agent, next);
                }
            }
            Command::LaunchFailed { agent, tasks, error } => {
                self.core.launch_failed(agent, tasks, &error, now)
            }
        }
    }

    /// Send `q` to `agent` now, or after the call in flight to it.
    fn launch(&mut self, agent: AgentId, q: Queued) {
        match self.launching.get_mut(&agent) {
            Some(Some(waiting)) => {
                waiting.tasks.extend(q.tasks);
                waiting.tables.extend(q.tables);
                for a in q.access {
                    if !waiting.access.contains(&a) {
                        waiting.access.push(a);
                    }
                }
                for g in q.s3 {
                    if !waiting.s3.contains(&g) {
                        waiting.s3.push(g);
                    }
                }
                return;
            }
            Some(waiting @ None) => {
                *waiting = Some(q);
                return;
            }
            None => {}
        }
        self.launching.insert(agent, None);
        tracing::debug!(%agent, tasks = q.tasks.len(), "weft.master.launch.send");
        let keys: Vec<TaskKey> = q.tasks.iter().map(|t| t.key).collect();
        let call = self.launcher.launch(agent, &q.address, &q.tasks, &q.tables, &q.access, &q.s3);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let (ended, delivered) = match call.await {
                Ok(refused) if refused.is_empty() => (None, keys),
                Ok(refused) => {
                    let refused = refusals(refused);
                    let out: std::collections::HashSet<TaskKey> = refused.iter().map(|r| r.0).collect();
                    let delivered = keys.into_iter().filter(|k| !out.contains(k)).collect();
                    (Some(Command::Refused { agent, refused }), delivered)
                }
                Err(error) => (Some(Command::LaunchFailed { agent, tasks: keys, error }), Vec::new()),
            };
            let _ = tx.send(Command::Launched { agent, ended: ended.map(Box::new), delivered }).await;
        });
    }

    fn carry_out(&mut self) {
        for effect in self.core.take_effects() {
            match effect {
                Effect::Launch { agent, address, tasks, tables, access, s3 } => {
                    self.launch(agent, Queued { address, tasks, tables, access, s3 });
                }
                Effect::Kill { agent, address, tasks } => {
                    let call = self.launcher.kill(agent, &address, &tasks);
                    tokio::spawn(async move {
                        if let Err(e) = call.await {
                            tracing::debug!(%agent, error = %e, "an agent missed a kill");
                        }
                    });
                }
                Effect::RemoveJob { agent, address, job, dataset } => {
                    let call = self.launcher.remove_job(agent, &address, job, dataset);
                    tokio::spawn(async move {
                        if let Err(e) = call.await {
                            tracing::debug!(%agent, %job, error = %e, "an agent missed a clean-up");
                        }
                    });
                }
                Effect::DeleteBlocks(digests) => {
                    let store = self.store.clone();
                    tokio::spawn(async move {
                        for d in digests {
                            if let Err(e) = store.delete(&d).await {
                                tracing::debug!(block = %d, error = %e, "a block of an ended job stays");
                            }
                        }
                    });
                }
                Effect::Probe { agent, address, since } => {
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        if refuses_connections(&address).await {
                            let lost =
                                move |core: &mut Core| core.agent_unreachable(agent, since, Instant::now());
                            let _ = tx.send(Command::With(Box::new(lost))).await;
                        }
                    });
                }
                Effect::ActionEnded { action, result } => {
                    if let Some(w) = self.waiters.remove(&action) {
                        let _ = w.send((action, result));
                    }
                }
            }
        }
        let changed = self.core.take_changed();
        self.unwatched.extend(changed.into_iter().filter(|j| self.watchers.contains_key(j)));
        self.publish();
    }

    /// Send the watched jobs that changed their new views: those that ended
    /// at once, the others at most every [`WATCH_INTERVAL`] (the clock's
    /// tick sends what waits).
    fn publish(&mut self) {
        let now = Instant::now();
        let all = now.duration_since(self.watched) >= WATCH_INTERVAL;
        if all {
            self.watched = now;
        }
        let running =
            |core: &Core, j: &JobId| core.job(*j).is_some_and(|j| j.phase == crate::state::JobPhase::Running);
        let core = &self.core;
        let send: Vec<JobId> = self.unwatched.iter().filter(|j| all || !running(core, j)).copied().collect();
        for job in send {
            self.unwatched.remove(&job);
            let (Some(tx), Some(view)) = (self.watchers.get(&job), self.core.view(job)) else { continue };
            let ended = view.phase != crate::state::JobPhase::Running;
            tx.send_replace(view);
            if ended {
                self.watchers.remove(&job);
            }
        }
    }
}

/// Whether nothing listens at `address` (`host:port`, with or without
/// `http://` or `https://`): its host answers a connection with a refusal.
/// A timeout or any other error says nothing.
async fn refuses_connections(address: &str) -> bool {
    let host_port = address.split_once("://").map_or(address, |(_, rest)| rest);
    let host_port = host_port.split('/').next().unwrap_or(host_port);
    matches!(
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(host_port)).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// The agent's refusals as the core reads them (a malformed one is skipped:
/// its task runs out its course as lost when the agent is).
fn refusals(refused: Vec<v1::Refusal>) -> Vec<(TaskKey, Refused, String)> {
    refused
        .into_iter()
        .filter_map(|r| {
            let key = TaskKey::try_from(r.task.as_ref()?).ok()?;
            let why = match v1::RefusalKind::try_from(r.kind) {
                Ok(v1::RefusalKind::Busy | v1::RefusalKind::Duplicate) => Refused::Busy,
                Ok(v1::RefusalKind::Stopping) => Refused::Stopping,
                Ok(v1::RefusalKind::Stale) => Refused::Stale,
                _ => Refused::Invalid,
            };
            Some((key, why, r.message))
        })
        .collect()
}
