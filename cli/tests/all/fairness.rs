//! The seeds' Dominant Resource Fairness demonstrations on a real cluster (a
//! master and two agent processes, tenants from a tenants file): each tenant
//! submits a job of many 100 ms tasks, and while all run, the share of the
//! cluster each holds, read from the master's own integral of what it
//! allocated (`weft tenants`), must be within 5% of what DRF computes for
//! the same demands on the same agents ([`reference`], an independent
//! progressive filling in whole tasks).
//!
//! 1. Three tenants whose tasks each demand about 8% of the task places and
//!    7.5% of the memory get a third each, whoever came first.
//! 2. Two tenants with tasks of ⟨33% places, 15% memory⟩ and ⟨17% places,
//!    33% memory⟩ reach equal dominant shares (two thirds each).

use crate::support::{Proc, agent_with, guest, master_with_tenants, tenant_token, weft, weft_json_as};
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// One tenant's tasks: slots and memory each.
#[derive(Clone, Copy, Debug)]
struct Demand {
    slots: u64,
    memory: u64,
}

/// Whole tasks per tenant that DRF gives on `agents` (slots, memory each):
/// progressive filling, the tenant of the smallest dominant share first
/// (drivers held from the start: one place and the task memory each, as the
/// master counts them), each task on the first agent it fits, until no
/// tenant's next task fits anywhere.
fn reference(agents: &[(u64, u64)], demands: &[Demand]) -> Vec<u64> {
    let (places, memory): (u64, u64) = agents.iter().fold((0, 0), |(p, m), a| (p + a.0, m + a.1));
    let mut free = agents.to_vec();
    let mut held: Vec<(u64, u64)> = demands.iter().map(|d| (1, d.memory)).collect();
    let mut tasks = vec![0; demands.len()];
    let share = |h: (u64, u64)| (h.0 as f64 / places as f64).max(h.1 as f64 / memory as f64);
    let mut stuck = vec![false; demands.len()];
    while let Some(t) = (0..demands.len())
        .filter(|t| !stuck[*t])
        .min_by(|a, b| share(held[*a]).total_cmp(&share(held[*b])).then(a.cmp(b)))
    {
        let d = demands[t];
        match free.iter_mut().find(|f| f.0 >= d.slots && f.1 >= d.memory) {
            Some(f) => {
                *f = (f.0 - d.slots, f.1 - d.memory);
                held[t] = (held[t].0 + d.slots, held[t].1 + d.memory);
                tasks[t] += 1;
            }
            None => stuck[t] = true,
        }
    }
    tasks
}

fn tenant<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == name).unwrap()
}

