//! The agent's side of the `Master` service: registration, heartbeats and
//! [`TaskUpdate`]s, and how a task's outcome becomes an update.

use super::config::AgentConfig;
use crate::executor::{IoMetering, Output, TaskOutcome};
use crate::sandbox::TaskReport;
use prost::Message;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig};
use tonic::{Code, Status};
use weft_core::ids::{AgentId, JobId};
use weft_core::metering::{EndReason, TaskMetering};
use weft_core::proto::PROTOCOL_VERSION;
use weft_core::proto::auth::Credentials;
use weft_core::proto::tls;
use weft_core::proto::v1::master_client::MasterClient;
use weft_core::proto::v1::{
    self, HeartbeatRequest, RegisterRequest, Reservation, Resources, TaskUpdate, TaskUpdates,
};
use weft_core::task::Data;
use weft_core::task::{TaskKey, TaskState};

/// The master's client, stamped with the protocol version and cluster token.
pub(crate) type Client = MasterClient<InterceptedService<Channel, Credentials>>;

/// A lazily connected channel to `address` (`host:port` means `http://`;
/// TLS when it is `https://`). Connecting is bounded by `connect_timeout`;
/// each call by `call_timeout`, if given (a driver's actions last as long as
/// their jobs, so its channel has none).
pub(crate) fn channel(
    address: &str,
    connect_timeout: Duration,
    call_timeout: Option<Duration>,
    tls: Option<&ClientTlsConfig>,
) -> Result<Channel, String> {
    let endpoint = tls::endpoint(address, tls).map_err(|e| format!("bad address `{address}`: {e}"))?;
    let endpoint = endpoint.connect_timeout(connect_timeout).tcp_nodelay(true);
    Ok(match call_timeout {
        Some(t) => endpoint.timeout(t),
        None => endpoint,
    }
    .connect_lazy())
}

/// What the agent knows of its master: the client, the id it was given, and
/// the queue of task updates waiting to go out.
pub(crate) struct MasterLink {
    /// The client of the master in use.
    client: RwLock<Client>,
    /// Every master's client (one, or several with HA), and which is in use:
    /// when the one in use stops answering, the next is tried, so the agent
    /// follows whichever master leads.
    masters: Vec<Client>,
    current: std::sync::atomic::AtomicUsize,
    register: RegisterRequest,
    agent_id: RwLock<Option<AgentId>>,
    /// Where the id is kept across restarts (`<work-dir>/agent-id`): a
    /// restarted agent names it when it registers, and the master loses the
    /// registration it had at once.
    id_file: std::path::PathBuf,
    outbox: Mutex<Option<mpsc::UnboundedSender<TaskUpdate>>>,
    inbox: Mutex<Option<mpsc::UnboundedReceiver<TaskUpdate>>>,
    /// Attempts whose end is queued or on its way: heartbeats still list
    /// them, so that the master's reconciliation waits for their ends.
    unsent: Mutex<HashMap<v1::TaskRef, u32>>,
}

/// What a registration answered.
pub(crate) struct Registered {
    /// How often to heartbeat.
    pub(crate) interval: Duration,
    /// The master's live jobs.
    pub(crate) live: std::collections::HashSet<JobId>,
    /// Its newest job: jobs of its run numbered higher were submitted since,
    /// and are live too.
    pub(crate) newest: JobId,
}

impl Registered {
    /// Whether `job` has ended: it is not live, and it is of an earlier
    /// master run (a live one goes on under a restarted master, which names
    /// it) or was accepted before the registration.
    pub(crate) fn ended(&self, job: JobId) -> bool {
        !self.live.contains(&job)
            && (job.incarnation != self.newest.incarnation || job.seq <= self.newest.seq)
    }
}

/// Whether a call failed because its master did not answer (down, or not
/// listening: a master standing by), not because it answered no.
pub(crate) fn unreachable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled)
}

/// The file under the work directory that keeps the agent's id.
const ID_FILE: &str = "agent-id";

/// The id kept in `path` by an earlier run of the agent, if any.
fn kept_id(path: &std::path::Path) -> Option<AgentId> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Most updates in one `UpdateTasks` call.
const MAX_BATCH: usize = 1024;
/// Most encoded bytes in one call (a single larger update goes alone).
const MAX_BATCH_BYTES: usize = 32 << 20;
/// How long a task's end may wait for others to go out with it, while
/// tasks wait here for a slot (so the master need not hurry to fill one).
/// Thousands of short tasks a second then cost a few calls instead of one
/// each; an agent whose slots would go idle sends at once.
const COALESCE: Duration = Duration::from_millis(1);

