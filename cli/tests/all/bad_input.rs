//! Bad input gets a clear error and a non-zero exit; master and agents keep running.

use crate::support::{agent, cluster, guest, run, weft};
use std::time::Duration;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_jobs_fail_clearly_and_the_cluster_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_master, url, _agents) = cluster(dir.path(), 1);
    let wc = guest("wordcount");
    let wc = wc.to_str().unwrap();

    // Not a component.
    let script = dir.path().join("job.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let o = run(&["submit", script.to_str().unwrap(), "--master", &url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not WebAssembly"), "{}", stderr(&o));

    // An unknown URI scheme.
    let o = run(&["submit", "ftp://example/job.wasm", "--master", &url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ftp"), "{}", stderr(&o));

    // A digest mismatch (of a file where the tests' tenant may read).
    let copy = dir.path().join("wordcount.wasm");
    std::fs::copy(wc, &copy).unwrap();
    let wrong = format!("file://{}#blake3:{}", copy.display(), "1".repeat(64));
    let o = run(&["submit", &wrong, "--master", &url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).to_lowercase().contains("digest"), "{}", stderr(&o));

    // A missing input: the job fails, naming it.
    let missing = dir.path().join("no-such-input.txt");
    let out = dir.path().join("out");
    let o = run(&[
        "submit",
        wc,
        "--master",
        &url,
        "--wait",
        "--",
        missing.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("no-such-input.txt"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(!out.join("_SUCCESS").exists(), "a failed job leaves no output");

    // The job's own usage error.
    let o = run(&["submit", wc, "--master", &url, "--wait", "--", "only-one-arg"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("usage: wordcount"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // An agent with the wrong token is refused and exits; the master serves on.
    let mut intruder = agent(&url, dir.path(), "intruder", "not-the-token");
    let status = intruder.wait(Duration::from_secs(30)).expect("the refused agent exits");
    assert!(!status.success());
    let o = run(&["status", "--master", &url]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A good job still runs after all of that.
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "b a b\n").unwrap();
    let o = run(&[
        "submit",
        wc,
        "--master",
        &url,
        "--wait",
        "--",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn an_unknown_user_function_is_named_in_the_error() {
    let guest = guest("hostile");
    let o = weft()
        .args(["task", "run", guest.to_str().unwrap(), "--op", "map:no_such_function"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    // No input records: the function is never called, so the run succeeds.
    assert!(o.status.success(), "{}", stderr(&o));
    let mut child = weft()
        .args(["task", "run", guest.to_str().unwrap(), "--op", "map:no_such_function"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"x\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no_such_function"), "{}", stderr(&o));
}

#[test]
fn job_limits_from_the_command_line_reach_the_tasks_and_the_maximum_holds() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = guest("tasks");
    let local = |flags: &[&str]| {
        weft()
            .current_dir(dir.path())
            .arg("local")
            .args(flags)
            .args([wasm.to_str().unwrap(), "--", "4", "identity"])
            .output()
            .unwrap()
    };
    let o = local(&["--task-memory", "64GiB"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("maximum of") && stderr(&o).contains("--task-memory"), "{}", stderr(&o));
    // Too little fuel for anything: the job fails, and says why.
    let o = local(&["--fuel", "1000", "--json"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(out.contains("fuel"), "{out}");
    let o = local(&["--fuel", "1000000000", "--task-deadline", "30s", "--json"]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let burned = status["metering"]["fuel"].as_u64().unwrap();
    // A budget below what the job burns stops it, naming the budget.
    let budget = (burned / 4).to_string();
    let o = local(&["--fuel-budget", &budget, "--json"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(out.contains(&format!("fuel budget of {budget} is used up")), "{out}");
    // One above it lets the job run.
    let o = local(&["--fuel-budget", &(burned * 2).to_string(), "--json"]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
}

/// Host memory a guest makes the agent keep counts against its memory limit:
/// a driver that builds an endless plan, and tasks that flood the host with
/// accumulator names, fail with the memory limit, naming the flag.
#[test]
fn an_endless_plan_and_a_flood_of_accumulators_end_at_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, (0..2000).map(|i| format!("line {i}\n")).collect::<String>()).unwrap();
    let wasm = guest("hostile");
    for function in ["endless-plan", "accumulate"] {
        let started = std::time::Instant::now();
        let o = weft()
            .current_dir(dir.path())
            .args(["local", "--json", "--task-memory", "64MiB", wasm.to_str().unwrap(), "--", function])
            .arg(&input)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(1), "{function}: {out}{}", stderr(&o));
        let status: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(status["state"], "failed", "{function}: {status}");
        let message = status["message"].as_str().unwrap();
        assert!(
            message.contains("memory limit of 64.0 MiB") && message.contains("--task-memory"),
            "{message}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{function}: {:?}",
            started.elapsed()
        );
    }
}
