//! Isolation between tenants: a normal tenant's word count, alone and beside
//! a hostile tenant, on the same cluster with the same share of it.
//!
//! `cargo xtask bench-isolation [MIB]` (or `cargo bench -p weft-cli --bench
//! isolation`) starts one `weft master` (tenants `normal`, `hostile` and an
//! admin) and two `weft agent` processes of one task slot each: as many task
//! slots as the machine has cores (2 here), so that each tenant's share is
//! one slot, one core, and the hostile tenant's busy loops take their own
//! core, not the normal one's. Each tenant is held to that share by a quota
//! limit of 2 places, its driver and one task; the normal tenant has the same
//! limit alone, so "alone" and "beside" differ only by the hostile tenant.
//! (Without the hostile tenant's limit, DRF would still order the two, but it
//! places tasks only as others end: a hostile task that takes a slot the
//! normal job left free for a moment keeps it until its fuel or deadline
//! runs out.)
//!
//! The hostile tenant keeps one job in flight, one after another: endless
//! loops stopped by fuel and by a deadline, a memory bomb, unbounded
//! recursion, and a flood of 320 small tasks stopped by a fuel budget; each
//! must fail with its typed reason. It keeps one in flight because agents
//! have as many driver slots as task slots and a running driver is not taken
//! back: a second hostile job submitted before the normal one would hold the
//! other driver slot, and the normal job's driver would wait for it.
//!
//! Runs alternate, alone then beside, after a warm-up of each (the agents
//! compile both components once); `sync; sleep` (`WEFT_BENCH_SETTLE`
//! seconds, default 20) first. The time is the `weft submit --wait` process
//! of the word count, whose output is checked against a native count after
//! every run. Environment: `WEFT_BENCH_MIB` (default 256), `WEFT_BENCH_RUNS`
//! (best of, default 3), `WEFT_BENCH_QUEUE` (the agents' `--queue`, default
//! 0: one task launched at a time per slot), `WEFT_BENCH_SETTLE`,
//! `WEFT_BENCH_HOSTILE` (the hostile jobs, default
//! `spin-fuel,spin-deadline,grow,recurse,flood`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod corpus;
mod procs;
mod versus;

use procs::Proc;

fn token(tenant: &str) -> String {
    format!("weft_t_bench-isolation-{tenant}-token-0123456789")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map_or(default, |v| v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

/// `weft` as `tenant`.
fn weft(tenant: &str) -> Command {
    let mut c = procs::weft();
    c.env("WEFT_TOKEN", token(tenant));
    c
}

/// The master (tenants `normal` and `hostile`, each limited to its driver and
/// one task, and `ops`, an admin) and two agents of one slot; and its URL.
fn cluster(dir: &Path, queue: u64) -> (Vec<Proc>, String) {
    let grants = format!(
        "[[tenant.grant]]\nroot = \"{}\"\naccess = \"read-write\"\n\
         [[tenant.grant]]\nroot = \"{}\"\naccess = \"read\"\n",
        dir.display(),
        root().join("target/bench").display()
    );
    let limit = "[tenant.quota]\nlimit = { slots = 2 }\n";
    let mut file = String::new();
    for (name, more) in [("normal", limit), ("hostile", limit), ("ops", "admin = true\n")] {
        let hash = weft_core::token::TokenHash::of(&token(name));
        file += &format!("[[tenant]]\nname = \"{name}\"\ntokens = [\"{hash}\"]\n{more}{grants}\n");
    }
    let tenants = dir.join("tenants.toml");
    std::fs::write(&tenants, file).unwrap();
    let tenants = tenants.display().to_string();
    let queue = queue.to_string();
    let agents = ["--queue", &queue, "--memory", "2GiB"];
    procs::cluster(dir, 1, &[], &["--tenants", &tenants], &agents).unwrap()
}

/// Run `cmd` (a `weft submit --wait --json`); its JSON status.
fn job(mut cmd: Command) -> serde_json::Value {
    let o = cmd.output().unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    })
}

