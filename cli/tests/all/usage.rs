//! Usage metering on a real cluster (a `weft master` and two `weft agent`
//! processes): totals are exact sums of the ledger's attempt rows through
//! retries, a lost agent and a kill; the same job burns the same fuel on
//! every run; a tenant's fuel quota stops its jobs and refuses its
//! submissions while another tenant runs on; a tenant reads only its own usage.

use crate::support::{
    Proc, TOKEN, counts, guest, master_command, native_counts, output_lines, start_master, text, until, weft,
};
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use weft_core::token::TokenHash;

const ALPHA: &str = "weft_t_alpha-token-for-the-usage-tests";
const BETA: &str = "weft_t_beta-token-for-the-usage-tests";
const OPS: &str = "weft_t_ops-token-for-the-usage-tests";

/// A tenants file: `alpha` (with `alpha_quota` under `[tenant.quota]`),
/// `beta`, and `ops`, an admin.
fn tenants_file(path: &Path, alpha_quota: &str) {
    let mut f = String::new();
    for (name, token, extra) in [("alpha", ALPHA, alpha_quota), ("beta", BETA, ""), ("ops", OPS, "")] {
        f += &format!("[[tenant]]\nname = \"{name}\"\ntokens = [\"{}\"]\n", TokenHash::of(token));
        if name == "ops" {
            f += "admin = true\n";
        }
        if !extra.is_empty() {
            f += &format!("[tenant.quota]\n{extra}\n");
        }
        f += &format!("[[tenant.grant]]\nroot = {:?}\naccess = \"read-write\"\n\n", std::env::temp_dir());
    }
    std::fs::write(path, f).unwrap();
}

/// A master with the tenants of `file` (heartbeats every 300 ms, so a killed
/// agent is lost within 1.5 s) and two agents of 6 slots; the master's URL.
fn cluster(dir: &Path, file: &Path) -> (Proc, String, Vec<Proc>) {
    let mut m = master_command(dir);
    m.env_remove("WEFT_CLIENT_TOKEN").arg("--tenants").arg(file).args(["--heartbeat-interval", "300ms"]);
    let (m, url) = start_master(m);
    let agents: Vec<Proc> = ["a", "b"]
        .iter()
        .map(|name| {
            let mut c = weft();
            c.env("WEFT_LOG", "warn,weft_agent::node::service=debug")
                .args(["agent", "--master", &url, "--listen", "127.0.0.1:0", "--cluster-token", TOKEN])
                .args(["--slots", "6", "--memory", "16GiB", "--work-dir"])
                .arg(dir.join(name));
            Proc::spawn(c)
        })
        .collect();
    for a in &agents {
        a.wait_for("serving at", Duration::from_secs(30));
    }
    (m, url, agents)
}

