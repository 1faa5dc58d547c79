//! Many empty tasks through real processes: what the control plane costs per task.
//!
//! `cargo xtask bench-tasks [SIZES]` (or `cargo bench -p weft-cli --bench tasks`)
//! runs the `tasks` guest (`tests/guests/tasks`): one action over N records in N
//! partitions, one record per task, in two modes: `empty` (a count, no sandbox)
//! and `identity` (an identity `#[weft::map]` before the count, so every task
//! instantiates the sandbox). Each size and mode runs on two topologies, each
//! started afresh:
//!
//! - `local`: `weft local`, a master and one agent in one process;
//! - `cluster`: a `weft master` process and two `weft agent` processes on
//!   127.0.0.1, the job sent by `weft submit --wait`;
//! - `cluster-tls`: the same with TLS on every endpoint (certificates
//!   generated for the run), to show what TLS costs.
//!
//! Both have the same number of task slots in all (`WEFT_BENCH_SLOTS`, default
//! 2: the local agent has them all, each cluster agent half). The seconds are
//! the timed action's, measured by the driver in the guest after a warm-up
//! action, so neither start-up nor compilation counts; `wall` is the whole
//! `weft local` or `weft submit` process, for reference; `cpu` is what the
//! master and agent processes of a cluster spent per task over the whole job.
//!
//! With several runs the topologies take turns (local, cluster, cluster-tls,
//! local, …), so that drift on a shared machine falls on all of them alike;
//! a row shows the best and the median run. With both cluster topologies a
//! line gives what TLS costs: the median, over runs, of the TLS run's time
//! (and CPU) over that of the plain run just before it. This machine's runs
//! vary by 10–20%, so judge TLS by that line over 10 runs or more, not by
//! one pair.
//!
//! The native baseline runs the same N one-record tasks as boxed closures on a
//! pool of as many plain threads as there are slots, pulling from one queue and
//! sending each count back to the caller, which checks the total. `x native` is
//! the ratio of the per-task costs.
//!
//! Environment: `WEFT_BENCH_TASKS` (sizes, default `1000,10000,100000`),
//! `WEFT_BENCH_MODES` (default `empty,identity`), `WEFT_BENCH_TOPOLOGIES`
//! (default `local,cluster,cluster-tls`), `WEFT_BENCH_SLOTS`, `WEFT_BENCH_RUNS` (runs of
//! each topology, default 1), `WEFT_BENCH_TIMEOUT` (seconds per run, default 600: a run past it
//! is killed and reported, never waited on; the job's own default deadline, which
//! bounds its driver, is 10 minutes too).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod procs;

use procs::{cluster, tls_flags, weft};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    let v = std::env::var(name).unwrap_or_else(|_| default.to_string());
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map_or(default, |v| v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

/// Run `cmd` to its end within `timeout` (killed past it); whether it exited 0,
/// and its stdout (when it failed, only if it printed there: the job's status).
fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<(bool, String), String> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s (killed)", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    if !status.success() && out.trim().is_empty() {
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        return Err(format!("{status}: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | ")));
    }
    Ok((status.success(), out))
}

/// What one run measured.
struct Measured {
    /// The timed action, measured in the guest.
    action: Duration,
    /// The `weft local` or `weft submit` process.
    wall: Duration,
    /// CPU seconds the master and agents used while the job ran (both its
    /// actions; cluster topologies only).
    cpu: Option<f64>,
}

/// Check the job's JSON status and read the timed action's seconds from its driver log.
fn read_status((exited_0, stdout): (bool, String), n: u64, mode: &str) -> Result<Duration, String> {
    let status: serde_json::Value =
        serde_json::from_str(stdout.trim()).map_err(|e| format!("status is not JSON ({e}): {stdout}"))?;
    let log = status["driver_log"].as_str().unwrap_or_default();
    if status["state"] != "succeeded" || !exited_0 {
        return Err(format!("job {}: {} {}", status["state"], status["message"], log.trim()));
    }
    // The last action's stages: its result stage ran one task per record.
    let stages = status["stages"].as_array().cloned().unwrap_or_default();
    let tasks: Vec<u64> = stages.iter().map(|s| s["finished"].as_u64().unwrap_or(0)).collect();
    if !tasks.contains(&n) {
        return Err(format!("no stage of the last action finished {n} tasks: {tasks:?}"));
    }
    // Identity tasks each called the guest (the empty ones need not).
    let calls = status["metering"]["calls"].as_u64().unwrap_or(0);
    if mode == "identity" && calls < n {
        return Err(format!("{n} identity tasks made only {calls} guest calls"));
    }
    let line = log
        .lines()
        .find(|l| l.contains("tasks: mode="))
        .ok_or_else(|| format!("no `tasks:` line in the driver log:\n{log}"))?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .ok_or_else(|| format!("no {key} in {line:?}"))
    };
    if field("mode=")? != mode || field("n=")? != n.to_string() {
        return Err(format!("the driver ran another job than asked: {line}"));
    }
    let secs: f64 = field("action_s=")?.parse().map_err(|e| format!("{line}: {e}"))?;
    Ok(Duration::from_secs_f64(secs))
}

