//! The master process over real gRPC: what clients get for bad submissions,
//! and that it keeps serving.

use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use weft_core::access::{Access, Grant};
use weft_core::artifact::{Digest, RemoteArtifacts, RemoteError};
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::jobs_client::JobsClient;
use weft_core::proto::v1::{JobState, KillRequest, ListRequest, StatusRequest, SubmitRequest};
use weft_core::token::TokenHash;
use weft_master::node::{MasterConfig, MasterHandle, MasterNode};

const CLIENT: &str = "weft_t_client-secret-for-the-tests";

async fn master(dir: &std::path::Path) -> MasterHandle {
    let config = MasterConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        client_token: CLIENT.into(),
        // Submissions by file:// are read from here.
        grants: vec![Grant { root: dir.display().to_string(), access: Access::Read, s3: None }],
        data_dir: dir.join("master"),
        ..Default::default()
    };
    MasterNode::start(config).await.unwrap()
}

async fn jobs(m: &MasterHandle, token: &str) -> JobsClient<InterceptedService<Channel, Credentials>> {
    let channel = Channel::from_shared(m.url()).unwrap().connect().await.unwrap();
    JobsClient::with_interceptor(channel, Credentials::new(token).unwrap())
}

fn submit(artifact: String) -> SubmitRequest {
    SubmitRequest { artifact, args: vec!["in".into(), "out".into()], ..Default::default() }
}

