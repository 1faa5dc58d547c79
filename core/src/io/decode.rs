//! Compressed text input: [`Compression`] by file extension, and the lines of a
//! compressed object decoded as a stream on a blocking thread.
//!
//! A compressed object cannot be cut into byte ranges (a decoder must start at
//! the beginning), so it is one split, as Hadoop does. Its lines are read as a
//! stream, never as a whole: the object is read in chunks (a local file
//! straight from disk, a remote object from the store's byte stream), decoded
//! through a bounded buffer, and cut into lines of at most
//! [`DEFAULT_MAX_LINE_BYTES`]. What one reader holds is therefore bounded by
//! that line limit, a batch, and the decoder's window (32 KiB for gzip; zstd's
//! default limit of 128 MiB), however far the text inflates: a decompression
//! bomb costs time (bounded by the task's deadline), not memory.
//!
//! Decoding is CPU work, so it runs on tokio's blocking pool; batches come back
//! through a channel of capacity 1, so decoding runs at most one batch ahead of
//! the consumer.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::{GetOptions, GetResultPayload, ObjectStore};
use tokio::sync::mpsc;
use weft_codec::batch::{BatchWriter, PREFIX};

use super::error::IoError;
use super::lines::LineFormat;
use super::splits::TextSplit;

/// The longest line of decompressed text a reader accepts: 64 MiB. A longer
/// one is [`IoError::LineTooLong`] (an endless line of a decompression bomb
/// would otherwise be held whole).
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 << 20;

/// Size of the buffer decoded text is read through.
const DECODED_BUFFER: usize = 256 << 10;

/// How a text object is stored, told by its name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// Plain text: splittable into byte ranges.
    None,
    /// gzip (`.gz`), one or more members back to back (as `cat a.gz b.gz`).
    Gzip,
    /// Zstandard (`.zst`), one or more frames.
    Zstd,
}

impl Compression {
    /// The compression of an object named `name`: `.gz` is gzip, `.zst` is
    /// Zstandard (either case), anything else plain text.
    pub fn of(name: &str) -> Self {
        let ext = name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
        match ext.as_deref() {
            Some("gz") => Self::Gzip,
            Some("zst") => Self::Zstd,
            _ => Self::None,
        }
    }

    /// Whether the object can be cut into byte ranges read independently.
    pub fn is_splittable(self) -> bool {
        self == Self::None
    }

    /// The command line tool that checks such a file (`gzip -t`, `zstd -t`).
    fn tool(self) -> &'static str {
        match self {
            Self::None => "cat",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "plain text",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        })
    }
}

/// What the decoding thread hands back: a batch, and the counters after it.
#[derive(Debug)]
pub(super) struct Decoded {
    pub batch: Vec<u8>,
    pub lines: u64,
}

/// How to decode one compressed split.
pub(super) struct DecodeJob {
    pub store: Arc<dyn ObjectStore>,
    pub uri: String,
    pub split: TextSplit,
    pub compression: Compression,
    pub format: LineFormat,
    pub batch_bytes: usize,
    pub max_line_bytes: usize,
    /// Compressed bytes read so far, shared with the reader for its stats.
    pub bytes_read: Arc<AtomicU64>,
}

