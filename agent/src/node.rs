//! The agent process: what ties the sandbox, the executor and the block
//! service to the master.
//!
//! # What an agent does
//!
//! An agent offers its machine to the cluster and runs whatever the master
//! places on it, without ever deciding anything itself. [`AgentNode::start`]
//! binds one TCP listener and serves two gRPC services on it: `Agent`, where
//! the master launches and kills task attempts, and `Blocks`, where peer
//! agents fetch the shuffle blocks this agent's map tasks wrote. It then
//! registers with the master — its advertised address, task slots, memory and
//! attributes, stamped with the protocol version and the cluster token — and
//! heartbeats at the interval the master answers with, listing the attempts
//! it runs. A master that restarted, or that declared the agent lost, answers a
//! heartbeat with `reregister`, and the agent registers again.
//!
//! A launch arrives as a proto `TaskSpec`. The agent checks the caller's
//! credentials, converts the spec at the edge ([`launch`]: the text split's
//! location, the peers serving each map output of a shuffle read, the job's
//! block directory for shuffle output, the output committer for text output),
//! and takes one of its `slots`; with none free the launch is refused with
//! `RESOURCE_EXHAUSTED`, so the master retries elsewhere or later. (Driver
//! tasks are counted apart, up to `slots` of them, and run on a pool of their
//! own: a driver waits on its actions for whole jobs and must not hold a
//! thread its job's tasks need.) The attempt
//! then runs on its own: it reports RUNNING, fetches the job's component by
//! digest from the master's `Artifacts` service through the verifying
//! [`ArtifactCache`] (once per digest per
//! agent), compiles it on a blocking thread (a file that is not a component
//! ends the attempt FAILED with the sandbox's message, never the agent), and
//! runs it through the [`Executor`](crate::Executor): input, the chain of user
//! functions on the agent's [`WasmPool`] (one thread per
//! slot), output. The end goes back as one `TaskUpdate`: the state, the typed
//! end reason, metering, the bounded log, and the result batch, count or
//! per-partition shuffle sizes. A shuffle block that could not be fetched ends
//! the attempt with `END_KIND_FETCH_FAILED` naming the map output, so the
//! scheduler recomputes it. `KillTask` ends an attempt KILLED at once; its
//! output is never published.
//!
//! The job's **driver** is a task too: a spec with `driver` set runs the
//! component's `main` with a [`PlanDriver`](crate::driver::PlanDriver) whose
//! actions go to the master's `Driver` service (see the runner in
//! `driver_client`): the plan nodes and broadcasts the master has not seen are
//! defined first, in order, then the action blocks until its job ends. The
//! driver's end and log return as an ordinary task update.
//!
//! Shuffle files outlive their tasks: the block service serves them until the
//! master removes the job, so reducers can read map outputs long after the map
//! attempts ended.
//!
//! # Shutdown
//!
//! [`AgentHandle::shutdown`] sends the one broadcast signal every part listens
//! to: the heartbeat loop stops, running attempts are killed (and reported
//! KILLED), the server stops accepting and finishes open requests, and the
//! WebAssembly pool drains. Dropping the handle sends the same signal without
//! waiting.

mod config;
mod driver_client;
mod heartbeat;
pub mod launch;
mod report;
mod service;
mod task;

pub use config::{AgentConfig, Reserve};

use crate::WasmPool;
use crate::blocks::{BlockService, BlockStore, CacheStore, JobKeys, MapTables, PeerChannels};
use crate::sandbox::{Sandbox, SandboxError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast, watch};
use tokio::task::JoinHandle;
use weft_core::artifact::{ArtifactCache, ArtifactError, CacheConfig};
use weft_core::ids::Incarnation;
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::TaskRef;
use weft_core::task::TaskKey;

