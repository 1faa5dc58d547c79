//! The text-output commit protocol on real backends: a local directory and a real
//! S3-compatible server (moto).

use futures::TryStreamExt;
use object_store::ObjectMeta;
use weft_core::artifact::S3Config;
use weft_core::codec::batch::BatchWriter;
use weft_core::io::{DataLocation, IoError, OutputCommitter, plan_text_splits};

use crate::io_splits::read_all;
use crate::support::{S3Server, bucket};

/// Object names below the location, relative to it, sorted.
async fn listing(location: &DataLocation) -> Vec<String> {
    let metas: Vec<ObjectMeta> = location.store().list(Some(location.path())).try_collect().await.unwrap();
    let mut names: Vec<String> = metas
        .iter()
        .map(|m| {
            m.location
                .prefix_match(location.path())
                .unwrap()
                .map(|p| p.as_ref().to_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    names.sort();
    names
}

async fn write(committer: &OutputCommitter, partition: u32, attempt: u32, lines: &[String]) {
    let mut writer = committer.task_writer(partition, attempt);
    let mut batch = BatchWriter::new();
    for line in lines {
        batch.push(line.as_bytes());
    }
    writer.write_batch(&batch.finish()).await.unwrap();
    let stats = writer.finish().await.unwrap();
    assert_eq!(stats.lines, lines.len() as u64);
}

fn lines(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| if i % 7 == 3 { String::new() } else { format!("{tag} line {i} ünïcode") }).collect()
}

/// Two attempts of one partition, only the committed one appears; racing commits have
/// one winner; the output reads back line by line; a second job refuses to overwrite.
async fn commit_protocol(location: DataLocation) {
    let committer = OutputCommitter::new(location.clone());
    committer.setup_job().await.unwrap();

    write(&committer, 0, 0, &lines("loser", 5)).await;
    write(&committer, 0, 1, &lines("winner", 5)).await;
    committer.commit_task(0, 1).await.unwrap();
    match committer.commit_task(0, 0).await {
        Err(IoError::CommitDenied { partition: 0, attempt: 0, winner, .. }) => assert_eq!(winner, "1"),
        other => panic!("expected CommitDenied, got {other:?}"),
    }
    committer.commit_task(0, 1).await.unwrap(); // the winner again: a no-op
    // The denied attempt settles: the winner's part stays, the loser's file goes.
    committer.settle_denied(0, 0).await.unwrap();
    let temporary = location.path().child("_temporary");
    let gone = location.store().head(&temporary.child("0").child("part-00000")).await;
    assert!(matches!(gone, Err(object_store::Error::NotFound { .. })), "{gone:?}");

    // Five attempts of partition 1 race to commit: exactly one wins.
    for attempt in 0..5 {
        write(&committer, 1, attempt, &lines(&format!("p1 attempt {attempt}"), 3000)).await;
    }
    let results = futures::future::join_all((0..5).map(|attempt| committer.commit_task(1, attempt))).await;
    let winners: Vec<u32> = (0..5).filter(|&a| results[a as usize].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results.iter().all(|r| r.is_ok() || matches!(r, Err(IoError::CommitDenied { .. }))),
        "{results:?}"
    );

    write(&committer, 2, 0, &[]).await; // an empty partition
    committer.commit_task(2, 0).await.unwrap();
    let err = committer.commit_task(3, 0).await.unwrap_err();
    assert!(matches!(err, IoError::AttemptNotFound { partition: 3, .. }), "{err:?}");
    // A winner that died between its claim and its copy: the denied attempt's
    // part takes its place.
    write(&committer, 3, 1, &lines("settled", 4)).await;
    let claim = temporary.child("claims").child("part-00003");
    location.store().put(&claim, "0".into()).await.unwrap();
    let denied = committer.commit_task(3, 1).await;
    assert!(matches!(denied, Err(IoError::CommitDenied { .. })), "{denied:?}");
    committer.settle_denied(3, 1).await.unwrap();

    // Nothing is published before commit_job.
    assert!(listing(&location).await.iter().all(|name| name.starts_with("_temporary/")));
    committer.commit_job(4).await.unwrap();
    assert_eq!(
        listing(&location).await,
        ["_SUCCESS", "part-00000", "part-00001", "part-00002", "part-00003"]
    );

    let splits = plan_text_splits(&location, 7, 1 << 20).await.unwrap();
    let mut expected = lines("winner", 5);
    expected.extend(lines(&format!("p1 attempt {}", winners[0]), 3000));
    expected.extend(lines("settled", 4));
    assert_eq!(read_all(&location, splits, 1000).await, expected);

    match OutputCommitter::new(location.clone()).setup_job().await {
        Err(err @ IoError::OutputExists { .. }) => {
            assert!(err.to_string().contains(&location.uri()), "{err}")
        }
        other => panic!("expected OutputExists, got {other:?}"),
    }
}

/// Abort leaves nothing, even after a commit_job that crashed half-way; a retried
/// commit_job finishes a half-done one.
async fn abort_and_retry(location: DataLocation) {
    let committer = OutputCommitter::new(location.clone());
    committer.setup_job().await.unwrap();
    for partition in 0..3 {
        write(&committer, partition, 0, &lines("x", 10)).await;
        committer.commit_task(partition, 0).await.unwrap();
    }
    write(&committer, 3, 0, &lines("uncommitted", 10)).await;
    committer.abort_job().await.unwrap();
    assert_eq!(listing(&location).await, Vec::<String>::new());

    // A retried job starts from an empty location.
    committer.setup_job().await.unwrap();
    for partition in 0..3 {
        write(&committer, partition, 0, &lines("y", 10)).await;
        committer.commit_task(partition, 0).await.unwrap();
    }
    // commit_job "crashes" after publishing one part: simulate by moving it by hand.
    let store = location.store();
    let committed = location.path().child("_temporary").child("committed").child("part-00001");
    store.rename(&committed, &location.path().child("part-00001")).await.unwrap();
    assert!(!listing(&location).await.contains(&"_SUCCESS".to_owned()));
    committer.abort_job().await.unwrap();
    assert_eq!(listing(&location).await, Vec::<String>::new());

    // Again, and this time the retried commit_job completes the half-done one.
    committer.setup_job().await.unwrap();
    for partition in 0..3 {
        write(&committer, partition, 0, &lines("z", 10)).await;
        committer.commit_task(partition, 0).await.unwrap();
    }
    store.rename(&committed, &location.path().child("part-00001")).await.unwrap();
    committer.commit_job(3).await.unwrap();
    assert_eq!(listing(&location).await, ["_SUCCESS", "part-00000", "part-00001", "part-00002"]);
    let splits = plan_text_splits(&location, 1, 1 << 20).await.unwrap();
    assert_eq!(
        read_all(&location, splits, 64).await,
        [lines("z", 10), lines("z", 10), lines("z", 10)].concat()
    );
    // Aborting a committed job keeps its output.
    committer.abort_job().await.unwrap();
    assert_eq!(listing(&location).await.len(), 4);
}

/// `commit_job` publishes all of the job's partitions or nothing: a partition no task
/// committed fails it by name and rolls the location back, even parts a crashed
/// earlier `commit_job` had published; claims beyond the job's partitions are not
/// published; the location is then free for a retry.
async fn incomplete_output_publishes_nothing(location: DataLocation) {
    let committer = OutputCommitter::new(location.clone());
    committer.setup_job().await.unwrap();
    for partition in [0, 2] {
        write(&committer, partition, 0, &lines("kept", 4)).await;
        committer.commit_task(partition, 0).await.unwrap();
    }
    write(&committer, 1, 0, &lines("written, never committed", 4)).await;
    // A crashed commit_job had already published partition 2.
    let committed = location.path().child("_temporary").child("committed").child("part-00002");
    location.store().rename(&committed, &location.path().child("part-00002")).await.unwrap();

    let err = committer.commit_job(4).await.unwrap_err();
    match &err {
        IoError::IncompleteOutput { uri, missing, partitions } => {
            assert_eq!((uri, missing.as_slice(), *partitions), (&location.uri(), &[1, 3][..], 4));
        }
        other => panic!("expected IncompleteOutput, got {other:?}"),
    }
    let message = err.to_string();
    let says = format!("output `{}` is incomplete: parts 1, 3 (of 4) were never committed", location.uri());
    assert!(message.starts_with(&says) && message.contains("nothing was published"), "{message}");
    assert_eq!(listing(&location).await, Vec::<String>::new(), "rolled back: nothing left at all");

    // The retry: every partition committed, plus a stray claim past the job's
    // partitions, which is not the job's and is not published.
    committer.setup_job().await.unwrap();
    for partition in 0..3 {
        write(&committer, partition, 0, &lines(&format!("retry {partition}"), 5)).await;
        committer.commit_task(partition, 0).await.unwrap();
    }
    write(&committer, 7, 0, &lines("stray", 5)).await;
    committer.commit_task(7, 0).await.unwrap();
    committer.commit_job(3).await.unwrap();
    assert_eq!(listing(&location).await, ["_SUCCESS", "part-00000", "part-00001", "part-00002"]);
    let splits = plan_text_splits(&location, 1, 1 << 20).await.unwrap();
    let want: Vec<String> = (0..3).flat_map(|p| lines(&format!("retry {p}"), 5)).collect();
    assert_eq!(read_all(&location, splits, 64).await, want);
}

/// The user's report: tasks committed their parts in another location than the one
/// the driver commits (a relative path resolved in the agents' own directories).
/// The driver's commit sees none of the parts: it fails naming every one, and
/// writes no `_SUCCESS` over an empty output.
async fn parts_committed_elsewhere_fail_the_job(driver_side: DataLocation, task_side: DataLocation) {
    let driver = OutputCommitter::new(driver_side.clone());
    let tasks = OutputCommitter::new(task_side.clone());
    driver.setup_job().await.unwrap();
    tasks.setup_job().await.unwrap();
    for partition in 0..4 {
        write(&tasks, partition, 0, &lines("elsewhere", 3)).await;
        tasks.commit_task(partition, 0).await.unwrap();
    }
    match driver.commit_job(4).await {
        Err(IoError::IncompleteOutput { missing, partitions: 4, .. }) => assert_eq!(missing, [0, 1, 2, 3]),
        other => panic!("expected IncompleteOutput, got {other:?}"),
    }
    assert_eq!(listing(&driver_side).await, Vec::<String>::new(), "no _SUCCESS without parts");
    // The tasks' side was never published either: only its _temporary/ is there.
    assert!(listing(&task_side).await.iter().all(|name| name.starts_with("_temporary/")));
}

fn local(path: &std::path::Path) -> DataLocation {
    DataLocation::parse(path.to_str().unwrap(), &S3Config::default()).unwrap()
}

#[tokio::test]
async fn local_commit_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    commit_protocol(local(&out)).await;
    assert!(!out.join("_temporary").exists());
    let text = std::fs::read_to_string(out.join("part-00000")).unwrap();
    assert_eq!(text, lines("winner", 5).iter().map(|l| format!("{l}\n")).collect::<String>());
    assert_eq!(std::fs::read(out.join("part-00002")).unwrap(), b"");
}

#[tokio::test]
async fn local_abort_and_retry() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    abort_and_retry(local(&out)).await;
    assert!(!out.join("_temporary").exists());
    // Refuses a location that is a file, too.
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "data\n").unwrap();
    let err = OutputCommitter::new(local(&file)).setup_job().await.unwrap_err();
    assert!(matches!(err, IoError::OutputExists { .. }), "{err:?}");
}

