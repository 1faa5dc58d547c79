//! `Resolver` against every source: the store, local files, a real S3-compatible
//! server and a real HTTP server.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytesize::ByteSize;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use weft_core::artifact::{
    ArtifactError, ArtifactStore, ArtifactUri, Digest, Resolver, ResolverConfig, S3Config, UriError,
};

use crate::support::{HttpServer, S3Server, bucket};

fn resolver(config: ResolverConfig) -> Resolver {
    Resolver::new(ArtifactStore::new(Arc::new(InMemory::new())), config)
}

fn assert_mismatch(result: Result<(Digest, Bytes), ArtifactError>, expected: Digest, actual: Digest) {
    match result {
        Err(ArtifactError::DigestMismatch { expected: e, actual: a, location }) => {
            assert_eq!((e, a), (expected, actual), "at {location}");
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn blake3_uri_reads_the_configured_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::local(dir.path()).unwrap();
    let digest = store.put(Bytes::from_static(b"pushed")).await.unwrap();
    let resolver = Resolver::new(store, ResolverConfig::default());
    let (got, bytes) = resolver.resolve_str(&digest.to_string()).await.unwrap();
    assert_eq!((got, bytes), (digest, Bytes::from_static(b"pushed")));
}

#[tokio::test]
async fn file_uris() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my job.wasm");
    std::fs::write(&path, b"file bytes").unwrap();
    let digest = Digest::of(b"file bytes");
    let base = url::Url::from_file_path(&path).unwrap().to_string();
    assert!(base.contains("my%20job.wasm"), "{base}");
    let resolver = resolver(ResolverConfig::default());

    // Without an expected digest: the digest is computed from the bytes.
    assert_eq!(resolver.resolve_str(&base).await.unwrap(), (digest, Bytes::from_static(b"file bytes")));
    // With the right one.
    assert_eq!(resolver.resolve_str(&format!("{base}#{digest}")).await.unwrap().0, digest);
    // With a wrong one.
    let wrong = Digest::of(b"something else");
    assert_mismatch(resolver.resolve_str(&format!("{base}#{wrong}")).await, wrong, digest);
    // Missing file.
    let missing = url::Url::from_file_path(dir.path().join("nope.wasm")).unwrap();
    let err = resolver.resolve_str(missing.as_str()).await.unwrap_err();
    assert!(matches!(err, ArtifactError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.wasm"), "{err}");
    // Too large.
    let small = self::resolver(ResolverConfig::default().with_max_artifact_size(ByteSize::b(4)));
    let err = small.resolve_str(&base).await.unwrap_err();
    assert!(matches!(err, ArtifactError::TooLarge { size: 10, limit: 4, .. }), "{err:?}");
}

#[tokio::test]
async fn s3_uris() {
    let server = S3Server::start().await.unwrap();
    let bucket = bucket("s3_uris");
    server.create_bucket(&bucket).await.unwrap();
    let backend = server.config().build_store(&bucket).unwrap();
    let bytes = Bytes::from(vec![42u8; 10_000]);
    let digest = Digest::of(&bytes);
    backend.put(&Path::from("jobs/word count.wasm"), bytes.clone().into()).await.unwrap();

    let resolver = resolver(ResolverConfig::default().with_s3(server.config()));
    let uri = format!("s3://{bucket}/jobs/word%20count.wasm");
    assert_eq!(resolver.resolve_str(&uri).await.unwrap(), (digest, bytes.clone()));
    assert_eq!(resolver.resolve_str(&format!("{uri}#{digest}")).await.unwrap().0, digest);

    // Wrong expected digest.
    let wrong = Digest::of(b"not it");
    assert_mismatch(resolver.resolve_str(&format!("{uri}#{wrong}")).await, wrong, digest);

    // The object changes after the URI was published: the pinned digest catches it.
    backend.put(&Path::from("jobs/word count.wasm"), Bytes::from_static(b"replaced").into()).await.unwrap();
    assert_mismatch(resolver.resolve_str(&format!("{uri}#{digest}")).await, digest, Digest::of(b"replaced"));

    // Missing key and missing bucket.
    let err = resolver.resolve_str(&format!("s3://{bucket}/jobs/missing.wasm")).await.unwrap_err();
    assert!(matches!(err, ArtifactError::NotFound { .. }), "{err:?}");
    let err = resolver.resolve_str("s3://no-such-bucket/x.wasm").await.unwrap_err();
    assert!(matches!(err, ArtifactError::NotFound { .. }), "{err:?}");

    // Too large: refused on the reported size.
    backend.put(&Path::from("big.wasm"), Bytes::from(vec![0u8; 2048]).into()).await.unwrap();
    let small = self::resolver(
        ResolverConfig::default().with_s3(server.config()).with_max_artifact_size(ByteSize::kib(1)),
    );
    let err = small.resolve_str(&format!("s3://{bucket}/big.wasm")).await.unwrap_err();
    assert!(matches!(err, ArtifactError::TooLarge { size: 2048, limit: 1024, .. }), "{err:?}");
    assert!(err.to_string().contains("max_artifact_size"), "{err}");
}

#[tokio::test]
async fn s3_unreachable_endpoint_is_a_storage_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s3 = S3Config::default()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_credentials("testing", "testing")
        .with_allow_http(true)
        .with_from_env(false);
    let resolver = resolver(ResolverConfig::default().with_s3(s3).with_retries(0, Duration::from_secs(1)));
    let err = resolver.resolve_str("s3://bucket/key.wasm").await.unwrap_err();
    assert!(matches!(err, ArtifactError::Storage { .. }), "{err:?}");
}

#[tokio::test]
async fn http_uris() {
    let server = HttpServer::start().await.unwrap();
    let bytes = Bytes::from(b"served over http".repeat(100));
    let digest = Digest::of(&bytes);
    server.insert("dir/job.wasm", bytes.clone());
    server.insert("big.wasm", vec![0u8; 5000]);
    let resolver = resolver(ResolverConfig::default());

    let url = server.url("dir/job.wasm");
    assert_eq!(resolver.resolve_str(&url).await.unwrap(), (digest, bytes.clone()));
    // Query strings (e.g. presigned URLs) are sent; the fragment is not.
    assert_eq!(resolver.resolve_str(&format!("{url}?token=abc#{digest}")).await.unwrap().0, digest);
    let wrong = Digest::of(b"other");
    assert_mismatch(resolver.resolve_str(&format!("{url}#{wrong}")).await, wrong, digest);

    let err = resolver.resolve_str(&server.url("missing.wasm")).await.unwrap_err();
    assert!(matches!(err, ArtifactError::NotFound { .. }), "{err:?}");

    let small = self::resolver(ResolverConfig::default().with_max_artifact_size(ByteSize::b(4999)));
    let err = small.resolve_str(&server.url("big.wasm")).await.unwrap_err();
    assert!(matches!(err, ArtifactError::TooLarge { size: 5000, limit: 4999, .. }), "{err:?}");
    assert_eq!(small.resolve_str(&url).await.unwrap().0, digest);
}

#[tokio::test]
async fn bad_uris_are_typed_errors() {
    let resolver = resolver(ResolverConfig::default());
    let err = resolver.resolve_str("gs://bucket/job.wasm").await.unwrap_err();
    assert!(
        matches!(&err, ArtifactError::Uri(UriError::UnknownScheme { scheme, .. }) if scheme == "gs"),
        "{err:?}"
    );
    assert!(err.to_string().contains("s3://bucket/key"), "{err}");

    let err = resolver.resolve_str("job.wasm").await.unwrap_err();
    assert!(matches!(err, ArtifactError::Uri(UriError::Malformed { .. })), "{err:?}");
    assert!(err.to_string().contains("file:///abs/path"), "{err}");

    let err = resolver.resolve_str("s3://bucket/job.wasm#md5:abc").await.unwrap_err();
    assert!(matches!(err, ArtifactError::Uri(UriError::InvalidDigest { .. })), "{err:?}");

    // A URI built in code with a key no object store accepts.
    let uri = ArtifactUri::S3 { bucket: "b".into(), key: "a//b".into(), expected: None };
    let err = resolver.resolve(&uri).await.unwrap_err();
    assert!(matches!(err, ArtifactError::Uri(UriError::Malformed { .. })), "{err:?}");
}
