//! The master process: every service on one port, and the loop behind them.
//!
//! [`MasterNode::start`] serves `Master` (agents), `Artifacts` (components),
//! `Jobs` (clients) and `Driver` (driver tasks) on one listener. Their
//! handlers only send commands to one loop that owns the [`Core`] (the state
//! machine) and carries out its decisions; its clock declares silent agents
//! lost. [`MasterHandle::shutdown`] stops it all through one signal.

mod admin;
mod artifacts;
pub(crate) mod connections;
pub(crate) mod core;
mod credentials;
mod driver;
mod jobs;
mod usage;

pub use credentials::Generated;

use crate::launcher::GrpcLauncher;
use crate::service::MasterService;
use crate::state::{Core, CoreConfig};
use crate::tenants::{Tenants, TenantsError, TenantsSource};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use weft_core::access::Grant;
use weft_core::artifact::{ArtifactService, ArtifactStore, Resolver, ResolverConfig, S3Config};
use weft_core::limits::TaskLimits;
use weft_core::metering::humantime_serde_compat;
use weft_core::proto::auth::Credentials;
use weft_core::proto::tls::TlsConfig;
use weft_core::proto::v1::driver_server::DriverServer;
use weft_core::proto::v1::jobs_server::JobsServer;

/// How the master runs. Loads from TOML; unknown keys are an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MasterConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The address agents and drivers reach the master at (default: the listen address).
    pub advertise: Option<String>,
    /// The token agents (and driver tasks) must present; empty for none.
    pub cluster_token: String,
    /// A client token of the `default` tenant, an admin. With neither this
    /// nor a tenants file, the master generates one (and a cluster token if
    /// that is empty too); see [`Generated`].
    pub client_token: String,
    /// The tenants file (reloaded when it changes).
    pub tenants: Option<PathBuf>,
    /// What the `default` tenant's jobs may read and write.
    pub grants: Vec<Grant>,
    /// Directories no job may reach under any grant, besides the master's
    /// own data directory and tenants file.
    pub protected: Vec<PathBuf>,
    /// Where the artifact store and the state store (`state.redb`) live.
    pub data_dir: PathBuf,
    /// Keep no state on disk: a restarted master starts empty, and its
    /// running jobs are lost (for `weft local` and tests).
    pub ephemeral: bool,
    /// One of several masters: elect the leader through etcd and keep the
    /// state there (`--ha etcd://…`). The masters share the artifact store:
    /// give them one data directory on shared storage.
    pub ha: Option<crate::ha::HaConfig>,
    /// How often agents heartbeat.
    #[serde(with = "humantime_serde_compat")]
    pub heartbeat_interval: Duration,
    /// Missed heartbeats before an agent is lost.
    pub lost_after: u32,
    /// Failures of one task before its job fails (unless a job sets its own).
    pub max_task_attempts: u32,
    /// How many times a job's driver is started again on another agent when
    /// its agent is lost (unless the job sets its own; Spark's `--supervise`).
    pub driver_restarts: u32,
    /// Limits of every task unless a job sets its own (field by field).
    pub task_limits: TaskLimits,
    /// The most a job may set each limit to; a submission over one is
    /// refused, naming it.
    pub max_task_limits: TaskLimits,
    /// How long a job's driver may run unless the job sets its own limit
    /// (`None`: no limit). Apart from the task deadline.
    #[serde(with = "optional_duration")]
    pub job_deadline: Option<Duration>,
    /// The most bytes a `collect` or `take` may return to its driver (larger
    /// results fail their action, naming the size and this limit). Results,
    /// parallelized data and broadcast values over 64 KiB travel as blocks of
    /// the master's artifact store, which accepts blocks up to this size.
    pub max_result_size: bytesize::ByteSize,
    /// How long a job that declined what it was offered (its tasks fit in
    /// none of it) is offered nothing, unless something it may fit in
    /// appears first (Mesos's `refuse_seconds`).
    #[serde(with = "humantime_serde_compat")]
    pub offer_filter: Duration,
    /// The longest a job whose tasks fit nowhere now holds an agent's room
    /// for them while that agent's tasks end, so that a stream of smaller
    /// tasks cannot starve it.
    #[serde(with = "humantime_serde_compat")]
    pub hold_timeout: Duration,
    /// How long a task waits for the agent keeping its persisted input
    /// before it runs elsewhere (delay scheduling, Spark's
    /// `spark.locality.wait`).
    #[serde(with = "humantime_serde_compat")]
    pub locality_wait: Duration,
    /// Speculative copies of stragglers (Spark's `spark.speculation`): a
    /// `[speculation]` table turns them on; `None` (the default): off.
    pub speculation: Option<crate::job::Speculation>,
    /// S3 settings for `s3://` inputs, outputs and artifacts.
    pub s3: S3Config,
    /// TLS: the certificate and key it serves with, the CA it trusts for agents.
    pub tls: TlsConfig,
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            advertise: None,
            cluster_token: String::new(),
            client_token: String::new(),
            tenants: None,
            grants: Vec::new(),
            protected: Vec::new(),
            data_dir: PathBuf::from(".weft/master"),
            ephemeral: false,
            ha: None,
            heartbeat_interval: Duration::from_secs(1),
            lost_after: 5,
            max_task_attempts: 4,
            driver_restarts: 3,
            task_limits: TaskLimits::default(),
            max_task_limits: TaskLimits {
                fuel: 10_000_000_000_000,
                memory: bytesize::ByteSize::gib(4),
                deadline: Duration::from_secs(24 * 3600),
                log: bytesize::ByteSize::mib(16),
                output_per_call: bytesize::ByteSize::gib(1),
                slots: 64,
            },
            job_deadline: None,
            max_result_size: bytesize::ByteSize::gib(2),
            offer_filter: Duration::from_millis(200),
            hold_timeout: Duration::from_secs(10),
            locality_wait: crate::job::DEFAULT_LOCALITY_WAIT,
            speculation: None,
            s3: S3Config::default(),
            tls: TlsConfig::default(),
        }
    }
}

