//! Faults injected into real processes in the middle of a job: a master and
//! three `weft agent` processes on loopback, an agent paused (SIGSTOP) until
//! the master declares it lost and then resumed. The job's output must equal
//! a native count of the same text, every line once.
//!
//! Paused for 2.5 s at the start of the reduce stage, the agent's reduce
//! attempts commit their partitions before the attempts that replaced them
//! (which wait for its map outputs to be computed again); those must then
//! finish with the partition done, not fail the job (`commit … denied`, as
//! every run did before).

use crate::support::*;
use std::path::Path;
use std::time::Duration;

/// A master heartbeating every `heartbeat` (an agent silent for five is lost)
/// and three agents of 2 slots that log each launch and wait 300 s for a
/// shuffle block before giving up on its peer; the master's URL.
fn cluster(dir: &Path, heartbeat: &str) -> (Proc, String, Vec<Proc>) {
    cluster_with(dir, heartbeat, &[])
}

/// [`cluster`], the master started with `flags`.
fn cluster_with(dir: &Path, heartbeat: &str, flags: &[&str]) -> (Proc, String, Vec<Proc>) {
    let mut m = master_command(dir);
    m.args(["--heartbeat-interval", heartbeat]).args(flags);
    m.env("WEFT_LOG", "warn,weft_master::job::speculation=info");
    let (m, url) = start_master(m);
    let agents: Vec<Proc> = ["a", "b", "c"].iter().map(|name| fault_agent(dir, &url, name)).collect();
    for a in &agents {
        a.wait_for("serving at", Duration::from_secs(30));
    }
    (m, url, agents)
}

/// Agent `name` of [`cluster`], working in `dir/name/work` (started again
/// on the same directories when called again).
fn fault_agent(dir: &Path, url: &str, name: &str) -> Proc {
    let work = dir.join(name);
    std::fs::create_dir_all(&work).unwrap();
    let config = work.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "master = {url:?}\nlisten = \"127.0.0.1:0\"\nslots = 2\ncluster-token = {TOKEN:?}\n\
             work-dir = {:?}\ncache-dir = {:?}\nfetch-timeout = \"300s\"\n",
            work.join("work"),
            work.join("artifacts"),
        ),
    )
    .unwrap();
    let mut c = weft();
    c.env("WEFT_LOG", "warn,weft_agent::node::service=debug,weft_agent::node::heartbeat=info")
        .arg("agent")
        .arg("--config")
        .arg(config);
    Proc::spawn(c)
}

/// Send `signal` (`STOP`, `CONT`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let ok =
        std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap();
    assert!(ok.success(), "kill -{signal} {pid}");
}

/// The launches each agent logged so far (task keys), added to `seen`.
fn launches(agents: &[Proc], seen: &mut [Vec<String>]) {
    for (a, seen) in agents.iter().zip(seen.iter_mut()) {
        while let Ok(line) = a.lines.try_recv() {
            if line.contains("weft.agent.launch")
                && let Some(task) = line.split_whitespace().find_map(|w| w.strip_prefix("task="))
            {
                seen.push(task.to_string());
            }
        }
    }
}

/// A slow word count (hostile guest's `slow-count`, `reduces` reduce
/// partitions) over 48 distinct words, submitted to `url`: the job, its text
/// and its output directory.
fn slow_count(url: &str, dir: &Path, reduces: &str) -> (String, String, std::path::PathBuf) {
    let input = dir.join("in.txt");
    let text: String = (0..4000).map(|i| format!("w{} w{} common\n", i % 47, (i * 7) % 47)).collect();
    std::fs::write(&input, &text).unwrap();
    let out = dir.join("out");
    let args = ["slow-count", input.to_str().unwrap(), out.to_str().unwrap(), reduces];
    (submit_detached(url, &guest("hostile"), &args), text, out)
}

/// The first agent other than the driver's to launch a reduce task of `job`.
fn reduce_agent(agents: &[Proc], job: &str) -> usize {
    agent_running(agents, job, "/stage-1/p")
}

/// The first agent other than the driver's to launch a task of `job` (a
/// prefix of its tasks' keys) whose key contains `what`.
fn agent_running(agents: &[Proc], job: &str, what: &str) -> usize {
    let mut seen = vec![Vec::new(); agents.len()];
    until(60, &format!("an agent running a task `{what}`"), || {
        launches(agents, &mut seen);
        let of = |i: usize, what: &str| seen[i].iter().any(|t| t.starts_with(job) && t.contains(what));
        let driver = (0..agents.len()).find(|&i| of(i, "/driver#"))?;
        (0..agents.len()).find(|&i| i != driver && of(i, what))
    })
}

