//! The chaos suite: seeded faults injected into a real cluster (`weft
//! master` and three `weft agent` processes on 127.0.0.1; three masters on
//! a real etcd for the leader's faults) in the middle of a job, and every
//! job's output compared byte for byte with a failure-free run of the same
//! job, itself checked against a native computation.
//!
//! `cargo xtask chaos [RUNS] [SEED] [ONLY]` (`cli/benches/chaos.rs`; default
//! 14 fault runs, seed 1, every job and fault); `cli/tests/all/chaos.rs`
//! runs a small fixed set in CI. The jobs: a
//! word count whose reduce tasks take about 4 s (after a line count), a sort
//! of TeraSort-like lines, and an iterative job over partitions persisted
//! on disk (several actions, then a text output). The faults: `kill -9` of
//! an agent in the map stage, in the shuffle fetch and in the reduce stage;
//! `kill -9` of the driver's agent; a shuffle data file and a cached block
//! corrupted on disk; an agent paused (SIGSTOP) past its loss and resumed;
//! an agent slowed 3× (stopped two thirds of the time) with speculation on;
//! `kill -9` of the master (started again on its data directory) and of the
//! leader of three masters on etcd. The first six runs, two per job,
//! inject nothing, and so does a control run of each job after every ten
//! fault runs: the first of each job is the reference, and each run's
//! baseline is the faster of its job's nearest failure-free runs before and
//! after it (the machine's speed drifts over a long suite). It prints a line per run and a
//! summary (runs and faults by kind, wrong outputs, failed jobs, wall time
//! against the run's baseline, the time to serve again after a
//! master's kill), and exits non-zero if any output was wrong or any job
//! failed. See `docs/operators-guide.md` (chaos suite).

#![allow(clippy::unwrap_used, missing_docs, dead_code)]

use super::procs::{Proc, TOKEN, weft};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The jobs the suite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Job {
    WordCount,
    Sort,
    Iterative,
}

const JOBS: [Job; 3] = [Job::WordCount, Job::Sort, Job::Iterative];

/// Actions of the iterative job that read its persisted partitions.
const ITERATIONS: u32 = 4;

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::WordCount => "wordcount",
            Job::Sort => "sort",
            Job::Iterative => "iterative",
        }
    }

    /// The action whose stages the faults hit (the job's last).
    fn last_action(self) -> u32 {
        match self {
            Job::WordCount | Job::Sort => 2,
            Job::Iterative => ITERATIONS + 1,
        }
    }
}

/// The faults the suite injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    None,
    AgentKilledInMap,
    AgentKilledInFetch,
    AgentKilledInReduce,
    DriversAgentKilled,
    ShuffleFileCorrupted,
    CachedBlockCorrupted,
    AgentPaused,
    AgentSlowed,
    MasterKilled,
    LeaderKilled,
}

