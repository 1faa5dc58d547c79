//! Text input splits on real backends: a local directory and a real S3-compatible
//! server (moto). The reference for line splitting is Rust's own `str::lines`.

use std::sync::Arc;

use object_store::PutPayload;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use weft_core::artifact::S3Config;
use weft_core::io::{DataLocation, IoError, LineReader, TextSplit, plan_text_splits};

use crate::support::{S3Server, bucket};

/// Every line of every split, in split order, read with small chunks and batches so
/// that lines straddle reads, batches and splits.
pub async fn read_all(location: &DataLocation, splits: Vec<TextSplit>, chunk: u64) -> Vec<String> {
    let mut lines = Vec::new();
    for split in splits {
        let mut reader = LineReader::new(location, split).with_chunk_bytes(chunk).with_batch_bytes(64);
        while let Some(batch) = reader.next_batch().await.unwrap() {
            for line in weft_core::codec::batch::entries(&batch) {
                lines.push(String::from_utf8(line.unwrap().to_vec()).unwrap());
            }
        }
    }
    lines
}

fn local(path: &std::path::Path) -> DataLocation {
    DataLocation::parse(path.to_str().unwrap(), &S3Config::default()).unwrap()
}

/// Random text: lines of random length (empty ones included), `\n` or `\r\n`
/// endings, stray `\r`s, multi-byte characters, and maybe no trailing newline.
fn text() -> impl Strategy<Value = String> {
    let line = prop_oneof![Just(String::new()), "[a-z é\r]{1,8}", "[a-z]{20,90}"];
    let ending = prop_oneof![3 => Just("\n"), 1 => Just("\r\n")];
    (proptest::collection::vec((line, ending), 0..40), "[a-z\r]{0,6}").prop_map(|(lines, last)| {
        lines.into_iter().map(|(l, e)| format!("{l}{e}")).collect::<String>() + &last
    })
}

/// (texts of 1–3 files, min partitions, max split bytes, chunk bytes)
fn case() -> impl Strategy<Value = (Vec<String>, usize, u64, u64)> {
    (proptest::collection::vec(text(), 1..4), 0usize..30, 1u64..300, 1u64..64)
}

fn expected(texts: &[String]) -> Vec<String> {
    texts.iter().flat_map(|t| t.lines().map(str::to_owned)).collect()
}