/// Wait (at most 120 s) for `job` to end; it must have succeeded with an
/// output equal to a native count of `text`, every word once.
fn assert_exact(url: &str, job: &str, text: &str, out: &Path) {
    let end = until(120, "the job to end", || {
        let s = status(url, job);
        let state = s["state"].as_str()?.to_string();
        (state != "running" && state != "pending").then_some(s)
    });
    assert_eq!(end["state"], "succeeded", "{end:#}");
    let lines = output_lines(out);
    let got = counts(&lines);
    assert_eq!(lines.len(), got.len(), "a word written twice: {lines:?}");
    assert_eq!(got, native_counts(text));
}

#[test]
fn an_agent_paused_past_its_loss_in_the_reduce_stage_and_resumed_leaves_the_output_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, url, agents) = cluster(dir.path(), "300ms");
    // Each of the 4 reduce tasks sleeps 300 ms for each of its ~12 words.
    let (job, text, out) = slow_count(&url, dir.path(), "4");
    // Pause an agent that runs reduce tasks and not the driver, once the
    // reduce stage runs.
    let paused = reduce_agent(&agents, &job);
    signal(agents[paused].pid(), "STOP");
    // Past the 1.5 s after which the master declares it lost, and short
    // enough that its reduce attempts, resumed, finish before those that
    // replace them (which wait for its map outputs to be computed again).
    std::thread::sleep(Duration::from_millis(2500));
    signal(agents[paused].pid(), "CONT");
    assert_exact(&url, &job, &text, &out);
}

#[test]
fn readers_of_an_agent_paused_for_good_do_not_wait_for_their_fetch_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // Lost after 5 s: time for reduce tasks to start reading from the paused agent.
    let (_m, url, agents) = cluster(dir.path(), "1s");
    // Pause, for good, an agent that does not run the driver once the reduce
    // stage runs: 16 reduce tasks of about a second on 6 slots come in waves,
    // and the later waves read its map outputs before the master declares it
    // lost (5 s); their agents would wait 300 s for a block (the job then
    // outlives the 120 s it is given, as it did before readers were released).
    let (job, text, out) = slow_count(&url, dir.path(), "16");
    let paused = reduce_agent(&agents, &job);
    signal(agents[paused].pid(), "STOP");
    // Released when the master names the paused agent lost in its heartbeat
    // answers, the readers fail their fetches and run again once its map
    // outputs are computed elsewhere.
    assert_exact(&url, &job, &text, &out);
    signal(agents[paused].pid(), "CONT");
}

#[test]
fn a_job_whose_drivers_agent_is_killed_starts_its_driver_again_which_adopts_the_running_action() {
    let dir = tempfile::tempdir().unwrap();
    // Heartbeats every 5 s: missed ones would tell of the kill after 10 s
    // (a probe) or 25 s (lost-after).
    let (m, url, agents) = cluster(dir.path(), "5s");
    let (job, text, out) = slow_count(&url, dir.path(), "4");
    // Once the reduce stage runs, kill the driver's agent.
    let mut seen = vec![Vec::new(); agents.len()];
    let driver = until(60, "the reduce stage to run", || {
        launches(&agents, &mut seen);
        let driver = seen.iter().position(|s| s.iter().any(|t| t.contains("/driver#0")))?;
        seen.iter().flatten().any(|t| t.contains("/stage-1/p")).then_some(driver)
    });
    signal(agents[driver].pid(), "KILL");
    // Its connections close with its process: the master checks its port at
    // once, finds it refused, declares it lost and starts the driver on
    // another agent; its `main` asks for the same action, which it joins.
    m.wait_for("its port refuses connections: LOST", Duration::from_secs(3));
    assert_exact(&url, &job, &text, &out);
    // Once, unless a busy machine also delayed a live agent's heartbeats.
    assert!(status(&url, &job)["driver_restarts"].as_u64().unwrap() >= 1);
    launches(&agents, &mut seen);
    let tasks: Vec<&String> = seen.iter().flatten().collect();
    assert!(tasks.iter().any(|t| t.ends_with("/driver#1")), "the driver started again: {tasks:?}");
    let other: Vec<&&String> =
        tasks.iter().filter(|t| !t.contains("/driver#") && !t.contains(".1/")).collect();
    assert!(other.is_empty(), "tasks of an action run again instead of adopted: {other:?}");
}

