//! Roles and reservations on a real cluster: an agent reserves slots and
//! memory for the role `batch` (`--reserve`), an admin reserves more on
//! another agent (`weft reserve`); a tenant of no role that has the cluster
//! to itself borrows the reserved room as revocable tasks, and when a
//! `batch` tenant's job comes, the borrowed tasks are killed so it gets its
//! reservation at once. Both jobs finish with correct counts: preempted
//! tasks run again and are not failures.

use crate::support::{Proc, agent_with, guest, master_with_tenants, tenant_token, weft, weft_json_as};
use std::time::{Duration, Instant};

fn holding(url: &str, tenant: &str) -> u64 {
    let v = weft_json_as("ops", url, &["tenants"]);
    let t = v["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == tenant).unwrap().clone();
    t["places"].as_u64().unwrap()
}

/// Wait until `check` holds, for at most `secs`.
fn until(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_roles_reservation_is_lent_revocably_and_taken_back_when_its_tenants_need_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, url) = master_with_tenants(dir.path(), &[("batch", "role = \"batch\""), ("other", "")]);
    let flags = ["--slots", "2", "--queue", "0", "--memory", "2GiB"];
    let _a = agent_with(
        &url,
        dir.path(),
        "a",
        &[&flags[..], &["--reserve", "batch:slots=1,memory=512MiB"]].concat(),
    );
    let _b: Proc = agent_with(&url, dir.path(), "b", &flags);
    let agents = weft_json_as("ops", &url, &["agents"]);
    let agents = agents.as_array().unwrap();
    assert_eq!(agents.len(), 2);
    let (a, b) = (agents[0]["address"].as_str().unwrap(), agents[1]["address"].as_str().unwrap());
    let static_one = agents.iter().find(|x| x["address"] == a).unwrap()["reservations"].clone();
    assert_eq!(static_one[0]["role"], "batch");
    assert_eq!((static_one[0]["slots"].as_u64(), static_one[0]["dynamic"].as_bool()), (Some(1), Some(false)));

    // Only an admin reserves; it does so on b, by address.
    let o = weft()
        .env("WEFT_TOKEN", tenant_token("other"))
        .args(["reserve", b, "x:slots=1", "--master", &url])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("only an admin"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = weft()
        .env("WEFT_TOKEN", tenant_token("ops"))
        .args(["reserve", b, "batch:slots=1,memory=512MiB", "--master", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = weft()
        .env("WEFT_TOKEN", tenant_token("ops"))
        .args(["reserve", b, "batch:slots=3", "--master", &url])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("would pass the agent's 2 slots"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // other alone: the 2 unreserved slots and the 2 reserved, borrowed.
    let wasm = guest("tasks");
    let w = wasm.to_str().unwrap();
    let other = weft_json_as("other", &url, &["submit", w, "--task-memory", "256MiB", "--", "300", "nap"]);
    until(60, "other never held the whole cluster", || holding(&url, "other") == 1 + 4);
    // Agents report their memory in heartbeats: the budget, what running
    // tasks hold of it (256 MiB each, 2 per agent) and the resident set.
    until(10, "no heartbeat showed the tasks' memory held", || {
        let v = weft_json_as("ops", &url, &["agents"]);
        v.as_array().unwrap().iter().all(|a| a["memory"]["held_bytes"] == 512u64 << 20)
    });
    for a in weft_json_as("ops", &url, &["agents"]).as_array().unwrap() {
        let m = &a["memory"];
        assert_eq!(m["budget_bytes"], 2u64 << 30, "{a}");
        let (rss, peak) = (m["resident_bytes"].as_u64().unwrap(), m["peak_resident_bytes"].as_u64().unwrap());
        assert!(rss > 1 << 20 && rss <= peak && peak < 2 << 30, "{a}");
    }

    // batch comes: within moments it holds its reservation (2 slots).
    let batch = weft_json_as("batch", &url, &["submit", w, "--task-memory", "256MiB", "--", "40", "nap"]);
    let asked = Instant::now();
    until(30, "batch never got its reservation back", || holding(&url, "batch") > 2); // its driver and 2 tasks
    eprintln!("batch held its reservation {:?} after submitting", asked.elapsed());

    for (tenant, job) in [("batch", &batch), ("other", &other)] {
        let job = job["job"].as_str().unwrap();
        // (`weft status JOB` exits non-zero until the job succeeds.)
        let status = || {
            let mut c = weft();
            c.env("WEFT_TOKEN", tenant_token(tenant)).args(["status", "--json", "--master", &url, job]);
            serde_json::from_slice::<serde_json::Value>(&c.output().unwrap().stdout).unwrap()[0].clone()
        };
        until(120, "a job did not end", || status()["state"] != "running");
        let s = &status();
        assert_eq!(s["state"], "succeeded", "{s}");
        let failed: u64 =
            s["stages"].as_array().unwrap().iter().map(|st| st["failed"].as_u64().unwrap()).sum();
        assert_eq!(failed, 0, "a preempted task is not a failure: {s}");
    }

    // A dynamic reservation can be dropped; one made by --reserve cannot.
    let ops = |args: &[&str]| {
        weft().env("WEFT_TOKEN", tenant_token("ops")).args(args).args(["--master", &url]).output().unwrap()
    };
    assert!(ops(&["unreserve", b, "batch"]).status.success());
    let o = ops(&["unreserve", a, "batch"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--reserve stays"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
