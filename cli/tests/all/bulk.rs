//! Driver traffic of any size, through real processes: parallelized records,
//! broadcast values and collected results far over one gRPC message (tonic's
//! 4 MiB default) travel as blocks of the master's artifact store; a result
//! over the master's limit fails its action with the size, the limit and the
//! fix. The guest (`tests/guests/bulk`) checks every record and every task's
//! view of the broadcast against what the driver sent.

use crate::support::{cluster, guest, run};

fn submit(url: &str, args: &[&str]) -> std::process::Output {
    let wasm = guest("bulk");
    let mut all = vec!["submit", wasm.to_str().unwrap(), "--master", url, "--wait", "--json", "--"];
    all.extend_from_slice(args);
    run(&all)
}

fn log(o: &std::process::Output) -> String {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    });
    format!("{} {}", v["state"], v["driver_log"].as_str().unwrap_or_default())
}

#[test]
fn collect_take_and_broadcast_of_64_mib_cross_a_cluster_as_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, url, _agents) = cluster(dir.path(), 2);
    for args in [["collect", "64"], ["take", "48"], ["broadcast", "64"]] {
        let o = submit(&url, &args);
        let log = log(&o);
        assert!(o.status.success(), "{args:?}: {log}");
        assert!(log.contains(&format!("bulk: mode={} mib={}", args[0], args[1])), "{args:?}: {log}");
    }
    // The blocks of the jobs' driver traffic (partitions, broadcast, results)
    // are deleted once their jobs end: only the component stays.
    let blocks = dir.path().join("master/artifacts/artifacts/blake3");
    let count = || std::fs::read_dir(&blocks).map(|d| d.count()).unwrap_or(0);
    let started = std::time::Instant::now();
    while count() > 1 && started.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(count(), 1, "blocks outlived their jobs in {}", blocks.display());
}

#[test]
fn a_result_over_the_masters_limit_fails_its_action_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = guest("bulk");
    let o = run(&[
        "local",
        "--json",
        "--max-result-size",
        "1MiB",
        "--dir",
        dir.path().to_str().unwrap(),
        wasm.to_str().unwrap(),
        "--",
        "collect",
        "4",
    ]);
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let message = v["message"].as_str().unwrap();
    assert_eq!(v["state"], "failed");
    for part in ["more than the 1.0 MiB (1048576 bytes)", "--max-result-size", "save_as_text_file"] {
        assert!(message.contains(part), "{part}: {message}");
    }
    // Under the limit the same job succeeds.
    let ok = run(&[
        "local",
        "--max-result-size",
        "8MiB",
        "--dir",
        dir.path().join("ok").to_str().unwrap(),
        wasm.to_str().unwrap(),
        "--",
        "collect",
        "4",
    ]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
}
