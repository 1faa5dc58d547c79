//! Data access under control: a job reads and writes only what its tenant is
//! granted, never the master's or an agent's own files, and `weft local`
//! grants its working directory and the paths its arguments name.

use crate::support::{
    TOKEN, agent, counts, guest, master_command, native_counts, output_lines, start_master, text, weft,
};
use std::path::Path;
use std::time::Duration;

/// `weft submit --wait` of the word count over `input` into `output`;
/// (succeeded, the status JSON or stderr).
fn word_count(url: &str, input: &Path, output: &Path) -> (bool, String) {
    let wc = guest("wordcount");
    let o = weft()
        .args(["submit", wc.to_str().unwrap(), "--master", url, "--wait", "--json", "--"])
        .arg(input)
        .arg(output)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    (o.status.success(), if out.trim().is_empty() { String::from_utf8_lossy(&o.stderr).into() } else { out })
}

#[test]
fn a_job_reads_and_writes_only_what_its_tenant_is_granted() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out"));
    std::fs::create_dir_all(&data).unwrap();
    let body = text(200 << 10);
    std::fs::write(data.join("in.txt"), &body).unwrap();
    let mut c = master_command(dir.path());
    c.env_remove("WEFT_GRANTS")
        .arg("--grant")
        .arg(format!("{}=read", dir.path().display()))
        .arg("--grant")
        .arg(format!("{}=write", out.display()));
    let (_m, url) = start_master(c);
    let a = agent(&url, dir.path(), "agent", TOKEN);
    a.wait_for("serving at", Duration::from_secs(30));

    let refused = [
        (Path::new("/etc/hostname").to_path_buf(), out.join("1"), "may not read file:///etc/hostname"),
        (dir.path().join("master/artifacts"), out.join("2"), "weft keeps for itself"),
        (data.join("in.txt"), dir.path().join("elsewhere"), "may not write"),
    ];
    for (input, output, expected) in refused {
        let (ok, said) = word_count(&url, &input, &output);
        assert!(!ok, "{input:?} -> {output:?}: {said}");
        assert!(said.contains(expected), "{input:?} -> {output:?}: expected `{expected}` in {said}");
        assert!(!output.exists(), "nothing written at {output:?}");
    }
    let (ok, said) = word_count(&url, &data.join("in.txt"), &out.join("wc"));
    assert!(ok, "{said}");
    assert_eq!(counts(&output_lines(&out.join("wc"))), native_counts(&body));
}

#[test]
fn weft_local_grants_its_directory_and_arguments_but_not_its_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    let body = text(64 << 10);
    std::fs::write(cwd.join("in.txt"), &body).unwrap();
    let wc = guest("wordcount");
    let local = |args: &[&str]| {
        let o = weft()
            .env_remove("WEFT_GRANTS")
            .current_dir(&cwd)
            .args(["local", "--json", wc.to_str().unwrap(), "--"])
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (ok, said) = local(&["in.txt", "out"]);
    assert!(ok, "{said}");
    assert_eq!(counts(&output_lines(&cwd.join("out"))), native_counts(&body));
    // Its master's files are under the working directory, and named: still refused.
    let (ok, said) = local(&[".weft/local/master/credentials.toml", "out2"]);
    assert!(!ok && said.contains("weft keeps for itself"), "{said}");
}