#[tokio::test]
async fn local_incomplete_output_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    incomplete_output_publishes_nothing(local(&out)).await;
    assert!(!out.join("_temporary").exists());

    let (master, agent) = (dir.path().join("master/out"), dir.path().join("agent/out"));
    parts_committed_elsewhere_fail_the_job(local(&master), local(&agent)).await;
    assert!(!master.exists(), "the rolled-back output leaves no directory behind");
    // A job with no partitions at all commits an empty output.
    let empty = dir.path().join("empty");
    let committer = OutputCommitter::new(local(&empty));
    committer.setup_job().await.unwrap();
    committer.commit_job(0).await.unwrap();
    assert_eq!(listing(&local(&empty)).await, ["_SUCCESS"]);
}

#[tokio::test]
async fn local_abort_removes_the_empty_output_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/out");
    let committer = OutputCommitter::new(local(&out));
    committer.setup_job().await.unwrap();
    write(&committer, 0, 0, &lines("a", 3)).await;
    committer.abort_job().await.unwrap();
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_commit_protocol() {
    let server = S3Server::start().await.unwrap();
    let bucket = bucket("io_commit");
    server.create_bucket(&bucket).await.unwrap();
    let config = server.config();
    commit_protocol(DataLocation::parse(&format!("s3://{bucket}/out/run-1"), &config).unwrap()).await;
    abort_and_retry(DataLocation::parse(&format!("s3://{bucket}/out/run-2/"), &config).unwrap()).await;
    // The first job's output is untouched by the second's.
    let first = DataLocation::parse(&format!("s3://{bucket}/out/run-1"), &config).unwrap();
    assert_eq!(listing(&first).await.len(), 5);

    let at = |path: &str| DataLocation::parse(&format!("s3://{bucket}/{path}"), &config).unwrap();
    incomplete_output_publishes_nothing(at("out/run-3")).await;
    parts_committed_elsewhere_fail_the_job(at("out/run-4"), at("elsewhere/run-4")).await;
}

/// A part past the single-PUT threshold goes up as a multipart upload and reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_large_part_is_uploaded_in_parts() {
    let server = S3Server::start().await.unwrap();
    let bucket = bucket("io_commit_large");
    server.create_bucket(&bucket).await.unwrap();
    let location = DataLocation::parse(&format!("s3://{bucket}/big"), &server.config()).unwrap();
    let committer = OutputCommitter::new(location.clone());
    committer.setup_job().await.unwrap();
    let big: Vec<String> = (0..32_000).map(|i| format!("{i:08} {}", "y".repeat(300))).collect();
    assert!(big.iter().map(|l| l.len() + 1).sum::<usize>() > weft_core::io::UPLOAD_CHUNK_BYTES);
    write(&committer, 0, 0, &big).await;
    committer.commit_task(0, 0).await.unwrap();
    committer.commit_job(1).await.unwrap();
    let splits = plan_text_splits(&location, 3, 1 << 30).await.unwrap();
    assert!((3..=4).contains(&splits.len()), "{splits:?}");
    assert_eq!(read_all(&location, splits, 1 << 20).await, big);
}
