//! The master-hosted artifact store over real gRPC on loopback.

use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tonic::Code;
use tonic::transport::{Channel, Server};
use weft_core::artifact::{
    ArtifactService, ArtifactStore, ClusterGate, Digest, RemoteArtifacts, RemoteError,
};
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::GetRequest;
use weft_core::proto::v1::artifacts_client::ArtifactsClient;

const TOKEN: &str = "weft_c_artifact-tests-cluster-token";

struct Served {
    addr: SocketAddr,
    store: ArtifactStore,
    dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn serve(max_size: u64) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::local(dir.path()).unwrap().with_max_size(bytesize::ByteSize::b(max_size));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let service = ArtifactService::new(store.clone(), Arc::new(ClusterGate::new(TOKEN))).into_server();
    tokio::spawn(async move {
        Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Served { addr, store, dir, _shutdown: tx }
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

fn blob(len: usize) -> Bytes {
    (0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>().into()
}

#[tokio::test]
async fn put_and_get_round_trip_in_chunks() {
    let s = serve(64 << 20).await;
    let remote = RemoteArtifacts::new(channel(s.addr).await, Credentials::new(TOKEN).unwrap());
    let bytes = blob(2 * weft_core::artifact::remote::CHUNK + 12345);
    let digest = remote.put(bytes.clone()).await.unwrap();
    assert_eq!(digest, Digest::of(&bytes));
    assert!(s.store.exists(&digest).await.unwrap(), "stored in the master's store");
    assert_eq!(remote.get(&digest).await.unwrap(), bytes);
}

#[tokio::test]
async fn unknown_digests_and_malformed_ones_get_clear_statuses() {
    let s = serve(1 << 20).await;
    let remote = RemoteArtifacts::new(channel(s.addr).await, Credentials::new(TOKEN).unwrap());
    let missing = Digest::of(b"never stored");
    match remote.get(&missing).await {
        Err(RemoteError::Status(st)) => {
            assert_eq!(st.code(), Code::NotFound);
            assert!(st.message().contains("push the artifact"), "{}", st.message());
        }
        other => panic!("{other:?}"),
    }
    let mut raw = ArtifactsClient::with_interceptor(channel(s.addr).await, Credentials::new(TOKEN).unwrap());
    let st = raw.get(GetRequest { digest: "sha256:abc".into() }).await.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_tampered_artifact_is_refused_as_data_loss() {
    let s = serve(1 << 20).await;
    let remote = RemoteArtifacts::new(channel(s.addr).await, Credentials::new(TOKEN).unwrap());
    let bytes = blob(5000);
    let digest = remote.put(bytes.clone()).await.unwrap();
    let path = s.dir.path().join("artifacts/blake3").join(digest.to_hex());
    let mut evil = bytes.to_vec();
    evil[100] ^= 1;
    std::fs::write(&path, evil).unwrap();
    match remote.get(&digest).await {
        Err(RemoteError::Status(st)) => assert_eq!(st.code(), Code::DataLoss, "{}", st.message()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused() {
    let s = serve(100_000).await;
    let remote = RemoteArtifacts::new(channel(s.addr).await, Credentials::new(TOKEN).unwrap());
    match remote.put(blob(100_001)).await {
        Err(RemoteError::Status(st)) => assert_eq!(st.code(), Code::ResourceExhausted, "{}", st.message()),
        other => panic!("{other:?}"),
    }
    assert!(remote.put(blob(100_000)).await.is_ok(), "at the limit is fine");
}

#[tokio::test]
async fn callers_without_the_token_can_neither_read_nor_store() {
    let s = serve(1 << 20).await;
    let ours = RemoteArtifacts::new(channel(s.addr).await, Credentials::new(TOKEN).unwrap());
    let digest = ours.put(blob(1000)).await.unwrap();
    for token in ["", "weft_c_some-other-cluster-token-xyz"] {
        let theirs = RemoteArtifacts::new(channel(s.addr).await, Credentials::new(token).unwrap());
        match theirs.get(&digest).await {
            Err(RemoteError::Status(st)) => assert_eq!(st.code(), Code::Unauthenticated, "{st:?}"),
            other => panic!("read without the token: {other:?}"),
        }
        match theirs.put(blob(2000)).await {
            Err(RemoteError::Status(st)) => assert_eq!(st.code(), Code::Unauthenticated, "{st:?}"),
            other => panic!("stored without the token: {other:?}"),
        }
    }
    assert!(!s.store.exists(&Digest::of(&blob(2000))).await.unwrap(), "nothing was stored");
}
