//! Jobs on a real cluster: one `weft master` and two `weft agent` processes,
//! and the same jobs through `weft local`.

use std::collections::BTreeMap;

use crate::support::{
    c_guest, cluster, counts, guest, js_guest, native_counts, output_lines, python_guest, run, running_tasks,
    status, submit_detached, submit_log, text,
};

#[test]
fn word_count_on_a_master_and_two_agents_equals_a_native_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let body = text(3 << 20);
    std::fs::write(&input, &body).unwrap();
    let (_master, url, _agents) = cluster(dir.path(), 2);

    let out = dir.path().join("out");
    let wc = guest("wordcount");
    let status = submit_wait(&url, &wc, &[input.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(status["state"], "succeeded", "{status}");
    assert!(status["metering"]["fuel"].as_u64().unwrap() > 1_000_000, "{status}");
    // The last action (top words: a sort over the counts) ran a map and a result stage, all done.
    let stages = status["stages"].as_array().unwrap();
    assert!(stages.len() >= 2, "{status}");
    for st in stages {
        assert!(st["tasks"].as_u64().unwrap() >= 1);
        assert_eq!(st["finished"], st["tasks"], "{st}");
        assert_eq!(st["running"], 0, "{st}");
    }

    let native = native_counts(&body);
    assert_eq!(counts(&output_lines(&out)), native, "every count equals the native count");
    let log = status["driver_log"].as_str().unwrap();
    let distinct = format!("{} distinct words", native.len());
    assert!(log.contains(&distinct), "{status}");

    // The top ten come from a sort into 4 key ranges sampled from the counts:
    // they are the ten largest native counts, largest first.
    let top: Vec<(String, i64)> = log
        .lines()
        .filter_map(|l| l.strip_prefix("[info] ")?.rsplit_once(": "))
        .filter_map(|(w, n)| Some((w.to_string(), n.parse().ok()?)))
        .collect();
    assert_eq!(top.len(), 10, "{log}");
    for (word, n) in &top {
        assert_eq!(native.get(word), Some(n), "{word}: {n} in\n{log}");
    }
    let mut largest: Vec<i64> = native.values().copied().collect();
    largest.sort_unstable_by(|a, b| b.cmp(a));
    let got: Vec<i64> = top.iter().map(|(_, n)| *n).collect();
    assert_eq!(got, largest[..10], "{log}");
}

#[test]
fn grep_on_a_cluster_and_word_count_through_weft_local_match_native_results() {
    grep_and_word_count_match_native(&guest("grep"), &guest("wordcount"));
}

#[test]
fn the_python_grep_and_word_count_match_native_results() {
    grep_and_word_count_match_native(&python_guest("grep"), &python_guest("wordcount"));
}

#[test]
fn the_c_grep_and_word_count_match_native_results() {
    grep_and_word_count_match_native(&c_guest("grep"), &c_guest("wordcount"));
}

#[test]
fn the_javascript_grep_and_word_count_match_native_results() {
    grep_and_word_count_match_native(&js_guest("grep"), &js_guest("wordcount"));
}

/// The grep example `grep` on a master and two agents, and the word count
/// example `wc` through `weft local` with two agents, against native results.
fn grep_and_word_count_match_native(grep: &std::path::Path, wc: &std::path::Path) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let body = text(2 << 20);
    std::fs::write(&input, &body).unwrap();

    // grep on a master and two agents.
    let (_master, url, _agents) = cluster(dir.path(), 2);
    let out = dir.path().join("grep-out");
    let stdout = submit_log(&url, grep, &["sandbox", input.to_str().unwrap(), out.to_str().unwrap()]);
    let mut got = output_lines(&out);
    let mut want: Vec<String> = body.lines().filter(|l| l.contains("sandbox")).map(str::to_string).collect();
    assert!(!want.is_empty(), "the pattern occurs in the data");
    got.sort();
    want.sort();
    assert_eq!(got, want, "grep output equals a native filter");
    // The accumulator counted every line the filter scanned, once.
    let line = format!("{} of {} lines contain", want.len(), body.lines().count());
    assert!(stdout.contains(&line), "`{line}` in:\n{stdout}");

    // Word count through `weft local`.
    let out = dir.path().join("local-out");
    let local_dir = dir.path().join("local");
    let o = run(&[
        "local",
        "--dir",
        local_dir.to_str().unwrap(),
        "--agents",
        "2",
        wc.to_str().unwrap(),
        "--",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(counts(&output_lines(&out)), native_counts(&body));
}

#[test]
fn weft_kill_stops_a_jobs_tasks_and_frees_their_slots() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one line\n".repeat(64)).unwrap();
    let (_master, url, _agents) = cluster(dir.path(), 2);

    // Every line of this job sleeps 60 s: its 4 tasks fill the cluster's 4 slots.
    let hostile = guest("hostile");
    let job = submit_detached(&url, &hostile, &["sleep", input.to_str().unwrap()]);
    let started = std::time::Instant::now();
    while running_tasks(&status(&url, &job)) < 4 {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "{}", status(&url, &job));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let o = run(&["kill", &job, "--master", &url]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("killed"), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(status(&url, &job)["state"], "killed");
    let o = run(&["kill", "job-99", "--master", &url]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not a job id such as job-"), "{err}");
    let o = run(&["kill", "job-00000001-99", "--master", &url]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no job `job-00000001-99`"), "{err}");

    // A word count needs those slots: it finishes long before a sleeping task
    // would have given one back (60 s), so the killed tasks really stopped.
    let small = dir.path().join("small.txt");
    std::fs::write(&small, text(64 << 10)).unwrap();
    let out = dir.path().join("out");
    let wc = guest("wordcount");
    let mut c = crate::support::weft();
    c.args(["submit", wc.to_str().unwrap(), "--master", &url, "--wait", "--"]).arg(&small).arg(&out);
    let mut p = c.stdout(std::process::Stdio::null()).spawn().unwrap();
    let waited = std::time::Instant::now();
    let exit = loop {
        if let Some(exit) = p.try_wait().unwrap() {
            break exit;
        }
        if waited.elapsed() > std::time::Duration::from_secs(45) {
            let _ = p.kill();
            panic!("the word count did not get slots: the killed job's tasks still hold them");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(exit.success());

    // Both jobs have ended, so no agent keeps shuffle files for them.
    let kept = || {
        ["a", "b"]
            .iter()
            .flat_map(|a| std::fs::read_dir(dir.path().join(a).join("jobs")).into_iter().flatten())
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect::<Vec<_>>()
    };
    let waited = std::time::Instant::now();
    while !kept().is_empty() && waited.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(kept(), Vec::<String>::new(), "shuffle files outlived their jobs");
}

/// `weft status --watch` follows a job of thousands of short tasks: each
/// line is a newer view (finished tasks never go back), the master sends
/// them at most about ten a second however fast tasks end, and the last one
/// is the job's end with every task counted.
#[test]
fn a_watched_job_reports_progress_at_a_bounded_rate_and_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let (_master, url, _agents) = cluster(dir.path(), 2);
    let n = 4000;
    let job = submit_detached(&url, &guest("tasks"), &[&n.to_string(), "empty"]);
    let started = std::time::Instant::now();
    let o = run(&["status", &job, "--watch", "--json", "--master", &url]);
    let elapsed = started.elapsed();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let views: Vec<serde_json::Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = views.last().unwrap();
    assert_eq!(last["state"], "succeeded", "{last}");
    let finished = |v: &serde_json::Value| -> u64 {
        v["stages"].as_array().map_or(0, |s| s.iter().map(|st| st["finished"].as_u64().unwrap()).sum())
    };
    assert!(
        last["stages"].as_array().unwrap().iter().any(|st| st["finished"] == n),
        "the last view counts all {n} tasks: {last}"
    );
    for v in &views[..views.len() - 1] {
        assert_eq!(v["state"], "running", "only the last view is an end: {v}");
    }
    // Within one action finished tasks only grow (the warm-up action comes first).
    let timed: Vec<u64> =
        views.iter().filter(|v| v.to_string().contains(&n.to_string())).map(finished).collect();
    assert!(timed.windows(2).all(|w| w[0] <= w[1]), "{timed:?}");
    // One view at the start, then at most one per 100 ms, and the end.
    let bound = 2 + elapsed.as_millis() as usize / 100 + 2;
    assert!(views.len() <= bound, "{} views in {elapsed:?} (bound {bound})", views.len());
}

/// A deterministic stream of numbers (an LCG): test data without a crate.
pub(crate) fn numbers(seed: u64) -> impl Iterator<Item = u64> {
    std::iter::successors(Some(seed), |x| {
        Some(x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407))
    })
    .map(|x| x >> 33)
}

/// `weft submit --wait --json` of `wasm` with `args` on `url`: the job's status.
pub(crate) fn submit_wait(url: &str, wasm: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["submit", wasm.to_str().unwrap(), "--master", url, "--wait", "--json", "--"];
    all.extend_from_slice(args);
    let o = run(&all);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(stdout.trim()).unwrap()
}

/// The PageRank example on a master and two agents equals the Spark
/// example's computation done natively (within rounding: sums are taken in
/// another order).
#[test]
fn pagerank_on_a_master_and_two_agents_equals_a_native_pagerank() {
    let dir = tempfile::tempdir().unwrap();
    let (pages, iterations) = (2_000u64, 10);
    let mut r = numbers(7);
    let mut links: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut edges = String::new();
    for p in 0..pages {
        // Most pages link to a few others, some to none; low numbers are popular.
        for _ in 0..r.next().unwrap() % 6 {
            let to = r.next().unwrap() % pages;
            let to = to * (r.next().unwrap() % 4 + 1) / 4;
            edges.push_str(&format!("p{p}\tp{to}\n"));
            links.entry(format!("p{p}")).or_default().push(format!("p{to}"));
        }
    }
    let input = dir.path().join("edges.txt");
    std::fs::write(&input, edges).unwrap();
    let (_master, url, _agents) = cluster(dir.path(), 2);
    let out = dir.path().join("ranks");
    let status = submit_wait(
        &url,
        &guest("pagerank"),
        &[input.to_str().unwrap(), &iterations.to_string(), out.to_str().unwrap()],
    );
    assert_eq!(status["state"], "succeeded", "{status}");

    // Each iteration joins the links with the ranks (pages without links drop
    // out) and ranks every page that received a contribution.
    let mut native: BTreeMap<String, f64> = links.keys().map(|p| (p.clone(), 1.0)).collect();
    for _ in 0..iterations {
        let mut received: BTreeMap<String, f64> = BTreeMap::new();
        for (page, rank) in &native {
            let Some(to) = links.get(page) else { continue };
            for t in to {
                *received.entry(t.clone()).or_default() += rank / to.len() as f64;
            }
        }
        native = received.into_iter().map(|(p, r)| (p, 0.15 + 0.85 * r)).collect();
    }
    let got: BTreeMap<String, f64> = output_lines(&out)
        .iter()
        .map(|l| {
            let (p, r) = l.split_once('\t').unwrap();
            (p.to_string(), r.parse().unwrap())
        })
        .collect();
    assert!(got.len() > 100, "{} ranked pages", got.len());
    assert_eq!(got.keys().collect::<Vec<_>>(), native.keys().collect::<Vec<_>>());
    for (page, rank) in &got {
        let want = native[page];
        assert!((rank - want).abs() <= 1e-9 * want.abs().max(1.0), "{page}: {rank} against {want}");
    }
}

/// The join example on a master and two agents: revenue per country equals a
/// native join and sum; orders of unknown customers count nowhere.
#[test]
fn join_on_a_master_and_two_agents_equals_a_native_join() {
    let dir = tempfile::tempdir().unwrap();
    let countries = ["fr", "de", "jp", "br", "ke", "nz"];
    let mut r = numbers(11);
    let mut customers = String::new();
    let mut country_of = BTreeMap::new();
    for id in 0..1_000u64 {
        let c = countries[(r.next().unwrap() % countries.len() as u64) as usize];
        customers.push_str(&format!("c{id}\t{c}\n"));
        country_of.insert(format!("c{id}"), c);
    }
    let mut orders = String::new();
    let mut native: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for _ in 0..20_000 {
        // One customer id in twenty is unknown.
        let id = format!("c{}", r.next().unwrap() % 1_050);
        let cents = (r.next().unwrap() % 100_000) as i64;
        orders.push_str(&format!("{id}\t{cents}\n"));
        if let Some(c) = country_of.get(&id) {
            let t = native.entry(c).or_default();
            *t = (t.0 + cents, t.1 + 1);
        }
    }
    let (cust, ord) = (dir.path().join("customers.txt"), dir.path().join("orders.txt"));
    std::fs::write(&cust, customers).unwrap();
    std::fs::write(&ord, orders).unwrap();
    let (_master, url, _agents) = cluster(dir.path(), 2);
    let out = dir.path().join("totals");
    let status = submit_wait(
        &url,
        &guest("join"),
        &[cust.to_str().unwrap(), ord.to_str().unwrap(), out.to_str().unwrap()],
    );
    assert_eq!(status["state"], "succeeded", "{status}");
    let got: BTreeMap<String, (i64, i64)> = output_lines(&out)
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), (f[1].parse().unwrap(), f[2].parse().unwrap()))
        })
        .collect();
    let want: BTreeMap<String, (i64, i64)> = native.into_iter().map(|(c, t)| (c.to_string(), t)).collect();
    assert_eq!(got, want);
    assert!(want.values().map(|t| t.1).sum::<i64>() < 20_000, "some orders had unknown customers");
    assert!(
        status["driver_log"].as_str().unwrap().contains(&format!("{} countries", want.len())),
        "{status}"
    );
}
