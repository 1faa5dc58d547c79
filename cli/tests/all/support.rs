//! Processes, guests, data and native references for the end-to-end tests.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

pub const TOKEN: &str = "weft_c_e2e-cluster-token-for-tests";

/// The admin client token of the tests' masters (`WEFT_CLIENT_TOKEN`), which
/// their clients present (`WEFT_TOKEN`).
pub const CLIENT: &str = "weft_t_e2e-client-token-for-the-tests";

/// A `weft` command; masters it starts take [`CLIENT`] as their client
/// token, and clients present it. Their jobs may use the temporary
/// directory, where every test keeps its data.
pub fn weft() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weft"));
    c.env("WEFT_LOG", "warn")
        .env("WEFT_CLIENT_TOKEN", CLIENT)
        .env("WEFT_TOKEN", CLIENT)
        .env("WEFT_GRANTS", std::env::temp_dir())
        // One compile cache for every test's agents: a component (a Python
        // one takes seconds) is compiled once per run, not once per agent.
        .env("WEFT_COMPILE_CACHE", root().join("target/test-compile-cache"));
    c
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A guest component, built by the project's tooling on first use.
pub fn guest(name: &str) -> PathBuf {
    built();
    root().join(format!("target/guests/wasm32-wasip2/release/{name}.wasm"))
}

/// Build every guest component, once per test process.
fn built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok =
            Command::new(cargo).args(["xtask", "guests"]).current_dir(root()).status().unwrap().success();
        assert!(ok, "`cargo xtask guests` failed");
    });
}

/// A Python guest component (`target/guests/python/<name>.wasm`), built by
/// the project's tooling on first use.
pub fn python_guest(name: &str) -> PathBuf {
    built();
    root().join(format!("target/guests/python/{name}.wasm"))
}

/// A JavaScript guest component (`target/guests/js/<name>.wasm`), built by
/// the project's tooling on first use.
pub fn js_guest(name: &str) -> PathBuf {
    built();
    root().join(format!("target/guests/js/{name}.wasm"))
}

/// A C guest component (`target/guests/c/<name>.wasm`), built by the
/// project's tooling on first use.
pub fn c_guest(name: &str) -> PathBuf {
    built();
    root().join(format!("target/guests/c/{name}.wasm"))
}

/// A child process killed when dropped.
pub struct Proc {
    child: Child,
    pub lines: mpsc::Receiver<String>,
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