impl MasterLink {
    pub(crate) fn new(
        config: &AgentConfig,
        advertise: String,
        credentials: Credentials,
    ) -> Result<Self, String> {
        let tls = config.tls.client().map_err(|e| e.to_string())?;
        let masters = config
            .masters()
            .map(|m| {
                let channel = channel(m, config.rpc_timeout, Some(config.rpc_timeout), tls.as_ref())?;
                Ok(MasterClient::with_interceptor(channel, credentials.clone())
                    .max_encoding_message_size(usize::MAX))
            })
            .collect::<Result<Vec<Client>, String>>()?;
        let first = masters.first().cloned().ok_or("no master address given (--master)")?;
        let register = RegisterRequest {
            protocol_version: PROTOCOL_VERSION,
            address: advertise,
            resources: Some(Resources {
                slots: config.slots,
                memory_bytes: config.memory.as_u64(),
                queue: config.queue_depth(),
            }),
            attributes: config.attributes.clone().into_iter().collect(),
            previous_agent_id: None,
            reservations: config
                .reserve
                .iter()
                .map(|r| Reservation {
                    role: r.role.clone(),
                    slots: r.slots,
                    memory_bytes: r.memory.as_u64(),
                    dynamic: false,
                })
                .collect(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Self {
            client: RwLock::new(first),
            masters,
            current: std::sync::atomic::AtomicUsize::new(0),
            register,
            agent_id: RwLock::new(kept_id(&config.work_dir.join(ID_FILE))),
            id_file: config.work_dir.join(ID_FILE),
            outbox: Mutex::new(Some(tx)),
            inbox: Mutex::new(Some(rx)),
            unsent: Mutex::default(),
        })
    }

    /// The client of the master in use.
    fn client(&self) -> Client {
        self.client.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The master in use did not answer: use the next one (with HA, the
    /// leader may have changed). Whether there is another.
    pub(crate) fn next_master(&self) -> bool {
        if self.masters.len() < 2 {
            return false;
        }
        let next = (self.current.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1) % self.masters.len();
        *self.client.write().unwrap_or_else(PoisonError::into_inner) = self.masters[next].clone();
        true
    }

    /// The id the master gave this agent (`None` before registration).
    pub(crate) fn agent_id(&self) -> Option<AgentId> {
        *self.agent_id.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Register (again, naming the previous id if there was one, from
    /// before a restart too). Returns what the master answered: the
    /// heartbeat interval it asks for, and its live jobs.
    pub(crate) async fn register(&self) -> Result<Registered, Status> {
        let mut request = self.register.clone();
        request.previous_agent_id = self.agent_id().map(Into::into);
        // Every master in turn, until one answers.
        let mut tries = self.masters.len();
        let reply = loop {
            match self.client().register(request.clone()).await {
                Ok(reply) => break reply.into_inner(),
                Err(status) if tries > 1 && unreachable(&status) && self.next_master() => tries -= 1,
                Err(status) => return Err(status),
            }
        };
        let live = reply
            .live_jobs
            .iter()
            .map(JobId::try_from)
            .collect::<Result<_, _>>()
            .map_err(|e| Status::internal(format!("the master's registration reply: {e}")))?;
        let id = reply
            .agent_id
            .as_ref()
            .map(AgentId::try_from)
            .transpose()
            .map_err(|e| Status::internal(format!("the master's registration reply: {e}")))?
            .ok_or_else(|| Status::internal("the master's registration reply has no agent id"))?;
        tracing::info!(agent_id = %id, interval_ms = reply.heartbeat_interval_ms, "weft.agent.registered");
        *self.agent_id.write().unwrap_or_else(PoisonError::into_inner) = Some(id);
        if let Err(e) = std::fs::write(&self.id_file, id.to_string()) {
            tracing::warn!(error = %e, path = %self.id_file.display(), "weft.agent.id_not_kept");
        }
        Ok(Registered {
            interval: Duration::from_millis(reply.heartbeat_interval_ms.max(1)),
            live,
            newest: JobId { incarnation: id.incarnation, seq: reply.newest_job },
        })
    }

    /// One heartbeat; the master's answer (register again; the agents it
    /// lost lately).
    pub(crate) async fn heartbeat(
        &self,
        running: Vec<v1::TaskRef>,
        memory: v1::AgentMemory,
        dropped: Vec<v1::DroppedPartition>,
    ) -> Result<v1::HeartbeatResponse, Status> {
        let request = HeartbeatRequest {
            protocol_version: PROTOCOL_VERSION,
            agent_id: self.agent_id().map(Into::into),
            running,
            memory: Some(memory),
            dropped,
        };
        // Every master in turn, until one answers: with HA, the one that
        // leads now (it asks this agent to register).
        let mut tries = self.masters.len();
        loop {
            match self.client().heartbeat(request.clone()).await {
                Ok(reply) => return Ok(reply.into_inner()),
                Err(status) if tries > 1 && unreachable(&status) && self.next_master() => tries -= 1,
                Err(status) => return Err(status),
            }
        }
    }

    /// Queue `update` for the master; [`forward`](Self::forward) sends it.
    pub(crate) fn update(&self, update: TaskUpdate) {
        // Counted before it is queued: once queued, `forward` may deliver it
        // and count it sent at once, and a count added after that would list
        // the attempt in every heartbeat from then on.
        if let Some(task) = update.task {
            *self.unsent.lock().unwrap_or_else(PoisonError::into_inner).entry(task).or_default() += 1;
        }
        let outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        let refused = match outbox.as_ref() {
            Some(tx) => tx.send(update).err().map(|e| e.0),
            None => Some(update),
        };
        if let Some(update) = refused {
            tracing::warn!("weft.agent.update.after_close");
            self.sent(std::slice::from_ref(&update));
        }
    }

    /// The attempts whose ends are queued or on their way to the master.
    pub(crate) fn unsent(&self) -> Vec<v1::TaskRef> {
        self.unsent.lock().unwrap_or_else(PoisonError::into_inner).keys().copied().collect()
    }

    /// The ends of `updates` reached the master (or never will).
    fn sent(&self, updates: &[TaskUpdate]) {
        let mut unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
        for task in updates.iter().filter_map(|u| u.task.as_ref()) {
            if let Some(n) = unsent.get_mut(task) {
                *n -= 1;
                if *n == 0 {
                    unsent.remove(task);
                }
            }
        }
    }

    /// Stop taking updates; [`forward`](Self::forward) ends once it sent the queued ones.
    pub(crate) fn close(&self) {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner).take();
    }

    /// Send queued updates in batches, one call in flight, until
    /// [`close`](Self::close). While `backlog()` says tasks wait for a slot,
    /// a batch waits up to [`COALESCE`] for more. A call that fails
    /// transiently is retried a few times with backoff. A batch the master
    /// refuses as it is (too large, malformed) goes again update by update,
    /// and an update refused alone is replaced by a small failed one naming
    /// why: a task's end is never dropped for its form. Updates the master
    /// does not take because it no longer knows this agent are dropped: it
    /// has given those attempts up (and heartbeats reconcile the rest).
    pub(crate) async fn forward(&self, backlog: impl Fn() -> bool) {
        let Some(mut inbox) = self.inbox.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        while let Some(first) = inbox.recv().await {
            let until = tokio::time::Instant::now() + COALESCE;
            let mut bytes = first.encoded_len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                let next = match inbox.try_recv() {
                    Ok(u) => Some(u),
                    Err(_) if backlog() => tokio::time::timeout_at(until, inbox.recv()).await.ok().flatten(),
                    Err(_) => None,
                };
                let Some(u) = next else { break };
                bytes += u.encoded_len();
                batch.push(u);
            }
            self.send(batch).await;
        }
    }

    async fn send(&self, updates: Vec<TaskUpdate>) {
        self.deliver(&updates).await;
        self.sent(&updates);
    }

    async fn deliver(&self, updates: &[TaskUpdate]) {
        tracing::debug!(updates = updates.len(), "weft.agent.update.send");
        let Err(refused) = self.call(updates.to_vec()).await else { return };
        if updates.len() > 1 {
            tracing::warn!(updates = updates.len(), status = %refused, "weft.agent.update.batch_refused");
            for update in updates {
                Box::pin(self.deliver(std::slice::from_ref(update))).await;
            }
            return;
        }
        for update in updates {
            tracing::warn!(status = %refused, "weft.agent.update.replaced");
            if let Err(s) = self.call(vec![undeliverable(update, &refused)]).await {
                tracing::warn!(status = %s, "weft.agent.update.dropped");
            }
        }
    }

    /// One `UpdateTasks` call. `Err` when the master refuses the updates as
    /// they are (`INVALID_ARGUMENT`, or `OUT_OF_RANGE`: a message over its
    /// size limit); any other error is retried a few times with backoff,
    /// then the updates are dropped (heartbeats reconcile them).
    async fn call(&self, updates: Vec<TaskUpdate>) -> Result<(), Status> {
        let mut backoff = Duration::from_millis(100);
        let request = TaskUpdates { agent_id: self.agent_id().map(Into::into), updates };
        let mut attempt = 1;
        loop {
            match self.client().update_tasks(request.clone()).await {
                Ok(reply) => {
                    if reply.into_inner().reregister {
                        tracing::warn!(updates = request.updates.len(), "weft.agent.update.unknown_agent");
                    }
                    return Ok(());
                }
                Err(s) if matches!(s.code(), Code::InvalidArgument | Code::OutOfRange) => return Err(s),
                Err(s) => {
                    if attempt == 4 {
                        // Unreachable or failing, not refusing these updates.
                        tracing::warn!(updates = request.updates.len(), status = %s, "weft.agent.update.dropped");
                        return Ok(());
                    }
                    tracing::debug!(attempt, status = %s, "weft.agent.update.retry");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
            }
        }
    }
}

/// What replaces `update` when the master refused it as it is: the attempt
/// failed, with a host error naming why, and nothing else of its end.
fn undeliverable(update: &TaskUpdate, refused: &Status) -> TaskUpdate {
    let mut message = format!(
        "the attempt's end could not be delivered to the master ({}: {}); its result is lost",
        refused.code(),
        refused.message()
    );
    if message.len() > 4096 {
        let cut = (0..=4096).rev().find(|&i| message.is_char_boundary(i)).unwrap_or(0);
        message.truncate(cut);
    }
    TaskUpdate {
        task: update.task,
        state: v1::TaskState::Failed as i32,
        end: Some(v1::EndReason::from(&EndReason::HostError { message })),
        ..Default::default()
    }
}

/// A `RUNNING` (or other non-terminal) update.
pub(crate) fn state(key: &TaskKey, state: TaskState) -> TaskUpdate {
    TaskUpdate { task: Some(key.into()), state: v1::TaskState::from(state) as i32, ..Default::default() }
}

/// The terminal update for an attempt that ended with `report` and nothing else
/// (a launch that failed before running, a driver, a kill).
pub(crate) fn ended(key: &TaskKey, report: &TaskReport) -> TaskUpdate {
    let state = terminal_state(&report.end);
    TaskUpdate {
        end: Some(v1::EndReason::from(&report.end)),
        metering: Some((&report.metering).into()),
        log: report.log.clone(),
        accumulators: report.accumulators.iter().map(|(k, v)| (k.clone(), *v)).collect::<HashMap<_, _>>(),
        ..self::state(key, state)
    }
}

fn terminal_state(end: &EndReason) -> TaskState {
    match end {
        EndReason::Finished => TaskState::Finished,
        EndReason::Killed => TaskState::Killed,
        _ => TaskState::Failed,
    }
}

/// The terminal update for an executed attempt: its report, what it produced
/// and the host's I/O metering.
pub(crate) fn outcome(key: &TaskKey, outcome: &TaskOutcome) -> TaskUpdate {
    let mut metering = outcome.report.metering.clone();
    add_io(&mut metering, &outcome.io);
    let mut update = ended(key, &outcome.report);
    update.metering = Some((&metering).into());
    match &outcome.output {
        Output::Records { batch, records } => {
            update.result = Some((&Data::Inline(batch.clone().into())).into());
            update.count = *records;
        }
        Output::Count(n) => update.count = *n,
        Output::Text(part) => update.count = part.lines,
        Output::Shuffle(map) => {
            update.partition_bytes.clone_from(&map.partition_lengths);
            update.count = map.records_written;
        }
        Output::FetchFailed { block } => {
            let message = match &outcome.report.end {
                EndReason::HostError { message } => message.clone(),
                other => other.to_string(),
            };
            let end = EndReason::FetchFailed {
                shuffle: weft_core::ids::ShuffleId(block.shuffle.0),
                map: block.map.0,
                message,
            };
            update.state = v1::TaskState::Failed as i32;
            update.end = Some(v1::EndReason::from(&end));
        }
        Output::None => {}
    }
    update
}

fn add_io(m: &mut TaskMetering, io: &IoMetering) {
    m.shuffle_bytes_written = io.shuffle_bytes_written;
    m.shuffle_bytes_read = io.shuffle_bytes_read;
    m.spill_bytes = io.spill_bytes;
    m.peak_host_memory = m.peak_host_memory.saturating_add(io.peak_host_memory);
}

/// A report for an attempt that ended in the host before (or instead of)
/// running: `end`, `log`, and the wall time it took.
pub(crate) fn host_report(end: EndReason, wall: Duration) -> TaskReport {
    TaskReport {
        log: String::new(),
        metering: weft_core::metering::TaskMetering { wall, ..Default::default() },
        accumulators: Default::default(),
        end,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::shuffle::{BlockId, MapId, ReduceId, ShuffleId};
    use weft_core::ids::StageId;

    fn key() -> TaskKey {
        let job = weft_core::ids::JobId { incarnation: weft_core::ids::Incarnation(1), seq: 1 };
        TaskKey {
            action: weft_core::ids::ActionId { job, seq: 1 },
            stage: StageId(1),
            partition: 2,
            attempt: 0,
        }
    }

    fn outcome_of(end: EndReason, output: Output) -> TaskOutcome {
        TaskOutcome {
            report: host_report(end, Duration::ZERO),
            output,
            io: IoMetering::default(),
            cached: Vec::new(),
        }
    }

    #[test]
    fn ends_map_to_terminal_states() {
        let u = ended(&key(), &host_report(EndReason::Killed, Duration::ZERO));
        assert_eq!(u.state, v1::TaskState::Killed as i32);
        let u = outcome(&key(), &outcome_of(EndReason::Finished, Output::Count(7)));
        assert_eq!((u.state, u.count), (v1::TaskState::Finished as i32, 7));
        assert_eq!(u.end.unwrap().kind, v1::EndKind::Finished as i32);
    }

    #[test]
    fn a_fetch_failure_names_the_lost_map_output() {
        let block = BlockId::new(ShuffleId(3), MapId(5), 0, ReduceId(0));
        let end = EndReason::HostError { message: "agent gone".into() };
        let u = outcome(&key(), &outcome_of(end, Output::FetchFailed { block }));
        assert_eq!(u.state, v1::TaskState::Failed as i32);
        let end = EndReason::try_from(&u.end.unwrap()).unwrap();
        let expected = EndReason::FetchFailed {
            shuffle: weft_core::ids::ShuffleId(3),
            map: 5,
            message: "agent gone".into(),
        };
        assert_eq!(end, expected);
    }

    /// Ends queued while another thread sends them as fast as they come (as
    /// `forward` does) are all counted out again: none stays listed in the
    /// heartbeats for good.
    #[tokio::test]
    async fn every_end_sent_is_no_longer_listed_as_unsent() {
        let config = AgentConfig { work_dir: std::env::temp_dir(), ..AgentConfig::default() };
        let link =
            std::sync::Arc::new(MasterLink::new(&config, "127.0.0.1:1".into(), Credentials::none()).unwrap());
        let mut inbox = link.inbox.lock().unwrap().take().unwrap();
        let forward = {
            let link = std::sync::Arc::clone(&link);
            std::thread::spawn(move || {
                while let Some(u) = inbox.blocking_recv() {
                    link.sent(std::slice::from_ref(&u));
                }
            })
        };
        // Several threads queue at once, so that a queuing thread is often
        // descheduled right after it queued.
        std::thread::scope(|s| {
            for partition in 0..8 {
                let link = &link;
                s.spawn(move || {
                    for attempt in 0..20_000 {
                        let update = state(&TaskKey { partition, attempt, ..key() }, TaskState::Finished);
                        link.update(update);
                    }
                });
            }
        });
        link.close();
        forward.join().unwrap();
        assert_eq!(link.unsent(), Vec::new());
    }
}
