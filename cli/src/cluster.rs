//! `weft agent` and `weft local`.

use crate::jobs::{SubmitArgs, submit};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use weft_agent::node::{AgentConfig, AgentNode};
use weft_core::access::{Access, Grant};
use weft_core::io::DataLocation;
use weft_master::node::{MasterConfig, MasterNode};

/// Options of `weft agent`.
#[derive(Args)]
pub struct AgentArgs {
    /// The master to register with; with several (HA), every one's URL,
    /// separated by commas: the agent follows whichever leads.
    #[arg(long, env = "WEFT_MASTER", default_value = "http://127.0.0.1:7070")]
    master: String,
    /// Address to listen on (the Agent and Blocks services).
    #[arg(long, default_value = "127.0.0.1:7071")]
    listen: std::net::SocketAddr,
    /// Concurrent tasks (default: the machine's cores).
    #[arg(long)]
    slots: Option<u32>,
    /// Memory offered to tasks, e.g. 8GiB.
    #[arg(long, default_value = "4GiB")]
    memory: bytesize::ByteSize,
    /// Tasks that may wait here for a free slot beyond --slots, so the next
    /// task is already here when one ends (default: four times --slots; 0
    /// turns launch-ahead off, so that places are exactly slots).
    #[arg(long)]
    queue: Option<u32>,
    /// Reserve slots and memory for a role's tenants, e.g.
    /// `--reserve batch:slots=2,memory=4GiB` (repeat for several roles): they
    /// are offered to that role first, and lent to others only as revocable
    /// tasks, killed when the role needs the room.
    #[arg(long, value_name = "ROLE:slots=N,memory=SIZE")]
    reserve: Vec<weft_agent::node::Reserve>,
    /// The master's cluster token.
    #[arg(long, env = "WEFT_CLUSTER_TOKEN", default_value = "")]
    cluster_token: String,
    /// Working directory (shuffle files, compiled components, artifact cache).
    #[arg(long, default_value = ".weft/agent")]
    work_dir: PathBuf,
    /// Where compiled components are kept, by digest (default: `components`
    /// under the working directory). Agents of one machine may share one
    /// directory, so that each component is compiled once per machine; it must
    /// not be writable by anyone the agents do not trust.
    #[arg(long, env = "WEFT_COMPILE_CACHE", value_name = "DIR")]
    compile_cache: Option<PathBuf>,
    #[command(flatten)]
    tls: crate::jobs::TlsArgs,
    /// A TOML file with the full configuration.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn agent_config(
    work_dir: &std::path::Path,
    compile_cache: Option<&std::path::Path>,
    master: String,
    token: String,
) -> AgentConfig {
    let defaults = AgentConfig::default();
    let compiled = compile_cache.map_or_else(|| work_dir.join("components"), std::path::Path::to_path_buf);
    AgentConfig {
        master,
        cluster_token: token,
        work_dir: work_dir.join("work"),
        cache_dir: work_dir.join("artifacts"),
        sandbox: defaults.sandbox.clone().with_cache_dir(compiled),
        ..defaults
    }
}

pub async fn agent(a: AgentArgs) -> Result<()> {
    let config = match &a.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("{}: invalid agent configuration", path.display()))?
        }
        None => {
            let mut c = agent_config(&a.work_dir, a.compile_cache.as_deref(), a.master, a.cluster_token);
            c.listen = a.listen;
            c.memory = a.memory;
            c.queue = a.queue;
            c.reserve = a.reserve;
            c.tls = a.tls.config();
            if let Some(s) = a.slots {
                c.slots = s;
            }
            c
        }
    };
    let handle = AgentNode::start(config).await?;
    eprintln!(
        "weft agent {} serving at {} (Ctrl-C to stop)",
        handle.agent_id().map(|a| a.to_string()).unwrap_or_default(),
        handle.address()
    );
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping");
    handle.shutdown().await?;
    Ok(())
}

/// Options of `weft local`.
#[derive(Args)]
pub struct LocalArgs {
    /// The job: a .wasm component or an artifact URI.
    job: String,
    /// The job's arguments (after `--`), e.g. input and output paths.
    #[arg(last = true)]
    args: Vec<String>,
    /// Agents to start.
    #[arg(long, default_value_t = 1)]
    agents: u32,
    #[command(flatten)]
    limits: crate::jobs::JobLimits,
    /// Task slots per agent (default: the machine's cores).
    #[arg(long)]
    slots: Option<u32>,
    /// Where the master and agents keep their files.
    #[arg(long, default_value = ".weft/local")]
    dir: PathBuf,
    /// Where compiled components are kept, by digest (default: `components`
    /// under `--dir`, shared by the agents).
    #[arg(long, env = "WEFT_COMPILE_CACHE", value_name = "DIR")]
    compile_cache: Option<PathBuf>,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
    /// The most a `collect` or `take` may return to the driver, e.g. `2GiB`.
    #[arg(long, default_value = "2GiB")]
    max_result_size: bytesize::ByteSize,
}

/// What a `weft local` job may read and write: the working directory and
/// every local path its arguments name (resolved against it), as the user
/// running it could.
fn local_grants(args: &[String]) -> Result<Vec<Grant>> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mut grants = vec![Grant { root: cwd.display().to_string(), access: Access::ReadWrite, s3: None }];
    for arg in args {
        // Any argument that reads as a local path: granting a word that is no
        // path gives nothing the user could not reach anyway.
        if let Ok(loc) = DataLocation::parse_in(arg, Some(&cwd), &Default::default())
            && let Some(path) = loc.local_path()
        {
            grants.push(Grant { root: path.display().to_string(), access: Access::ReadWrite, s3: None });
        }
    }
    Ok(grants)
}

/// A master and agents in this process, the job submitted and waited for.
pub async fn local(a: LocalArgs) -> Result<u8> {
    let master = MasterNode::start(MasterConfig {
        listen: "127.0.0.1:0".parse()?,
        data_dir: a.dir.join("master"),
        // One job, in this process: nothing to go on with after it.
        ephemeral: true,
        max_result_size: a.max_result_size,
        grants: local_grants(&a.args)?,
        // The master's and agents' own files, even under the working directory.
        protected: vec![std::path::absolute(&a.dir).unwrap_or_else(|_| a.dir.clone())],
        // The agents live in this process: one whose heartbeats a busy
        // machine delays for seconds is starved, not lost, and losing it
        // would only fail the job (its driver runs there). A minute.
        lost_after: 60,
        ..Default::default()
    })
    .await?;
    let mut agents = Vec::new();
    for i in 0..a.agents.max(1) {
        let compiled = a.compile_cache.clone().unwrap_or_else(|| a.dir.join("components"));
        let mut c = agent_config(
            &a.dir.join(format!("agent-{i}")),
            Some(&compiled),
            master.url(),
            master.cluster_token.clone(),
        );
        c.listen = "127.0.0.1:0".parse()?;
        if let Some(s) = a.slots {
            c.slots = s;
        }
        agents.push(AgentNode::start(c).await.context("starting an agent")?);
    }
    // The master generated its tokens (kept in its data directory): its own
    // agents and this submission use them, so nothing else can.
    let token = master.client_token.clone().unwrap_or_default();
    let code = submit(SubmitArgs::local(a.job, a.args, a.limits, master.url(), token, a.json)).await;
    for agent in agents {
        let _ = agent.shutdown().await;
    }
    master.shutdown().await;
    code
}
