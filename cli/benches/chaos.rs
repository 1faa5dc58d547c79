//! The chaos suite: seeded faults injected into a real cluster (a `weft
//! master` and three `weft agent` processes on 127.0.0.1) in the middle of
//! a job, and every job's output compared with a native count of its input.
//!
//! `cargo xtask chaos [RUNS] [SEED]` (default 14 runs, seed 1). Each run
//! starts a fresh cluster, submits a job that counts its input's lines
//! (action 1) and then counts its words into 4 partitions written as text,
//! with reduce tasks of about 4 s (action 2), and injects one fault drawn
//! from the seed: `kill -9` of an agent in the map stage or in the reduce
//! stage, `kill -9` of the driver's agent, an agent paused (SIGSTOP) past
//! its loss and resumed, a shuffle data file corrupted on disk, `kill -9` of
//! the master (started again on its port and data directory), or an agent
//! paused under its loss with speculation on (a straggler). The first two
//! runs inject nothing: their mean wall time is the baseline. It prints one
//! line per run and a summary (runs and faults by kind, wrong outputs,
//! failed jobs, wall time against the baseline), and exits non-zero if any
//! output was wrong or any job failed. See `docs/operators-guide.md`.

#![allow(clippy::unwrap_used, missing_docs)]

mod procs;

use procs::{Proc, TOKEN, weft};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    None,
    AgentKilledInMap,
    AgentKilledInReduce,
    DriversAgentKilled,
    AgentPaused,
    ShuffleFileCorrupted,
    MasterKilled,
    Straggler,
}

