//! `weft master`, `weft submit`, `weft status` and `weft kill`.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use weft_core::access::Grant;
use weft_core::artifact::RemoteArtifacts;
use weft_core::ids::JobId;
use weft_core::metering::TaskMetering;
use weft_core::proto::auth::Credentials;
use weft_core::proto::tls::TlsConfig;
use weft_core::proto::v1::jobs_client::JobsClient;
use weft_core::proto::v1::{
    self, JobState, JobStatus, KillRequest, ListRequest, StatusRequest, SubmitRequest,
};
use weft_master::node::{MasterConfig, MasterNode};

/// Options of `weft master`.
#[derive(Args)]
pub struct MasterArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: std::net::SocketAddr,
    /// Token agents must present (give the same to `weft agent`). Default: one
    /// generated at the first start and kept in DATA_DIR/credentials.toml.
    #[arg(long, env = "WEFT_CLUSTER_TOKEN", default_value = "", hide_env_values = true)]
    cluster_token: String,
    /// Token of the `default` tenant, an admin that sees every job (clients
    /// pass it as --token). Without it and without --tenants, one is
    /// generated like the cluster token and printed at start.
    #[arg(long, env = "WEFT_CLIENT_TOKEN", default_value = "", hide_env_values = true)]
    client_token: String,
    /// A TOML file of tenants, each with the hashes of its tokens (`weft token
    /// new` makes both) and the data its jobs may use. Reloaded when it
    /// changes, and on SIGHUP.
    #[arg(long, env = "WEFT_TENANTS")]
    tenants: Option<PathBuf>,
    /// Data the `default` tenant's jobs may use: ROOT (a local directory,
    /// s3://bucket/prefix or https://host/path) with `=read`, `=write` or
    /// `=read-write` (the default). Repeat it, or separate with commas.
    /// Jobs reach nothing else.
    #[arg(long = "grant", env = "WEFT_GRANTS", value_delimiter = ',', value_parser = parse_grant)]
    grants: Vec<Grant>,
    #[command(flatten)]
    tls: TlsArgs,
    /// Directory for the master's artifact store and its state store
    /// (`state.redb`: jobs, their drivers' progress, usage records). A master
    /// started again on it, after a crash or `kill -9` too, goes on with the
    /// jobs that were running and still shows those that ended.
    #[arg(long, default_value = ".weft/master")]
    data_dir: PathBuf,
    /// Keep no state on disk: a restarted master starts empty and the jobs
    /// that were running are lost.
    #[arg(long)]
    ephemeral: bool,
    /// Run as one of several masters: they elect a leader through etcd
    /// (`etcd://host:port[,host:port…][/prefix]`, prefix `/weft` by default)
    /// and it keeps the state there. The others stand by without listening
    /// until the leader is gone; agents and clients given every master's
    /// URL (`--master URL,URL,…`) follow the leader. Give the masters one
    /// --data-dir on shared storage (their artifacts live there).
    #[arg(long, env = "WEFT_HA")]
    ha: Option<String>,
    /// With --ha: how long the leader may go silent (killed, paused, cut off
    /// from etcd) before another master takes over. etcd raises it to its
    /// own minimum (2s with its default timing).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    ha_lease: Duration,
    /// Give stragglers a speculative copy on another agent (Spark's
    /// `spark.speculation`): once --speculation-quantile of a stage's tasks
    /// have finished, a task running --speculation-multiplier times their
    /// median time gets one; the first to finish wins, the other is killed.
    #[arg(long)]
    speculation: bool,
    /// The share of a stage's tasks that must have finished before any is
    /// speculated (0 to 1).
    #[arg(long, default_value_t = 0.75, value_parser = parse_quantile)]
    speculation_quantile: f64,
    /// How many times the median time of a stage's finished tasks a task
    /// must have run to be speculated (at least 1).
    #[arg(long, default_value_t = 1.5, value_parser = parse_multiplier)]
    speculation_multiplier: f64,
    /// The most a `collect` or `take` may return to its driver, e.g. `2GiB`
    /// (larger results fail their action: write them with save_as_text_file).
    #[arg(long, default_value = "2GiB")]
    max_result_size: bytesize::ByteSize,
    /// How long a job's driver may run unless the job sets its own
    /// `--job-deadline`, e.g. `12h` (default: no limit).
    #[arg(long, value_parser = humantime::parse_duration)]
    job_deadline: Option<Duration>,
    /// How often agents heartbeat, e.g. `500ms`; an agent silent for 5
    /// intervals is lost, and after a restart agents register again within one.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
    /// How many times a job's driver is started again on another agent when
    /// its agent is lost, unless the job sets its own `--driver-restarts`
    /// (Spark's `--supervise`; 0: such jobs fail).
    #[arg(long, default_value_t = 3)]
    driver_restarts: u32,
    /// A TOML file with the full configuration (flags override nothing in it).
    #[arg(long)]
    config: Option<PathBuf>,
}