/// Why an agent could not start (or stopped badly).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The WebAssembly engine could not be built.
    #[error("the sandbox could not be set up: {0}")]
    Sandbox(#[from] SandboxError),
    /// The OS refused the pool's threads.
    #[error("could not start the WebAssembly thread pool: {0}")]
    Pool(#[source] std::io::Error),
    /// The artifact cache directory is unusable.
    #[error("could not open the artifact cache: {0}")]
    Cache(#[from] ArtifactError),
    /// The work directory could not be created.
    #[error("could not create the work directory {path}: {source}")]
    WorkDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The listener could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The master address or the token is unusable.
    #[error("bad agent configuration: {0}")]
    Config(String),
    /// The master refused (or never answered) the registration.
    #[error("could not register with the master at {master}: {}", status.message())]
    Register {
        /// The master's address.
        master: String,
        /// Its answer (`UNAUTHENTICATED` for a wrong token, `UNAVAILABLE` when unreachable).
        status: tonic::Status,
    },
    /// The gRPC server failed.
    #[error("the agent's gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Data blocks (parallelized partitions, broadcast values) kept in memory
/// once fetched, so the tasks of a job that read the same block do not read
/// it from the artifact cache's file each time. Bounded: past `cap` bytes the
/// oldest-fetched blocks go first.
pub(crate) struct DataBlocks {
    cap: u64,
    inner: Mutex<(
        HashMap<weft_core::artifact::Digest, bytes::Bytes>,
        std::collections::VecDeque<weft_core::artifact::Digest>,
        u64,
    )>,
}

impl DataBlocks {
    fn new(cap: u64) -> Self {
        Self { cap, inner: Mutex::default() }
    }

    pub(crate) fn get(&self, digest: &weft_core::artifact::Digest) -> Option<bytes::Bytes> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).0.get(digest).cloned()
    }

    pub(crate) fn insert(&self, digest: weft_core::artifact::Digest, bytes: bytes::Bytes) {
        let len = bytes.len() as u64;
        if len > self.cap {
            return;
        }
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, order, total) = &mut *guard;
        if map.insert(digest, bytes).is_none() {
            order.push_back(digest);
            *total += len;
        }
        while *total > self.cap {
            let Some(old) = order.pop_front() else { break };
            if let Some(b) = map.remove(&old) {
                *total -= b.len() as u64;
            }
        }
    }
}

/// What the node's parts share.
/// The permits taken from `s`, a semaphore of `of` permits.
fn taken(s: &Semaphore, of: u32) -> usize {
    (of as usize).saturating_sub(s.available_permits())
}

/// The agent's `--memory` in MiB (at least 1): the permits of its memory semaphore.
fn memory_mib(config: &AgentConfig) -> u32 {
    u32::try_from(config.memory.as_u64() >> 20).unwrap_or(u32::MAX).max(1)
}

struct Shared {
    config: AgentConfig,
    sandbox: Sandbox,
    pool: Arc<WasmPool>,
    /// Drivers wait on their actions for whole jobs, so they run on a pool of
    /// their own and never hold a thread the job's tasks need.
    driver_pool: Arc<WasmPool>,
    artifacts: ArtifactCache,
    /// Data blocks in memory.
    data_blocks: DataBlocks,
    /// Channels to artifact services, by address.
    artifact_sources: PeerChannels,
    blocks: BlockStore,
    /// Persisted partitions, in the agent's memory budget and on disk.
    cache: CacheStore,
    /// The address the master and peers know this agent by: map outputs
    /// located there are read from `blocks` directly.
    advertise: Arc<str>,
    /// The map-output tables the master sent.
    tables: MapTables,
    /// The capabilities of the jobs whose tasks run here.
    keys: JobKeys,
    /// The agent's own directories, out of every task's reach.
    own: weft_core::access::Policy,
    /// Channels to peers' block services.
    peers: PeerChannels,
    master: report::MasterLink,
    credentials: Credentials,
    /// How it reaches `https://` peers and masters.
    tls: Option<tonic::transport::ClientTlsConfig>,
    slots: Arc<Semaphore>,
    /// The agent's `--memory` in MiB: every running task holds its memory
    /// limit's worth.
    memory: Arc<Semaphore>,
    /// Tasks accepted (running or waiting for a slot): `slots + queue`.
    admitted: Arc<Semaphore>,
    /// Drivers are counted apart from task slots (as the master places them):
    /// at most `slots` at once.
    driver_slots: Arc<Semaphore>,
    /// Accepted attempts: their kill switch, and the master run that sent them.
    tasks: Mutex<HashMap<TaskKey, (watch::Sender<bool>, Incarnation)>>,
    shutdown: broadcast::Sender<()>,
    stopping: AtomicBool,
}

impl Shared {
    /// The memory limits running tasks hold against the agent's `--memory`.
    fn memory_held(&self) -> u64 {
        (taken(&self.memory, memory_mib(&self.config)) as u64) << 20
    }

    /// Whether accepted tasks wait for a slot: then every slot stays busy
    /// without the master's help, and task ends can wait a moment to go
    /// out together.
    fn backlog(&self) -> bool {
        let (slots, queue) = (self.config.slots, self.config.queue_depth());
        taken(&self.admitted, slots + queue) > taken(&self.slots, slots)
    }