fn run_local(
    wasm: &Path,
    dir: &Path,
    n: u64,
    mode: &str,
    slots: u64,
    timeout: Duration,
) -> Result<Measured, String> {
    let mut cmd = weft();
    cmd.args(["local", "--json", "--agents", "1", "--slots", &slots.to_string(), "--dir"])
        .arg(dir)
        .arg(wasm)
        .args(["--", &n.to_string(), mode]);
    measure(cmd, n, mode, timeout)
}

/// Run `cmd` (a job of `n` tasks in `mode`) and read its timed action.
fn measure(cmd: Command, n: u64, mode: &str, timeout: Duration) -> Result<Measured, String> {
    let started = Instant::now();
    let out = run_bounded(cmd, timeout)?;
    let wall = started.elapsed();
    Ok(Measured { action: read_status(out, n, mode)?, wall, cpu: None })
}

fn run_cluster(
    wasm: &Path,
    dir: &Path,
    n: u64,
    mode: &str,
    slots: u64,
    timeout: Duration,
    tls: bool,
) -> Result<Measured, String> {
    let flags = if tls { tls_flags(dir) } else { Vec::new() };
    let (procs, url) = cluster(dir, (slots / 2).max(1), &flags, &[], &[])?;
    let cpu = || procs.iter().map(|p| p.cpu_seconds()).sum::<f64>();
    let before = cpu();
    let mut cmd = weft();
    cmd.args(["submit", "--master", &url, "--wait", "--json"]);
    // A client needs only the CA.
    if let Some(ca) = flags.iter().position(|f| f == "--tls-ca") {
        cmd.args(&flags[ca..ca + 2]);
    }
    cmd.arg(wasm).args(["--", &n.to_string(), mode]);
    let measured = measure(cmd, n, mode, timeout)?;
    Ok(Measured { cpu: Some(cpu() - before), ..measured })
}

/// `n` one-record tasks as boxed closures on `threads` plain threads pulling
/// from one queue, each sending its count back; best of three.
fn native(n: u64, threads: u64) -> Duration {
    type Task = Box<dyn FnOnce() -> u64 + Send>;
    let once = || {
        let started = Instant::now();
        let (task_tx, task_rx) = mpsc::channel::<Task>();
        let task_rx = Arc::new(Mutex::new(task_rx));
        let (count_tx, count_rx) = mpsc::channel::<u64>();
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (tasks, counts) = (task_rx.clone(), count_tx.clone());
                std::thread::spawn(move || {
                    loop {
                        let task = tasks.lock().unwrap().recv();
                        let Ok(task) = task else { break };
                        counts.send(task()).unwrap();
                    }
                })
            })
            .collect();
        drop(count_tx);
        for i in 0..n {
            // A partition owns its records on the heap, as a task's input does.
            #[allow(clippy::useless_vec)]
            let partition = vec![std::hint::black_box(i)];
            task_tx.send(Box::new(move || partition.len() as u64)).unwrap();
        }
        drop(task_tx);
        let total: u64 = count_rx.iter().sum();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(total, n, "the native tasks counted {total} records, not {n}");
        started.elapsed()
    };
    (0..3).map(|_| once()).min().unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

/// One row: the best and the median of a topology's runs (or why it failed).
fn row(topology: &str, mode: &str, n: u64, runs: &Result<Vec<Measured>, String>, native: Duration) {
    let runs = match runs {
        Ok(runs) if !runs.is_empty() => runs,
        Ok(_) => return,
        Err(e) => return println!("{topology:<11} {mode:<9} {n:>7}  FAILED: {e}"),
    };
    let best = runs.iter().map(|m| m.action.as_secs_f64()).fold(f64::INFINITY, f64::min);
    let med = median(runs.iter().map(|m| m.action.as_secs_f64()).collect());
    let cpu = runs.iter().map(|m| m.cpu).collect::<Option<Vec<f64>>>();
    let cpu = cpu.map_or("-".to_string(), |c| format!("{:.1}", median(c) * 1e6 / n as f64));
    let wall = median(runs.iter().map(|m| m.wall.as_secs_f64()).collect());
    println!(
        "{topology:<11} {mode:<9} {n:>7} {best:>9.3} {med:>9.3} {:>11.0} {:>9.1} {:>9.0}x {cpu:>9} {wall:>8.2}",
        n as f64 / best,
        best * 1e6 / n as f64,
        best / native.as_secs_f64(),
    );
}

