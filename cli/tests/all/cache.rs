//! Persisted datasets on a real cluster: a master and agent processes, the
//! `cache` test guest (`tests/guests/cache`), which parses its input once
//! into pairs, persists them and runs several actions over them, counting
//! every parse in an accumulator. Each action's sums are checked against a
//! native count of the input; the accumulator shows what was computed again.

use crate::cluster::submit_wait;
use crate::support::{
    Proc, agent_serving, agent_with, agents_json, cluster, guest, master, status, submit_detached, text, weft,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// The input (`lines` lines) and how many distinct first words it has.
fn input(dir: &Path, bytes: usize) -> (String, u64, usize) {
    let body = text(bytes);
    let path = dir.join("in.txt");
    std::fs::write(&path, &body).unwrap();
    let lines = body.lines().count() as u64;
    let keys: BTreeSet<&str> =
        body.lines().map(|l| l.split_whitespace().next().unwrap_or_default()).collect();
    (path.to_str().unwrap().to_string(), lines, keys.len())
}

/// Each `action I: keys K total T parsed P` line of a driver log, as (K, T, P).
fn actions(log: &str) -> Vec<(usize, u64, u64)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("action ")?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            Some((words[2].parse().ok()?, words[4].parse().ok()?, words[6].parse().ok()?))
        })
        .collect()
}

/// The driver log of a finished job, checked to have succeeded with every
/// action's sums equal to the native ones; the `parsed` count after each action.
fn parsed_after_each(status: &serde_json::Value, lines: u64, keys: usize, n: usize) -> Vec<u64> {
    assert_eq!(status["state"], "succeeded", "{status}");
    let got = actions(status["driver_log"].as_str().unwrap());
    assert_eq!(got.len(), n, "{status}");
    for (k, total, _) in &got {
        assert_eq!((*k, *total), (keys, lines), "every action sums the whole input");
    }
    got.iter().map(|(_, _, p)| *p).collect()
}

#[test]
fn a_persisted_dataset_is_computed_once_at_every_storage_level() {
    let dir = tempfile::tempdir().unwrap();
    let (input, lines, keys) = input(dir.path(), 2 << 20);
    let (_master, url, _agents) = cluster(dir.path(), 2);
    for level in ["memory", "memory-and-disk", "disk"] {
        let status = submit_wait(&url, &guest("cache"), &[level, &input, "3"]);
        let parsed = parsed_after_each(&status, lines, keys, 3);
        assert_eq!(parsed, [lines; 3], "{level}: parsed once, read from the cache after");
    }
    // Not persisted, every action parses again: the count above could fail.
    let status = submit_wait(&url, &guest("cache"), &["none", &input, "3"]);
    assert_eq!(parsed_after_each(&status, lines, keys, 3), [lines, 2 * lines, 3 * lines]);
}

#[test]
fn an_unpersisted_dataset_is_computed_again() {
    let dir = tempfile::tempdir().unwrap();
    let (input, lines, keys) = input(dir.path(), 1 << 20);
    let (_master, url, _agents) = cluster(dir.path(), 2);
    let status = submit_wait(&url, &guest("cache"), &["memory", &input, "3", "1"]);
    assert_eq!(parsed_after_each(&status, lines, keys, 3), [lines, 2 * lines, 3 * lines]);
}

#[test]
fn partitions_lost_with_their_agent_are_computed_again_and_only_they() {
    let dir = tempfile::tempdir().unwrap();
    let (input, lines, keys) = input(dir.path(), 2 << 20);
    let (_master, url) = master(dir.path());
    let mut procs: Vec<(Proc, String)> =
        ["a", "b", "c"].iter().map(|name| agent_serving(&url, dir.path(), name, &["--slots", "2"])).collect();
    let n = 150;
    let job = submit_detached(&url, &guest("cache"), &["memory", &input, &n.to_string()]);

    // Once the first action has kept the partitions (agents report what
    // they keep in their heartbeats), kill an agent that keeps some and
    // runs no driver.
    let deadline = Instant::now() + Duration::from_secs(60);
    let victim = loop {
        assert!(Instant::now() < deadline, "no partition kept within a minute: {}", status(&url, &job));
        let holder = agents_json(&url)
            .into_iter()
            .find(|a| a["drivers"] == 0 && a["memory"]["cached_memory_bytes"].as_u64().unwrap_or(0) > 0);
        if let Some(a) = holder {
            break a["address"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let i = procs
        .iter()
        .position(|(_, serving)| serving.contains(&victim))
        .unwrap_or_else(|| panic!("no agent serves at {victim}"));
    drop(procs.remove(i));
    assert_eq!(status(&url, &job)["state"], "running", "the agent was killed before the job ended");

    let end = Instant::now() + Duration::from_secs(120);
    let status = loop {
        let s = status(&url, &job);
        if s["state"] != "running" && s["state"] != "pending" {
            break s;
        }
        assert!(Instant::now() < end, "the job did not end: {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let parsed = parsed_after_each(&status, lines, keys, n);
    let last = *parsed.last().unwrap();
    // What the lost agent kept was parsed again, once; the rest never.
    assert!(last > lines, "the agent at {victim} kept partitions, computed again: parsed {last}");
    assert!(last < 2 * lines, "only the lost partitions were computed again: parsed {last} of {lines} lines");
}

#[test]
fn partitions_without_room_in_memory_are_computed_again_or_kept_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (input, lines, keys) = input(dir.path(), 24 << 20);
    let (_master, url) = master(dir.path());
    // A task holds 64 MiB of the agent's 72 MiB while it runs, so the
    // partitions (about 2 MiB of pairs each) do not all fit beside it.
    let _agent = agent_with(&url, dir.path(), "a", &["--slots", "1", "--memory", "72MiB"]);
    let wasm = guest("cache");
    let submit = |level: &str| {
        let o = weft()
            .arg("submit")
            .arg(&wasm)
            .args(["--master", &url, "--wait", "--json", "--task-memory", "64MiB", "--", level, &input, "3"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let parsed = parsed_after_each(&submit("memory"), lines, keys, 3);
    assert!(parsed[0] == lines && parsed[2] > lines, "some partitions found no room: {parsed:?}");
    let parsed = parsed_after_each(&submit("memory-and-disk"), lines, keys, 3);
    assert_eq!(parsed, [lines; 3], "what found no room in memory was kept on disk");
}
