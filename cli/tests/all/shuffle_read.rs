//! A skewed reduce partition several times the reader's memory budget, on
//! real processes: a `weft master` and one `weft agent` whose reader budget
//! is small. Three quarters of the input's lines share one sort key, so one
//! reduce partition of the sort example holds them all (a key is never split).
//! The job must complete with the lines in the native sort order, the reduce
//! stage must spill, the reduce task must hold at most the budget plus 20 %,
//! and the agent's resident memory must grow by at most the budget plus 20 %
//! while the whole job runs (sample, map and reduce stages).
//!
//! `WEFT_SKEW_BUDGET_MIB` (default 32) sets the budget; the input is sized so
//! that the skewed partition is more than 4× the budget.

use crate::support::Proc;
use crate::support::{TOKEN, guest, master, output_lines, run, vm, weft};
use std::path::Path;
use std::time::Duration;

/// The sort example's key: a line's first 10 bytes (lines here are ASCII).
fn key(line: &str) -> &str {
    &line[..10.min(line.len())]
}

/// About 100-byte lines; three in four have the key `hot-key-00`.
fn skewed_lines(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 128);
    let mut i: u64 = 0;
    while out.len() < bytes {
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
        if i.is_multiple_of(4) {
            out.push_str(&format!("k{:09}", x % 1_000_000_000));
        } else {
            out.push_str("hot-key-00");
        }
        out.push_str(&format!(" {i:012} {x:076x}\n"));
        i += 1;
    }
    out
}

/// An agent of one slot (one reduce task reads at a time) whose shuffle
/// reader may hold `budget` bytes and whose writer 4 MiB.
fn agent(url: &str, dir: &Path, budget: u64) -> Proc {
    let config = dir.join("agent.toml");
    let root = dir.join("agent");
    std::fs::write(
        &config,
        format!(
            "master = {url:?}\nlisten = \"127.0.0.1:0\"\nslots = 1\ncluster-token = {TOKEN:?}\n\
             work-dir = {:?}\ncache-dir = {:?}\n[sandbox]\ncache-dir = {:?}\n\
             [executor.reader]\nmemory_budget = \"{budget}B\"\n\
             [executor.writer]\nmemory_budget = {}\n",
            root.join("work"),
            root.join("artifacts"),
            root.join("components"),
            4 << 20,
        ),
    )
    .unwrap();
    let mut c = weft();
    // glibc raises its mmap threshold to the largest buffer freed (up to
    // 32 MiB), after which freed input and sort buffers stay resident in its
    // arenas: the agent's resident set then grows with the map stage, not
    // with what it holds. A fixed threshold measures what it holds.
    c.env("MALLOC_MMAP_THRESHOLD_", "131072");
    c.arg("agent").arg("--config").arg(&config);
    let p = Proc::spawn(c);
    p.wait_for("serving at", Duration::from_secs(30));
    p
}

/// Sort `input` into `out` in `partitions` partitions on the cluster at `url`; the job's status.
fn sort(url: &str, input: &Path, out: &Path, partitions: u32) -> serde_json::Value {
    let wasm = guest("sort");
    let o = run(&[
        "submit",
        wasm.to_str().unwrap(),
        "--master",
        url,
        "--wait",
        "--json",
        "--",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        &partitions.to_string(),
    ]);
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_skewed_reduce_partition_four_times_the_readers_budget_completes_within_it() {
    let budget_mib: u64 =
        std::env::var("WEFT_SKEW_BUDGET_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    let budget = budget_mib << 20;
    let dir = tempfile::tempdir().unwrap();
    let (_m, url) = master(dir.path());
    let a = agent(&url, dir.path(), budget);

    // A small sort first: the component is compiled and cached, the pools
    // are warm, so what grows afterwards is the job's data.
    let warm = dir.path().join("warm.txt");
    std::fs::write(&warm, skewed_lines(1 << 20)).unwrap();
    sort(&url, &warm, &dir.path().join("warm-out"), 32);

    // The hot key's pairs (3/4 of the lines, plus 8 bytes of framing each)
    // in one reduce partition: 6 × budget of input makes it over 4 ×.
    let body = skewed_lines((6 * budget) as usize);
    let input = dir.path().join("skewed.txt");
    std::fs::write(&input, &body).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Reset the agent's peak resident set (Linux `clear_refs` 5) and take
    // the resident set now as the baseline.
    std::fs::write(format!("/proc/{}/clear_refs", a.pid()), "5").unwrap();
    let baseline = vm(a.pid(), "VmRSS");
    let out = dir.path().join("sorted");
    let status = sort(&url, &input, &out, 32);
    let peak = vm(a.pid(), "VmHWM");
    let job = status["job"].as_str().unwrap().to_owned();

    let got = output_lines(&out);
    let mut want: Vec<&str> = body.lines().collect();
    want.sort_by(|a, b| key(a).cmp(key(b)));
    let want_keys: Vec<&str> = want.iter().map(|l| key(l)).collect();
    let got_keys: Vec<&str> = got.iter().map(|l| key(l)).collect();
    assert!(got_keys == want_keys, "the keys are not in the native order");
    want.sort_unstable();
    let mut got: Vec<&str> = got.iter().map(String::as_str).collect();
    got.sort_unstable();
    assert!(got == want, "not the input's lines");

    // The reduce stage's largest read and what it held, from the usage ledger.
    let rows = attempts(&url, &job);
    let reduces: Vec<&serde_json::Value> = rows.iter().filter(|r| r["end"] == "finished").collect();
    let hot = reduces.iter().max_by_key(|r| r["shuffle_read"].as_u64().unwrap()).expect("reduce attempts");
    let read = hot["shuffle_read"].as_u64().unwrap();
    let held = hot["peak_host_memory"].as_u64().unwrap();
    let spilled = hot["spill"].as_u64().unwrap();
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "skewed partition {} MiB, reader budget {budget_mib} MiB: task held at most {:.1} MiB, spilled {} MiB; \
         agent RSS {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB)",
        read >> 20,
        held as f64 / 1048576.0,
        spilled >> 20,
        baseline as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        growth as f64 / 1048576.0,
    );
    assert!(read > 4 * budget, "the skewed partition ({read} bytes) is over 4× the budget");
    assert!(spilled >= read, "the skewed partition went through runs on disk: {spilled} < {read}");
    let bound = budget + budget / 5;
    assert!(held <= bound, "the task held {held} bytes, over the budget + 20 % ({bound})");
    assert!(growth <= bound, "the agent grew by {growth} bytes, over the budget + 20 % ({bound})");
}

/// The finished and other attempts of `job`, one JSON row each.
fn attempts(url: &str, job: &str) -> Vec<serde_json::Value> {
    let o = weft().args(["usage", "--master", url, "--json", "--job", job, "--attempts"]).output().unwrap();
    assert!(o.status.success(), "weft usage: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
