//! `ArtifactCache`: verified reads, corruption recovery, LRU budget, deduplicated
//! concurrent fetches, and the agent's path: cache in front of a resolver on S3.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use bytesize::ByteSize;
use weft_core::artifact::{
    ArtifactCache, ArtifactError, ArtifactStore, ArtifactUri, CacheConfig, Digest, Resolver, ResolverConfig,
};

use crate::support::{S3Server, bucket};

async fn cache(dir: &std::path::Path, max_size: ByteSize) -> ArtifactCache {
    ArtifactCache::open(&CacheConfig::new(dir).with_max_size(max_size)).await.unwrap()
}

/// A fetch that counts its calls.
fn counting(calls: &AtomicUsize, bytes: &'static [u8]) -> impl Future<Output = Result<Bytes, ArtifactError>> {
    calls.fetch_add(1, Ordering::SeqCst);
    async move { Ok(Bytes::from_static(bytes)) }
}

#[tokio::test]
async fn get_or_fetch_fetches_once_then_hits() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache(dir.path(), ByteSize::mib(1)).await;
    let digest = Digest::of(b"component");
    let calls = AtomicUsize::new(0);
    assert_eq!(cache.get(&digest).await.unwrap(), None);
    for _ in 0..3 {
        let bytes = cache.get_or_fetch(&digest, || counting(&calls, b"component")).await.unwrap();
        assert_eq!(bytes, Bytes::from_static(b"component"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(std::fs::read(cache.path_of(&digest)).unwrap(), b"component");
    assert_eq!(cache.size_on_disk().await.unwrap(), 9);
    // Nothing left half-written.
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn corrupted_cache_file_is_evicted_and_refetched() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache(dir.path(), ByteSize::mib(1)).await;
    let digest = Digest::of(b"pristine");
    cache.insert(&digest, Bytes::from_static(b"pristine")).await.unwrap();

    // Flip bytes on disk, keeping the size.
    std::fs::write(cache.path_of(&digest), b"pristinE").unwrap();
    assert_eq!(cache.get(&digest).await.unwrap(), None, "a corrupt file must never be returned");
    assert!(!cache.path_of(&digest).exists(), "the corrupt file is evicted");

    std::fs::write(cache.path_of(&digest), b"garbage of another length").unwrap();
    let calls = AtomicUsize::new(0);
    let bytes = cache.get_or_fetch(&digest, || counting(&calls, b"pristine")).await.unwrap();
    assert_eq!(bytes, Bytes::from_static(b"pristine"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(std::fs::read(cache.path_of(&digest)).unwrap(), b"pristine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_get_or_fetch_fetches_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(cache(dir.path(), ByteSize::mib(1)).await);
    let digest = Digest::of(b"shared component");
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
            tokio::spawn(async move {
                cache
                    .get_or_fetch(&digest, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok(Bytes::from_static(b"shared component"))
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), Bytes::from_static(b"shared component"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "16 concurrent callers, one fetch");
}

#[tokio::test]
async fn failed_or_wrong_fetch_caches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache(dir.path(), ByteSize::mib(1)).await;
    let digest = Digest::of(b"wanted");

    let err =
        cache.get_or_fetch(&digest, || async { Ok(Bytes::from_static(b"unwanted")) }).await.unwrap_err();
    match err {
        ArtifactError::DigestMismatch { expected, actual, .. } => {
            assert_eq!((expected, actual), (digest, Digest::of(b"unwanted")));
        }
        other => panic!("{other:?}"),
    }
    let err = cache
        .get_or_fetch(&digest, || async {
            Err(ArtifactError::NotFound { location: "somewhere".into(), source: None })
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ArtifactError::NotFound { .. }));
    assert_eq!(cache.get(&digest).await.unwrap(), None);
    // The digest is free again: the next caller fetches.
    let bytes = cache.get_or_fetch(&digest, || async { Ok(Bytes::from_static(b"wanted")) }).await.unwrap();
    assert_eq!(bytes, Bytes::from_static(b"wanted"));
    // `insert` checks too.
    assert!(matches!(
        cache.insert(&digest, Bytes::from_static(b"nope")).await,
        Err(ArtifactError::DigestMismatch { .. })
    ));
}

#[tokio::test]
async fn budget_evicts_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache(dir.path(), ByteSize::b(250)).await;
    let blob = |tag: u8| Bytes::from(vec![tag; 100]);
    let digest = |tag: u8| Digest::of(&blob(tag));
    // File times have clock-tick granularity: space the operations out.
    let tick = || tokio::time::sleep(Duration::from_millis(30));

    cache.insert(&digest(1), blob(1)).await.unwrap();
    tick().await;
    cache.insert(&digest(2), blob(2)).await.unwrap();
    tick().await;
    cache.insert(&digest(3), blob(3)).await.unwrap(); // 300 > 250: evicts 1, the oldest
    assert_eq!(cache.get(&digest(1)).await.unwrap(), None);
    tick().await;
    assert!(cache.get(&digest(2)).await.unwrap().is_some()); // 2 is now the most recent
    tick().await;
    cache.insert(&digest(4), blob(4)).await.unwrap(); // evicts 3, not 2
    assert_eq!(cache.get(&digest(3)).await.unwrap(), None);
    assert!(cache.get(&digest(2)).await.unwrap().is_some());
    assert!(cache.get(&digest(4)).await.unwrap().is_some());
    assert_eq!(cache.size_on_disk().await.unwrap(), 200);

    // Larger than the whole budget: returned, not cached, nothing else evicted.
    let huge = Bytes::from(vec![9u8; 300]);
    let huge_digest = Digest::of(&huge);
    let got = cache.get_or_fetch(&huge_digest, || async { Ok(huge.clone()) }).await.unwrap();
    assert_eq!(got.len(), 300);
    assert_eq!(cache.get(&huge_digest).await.unwrap(), None);
    assert_eq!(cache.size_on_disk().await.unwrap(), 200);

    cache.remove(&digest(2)).await.unwrap();
    cache.remove(&digest(2)).await.unwrap();
    assert_eq!(cache.size_on_disk().await.unwrap(), 100);
}

#[tokio::test]
async fn open_removes_unfinished_writes_and_keeps_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let digest = Digest::of(b"kept");
    {
        let cache = cache(dir.path(), ByteSize::mib(1)).await;
        cache.insert(&digest, Bytes::from_static(b"kept")).await.unwrap();
    }
    std::fs::write(dir.path().join("tmp/.tmpCRASHED"), b"half a wri").unwrap();
    let cache = cache(dir.path(), ByteSize::mib(1)).await;
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    assert_eq!(cache.get(&digest).await.unwrap(), Some(Bytes::from_static(b"kept")));
}

/// The agent's path: a cache in front of a resolver whose store is a real S3 server.
#[tokio::test]
async fn cache_in_front_of_an_s3_store() {
    let server = S3Server::start().await.unwrap();
    let bucket = bucket("cache_in_front");
    server.create_bucket(&bucket).await.unwrap();
    let store = ArtifactStore::new(Arc::new(server.config().build_store(&bucket).unwrap()));
    let digest = store.put(Bytes::from_static(b"from the master")).await.unwrap();
    let resolver = Resolver::new(store.clone(), ResolverConfig::default());

    let dir = tempfile::tempdir().unwrap();
    let cache = cache(dir.path(), ByteSize::mib(1)).await;
    let fetch = || async { resolver.resolve(&ArtifactUri::Blake3(digest)).await.map(|(_, bytes)| bytes) };
    assert_eq!(cache.get_or_fetch(&digest, fetch).await.unwrap(), Bytes::from_static(b"from the master"));
    // Served from the cache even once the store has lost it.
    store.delete(&digest).await.unwrap();
    assert_eq!(cache.get_or_fetch(&digest, fetch).await.unwrap(), Bytes::from_static(b"from the master"));
}