/// What `weft tenants --json` says `tenant` has held: place-seconds.
fn place_seconds(url: &str, tenant: &str) -> f64 {
    let o = weft("ops").args(["tenants", "--json", "--master", url]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = v["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == tenant).cloned();
    t.map_or(0.0, |t| t["place_seconds"].as_f64().unwrap())
}

/// Push `wasm` as `tenant`; its `blake3:` URI (submitting by digest pushes nothing again).
fn push(url: &str, tenant: &str, wasm: &Path) -> String {
    let o = weft(tenant).args(["artifact", "push", "--master", url]).arg(wasm).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    out.split_whitespace().find(|w| w.starts_with("blake3:")).unwrap_or_else(|| panic!("{out}")).to_string()
}

/// The hostile tenant's jobs: a name, flags, `main`'s arguments after the
/// input, and the reason each must fail with.
const HOSTILE: &[(&str, &[&str], &[&str], &str)] = &[
    ("spin-fuel", &["--fuel", "1000000000"], &["spin"], "out of fuel"),
    ("spin-deadline", &["--task-deadline", "500ms"], &["spin"], "deadline of 500ms exceeded"),
    ("grow", &["--task-memory", "256MiB"], &["grow"], "memory limit of"),
    ("recurse", &[], &["recurse"], "StackOverflow"),
    ("flood", &["--fuel-budget", "3000000000"], &["burn", "320"], "fuel budget"),
];

/// Keep one hostile job in flight, of `kinds` in turn, until `stop`; how many
/// of each kind failed (each must, with its reason).
fn hostile(url: String, wasm: String, lines: PathBuf, kinds: Vec<usize>, stop: Arc<AtomicBool>) -> Failed {
    let mut failed = BTreeMap::new();
    for (name, flags, args, reason) in kinds.iter().map(|k| HOSTILE[*k]).cycle() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut c = weft("hostile");
        c.args(["submit", &wasm, "--master", &url, "--wait", "--json"]).args(flags).arg("--").arg(args[0]);
        c.arg(&lines).args(&args[1..]);
        let s = job(c);
        let message = s["message"].as_str().unwrap_or_default();
        assert!(s["state"] == "failed" && message.contains(reason), "hostile {name}: `{reason}` in {s}");
        *failed.entry(name).or_default() += 1;
    }
    failed
}

/// Hostile jobs that failed, by kind.
type Failed = BTreeMap<&'static str, u32>;

fn native(path: &Path) -> HashMap<String, i64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut counts: HashMap<String, i64> = HashMap::new();
    for w in text.split_whitespace() {
        *counts.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

/// The machine's own floor: the native count of `input`, alone and beside a
/// busy loop on another thread (the hostile tenant's spin, natively), best of
/// `runs` each, alternating (run between weft's runs, it sees the same machine).
fn native_floor(input: &Path, runs: u64) -> (Duration, Duration) {
    let time = || {
        let started = Instant::now();
        std::hint::black_box(native(input));
        started.elapsed()
    };
    let (mut alone, mut beside) = (Duration::MAX, Duration::MAX);
    for _ in 0..runs {
        alone = alone.min(time());
        let stop = Arc::new(AtomicBool::new(false));
        let spin = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            })
        };
        beside = beside.min(time());
        stop.store(true, Ordering::Relaxed);
        spin.join().unwrap();
    }
    (alone, beside)
}

/// CPU seconds process `pid` has used (user and system), from `/proc`.
fn cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command (in brackets): utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).map(|v| v.parse().unwrap()).collect();
    (f[0] + f[1]) as f64 / 100.0
}

/// One measured word count.
#[derive(Clone, Copy, Debug)]
struct Sample {
    took: Duration,
    /// Task places (and its driver) `normal` held on average.
    held: f64,
    /// CPU seconds of the master, and of both agents, while it ran.
    master_cpu: f64,
    agents_cpu: f64,
}

/// One word count as `normal` on the cluster of `pids` (master first).
fn word_count(
    url: &str,
    wasm: &str,
    io: (&Path, &Path),
    want: &HashMap<String, i64>,
    pids: &[u32],
) -> Sample {
    let (input, out) = io;
    let _ = std::fs::remove_dir_all(out);
    let held = place_seconds(url, "normal");
    let cpus: Vec<f64> = pids.iter().map(|p| cpu(*p)).collect();
    let started = Instant::now();
    let mut c = weft("normal");
    c.args(["submit", wasm, "--master", url, "--wait", "--json", "--"]).arg(input).arg(out);
    let s = job(c);
    let took = started.elapsed();
    let used: Vec<f64> = pids.iter().zip(&cpus).map(|(p, c)| cpu(*p) - c).collect();
    let held = (place_seconds(url, "normal") - held) / took.as_secs_f64();
    assert_eq!(s["state"], "succeeded", "{s}");
    assert!(versus::counts(out) == *want, "the word count differs from the native count");
    Sample { took, held, master_cpu: used[0], agents_cpu: used[1..].iter().sum() }
}

