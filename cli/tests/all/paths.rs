//! Relative data paths mean the submitter's directory, whatever directories the
//! master and the agents run in, and a job's output is published whole or not at all.

use crate::support::{TOKEN, agent_in, counts, guest, master_in, native_counts, output_lines, text, weft};
use std::path::Path;
use std::time::Duration;

/// Every `out`/`_temporary` entry below `dir`, as paths relative to it.
fn stray_outputs(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().map(Result::unwrap) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "out" || name == "_temporary" || name == "_SUCCESS" {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    found
}

/// The user's report: master and agent in different directories, a job submitted
/// from a third with `-- ./data/in.txt out/`. The master resolves both paths against
/// the submitter's directory, so the parts land there, complete, and nothing is
/// written relative to the master's or the agent's directory.
#[test]
fn relative_paths_resolve_against_the_submitters_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (master_cwd, agent_cwd) = (dir.path().join("master-cwd"), dir.path().join("agent-cwd"));
    // Spaces and `%` in the name: the absolute URIs tasks get must name it exactly.
    let submitter = dir.path().join("submitter dir 100%");
    for d in [&master_cwd, &agent_cwd, &submitter.join("data")] {
        std::fs::create_dir_all(d).unwrap();
    }
    let body = text(1 << 20);
    std::fs::write(submitter.join("data/in.txt"), &body).unwrap();

    let (_master, url) = master_in(dir.path(), &master_cwd);
    let agent = agent_in(&url, dir.path(), "a", TOKEN, &agent_cwd);
    agent.wait_for("serving at", Duration::from_secs(30));

    let wc = guest("wordcount");
    let o = weft()
        .current_dir(&submitter)
        .args([
            "submit",
            wc.to_str().unwrap(),
            "--master",
            &url,
            "--wait",
            "--json",
            "--",
            "./data/in.txt",
            "out/",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "submit failed: {stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    let status: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(status["state"], "succeeded", "{status}");

    let out = submitter.join("out");
    assert_eq!(counts(&output_lines(&out)), native_counts(&body), "every count equals the native count");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let parts = names.len() - 1;
    let mut want: Vec<String> = (0..parts).map(|p| format!("part-{p:05}")).collect();
    want.insert(0, "_SUCCESS".into());
    assert!(parts >= 1 && names == want, "every partition published, nothing else: {names:?}");
    assert!(!out.join("_temporary").exists());
    for cwd in [&master_cwd, &agent_cwd] {
        assert_eq!(stray_outputs(cwd), Vec::<String>::new(), "written relative to {}", cwd.display());
    }

    // The same through `weft local`, run from the submitter's directory too.
    let o = weft()
        .current_dir(&submitter)
        .arg("local")
        .arg("--dir")
        .arg(dir.path().join("local"))
        .args([wc.to_str().unwrap(), "--", "data/../data/in.txt", "local-out"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(counts(&output_lines(&submitter.join("local-out"))), native_counts(&body));
}
