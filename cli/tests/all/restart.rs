//! A master restarted in the middle of a workload: a `weft master` process
//! is killed (SIGKILL) while a job's tasks run on two `weft agent`
//! processes, and a new master takes its port and data directory.
//!
//! A master that keeps its state (the default) goes on with the job: its
//! driver starts again, the action that had ended is answered from the state
//! store instead of running again, the one that was running runs again from
//! the map outputs the agents still hold (its map stage does not run again),
//! and the output equals a native count; a client waiting for the job follows it
//! through the restart; the job's status and metering survive another
//! restart.
//!
//! An `--ephemeral` master forgets the job, and nothing of the old run may be
//! taken for, or overwrite, anything of the new one: the agents register
//! again under the new run's ids, the old job is unknown, its attempts stop
//! and give their slots back, its shuffle files (under its own id, apart from
//! every new job's) are removed once those attempts have ended, and word
//! counts submitted after the restart equal native counts.

use crate::support::{
    Proc, TOKEN, counts, guest, native_counts, output_lines, run, status, submit_detached, text, until, weft,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// A `weft master` on `addr` keeping its files in `data_dir`, with `flags`;
/// its URL and incarnation.
fn master_at(addr: &str, data_dir: &Path, flags: &[&str]) -> (Proc, String, String) {
    let mut c = weft();
    c.args(["master", "--listen", addr, "--cluster-token", TOKEN, "--heartbeat-interval", "300ms"])
        .args(flags)
        .arg("--data-dir")
        .arg(data_dir);
    let p = Proc::spawn(c);
    let line = p.wait_for("listening on", Duration::from_secs(30));
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    let incarnation = line
        .split("incarnation ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no incarnation in `{line}`"))
        .to_string();
    assert_eq!(incarnation.len(), 8, "an incarnation is 8 hex digits: `{line}`");
    (p, url, incarnation)
}

