//! Isolation between tenants on a real cluster (a master and two agent
//! processes, tenants from a tenants file): while a normal tenant runs a
//! word count, a hostile tenant submits endless loops (stopped by fuel and by
//! deadlines), a memory bomb, unbounded recursion and a job of ten times
//! more tasks than the word count (held by a fuel budget). The word count
//! must equal a native count; every hostile job must fail with the typed
//! reason the sandbox or the master gives; the master and both agents must
//! still serve afterwards (another word count runs correctly), and neither
//! agent may have grown past the memory it offers.

use crate::support::{
    Proc, agent_with, counts, guest, master_with_tenants, native_counts, output_lines, tenant_token, text,
    vm, weft, weft_json_as,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// `weft status JOB --json` as `tenant` (it exits non-zero until the job succeeds).
fn status(url: &str, tenant: &str, job: &str) -> serde_json::Value {
    let o = weft()
        .env("WEFT_TOKEN", tenant_token(tenant))
        .args(["status", "--json", "--master", url, job])
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    all[0].clone()
}

/// Submit `wasm` as `tenant` with `flags`, and `args` for its `main`; the job id.
fn submit(url: &str, tenant: &str, wasm: &Path, flags: &[&str], args: &[&str]) -> String {
    let submit = [&["submit", wasm.to_str().unwrap()], flags, &["--"], args].concat();
    weft_json_as(tenant, url, &submit)["job"].as_str().unwrap().to_string()
}

/// Wait for every job of `jobs` (tenant, id) to end; their final statuses.
fn ended(url: &str, jobs: &[(&str, String)], within: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + within;
    jobs.iter()
        .map(|(tenant, job)| {
            loop {
                let s = status(url, tenant, job);
                if s["state"] != "running" && s["state"] != "pending" {
                    break s;
                }
                assert!(Instant::now() < deadline, "{tenant}'s job did not end within {within:?}: {s}");
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .collect()
}

#[test]
fn a_hostile_tenant_beside_a_word_count_fails_on_its_limits_and_takes_nothing_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grant = format!("[[tenant.grant]]\nroot = \"{}\"\naccess = \"read-write\"", d.display());
    let (mut master, url) = master_with_tenants(d, &[("normal", &grant), ("hostile", &grant)]);
    let flags = ["--slots", "2", "--memory", "2GiB"];
    let mut agents: Vec<Proc> = ["a", "b"].iter().map(|n| agent_with(&url, d, n, &flags)).collect();

    let input = d.join("in.txt");
    let body = text(2 << 20);
    std::fs::write(&input, &body).unwrap();
    // 3,200 lines: enough for every hostile split to hold some.
    let lines = d.join("lines.txt");
    std::fs::write(&lines, "a line of the hostile tenant\n".repeat(3200)).unwrap();
    let (wc, hostile) = (guest("wordcount"), guest("hostile"));
    let (input_s, lines_s) = (input.to_str().unwrap(), lines.to_str().unwrap());

    let started = Instant::now();
    let out = d.join("out");
    let normal = submit(&url, "normal", &wc, &[], &[input_s, out.to_str().unwrap()]);
    // The word count runs about 30 tasks over its actions (4 splits, 4
    // reduce partitions per shuffle): the flood has ten times as many, each
    // a few million units of fuel, and a budget for about 40 of them.
    let hostile_jobs: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        ("out of fuel", vec!["--fuel", "300000000"], vec!["spin", lines_s, "4"]),
        ("deadline of 2s exceeded", vec!["--task-deadline", "2s"], vec!["spin", lines_s, "4"]),
        ("memory limit of", vec!["--task-memory", "128MiB"], vec!["grow", lines_s, "4"]),
        ("StackOverflow", vec![], vec!["recurse", lines_s, "4"]),
        ("fuel budget", vec!["--fuel-budget", "1500000000"], vec!["burn", lines_s, "320"]),
    ];
    let mut jobs = vec![("normal", normal.clone())];
    for (_, flags, args) in &hostile_jobs {
        jobs.push(("hostile", submit(&url, "hostile", &hostile, flags, args)));
    }

    let statuses = ended(&url, &jobs, Duration::from_secs(60));
    eprintln!("all jobs ended after {:?}", started.elapsed());
    let word_count = &statuses[0];
    assert_eq!(word_count["state"], "succeeded", "{word_count}");
    assert_eq!(counts(&output_lines(&out)), native_counts(&body), "the word count equals a native count");
    for ((reason, flags, args), s) in hostile_jobs.iter().zip(&statuses[1..]) {
        eprintln!("hostile {args:?} {flags:?}: {} — {}", s["state"], s["message"]);
        assert_eq!(s["state"], "failed", "{s}");
        assert!(s["message"].as_str().unwrap().contains(reason), "`{reason}` in {s}");
    }
    // The flood ran tasks (its last action's stage finished some) before the budget stopped it.
    let flood = &statuses[5];
    let finished: u64 =
        flood["stages"].as_array().unwrap().iter().map(|s| s["finished"].as_u64().unwrap()).sum();
    eprintln!("the flood finished {finished} of its 320 tasks");
    assert!((10..320).contains(&finished), "the flood finished {finished} of its 320 tasks: {flood}");

    // Nobody died, nobody grew past what it offers, and all still serve.
    assert!(master.wait(Duration::from_millis(10)).is_none(), "the master exited");
    for a in &mut agents {
        assert!(a.wait(Duration::from_millis(10)).is_none(), "an agent exited");
        let peak = vm(a.pid(), "VmHWM");
        assert!(peak < 2 << 30, "an agent offering 2 GiB peaked at {} MiB", peak >> 20);
    }
    let listed = weft_json_as("ops", &url, &["agents"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let small = d.join("small.txt");
    let small_body = text(256 << 10);
    std::fs::write(&small, &small_body).unwrap();
    let again = d.join("again");
    let job = submit(&url, "normal", &wc, &[], &[small.to_str().unwrap(), again.to_str().unwrap()]);
    let s = &ended(&url, &[("normal", job)], Duration::from_secs(30))[0];
    assert_eq!(s["state"], "succeeded", "{s}");
    assert_eq!(counts(&output_lines(&again)), native_counts(&small_body));
}
