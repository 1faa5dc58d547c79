//! Fair sharing between tenants on a real cluster (a master and two agent
//! processes): three tenants submit the same job of many 100 ms tasks, one
//! after the other, and while all three run each holds about a third of the
//! cluster, as Dominant Resource Fairness computes for equal demands. (The
//! exact figures are the benchmark's to report; this checks the shape.)

use crate::support::{Proc, TOKEN, agent, guest, master_command, start_master, weft};
use std::time::{Duration, Instant};
use weft_core::token::TokenHash;

#[test]
fn three_tenants_with_equal_demands_get_equal_shares_whoever_came_first() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = ["t1", "t2", "t3"].map(|name| (name, format!("weft_t_{name}-token-for-the-fairness-test")));
    let admin = "weft_t_admin-token-for-the-fairness-test";
    let mut file = String::new();
    for (name, token) in &tenants {
        file += &format!("[[tenant]]\nname = \"{name}\"\ntokens = [\"{}\"]\n\n", TokenHash::of(token));
    }
    file += &format!("[[tenant]]\nname = \"ops\"\ntokens = [\"{}\"]\nadmin = true\n", TokenHash::of(admin));
    std::fs::write(dir.path().join("tenants.toml"), file).unwrap();
    let mut m = master_command(dir.path());
    m.env_remove("WEFT_CLIENT_TOKEN").arg("--tenants").arg(dir.path().join("tenants.toml"));
    let (_m, url) = start_master(m);
    let agents: Vec<Proc> = ["a", "b"].iter().map(|n| agent(&url, dir.path(), n, TOKEN)).collect();
    for a in &agents {
        a.wait_for("serving at", Duration::from_secs(30));
    }
    let wasm = guest("tasks");
    let mut jobs = Vec::new();
    for (_, token) in &tenants {
        let o = weft()
            .env("WEFT_TOKEN", token)
            .args(["submit", wasm.to_str().unwrap(), "--master", &url, "--json", "--", "200", "nap"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        jobs.push(v["job"].as_str().unwrap().to_string());
    }
    // Sample what each tenant runs while all three run.
    let mut sums = [0f64; 3];
    let mut samples = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the jobs did not end");
        let o =
            weft().env("WEFT_TOKEN", admin).args(["status", "--master", &url, "--json"]).output().unwrap();
        let all: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let running: Vec<f64> = jobs
            .iter()
            .map(|job| {
                let j = all.as_array().unwrap().iter().find(|j| j["job"] == job.as_str()).unwrap();
                let stages = j["stages"].as_array().unwrap();
                stages.iter().map(|s| s["running"].as_u64().unwrap()).sum::<u64>() as f64
            })
            .collect();
        let ended = all.as_array().unwrap().iter().filter(|j| j["state"] != "running").count();
        if ended == 3 {
            break;
        }
        if running.iter().all(|r| *r > 0.0) {
            for (s, r) in sums.iter_mut().zip(&running) {
                *s += r;
            }
            samples += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(samples >= 10, "too few moments with all three running: {samples}");
    let total: f64 = sums.iter().sum();
    eprintln!("shares over {samples} samples: {:?}", sums.map(|s| s / total));
    for (i, s) in sums.iter().enumerate() {
        let share = s / total;
        assert!((0.28..=0.39).contains(&share), "tenant {} held {share:.3} of the cluster: {sums:?}", i + 1);
    }
}