impl DecodeJob {
    /// Opens the object and decodes it on a blocking thread; the receiver
    /// yields its batches, then ends (after an error, if one stopped it).
    pub async fn start(self) -> Result<mpsc::Receiver<Result<Decoded, IoError>>, IoError> {
        let options = GetOptions { range: Some((0..self.split.file_len).into()), ..GetOptions::default() };
        let got = self
            .store
            .get_opts(&self.split.path, options)
            .await
            .map_err(|source| IoError::from_store(self.uri.clone(), source))?;
        let raw = match got.payload {
            GetResultPayload::File(file, _) => Raw::File(file.take(self.split.file_len)),
            GetResultPayload::Stream(stream) => {
                Raw::Stream { stream, chunk: Bytes::new(), handle: tokio::runtime::Handle::current() }
            }
        };
        let (tx, rx) = mpsc::channel(1);
        let source = RawRead { raw, read: Arc::clone(&self.bytes_read) };
        tokio::task::spawn_blocking(move || {
            if let Err(e) = self.run(source, &tx) {
                // The reader may be gone already; then no one is waiting.
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(rx)
    }

    /// Decodes `source` into batches sent to `tx`, until its end or until the
    /// receiver is gone.
    fn run(&self, source: RawRead, tx: &mpsc::Sender<Result<Decoded, IoError>>) -> Result<(), IoError> {
        let mut text: Box<dyn BufRead> = match self.compression {
            Compression::None => Box::new(BufReader::with_capacity(DECODED_BUFFER, source)),
            Compression::Gzip => {
                Box::new(BufReader::with_capacity(DECODED_BUFFER, flate2::read::MultiGzDecoder::new(source)))
            }
            Compression::Zstd => Box::new(BufReader::with_capacity(
                DECODED_BUFFER,
                zstd::stream::read::Decoder::new(source).map_err(|e| self.read_error(e))?,
            )),
        };
        // A line with "\r\n" may take two bytes more than its text; one more
        // byte shows that the text is too long.
        let limit = self.max_line_bytes as u64 + 3;
        let (mut line, mut offset, mut lines) = (Vec::new(), 0u64, 0u64);
        let mut batch = BatchWriter::new();
        loop {
            line.clear();
            let n = (&mut text).take(limit).read_until(b'\n', &mut line).map_err(|e| self.read_error(e))?;
            if n == 0 {
                break;
            }
            let mut bytes = &line[..];
            if let Some(rest) = bytes.strip_suffix(b"\n") {
                bytes = rest.strip_suffix(b"\r").unwrap_or(rest);
            }
            if bytes.len() > self.max_line_bytes {
                return Err(IoError::LineTooLong {
                    uri: self.uri.clone(),
                    offset,
                    limit: self.max_line_bytes,
                });
            }
            self.format.check(bytes, &self.uri, offset, true)?;
            if !batch.is_empty() && batch.byte_len() + PREFIX + bytes.len() > self.batch_bytes {
                if tx.blocking_send(Ok(Decoded { batch: batch.take(), lines })).is_err() {
                    return Ok(());
                }
                lines = 0;
            }
            batch.push(bytes);
            lines += 1;
            offset += n as u64;
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(Ok(Decoded { batch: batch.take(), lines }));
        }
        Ok(())
    }

    /// A failed read: the store's failure, or text that does not decode.
    fn read_error(&self, e: std::io::Error) -> IoError {
        if e.get_ref().is_some_and(|inner| inner.is::<SourceError>()) {
            match e.into_inner().map(|inner| inner.downcast::<SourceError>()) {
                Some(Ok(source)) => {
                    return match *source {
                        SourceError::Store(source) => IoError::from_store(self.uri.clone(), source),
                        SourceError::Local(source) => IoError::Local { uri: self.uri.clone(), source },
                    };
                }
                _ => unreachable!("checked to be a SourceError"),
            }
        }
        IoError::Corrupt {
            uri: self.uri.clone(),
            compression: self.compression,
            tool: self.compression.tool(),
            read: self.bytes_read.load(Ordering::Relaxed),
            source: e,
        }
    }
}

/// The stored bytes of the object: a local file read in place, or the store's
/// stream, pulled from the blocking thread through the runtime's handle.
enum Raw {
    File(std::io::Take<std::fs::File>),
    Stream {
        stream: BoxStream<'static, object_store::Result<Bytes>>,
        chunk: Bytes,
        handle: tokio::runtime::Handle,
    },
}

/// A failure of the stored bytes themselves, kept apart from decoding errors.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error(transparent)]
    Store(object_store::Error),
    #[error(transparent)]
    Local(std::io::Error),
}

/// The stored bytes as [`Read`], counting them.
struct RawRead {
    raw: Raw,
    read: Arc<AtomicU64>,
}

impl Read for RawRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match &mut self.raw {
            Raw::File(file) => file.read(buf).map_err(|e| std::io::Error::other(SourceError::Local(e)))?,
            Raw::Stream { stream, chunk, handle } => {
                while chunk.is_empty() {
                    match handle.block_on(stream.next()) {
                        Some(Ok(next)) => *chunk = next,
                        Some(Err(e)) => return Err(std::io::Error::other(SourceError::Store(e))),
                        None => return Ok(0),
                    }
                }
                let n = buf.len().min(chunk.len());
                buf[..n].copy_from_slice(&chunk.split_to(n));
                n
            }
        };
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::io::Write;

    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, PutPayload};