fn main() {
    let mib = env_num("WEFT_BENCH_MIB", 256);
    let runs = env_num("WEFT_BENCH_RUNS", 3).max(1);
    let queue = env_num("WEFT_BENCH_QUEUE", 0);
    let settle = env_num("WEFT_BENCH_SETTLE", 20);
    let names: Vec<&str> = HOSTILE.iter().map(|h| h.0).collect();
    let kinds: Vec<usize> = std::env::var("WEFT_BENCH_HOSTILE")
        .unwrap_or_else(|_| names.join(","))
        .split(',')
        .map(|k| {
            names
                .iter()
                .position(|n| *n == k.trim())
                .unwrap_or_else(|| panic!("WEFT_BENCH_HOSTILE: {k:?} is none of {names:?}"))
        })
        .collect();
    let guests = root().join("target/guests/wasm32-wasip2/release");
    let (wc, bad) = (guests.join("wordcount.wasm"), guests.join("hostile.wasm"));
    assert!(wc.exists() && bad.exists(), "build the guests first: cargo xtask guests");
    let input = root().join(format!("target/bench/words-{mib}MiB.txt"));
    corpus::generate(&input, mib << 20).unwrap();
    let want = native(&input);

    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("lines.txt");
    std::fs::write(&lines, "a line of the hostile tenant\n".repeat(3200)).unwrap();
    let out = dir.path().join("out");
    let (mut procs, url) = cluster(dir.path(), queue);
    let (wc, bad) = (push(&url, "normal", &wc), push(&url, "hostile", &bad));
    let pids: Vec<u32> = procs.iter().map(Proc::pid).collect();
    let io = (input.as_path(), out.as_path());

    // Beside the hostile tenant: its jobs start first, and stop once the word count ended.
    let beside = |failed: &mut Failed| {
        let stop = Arc::new(AtomicBool::new(false));
        let hostile_held = place_seconds(&url, "hostile");
        let started = Instant::now();
        let h = {
            let (url, bad, lines, stop) = (url.clone(), bad.clone(), lines.clone(), stop.clone());
            let kinds = kinds.clone();
            std::thread::spawn(move || hostile(url, bad, lines, kinds, stop))
        };
        while place_seconds(&url, "hostile") <= hostile_held {
            std::thread::sleep(Duration::from_millis(50));
        }
        let measured = word_count(&url, &wc, io, &want, &pids);
        let hostile_places =
            (place_seconds(&url, "hostile") - hostile_held) / started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for (reason, n) in h.join().unwrap() {
            *failed.entry(reason).or_default() += n;
        }
        (measured, hostile_places)
    };
    // Warm-up: every agent compiles both components.
    let mut failed = BTreeMap::new();
    word_count(&url, &wc, io, &want, &pids);
    beside(&mut failed);
    failed.clear();
    eprintln!("bench-isolation: sync; sleep {settle}");
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(settle));

    let mut floor = (Duration::MAX, Duration::MAX);
    let (mut alone, mut near, mut hostile_places) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (a, b) = native_floor(&input, 1);
        floor = (floor.0.min(a), floor.1.min(b));
        alone.push(word_count(&url, &wc, io, &want, &pids));
        let (m, h) = beside(&mut failed);
        near.push(m);
        hostile_places.push(h);
    }
    for p in &mut procs {
        assert!(p.alive(), "a cluster process died");
    }

    let best = |t: &[Sample]| *t.iter().min_by_key(|m| m.took).unwrap();
    let worst = |t: &[Sample]| t.iter().map(|m| m.took).max().unwrap();
    let (a, b) = (best(&alone), best(&near));
    println!(
        "word count over {mib} MiB as tenant `normal`, alone and beside a hostile tenant: 2 agents x 1 task slot \
         (queue {queue}) on {} cores, best of {runs} runs (slowest in brackets)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  share: each tenant's quota limit is 2 places, its driver and one task: one task slot of the two, \
         one core of the two, alone as beside, so the hostile busy loops run on the other core"
    );
    let row = |name: &str, m: Sample, all: &[Sample]| {
        println!(
            "  {name:<32}{:>7.2}s  ({:.2}s)  held {:.2} places on average; cpu: master {:.2}s, agents {:.2}s",
            m.took.as_secs_f64(),
            worst(all).as_secs_f64(),
            m.held,
            m.master_cpu,
            m.agents_cpu
        );
    };
    row("alone, one task slot", a, &alone);
    row("beside the hostile tenant", b, &near);
    let mean_hostile = hostile_places.iter().sum::<f64>() / hostile_places.len() as f64;
    let reasons: Vec<String> = failed.iter().map(|(r, n)| format!("{n} {r}")).collect();
    println!(
        "  the hostile tenant held {mean_hostile:.2} places on average; its jobs, each failed with its typed \
         reason: {}",
        reasons.join(", ")
    );
    println!(
        "  beside / alone                  {:>7.3}x   (target <= 1.1x)",
        b.took.as_secs_f64() / a.took.as_secs_f64()
    );
    println!(
        "  the machine's floor: a native count, 1 thread, {:.2}s alone and {:.2}s beside a native busy loop: \
         {:.3}x",
        floor.0.as_secs_f64(),
        floor.1.as_secs_f64(),
        floor.1.as_secs_f64() / floor.0.as_secs_f64()
    );
}