    fn running(&self) -> MutexGuard<'_, HashMap<TaskKey, (watch::Sender<bool>, Incarnation)>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn running_refs(&self) -> Vec<TaskRef> {
        self.running().keys().map(task::task_ref).collect()
    }

    fn forget(&self, key: &TaskKey) {
        self.running().remove(key);
    }

    fn is_shutting_down(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Send the shutdown signal and kill every running attempt. Idempotent.
    fn stop(&self) {
        if !self.stopping.swap(true, Ordering::SeqCst) {
            let _ = self.shutdown.send(());
        }
        for (kill, _) in self.running().values() {
            kill.send_replace(true);
        }
    }
}

/// Starts agents.
#[derive(Debug, Clone, Copy)]
pub struct AgentNode;

impl AgentNode {
    /// Start an agent: build the sandbox and pool, bind the listener, serve the
    /// `Agent` and `Blocks` services, register with the master and start
    /// heartbeating. Returns once the master has accepted the registration.
    ///
    /// # Errors
    /// A [`NodeError`] naming what failed; a master that refuses the token or
    /// cannot be reached is [`NodeError::Register`]. Nothing keeps running then.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes stops whatever it started.
    pub async fn start(config: AgentConfig) -> Result<AgentHandle, NodeError> {
        let mut config = config;
        config.slots = config.slots.max(1);
        let (slots, memory) = config
            .reserve
            .iter()
            .fold((0u64, 0u64), |(s, m), r| (s + u64::from(r.slots), m + r.memory.as_u64()));
        if slots > u64::from(config.slots) || memory > config.memory.as_u64() {
            return Err(NodeError::Config(format!(
                "--reserve asks for {slots} slots and {} in all, but the agent offers {} slots and {} \
                 (--slots, --memory)",
                bytesize::ByteSize::b(memory),
                config.slots,
                config.memory
            )));
        }
        let mut sandbox_config = config.sandbox.clone();
        sandbox_config.max_instances = sandbox_config.max_instances.max(config.slots);
        // No attempt may ask for more memory than the whole agent offers.
        let memory_mib = memory_mib(&config);
        let agent_memory = bytesize::ByteSize::mib(u64::from(memory_mib));
        if sandbox_config.max_limits.memory > agent_memory {
            sandbox_config.max_limits.memory = agent_memory;
        }
        if sandbox_config.cache_dir.is_none() {
            sandbox_config.cache_dir = Some(config.cache_dir.join("compiled"));
        }
        let sandbox = Sandbox::new(sandbox_config)?;
        let pool = Arc::new(WasmPool::new(config.slots as usize).map_err(NodeError::Pool)?);
        let driver_pool = Arc::new(WasmPool::new(config.slots as usize).map_err(NodeError::Pool)?);
        let artifacts =
            ArtifactCache::open(&CacheConfig::new(&config.cache_dir).with_max_size(config.cache_size))
                .await?;
        std::fs::create_dir_all(&config.work_dir)
            .map_err(|source| NodeError::WorkDir { path: config.work_dir.clone(), source })?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| NodeError::Bind { addr: config.listen, source })?;
        let local_addr =
            listener.local_addr().map_err(|source| NodeError::Bind { addr: config.listen, source })?;
        let advertise = config.advertise.clone().unwrap_or_else(|| {
            let ip = if local_addr.ip().is_unspecified() { [127, 0, 0, 1].into() } else { local_addr.ip() };
            let address = SocketAddr::new(ip, local_addr.port()).to_string();
            // Peers and the master reach a TLS agent at https://.
            if config.tls.cert.is_some() { format!("https://{address}") } else { address }
        });
        let credentials =
            Credentials::new(&config.cluster_token).map_err(|s| NodeError::Config(s.message().into()))?;
        let tls_error = |e: weft_core::proto::tls::TlsError| NodeError::Config(e.to_string());
        let server_tls = config.tls.server().map_err(tls_error)?;
        let client_tls = config.tls.client().map_err(tls_error)?;
        let master = report::MasterLink::new(&config, advertise.clone(), credentials.clone())
            .map_err(NodeError::Config)?;
        let (shutdown, _) = broadcast::channel(1);
        let memory = Arc::new(Semaphore::new(memory_mib as usize));
        let shared = Arc::new(Shared {
            sandbox,
            pool,
            driver_pool,
            artifacts,
            data_blocks: DataBlocks::new(512 << 20),
            artifact_sources: PeerChannels::new()
                .with_connect_timeout(config.rpc_timeout)
                .with_tls(client_tls.clone()),
            blocks: BlockStore::new(&config.work_dir),
            cache: CacheStore::new(&config.work_dir, Arc::clone(&memory)),
            advertise: Arc::from(advertise.as_str()),
            tables: MapTables::default(),
            keys: JobKeys::default(),
            own: launch::own_dirs(&config),
            peers: PeerChannels::new().with_credentials(credentials.clone()).with_tls(client_tls.clone()),
            master,
            credentials,
            tls: client_tls,
            slots: Arc::new(Semaphore::new(config.slots as usize)),
            memory,
            admitted: Arc::new(Semaphore::new((config.slots + config.queue_depth()) as usize)),
            driver_slots: Arc::new(Semaphore::new(config.slots as usize)),
            tasks: Mutex::default(),
            shutdown,
            stopping: AtomicBool::new(false),
            config,
        });
        let forwarder = Arc::clone(&shared);
        let updates =
            Some(tokio::spawn(async move { forwarder.master.forward(|| forwarder.backlog()).await }));
        let mut handle = AgentHandle {
            shared: Arc::clone(&shared),
            local_addr,
            advertise,
            server: None,
            heartbeat: None,
            updates,
        };
        handle.server = Some(tokio::spawn(serve(Arc::clone(&shared), listener, server_tls)));
        let registered = shared
            .master
            .register()
            .await
            .map_err(|status| NodeError::Register { master: shared.config.master.clone(), status })?;
        let interval = registered.interval;
        // Jobs that ended while the agent was down leave nothing behind.
        tokio::spawn(heartbeat::forget_ended(Arc::clone(&shared), registered));
        let beats = heartbeat::run(Arc::clone(&shared), interval, shared.shutdown.subscribe());
        handle.heartbeat = Some(tokio::spawn(beats));
        Ok(handle)
    }
}