    use super::*;
    use crate::io::{DataLocation, LineReader, plan_text_splits};

    #[test]
    fn compression_is_told_by_extension() {
        assert_eq!(Compression::of("a/b/part-0.gz"), Compression::Gzip);
        assert_eq!(Compression::of("LOG.GZ"), Compression::Gzip);
        assert_eq!(Compression::of("x.txt.zst"), Compression::Zstd);
        assert_eq!(Compression::of("x.txt"), Compression::None);
        assert_eq!(Compression::of("gz"), Compression::None);
        assert_eq!(Compression::of("x.tgz"), Compression::None);
        assert!(Compression::None.is_splittable() && !Compression::Gzip.is_splittable());
    }

    /// Lines of every shape: empty, CRLF, a lone CR, non-ASCII text, blanks,
    /// and no newline at the end.
    fn text() -> String {
        let mut text = String::new();
        for i in 0..2000 {
            match i % 7 {
                0 => text.push('\n'),
                1 => text.push_str("déjà vu, Ünïcödé\r\n"),
                2 => text.push_str(&format!("line {i}\r in the middle\n")),
                _ => text.push_str(&format!("{}\n", "the quick brown fox ".repeat(i % 13))),
            }
        }
        text.push_str("last line without a newline");
        text
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn zstd(bytes: &[u8]) -> Vec<u8> {
        zstd::encode_all(bytes, 3).unwrap()
    }

    /// `name` holding `stored`, in a local directory (read as a file) or in
    /// memory (read as a stream); keep the directory while reading.
    async fn put(local: bool, name: &str, stored: &[u8]) -> (DataLocation, Option<tempfile::TempDir>) {
        if local {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(name), stored).unwrap();
            let path = dir.path().join(name).display().to_string();
            (DataLocation::parse(&path, &crate::artifact::S3Config::default()).unwrap(), Some(dir))
        } else {
            let store = Arc::new(InMemory::new());
            store.put(&Path::from(name), PutPayload::from(stored.to_vec())).await.unwrap();
            (DataLocation::new(store, Path::from(name)), None)
        }
    }

    /// Every line of the input at `location`, planned into splits for 4
    /// partitions and read in batches of about `batch` bytes.
    async fn read(
        location: &DataLocation,
        format: LineFormat,
        batch: usize,
    ) -> Result<Vec<Vec<u8>>, IoError> {
        let mut lines = Vec::new();
        for split in plan_text_splits(location, 4, 1 << 20).await? {
            let mut reader = LineReader::new(location, split).with_format(format).with_batch_bytes(batch);
            let before = lines.len();
            while let Some(b) = reader.next_batch().await? {
                assert!(b.len() <= batch || weft_codec::batch::count(&b).unwrap() == 1);
                lines.extend(weft_codec::batch::entries(&b).map(|e| e.unwrap().to_vec()));
            }
            assert_eq!(reader.lines_read(), (lines.len() - before) as u64);
            assert!(reader.next_batch().await?.is_none(), "an exhausted reader stays exhausted");
        }
        Ok(lines)
    }

