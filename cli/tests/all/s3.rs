//! Per-tenant S3 credentials end to end: two tenants whose grants of the
//! same `s3://lake/` carry their own settings, pointing at two different
//! S3-compatible servers (moto); each job lists, reads and commits on its
//! own tenant's server only, as the servers' contents show. A tenant whose
//! grant carries no settings gets the cluster's (here none) and is told so.

use crate::support::{TOKEN, agent, counts, guest, master_command, native_counts, start_master, text, weft};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto S3 server on a free loopback port, stopped when dropped.
struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Moto {
    fn start() -> Moto {
        // The server `ci/setup-test-services.sh` installs, as the core's S3 tests run it.
        let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-services/bin/moto_server");
        assert!(
            bin.exists(),
            "the S3 test server is not installed ({} is missing): run `bash ci/setup-test-services.sh`",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { child, addr }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// One plain HTTP/1.1 request (moto checks no signatures); status and body.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let out = String::from_utf8_lossy(&out).to_string();
        let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    /// The keys under `prefix` in `bucket`.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) = self.request("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"), b"");
        assert_eq!(status, 200, "{body}");
        body.split("<Key>").skip(1).map(|k| k.split("</Key>").next().unwrap().to_string()).collect()
    }

    /// Every line of the committed parts under `prefix`.
    fn output(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let keys = self.keys(bucket, prefix);
        assert!(keys.iter().any(|k| k.ends_with("_SUCCESS")), "no _SUCCESS under {prefix}: {keys:?}");
        let mut lines = Vec::new();
        // Objects are read signed (moto refuses anonymous reads), with a key
        // of neither tenant.
        let config = weft_core::artifact::S3Config::default()
            .with_endpoint(self.endpoint())
            .with_region("us-east-1")
            .with_credentials("reader", "reader")
            .with_allow_http(true)
            .with_from_env(false);
        let scratch = tempfile::tempdir().unwrap();
        let store = weft_core::artifact::ArtifactStore::local(scratch.path()).unwrap();
        let resolver = weft_core::artifact::Resolver::new(
            store,
            weft_core::artifact::ResolverConfig::default().with_s3(config),
        );
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for k in keys.iter().filter(|k| k.rsplit('/').next().unwrap().starts_with("part-")) {
            let (_, bytes) = runtime.block_on(resolver.resolve_str(&format!("s3://{bucket}/{k}"))).unwrap();
            lines.extend(String::from_utf8(bytes.to_vec()).unwrap().lines().map(str::to_string));
        }
        lines
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ALPHA: &str = "weft_t_alpha-tenant-token-for-s3-tests";
const BETA: &str = "weft_t_beta-tenant-token-for-s3-testsx";
const GAMMA: &str = "weft_t_gamma-tenant-token-for-s3-tests";

#[test]
fn each_tenants_job_uses_its_own_grants_s3_settings_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (Moto::start(), Moto::start());
    // The same bucket and key on both servers, with different text.
    let (text_one, text_two) = (text(40 << 10), text(24 << 10).to_uppercase() + "\nonly on two\n");
    for (server, body) in [(&one, &text_one), (&two, &text_two)] {
        assert_eq!(server.request("PUT", "/lake", b"").0, 200);
        assert_eq!(server.request("PUT", "/lake/in/book.txt", body.as_bytes()).0, 200);
    }
    let secret = dir.path().join("alpha.secret");
    std::fs::write(&secret, "alpha-secret-key\n").unwrap();
    let hash = |t: &str| weft_core::token::TokenHash::of(t).to_string();
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(
        &tenants,
        format!(
            "[[tenant]]\nname = \"alpha\"\ntokens = [\"{}\"]\n[[tenant.grant]]\nroot = \"s3://lake/\"\n\
             access = \"read-write\"\ns3 = {{ endpoint = \"{}\", region = \"us-east-1\", access-key-id = \"alpha\", \
             secret-access-key-file = \"{}\", allow-http = true }}\n\n\
             [[tenant]]\nname = \"beta\"\ntokens = [\"{}\"]\n[[tenant.grant]]\nroot = \"s3://lake/\"\n\
             access = \"read-write\"\ns3 = {{ endpoint = \"{}\", access-key-id = \"beta\", \
             secret-access-key = \"beta-secret-key\", allow-http = true }}\n\n\
             [[tenant]]\nname = \"gamma\"\ntokens = [\"{}\"]\n[[tenant.grant]]\nroot = \"s3://lake/\"\n\
             access = \"read-write\"\n",
            hash(ALPHA),
            one.endpoint(),
            secret.display(),
            hash(BETA),
            two.endpoint(),
            hash(GAMMA),
        ),
    )
    .unwrap();
    let no_aws = |c: &mut Command| {
        for v in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            c.env_remove(v);
        }
    };
    let mut c = master_command(dir.path());
    c.env_remove("WEFT_CLIENT_TOKEN").arg("--tenants").arg(&tenants);
    no_aws(&mut c);
    let (m, url) = start_master(c);
    // (The agent is on loopback: credentials may travel to it without TLS.)
    let a = agent(&url, dir.path(), "agent", TOKEN);
    a.wait_for("serving at", Duration::from_secs(30));

    let wc = guest("wordcount");
    let submit = |token: &str| {
        let o = weft()
            .env("WEFT_TOKEN", token)
            .args(["submit", wc.to_str().unwrap(), "--master", &url, "--wait", "--json", "--"])
            .args(["s3://lake/in/", "s3://lake/out/"])
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (ok, said) = submit(ALPHA);
    assert!(ok, "alpha: {said}");
    assert_eq!(
        counts(&one.output("lake", "out/")),
        native_counts(&text_one),
        "alpha's job read and wrote one"
    );
    assert!(two.keys("lake", "out/").is_empty(), "alpha's job wrote nothing on two");

    let (ok, said) = submit(BETA);
    assert!(ok, "beta: {said}");
    assert_eq!(
        counts(&two.output("lake", "out/")),
        native_counts(&text_two),
        "beta's job read and wrote two"
    );
    // Alpha's output on one is untouched (beta's setup would refuse an existing output).
    assert_eq!(counts(&one.output("lake", "out/")), native_counts(&text_one));

    // Gamma's grant carries no settings and the cluster has none: refused,
    // naming the S3 settings, and nothing written anywhere.
    let (ok, said) = submit(GAMMA);
    assert!(!ok, "gamma: {said}");
    assert!(said.contains("credentials") || said.contains("S3"), "gamma: {said}");
    for server in [&one, &two] {
        assert_eq!(server.keys("lake", "out/").iter().filter(|k| k.contains("_temporary")).count(), 0);
    }
    drop(m);
}