pub async fn master(args: MasterArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("{}: invalid master configuration", path.display()))?
        }
        None => MasterConfig {
            listen: args.listen,
            cluster_token: args.cluster_token,
            client_token: args.client_token,
            tenants: args.tenants,
            grants: args.grants,
            tls: args.tls.config(),
            data_dir: args.data_dir,
            ephemeral: args.ephemeral,
            ha: args
                .ha
                .as_deref()
                .map(|url| weft_master::ha::HaConfig::parse(url, args.ha_lease))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--ha: {e}"))?,
            speculation: args.speculation.then(|| weft_master::job::Speculation {
                quantile: args.speculation_quantile,
                multiplier: args.speculation_multiplier,
                ..Default::default()
            }),
            max_result_size: args.max_result_size,
            job_deadline: args.job_deadline,
            heartbeat_interval: args.heartbeat_interval,
            driver_restarts: args.driver_restarts,
            ..Default::default()
        },
    };
    let handle = MasterNode::start(config).await?;
    // The incarnation starts every id this run hands out (job-<incarnation>-1, …).
    eprintln!(
        "weft master listening on {} (incarnation {}; Ctrl-C to stop)",
        handle.url(),
        handle.incarnation
    );
    print_generated(&handle);
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut lost = handle.lost_lead();
    let lost_lead = async {
        match &mut lost {
            Some(lost) => lost.wait_for(|l| *l).await.map(|_| ()).unwrap_or(()),
            None => std::future::pending().await,
        }
    };
    tokio::pin!(lost_lead);
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r?; break; }
            () = &mut lost_lead => {
                eprintln!("weft master: this master no longer leads (its etcd lease lapsed, or another master took over): stopping");
                handle.shutdown().await;
                anyhow::bail!("lost the lead; start it again to stand by");
            }
            _ = hangup.recv() => match handle.reload_tenants() {
                Ok(names) => eprintln!("tenants reloaded: {}", names.join(", ")),
                Err(e) => eprintln!("tenants not reloaded (the ones in force stay): {e}"),
            },
        }
    }
    eprintln!("stopping");
    handle.shutdown().await;
    Ok(())
}

fn parse_grant(text: &str) -> Result<Grant, String> {
    Grant::parse(text).map_err(|e| e.to_string())
}

/// Tell the operator how to use the tokens the master generated, as Jupyter
/// prints its URL with the token.
fn print_generated(handle: &weft_master::node::MasterHandle) {
    let g = &handle.generated;
    let Some(file) = &g.file else { return };
    let url = handle.url();
    eprintln!("no tokens were configured: generated ones are kept in {} (owner only)", file.display());
    if g.cluster_token {
        eprintln!("  agents:  WEFT_CLUSTER_TOKEN={} weft agent --master {url}", handle.cluster_token);
    }
    if let (true, Some(t)) = (g.client_token, &handle.client_token) {
        eprintln!("  clients: WEFT_TOKEN={t} weft submit --master {url} JOB.wasm");
    }
    eprintln!(
        "  (set --cluster-token, --client-token or --tenants to choose them; see `weft master --help`)"
    );
}

/// Options of `weft submit`.
#[derive(Args)]
pub struct SubmitArgs {
    /// The job: a local .wasm file (pushed to the master first) or an artifact URI
    /// (blake3:<hex>, file://, s3://, https://, optionally #blake3:<hex>).
    job: String,
    /// The job's arguments (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
    /// Wait for the job to end, showing its progress, and exit non-zero if it failed.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    limits: JobLimits,
    #[command(flatten)]
    client: ClientArgs,
}

