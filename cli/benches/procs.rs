//! The processes the cluster benchmarks start: `weft` commands with the
//! benchmarks' tokens, child processes killed when dropped, TLS material,
//! and a master with two agents on 127.0.0.1.

#![allow(clippy::unwrap_used, dead_code, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "weft_c_bench-cluster-token-0123456789";
/// The cluster master's client token, which `weft submit` presents.
pub const CLIENT: &str = "weft_t_bench-client-token-0123456789";

pub fn weft() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weft"));
    c.env("WEFT_LOG", "warn").env("WEFT_CLIENT_TOKEN", CLIENT).env("WEFT_TOKEN", CLIENT);
    c
}

/// A child process killed when dropped, its stderr lines forwarded to a channel.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// The first stderr line containing `needle`.
    pub fn wait_for(&self, needle: &str) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        Err(format!("no `{needle}` from a cluster process within 60s; its stderr:\n{}", seen.join("\n")))
    }

    /// Its next stderr line, if one came.
    pub fn try_line(&self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The CPU seconds (user and system) it has used so far; 0 where
    /// `/proc` cannot tell.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // The fields after the command's name, which ends with the last `)`.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        // utime and stime (fields 14 and 15 of stat(5)), in USER_HZ (100 on Linux).
        (ticks(11) + ticks(12)) as f64 / 100.0
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// TLS flags for every process of a `cluster-tls` run: a CA and a
/// certificate for 127.0.0.1 it signed, generated into `dir`.
pub fn tls_flags(dir: &Path) -> Vec<String> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca).unwrap();
    let path = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    };
    let (ca, cert, key) =
        (path("ca.pem", ca.pem()), path("cert.pem", cert.pem()), path("key.pem", key.serialize_pem()));
    ["--tls-cert", &cert, "--tls-key", &key, "--tls-ca", &ca].map(String::from).to_vec()
}

/// A `weft master` and two `weft agent` processes on 127.0.0.1 with `slots` each,
/// registered, every process speaking TLS with `tls` flags (none: plain), the
/// master also given `master_flags` and each agent `agent_flags`; and the
/// master's URL.
pub fn cluster(
    dir: &Path,
    slots: u64,
    tls: &[String],
    master_flags: &[&str],
    agent_flags: &[&str],
) -> Result<(Vec<Proc>, String), String> {
    let mut c = weft();
    c.args(["master", "--listen", "127.0.0.1:0", "--cluster-token", TOKEN, "--data-dir"])
        .arg(dir.join("master"))
        .args(tls)
        .args(master_flags);
    let master = Proc::spawn(c);
    let line = master.wait_for("listening on")?;
    let url = line.split_whitespace().find(|w| w.starts_with("http")).ok_or(line.clone())?.to_string();
    let mut procs = vec![master];
    for name in ["a", "b"] {
        let mut c = weft();
        c.args(["agent", "--master", &url, "--listen", "127.0.0.1:0", "--cluster-token", TOKEN])
            .args(["--slots", &slots.to_string(), "--work-dir"])
            .arg(dir.join(name))
            .args(tls)
            .args(agent_flags);
        procs.push(Proc::spawn(c));
    }
    for agent in &procs[1..] {
        agent.wait_for("serving at")?;
    }
    Ok((procs, url))
}