/// An optional duration in human units (`"2h"`), absent for none.
mod optional_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

/// What every service handler shares.
#[derive(Clone)]
pub(crate) struct Shared {
    config: Arc<MasterConfig>,
    resolver: Arc<Resolver>,
    core: core::CoreHandle,
    tenants: Arc<TenantsCell>,
    /// Which tenant holds which artifact.
    owners: artifacts::Owners,
    /// Remote (and local-file) artifacts being fetched for submissions: a
    /// few at once, so that large ones cannot exhaust the master's memory.
    fetches: Arc<tokio::sync::Semaphore>,
    /// Drivers' numbered actions still running, which a restarted driver's
    /// same action joins.
    acts: driver::RunningActs,
}

/// The tenants in force, replaced whole when the file changes.
pub(crate) struct TenantsCell {
    source: TenantsSource,
    current: RwLock<Arc<Tenants>>,
    /// The core, told the tenants' weights at every load.
    core: std::sync::OnceLock<core::CoreHandle>,
}

impl TenantsCell {
    fn get(&self) -> Arc<Tenants> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Load the tenants again; on an error the ones in force stay.
    fn reload(&self) -> Result<Vec<String>, TenantsError> {
        let tenants = self.source.load()?;
        let names = tenants.names().map(str::to_string).collect();
        self.tell_sharing(&tenants);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(tenants);
        Ok(names)
    }

    fn tell_sharing(&self, tenants: &Tenants) {
        if let Some(core) = self.core.get() {
            let sharing = tenants.sharing().clone();
            let fuel = tenants.fuel_quotas().clone();
            let tell = move |c: &mut Core| {
                c.configure(sharing);
                c.set_fuel_quotas(fuel, std::time::Instant::now());
            };
            if !core.post(tell) {
                tracing::warn!(
                    "the tenants' weights, quotas and roles could not reach the scheduler; they apply at \
                     the next reload"
                );
            }
        }
    }

    /// Reload whenever the file's modification time changes, until `stop`.
    async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(path) = self.source.file.clone() else { return };
        let mut seen = crate::tenants::modified(&path);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TENANTS_POLL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let now = crate::tenants::modified(&path);
            if now == seen {
                continue;
            }
            seen = now;
            match self.reload() {
                Ok(names) => tracing::info!(file = %path.display(), tenants = ?names, "tenants reloaded"),
                Err(e) => tracing::error!(error = %e, "tenants file not reloaded; the tenants in force stay"),
            }
        }
    }
}

/// Artifacts fetched for submissions at once (each up to the resolver's
/// size limit).
const CONCURRENT_FETCHES: usize = 4;

/// How long a stopping master waits for the calls under way to end.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How often the tenants file is checked for changes.
const TENANTS_POLL: Duration = Duration::from_secs(1);