/// A job's own limits; each unset one is the master's default, and none may
/// pass the master's maximum.
#[derive(Args, Clone, Default)]
pub struct JobLimits {
    /// How long the job's driver (its `main`) may run in all, e.g. `2h`; apart
    /// from --task-deadline, which bounds each task. Default: the master's
    /// (none unless its operator set one).
    #[arg(long, value_parser = humantime::parse_duration)]
    job_deadline: Option<Duration>,
    /// Failures of one task before its action fails.
    #[arg(long)]
    max_task_attempts: Option<u32>,
    /// How many times the job's driver is started again on another agent
    /// when its agent is lost, as Spark's `--supervise` (0: the job fails
    /// instead). A restarted driver runs `main` again; its actions adopt
    /// what the earlier run's did (answers, map outputs, kept partitions,
    /// committed output), so a driver must ask for the same actions in the
    /// same order. Default: the master's (3 unless its operator set another).
    #[arg(long)]
    driver_restarts: Option<u32>,
    /// Fuel of each task (about one unit per WebAssembly instruction).
    #[arg(long)]
    fuel: Option<u64>,
    /// Linear memory of each task (and of the driver), e.g. `1GiB`.
    #[arg(long)]
    task_memory: Option<bytesize::ByteSize>,
    /// Wall-clock limit of each task, e.g. `30s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    task_deadline: Option<Duration>,
    /// Task slots each task holds while it runs (its CPU share for fair
    /// sharing: a task of 2 slots counts as two tasks). Default 1; at most
    /// the slots of the largest agent.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    task_slots: Option<u32>,
    /// The most fuel the job's tasks may burn in all; past it the job fails,
    /// naming the budget (`weft status` shows what it burned so far).
    #[arg(long)]
    fuel_budget: Option<u64>,
}

impl JobLimits {
    fn task_limits(&self) -> v1::TaskLimits {
        v1::TaskLimits {
            fuel: self.fuel.unwrap_or(0),
            memory_bytes: self.task_memory.map_or(0, |m| m.as_u64().max(1)),
            deadline_ms: self
                .task_deadline
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)),
            slots: self.task_slots.unwrap_or(0),
            ..Default::default()
        }
    }
}

impl SubmitArgs {
    /// A waited submission to a local master presenting `token`.
    pub fn local(
        job: String,
        args: Vec<String>,
        limits: JobLimits,
        master: String,
        token: String,
        json: bool,
    ) -> Self {
        Self { job, args, wait: true, limits, client: ClientArgs { master, json, token, tls_ca: None } }
    }
}

/// How a client command reaches the master, and how it prints.
#[derive(Args)]
pub struct ClientArgs {
    /// The master; with several (HA), every one's URL, separated by commas:
    /// the client uses whichever leads.
    #[arg(long, env = "WEFT_MASTER", default_value = "http://127.0.0.1:7070")]
    master: String,
    /// Print JSON for scripts.
    #[arg(long)]
    pub(crate) json: bool,
    /// Your tenant's token for the master's client API (from its operator, or
    /// printed by a `weft master` that generated it).
    #[arg(long, env = "WEFT_TOKEN", default_value = "", hide_env_values = true)]
    token: String,
    /// The CA that signed an https:// master's certificate (PEM).
    #[arg(long, env = "WEFT_TLS_CA")]
    tls_ca: Option<PathBuf>,
}

impl ClientArgs {
    /// Whether to print JSON.
    pub(crate) fn json(&self) -> bool {
        self.json
    }
}

