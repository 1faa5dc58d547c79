//! TLS on every endpoint: a master and an agent serving certificates signed
//! by a CA generated here, clients and peers trusting that CA; a word count
//! through it, and clear errors for a client without the CA or without TLS.

use crate::support::{
    Proc, TOKEN, counts, guest, master_command, native_counts, output_lines, start_master, text, weft,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A CA, and a certificate for 127.0.0.1 and localhost it signed; their PEM files.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "weft test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let paths = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[test]
fn a_job_runs_over_tls_end_to_end_and_plain_or_untrusting_clients_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let tls = |c: &mut std::process::Command| {
        c.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key).arg("--tls-ca").arg(&ca);
    };
    let mut m = master_command(dir.path());
    tls(&mut m);
    let (_m, url) = start_master(m);
    assert!(url.starts_with("https://"), "{url}");
    let mut a = weft();
    a.args(["agent", "--master", &url, "--listen", "127.0.0.1:0", "--slots", "2", "--cluster-token", TOKEN])
        .arg("--work-dir")
        .arg(dir.path().join("agent"));
    tls(&mut a);
    let a = Proc::spawn(a);
    a.wait_for("serving at", Duration::from_secs(30));

    let body = text(256 << 10);
    let input = dir.path().join("in.txt");
    std::fs::write(&input, &body).unwrap();
    let out = dir.path().join("out");
    let wc = guest("wordcount");
    let submit = |extra: &[&str], url: &str| {
        weft()
            .args(["submit", wc.to_str().unwrap(), "--master", url, "--wait", "--json"])
            .args(extra)
            .arg("--")
            .arg(&input)
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = submit(&["--tls-ca", ca.to_str().unwrap()], &url);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        counts(&output_lines(&out)),
        native_counts(&body),
        "the shuffle crossed TLS between agent and itself"
    );

    // Without the CA: refused, naming the flag.
    let o = submit(&[], &url);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--tls-ca"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Plain HTTP to a TLS master gets nowhere.
    let o = submit(&[], &url.replace("https://", "http://"));
    assert!(!o.status.success(), "plain HTTP was served");
    // A CA that did not sign the master's certificate is not trusted.
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = certificates(other.path());
    let o = submit(&["--tls-ca", other_ca.to_str().unwrap()], &url);
    assert!(!o.status.success(), "a certificate from another CA was trusted");
}