#[tokio::test]
async fn bad_submissions_get_clear_errors_and_the_master_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let m = master(dir.path()).await;
    let mut c = jobs(&m, CLIENT).await;

    let not_wasm = dir.path().join("job.sh");
    std::fs::write(&not_wasm, b"#!/bin/sh\necho hi\n").unwrap();
    let err = c.submit(submit(format!("file://{}", not_wasm.display()))).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("not WebAssembly"), "{}", err.message());

    let core_module = dir.path().join("core.wasm");
    std::fs::write(&core_module, b"\0asm\x01\0\0\0").unwrap();
    let err = c.submit(submit(format!("file://{}", core_module.display()))).await.unwrap_err();
    assert!(err.message().contains("core WebAssembly module"), "{}", err.message());

    let err = c.submit(submit("gs://bucket/job.wasm".into())).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("gs"), "{}", err.message());

    let err = c.submit(submit(format!("blake3:{}", "0".repeat(64)))).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());

    let missing = dir.path().join("nope.wasm");
    let err = c.submit(submit(format!("file://{}", missing.display()))).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());

    let unknown = weft_core::proto::v1::JobRef { incarnation: m.incarnation.0, seq: 404 };
    let err = c.status(StatusRequest { job: Some(unknown) }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c.status(StatusRequest { job: None }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Outside the grants a file:// artifact is refused the same whether it
    // exists or not: no probing of the master's files.
    for path in ["/etc/passwd", "/etc/no-such-file"] {
        let err = c.submit(submit(format!("file://{path}"))).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
        assert!(err.message().contains(&format!("may not read file://{path}")), "{}", err.message());
    }
    // Nor is a remote artifact fetched without a grant for its host.
    let err = c.submit(submit("http://169.254.169.254/latest/meta-data".into())).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());

    let err = jobs(&m, "wrong").await.list(ListRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Limits: each one unset takes the cluster's default; one over the
    // cluster's maximum is refused, naming it and the flag.
    let component = dir.path().join("ok.wasm");
    std::fs::write(&component, b"\0asm\x0d\0\x01\0").unwrap();
    let with_limits = |limits: weft_core::proto::v1::TaskLimits| SubmitRequest {
        limits: Some(limits),
        ..submit(format!("file://{}", component.display()))
    };
    let huge = weft_core::proto::v1::TaskLimits { memory_bytes: 8 << 30, ..Default::default() };
    let err = c.submit(with_limits(huge)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("maximum of 4.0 GiB") && err.message().contains("--task-memory"),
        "{}",
        err.message()
    );
    let long = weft_core::proto::v1::TaskLimits { deadline_ms: 48 * 3600 * 1000, ..Default::default() };
    assert!(c.submit(with_limits(long)).await.unwrap_err().message().contains("--task-deadline"));
    let fuel_only = weft_core::proto::v1::TaskLimits { fuel: 1_000_000, ..Default::default() };
    let accepted = c.submit(with_limits(fuel_only)).await.unwrap().into_inner().job;
    c.kill(KillRequest { job: accepted }).await.unwrap();

    // Still serving: a well-formed component is accepted and waits for an agent.
    let reply = c.submit(submit(format!("file://{}", component.display()))).await.unwrap().into_inner();
    assert!(reply.component.starts_with("blake3:"));
    let status = c.status(StatusRequest { job: reply.job }).await.unwrap().into_inner();
    assert_eq!(status.state, JobState::Running as i32, "its driver waits for an agent");
    let listed = c.list(ListRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.jobs.len(), 2, "only the accepted jobs are listed");
    m.shutdown().await;
}

/// A tenants file of `tenants` (name, token, admin), one token each.
fn tenants_file(path: &std::path::Path, tenants: &[(&str, &str, bool)]) {
    let mut text = String::new();
    for (name, token, admin) in tenants {
        // Each may read the test's directory (where its component is).
        text += &format!(
            "[[tenant]]\nname = \"{name}\"\ntokens = [\"{}\"]\nadmin = {admin}\n\n\
             [[tenant.grant]]\nroot = \"{}\"\naccess = \"read\"\n\n",
            TokenHash::of(token),
            path.parent().unwrap().display()
        );
    }
    // Written aside and renamed, so the master never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn a_tenant_sees_and_kills_only_its_own_jobs_and_new_tenants_arrive_without_a_restart() {
    const A: &str = "weft_t_analytics-analytics-analytics";
    const B: &str = "weft_t_billing-billing-billing-billing";
    const OPS: &str = "weft_t_ops-ops-ops-ops-ops-ops-ops-ops";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenants.toml");
    tenants_file(&file, &[("analytics", A, false), ("ops", OPS, true)]);
    let config = MasterConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tenants: Some(file.clone()),
        data_dir: dir.path().join("master"),
        ..Default::default()
    };
    let m = MasterNode::start(config).await.unwrap();
    assert!(m.client_token.is_none() && !m.generated.client_token, "tenants are configured");
    let component = dir.path().join("ok.wasm");
    std::fs::write(&component, b"\0asm\x0d\0\x01\0").unwrap();
    let artifact = format!("file://{}", component.display());

    let mut a = jobs(&m, A).await;
    let job = a.submit(submit(artifact.clone())).await.unwrap().into_inner().job;
    let status = a.status(StatusRequest { job }).await.unwrap().into_inner();
    assert_eq!(status.tenant, "analytics", "the tenant comes from the token");

    // Unknown until the file names it; then a tenant that sees nothing of A's.
    let err = jobs(&m, B).await.list(ListRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("--token"), "{}", err.message());
    let err = jobs(&m, "").await.list(ListRequest {}).await.unwrap_err();
    assert!(err.message().contains("carries no token"), "{}", err.message());
    tenants_file(&file, &[("analytics", A, false), ("ops", OPS, true), ("billing", B, false)]);
    let mut b = loop {
        let mut b = jobs(&m, B).await;
        if b.list(ListRequest {}).await.is_ok() {
            break b;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(b.list(ListRequest {}).await.unwrap().into_inner().jobs.is_empty(), "not A's job");
    for err in
        [b.status(StatusRequest { job }).await.unwrap_err(), b.kill(KillRequest { job }).await.unwrap_err()]
    {
        assert_eq!(err.code(), Code::NotFound, "as if it did not exist: {}", err.message());
    }
    let still = a.status(StatusRequest { job }).await.unwrap().into_inner();
    assert_eq!(still.state, JobState::Running as i32, "B's kill did nothing");
    // A's component: B can neither run it by digest nor read it; A can, and
    // so can the cluster (agents fetch it).
    let digest = Digest::of(&std::fs::read(&component).unwrap());
    let by_digest = submit(digest.to_string());
    let err = b.submit(by_digest.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    assert!(err.message().contains("of yours"), "{}", err.message());
    a.submit(by_digest).await.unwrap();
    let read = |token: &str| {
        let (url, token) = (m.url(), token.to_string());
        async move {
            let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
            RemoteArtifacts::new(channel, Credentials::new(&token).unwrap()).get(&digest).await
        }
    };
    assert!(read(A).await.is_ok());
    assert!(read(&m.cluster_token).await.is_ok());
    match read(B).await {
        Err(RemoteError::Status(st)) => assert_eq!(st.code(), Code::NotFound, "{st:?}"),
        other => panic!("B read A's artifact: {other:?}"),
    }
    match read("").await {
        Err(RemoteError::Status(st)) => assert_eq!(st.code(), Code::Unauthenticated, "{st:?}"),
        other => panic!("read anonymously: {other:?}"),
    }
    let own = b.submit(submit(artifact)).await.unwrap().into_inner().job;

    // The admin sees both and may kill either.
    let mut ops = jobs(&m, OPS).await;
    let mut tenants: Vec<String> =
        ops.list(ListRequest {}).await.unwrap().into_inner().jobs.into_iter().map(|j| j.tenant).collect();
    tenants.sort();
    assert_eq!(tenants, ["analytics", "analytics", "billing"], "A's two jobs and B's");
    ops.kill(KillRequest { job: own }).await.unwrap();
    let killed = b.status(StatusRequest { job: own }).await.unwrap().into_inner();
    assert_eq!(killed.state, JobState::Killed as i32);

    // A broken file keeps the tenants in force.
    std::fs::write(&file, "[[tenant]]\nname = ").unwrap();
    assert!(m.reload_tenants().is_err());
    assert!(a.list(ListRequest {}).await.is_ok(), "still known");
    m.shutdown().await;
}

#[tokio::test]
async fn a_master_without_tokens_makes_them_and_keeps_them_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = MasterConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let m = MasterNode::start(config.clone()).await.unwrap();
    assert!(m.generated.cluster_token && m.generated.client_token);
    let token = m.client_token.clone().unwrap();
    assert!(jobs(&m, &token).await.list(ListRequest {}).await.is_ok());
    let err = jobs(&m, "").await.list(ListRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "no anonymous access");
    let cluster = m.cluster_token.clone();
    m.shutdown().await;
    let again = MasterNode::start(config).await.unwrap();
    assert_eq!(
        (again.cluster_token.as_str(), again.client_token.as_deref()),
        (cluster.as_str(), Some(token.as_str()))
    );
    again.shutdown().await;
}