    fn reference(text: &str) -> Vec<Vec<u8>> {
        text.lines().map(|l| l.as_bytes().to_vec()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compressed_lines_equal_str_lines_of_the_text() {
        let text = text();
        let (half_a, half_b) = text.as_bytes().split_at(text.len() / 2);
        let cases = [
            ("t.gz", gzip(text.as_bytes())),
            // Members and frames back to back, as `cat a.gz b.gz` makes them.
            ("t.gz", [gzip(half_a), gzip(half_b)].concat()),
            ("t.ZST", [zstd(half_a), zstd(half_b)].concat()),
        ];
        for local in [true, false] {
            for (name, stored) in &cases {
                let (location, _dir) = put(local, name, stored).await;
                let splits = plan_text_splits(&location, 4, 1 << 20).await.unwrap();
                assert_eq!(splits.len(), 1, "a compressed file is one split");
                for batch in [1, 100, 1 << 20] {
                    let got = read(&location, LineFormat::Utf8, batch).await.unwrap();
                    assert_eq!(got, reference(&text), "{name}, local {local}, batch {batch}");
                }
                let mut reader = LineReader::new(&location, splits[0].clone());
                while reader.next_batch().await.unwrap().is_some() {}
                assert_eq!(reader.bytes_read(), stored.len() as u64, "counts compressed bytes");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn text_that_is_not_utf8_is_an_error_naming_the_file_and_offset() {
        let raw = b"fine\r\nLatin-1: caf\xe9\n\xff\xfe\nend".to_vec();
        let lines: Vec<Vec<u8>> =
            vec![b"fine".to_vec(), b"Latin-1: caf\xe9".to_vec(), b"\xff\xfe".to_vec(), b"end".to_vec()];
        for (name, stored, decompressed) in
            [("in.txt", raw.clone(), false), ("in.txt.gz", gzip(&raw), true), ("in.zst", zstd(&raw), true)]
        {
            for local in [true, false] {
                let (location, _dir) = put(local, name, &stored).await;
                let err = read(&location, LineFormat::Utf8, 4).await.unwrap_err();
                assert!(
                    matches!(&err, IoError::NotUtf8 { uri, offset: 18, decompressed: d } if uri.ends_with(name) && *d == decompressed),
                    "{err:?}"
                );
                let message = err.to_string();
                assert!(message.contains(name) && message.contains("offset 18"), "{message}");
                assert!(message.contains("text_file_bytes"), "names the way out: {message}");
                assert_eq!(read(&location, LineFormat::Bytes, 4).await.unwrap(), lines, "{name}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn truncated_or_corrupt_input_is_a_typed_error() {
        let text = text();
        let gz = gzip(text.as_bytes());
        let zst = zstd(text.as_bytes());
        let mut flipped = gz.clone();
        flipped[gz.len() / 2] ^= 0xff;
        let cases = [
            ("cut.gz", gz[..gz.len() / 2].to_vec()),
            ("cut-trailer.gz", gz[..gz.len() - 4].to_vec()),
            ("flipped.gz", flipped),
            ("not-gzip.gz", text.as_bytes().to_vec()),
            ("cut.zst", zst[..zst.len() / 2].to_vec()),
            ("not-zstd.zst", b"plain words\n".to_vec()),
        ];
        for local in [true, false] {
            for (name, stored) in &cases {
                let (location, _dir) = put(local, name, stored).await;
                let err = read(&location, LineFormat::Bytes, 1 << 20).await.unwrap_err();
                assert!(
                    matches!(&err, IoError::Corrupt { uri, .. } if uri.ends_with(name)),
                    "{name}: {err:?}"
                );
                let message = err.to_string();
                assert!(message.contains("truncated or corrupt"), "{message}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_decompression_bomb_is_streamed_not_held() {
        // 64 MiB of zeros in about 64 KiB: one endless line is refused at
        // the line limit, long before the end of the text.
        let zeros = vec![0u8; 64 << 20];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 1 << 20);
        let (location, _dir) = put(false, "bomb.gz", &bomb).await;
        let split = plan_text_splits(&location, 1, 1 << 20).await.unwrap().remove(0);
        let mut reader = LineReader::new(&location, split.clone())
            .with_format(LineFormat::Bytes)
            .with_max_line_bytes(1 << 20);
        let err = reader.next_batch().await.unwrap_err();
        assert!(matches!(err, IoError::LineTooLong { offset: 0, limit: 1048576, .. }), "{err:?}");
        assert!(reader.bytes_read() < bomb.len() as u64, "stopped early: {}", reader.bytes_read());

        // Short lines that inflate 1000-fold come out batch by batch.
        let lines = "0".repeat(1023) + "\n";
        let bomb = gzip(lines.repeat(32 << 10).as_bytes());
        let (location, _dir) = put(false, "lines.gz", &bomb).await;
        let split = plan_text_splits(&location, 1, 1 << 20).await.unwrap().remove(0);
        let mut reader = LineReader::new(&location, split).with_batch_bytes(1 << 20);
        let (mut batches, mut largest) = (0, 0);
        while let Some(b) = reader.next_batch().await.unwrap() {
            batches += 1;
            largest = largest.max(b.len());
        }
        assert_eq!(reader.lines_read(), 32 << 10);
        assert!(batches >= 32 && largest <= 1 << 20, "{batches} batches, the largest {largest} bytes");
    }
}