/// Options of `weft status`.
#[derive(Args)]
pub struct StatusArgs {
    /// A job id; all jobs when omitted.
    job: Option<String>,
    /// Follow the job until it ends: a line each time it changes (at most
    /// about ten a second), as JSON lines with --json.
    #[arg(long, short, requires = "job")]
    watch: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Options of `weft kill`.
#[derive(Args)]
pub struct KillArgs {
    /// The job to kill (`weft status` lists them).
    job: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// How a server process serves TLS and trusts its peers' certificates.
#[derive(Args, Clone, Default)]
pub struct TlsArgs {
    /// Serve TLS with this certificate (PEM; with --tls-key). Its address
    /// becomes https://.
    #[arg(long, env = "WEFT_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "WEFT_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Trust certificates signed by this CA (PEM) when calling https:// peers.
    #[arg(long, env = "WEFT_TLS_CA")]
    tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The settings these flags give.
    pub fn config(&self) -> TlsConfig {
        TlsConfig { cert: self.tls_cert.clone(), key: self.tls_key.clone(), ca: self.tls_ca.clone() }
    }
}

/// A connected channel to the master at `master`; TLS trusting `ca` when it
/// is https://. With several masters (`URL,URL,…`, HA), the first that
/// takes the connection: the leader (the others stand by without listening).
pub async fn channel(master: &str, ca: Option<&std::path::Path>) -> Result<Channel> {
    let tls = TlsConfig { ca: ca.map(Into::into), ..Default::default() }.client()?;
    let masters: Vec<&str> = master.split(',').map(str::trim).filter(|m| !m.is_empty()).collect();
    let mut last = None;
    for m in &masters {
        let endpoint = weft_core::proto::tls::endpoint(m, tls.as_ref())
            .with_context(|| format!("bad master address `{m}` (expected e.g. http://127.0.0.1:7070)"))?;
        match endpoint.connect_timeout(Duration::from_secs(5)).connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) => last = Some(e),
        }
    }
    let Some(e) = last else { anyhow::bail!("no master address given (--master)") };
    Err(anyhow::Error::new(e).context(if masters.len() > 1 {
        format!("cannot reach any master of {master}: is one of them running and leading?")
    } else {
        format!("cannot reach the master at {master}: is `weft master` (or `weft local`) running?")
    }))
}

type Jobs = JobsClient<InterceptedService<Channel, Credentials>>;

fn parse_quantile(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(q) if q > 0.0 && q <= 1.0 => Ok(q),
        _ => Err(format!("`{s}` is not a share between 0 and 1 (e.g. 0.75)")),
    }
}

fn parse_multiplier(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(m) if m >= 1.0 => Ok(m),
        _ => Err(format!("`{s}` is not a multiplier of at least 1 (e.g. 1.5)")),
    }
}

/// How long a client waiting for a job waits for a master that went away
/// (it restarts, and goes on with its jobs) before it gives up.
const MASTER_GONE_FOR: Duration = Duration::from_secs(120);

/// Whether a call failed because the master went away (a restart), not
/// because it answered no.
fn master_gone(status: &tonic::Status) -> bool {
    matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled)
}

/// Follow `job` again once the master is back, for up to
/// [`MASTER_GONE_FOR`]; the job goes on without the client meanwhile.
async fn rewatch(
    client: &ClientArgs,
    job: v1::JobRef,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<(Jobs, tonic::Streaming<v1::JobStatus>)> {
    let note =
        "the master is unreachable: waiting for it to come back (the job goes on; Ctrl-C stops waiting)";
    match bar {
        Some(bar) => bar.set_message(note),
        None => tracing::warn!("{note}"),
    }
    let deadline = tokio::time::Instant::now() + MASTER_GONE_FOR;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let attempt = async {
            let mut c = jobs(client).await?;
            let stream = c.watch(StatusRequest { job: Some(job) }).await?.into_inner();
            anyhow::Ok((c, stream))
        };
        match attempt.await {
            Ok(again) => return Ok(again),
            // It is back, and answered no (a master that keeps no state forgot the job).
            Err(e) if e.downcast_ref::<tonic::Status>().is_some_and(|s| !master_gone(s)) => return Err(e),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e.context(format!(
                    "the master did not come back within {}s; `weft status {}` tells how the job stands once it does",
                    MASTER_GONE_FOR.as_secs(),
                    job_name(Some(&job))
                )));
            }
            Err(_) => {}
        }
    }
}

pub(crate) async fn jobs(client: &ClientArgs) -> Result<Jobs> {
    let channel = channel(&client.master, client.tls_ca.as_deref()).await?;
    Ok(JobsClient::with_interceptor(channel, Credentials::new(&client.token)?))
}

fn state_name(s: i32) -> &'static str {
    match JobState::try_from(s) {
        Ok(JobState::Pending) => "pending",
        Ok(JobState::Running) => "running",
        Ok(JobState::Succeeded) => "succeeded",
        Ok(JobState::Failed) => "failed",
        Ok(JobState::Killed) => "killed",
        _ => "unknown",
    }
}