/// `weft ARGS --master URL` presenting `token`.
fn as_tenant(token: &str, url: &str, args: &[&str]) -> Output {
    let (command, rest) = args.split_first().unwrap();
    weft().env("WEFT_TOKEN", token).arg(command).args(["--master", url]).args(rest).output().unwrap()
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// `weft usage ARGS --json` as `token`: its rows.
fn usage(token: &str, url: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["usage", "--json"];
    all.extend_from_slice(args);
    ok(&as_tenant(token, url, &all)).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn submit(token: &str, url: &str, wasm: &Path, args: &[&str]) -> String {
    let mut all = vec!["submit", wasm.to_str().unwrap(), "--json", "--"];
    all.extend_from_slice(args);
    let v: Value = serde_json::from_str(&ok(&as_tenant(token, url, &all))).unwrap();
    v["job"].as_str().unwrap().to_string()
}

/// `weft submit --wait --json` of a word count of `input` into `out` as `token`.
fn wordcount(token: &str, url: &str, input: &Path, out: &Path) -> Output {
    let wc = guest("wordcount");
    let args = ["submit", wc.to_str().unwrap(), "--wait", "--json", "--"];
    as_tenant(token, url, &[&args[..], &[input.to_str().unwrap(), out.to_str().unwrap()]].concat())
}

/// `weft status JOB --json` (which exits 3 while the job runs).
fn status(token: &str, url: &str, job: &str) -> Value {
    let o = as_tenant(token, url, &["status", job, "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    v[0].clone()
}

/// The summed fields of usage rows.
const SUMMED: [&str; 17] = [
    "attempts",
    "fuel",
    "wall_us",
    "cpu_us",
    "instantiate_us",
    "records_in",
    "records_out",
    "bytes_in",
    "bytes_out",
    "shuffle_written",
    "shuffle_read",
    "spill",
    "calls",
    "log_bytes",
    "slot_us",
    "memory_byte_seconds",
    "lost",
];

/// `rows` summed field by field (peak memories: the largest).
fn sum(rows: &[&Value]) -> Vec<(&'static str, u64)> {
    let mut out: Vec<(&'static str, u64)> =
        SUMMED.iter().map(|f| (*f, rows.iter().map(|r| r[*f].as_u64().unwrap()).sum())).collect();
    for peak in ["peak_memory", "peak_host_memory"] {
        out.push((peak, rows.iter().map(|r| r[peak].as_u64().unwrap()).max().unwrap_or(0)));
    }
    out
}

fn micros(v: &Value) -> u64 {
    humantime::parse_duration(v.as_str().unwrap()).unwrap().as_micros() as u64
}

/// `weft status` totals, as usage fields.
fn status_totals(s: &Value) -> Vec<(&'static str, u64)> {
    let m = &s["metering"];
    let n = |f: &str| m[f].as_u64().unwrap();
    vec![
        ("fuel", n("fuel")),
        ("wall_us", micros(&m["wall"])),
        ("cpu_us", micros(&m["cpu"])),
        ("instantiate_us", micros(&m["instantiate"])),
        ("records_in", n("records_in")),
        ("records_out", n("records_out")),
        ("bytes_in", n("bytes_in")),
        ("bytes_out", n("bytes_out")),
        ("shuffle_written", n("shuffle_bytes_written")),
        ("shuffle_read", n("shuffle_bytes_read")),
        ("spill", n("spill_bytes")),
        ("calls", n("calls")),
        ("log_bytes", n("log_bytes")),
        ("peak_memory", n("peak_memory")),
        ("peak_host_memory", n("peak_host_memory")),
    ]
}

fn pick(all: &[(&'static str, u64)], names: &[(&'static str, u64)]) -> Vec<(&'static str, u64)> {
    names.iter().map(|(f, _)| *all.iter().find(|(g, _)| g == f).unwrap()).collect()
}

#[test]
fn totals_are_exact_sums_of_attempts_through_a_lost_agent_recomputed_maps_and_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenants.toml");
    tenants_file(&file, "");
    let (_m, url, mut agents) = cluster(dir.path(), &file);
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "alpha beta gamma delta epsilon zeta eta theta\n".repeat(200)).unwrap();

    // Map tasks count words and end; every reduce task then sleeps 60 s.
    let hostile = guest("hostile");
    let job = submit(ALPHA, &url, &hostile, &["shuffle-sleep", input.to_str().unwrap()]);
    until(60, "the reduce tasks to run", || {
        let s = status(ALPHA, &url, &job);
        let stages = s["stages"].as_array()?.clone();
        let maps_done = stages.len() == 2 && stages[0]["finished"] == stages[0]["tasks"];
        (maps_done && stages[1]["running"].as_u64()? >= 2).then_some(())
    });
    // Kill (SIGKILL) the agent that does not run the driver: its reduce
    // attempts are lost, and the map outputs it held are computed again.
    let mut driver_on = None;
    for (i, a) in agents.iter().enumerate() {
        while let Ok(line) = a.lines.try_recv() {
            if line.contains("weft.agent.launch") && line.contains("/driver#") {
                driver_on = Some(i);
            }
        }
    }
    let driver_on = driver_on.expect("an agent logged the driver's launch");
    let doomed = agents.remove(1 - driver_on);
    drop(doomed);
    let rows = until(60, "lost attempts and recomputed map outputs", || {
        let rows = usage(OPS, &url, &["--job", &job, "--attempts"]);
        let lost = rows.iter().any(|r| r["end"] == "lost");
        let again = rows
            .iter()
            .any(|r| r["stage"] == 0 && r["attempt"].as_u64().unwrap() >= 1 && r["end"] == "finished");
        (lost && again).then_some(rows)
    });
    assert!(rows.iter().all(|r| r["tenant"] == "alpha" && r["job"] == job.as_str()));
    let o = as_tenant(ALPHA, &url, &["kill", &job]);
    ok(&o);
    // Every attempt has reported or been closed.
    until(30, "every attempt of the killed job to end", || {
        let job_row = usage(OPS, &url, &["--job", &job, "--by", "job"]);
        (job_row.len() == 1 && job_row[0]["running"] == 0).then_some(())
    });

    let rows = usage(OPS, &url, &["--job", &job, "--attempts"]);
    let ends: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["end"].as_str().unwrap()).collect();
    for end in ["finished", "lost", "killed"] {
        assert!(ends.contains(end), "no `{end}` attempt in {ends:?}");
    }
    let driver: Vec<&Value> = rows.iter().filter(|r| r["stage"] == u32::MAX).collect();
    assert_eq!(driver.len(), 1, "one driver attempt: {driver:?}");
    assert_eq!(driver[0]["end"], "killed", "{:#}", status(ALPHA, &url, &job));
    for r in &rows {
        assert_eq!(r["attempts"], 1);
        assert_eq!(r[r["end"].as_str().unwrap()], 1, "{r}");
        if r["end"] == "lost" {
            assert!(
                r["fuel"] == 0 && r["agent"].is_string(),
                "a lost attempt burned nothing we know of: {r}"
            );
        }
    }
    let finished_maps = rows.iter().filter(|r| r["stage"] == 0 && r["end"] == "finished").count();
    let maps = status(ALPHA, &url, &job)["stages"][0]["tasks"].as_u64().unwrap() as usize;
    assert!(finished_maps > maps, "some map outputs were computed twice: {finished_maps} of {maps}");

    // The job's totals are the sum of its attempt rows, in `weft usage` and in `weft status`.
    let attempts: Vec<&Value> = rows.iter().collect();
    let total = sum(&attempts);
    assert!(total.iter().any(|(f, v)| *f == "fuel" && *v > 0), "{total:?}");
    let by_job = usage(ALPHA, &url, &["--by", "job"]);
    let job_row: Vec<&Value> = by_job.iter().filter(|r| r["job"] == job.as_str()).collect();
    assert_eq!(sum(&job_row), total, "job row == sum of its attempts");
    let status_t = status_totals(&status(ALPHA, &url, &job));
    assert_eq!(status_t, pick(&total, &status_t), "weft status == sum of the attempts");
    let by_stage = usage(ALPHA, &url, &["--job", &job, "--by", "stage"]);
    assert_eq!(sum(&by_stage.iter().collect::<Vec<_>>()), total, "stages sum to the job");
    // The tenant's row is the sum over its jobs.
    let tenant = usage(ALPHA, &url, &[]);
    assert_eq!(tenant.len(), 1);
    assert_eq!(tenant[0]["tenant"], "alpha");
    assert_eq!(tenant[0]["jobs"], by_job.len() as u64);
    assert_eq!(sum(&[&tenant[0]]), sum(&by_job.iter().collect::<Vec<_>>()), "tenant == sum of its jobs");

    // CSV has the same rows.
    let csv = ok(&as_tenant(ALPHA, &url, &["usage", "--job", &job, "--attempts", "--csv"]));
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let fuel = header.iter().position(|h| *h == "fuel").unwrap();
    let csv_fuel: u64 = lines.map(|l| l.split(',').nth(fuel).unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(csv_fuel, total.iter().find(|(f, _)| *f == "fuel").unwrap().1);
}

/// `(action, stage, partition) -> fuel` of the finished attempts of `job`.
fn fuel_by_task(url: &str, job: &str) -> std::collections::BTreeMap<(u64, u64, u64), (u64, u64)> {
    usage(OPS, url, &["--job", job, "--attempts"])
        .iter()
        .filter(|r| r["end"] == "finished")
        .map(|r| {
            let key = (
                r["action"].as_u64().unwrap(),
                r["stage"].as_u64().unwrap(),
                r["partition"].as_u64().unwrap(),
            );
            (key, (r["fuel"].as_u64().unwrap(), r["calls"].as_u64().unwrap()))
        })
        .collect()
}

#[test]
fn the_same_job_on_the_same_input_burns_the_same_fuel_in_every_task() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenants.toml");
    tenants_file(&file, "");
    let (_m, url, _agents) = cluster(dir.path(), &file);
    let input = dir.path().join("in.txt");
    let body = text(1 << 20);
    std::fs::write(&input, &body).unwrap();
    let mut runs = Vec::new();
    for run in 0..2 {
        let out = dir.path().join(format!("out{run}"));
        let o = wordcount(BETA, &url, &input, &out);
        let s: Value = serde_json::from_str(&ok(&o)).unwrap();
        assert_eq!(counts(&output_lines(&out)), native_counts(&body));
        runs.push(fuel_by_task(&url, s["job"].as_str().unwrap()));
    }
    let (first, second) = (&runs[0], &runs[1]);
    assert_eq!(first.keys().collect::<Vec<_>>(), second.keys().collect::<Vec<_>>(), "the same tasks");
    assert!(first.len() > 10, "{first:?}");
    let mut guest_tasks = 0;
    for (task, (fuel, calls)) in first {
        assert_eq!(second[task].0, *fuel, "task {task:?} burned {fuel}, then {}", second[task].0);
        if *calls > 0 {
            assert!(*fuel > 0, "task {task:?} called its guest {calls} times for no fuel");
            guest_tasks += 1;
        }
    }
    assert!(guest_tasks * 2 > first.len(), "most tasks run guest code: {first:?}");
}

#[test]
fn a_tenant_over_its_fuel_quota_stops_and_is_refused_while_another_runs_and_reads_only_its_own_usage() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenants.toml");
    tenants_file(&file, "fuel = { amount = 1000000000000000, period = \"1h\" }");
    let (_m, url, _agents) = cluster(dir.path(), &file);
    let input = dir.path().join("in.txt");
    let body = text(512 << 10);
    std::fs::write(&input, &body).unwrap();
    let wordcount = |token: &str, out: &str| {
        let out = dir.path().join(out);
        (wordcount(token, &url, &input, &out), out)
    };
    // beta's word count: what the job burns.
    let (o, out) = wordcount(BETA, "beta-1");
    let s: Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(counts(&output_lines(&out)), native_counts(&body));
    let needs = s["metering"]["fuel"].as_u64().unwrap();
    // alpha's small job, under its quota: what it burned shows with the quota.
    let tasks = guest("tasks");
    ok(&as_tenant(ALPHA, &url, &["submit", tasks.to_str().unwrap(), "--wait", "--", "4", "identity"]));
    let row = usage(ALPHA, &url, &[]);
    assert_eq!(row.len(), 1, "{row:?}");
    let used = row[0]["fuel_quota_used"].as_u64().unwrap();
    assert!(used > 0 && used == row[0]["fuel"].as_u64().unwrap(), "{row:?}");
    assert_eq!(row[0]["fuel_quota"], 1_000_000_000_000_000u64);
    assert_eq!(row[0]["fuel_quota_period_s"], 3600);
    let resets = humantime::parse_rfc3339(row[0]["fuel_quota_resets_at"].as_str().unwrap()).unwrap();
    let left = resets.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(left <= Duration::from_secs(3600), "the window is the current UTC hour: {left:?}");
    let table = ok(&as_tenant(ALPHA, &url, &["usage"]));
    assert!(
        table.contains(&format!("fuel quota: {used} of 1000000000000000 per 1h used; resets at")),
        "{table}"
    );

    // A tenant reads only its own usage; an admin reads everyone's.
    let o = as_tenant(ALPHA, &url, &["usage", "--tenant", "beta"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("may not read the usage of tenant `beta`"), "{err}");
    assert!(usage(BETA, &url, &["--by", "job"]).iter().all(|r| r["tenant"] == "beta"));
    let all = usage(OPS, &url, &[]);
    let names: Vec<&str> = all.iter().map(|r| r["tenant"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(usage(OPS, &url, &["--tenant", "beta"]).len(), 1);

    // Lower alpha's quota to half a word count more than it used: the next one stops.
    let amount = used + needs / 2;
    tenants_file(&file, &format!("fuel = {{ amount = {amount}, period = \"1h\" }}"));
    until(20, "the tenants file to be reloaded", || {
        (usage(ALPHA, &url, &[])[0]["fuel_quota"] == amount).then_some(())
    });
    let (o, _) = wordcount(ALPHA, "alpha-1");
    assert!(!o.status.success());
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    let message = s["message"].as_str().unwrap();
    assert_eq!(s["state"], "failed");
    assert!(
        message.contains(&format!("tenant `alpha` has used its fuel quota of {amount} per 1h"))
            && message.contains("resets at"),
        "{message}"
    );
    let row = &usage(ALPHA, &url, &[])[0];
    assert!(row["fuel_quota_used"].as_u64().unwrap() >= amount, "{row}");
    assert!(row["fuel"].as_u64().unwrap() < used + needs, "the job stopped before it finished: {row}");
    // Its next submission is refused, with the same facts and the fix.
    let o = as_tenant(ALPHA, &url, &["submit", tasks.to_str().unwrap(), "--", "4", "identity"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains(&format!("fuel quota of {amount} per 1h"))
            && err.contains("resets at")
            && err.contains("[tenant.quota] fuel"),
        "{err}"
    );
    // beta runs on.
    let (o, out) = wordcount(BETA, "beta-2");
    ok(&o);
    assert_eq!(counts(&output_lines(&out)), native_counts(&body));
}