const FAULTS: [Fault; 7] = [
    Fault::AgentKilledInMap,
    Fault::AgentKilledInReduce,
    Fault::DriversAgentKilled,
    Fault::AgentPaused,
    Fault::ShuffleFileCorrupted,
    Fault::MasterKilled,
    Fault::Straggler,
];

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::AgentKilledInMap => "agent killed in map",
            Fault::AgentKilledInReduce => "agent killed in reduce",
            Fault::DriversAgentKilled => "driver's agent killed",
            Fault::AgentPaused => "agent paused past its loss",
            Fault::ShuffleFileCorrupted => "shuffle file corrupted",
            Fault::MasterKilled => "master killed",
            Fault::Straggler => "straggler (speculation)",
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A cluster of one run: the master (restartable on its address and data
/// directory) and three agents, with the task launches each agent logged.
struct Cluster {
    dir: PathBuf,
    addr: String,
    url: String,
    master_flags: Vec<String>,
    master: Option<Proc>,
    agents: Vec<Option<Proc>>,
    launched: Vec<Vec<String>>,
}

impl Cluster {
    fn start(dir: &Path, data: &Path, speculation: bool) -> Result<Self, String> {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let grant = format!("{}=read-write", data.display());
        let mut master_flags: Vec<String> =
            ["--heartbeat-interval", "1s", "--grant", &grant].map(String::from).to_vec();
        if speculation {
            master_flags.extend(["--speculation", "--speculation-quantile", "0.5"].map(String::from));
        }
        let mut c = Cluster {
            dir: dir.to_path_buf(),
            addr,
            url: String::new(),
            master_flags,
            master: None,
            agents: Vec::new(),
            launched: vec![Vec::new(); 3],
        };
        c.start_master()?;
        for name in ["a", "b", "c"] {
            let mut cmd = weft();
            cmd.env("WEFT_LOG", "warn,weft_agent::node::service=debug")
                .args(["agent", "--master", &c.url, "--listen", "127.0.0.1:0", "--cluster-token", TOKEN])
                .args(["--slots", "2", "--work-dir"])
                .arg(dir.join(name));
            c.agents.push(Some(Proc::spawn(cmd)));
        }
        for a in c.agents.iter().flatten() {
            a.wait_for("serving at")?;
        }
        Ok(c)
    }

    fn start_master(&mut self) -> Result<(), String> {
        let mut cmd = weft();
        cmd.args(["master", "--listen", &self.addr, "--cluster-token", TOKEN, "--data-dir"])
            .arg(self.dir.join("master"))
            .args(&self.master_flags);
        let master = Proc::spawn(cmd);
        let line = master.wait_for("listening on")?;
        self.url = line.split_whitespace().find(|w| w.starts_with("http")).ok_or(line.clone())?.to_string();
        self.master = Some(master);
        Ok(())
    }

    /// Read the agents' new launch lines.
    fn drain(&mut self) {
        for (i, a) in self.agents.iter().enumerate() {
            let Some(a) = a else { continue };
            while let Some(line) = a.try_line() {
                if line.contains("weft.agent.launch")
                    && let Some(task) = line.split_whitespace().find_map(|w| w.strip_prefix("task="))
                {
                    self.launched[i].push(task.to_string());
                }
            }
        }
    }

    /// Wait (at most 60 s) until an agent launched a task of `job` whose key
    /// contains `what`; the agents that did, and the driver's agent.
    fn wait_launch(&mut self, job: &str, what: &str) -> Result<(Vec<usize>, Option<usize>), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.drain();
            let of = |i: usize, w: &str| self.launched[i].iter().any(|t| t.starts_with(job) && t.contains(w));
            let running: Vec<usize> = (0..3).filter(|&i| of(i, what)).collect();
            if !running.is_empty() {
                return Ok((running, (0..3).find(|&i| of(i, "/driver#"))));
            }
            if Instant::now() > deadline {
                return Err(format!("no task `{what}` of {job} launched within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, agent: usize, signal: &str) {
        if let Some(a) = &self.agents[agent] {
            let _ = std::process::Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(a.pid().to_string())
                .status();
        }
    }
}

/// The agent to hit among `candidates`, not the driver's if another is there.
fn pick(rng: &mut fastrand::Rng, candidates: &[usize], driver: Option<usize>) -> usize {
    let others: Vec<usize> = candidates.iter().copied().filter(|c| Some(*c) != driver).collect();
    let from = if others.is_empty() { candidates } else { &others };
    from[rng.usize(..from.len())]
}

/// Inject `fault` into the job `job` running on `c`.
fn inject(fault: Fault, c: &mut Cluster, job: &str, rng: &mut fastrand::Rng) -> Result<(), String> {
    let reduce = ".2/stage-1/";
    match fault {
        Fault::None => {}
        Fault::AgentKilledInMap => {
            let (maps, driver) = c.wait_launch(job, ".2/stage-0/")?;
            let victim = pick(rng, &maps, driver);
            c.signal(victim, "KILL");
            c.agents[victim] = None;
        }
        Fault::AgentKilledInReduce => {
            let (reducers, driver) = c.wait_launch(job, reduce)?;
            let victim = pick(rng, &reducers, driver);
            c.signal(victim, "KILL");
            c.agents[victim] = None;
        }
        Fault::DriversAgentKilled => {
            let (_, driver) = c.wait_launch(job, reduce)?;
            let victim = driver.ok_or("no driver launch seen")?;
            c.signal(victim, "KILL");
            c.agents[victim] = None;
        }
        Fault::AgentPaused | Fault::Straggler => {
            let (reducers, driver) = c.wait_launch(job, reduce)?;
            let victim = pick(rng, &reducers, driver);
            c.signal(victim, "STOP");
            // Past its loss (5 s), or under it with speculation on.
            std::thread::sleep(if fault == Fault::AgentPaused {
                Duration::from_secs(7)
            } else {
                Duration::from_secs(4)
            });
            c.signal(victim, "CONT");
        }
        Fault::ShuffleFileCorrupted => {
            c.wait_launch(job, reduce)?;
            let mut files: Vec<PathBuf> = ["a", "b", "c"]
                .iter()
                .flat_map(|a| walk(&c.dir.join(a).join("work/jobs").join(job)))
                .filter(|p| p.extension().is_some_and(|e| e == "data"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err("no shuffle data file to corrupt".into());
            }
            let file = &files[rng.usize(..files.len())];
            let mut bytes = std::fs::read(file).map_err(|e| e.to_string())?;
            if !bytes.is_empty() {
                let at = rng.usize(..bytes.len());
                let end = (at + 16).min(bytes.len());
                for b in &mut bytes[at..end] {
                    *b ^= 0x5a;
                }
                std::fs::write(file, bytes).map_err(|e| e.to_string())?;
            }
        }
        Fault::MasterKilled => {
            c.wait_launch(job, reduce)?;
            c.master = None; // kill -9 (Proc's drop)
            c.start_master()?;
        }
    }
    Ok(())
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn status(url: &str, job: &str) -> Option<serde_json::Value> {
    let o = weft().args(["status", job, "--master", url, "--json"]).output().ok()?;
    let all: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    all.as_array()?.first().cloned()
}

/// How one run ended.
struct Ran {
    fault: Fault,
    wall: Duration,
    failed: Option<String>,
    wrong: Option<String>,
}

fn one_run(dir: &Path, input: &Path, native: &BTreeMap<String, i64>, fault: Fault, seed: u64) -> Ran {
    let mut rng = fastrand::Rng::with_seed(seed);
    let out = dir.join("out");
    let hostile = root().join("target/guests/wasm32-wasip2/release/hostile.wasm");
    let mut ran = Ran { fault, wall: Duration::ZERO, failed: None, wrong: None };
    let data = input.parent().unwrap();
    let mut c = match Cluster::start(dir, data, fault == Fault::Straggler) {
        Ok(c) => c,
        Err(e) => {
            ran.failed = Some(format!("the cluster did not start: {e}"));
            return ran;
        }
    };
    let started = Instant::now();
    let submitted = weft()
        .args(["submit", hostile.to_str().unwrap(), "--master", &c.url, "--json", "--"])
        .args(["count-then-slow-count", input.to_str().unwrap(), out.to_str().unwrap(), "4"])
        .output()
        .unwrap();
    let job = serde_json::from_slice::<serde_json::Value>(&submitted.stdout)
        .ok()
        .and_then(|v| v["job"].as_str().map(String::from));
    let Some(job) = job else {
        ran.failed = Some(format!("submit: {}", String::from_utf8_lossy(&submitted.stderr)));
        return ran;
    };
    if let Err(e) = inject(fault, &mut c, &job, &mut rng) {
        ran.failed = Some(format!("injecting the fault: {e}"));
        return ran;
    }
    let deadline = started + Duration::from_secs(180);
    let end = loop {
        c.drain();
        if let Some(s) = status(&c.url, &job)
            && !matches!(s["state"].as_str(), Some("running" | "pending"))
        {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    ran.wall = started.elapsed();
    match end {
        None => ran.failed = Some("did not end within 180 s".into()),
        Some(s) if s["state"] != "succeeded" => {
            ran.failed = Some(format!("{}: {}", s["state"], s["message"]))
        }
        Some(_) => {
            let lines: Vec<String> = walk(&out)
                .into_iter()
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")))
                .flat_map(|p| {
                    std::fs::read_to_string(p)
                        .unwrap_or_default()
                        .lines()
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .collect();
            let mut got = BTreeMap::new();
            for l in &lines {
                let (w, n) = l.split_once('\t').unwrap_or((l, "x"));
                got.insert(w.to_string(), n.parse::<i64>().unwrap_or(-1));
            }
            if got.len() != lines.len() {
                ran.wrong = Some(format!("{} lines for {} words", lines.len(), got.len()));
            } else if &got != native {
                ran.wrong = Some("counts differ from the native count".into());
            }
        }
    }
    ran
}

fn main() {
    let runs: usize = std::env::var("WEFT_CHAOS_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(14);
    let seed: u64 = std::env::var("WEFT_CHAOS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let hostile = root().join("target/guests/wasm32-wasip2/release/hostile.wasm");
    assert!(hostile.exists(), "build the guests first: cargo xtask guests");
    let base = tempfile::tempdir().unwrap();
    let input = base.path().join("in.txt");
    let text: String = (0..4000).map(|i| format!("w{} w{} common\n", i % 47, (i * 7) % 47)).collect();
    std::fs::write(&input, &text).unwrap();
    let mut native = BTreeMap::new();
    for w in text.split_whitespace() {
        *native.entry(w.to_string()).or_insert(0) += 1;
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut results = Vec::new();
    println!("chaos: {runs} runs, seed {seed}");
    for run in 0..runs {
        let fault = if run < 2 { Fault::None } else { FAULTS[rng.usize(..FAULTS.len())] };
        let dir = base.path().join(format!("run-{run}"));
        std::fs::create_dir_all(&dir).unwrap();
        let r = one_run(&dir, &input, &native, fault, seed.wrapping_mul(1_000_003).wrapping_add(run as u64));
        let verdict = match (&r.failed, &r.wrong) {
            (Some(why), _) => format!("FAILED: {why}"),
            (None, Some(why)) => format!("WRONG: {why}"),
            (None, None) => "exact".into(),
        };
        println!("run {run:>3}  {:<28} {:>6.1} s  {verdict}", fault.name(), r.wall.as_secs_f64());
        results.push(r);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let clean: Vec<f64> = results
        .iter()
        .filter(|r| r.fault == Fault::None && r.failed.is_none())
        .map(|r| r.wall.as_secs_f64())
        .collect();
    let baseline = if clean.is_empty() { f64::NAN } else { clean.iter().sum::<f64>() / clean.len() as f64 };
    println!("\nbaseline (no fault): {baseline:.1} s");
    println!(
        "{:<28} {:>5} {:>6} {:>7} {:>10} {:>10}",
        "fault", "runs", "wrong", "failed", "wall mean", "wall max"
    );
    let mut by: BTreeMap<Fault, Vec<&Ran>> = BTreeMap::new();
    for r in &results {
        by.entry(r.fault).or_default().push(r);
    }
    for (fault, rs) in &by {
        let walls: Vec<f64> =
            rs.iter().filter(|r| r.failed.is_none()).map(|r| r.wall.as_secs_f64() / baseline).collect();
        let mean = walls.iter().sum::<f64>() / walls.len().max(1) as f64;
        let max = walls.iter().copied().fold(0.0, f64::max);
        println!(
            "{:<28} {:>5} {:>6} {:>7} {:>9.2}x {:>9.2}x",
            fault.name(),
            rs.len(),
            rs.iter().filter(|r| r.wrong.is_some()).count(),
            rs.iter().filter(|r| r.failed.is_some()).count(),
            mean,
            max
        );
    }
    let wrong = results.iter().filter(|r| r.wrong.is_some()).count();
    let failed = results.iter().filter(|r| r.failed.is_some()).count();
    println!("{:<28} {:>5} {:>6} {:>7}", "all", results.len(), wrong, failed);
    if wrong + failed > 0 {
        std::process::exit(1);
    }
}
