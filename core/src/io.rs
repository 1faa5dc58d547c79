//! Datasets in object stores: text input splits and atomic text output.
//!
//! Jobs read their input from, and write their output to, a location named by URI:
//! `s3://bucket/prefix`, `file:///abs/path` or a plain path. Everything goes through
//! [`object_store`], so S3, the local filesystem and in-memory test stores behave alike.
//!
//! # Core concepts
//!
//! - [`DataLocation`]: a URI resolved to an `Arc<dyn ObjectStore>` and a path in it
//!   (S3 clients are built from the same [`S3Config`](crate::artifact::S3Config) as
//!   the artifact store's).
//! - [`plan_text_splits`]: lists an input (one object, or every visible object below a
//!   prefix) and cuts it into [`TextSplit`]s, the byte ranges that tasks read. Splits
//!   are serializable: they travel to agents in task specs.
//! - [`LineReader`]: reads the lines of one split with ranged GETs and hands them out
//!   as [batches](weft_codec::batch), one entry per line, checked to be UTF-8 or
//!   not ([`LineFormat`]). A `.gz` or `.zst` object ([`Compression`]) is one split,
//!   decoded as a stream with bounded memory.
//! - [`OutputCommitter`] and [`TextPartWriter`]: write one part file per partition
//!   and publish them all at once, or not at all.
//! - [`IoError`]: one variant per cause, each message naming the fix.
//!
//! # The split rule
//!
//! A *line* starts at byte 0 of a file or right after a `\n`, and runs up to and
//! including the next `\n` (or to the end of the file, so a file without a trailing
//! newline still yields its last line; a file ending in `\n` has no empty line after
//! it). The line's text is its bytes without the `\n` and without a `\r` right before
//! it; a lone `\r` elsewhere is kept. This is exactly [`str::lines`].
//!
//! **Every line belongs to the split that holds its first byte.** For the split
//! `[start, end)` of a file, the reader therefore
//!
//! 1. finds its first line: at byte 0 when `start == 0`; otherwise right after the
//!    first `\n` at or after byte `start - 1` (a `\n` at `start - 1` means a line starts
//!    exactly at `start`; if there is none, the split has no lines);
//! 2. reads lines while the next line's first byte is before `end` and before the end
//!    of the file, reading the last one to its end even far past `end` (further ranged
//!    reads of growing size, up to the chunk size).
//!
//! Consecutive splits of a file thus yield every line exactly once, in order,
//! whatever the cut points (this is Hadoop's `LineRecordReader`, stated precisely).
//!
//! # The commit protocol
//!
//! Output is written like Hadoop's `FileOutputCommitter` (algorithm v1), which is what
//! Spark's `saveAsTextFile` uses:
//!
//! | step | who | what happens in the store |
//! |---|---|---|
//! | [`setup_job`](OutputCommitter::setup_job) | driver | refuses ([`IoError::OutputExists`]) if anything is at the location |
//! | [`task_writer`](OutputCommitter::task_writer) + [`finish`](TextPartWriter::finish) | task attempt | writes `_temporary/<attempt>/part-<partition:05>` |
//! | [`commit_task`](OutputCommitter::commit_task) | task attempt | creates `_temporary/claims/part-N` if absent (conditional PUT: one attempt wins), copies its file to `_temporary/committed/part-N` |
//! | [`commit_job`](OutputCommitter::commit_job)`(n)` | driver | checks that each of the `n` partitions has a committed part (else rolls back: [`IoError::IncompleteOutput`]), moves each to `<location>/part-N`, writes `_SUCCESS`, deletes `_temporary/` |
//! | [`abort_job`](OutputCommitter::abort_job) | driver | deletes published parts (unless `_SUCCESS` exists) and `_temporary/` |
//!
//! A second commit of a partition by another attempt is [`IoError::CommitDenied`]:
//! the partition is done. The denied attempt calls
//! [`settle_denied`](OutputCommitter::settle_denied), which deletes its file (and,
//! if the winner died between its claim and its copy, puts its own part in the
//! winner's place), and finishes: an attempt its master gave up for lost may
//! commit first, and the task is then done rather than failed. The winner
//! committing again is a no-op. The driver calls `commit_job` only after every
//! partition's `commit_task` succeeded, and commits no task after it. It tells
//! `commit_job` how many partitions the job has, so output that tasks committed
//! somewhere the driver cannot see (a local path on another machine) fails the job
//! instead of being published without its parts.
//!
//! ## What "atomic" means
//!
//! Neither backend can swap a whole directory in one step, so the guarantee is stated
//! per file plus the `_SUCCESS` marker:
//!
//! - **Every file appears whole.** An S3 object becomes visible only when its PUT,
//!   multipart upload or copy completes; a local file is written to a staging file and
//!   renamed (part files are moved into place by `rename(2)`, atomic within one
//!   filesystem).
//! - **Only committed attempts reach the final location**, and only in `commit_job`;
//!   before it, everything lives under `_temporary/`, which listings skip.
//! - **`_SUCCESS` is written after every part is in place**, and only when every
//!   partition of the job has one: `commit_job` checks the committed parts against the
//!   job's partition count before it moves anything. A reader that sees it sees the
//!   complete output. During `commit_job` (or after it crashed) a listing may show
//!   some parts without `_SUCCESS`: that output is incomplete. Calling `commit_job`
//!   again finishes it; `abort_job` removes the parts it published, so a failed job
//!   leaves nothing at the location, and a retried job starts from an empty one.
//! - **On S3** there is no rename: `commit_task` and `commit_job` copy server-side (a
//!   single `CopyObject`, so one part file may be at most 5 GiB) and delete the source.
//!   The claim relies on S3's conditional writes (`If-None-Match: *`), which AWS and
//!   moto support; a server without them fails the commit with a storage error rather
//!   than risking two winners.
//! - **On the local filesystem** the claim is an exclusive create (hard link), copies
//!   are hard links and moves are renames: nothing is copied byte by byte.
//!
//! # Example
//!
//! ```
//! use weft_core::artifact::S3Config;
//! use weft_core::io::{plan_text_splits, DataLocation, LineReader, OutputCommitter};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("in.txt"), "to be\r\nor not\n\nto be")?;
//! let out = dir.path().join("out");
//!
//! // Read: plan at least 3 splits (20 bytes: 4 splits of 5), then read their lines.
//! let input = DataLocation::parse(&dir.path().join("in.txt").display().to_string(), &S3Config::default())?;
//! let splits = plan_text_splits(&input, 3, 128 << 20).await?;
//! assert_eq!(splits.len(), 4);
//! let mut lines = Vec::new();
//! for split in splits {
//!     let mut reader = LineReader::new(&input, split);
//!     while let Some(batch) = reader.next_batch().await? {
//!         for line in weft_core::codec::batch::entries(&batch) {
//!             lines.push(String::from_utf8(line?.to_vec())?);
//!         }
//!     }
//! }
//! assert_eq!(lines, ["to be", "or not", "", "to be"]);
//!
//! // Write: one partition, two attempts; only the committed one is published.
//! let output = DataLocation::parse(&out.display().to_string(), &S3Config::default())?;
//! let committer = OutputCommitter::new(output);
//! committer.setup_job().await?;
//! for attempt in [0, 1] {
//!     let mut writer = committer.task_writer(0, attempt);
//!     writer.write_line(format!("attempt {attempt}").as_bytes()).await?;
//!     writer.finish().await?;
//! }
//! committer.commit_task(0, 1).await?;
//! assert!(committer.commit_task(0, 0).await.is_err()); // denied: attempt 1 won
//! committer.commit_job(1).await?; // the job's one partition
//! assert_eq!(std::fs::read_to_string(out.join("part-00000"))?, "attempt 1\n");
//! assert!(out.join("_SUCCESS").exists() && !out.join("_temporary").exists());
//! assert!(committer.setup_job().await.is_err()); // never overwrites
//! # Ok(())
//! # }
//! ```

mod committer;
mod decode;
mod error;
mod lines;
mod location;
mod splits;
mod writer;

pub use committer::{OutputCommitter, SUCCESS_MARKER, TEMPORARY_DIR, part_name};
pub use decode::{Compression, DEFAULT_MAX_LINE_BYTES};
pub use error::IoError;
pub use lines::{DEFAULT_BATCH_BYTES, DEFAULT_CHUNK_BYTES, LineFormat, LineReader};
pub use location::DataLocation;
pub use splits::{TextSplit, plan_text_splits, plan_text_splits_in_waves};
pub use writer::{PartStats, TextPartWriter, UPLOAD_CHUNK_BYTES};