/// Serve `Agent` and `Blocks` on `listener` until the shutdown signal.
async fn serve(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    tls: Option<tonic::transport::ServerTlsConfig>,
) -> Result<(), tonic::transport::Error> {
    let mut signal = shared.shutdown.subscribe();
    let stopped = async move {
        let _ = signal.recv().await;
    };
    let blocks = BlockService::new(shared.blocks.clone(), &shared.config.cluster_token)
        .with_tables(shared.tables.clone())
        .with_cache(shared.cache.clone())
        .with_keys(shared.keys.clone())
        .into_server();
    let agent = service::AgentService::new(Arc::clone(&shared)).into_server();
    drop(shared);
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    server
        .add_service(agent)
        .add_service(blocks)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            stopped,
        )
        .await
}

/// A running agent. Dropping it sends the shutdown signal without waiting;
/// [`shutdown`](Self::shutdown) waits for everything to stop.
pub struct AgentHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    advertise: String,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    heartbeat: Option<JoinHandle<()>>,
    updates: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("local_addr", &self.local_addr)
            .field("advertise", &self.advertise)
            .field("agent_id", &self.agent_id())
            .finish_non_exhaustive()
    }
}

/// How long shutdown waits for killed attempts to report and the pool to drain.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl AgentHandle {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the master and peers reach this agent at.
    pub fn address(&self) -> &str {
        &self.advertise
    }

    /// The id the master gave this agent (it changes when it registers again).
    pub fn agent_id(&self) -> Option<weft_core::ids::AgentId> {
        self.shared.master.agent_id()
    }

    /// How many attempts are running.
    pub fn running_tasks(&self) -> usize {
        self.shared.running().len()
    }

    /// Stop the agent: signal every part, kill running attempts (reported
    /// KILLED), stop serving once open requests finish, drain the pool.
    ///
    /// # Errors
    /// When the server had failed.
    ///
    /// # Cancel safety
    /// The signal is sent before the first await, so the agent stops even if
    /// this future is dropped; only the waiting is cut short.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        self.shared.stop();
        if let Some(h) = self.heartbeat.take() {
            let _ = h.await;
        }
        let all = self.shared.config.slots;
        let drained = async {
            let _ = self.shared.slots.acquire_many(all).await;
            let _ = self.shared.driver_slots.acquire_many(all).await;
            // Every attempt's end is queued once it is forgotten.
            while !self.shared.running().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, drained).await;
        let served = match self.server.take() {
            Some(h) => h.await.unwrap_or(Ok(())),
            None => Ok(()),
        };
        let pools = [Arc::clone(&self.shared.pool), Arc::clone(&self.shared.driver_pool)];
        let drain = tokio::task::spawn_blocking(move || pools.iter().for_each(|p| p.shutdown()));
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, drain).await;
        // Every attempt has ended (or the grace ran out): send the last updates.
        self.shared.master.close();
        if let Some(h) = self.updates.take() {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, h).await;
        }
        tracing::info!(agent_id = ?self.agent_id(), "weft.agent.stopped");
        Ok(served?)
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        self.shared.stop();
    }
}