#[test]
fn an_agent_killed_and_started_again_on_its_work_directory_replaces_itself_at_once_and_forgets_ended_jobs() {
    let dir = tempfile::tempdir().unwrap();
    // Lost after 10 silent seconds: an agent back sooner (a restart takes
    // about a second) must not wait for that (it is lost as its connection
    // closes, or else as it registers again naming its previous id).
    let (m, url, mut agents) = cluster(dir.path(), "2s");
    let names = ["a", "b", "c"];
    let (job, text, out) = slow_count(&url, dir.path(), "4");
    let x = reduce_agent(&agents, &job);
    signal(agents[x].pid(), "KILL");
    let _ = agents[x].wait(Duration::from_secs(10));
    agents[x] = fault_agent(dir.path(), &url, names[x]);
    agents[x].wait_for("serving at", Duration::from_secs(30));
    // The master lost that registration at once, not 10 s after the kill,
    // and its attempts run again.
    m.wait_for(": LOST", Duration::from_secs(3));
    assert_exact(&url, &job, &text, &out);

    // A job that ends while an agent is down leaves its files there until the
    // agent starts again, which removes them.
    let out2 = dir.path().join("out2");
    let input = dir.path().join("in.txt");
    let args = ["slow-count", input.to_str().unwrap(), out2.to_str().unwrap(), "4"];
    let job2 = submit_detached(&url, &guest("hostile"), &args);
    let y = reduce_agent(&agents, &job2);
    let kept = dir.path().join(names[y]).join("work").join("jobs").join(&job2);
    until(10, "the reduce agent to hold the job's files", || kept.is_dir().then_some(()));
    signal(agents[y].pid(), "KILL");
    assert_exact(&url, &job2, &text, &out2);
    assert!(kept.is_dir(), "no one removed them while the agent was down");
    agents[y] = fault_agent(dir.path(), &url, names[y]);
    agents[y].wait_for("weft.agent.ended_job.removed", Duration::from_secs(30));
    assert!(!kept.exists(), "{} removed", kept.display());
}

#[test]
fn with_speculation_the_stragglers_of_a_paused_agent_get_copies_elsewhere_and_the_output_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--speculation", "--speculation-quantile", "0.5"];
    // Lost after 10 silent seconds: the pause below stays under it, so the
    // stragglers are found by speculation, not by the agent's loss.
    let (m, url, agents) = cluster_with(dir.path(), "2s", &flags);
    let (job, text, out) = slow_count(&url, dir.path(), "4");
    // Once the reduce stage runs, pause an agent running reduce tasks for 8 s:
    // the others finish theirs in about 4 s, and its tasks straggle.
    let paused = reduce_agent(&agents, &job);
    signal(agents[paused].pid(), "STOP");
    let copy = m.wait_for("a straggler's speculative copy", Duration::from_secs(30));
    assert!(copy.contains(&job), "{copy}");
    std::thread::sleep(Duration::from_secs(4));
    signal(agents[paused].pid(), "CONT");
    assert_exact(&url, &job, &text, &out);
}

#[test]
fn an_agent_whose_tasks_keep_being_out_run_by_their_copies_is_excluded_as_slow() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--speculation", "--speculation-quantile", "0.5"];
    // Lost after 10 silent seconds: the pause below stays under it.
    let (m, url, agents) = cluster_with(dir.path(), "2s", &flags);
    // A count of 12 partitions, each a fraction of a second of work (burn:
    // 2^20 turns of a loop per line), on 6 slots: two waves.
    let input = dir.path().join("lines.txt");
    let lines = 1200;
    std::fs::write(&input, (0..lines).map(|i| format!("line {i}\n")).collect::<String>()).unwrap();
    let (hostile, input, url2) = (guest("hostile"), input.to_str().unwrap().to_string(), url.clone());
    let submitted = std::thread::spawn(move || submit_log(&url2, &hostile, &["burn", &input, "12"]));
    // Pause an agent (not the driver's) running two tasks of the first wave:
    // both straggle, both get copies elsewhere, and both copies finish first.
    let paused = agent_running(&agents, "", ".1/stage-0/p");
    signal(agents[paused].pid(), "STOP");
    let warning = m.wait_for("EXCLUDED as slow", Duration::from_secs(9));
    let listed = agents_json(&url);
    let slow: Vec<&serde_json::Value> = listed.iter().filter(|a| a["excluded_why"] == "slow").collect();
    assert_eq!(slow.len(), 1, "{listed:#?}");
    let id = slow[0]["agent"].as_str().unwrap();
    assert!(warning.contains(id), "{warning}");
    assert!(slow[0]["excluded_for_ms"].as_u64().unwrap() > 30_000, "{listed:#?}");
    let plain = run(&["agents", "--master", &url]);
    let shown = String::from_utf8_lossy(&plain.stdout);
    assert!(shown.contains("out-run by their speculative copies"), "{shown}");
    signal(agents[paused].pid(), "CONT");
    let log = submitted.join().unwrap();
    assert!(log.contains(&format!("{lines} lines")), "{log}");
}