/// A `weft agent` with 2 slots whose log shows its registrations, the
/// attempts it starts and those it stops; its id at the first registration.
fn agent(url: &str, dir: &Path) -> (Proc, String) {
    let mut c = weft();
    c.env("WEFT_LOG", "warn,weft_agent::node::report=info,weft_agent::node::service=debug")
        .args(["agent", "--master", url, "--listen", "127.0.0.1:0", "--slots", "2", "--cluster-token", TOKEN])
        .arg("--work-dir")
        .arg(dir);
    let p = Proc::spawn(c);
    let line = p.wait_for("serving at", Duration::from_secs(30));
    let id = line.split_whitespace().find(|w| w.starts_with("agent-")).unwrap().to_string();
    (p, id)
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().map(Result::unwrap) {
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// The job directories (`<work>/jobs/<job id>`) on the agents.
fn job_dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|a| std::fs::read_dir(dir.join(a).join("work/jobs")).into_iter().flatten())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Wait for `child` until `deadline` (kill it and panic with `why` past it),
/// adding the job directories seen on the agents meanwhile to `seen`.
fn finish(mut child: Child, deadline: Instant, why: &str, dir: &Path, seen: &mut BTreeSet<String>) -> Output {
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{why}");
        }
        seen.extend(job_dirs(dir));
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Wait up to `timeout` for `done`.
fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let waited = Instant::now();
    while !done() {
        if waited.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[test]
fn a_restarted_master_shares_no_ids_files_or_slots_with_its_previous_run() {
    let (hostile, wc) = (guest("hostile"), guest("wordcount"));
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let data_dir = dir.path().join("master");
    let (old_master, url, old_run) = master_at(&addr, &data_dir, &["--ephemeral"]);
    let (agent_a, id_a) = agent(&url, &dir.path().join("a"));
    let (agent_b, id_b) = agent(&url, &dir.path().join("b"));
    for id in [&id_a, &id_b] {
        assert!(
            id.starts_with(&format!("agent-{old_run}-")),
            "{id} carries the master's incarnation {old_run}"
        );
    }

    // The old job: 64 distinct words counted by 4 map tasks into 4 reduce
    // partitions; every reduce task then sleeps 60 s, holding all 4 slots.
    let words = dir.path().join("words.txt");
    let body: String = (0..16)
        .map(|l| (0..4).map(|w| format!("w{:02}", l * 4 + w)).collect::<Vec<_>>().join(" ") + "\n")
        .collect();
    std::fs::write(&words, body).unwrap();
    let old_job = submit_detached(&url, &hostile, &["shuffle-sleep", words.to_str().unwrap()]);
    assert!(old_job.starts_with(&format!("job-{old_run}-")), "{old_job}");
    loop {
        let s = status(&url, &old_job);
        let stages = s["stages"].as_array().cloned().unwrap_or_default();
        let mapped = stages.iter().any(|st| st["tasks"] == 4 && st["finished"] == 4);
        let running: u64 = stages.iter().map(|st| st["running"].as_u64().unwrap()).sum();
        if mapped && running == 4 {
            break;
        }
        assert_eq!(s["state"], "running", "{s}");
        assert!(started.elapsed() < Duration::from_secs(30), "the old job's reduce tasks never all ran: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its map outputs are on the agents, under its id.
    assert_eq!(job_dirs(dir.path()), vec![old_job.clone()]);
    let old_files: Vec<PathBuf> =
        ["a", "b"].iter().flat_map(|a| files(&dir.path().join(a).join("work/jobs").join(&old_job))).collect();
    assert!(
        old_files.iter().filter(|p| p.extension().is_some_and(|e| e == "index")).count() == 4,
        "4 map outputs of {old_job}: {old_files:?}"
    );

    // SIGKILL the master (Proc's drop), and start another on its port and data dir.
    drop(old_master);
    let restarted = Instant::now();
    let (_master, url2, new_run) = master_at(&addr, &data_dir, &["--ephemeral"]);
    assert_eq!(url2, url, "the new master listens where the old one did");
    assert_ne!(new_run, old_run, "a new run draws a new incarnation");

    // Both agents are told to register again, get ids of the new run, and
    // kill the old job's attempts, by name.
    for (agent, old_id) in [(&agent_a, &id_a), (&agent_b, &id_b)] {
        let line = agent.wait_for(&format!("agent-{new_run}-"), Duration::from_secs(15));
        assert!(line.contains("weft.agent.registered"), "{line}");
        assert!(!line.contains(old_id.as_str()), "{line}");
        let line = agent.wait_for("weft.agent.stale_attempt.kill", Duration::from_secs(5));
        assert!(line.contains(&old_job), "{line}");
    }
    // Once they have ended, the old job's files go: no master would remove them.
    assert!(
        eventually(Duration::from_secs(10), || job_dirs(dir.path()).is_empty()),
        "the old job's files are still on the agents: {:?}",
        job_dirs(dir.path())
    );

    // The new master knows nothing of the old job, and says so.
    let o = run(&["status", &old_job, "--master", &url]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("no job `{old_job}`")), "{err}");
    let o = run(&["status", "--master", &url, "--json"]);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(), serde_json::json!([]));

    // Three word counts at once, over different inputs. The old job's attempts
    // hold all 4 slots for 60 s unless they are stopped: the counts finish
    // long before, so they were.
    let jobs: Vec<(String, PathBuf, Child)> = [3 << 19, 1 << 20, 3 << 17]
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| {
            let body = text(bytes);
            let input = dir.path().join(format!("in-{i}.txt"));
            std::fs::write(&input, &body).unwrap();
            let out = dir.path().join(format!("out-{i}"));
            let mut c = weft();
            c.args(["submit", wc.to_str().unwrap(), "--master", &url, "--wait", "--json", "--"])
                .arg(&input)
                .arg(&out)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            (body, out, c.spawn().unwrap())
        })
        .collect();
    let deadline = restarted + Duration::from_secs(35);
    let mut new_jobs = Vec::new();
    let mut seen = BTreeSet::new();
    for (body, out, child) in jobs {
        let o = finish(
            child,
            deadline,
            "a word count did not finish within 35 s of the restart: the old job's attempts still hold the slots",
            dir.path(),
            &mut seen,
        );
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
        let s: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(s["state"], "succeeded", "{s}");
        assert_eq!(counts(&output_lines(&out)), native_counts(&body), "{s}");
        new_jobs.push(s["job"].as_str().unwrap().to_string());
    }
    for job in &new_jobs {
        assert!(job.starts_with(&format!("job-{new_run}-")), "{job} carries the new run's incarnation");
    }
    let mut distinct = new_jobs.clone();
    distinct.push(old_job.clone());
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{new_jobs:?} and {old_job}");

    // The new jobs' shuffle files lived under their own ids, and went with them.
    assert!(!seen.is_empty(), "no job directory seen while the word counts ran");
    for name in &seen {
        assert!(new_jobs.contains(name), "job directory {name} is none of {new_jobs:?}");
    }
    assert!(
        eventually(Duration::from_secs(5), || job_dirs(dir.path()).is_empty()),
        "{:?}",
        job_dirs(dir.path())
    );
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
}

/// A free loopback address (`127.0.0.1:port`) for a master to take again after a restart.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// The task keys `agents` logged launching so far, added to `seen`.
fn launched(agents: &[&Proc], seen: &mut Vec<String>) {
    for a in agents {
        while let Ok(line) = a.lines.try_recv() {
            if line.contains("weft.agent.launch")
                && let Some(task) = line.split_whitespace().find_map(|w| w.strip_prefix("task="))
            {
                seen.push(task.to_string());
            }
        }
    }
}

#[test]
fn a_master_killed_mid_job_and_started_again_finishes_the_job_without_running_its_ended_action_again() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, data_dir) = (free_addr(), dir.path().join("master"));
    let (master, url, first_run) = master_at(&addr, &data_dir, &[]);
    let (a, _) = agent(&url, &dir.path().join("a"));
    let (b, _) = agent(&url, &dir.path().join("b"));

    // Count the lines (action 1), then a word count whose 4 reduce tasks take
    // 300 ms per distinct word (action 2); a client waits for it.
    let input = dir.path().join("in.txt");
    let body: String = (0..4000).map(|i| format!("w{} w{} common\n", i % 47, (i * 7) % 47)).collect();
    std::fs::write(&input, &body).unwrap();
    let out = dir.path().join("out");
    let mut waiting = weft();
    waiting
        .args(["submit", guest("hostile").to_str().unwrap(), "--master", &url, "--wait", "--json", "--"])
        .args(["count-then-slow-count", input.to_str().unwrap(), out.to_str().unwrap(), "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let waiting = waiting.spawn().unwrap();

    // Kill the master once the word count's reduce stage runs.
    let mut seen = Vec::new();
    let job = until(60, "the reduce stage of action 2 to run", || {
        launched(&[&a, &b], &mut seen);
        let reduce = seen.iter().find(|t| t.contains(".2/stage-1/p"))?;
        Some(reduce.split('.').next()?.to_string())
    });
    assert!(job.starts_with(&format!("job-{first_run}-")), "{job}");
    assert!(seen.iter().any(|t| t.starts_with(&format!("{job}.1/"))), "action 1 ran: {seen:?}");
    drop(master);
    let before = seen.len();

    // A new run on the same port and data directory goes on with the job.
    let restarted = Instant::now();
    let (_master, _, second_run) = master_at(&addr, &data_dir, &[]);
    assert_ne!(second_run, first_run);
    let o = finish(
        waiting,
        restarted + Duration::from_secs(120),
        "the job did not end",
        dir.path(),
        &mut BTreeSet::new(),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    let end: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (end["job"].as_str(), end["state"].as_str()),
        (Some(job.as_str()), Some("succeeded")),
        "{end:#}"
    );
    assert!(end["driver_log"].as_str().unwrap().contains("4000 lines"), "{end:#}");
    let lines = output_lines(&out);
    assert_eq!(lines.len(), counts(&lines).len(), "a word written twice: {lines:?}");
    assert_eq!(counts(&lines), native_counts(&body));

    // After the restart: a new driver attempt, and only the running action's
    // tasks again (under a new action number); the line count was answered
    // from the state store.
    launched(&[&a, &b], &mut seen);
    let after = &seen[before..];
    assert!(
        after.iter().any(|t| t.starts_with(&format!("{job}/driver#"))),
        "the driver started again: {after:?}"
    );
    let again: Vec<&String> = after.iter().filter(|t| t.starts_with(&format!("{job}.1/"))).collect();
    assert!(again.is_empty(), "the ended action ran again: {again:?}");
    assert!(
        after.iter().any(|t| t.starts_with(&format!("{job}.3/"))),
        "the running action ran again as .3: {after:?}"
    );
    let maps: Vec<&String> = after.iter().filter(|t| t.starts_with(&format!("{job}.3/stage-0/"))).collect();
    assert!(maps.is_empty(), "the map outputs the agents hold were computed again: {maps:?}");

    // Its status and metering survive another kill -9 (records reach the
    // store within a second).
    std::thread::sleep(Duration::from_millis(1500));
    let kept = status(&url, &job);
    assert!(kept["metering"]["fuel"].as_u64().unwrap() > 0, "{kept:#}");
    drop(_master);
    let (_master, _, third_run) = master_at(&addr, &data_dir, &[]);
    assert!(![first_run, second_run].contains(&third_run));
    let again = status(&url, &job);
    for field in ["state", "metering", "driver_log", "name"] {
        assert_eq!(again[field], kept[field], "{field} after a restart: {again:#}\nbefore: {kept:#}");
    }
}