/// A job id as people read it (`job-5f3a91c2-1`).
pub(crate) fn job_name(job: Option<&v1::JobRef>) -> String {
    weft_core::proto::job_id(job, "reply").map_or_else(|e| format!("<{e}>"), |j| j.to_string())
}

/// A job id given on the command line, on the wire.
pub(crate) fn job_ref(id: &str) -> Result<v1::JobRef> {
    Ok(id.parse::<JobId>().map_err(|e| anyhow::anyhow!("{e}"))?.into())
}

fn json(s: &JobStatus) -> serde_json::Value {
    let m: TaskMetering = s.totals.as_ref().map(Into::into).unwrap_or_default();
    serde_json::json!({
        "job": job_name(s.job.as_ref()), "tenant": s.tenant, "state": state_name(s.state), "message": s.message,
        "fuel_budget": s.fuel_budget, "driver_restarts": s.driver_restarts,
        "metering": m, "driver_log": s.driver_log,
        "stages": s.stages.iter().map(|st| serde_json::json!({
            "stage": st.stage_id, "name": st.name, "tasks": st.tasks,
            "running": st.running, "finished": st.finished, "failed": st.failed,
        })).collect::<Vec<_>>(),
    })
}

fn summary(s: &JobStatus) -> String {
    let m: TaskMetering = s.totals.as_ref().map(Into::into).unwrap_or_default();
    let mut out = format!("{} ({}): {}", job_name(s.job.as_ref()), s.tenant, state_name(s.state));
    if !s.message.is_empty() {
        out.push_str(&format!(" — {}", s.message));
    }
    out.push_str(&format!(
        "\n  tasks: {} calls, {} records in, {} out; fuel {}; peak memory {}; cpu {:?}; wall {:?}",
        m.calls,
        m.records_in,
        m.records_out,
        m.fuel,
        bytesize::ByteSize(m.peak_memory),
        m.cpu,
        m.wall
    ));
    if s.fuel_budget > 0 {
        out.push_str(&format!(" (fuel budget {})", s.fuel_budget));
    }
    if s.driver_restarts > 0 {
        let times = match s.driver_restarts {
            1 => "once".to_string(),
            n => format!("{n} times"),
        };
        out.push_str(&format!("\n  driver restarted {times} after its agent was lost"));
    }
    out
}

/// Exit code for a job state: 0 succeeded, 1 failed or killed, 3 still running.
fn exit_code(s: &JobStatus) -> u8 {
    match JobState::try_from(s.state) {
        Ok(JobState::Succeeded) => 0,
        Ok(JobState::Failed | JobState::Killed) => 1,
        _ => 3,
    }
}

