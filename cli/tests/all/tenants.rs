//! Tenants and tokens through the command line: a master that generates its
//! tokens and says how to use them; tenants made with `weft token new`, each
//! seeing only its own jobs.

use crate::support::{Proc, guest, start_master, weft};
use std::path::Path;
use std::time::Duration;

/// A `weft master` with `args`, without the tests' usual client token; its
/// URL and its first lines.
fn bare_master(dir: &Path, args: &[&str]) -> (Proc, String) {
    let mut c = weft();
    c.env_remove("WEFT_CLIENT_TOKEN")
        .args(["master", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("master"))
        .args(args);
    start_master(c)
}

/// `weft ARGS` presenting `token`; (success, stdout, stderr).
fn as_tenant(token: &str, args: &[&str]) -> (bool, String, String) {
    let o = weft().env("WEFT_TOKEN", token).args(args).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

#[test]
fn a_master_without_tokens_prints_the_ones_it_made_and_refuses_anonymous_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (m, url) = bare_master(dir.path(), &[]);
    let agents = m.wait_for("agents:", Duration::from_secs(10));
    let clients = m.wait_for("clients:", Duration::from_secs(10));
    let cluster = agents.split("WEFT_CLUSTER_TOKEN=").nth(1).unwrap().split_whitespace().next().unwrap();
    let token = clients.split("WEFT_TOKEN=").nth(1).unwrap().split_whitespace().next().unwrap();
    assert!(cluster.starts_with("weft_c_") && token.starts_with("weft_t_"), "{agents}\n{clients}");

    let (ok, _, err) = as_tenant("", &["status", "--master", &url]);
    assert!(!ok && err.contains("--token"), "anonymous: {err}");
    let (ok, out, err) = as_tenant(token, &["status", "--master", &url, "--json"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "[]");
    let credentials = std::fs::read_to_string(dir.path().join("master/credentials.toml")).unwrap();
    assert!(credentials.contains(token) && credentials.contains(cluster));
}

#[test]
fn tenants_made_with_weft_token_see_only_their_own_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let new = || {
        let o = weft().args(["token", "new", "--json"]).output().unwrap();
        assert!(o.status.success());
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v["token"].as_str().unwrap().to_string(), v["hash"].as_str().unwrap().to_string())
    };
    let ((a, a_hash), (b, b_hash), (ops, _)) = (new(), new(), new());
    // `weft token hash` gives the same hash as `new` printed.
    let mut hash = weft()
        .args(["token", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    hash.stdin.take().unwrap().write_all(format!("{ops}\n").as_bytes()).unwrap();
    let ops_hash = String::from_utf8(hash.wait_with_output().unwrap().stdout).unwrap().trim().to_string();
    let file = dir.path().join("tenants.toml");
    std::fs::write(
        &file,
        format!(
            "[[tenant]]\nname = \"alpha\"\ntokens = [\"{a_hash}\"]\n\n[[tenant]]\nname = \"beta\"\ntokens = [\"{b_hash}\"]\n\n\
             [[tenant]]\nname = \"ops\"\ntokens = [\"{ops_hash}\"]\nadmin = true\n"
        ),
    )
    .unwrap();
    let (_m, url) = bare_master(dir.path(), &["--tenants", file.to_str().unwrap()]);
    let wasm = guest("tasks");
    let (ok, out, err) =
        as_tenant(&a, &["submit", wasm.to_str().unwrap(), "--master", &url, "--json", "--", "1", "empty"]);
    assert!(ok, "{err}");
    let job: serde_json::Value = serde_json::from_str(&out).unwrap();
    let job = job["job"].as_str().unwrap();

    let (ok, out, _) = as_tenant(&b, &["status", "--master", &url, "--json"]);
    assert!(ok);
    assert_eq!(out.trim(), "[]", "beta sees none of alpha's jobs");
    let (ok, _, err) = as_tenant(&b, &["kill", job, "--master", &url]);
    assert!(!ok && err.contains("no job"), "{err}");
    // (Its exit code says the job still runs: no agent here.)
    let (_, out, err) = as_tenant(&ops, &["status", job, "--master", &url, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(status[0]["tenant"], "alpha", "the admin sees it, with its tenant: {out}");
}
