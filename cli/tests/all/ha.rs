//! Several masters on a real etcd (`weft master --ha etcd://…`): one leads
//! and listens, the others stand by; agents and clients are given every
//! master's URL. The leader is killed (SIGKILL) in the middle of a job's
//! second action: another master takes the lead, the agents and the
//! waiting client follow it, and the job finishes with the output of a
//! native count, its first action not run again. The new leader shows the
//! job, and a third leader (the first killed again) still does.

use crate::support::{Proc, TOKEN, counts, guest, native_counts, output_lines, status, weft};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An etcd server on free loopback ports (the one `ci/setup-test-services.sh`
/// installs), with the timing that lets a lease be 1 s; killed when dropped.
pub struct Etcd {
    child: Child,
    /// Its client endpoint, `127.0.0.1:port`.
    pub endpoint: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Etcd {
    pub fn start(dir: &Path) -> Etcd {
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-services/bin/etcd");
        assert!(
            bin.exists(),
            "etcd is not installed ({} is missing): run `bash ci/setup-test-services.sh`",
            bin.display()
        );
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
        let child = Command::new(bin)
            .args(["--name", "weft-test", "--data-dir"])
            .arg(dir.join("etcd"))
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("weft-test={peer_url}")])
            // A lease may then be 1 s (etcd's minimum is 1.5 election timeouts).
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--max-request-bytes", "33554432"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let endpoint = format!("127.0.0.1:{client}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&endpoint).is_err() {
            assert!(Instant::now() < deadline, "etcd did not listen on {endpoint}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Etcd { child, endpoint }
    }
}

/// A master of the HA group on `addr` (not listening until it leads).
fn ha_master(etcd: &Etcd, addr: &str, data_dir: &Path) -> Proc {
    let mut c = weft();
    c.env("WEFT_LOG", "info,etcd_client=warn,h2=warn,tower=warn")
        .args(["master", "--listen", addr, "--cluster-token", TOKEN, "--heartbeat-interval", "300ms"])
        .args(["--ha", &format!("etcd://{}/weft-test", etcd.endpoint), "--ha-lease", "1s"])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--grant")
        .arg(format!("{}=read-write", data_dir.parent().unwrap().display()));
    Proc::spawn(c)
}

/// An agent with 2 slots given every master (`all`), logging its
/// registrations and launches.
fn agent(all: &str, work: &Path) -> Proc {
    let mut c = weft();
    c.env("WEFT_LOG", "warn,weft_agent::node::report=info,weft_agent::node::service=debug")
        .args(["agent", "--master", all, "--listen", "127.0.0.1:0", "--slots", "2", "--cluster-token", TOKEN])
        .arg("--work-dir")
        .arg(work);
    let p = Proc::spawn(c);
    p.wait_for("serving at", Duration::from_secs(30));
    p
}

fn addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn a_killed_leader_is_replaced_and_its_running_job_finishes() {
    let hostile = guest("hostile");
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path());
    // One data directory for all: the artifacts the leader keeps are the next one's.
    let data = dir.path().join("masters");
    let addrs: Vec<String> = (0..3).map(|_| addr()).collect();
    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
    let all = urls.join(",");
    let mut masters: Vec<Option<Proc>> = Vec::new();
    masters.push(Some(ha_master(&etcd, &addrs[0], &data)));
    let line = masters[0].as_ref().unwrap().wait_for("listening on", Duration::from_secs(30));
    assert!(line.contains(&urls[0]), "{line}");
    for a in &addrs[1..] {
        masters.push(Some(ha_master(&etcd, a, &data)));
    }
    for m in &masters[1..] {
        let line = m.as_ref().unwrap().wait_for("standing by", Duration::from_secs(30));
        assert!(line.contains(&urls[0]), "a standby names the leader: {line}");
    }
    for a in &addrs[1..] {
        assert!(std::net::TcpStream::connect(a).is_err(), "a standby master does not listen ({a})");
    }
    let agents: Vec<Proc> = ["a", "b"].iter().map(|name| agent(&all, &dir.path().join(name))).collect();

    let input = dir.path().join("in.txt");
    let body: String = (0..3000).map(|i| format!("w{} w{} common\n", i % 31, (i * 7) % 31)).collect();
    std::fs::write(&input, &body).unwrap();
    let out = dir.path().join("out");
    let mut submit = weft();
    submit
        .args(["submit", hostile.to_str().unwrap(), "--master", &all, "--wait", "--json", "--"])
        .args(["count-then-slow-count", input.to_str().unwrap(), out.to_str().unwrap(), "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let client = submit.spawn().unwrap();

    // Kill the leader once the second action's reduce tasks run.
    let agent = &agents[0];
    let line = agent.wait_for(".2/stage-1/", Duration::from_secs(60));
    // task=<job>.<action>/stage-<n>/…
    let job = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("task="))
        .and_then(|t| t.split('/').next())
        .and_then(|t| t.rsplit_once('.'))
        .unwrap_or_else(|| panic!("no task in `{line}`"))
        .0
        .to_string();
    for a in &agents {
        while a.lines.try_recv().is_ok() {}
    }
    masters[0] = None; // SIGKILL (Proc's drop)
    let killed = Instant::now();

    // One of the standbys leads now, and listens.
    let (leader, url) = loop {
        if let Some(i) = (1..3).find(|&i| std::net::TcpStream::connect(&addrs[i]).is_ok()) {
            break (i, urls[i].clone());
        }
        assert!(killed.elapsed() < Duration::from_secs(20), "no standby took the lead within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("a standby leads {:?} after the leader was killed", killed.elapsed());
    let new = masters[leader].as_ref().unwrap();
    new.wait_for("restored runs=1 jobs=1", Duration::from_secs(5));
    let line = new.wait_for("listening on", Duration::from_secs(5));
    assert!(line.contains(&url), "{line}");

    // The agents follow it, and the client's job finishes there, exact.
    let o = client.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(counts(&output_lines(&out)), native_counts(&body));
    // The agents registered with the new leader, and the first action (the
    // line count), which had ended, was not run again.
    for a in &agents {
        let after: Vec<String> = a.lines.try_iter().collect();
        assert!(
            after.iter().any(|l| l.contains("weft.agent.registered") && l.contains("agent-")),
            "an agent did not register with the new leader:\n{}",
            after.join("\n")
        );
        let again: Vec<&String> =
            after.iter().filter(|l| l.contains("weft.agent.launch") && l.contains(".1/stage-")).collect();
        assert!(again.is_empty(), "the first action ran again after the failover: {again:?}");
    }
    let s = status(&url, &job);
    assert_eq!(s["state"], "succeeded", "{s}");

    // Kill that leader too: the last master leads, and still knows the job.
    masters[leader] = None;
    let last = 3 - leader;
    let line = masters[last].as_ref().unwrap().wait_for("listening on", Duration::from_secs(20));
    assert!(line.contains(&urls[last]), "{line}");
    let s = status(&all, &job);
    assert_eq!(s["state"], "succeeded", "{s}");
    assert!(s["driver_log"].as_str().unwrap_or_default().contains("3000 lines"), "{s}");
}

#[test]
fn a_leader_paused_past_its_lease_steps_down_when_it_resumes() {
    let wc = guest("wordcount");
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path());
    let data = dir.path().join("masters");
    let addrs: Vec<String> = (0..2).map(|_| addr()).collect();
    let all = addrs.iter().map(|a| format!("http://{a}")).collect::<Vec<_>>().join(",");
    let mut first = ha_master(&etcd, &addrs[0], &data);
    first.wait_for("listening on", Duration::from_secs(30));
    let second = ha_master(&etcd, &addrs[1], &data);
    second.wait_for("standing by", Duration::from_secs(30));
    let _agent = agent(&all, &dir.path().join("a"));

    // Paused past its 1 s lease, the leader is replaced.
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(first.pid().to_string())
                .status()
                .unwrap()
                .success()
        )
    };
    signal("STOP");
    second.wait_for("listening on", Duration::from_secs(20));
    // Resumed, the old leader finds out and stops: it neither serves nor writes.
    signal("CONT");
    let exit = first.wait(Duration::from_secs(20)).expect("the deposed leader went on serving");
    assert!(!exit.success(), "a deposed leader exits with an error: {exit}");
    let told: Vec<String> = first.lines.try_iter().collect();
    assert!(told.iter().any(|l| l.contains("no longer leads")), "{}", told.join("\n"));

    // The new leader serves jobs, through the same list of masters.
    let input = dir.path().join("in.txt");
    let body = crate::support::text(1 << 16);
    std::fs::write(&input, &body).unwrap();
    let out = dir.path().join("out");
    let o = weft()
        .args(["submit", wc.to_str().unwrap(), "--master", &all, "--wait", "--"])
        .arg(&input)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(counts(&output_lines(&out)), native_counts(&body));
}
