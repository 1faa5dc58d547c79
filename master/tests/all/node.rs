//! The master process over real gRPC: what clients get for bad submissions,
//! and that it keeps serving.

use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::jobs_client::JobsClient;
use weft_core::proto::v1::{JobState, ListRequest, StatusRequest, SubmitRequest};
use weft_master::node::{MasterConfig, MasterHandle, MasterNode};

async fn master(dir: &std::path::Path) -> MasterHandle {
    let config = MasterConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        client_token: "client-secret".into(),
        data_dir: dir.to_path_buf(),
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
    let mut c = jobs(&m, "client-secret").await;

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

    let err = jobs(&m, "wrong").await.list(ListRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Still serving: a well-formed component is accepted and waits for an agent.
    let component = dir.path().join("ok.wasm");
    std::fs::write(&component, b"\0asm\x0d\0\x01\0").unwrap();
    let reply = c.submit(submit(format!("file://{}", component.display()))).await.unwrap().into_inner();
    assert!(reply.component.starts_with("blake3:"));
    let status = c.status(StatusRequest { job: reply.job }).await.unwrap().into_inner();
    assert_eq!(status.state, JobState::Running as i32, "its driver waits for an agent");
    let listed = c.list(ListRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.jobs.len(), 1, "only the accepted job is listed");
    m.shutdown().await;
}
