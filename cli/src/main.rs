//! `weft`: the command line of the weft grid.
//!
//! Commands: `local` (master and agents in one process), `master`, `agent`,
//! `submit`, `status`, `kill`, `usage` (the cluster), `artifact` (the
//! content-addressed store), `task run` (the metered sandbox on its own).

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;
use weft_agent::{Chain, Op, OpKind, Sandbox, SandboxConfig, TaskContext, WasmPool};
use weft_core::artifact::{ArtifactStore, ArtifactUri, Digest, RemoteArtifacts, Resolver, ResolverConfig};
use weft_core::codec::batch::{BatchWriter, entries};
use weft_core::limits::TaskLimits;
use weft_core::metering::EndReason;

/// weft: a WebAssembly-sandboxed task execution grid.
///
/// User code ships as WebAssembly components, addressed by blake3 digest and
/// run under fuel, memory and deadline limits.
#[derive(Parser)]
#[command(name = "weft", version, propagate_version = true, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

mod agents;
mod cluster;
mod jobs;
mod tenants;
mod usage;

#[derive(Subcommand)]
enum Command {
    /// Run a master: the scheduler, agents' registry, artifact store and client API.
    ///
    /// Without tokens it makes a cluster and a client token and prints how to
    /// use them.
    ///
    /// Example: weft master --listen 0.0.0.0:7070 --tenants tenants.toml
    Master(jobs::MasterArgs),
    /// Submit a job (a .wasm component or an artifact URI) to a master.
    ///
    /// Example: weft submit wordcount.wasm --wait -- file:///data/in.txt file:///data/out
    Submit(jobs::SubmitArgs),
    /// Show one job, or all jobs.
    Status(jobs::StatusArgs),
    /// What task and driver attempts consumed: fuel, CPU, slot- and
    /// memory-time, bytes, shuffle; by tenant, job, stage or attempt.
    ///
    /// Every ended attempt is counted, failed, killed and lost ones too,
    /// each with its end (finished, out_of_fuel, deadline, memory_limit,
    /// guest_trap, guest_error, host_error, killed, fetch_failed, lost,
    /// refused); each total is the exact sum of its attempts. A tenant sees
    /// its own usage and, if it has a fuel quota, what it burned of it in the
    /// current window and when that resets; an admin sees every tenant's.
    #[command(after_help = "Examples:
  weft usage                                     your tenant (every tenant, for an admin)
  weft usage --since 1d --by job                 each job that burned anything in the last day
  weft usage --job job-5f3a91c2-3 --by stage     one job, stage by stage
  weft usage --job job-5f3a91c2-3 --attempts     every attempt: agent, times, end, metering
  weft usage --tenant analytics --since 2025-01-01T00:00:00Z --until 2025-02-01T00:00:00Z --csv > jan.csv
  weft usage --attempts --json | jq -s 'map(.fuel) | add'")]
    Usage(usage::UsageArgs),
    /// Kill a running job: its driver and every task of its actions stop.
    ///
    /// Example: weft kill job-5f3a91c2-3 (the id `weft submit` printed)
    Kill(jobs::KillArgs),
    /// Show what each tenant holds of the cluster: task places, memory, its
    /// weighted dominant share and quota (your tenant; every tenant for an admin).
    ///
    /// Example: weft tenants --json
    Tenants(tenants::TenantsArgs),
    /// List the live agents: what they offer and reserve, what runs there (admins).
    Agents(agents::AgentsArgs),
    /// Reserve an agent's slots and memory for a role's tenants (admins).
    ///
    /// Reserved resources are offered to the role's tenants first; others
    /// may borrow them only as revocable tasks, killed when the role needs
    /// the room.
    ///
    /// Example: weft reserve 127.0.0.1:7071 batch:slots=2,memory=4GiB
    Reserve(agents::ReserveArgs),
    /// Drop a reservation made with `weft reserve` (admins).
    ///
    /// Example: weft unreserve 127.0.0.1:7071 batch
    Unreserve(agents::UnreserveArgs),
    /// Run an agent: it registers with a master and runs tasks in its sandbox.
    ///
    /// Example: weft agent --master http://m:7070 --slots 4 --memory 8GiB
    Agent(cluster::AgentArgs),
    /// Run a job on a master and agents started in this process (the embedded default).
    ///
    /// Example: weft local wordcount.wasm -- guest-examples/data/alice.txt out/
    Local(cluster::LocalArgs),
    /// Store and fetch content-addressed artifacts (job components).
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Run user functions in the metered sandbox, outside any cluster.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Make tokens for a master's tenants, and hash them for its tenants file.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new random token and its hash: the token goes to the tenant
    /// (`--token`, `WEFT_TOKEN`), the hash into its `tokens` in the master's
    /// tenants file.
    ///
    /// Example: weft token new --cluster (a token for agents' --cluster-token)
    New {
        /// A cluster token (for `weft master` and `weft agent`) rather than a tenant's.
        #[arg(long)]
        cluster: bool,
        /// Print JSON (`{"token": ..., "hash": ...}`) for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Print the hash of the token on stdin (kept out of shell history).
    ///
    /// Example: weft token hash < token.txt
    Hash,
}

#[derive(Subcommand)]
enum ArtifactCommand {
    /// Put a file into the store and print its `blake3:<hex>` digest.
    ///
    /// Example: weft artifact push target/guests/wasm32-wasip2/release/wordcount.wasm
    Push {
        /// The file to store.
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON (`{"digest": ..., "bytes": ...}`) for scripts.
        #[arg(long)]
        json: bool,
        /// Let every tenant read it and submit it by digest (with --master,
        /// an admin's token only).
        #[arg(long, requires = "master")]
        public: bool,
    },
    /// Fetch an artifact by URI, verify it, and write it to a file or stdout.
    ///
    /// URIs: blake3:<hex> (from the store), file:///abs/path, s3://bucket/key,
    /// https://host/path; append #blake3:<hex> to pin the expected digest.
    Get {
        /// The artifact's URI.
        uri: String,
        /// Where to write it (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args)]
struct StoreArgs {
    /// The local artifact store directory (used when --master is not given).
    #[arg(long, env = "WEFT_STORE", default_value = ".weft/store")]
    store: PathBuf,
    /// Use the artifact store a master hosts, e.g. http://127.0.0.1:7070.
    #[arg(long, env = "WEFT_MASTER")]
    master: Option<String>,
    /// Your tenant's token, with --master.
    #[arg(long, env = "WEFT_TOKEN", default_value = "", hide_env_values = true)]
    token: String,
    /// The CA that signed an https:// master's certificate (PEM).
    #[arg(long, env = "WEFT_TLS_CA")]
    tls_ca: Option<PathBuf>,
}

/// A client of the master's artifact store, presenting `token`.
async fn remote(store: &StoreArgs, master: &str) -> Result<RemoteArtifacts> {
    let channel = jobs::channel(master, store.tls_ca.as_deref()).await?;
    Ok(RemoteArtifacts::new(channel, weft_core::proto::auth::Credentials::new(&store.token)?))
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Run a chain of user functions over lines of text from stdin, print the
    /// output records, one per line, and the task's metering on stderr.
    ///
    /// Example:
    ///   weft task run guest.wasm --op flat-map:split_words < book.txt
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    /// The component: a path, or an artifact URI.
    component: String,
    /// A step `KIND:FUNCTION`, KIND one of map, filter, flat-map, map-batch; repeat for a chain.
    #[arg(long = "op", required = true, value_parser = parse_op)]
    ops: Vec<Op>,
    /// Fuel budget (about one unit per WebAssembly instruction).
    #[arg(long, default_value_t = 50_000_000_000)]
    fuel: u64,
    /// Linear memory limit, e.g. 256MiB.
    #[arg(long, default_value = "512MiB")]
    task_memory: bytesize::ByteSize,
    /// Wall-clock deadline, e.g. 30s.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    task_deadline: Duration,
    /// Lines per batch handed to the guest.
    #[arg(long, default_value_t = 4096)]
    batch_lines: usize,
    /// Print the metering report as JSON on stderr.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

fn parse_op(s: &str) -> Result<Op, String> {
    let (kind, function) =
        s.split_once(':').ok_or_else(|| format!("`{s}`: expected KIND:FUNCTION, e.g. map:to_upper"))?;
    let kind = match kind {
        "map" => OpKind::Map,
        "filter" => OpKind::Filter,
        "flat-map" | "flat_map" => OpKind::FlatMap,
        "map-batch" | "map_batch" => OpKind::MapBatch,
        other => return Err(format!("unknown step kind `{other}`: use map, filter, flat-map or map-batch")),
    };
    Ok(Op { kind, function: function.to_string(), param: None })
}

fn main() -> std::process::ExitCode {
    // Colours only for a person at a terminal: logs piped to a file or a
    // collector stay plain text (and `NO_COLOR` turns them off anywhere).
    let colour =
        std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("WEFT_LOG"))
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::Artifact(ArtifactCommand::Push { file, store, json, public }) => {
            let bytes =
                tokio::fs::read(&file).await.with_context(|| format!("reading {}", file.display()))?;
            let len = bytes.len();
            let digest = match &store.master {
                Some(master) if public => remote(&store, master).await?.put_public(bytes.into()).await?,
                Some(master) => remote(&store, master).await?.put(bytes.into()).await?,
                None => open_store(&store)?.put(bytes.into()).await?,
            };
            if json {
                println!("{}", serde_json::json!({ "digest": digest.to_string(), "bytes": len }));
            } else {
                println!("{digest}");
            }
        }
        Command::Artifact(ArtifactCommand::Get { uri, output, store }) => {
            let (_, bytes) = resolve(&uri, &store).await?;
            match output {
                Some(path) => tokio::fs::write(&path, &bytes)
                    .await
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().write_all(&bytes)?,
            }
        }
        Command::Task(TaskCommand::Run(args)) => return task_run(args).await,
        Command::Token(TokenCommand::New { cluster, json }) => {
            let token = weft_core::token::generate(if cluster { "weft_c_" } else { "weft_t_" })?;
            let hash = weft_core::token::TokenHash::of(&token);
            if json {
                println!("{}", serde_json::json!({ "token": token, "hash": hash.to_string() }));
            } else if cluster {
                println!(
                    "token: {token}\n  give it to `weft master` and every `weft agent` (--cluster-token or WEFT_CLUSTER_TOKEN)"
                );
            } else {
                println!("token: {token}\n  give it to the tenant (--token or WEFT_TOKEN)");
                println!("hash:  {hash}\n  add it to the tenant's `tokens` in the master's tenants file");
            }
        }
        Command::Token(TokenCommand::Hash) => {
            let mut token = String::new();
            std::io::stdin().read_line(&mut token).context("reading the token from stdin")?;
            let token = token.trim();
            if token.is_empty() {
                bail!("no token on stdin: `weft token hash < token.txt`, or `echo $TOKEN | weft token hash`");
            }
            weft_core::token::check_strength(token)?;
            println!("{}", weft_core::token::TokenHash::of(token));
        }
        Command::Master(args) => jobs::master(args).await?,
        Command::Submit(args) => return Ok(std::process::ExitCode::from(jobs::submit(args).await?)),
        Command::Status(args) => return Ok(std::process::ExitCode::from(jobs::status(args).await?)),
        Command::Kill(args) => return Ok(std::process::ExitCode::from(jobs::kill(args).await?)),
        Command::Agents(args) => return Ok(std::process::ExitCode::from(agents::agents(args).await?)),
        Command::Reserve(args) => return Ok(std::process::ExitCode::from(agents::reserve(args).await?)),
        Command::Unreserve(args) => return Ok(std::process::ExitCode::from(agents::unreserve(args).await?)),
        Command::Tenants(args) => return Ok(std::process::ExitCode::from(tenants::tenants(args).await?)),
        Command::Usage(args) => return Ok(std::process::ExitCode::from(usage::usage(args).await?)),
        Command::Agent(args) => cluster::agent(args).await?,
        Command::Local(args) => return Ok(std::process::ExitCode::from(cluster::local(args).await?)),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn open_store(args: &StoreArgs) -> Result<ArtifactStore> {
    std::fs::create_dir_all(&args.store)
        .with_context(|| format!("creating store {}", args.store.display()))?;
    Ok(ArtifactStore::local(&args.store)?)
}

/// A path or an artifact URI to verified bytes.
async fn resolve(component: &str, store: &StoreArgs) -> Result<(Digest, bytes::Bytes)> {
    if !component.contains(':') || std::path::Path::new(component).exists() {
        let bytes = tokio::fs::read(component).await.with_context(|| format!("reading {component}"))?;
        return Ok((Digest::of(&bytes), bytes.into()));
    }
    let uri = ArtifactUri::parse(component)?;
    if let (ArtifactUri::Blake3(digest), Some(master)) = (&uri, &store.master) {
        return Ok((*digest, remote(store, master).await?.get(digest).await?));
    }
    let resolver = Resolver::new(open_store(store)?, ResolverConfig::default());
    Ok(resolver.resolve(&uri).await?)
}

async fn task_run(args: RunArgs) -> Result<std::process::ExitCode> {
    let (digest, bytes) = resolve(&args.component, &args.store).await?;
    let sandbox = Sandbox::new(SandboxConfig::default().with_max_instances(2))?;
    let prepared = tokio::task::spawn_blocking({
        let sandbox = sandbox.clone();
        move || sandbox.load(&digest, &bytes)
    })
    .await??;

    let mut batches = Vec::new();
    let mut w = BatchWriter::new();
    for line in std::io::stdin().lock().lines() {
        w.push(line.context("reading stdin")?.as_bytes());
        if w.len() == args.batch_lines {
            batches.push(w.take());
        }
    }
    if !w.is_empty() {
        batches.push(w.finish());
    }

    let limits = TaskLimits::default()
        .with_fuel(args.fuel)
        .with_memory(args.task_memory.as_u64())
        .with_deadline(args.task_deadline);
    let chain = Chain { ops: args.ops, input_keyed: false, output_keyed: false };
    let pool = WasmPool::new(1)?;
    let ctx = TaskContext { limits, ..Default::default() };
    let (out, report) =
        pool.run(move || async move { sandbox.run_task(&prepared, ctx, &chain, batches).await }).await?;

    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for batch in &out {
        for record in entries(batch) {
            stdout.write_all(record?)?;
            stdout.write_all(b"\n")?;
        }
    }
    stdout.flush()?;
    if args.json {
        eprintln!(
            "{}",
            serde_json::json!({ "end": report.end, "metering": report.metering, "log": report.log })
        );
    } else {
        if !report.log.is_empty() {
            eprintln!("--- task log ---\n{}", report.log.trim_end());
        }
        let m = &report.metering;
        eprintln!(
            "{}: {} records in, {} out; {} fuel; peak memory {}; wall {:?} (instantiate {:?}), cpu {:?}",
            report.end,
            m.records_in,
            m.records_out,
            m.fuel,
            bytesize::ByteSize(m.peak_memory),
            m.wall,
            m.instantiate,
            m.cpu
        );
    }
    if report.end == EndReason::Finished {
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        bail!("the task failed: {}", report.end)
    }
}