pub async fn submit(a: SubmitArgs) -> Result<u8> {
    let artifact = if std::path::Path::new(&a.job).exists() {
        let bytes = tokio::fs::read(&a.job).await.with_context(|| format!("reading {}", a.job))?;
        let credentials = Credentials::new(&a.client.token)?;
        let digest =
            RemoteArtifacts::new(channel(&a.client.master, a.client.tls_ca.as_deref()).await?, credentials)
                .put(bytes.into())
                .await?;
        digest.to_string()
    } else {
        a.job.clone()
    };
    let mut c = jobs(&a.client).await?;
    // The job's relative paths are the submitter's: the master resolves them against
    // this directory. Without one (unusable, or not UTF-8) the master refuses them.
    let working_dir = std::env::current_dir()
        .ok()
        .and_then(|dir| dir.into_os_string().into_string().ok())
        .unwrap_or_default();
    let req = SubmitRequest {
        artifact,
        args: a.args.clone(),
        name: a.job.clone(),
        job_deadline_ms: a
            .limits
            .job_deadline
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)),
        max_task_attempts: a.limits.max_task_attempts.unwrap_or(0),
        limits: Some(a.limits.task_limits()),
        working_dir,
        fuel_budget: a.limits.fuel_budget.unwrap_or(0),
        driver_restarts: a.limits.driver_restarts,
    };
    let reply = c.submit(req).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?.into_inner();
    let job = reply.job.unwrap_or_default();
    if !a.wait {
        if a.client.json {
            println!("{}", serde_json::json!({ "job": job_name(Some(&job)), "component": reply.component }));
        } else {
            println!("{}", job_name(Some(&job)));
        }
        return Ok(0);
    }
    let bar = (!a.client.json).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} tasks  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let mut stream = c.watch(StatusRequest { job: Some(job) }).await?.into_inner();
    let mut last = None;
    loop {
        // The master sends a status whenever it changes; poll it too so that
        // task progress shows between state changes.
        let next = tokio::time::timeout(Duration::from_millis(300), stream.message()).await;
        let status = match next {
            Ok(Ok(Some(status))) => status,
            Ok(Ok(None)) => break,
            Ok(Err(e)) if master_gone(&e) => {
                (c, stream) = rewatch(&a.client, job, bar.as_ref()).await?;
                continue;
            }
            Ok(Err(e)) => return Err(anyhow::anyhow!("{}", e.message())),
            Err(_) => match c.status(StatusRequest { job: Some(job) }).await {
                Ok(status) => status.into_inner(),
                Err(e) if master_gone(&e) => {
                    (c, stream) = rewatch(&a.client, job, bar.as_ref()).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            },
        };
        if let Some(bar) = &bar {
            let tasks: u32 = status.stages.iter().map(|s| s.tasks).sum();
            let done: u32 = status.stages.iter().map(|s| s.finished).sum();
            bar.set_length(u64::from(tasks));
            bar.set_position(u64::from(done));
            let stages: Vec<String> = status
                .stages
                .iter()
                .map(|s| {
                    format!(
                        "{} {}/{}{}",
                        s.name,
                        s.finished,
                        s.tasks,
                        if s.running > 0 { format!(" ({} running)", s.running) } else { String::new() }
                    )
                })
                .collect();
            bar.set_message(format!(
                "{} {} — {}",
                job_name(status.job.as_ref()),
                state_name(status.state),
                stages.join(", ")
            ));
        }
        last = Some(status);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let Some(status) = last else { bail!("the master closed the job's status stream") };
    if a.client.json {
        println!("{}", json(&status));
    } else {
        if !status.driver_log.is_empty() {
            println!("{}", status.driver_log.trim_end());
        }
        println!("{}", summary(&status));
    }
    Ok(exit_code(&status))
}

pub async fn status(a: StatusArgs) -> Result<u8> {
    let mut c = jobs(&a.client).await?;
    if let (true, Some(id)) = (a.watch, &a.job) {
        let mut stream = c
            .watch(StatusRequest { job: Some(job_ref(id)?) })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner();
        let mut last = None;
        while let Some(status) = stream.message().await.map_err(|s| anyhow::anyhow!("{}", s.message()))? {
            if a.client.json {
                println!("{}", json(&status));
            } else {
                println!("{}", summary(&status));
            }
            last = Some(status);
        }
        let Some(status) = last else { bail!("the master closed the job's status stream") };
        return Ok(exit_code(&status));
    }
    let statuses = match &a.job {
        Some(id) => vec![
            c.status(StatusRequest { job: Some(job_ref(id)?) })
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                .into_inner(),
        ],
        None => c.list(ListRequest {}).await?.into_inner().jobs,
    };
    if a.client.json {
        println!("{}", serde_json::Value::Array(statuses.iter().map(json).collect()));
    } else if statuses.is_empty() {
        println!("no jobs");
    } else {
        for s in &statuses {
            println!("{}", summary(s));
        }
    }
    Ok(statuses.first().filter(|_| a.job.is_some()).map_or(0, exit_code))
}

/// `weft kill`: stop a job's driver and every task of its actions. Exits 0
/// when the job is (now) killed, 1 when it had already ended otherwise.
pub async fn kill(a: KillArgs) -> Result<u8> {
    let mut c = jobs(&a.client).await?;
    let job = Some(job_ref(&a.job)?);
    c.kill(KillRequest { job }).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    let status =
        c.status(StatusRequest { job }).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?.into_inner();
    if a.client.json {
        println!("{}", json(&status));
    } else {
        println!("{}", summary(&status));
    }
    Ok(u8::from(status.state != JobState::Killed as i32))
}
