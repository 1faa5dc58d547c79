//! Public artifacts: one an admin pushes with `public` is readable and
//! submittable by digest by every tenant; before, another tenant can do
//! neither; a tenant that is no admin may not make one public.

use tonic::Code;
use tonic::transport::Channel;
use weft_core::artifact::{Digest, RemoteArtifacts, RemoteError};
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::SubmitRequest;
use weft_core::proto::v1::jobs_client::JobsClient;
use weft_core::token::TokenHash;
use weft_master::node::{MasterConfig, MasterNode};

const ALPHA: &str = "weft_t_alpha-alpha-alpha-alpha-alpha";
const BETA: &str = "weft_t_beta-beta-beta-beta-beta-beta";
const OPS: &str = "weft_t_ops-ops-ops-ops-ops-ops-ops-ops";

#[tokio::test]
async fn an_admin_makes_an_artifact_public_and_every_tenant_may_then_run_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenants.toml");
    let mut text = String::new();
    for (name, token, admin) in [("alpha", ALPHA, false), ("beta", BETA, false), ("ops", OPS, true)] {
        text += &format!(
            "[[tenant]]\nname = \"{name}\"\ntokens = [\"{}\"]\nadmin = {admin}\n\n",
            TokenHash::of(token)
        );
    }
    std::fs::write(&file, text).unwrap();
    let m = MasterNode::start(MasterConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tenants: Some(file),
        data_dir: dir.path().join("master"),
        ..Default::default()
    })
    .await
    .unwrap();
    let channel = Channel::from_shared(m.url()).unwrap().connect().await.unwrap();
    let store = |token: &str| RemoteArtifacts::new(channel.clone(), Credentials::new(token).unwrap());
    let jobs = |token: &str| JobsClient::with_interceptor(channel.clone(), Credentials::new(token).unwrap());
    let submit = |digest: Digest| SubmitRequest { artifact: digest.to_string(), ..Default::default() };
    let code = |r: Result<bytes::Bytes, RemoteError>| match r {
        Err(RemoteError::Status(st)) => st.code(),
        Ok(_) => Code::Ok,
        Err(other) => panic!("{other}"),
    };
    // Starts like a component; never runs (no agents).
    let component = bytes::Bytes::from_static(b"\0asm\x0d\0\x01\0shared-tool");
    let digest = Digest::of(&component);

    // Beta holds it; alpha can neither read it nor run it by its digest.
    assert_eq!(store(BETA).put(component.clone()).await.unwrap(), digest);
    assert_eq!(code(store(ALPHA).get(&digest).await), Code::NotFound, "before it is public");
    let err = jobs(ALPHA).submit(submit(digest)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());

    // A tenant that is no admin may not make it public, and is told why;
    // nothing changes for alpha.
    for token in [BETA, ALPHA] {
        match store(token).put_public(component.clone()).await {
            Err(RemoteError::Status(st)) => {
                assert_eq!(st.code(), Code::PermissionDenied, "{}", st.message());
                assert!(
                    st.message().contains("admin") && st.message().contains("--public"),
                    "{}",
                    st.message()
                );
            }
            other => panic!("a non-admin made it public: {other:?}"),
        }
    }
    assert_eq!(code(store(ALPHA).get(&digest).await), Code::NotFound, "a refused push publishes nothing");

    // The admin makes it public: every tenant reads it and submits it by digest.
    assert_eq!(store(OPS).put_public(component.clone()).await.unwrap(), digest);
    assert_eq!(store(ALPHA).get(&digest).await.unwrap(), component);
    let job = jobs(ALPHA).submit(submit(digest)).await.unwrap().into_inner();
    assert_eq!(job.component, digest.to_string());
    // Only that one: another of beta's artifacts stays beta's.
    let private = bytes::Bytes::from_static(b"\0asm\x0d\0\x01\0beta-only");
    let other = store(BETA).put(private).await.unwrap();
    assert_eq!(code(store(ALPHA).get(&other).await), Code::NotFound);
    m.shutdown().await;
}