    /// The first stderr line containing `needle`, within `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no `{needle}` within {timeout:?}; stderr so far:\n{}", seen.join("\n"));
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the process to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `weft master` process on a free loopback port, and its URL.
pub fn master(dir: &Path) -> (Proc, String) {
    master_in(dir, &std::env::current_dir().unwrap())
}

/// [`master`], running in the current directory `cwd`.
pub fn master_in(dir: &Path, cwd: &Path) -> (Proc, String) {
    let mut c = master_command(dir);
    c.current_dir(cwd);
    start_master(c)
}

/// `weft master` on a free loopback port with [`TOKEN`], its files under
/// `dir`: add flags, then [`start_master`].
pub fn master_command(dir: &Path) -> Command {
    let mut c = weft();
    c.args(["master", "--listen", "127.0.0.1:0", "--cluster-token", TOKEN, "--data-dir"])
        .arg(dir.join("master"));
    c
}

/// Start the `weft master` of `command`; the process and its URL (`http://`
/// or, serving TLS, `https://`).
pub fn start_master(command: Command) -> (Proc, String) {
    let p = Proc::spawn(command);
    let line = p.wait_for("listening on", Duration::from_secs(30));
    let url = line.split_whitespace().find(|w| w.starts_with("http")).unwrap_or_else(|| panic!("{line}"));
    let url = url.to_string();
    (p, url)
}

/// The token the tests give tenant `name`.
pub fn tenant_token(name: &str) -> String {
    format!("weft_t_{name}-tenant-token-for-the-tests")
}

/// A master whose tenants file lists `tenants` (a name and more TOML lines
/// for it each, e.g. `role = "batch"`) and an admin, `ops`; tokens from
/// [`tenant_token`]. The process and its URL.
pub fn master_with_tenants(dir: &Path, tenants: &[(&str, &str)]) -> (Proc, String) {
    let mut file = String::new();
    for (name, more) in tenants.iter().chain([&("ops", "admin = true")]) {
        let hash = weft_core::token::TokenHash::of(&tenant_token(name));
        file += &format!("[[tenant]]\nname = \"{name}\"\ntokens = [\"{hash}\"]\n{more}\n\n");
    }
    std::fs::write(dir.join("tenants.toml"), file).unwrap();
    let mut m = master_command(dir);
    m.env_remove("WEFT_CLIENT_TOKEN").arg("--tenants").arg(dir.join("tenants.toml"));
    start_master(m)
}

/// A `weft agent` registered with `master`, its files in `dir/name`, with
/// `flags` (`--slots`, `--memory`, …); started once it serves.
pub fn agent_with(master: &str, dir: &Path, name: &str, flags: &[&str]) -> Proc {
    agent_serving(master, dir, name, flags).0
}

/// [`agent_with`], and the line of its log that says where it serves.
pub fn agent_serving(master: &str, dir: &Path, name: &str, flags: &[&str]) -> (Proc, String) {
    let mut c = weft();
    c.args(["agent", "--master", master, "--listen", "127.0.0.1:0", "--cluster-token", TOKEN])
        .args(flags)
        .arg("--work-dir")
        .arg(dir.join(name));
    let p = Proc::spawn(c);
    let serving = p.wait_for("serving at", Duration::from_secs(30));
    (p, serving)
}

/// `weft COMMAND --master URL --json ARGS…` as `tenant` (`args` is the
/// command and its arguments); its JSON output (it must succeed).
pub fn weft_json_as(tenant: &str, url: &str, args: &[&str]) -> serde_json::Value {
    let o = weft()
        .env("WEFT_TOKEN", tenant_token(tenant))
        .args(&args[..1])
        .args(["--master", url, "--json"])
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(o.status.success(), "weft {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("weft {args:?}: {e}"))
}

/// A `weft agent` process registered with `master`.
pub fn agent(master: &str, dir: &Path, name: &str, token: &str) -> Proc {
    agent_in(master, dir, name, token, &std::env::current_dir().unwrap())
}

/// [`agent`], running in the current directory `cwd`.
pub fn agent_in(master: &str, dir: &Path, name: &str, token: &str, cwd: &Path) -> Proc {
    let mut c = weft();
    c.current_dir(cwd);
    c.args([
        "agent",
        "--master",
        master,
        "--listen",
        "127.0.0.1:0",
        "--slots",
        "2",
        "--cluster-token",
        token,
    ])
    .arg("--work-dir")
    .arg(dir.join(name));
    Proc::spawn(c)
}

/// A master and `n` agents (named a, b, …) that have registered, and the master's URL.
pub fn cluster(dir: &Path, n: usize) -> (Proc, String, Vec<Proc>) {
    let (m, url) = master(dir);
    let agents: Vec<Proc> =
        (0..n).map(|i| agent(&url, dir, &((b'a' + i as u8) as char).to_string(), TOKEN)).collect();
    for a in &agents {
        a.wait_for("serving at", Duration::from_secs(30));
    }
    (m, url, agents)
}

/// A `/proc/<pid>/status` field of process `pid` in bytes (`VmRSS`, `VmHWM`).
pub fn vm(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// Run a `weft` command to its end.
pub fn run(args: &[&str]) -> Output {
    weft().args(args).output().unwrap()
}

/// `weft agents --json` on `url`.
pub fn agents_json(url: &str) -> Vec<serde_json::Value> {
    let o = run(&["agents", "--master", url, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap().as_array().unwrap().clone()
}

/// Submit `wasm` with `args` to the master at `url` and wait for it to
/// succeed; what `weft submit --wait` printed (the driver's log among it).
pub fn submit_log(url: &str, wasm: &Path, args: &[&str]) -> String {
    let mut all = vec!["submit", wasm.to_str().unwrap(), "--master", url, "--wait", "--"];
    all.extend_from_slice(args);
    let o = run(&all);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    stdout
}

/// Submit `wasm` with `args` to the master at `url` without waiting; the job's id.
pub fn submit_detached(url: &str, wasm: &Path, args: &[&str]) -> String {
    let mut all = vec!["submit", wasm.to_str().unwrap(), "--master", url, "--json", "--"];
    all.extend_from_slice(args);
    let o = run(&all);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["job"].as_str().unwrap().to_string()
}

/// `weft status JOB --json`, as JSON.
pub fn status(url: &str, job: &str) -> serde_json::Value {
    let o = run(&["status", job, "--master", url, "--json"]);
    let all: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    all[0].clone()
}

/// Attempts running (or queued on agents) in a job's latest action.
pub fn running_tasks(status: &serde_json::Value) -> u64 {
    status["stages"].as_array().map_or(0, |s| s.iter().map(|st| st["running"].as_u64().unwrap()).sum())
}

#[path = "../../benches/corpus.rs"]
mod corpus;

/// Deterministic English-like text of about `bytes` bytes.
pub fn text(bytes: usize) -> String {
    let mut out = Vec::with_capacity(bytes + 200);
    corpus::write_text(&mut out, bytes as u64).unwrap();
    String::from_utf8(out).unwrap()
}

/// Word count done natively, as the example defines it.
pub fn native_counts(text: &str) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for w in text.split_whitespace() {
        *m.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    m
}

/// Every line of the part files under `dir` (whose `_SUCCESS` must exist).
pub fn output_lines(dir: &Path) -> Vec<String> {
    assert!(dir.join("_SUCCESS").exists(), "no _SUCCESS in {}", dir.display());
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("part-"))
        .collect();
    parts.sort();
    parts
        .iter()
        .flat_map(|p| std::fs::read_to_string(p).unwrap().lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// `word<TAB>count` lines as a map.
pub fn counts(lines: &[String]) -> BTreeMap<String, i64> {
    lines
        .iter()
        .map(|l| {
            let (w, n) = l.rsplit_once('\t').unwrap();
            (w.to_string(), n.parse().unwrap())
        })
        .collect()
}

/// Poll `f` every 100 ms until it gives a value; panics naming `what` after
/// `secs` seconds.
pub fn until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