#[test]
fn local_splits_concatenate_to_str_lines() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut runner = TestRunner::new(Config { cases: 200, ..Config::default() });
    runner
        .run(&case(), |(texts, min_partitions, max_split, chunk)| {
            let dir = tempfile::tempdir().unwrap();
            for (i, text) in texts.iter().enumerate() {
                std::fs::write(dir.path().join(format!("f{i:02}.txt")), text).unwrap();
            }
            let location = local(dir.path());
            let got = runtime.block_on(async {
                let splits = plan_text_splits(&location, min_partitions, max_split).await.unwrap();
                let total: u64 = texts.iter().map(|t| t.len() as u64).sum();
                assert!(splits.len() as u64 >= (min_partitions as u64).min(total));
                assert!(splits.iter().all(|s| s.len() <= max_split));
                read_all(&location, splits, chunk).await
            });
            prop_assert_eq!(got, expected(&texts));
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_splits_concatenate_to_str_lines() {
    let server = S3Server::start().await.unwrap();
    let bucket = bucket("io_splits_prop");
    server.create_bucket(&bucket).await.unwrap();
    let config = server.config();
    let mut runner = TestRunner::new(Config { cases: 12, ..Config::default() });
    let mut cases = Vec::new();
    for _ in 0..12 {
        cases.push(case().new_tree(&mut runner).unwrap().current());
    }
    for (n, (texts, min_partitions, max_split, chunk)) in cases.into_iter().enumerate() {
        let location = DataLocation::parse(&format!("s3://{bucket}/case-{n}/"), &config).unwrap();
        for (i, text) in texts.iter().enumerate() {
            let path = location.path().child(format!("f{i:02}.txt"));
            location.store().put(&path, PutPayload::from(text.clone().into_bytes())).await.unwrap();
        }
        let splits = plan_text_splits(&location, min_partitions, max_split).await.unwrap();
        assert!(splits.iter().all(|s| s.len() <= max_split));
        let got = read_all(&location, splits, chunk).await;
        assert_eq!(got, expected(&texts), "case {n}: {texts:?}, {min_partitions}, {max_split}, {chunk}");
    }
}

/// A directory of several files plus hidden ones: only the visible files are read,
/// sorted by name; a missing input is NotFound naming it.
async fn directory_listing(location: &DataLocation) {
    let store = location.store();
    let put = |name: &str, text: &str| {
        let path = name.split('/').fold(location.path().clone(), |p, s| p.child(s));
        let store = Arc::clone(store);
        let bytes = text.as_bytes().to_vec();
        async move { store.put(&path, PutPayload::from(bytes)).await.unwrap() }
    };
    put("b.txt", "b1\nb2\n").await;
    put("a.txt", "a1\r\na2").await;
    put("sub/c.txt", "c1\n").await;
    put("_SUCCESS", "").await;
    put(".hidden", "hidden\n").await;
    put("_logs/x.txt", "log\n").await;
    put("sub/.c.txt.crc", "crc\n").await;
    let splits = plan_text_splits(location, 1, 1 << 20).await.unwrap();
    let names: Vec<String> = splits.iter().map(|s| s.path.filename().unwrap().to_owned()).collect();
    assert_eq!(names, ["a.txt", "b.txt", "c.txt"]);
    assert_eq!(read_all(location, splits, 3).await, ["a1", "a2", "b1", "b2", "c1"]);

    // One object named directly.
    let one = DataLocation::new(Arc::clone(store), location.path().child("b.txt"));
    assert_eq!(read_all(&one, plan_text_splits(&one, 4, 100).await.unwrap(), 2).await, ["b1", "b2"]);

    let missing = location.child("no-such-input");
    let err = plan_text_splits(&missing, 1, 100).await.unwrap_err();
    assert!(matches!(&err, IoError::NotFound { uri, .. } if uri.ends_with("no-such-input")), "{err:?}");
    assert!(err.to_string().contains("no-such-input"), "{err}");
}

#[tokio::test]
async fn local_directory_listing() {
    let dir = tempfile::tempdir().unwrap();
    directory_listing(&local(dir.path())).await;
    let uri = format!("file://{}", dir.path().join("a.txt").display());
    let file = DataLocation::parse(&uri, &S3Config::default()).unwrap();
    assert_eq!(plan_text_splits(&file, 1, 100).await.unwrap().len(), 1);

    // An existing empty directory is no error, just no splits.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(plan_text_splits(&local(empty.path()), 8, 100).await.unwrap(), []);
}

#[tokio::test]
async fn s3_directory_listing() {
    let server = S3Server::start().await.unwrap();
    let bucket = bucket("io_listing");
    server.create_bucket(&bucket).await.unwrap();
    let location = DataLocation::parse(&format!("s3://{bucket}/logs/day=1"), &server.config()).unwrap();
    directory_listing(&location).await;
    // A prefix that is a proper prefix of a name is not a directory.
    let partial = DataLocation::parse(&format!("s3://{bucket}/logs/day"), &server.config()).unwrap();
    assert!(plan_text_splits(&partial, 1, 100).await.unwrap_err().is_not_found());
    // A bucket that does not exist.
    let nowhere = DataLocation::parse("s3://weft-no-such-bucket/x", &server.config()).unwrap();
    let err = plan_text_splits(&nowhere, 1, 100).await.unwrap_err();
    assert!(err.to_string().contains("s3://weft-no-such-bucket/x"), "{err}");
}

#[test]
fn bad_scheme_and_malformed_uris_are_typed() {
    let config = S3Config::default();
    let err = DataLocation::parse("hdfs://namenode/data", &config).unwrap_err();
    assert!(matches!(&err, IoError::UnknownScheme { scheme, .. } if scheme == "hdfs"), "{err:?}");
    assert!(err.to_string().contains("s3://bucket/prefix"), "{err}");
    let err = DataLocation::parse("s3:///no-bucket", &config).unwrap_err();
    assert!(matches!(err, IoError::Malformed { .. }), "{err:?}");
}
