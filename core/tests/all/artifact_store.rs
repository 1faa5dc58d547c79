//! `ArtifactStore` on real backends: a local directory and a real S3-compatible server.

use std::sync::Arc;

use bytes::Bytes;
use bytesize::ByteSize;
use object_store::{ObjectStore, PutPayload};
use weft_core::artifact::{ArtifactError, ArtifactStore, Digest};

use crate::support::{HttpServer, S3Server, bucket};

/// An artifact store on a plain HTTP server (object_store's `HttpStore`).
async fn http_store(server: &HttpServer) -> ArtifactStore {
    let backend = object_store::http::HttpBuilder::new()
        .with_url(server.url("store"))
        .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
        .build()
        .unwrap();
    ArtifactStore::new(Arc::new(backend))
}

async fn s3_store(server: &S3Server, test: &str) -> ArtifactStore {
    let bucket = bucket(test);
    server.create_bucket(&bucket).await.unwrap();
    let backend = server.config().build_store(&bucket).unwrap();
    ArtifactStore::new(Arc::new(backend)).with_prefix("cluster/artifacts")
}

/// The behaviour every backend must show.
async fn round_trip(store: &ArtifactStore) {
    let bytes = Bytes::from(b"\0asm\x01\0\0\0 component".repeat(1000));
    let digest = store.put(bytes.clone()).await.unwrap();
    assert_eq!(digest, Digest::of(&bytes));
    assert!(store.exists(&digest).await.unwrap());
    assert_eq!(store.get(&digest).await.unwrap(), bytes);
    // Idempotent: the same digest, the same single object.
    assert_eq!(store.put(bytes.clone()).await.unwrap(), digest);
    let meta = store.backend().head(&store.path_of(&digest)).await.unwrap();
    assert_eq!(meta.size, bytes.len() as u64);

    let missing = Digest::of(b"never stored");
    assert!(!store.exists(&missing).await.unwrap());
    let err = store.get(&missing).await.unwrap_err();
    assert!(matches!(err, ArtifactError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing.to_string()), "{err}");
}

/// Overwrites the stored object behind the store's back; `get` must refuse it.
async fn tampered_object_is_refused(store: &ArtifactStore) {
    let digest = store.put(Bytes::from_static(b"the real component")).await.unwrap();
    let forged = Bytes::from_static(b"a forged component");
    store.backend().put(&store.path_of(&digest), PutPayload::from_bytes(forged.clone())).await.unwrap();
    match store.get(&digest).await {
        Err(err @ ArtifactError::DigestMismatch { .. }) => {
            let ArtifactError::DigestMismatch { expected, actual, .. } = &err else { unreachable!() };
            assert_eq!(*expected, digest);
            assert_eq!(*actual, Digest::of(&forged));
            let message = err.to_string();
            assert!(
                message.contains(&digest.to_string()) && message.contains(&actual.to_string()),
                "{message}"
            );
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
}

async fn oversized_artifact_is_refused(store: &ArtifactStore) {
    let bytes = Bytes::from(vec![1u8; 4096]);
    let digest = store.put(bytes.clone()).await.unwrap();
    let limited = store.clone().with_max_size(ByteSize::b(4095));
    match limited.get(&digest).await {
        Err(ArtifactError::TooLarge { size, limit, .. }) => assert_eq!((size, limit), (4096, 4095)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(limited.put(bytes).await, Err(ArtifactError::TooLarge { .. })));
}

#[tokio::test]
async fn local_directory_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::local(dir.path().join("data")).unwrap();
    round_trip(&store).await;
    let digest = Digest::of(b"on disk");
    store.put(Bytes::from_static(b"on disk")).await.unwrap();
    let file = dir.path().join("data/artifacts/blake3").join(digest.to_hex());
    assert_eq!(std::fs::read(file).unwrap(), b"on disk");
}

#[tokio::test]
async fn local_tampered_file_is_a_digest_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::local(dir.path()).unwrap();
    tampered_object_is_refused(&store).await;
    // Also when the file is edited in place, outside object_store.
    let digest = store.put(Bytes::from_static(b"edited in place")).await.unwrap();
    let file = dir.path().join("artifacts/blake3").join(digest.to_hex());
    std::fs::write(&file, b"edited in plac3").unwrap();
    assert!(matches!(store.get(&digest).await, Err(ArtifactError::DigestMismatch { .. })));
}

#[tokio::test]
async fn local_oversized_artifact_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    oversized_artifact_is_refused(&ArtifactStore::local(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn s3_round_trip() {
    let server = S3Server::start().await.unwrap();
    let store = s3_store(&server, "s3_round_trip").await;
    round_trip(&store).await;
    let digest = Digest::of(b"\0asm\x01\0\0\0 component".repeat(1000).as_slice());
    assert_eq!(store.path_of(&digest).as_ref(), format!("cluster/artifacts/blake3/{}", digest.to_hex()));
}

#[tokio::test]
async fn s3_tampered_object_is_a_digest_mismatch() {
    let server = S3Server::start().await.unwrap();
    tampered_object_is_refused(&s3_store(&server, "s3_tampered").await).await;
}

#[tokio::test]
async fn s3_oversized_artifact_is_refused() {
    let server = S3Server::start().await.unwrap();
    oversized_artifact_is_refused(&s3_store(&server, "s3_oversized").await).await;
}

#[tokio::test]
async fn s3_missing_bucket_is_not_found() {
    let server = S3Server::start().await.unwrap();
    let store = ArtifactStore::new(Arc::new(server.config().build_store("no-such-bucket").unwrap()));
    let err = store.get(&Digest::of(b"x")).await.unwrap_err();
    assert!(matches!(err, ArtifactError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn http_round_trip() {
    let server = HttpServer::start().await.unwrap();
    let store = http_store(&server).await;
    round_trip(&store).await;
    let digest = store.put(Bytes::from_static(b"on the web server")).await.unwrap();
    let stored = server.file(&format!("store/artifacts/blake3/{}", digest.to_hex()));
    assert_eq!(stored, Some(Bytes::from_static(b"on the web server")));
}

#[tokio::test]
async fn http_tampered_object_is_a_digest_mismatch() {
    let server = HttpServer::start().await.unwrap();
    tampered_object_is_refused(&http_store(&server).await).await;
}

#[tokio::test]
async fn http_oversized_artifact_is_refused() {
    let server = HttpServer::start().await.unwrap();
    oversized_artifact_is_refused(&http_store(&server).await).await;
}