/// What TLS costs: the median, over runs, of the TLS run's figure over the
/// plain run's taken just before it (interleaved, so drift on a shared
/// machine falls on both alike).
fn tls_cost(mode: &str, n: u64, plain: &[Measured], tls: &[Measured]) {
    let pairs = plain.len().min(tls.len());
    let time =
        median(plain.iter().zip(tls).map(|(p, t)| t.action.as_secs_f64() / p.action.as_secs_f64()).collect());
    let cpu: Option<Vec<f64>> = plain.iter().zip(tls).map(|(p, t)| Some(t.cpu? / p.cpu?)).collect();
    let cpu = cpu.map_or("-".to_string(), |c| format!("{:+.1}%", (median(c) - 1.0) * 100.0));
    println!(
        "TLS cost, {mode} x {n}: {:+.1}% time, {cpu} CPU (medians of {pairs} interleaved pairs of runs)",
        (time - 1.0) * 100.0
    );
}

fn main() {
    let sizes: Vec<u64> = env_list("WEFT_BENCH_TASKS", "1000,10000,100000")
        .iter()
        .map(|s| s.parse().unwrap_or_else(|_| panic!("WEFT_BENCH_TASKS: {s:?} is not a number")))
        .collect();
    let modes = env_list("WEFT_BENCH_MODES", "empty,identity");
    let topologies = env_list("WEFT_BENCH_TOPOLOGIES", "local,cluster,cluster-tls");
    for m in &modes {
        assert!(["empty", "identity"].contains(&m.as_str()), "WEFT_BENCH_MODES: unknown mode {m:?}");
    }
    for t in &topologies {
        assert!(
            ["local", "cluster", "cluster-tls"].contains(&t.as_str()),
            "WEFT_BENCH_TOPOLOGIES: unknown topology {t:?}"
        );
    }
    let slots = env_num("WEFT_BENCH_SLOTS", 2).max(1);
    let timeout = Duration::from_secs(env_num("WEFT_BENCH_TIMEOUT", 600));
    let runs = env_num("WEFT_BENCH_RUNS", 1).max(1);
    let wasm = root().join("target/guests/wasm32-wasip2/release/tasks.wasm");
    assert!(wasm.exists(), "build the guests first: cargo xtask guests");

    println!(
        "one-record tasks, {slots} task slots (local: 1 agent x {slots}; cluster: 2 agents x {}), {} cores; \
         seconds: the timed action, in the guest, best and median of {runs} runs (the topologies take turns), \
         timeout {}s each; cpu: the master's and agents' CPU per task over the whole job (median); \
         wall: the whole weft process (median)",
        (slots / 2).max(1),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        timeout.as_secs()
    );
    println!(
        "{:<11} {:<9} {:>7} {:>9} {:>9} {:>11} {:>9} {:>10} {:>9} {:>8}",
        "topology", "mode", "N", "best s", "median s", "tasks/s", "us/task", "x native", "cpu us", "wall s"
    );
    for &n in &sizes {
        let base = native(n, slots);
        let secs = base.as_secs_f64();
        println!(
            "{:<11} {:<9} {n:>7} {secs:>9.4} {:>9} {:>11.0} {:>9.3} {:>10} {:>9} {:>8}",
            "native",
            format!("{slots} thr"),
            "-",
            n as f64 / secs,
            secs * 1e6 / n as f64,
            "1x",
            "-",
            "-"
        );
        for mode in &modes {
            // Each run tries every topology in turn; a topology that failed is not run again.
            let mut results: Vec<Result<Vec<Measured>, String>> =
                topologies.iter().map(|_| Ok(Vec::new())).collect();
            for _ in 0..runs {
                for (topology, result) in topologies.iter().zip(&mut results) {
                    let Ok(done) = result else { continue };
                    let dir = tempfile::tempdir().unwrap();
                    let this = match topology.as_str() {
                        "local" => run_local(&wasm, dir.path(), n, mode, slots, timeout),
                        t => run_cluster(&wasm, dir.path(), n, mode, slots, timeout, t == "cluster-tls"),
                    };
                    match this {
                        Ok(m) => done.push(m),
                        Err(e) => *result = Err(e),
                    }
                }
            }
            for (topology, result) in topologies.iter().zip(&results) {
                row(topology, mode, n, result, base);
            }
            let find =
                |t: &str| topologies.iter().position(|x| x == t).and_then(|i| results[i].as_ref().ok());
            if let (Some(plain), Some(tls)) = (find("cluster"), find("cluster-tls")) {
                tls_cost(mode, n, plain, tls);
            }
        }
    }
}