/// Why the master could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The artifact store could not be opened.
    #[error("artifact store in {dir}: {source}")]
    Store {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: weft_core::artifact::ArtifactError,
    },
    /// A token cannot travel in metadata, or could not be generated or kept.
    #[error("bad token: {0}")]
    Token(String),
    /// The tenants cannot be loaded.
    #[error(transparent)]
    Tenants(#[from] TenantsError),
    /// TLS cannot be set up.
    #[error(transparent)]
    Tls(#[from] weft_core::proto::tls::TlsError),
    /// The server refused its TLS settings.
    #[error("TLS: {0}")]
    Transport(String),
    /// The state store cannot be opened or read.
    #[error(transparent)]
    State(#[from] crate::persist::StoreError),
    /// etcd cannot be reached, or refused the election.
    #[error(transparent)]
    Ha(#[from] crate::ha::HaError),
    /// The settings contradict each other.
    #[error("{0}")]
    Config(String),
}

/// A running master.
pub struct MasterHandle {
    /// Where it listens.
    pub address: SocketAddr,
    /// Its incarnation: every id it hands out carries it.
    pub incarnation: weft_core::ids::Incarnation,
    /// `https` when it serves TLS, else `http`.
    scheme: &'static str,
    /// The token agents present.
    pub cluster_token: String,
    /// The `default` tenant's admin token, if one was given or generated.
    pub client_token: Option<String>,
    /// What the master generated for itself (to tell the operator).
    pub generated: Generated,
    tenants: Arc<TenantsCell>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    /// The core loop: it commits what is left and closes the state store at
    /// the stop signal.
    core_loop: tokio::task::JoinHandle<()>,
    /// With `--ha`: the lead this master holds.
    leadership: Option<crate::ha::Leadership>,
}

impl MasterHandle {
    /// The `http://` URL clients and agents use.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    /// With `--ha`: a signal that turns true once this master no longer
    /// leads (it should then stop serving; started again, it stands by).
    pub fn lost_lead(&self) -> Option<watch::Receiver<bool>> {
        self.leadership.as_ref().map(crate::ha::Leadership::lost)
    }

    /// Load the tenants file again now (as on SIGHUP); the names in force
    /// after. On an error the tenants in force stay.
    ///
    /// # Errors
    /// Why the file cannot be loaded.
    pub fn reload_tenants(&self) -> Result<Vec<String>, TenantsError> {
        self.tenants.reload()
    }

    /// Stop serving and wait for the server to finish: calls under way get
    /// [`SHUTDOWN_GRACE`] to end (a driver's call waits for its action, which
    /// may never end), then their connections are dropped. Cancel safe:
    /// dropping the future still stops the master (the signal is sent first).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let abort = self.server.abort_handle();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.server).await.is_err() {
            tracing::warn!("calls still open after {SHUTDOWN_GRACE:?}: dropped");
            abort.abort();
        }
        // A master started again on the data directory finds the store closed.
        let _ = self.core_loop.await;
    }
}

/// The master process.
pub struct MasterNode;

impl MasterNode {
    /// Start serving.
    ///
    /// # Errors
    /// When the address cannot be bound, the data directory cannot hold the
    /// artifact store, or a token has characters metadata cannot carry.
    pub async fn start(mut config: MasterConfig) -> Result<MasterHandle, StartError> {
        let generated = credentials::ensure(&mut config).map_err(StartError::Token)?;
        weft_core::token::check_strength(&config.cluster_token)
            .map_err(|e| StartError::Token(format!("--cluster-token: {e}")))?;
        let mut protected = config.protected.clone();
        protected.push(config.data_dir.clone());
        let source = TenantsSource {
            file: config.tenants.clone(),
            client_tokens: [config.client_token.clone()].into_iter().filter(|t| !t.is_empty()).collect(),
            default_grants: config.grants.clone(),
            protected,
        };
        let tenants = Arc::new(TenantsCell {
            current: RwLock::new(Arc::new(source.load()?)),
            source,
            core: std::sync::OnceLock::new(),
        });
        let scheme = config.tls.scheme();
        // With several masters, this one waits for the lead before it listens.
        let leadership = match &config.ha {
            None => None,
            Some(_) if config.ephemeral => {
                return Err(StartError::Config("--ha keeps the state in etcd: drop --ephemeral".into()));
            }
            Some(_) if config.advertise.is_none() && config.listen.port() == 0 => {
                return Err(StartError::Config(
                    "--ha needs a fixed --listen port (or --advertise): the other masters' agents and clients find this one there".into(),
                ));
            }
            Some(ha) => {
                let url = config.advertise.clone().unwrap_or_else(|| format!("{scheme}://{}", config.listen));
                Some(crate::ha::Leadership::win(ha, &url).await?)
            }
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen { addr: config.listen, source })?;
        let address =
            listener.local_addr().map_err(|source| StartError::Listen { addr: config.listen, source })?;
        let server_tls = config.tls.server()?;
        let client_tls = config.tls.client()?;
        let advertised = config.advertise.clone().unwrap_or_else(|| format!("{scheme}://{address}"));
        let dir = config.data_dir.join("artifacts");
        std::fs::create_dir_all(&dir).map_err(|e| StartError::Store {
            dir: dir.clone(),
            source: weft_core::artifact::ArtifactError::Io { path: dir.clone(), source: e },
        })?;
        let store =
            ArtifactStore::local(&dir).map_err(|source| StartError::Store { dir: dir.clone(), source })?;
        let store = if config.max_result_size.as_u64() > store.max_size() {
            store.with_max_size(config.max_result_size)
        } else {
            store
        };
        let resolver =
            Arc::new(Resolver::new(store.clone(), ResolverConfig::default().with_s3(config.s3.clone())));
        let credentials =
            Credentials::new(&config.cluster_token).map_err(|s| StartError::Token(s.message().into()))?;

        // A master that keeps its state takes back what earlier runs kept,
        // and a run number none of them had.
        let (state_store, incarnation, restored) = if config.ephemeral {
            (None, weft_core::ids::Incarnation::fresh(), None)
        } else if let Some(leadership) = &leadership {
            let (store, incarnation, restored) = leadership.open_state().await?;
            let store = crate::persist::Store::Etcd(Arc::new(tokio::sync::Mutex::new(store)));
            (Some(store), incarnation, Some(restored))
        } else {
            let path = config.data_dir.join(crate::persist::FILE);
            let opened = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || crate::persist::StateStore::open(&path)).await
            };
            let (store, incarnation, restored) = opened.map_err(|e| crate::persist::StoreError {
                path,
                message: format!("opening it stopped: {e}"),
            })??;
            let store = crate::persist::Store::Local(Arc::new(std::sync::Mutex::new(store)));
            (Some(store), incarnation, Some(restored))
        };
        let core_config = CoreConfig {
            heartbeat_interval: config.heartbeat_interval,
            lost_after: config.lost_after,
            max_result_size: config.max_result_size.as_u64(),
            offer_filter: config.offer_filter,
            hold_timeout: config.hold_timeout,
            locality_wait: config.locality_wait,
            speculation: config.speculation,
        };
        let launcher = Arc::new(
            GrpcLauncher::new(credentials, Duration::from_secs(10), advertised).with_tls(client_tls),
        );
        // The clock ticks often enough to end launch back-offs on time.
        let tick =
            (config.heartbeat_interval / 4).clamp(Duration::from_millis(10), Duration::from_millis(100));
        let mut state = Core::new(incarnation, &core_config);
        state.configure(tenants.get().sharing().clone());
        state.set_fuel_quotas(tenants.get().fuel_quotas().clone(), std::time::Instant::now());
        if let Some(restored) = restored {
            let (runs, jobs) = (restored.runs, restored.jobs.len());
            let now = tenants.get();
            state.restore(restored, |tenant| Arc::new(now.policy(tenant).s3().clone()));
            tracing::info!(runs, jobs, "weft.master.state_store.restored");
        }
        let (stop, mut stopped) = watch::channel(false);
        let (core, core_loop) =
            core::start(state, launcher, store.clone(), state_store, tick, stop.subscribe());
        let _ = tenants.core.set(core.clone());
        let master = MasterService::new(core.clone(), &config.cluster_token);
        let disconnects = core.clone();
        let (cluster_token, client_token) =
            (config.cluster_token.clone(), Some(config.client_token.clone()).filter(|t| !t.is_empty()));
        let owners = artifacts::Owners::default();
        let gate = artifacts::MasterGate::new(&config.cluster_token, Arc::clone(&tenants), owners.clone());
        let shared = Shared {
            config: Arc::new(config),
            resolver,
            core,
            tenants: Arc::clone(&tenants),
            owners,
            fetches: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_FETCHES)),
            acts: driver::RunningActs::default(),
        };
        tokio::spawn(Arc::clone(&tenants).watch(stop.subscribe()));
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = server_tls {
            server = server.tls_config(tls).map_err(|e| StartError::Transport(e.to_string()))?;
        }
        let router = server
            .add_service(master.into_server())
            .add_service(ArtifactService::new(store, Arc::new(gate)).into_server())
            .add_service(JobsServer::new(shared.clone()))
            .add_service(DriverServer::new(shared));
        let server = tokio::spawn(async move {
            // Nagle's algorithm on accepted sockets holds small replies back
            // for the peer's delayed ACK: ~40 ms per RPC on loopback.
            let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            // An agent whose connection closed has its port checked at once.
            let (incoming, mut closed) = connections::watch(incoming);
            tokio::spawn(async move {
                while let Some(agent) = closed.recv().await {
                    let now = std::time::Instant::now();
                    let probe = Box::new(move |c: &mut Core| c.agent_disconnected(agent, now));
                    if disconnects.send(core::Command::With(probe)).await.is_err() {
                        break;
                    }
                }
            });
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = router.serve_with_incoming_shutdown(incoming, shutdown).await {
                tracing::error!(error = %e, "master server failed");
            }
        });
        tracing::info!(%address, %incarnation, "master listening");
        Ok(MasterHandle {
            address,
            incarnation,
            scheme,
            cluster_token,
            client_token,
            generated,
            tenants,
            stop,
            server,
            core_loop,
            leadership,
        })
    }
}