const FAULTS: [Fault; 10] = [
    Fault::AgentKilledInMap,
    Fault::AgentKilledInFetch,
    Fault::AgentKilledInReduce,
    Fault::DriversAgentKilled,
    Fault::ShuffleFileCorrupted,
    Fault::CachedBlockCorrupted,
    Fault::AgentPaused,
    Fault::AgentSlowed,
    Fault::MasterKilled,
    Fault::LeaderKilled,
];

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::AgentKilledInMap => "agent killed in map",
            Fault::AgentKilledInFetch => "agent killed in fetch",
            Fault::AgentKilledInReduce => "agent killed in reduce",
            Fault::DriversAgentKilled => "driver's agent killed",
            Fault::ShuffleFileCorrupted => "shuffle file corrupted",
            Fault::CachedBlockCorrupted => "cached block corrupted",
            Fault::AgentPaused => "agent paused past its loss",
            Fault::AgentSlowed => "agent slowed 3x (speculation)",
            Fault::MasterKilled => "master killed, restarted",
            Fault::LeaderKilled => "leader killed (3 on etcd)",
        }
    }

    /// Whether `job` can take this fault (only the iterative job keeps blocks).
    fn fits(self, job: Job) -> bool {
        self != Fault::CachedBlockCorrupted || job == Job::Iterative
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

/// One etcd for the whole session (each HA run under its own prefix).
struct Etcd {
    child: Child,
    endpoint: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Etcd {
    fn start(dir: &Path) -> Etcd {
        let bin = root().join("target/test-services/bin/etcd");
        assert!(
            bin.exists(),
            "etcd is not installed ({}): run `bash ci/setup-test-services.sh`",
            bin.display()
        );
        let (client, peer) = (free_addr(), free_addr());
        let child = Command::new(bin)
            .args(["--name", "chaos", "--data-dir"])
            .arg(dir.join("etcd"))
            .args(["--listen-client-urls", &format!("http://{client}")])
            .args(["--advertise-client-urls", &format!("http://{client}")])
            .args(["--listen-peer-urls", &format!("http://{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://{peer}")])
            .args(["--initial-cluster", &format!("chaos=http://{peer}")])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--max-request-bytes", "33554432"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&client).is_err() {
            assert!(Instant::now() < deadline, "etcd did not listen on {client}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Etcd { child, endpoint: client }
    }
}

/// A cluster of one run: one master (restartable on its address and data
/// directory) or three on etcd, and three agents, with the task launches
/// each agent logged.
struct Cluster {
    dir: PathBuf,
    addrs: Vec<String>,
    /// Every master's URL, as agents and clients are given them.
    url: String,
    master_flags: Vec<String>,
    masters: Vec<Option<Proc>>,
    agents: Vec<Option<Proc>>,
    launched: Vec<Vec<String>>,
}

impl Cluster {
    fn start(dir: &Path, data: &Path, speculation: bool, ha: Option<(&Etcd, usize)>) -> Result<Self, String> {
        let grant = format!("{}=read-write", data.display());
        let mut master_flags: Vec<String> =
            ["--heartbeat-interval", "1s", "--grant", &grant].map(String::from).to_vec();
        if speculation {
            master_flags.extend(["--speculation", "--speculation-quantile", "0.5"].map(String::from));
        }
        let count = match ha {
            Some((etcd, run)) => {
                master_flags.extend(
                    ["--ha", &format!("etcd://{}/chaos-{run}", etcd.endpoint), "--ha-lease", "1s"]
                        .map(String::from),
                );
                3
            }
            None => 1,
        };
        let addrs: Vec<String> = (0..count).map(|_| free_addr()).collect();
        let url = addrs.iter().map(|a| format!("http://{a}")).collect::<Vec<_>>().join(",");
        let mut c = Cluster {
            dir: dir.to_path_buf(),
            addrs,
            url,
            master_flags,
            masters: Vec::new(),
            agents: Vec::new(),
            launched: vec![Vec::new(); 3],
        };
        for i in 0..count {
            c.masters.push(Some(c.spawn_master(i)));
            // The first leads; the others stand by behind it.
            let wait = if i == 0 { "listening on" } else { "standing by" };
            c.masters[i].as_ref().unwrap().wait_for(wait)?;
        }
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

    fn spawn_master(&self, i: usize) -> Proc {
        let mut cmd = weft();
        cmd.env("WEFT_LOG", "warn,weft_master::node=info")
            .args(["master", "--listen", &self.addrs[i], "--cluster-token", TOKEN, "--data-dir"])
            .arg(self.dir.join("master"))
            .args(&self.master_flags);
        Proc::spawn(cmd)
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
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn pid(&self, agent: usize) -> Option<u32> {
        self.agents[agent].as_ref().map(Proc::pid)
    }

    fn kill_agent(&mut self, agent: usize) {
        self.agents[agent] = None; // kill -9 (Proc's drop)
    }

    /// The files of `job` on the agents whose path contains `part` and ends in `ext`.
    fn files(&self, job: &str, part: &str, ext: Option<&str>) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = ["a", "b", "c"]
            .iter()
            .flat_map(|a| walk(&self.dir.join(a).join("work/jobs").join(job)))
            .filter(|p| p.to_string_lossy().contains(part))
            .filter(|p| ext.is_none_or(|e| p.extension().is_some_and(|x| x == e)))
            // Not a file being written (`<name>.tmp<n>`, or a hidden
            // `.shuffle-<random>.data` renamed once complete).
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    !n.contains(".tmp") && !n.starts_with('.')
                })
            })
            .collect();
        files.sort();
        files
    }
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

/// The agent to hit among `candidates`, not the driver's if another is there.
fn pick(rng: &mut fastrand::Rng, candidates: &[usize], driver: Option<usize>) -> usize {
    let others: Vec<usize> = candidates.iter().copied().filter(|c| Some(*c) != driver).collect();
    let from = if others.is_empty() { candidates } else { &others };
    from[rng.usize(..from.len())]
}

/// Flip 16 bytes of one of `files`, drawn from `rng`.
fn corrupt(files: &[PathBuf], rng: &mut fastrand::Rng) -> Result<(), String> {
    if files.is_empty() {
        return Err("no file to corrupt".into());
    }
    let file = &files[rng.usize(..files.len())];
    let mut bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    if !bytes.is_empty() {
        let at = rng.usize(..bytes.len());
        let end = (at + 16).min(bytes.len());
        for b in &mut bytes[at..end] {
            *b ^= 0x5a;
        }
        std::fs::write(file, bytes).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What an injection left running, and what it measured.
#[derive(Default)]
struct Injected {
    /// Stops the slowing of an agent when set.
    slowing: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    /// From a master's kill until one serves again.
    serving_again: Option<Duration>,
}

/// Wait until one of `masters` says it serves (`listening on`, printed once
/// its state is read back and its server runs); how long that took.
fn until_serving(masters: &[Option<Proc>], since: Instant) -> Result<Duration, String> {
    loop {
        for m in masters.iter().flatten() {
            while let Some(line) = m.try_line() {
                if line.contains("listening on") {
                    return Ok(since.elapsed());
                }
            }
        }
        if since.elapsed() > Duration::from_secs(60) {
            return Err("no master served again within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Inject `fault` into the job `job` running on `c`.
fn inject(
    fault: Fault,
    kind: Job,
    c: &mut Cluster,
    job: &str,
    rng: &mut fastrand::Rng,
) -> Result<Injected, String> {
    let last = kind.last_action();
    let map = format!(".{last}/stage-0/");
    let reduce = format!(".{last}/stage-1/");
    let mut injected = Injected::default();
    match fault {
        Fault::None => {}
        Fault::AgentKilledInMap => {
            let (maps, driver) = c.wait_launch(job, &map)?;
            let victim = pick(rng, &maps, driver);
            c.kill_agent(victim);
        }
        Fault::AgentKilledInFetch | Fault::AgentKilledInReduce => {
            let (reducers, driver) = c.wait_launch(job, &reduce)?;
            if fault == Fault::AgentKilledInReduce {
                // Past the fetch: the reducers compute.
                std::thread::sleep(Duration::from_millis(1000));
            }
            let victim = pick(rng, &reducers, driver);
            c.kill_agent(victim);
        }
        Fault::DriversAgentKilled => {
            let (_, driver) = c.wait_launch(job, &reduce)?;
            c.kill_agent(driver.ok_or("no driver launch seen")?);
        }
        Fault::ShuffleFileCorrupted => {
            // The first map output written, while the map stage runs: its
            // reader comes after.
            c.wait_launch(job, &map)?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let files = c.files(job, "/shuffle/", Some("data"));
                if !files.is_empty() {
                    corrupt(&files, rng)?;
                    break;
                }
                if Instant::now() > deadline {
                    return Err("no shuffle data file was written within 60 s".into());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Fault::CachedBlockCorrupted => {
            // Persisted by the first action; read by every later one.
            c.wait_launch(job, ".2/stage-0/")?;
            corrupt(&c.files(job, "/cache/", None), rng)?;
        }
        Fault::AgentPaused => {
            let (reducers, driver) = c.wait_launch(job, &reduce)?;
            let victim = pick(rng, &reducers, driver);
            let pid = c.pid(victim).ok_or("the victim is gone")?;
            signal(pid, "STOP");
            // Past its loss (5 missed heartbeats of 1 s).
            std::thread::sleep(Duration::from_secs(7));
            signal(pid, "CONT");
        }
        Fault::AgentSlowed => {
            // From the job's first task to its end: one agent (not the
            // driver's) runs a third of the time.
            let (_, driver) = c.wait_launch(job, ".1/stage-0/")?;
            let victim = pick(rng, &[0, 1, 2], driver);
            let pid = c.pid(victim).ok_or("the victim is gone")?;
            let stop = Arc::new(AtomicBool::new(false));
            let stopping = Arc::clone(&stop);
            let cycle = std::thread::spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    signal(pid, "STOP");
                    std::thread::sleep(Duration::from_millis(100));
                    signal(pid, "CONT");
                    std::thread::sleep(Duration::from_millis(50));
                }
                signal(pid, "CONT");
            });
            injected.slowing = Some((stop, cycle));
        }
        Fault::MasterKilled => {
            c.wait_launch(job, &reduce)?;
            c.masters[0] = None; // kill -9 (Proc's drop)
            let killed = Instant::now();
            c.masters[0] = Some(c.spawn_master(0));
            injected.serving_again = Some(until_serving(&c.masters, killed)?);
        }
        Fault::LeaderKilled => {
            c.wait_launch(job, &reduce)?;
            c.masters[0] = None;
            let killed = Instant::now();
            injected.serving_again = Some(until_serving(&c.masters, killed)?);
        }
    }
    Ok(injected)
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

/// How large the sort and iterative jobs' input is: jobs of several
/// seconds for the command, smaller for the debug build CI tests.
#[derive(Debug, Clone, Copy)]
pub enum Scale {
    /// A sort of 4,000,000 lines (284 MB), an iterative job over 1,200,000.
    Bench,
    /// 200,000 lines for both.
    Ci,
}

/// The inputs, and the native results the references are checked against.
struct Inputs {
    dir: PathBuf,
    words: PathBuf,
    sort: PathBuf,
    iterate: PathBuf,
    word_counts: BTreeMap<String, i64>,
    first_words: BTreeMap<String, i64>,
    sorted: Vec<u8>,
}

impl Inputs {
    fn make(dir: &Path, scale: Scale) -> Inputs {
        let words = dir.join("words.txt");
        let text: String = (0..4000).map(|i| format!("w{} w{} common\n", i % 47, (i * 7) % 47)).collect();
        std::fs::write(&words, &text).unwrap();
        let mut word_counts = BTreeMap::new();
        for w in text.split_whitespace() {
            *word_counts.entry(w.to_string()).or_insert(0) += 1;
        }
        // TeraSort-like: a 10-byte key (distinct) and a payload.
        let mut rng = fastrand::Rng::with_seed(7);
        let (lines, iterated) = match scale {
            Scale::Bench => (4_000_000u64, 1_200_000),
            Scale::Ci => (200_000, 200_000),
        };
        let mut keys: Vec<u64> = (0..lines).collect();
        rng.shuffle(&mut keys);
        let lines: Vec<String> =
            keys.iter().map(|k| format!("{:010} {}", k * 7919 % 10_000_000_000, "p".repeat(60))).collect();
        let sort = dir.join("sort.txt");
        std::fs::write(&sort, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        let mut sorted_lines = lines.clone();
        sorted_lines.sort_by(|a, b| a.as_bytes()[..10].cmp(&b.as_bytes()[..10]));
        let sorted = sorted_lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
        // The iterative job reads the first lines.
        let lines = &lines[..iterated];
        let iterate = dir.join("iterate.txt");
        std::fs::write(&iterate, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        let mut first_words = BTreeMap::new();
        for l in lines {
            *first_words.entry(l.split_whitespace().next().unwrap_or_default().to_string()).or_insert(0) += 1;
        }
        Inputs { dir: dir.to_path_buf(), words, sort, iterate, word_counts, first_words, sorted }
    }

    /// The job's component and arguments, writing to `out`.
    fn submit_args(&self, job: Job, out: &Path) -> (PathBuf, Vec<String>) {
        let tests = root().join("target/guests/wasm32-wasip2/release");
        let s = |p: &Path| p.to_str().unwrap().to_string();
        match job {
            Job::WordCount => (
                tests.join("hostile.wasm"),
                vec!["count-then-slow-count".into(), s(&self.words), s(out), "4".into()],
            ),
            Job::Sort => (tests.join("sort.wasm"), vec![s(&self.sort), s(out), "4".into()]),
            Job::Iterative => (
                tests.join("cache.wasm"),
                vec!["disk".into(), s(&self.iterate), ITERATIONS.to_string(), "0".into(), s(out)],
            ),
        }
    }

    /// Whether `output` (the part files, in order) is what a native
    /// computation of `job` gives.
    fn check_native(&self, job: Job, output: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(output);
        let pairs = || -> BTreeMap<String, i64> {
            text.lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(w, n)| (w.to_string(), n.parse().unwrap_or(-1)))
                .collect()
        };
        let ok = match job {
            Job::WordCount => pairs() == self.word_counts && text.lines().count() == self.word_counts.len(),
            Job::Sort => output == self.sorted.as_slice(),
            Job::Iterative => pairs() == self.first_words && text.lines().count() == self.first_words.len(),
        };
        if ok { Ok(()) } else { Err(format!("the {} output differs from the native result", job.name())) }
    }
}

/// The part files under `out`, in name order, as one byte string.
fn output_bytes(out: &Path) -> Vec<u8> {
    let mut parts: Vec<PathBuf> = walk(out)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")))
        .collect();
    parts.sort();
    parts.iter().flat_map(|p| std::fs::read(p).unwrap_or_default()).collect()
}

/// How one run ended.
pub struct Ran {
    pub job: Job,
    pub fault: Fault,
    pub wall: Duration,
    pub serving_again: Option<Duration>,
    /// Attempts launched again (a task's attempt after its first, a
    /// driver's restart, speculative copies): what the fault cost.
    pub again: usize,
    pub failed: Option<String>,
    /// Its output differs from the failure-free run's.
    pub wrong: bool,
    pub output: Vec<u8>,
}

fn one_run(
    dir: &Path,
    inputs: &Inputs,
    job_kind: Job,
    fault: Fault,
    seed: u64,
    etcd: &Etcd,
    run: usize,
) -> Ran {
    let mut rng = fastrand::Rng::with_seed(seed);
    let out = dir.join("out");
    let mut ran = Ran {
        job: job_kind,
        fault,
        wall: Duration::ZERO,
        serving_again: None,
        again: 0,
        failed: None,
        wrong: false,
        output: Vec::new(),
    };
    let ha = (fault == Fault::LeaderKilled).then_some((etcd, run));
    let mut c = match Cluster::start(dir, &inputs.dir, fault == Fault::AgentSlowed, ha) {
        Ok(c) => c,
        Err(e) => {
            ran.failed = Some(format!("the cluster did not start: {e}"));
            return ran;
        }
    };
    let (component, args) = inputs.submit_args(job_kind, &out);
    let started = Instant::now();
    let submitted = weft()
        .args(["submit", component.to_str().unwrap(), "--master", &c.url, "--json", "--"])
        .args(&args)
        .output()
        .unwrap();
    let job = serde_json::from_slice::<serde_json::Value>(&submitted.stdout)
        .ok()
        .and_then(|v| v["job"].as_str().map(String::from));
    let Some(job) = job else {
        ran.failed = Some(format!("submit: {}", String::from_utf8_lossy(&submitted.stderr)));
        return ran;
    };
    let injected = match inject(fault, job_kind, &mut c, &job, &mut rng) {
        Ok(i) => i,
        Err(e) => {
            ran.failed = Some(format!("injecting the fault: {e}"));
            return ran;
        }
    };
    ran.serving_again = injected.serving_again;
    let deadline = started + Duration::from_secs(240);
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
        std::thread::sleep(Duration::from_millis(50));
    };
    ran.wall = started.elapsed();
    c.drain();
    ran.again = c.launched.iter().flatten().filter(|t| !t.ends_with("#0")).count();
    if let Some((stop, cycle)) = injected.slowing {
        stop.store(true, Ordering::Relaxed);
        let _ = cycle.join();
    }
    match end {
        None => ran.failed = Some("did not end within 240 s".into()),
        Some(s) if s["state"] != "succeeded" => {
            ran.failed = Some(format!("{}: {}", s["state"], s["message"]))
        }
        Some(_) => ran.output = output_bytes(&out),
    }
    ran
}

/// Fault runs between two control runs of each job.
const CONTROL_EVERY: usize = 10;

/// `faults` fault runs seeded by `seed`, after two failure-free runs of
/// each job (the first of each is the reference, checked against a native
/// computation; the second warms the caches), with a failure-free control
/// run of each job after every [`CONTROL_EVERY`] fault runs and after the
/// last: jobs and faults drawn from the seed.
pub fn seeded_plan(faults: usize, seed: u64) -> Vec<(Job, Fault)> {
    seeded_plan_of(faults, seed, "")
}

/// [`seeded_plan`] of only the runs `only` names: each of its words (split
/// on spaces and commas) a job's name (`sort`) or a part of a fault's
/// (`slowed`), all of which a run must match; its failure-free runs are
/// those of the jobs it leaves. Draws from the same sequence as
/// [`seeded_plan`], skipping what does not match.
pub fn seeded_plan_of(faults: usize, seed: u64, only: &str) -> Vec<(Job, Fault)> {
    let words: Vec<&str> = only.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let keep = |job: Job, fault: Fault| words.iter().all(|w| job.name() == *w || fault.name().contains(w));
    let jobs: Vec<Job> =
        JOBS.into_iter().filter(|j| FAULTS.iter().any(|f| f.fits(*j) && keep(*j, *f))).collect();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut plan: Vec<(Job, Fault)> = jobs.iter().chain(&jobs).map(|job| (*job, Fault::None)).collect();
    let mut n = 0;
    while n < faults && !jobs.is_empty() {
        let job = JOBS[rng.usize(..JOBS.len())];
        let fits: Vec<Fault> = FAULTS.iter().copied().filter(|f| f.fits(job)).collect();
        let fault = fits[rng.usize(..fits.len())];
        if !keep(job, fault) {
            continue;
        }
        plan.push((job, fault));
        n += 1;
        if n % CONTROL_EVERY == 0 || n == faults {
            plan.extend(jobs.iter().map(|job| (*job, Fault::None)));
        }
    }
    plan
}

/// Which runs may be a baseline: failure-free runs that succeeded, except
/// each job's first (cold: components compiled, page cache empty, it
/// would flatter the runs next to it) when the job has another.
fn usable(results: &[Ran]) -> Vec<bool> {
    let free = |r: &Ran| r.fault == Fault::None && r.failed.is_none();
    let mut seen = std::collections::BTreeMap::new();
    for r in results.iter().filter(|r| free(r)) {
        *seen.entry(r.job).or_insert(0) += 1;
    }
    let mut first = std::collections::BTreeSet::new();
    results.iter().map(|r| free(r) && (!first.insert(r.job) || seen[&r.job] == 1)).collect()
}

/// Each run's baseline wall time, in seconds: the faster of the nearest
/// other [`usable`] runs of its job before and after it. Neighbours in
/// time, since a long suite sees the machine's speed drift (a failure-free
/// job measured 25% slower half an hour apart); the faster of the two, and
/// never the run itself, so a failure-free run's ratio shows the noise the
/// method leaves. `None` for a job with no other failure-free run.
pub fn baselines(results: &[Ran]) -> Vec<Option<f64>> {
    let usable = usable(results);
    (0..results.len())
        .map(|i| {
            let of = |j: &usize| usable[*j] && results[*j].job == results[i].job;
            let before = (0..i).rev().find(of);
            let after = (i + 1..results.len()).find(of);
            before.into_iter().chain(after).map(|j| results[j].wall.as_secs_f64()).reduce(f64::min)
        })
        .collect()
}

/// Run `plan` in order (its failure-free runs before the faults on their
/// job), printing a line per run; every run's outcome.
pub fn run(plan: &[(Job, Fault)], seed: u64, scale: Scale) -> Vec<Ran> {
    for guest in ["hostile", "sort", "cache"] {
        let path = root().join(format!("target/guests/wasm32-wasip2/release/{guest}.wasm"));
        assert!(path.exists(), "build the guests first: cargo xtask guests ({} is missing)", path.display());
    }
    let base = tempfile::tempdir().unwrap();
    let inputs = Inputs::make(base.path(), scale);
    let etcd = Etcd::start(base.path());
    let mut results: Vec<Ran> = Vec::new();
    let mut references: BTreeMap<Job, Vec<u8>> = BTreeMap::new();
    for (run, &(job, fault)) in plan.iter().enumerate() {
        let dir = base.path().join(format!("run-{run}"));
        std::fs::create_dir_all(&dir).unwrap();
        let run_seed = seed.wrapping_mul(1_000_003).wrapping_add(run as u64);
        let mut r = one_run(&dir, &inputs, job, fault, run_seed, &etcd, run);
        if r.failed.is_none() && fault == Fault::None {
            match inputs.check_native(job, &r.output) {
                Err(e) => r.failed = Some(format!("the failure-free run is wrong: {e}")),
                Ok(()) => {
                    references.insert(job, r.output.clone());
                }
            }
        }
        r.wrong = r.failed.is_none() && references.get(&job).is_some_and(|want| *want != r.output);
        let verdict = match (&r.failed, r.wrong) {
            (Some(why), _) => format!("FAILED: {why}"),
            (None, true) => "WRONG: the output differs from the failure-free run's".to_string(),
            (None, false) => "exact".into(),
        };
        let serving = r
            .serving_again
            .map_or(String::new(), |d| format!("  (serving again after {:.2} s)", d.as_secs_f64()));
        println!(
            "run {run:>3}  {:<10} {:<30} {:>6.1} s  {:>3} again  {verdict}{serving}",
            job.name(),
            fault.name(),
            r.wall.as_secs_f64(),
            r.again
        );
        r.output = Vec::new();
        results.push(r);
        let _ = std::fs::remove_dir_all(&dir);
    }
    results
}

/// Print the summary of `results`; how many outputs were wrong and how
/// many jobs failed.
pub fn summarize(results: &[Ran]) -> (usize, usize) {
    let wrong = |r: &Ran| r.wrong;
    let baseline = baselines(results);
    let mut free: BTreeMap<Job, Vec<f64>> = BTreeMap::new();
    for (r, _) in results.iter().zip(usable(results)).filter(|(_, u)| *u) {
        free.entry(r.job).or_default().push(r.wall.as_secs_f64());
    }
    println!(
        "\nfailure-free wall time (each run's baseline: the faster of its job's nearest warm failure-free runs before and after it):"
    );
    for (job, secs) in &free {
        let (lo, hi) = secs.iter().fold((f64::MAX, 0.0f64), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
        println!("  {:<10} {} runs, {lo:.1} s to {hi:.1} s", job.name(), secs.len());
    }
    println!(
        "\n{:<30} {:>5} {:>6} {:>7} {:>10} {:>10} {:>8} {:>14}",
        "fault", "runs", "wrong", "failed", "wall mean", "wall max", "again", "serving again"
    );
    let mut by: BTreeMap<Fault, Vec<(&Ran, Option<f64>)>> = BTreeMap::new();
    for (i, r) in results.iter().enumerate() {
        by.entry(r.fault).or_default().push((r, baseline[i]));
    }
    for (fault, runs) in &by {
        let ratios: Vec<f64> = runs
            .iter()
            .filter(|(r, _)| r.failed.is_none())
            .filter_map(|(r, b)| b.map(|b| r.wall.as_secs_f64() / b))
            .collect();
        let rs: Vec<&Ran> = runs.iter().map(|(r, _)| *r).collect();
        let mean = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
        let max = ratios.iter().copied().fold(0.0, f64::max);
        let serving: Vec<f64> = rs.iter().filter_map(|r| r.serving_again).map(|d| d.as_secs_f64()).collect();
        let serving = if serving.is_empty() {
            String::new()
        } else {
            format!("max {:.2} s", serving.iter().copied().fold(0.0, f64::max))
        };
        println!(
            "{:<30} {:>5} {:>6} {:>7} {:>9.2}x {:>9.2}x {:>8.1} {:>14}",
            fault.name(),
            rs.len(),
            rs.iter().filter(|r| wrong(r)).count(),
            rs.iter().filter(|r| r.failed.is_some()).count(),
            mean,
            max,
            rs.iter().map(|r| r.again as f64).sum::<f64>() / rs.len().max(1) as f64,
            serving
        );
    }
    let wrong_runs = results.iter().filter(|r| wrong(r)).count();
    let failed = results.iter().filter(|r| r.failed.is_some()).count();
    println!("{:<30} {:>5} {:>6} {:>7}", "all", results.len(), wrong_runs, failed);
    (wrong_runs, failed)
}
