//! Real servers for the tests: moto's S3-compatible server in a child process, and an
//! axum HTTP server in the test's runtime.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_core::artifact::S3Config;

/// Where `ci/setup-test-services.sh` installs the server (override with
/// `WEFT_MOTO_SERVER`).
fn moto_server_bin() -> PathBuf {
    match std::env::var_os("WEFT_MOTO_SERVER") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-services/bin/moto_server"),
    }
}

/// A moto S3 server on a free loopback port, stopped when dropped.
///
/// The server runs under a small shell watchdog that stops it when its stdin closes:
/// on drop, or when the test process dies for any reason, so no server outlives the
/// tests.
pub struct S3Server {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    _log: tempfile::NamedTempFile,
}

impl S3Server {
    pub async fn start() -> Result<Self> {
        let bin = moto_server_bin();
        if !bin.exists() {
            bail!(
                "the S3 test server is not installed ({} is missing): run `bash ci/setup-test-services.sh` \
                 from the repository root (`cargo xtask test` runs it for you)",
                bin.display()
            );
        }
        let mut last_error = None;
        for _ in 0..3 {
            match Self::try_start(&bin).await {
                Ok(server) => return Ok(server),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("moto_server did not start")))
    }

    async fn try_start(bin: &std::path::Path) -> Result<Self> {
        let port = free_port()?;
        let log = tempfile::NamedTempFile::new()?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"bin="$1"; shift; "$bin" "$@" </dev/null & pid=$!; read -r _; kill "$pid"; wait "$pid""#)
            .arg("watchdog")
            .arg(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(log.reopen()?)
            .stderr(log.reopen()?)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let stdin = child.stdin.take();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut server = Self { child, stdin, addr, _log: log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                let log = std::fs::read_to_string(server._log.path()).unwrap_or_default();
                bail!("moto_server exited with {status} before listening on {addr}:\n{log}");
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(server._log.path()).unwrap_or_default();
                bail!("moto_server did not listen on {addr} within 30s:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Client configuration for this server (moto accepts any credentials).
    pub fn config(&self) -> S3Config {
        S3Config::default()
            .with_endpoint(self.endpoint())
            .with_region("us-east-1")
            .with_credentials("testing", "testing")
            .with_allow_http(true)
            .with_from_env(false)
    }

    /// Creates `bucket` with a bare `PUT /bucket` (object_store has no bucket API).
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await?;
        let request = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        if !response.starts_with("HTTP/1.1 200") {
            bail!("creating bucket {bucket} failed: {response}");
        }
        Ok(())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Closing the watchdog's stdin stops the server; then reap the watchdog.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// An HTTP server serving `files` at `/<name>` (GET and HEAD, ignoring any query
/// string) and storing them on PUT: enough of WebDAV for `object_store`'s `HttpStore`.
pub struct HttpServer {
    pub addr: SocketAddr,
    files: Arc<Mutex<HashMap<String, Bytes>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    pub async fn start() -> Result<Self> {
        let files: Arc<Mutex<HashMap<String, Bytes>>> = Arc::default();
        let app = Router::new().route("/{*name}", get(serve).put(store)).with_state(Arc::clone(&files));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, files, task })
    }

    pub fn insert(&self, name: &str, bytes: impl Into<Bytes>) {
        self.files.lock().unwrap().insert(name.to_owned(), bytes.into());
    }

    pub fn file(&self, name: &str) -> Option<Bytes> {
        self.files.lock().unwrap().get(name).cloned()
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    State(files): State<Arc<Mutex<HashMap<String, Bytes>>>>,
    Path(name): Path<String>,
) -> Result<Bytes, StatusCode> {
    files.lock().unwrap().get(&name).cloned().ok_or(StatusCode::NOT_FOUND)
}

async fn store(
    State(files): State<Arc<Mutex<HashMap<String, Bytes>>>>,
    Path(name): Path<String>,
    body: Bytes,
) -> StatusCode {
    files.lock().unwrap().insert(name, body);
    StatusCode::CREATED
}

/// A bucket name unique within the test run.
pub fn bucket(test: &str) -> String {
    format!("weft-{}", test.replace('_', "-"))
}