/// Run one job per tenant of `demands` on two agents of `agent` (slots,
/// memory) each, measure each tenant's dominant share of the task places
/// and memory over a window while all run, and compare with [`reference`].
fn demonstrate(dir: &Path, agent: (u64, u64), demands: &[Demand], tasks: u64) -> Vec<f64> {
    let names: Vec<String> = (1..=demands.len()).map(|i| format!("t{i}")).collect();
    let listed: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "")).collect();
    let (_m, url) = master_with_tenants(dir, &listed);
    let (slots, memory) = (agent.0.to_string(), format!("{}MiB", agent.1 / MIB));
    let flags = ["--queue", "0", "--slots", &slots, "--memory", &memory];
    let _agents: Vec<Proc> = ["a", "b"].iter().map(|n| agent_with(&url, dir, n, &flags)).collect();
    let wasm = guest("tasks");
    for (name, d) in names.iter().zip(demands) {
        let (slots, memory) = (d.slots.to_string(), format!("{}MiB", d.memory / MIB));
        let args = ["submit", wasm.to_str().unwrap(), "--task-slots", &slots, "--task-memory", &memory];
        weft_json_as(name, &url, &[&args[..], &["--", &tasks.to_string(), "nap"]].concat());
    }
    // Once every tenant runs tasks (past its driver), measure over a window.
    let tenants = || weft_json_as("ops", &url, &["tenants"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = |v: &serde_json::Value| {
        names.iter().all(|n| {
            let t = tenant(v, n);
            t["drivers"] == 1 && t["places"].as_u64().unwrap() > 1
        })
    };
    while !running(&tenants()) {
        assert!(Instant::now() < deadline, "the tenants' tasks did not start: {}", tenants());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let (t0, before) = (Instant::now(), tenants());
    std::thread::sleep(Duration::from_secs(5));
    let (t1, after) = (Instant::now(), tenants());
    assert!(running(&after), "a tenant ran out of tasks inside the window: use more: {after}");
    let window = (t1 - t0).as_secs_f64();
    let (places, memory) = (2 * agent.0, 2 * agent.1);
    assert_eq!(after["cluster"]["places"], places);
    assert_eq!(after["cluster"]["memory_bytes"], memory);
    let want = reference(&[agent, agent], demands);
    let mut shares = Vec::new();
    for ((name, d), n) in names.iter().zip(demands).zip(&want) {
        let delta =
            |k: &str| tenant(&after, name)[k].as_f64().unwrap() - tenant(&before, name)[k].as_f64().unwrap();
        // What its tasks held on average: all it held, less its driver.
        let task_places = delta("place_seconds") / window - 1.0;
        let task_memory = delta("memory_byte_seconds") / window - d.memory as f64;
        let share = (task_places / places as f64).max(task_memory / memory as f64);
        let ideal = ((n * d.slots) as f64 / places as f64).max((n * d.memory) as f64 / memory as f64);
        eprintln!("{name}: dominant share {share:.4} (DRF: {ideal:.4}, {n} tasks of {d:?})");
        assert!((share - ideal).abs() <= 0.05 * ideal, "{name} held {share:.4}, DRF gives {ideal:.4}");
        shares.push(share);
    }
    // Done: the jobs are killed (one that has just ended makes `kill` exit 1).
    for name in &names {
        for j in weft_json_as(name, &url, &["status"]).as_array().unwrap() {
            let job = j["job"].as_str().unwrap();
            weft()
                .env("WEFT_TOKEN", tenant_token(name))
                .args(["kill", job, "--master", &url])
                .output()
                .unwrap();
        }
    }
    shares
}

#[test]
fn drf_reference_fills_progressively_in_whole_tasks() {
    // The DRF paper's example: ⟨1 CPU, 4 GB⟩ and ⟨3 CPU, 1 GB⟩ tasks on
    // ⟨9 CPU, 18 GB⟩ (here with drivers of one place and the task memory).
    let tasks = reference(&[(9, 18)], &[Demand { slots: 1, memory: 4 }, Demand { slots: 3, memory: 1 }]);
    assert_eq!(tasks, [3, 2], "as in the paper: 3 and 2 tasks, two thirds of each one's dominant resource");
    let equal = reference(&[(6, 6400), (6, 6400)], &[Demand { slots: 1, memory: 960 }; 3]);
    assert_eq!(equal, [4, 4, 4]);
}

#[test]
fn three_tenants_with_equal_demands_get_a_third_each_whoever_came_first() {
    let dir = tempfile::tempdir().unwrap();
    // Two agents of 6 slots and 6400 MiB: a task is 8.3% of the places and
    // 7.5% of the memory.
    let d = Demand { slots: 1, memory: 960 * MIB };
    let shares = demonstrate(dir.path(), (6, 6400 * MIB), &[d; 3], 400);
    assert!(shares.iter().all(|s| (s - 1.0 / 3.0).abs() < 0.02), "{shares:?}");
}

#[test]
fn two_tenants_with_different_dominant_resources_reach_equal_dominant_shares() {
    let dir = tempfile::tempdir().unwrap();
    // Two agents of 3 slots and 3 GiB: a task of t1 is ⟨33% places, 15%
    // memory⟩, one of t2 ⟨17% places, 33% memory⟩.
    let cpu = Demand { slots: 2, memory: 900 * MIB };
    let mem = Demand { slots: 1, memory: 2048 * MIB };
    let shares = demonstrate(dir.path(), (3, 3072 * MIB), &[cpu, mem], 300);
    assert!((shares[0] - shares[1]).abs() < 0.05, "equal dominant shares: {shares:?}");
}
