//! [`LineReader`]: the lines of one [`TextSplit`], as framed batches.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use weft_codec::batch::{BatchWriter, PREFIX};

use super::decode::{Compression, DEFAULT_MAX_LINE_BYTES, DecodeJob, Decoded};
use super::error::IoError;
use super::location::DataLocation;
use super::splits::TextSplit;

/// Default size of one ranged read: 8 MiB.
pub const DEFAULT_CHUNK_BYTES: u64 = 8 << 20;

/// Default target size of one batch of lines: 1 MiB.
pub const DEFAULT_BATCH_BYTES: usize = 1 << 20;

/// First read past the end of the split, to finish its last line; later reads double
/// up to the chunk size. Lines are usually short, a full chunk would be waste.
const TAIL_READ: u64 = 64 << 10;

/// What a text source's lines are: text, checked to be UTF-8 as they are read,
/// or raw bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineFormat {
    /// UTF-8 text (`text_file`): a line that is not is [`IoError::NotUtf8`],
    /// naming the file and the byte offset.
    #[default]
    Utf8,
    /// Any bytes (`text_file_bytes`): lines are cut at `\n` and handed out
    /// as they are.
    Bytes,
}

impl LineFormat {
    /// Checks the line `bytes`, whose first byte is at `offset` of `uri` (of
    /// its decompressed text when `decompressed`).
    pub(super) fn check(
        self,
        bytes: &[u8],
        uri: &str,
        offset: u64,
        decompressed: bool,
    ) -> Result<(), IoError> {
        match self {
            Self::Utf8 => std::str::from_utf8(bytes).map(drop).map_err(|e| IoError::NotUtf8 {
                uri: uri.to_owned(),
                offset: offset + e.valid_up_to() as u64,
                decompressed,
            }),
            Self::Bytes => Ok(()),
        }
    }
}

/// Reads the lines of one split (see the [split rule](super#the-split-rule)) and
/// hands them out as batches: one entry per line, its raw bytes without `\n` or
/// `\r\n`, framed as in [`weft_codec::batch`].
///
/// A plain object is read with ranged reads. A compressed one (`.gz`, `.zst`:
/// [`Compression::of`]) is one split, decoded as a stream on a blocking thread
/// (see [`Compression`]). Lines are checked to be UTF-8 unless the reader is
/// told they are bytes ([`with_format`](Self::with_format)).
///
/// ```no_run
/// # async fn run(location: weft_core::io::DataLocation, split: weft_core::io::TextSplit) -> Result<(), weft_core::io::IoError> {
/// use weft_core::io::LineReader;
///
/// let mut reader = LineReader::new(&location, split).with_batch_bytes(64 << 10);
/// while let Some(batch) = reader.next_batch().await? {
///     for line in weft_core::codec::batch::entries(&batch) {
///         let _line: &[u8] = line.expect("framed by the reader");
///     }
/// }
/// println!("{} lines, {} bytes read", reader.lines_read(), reader.bytes_read());
/// # Ok(()) }
/// ```
pub struct LineReader {
    store: Arc<dyn ObjectStore>,
    uri: String,
    split: TextSplit,
    chunk_bytes: u64,
    batch_bytes: usize,
    /// Bytes of the object from `buf_pos` on.
    buf: Vec<u8>,
    buf_pos: u64,
    /// First byte of the next line, once the start of the split has been found.
    pos: Option<u64>,
    /// Size of the next read past the end of the split.
    tail_read: u64,
    batch: BatchWriter,
    bytes_read: u64,
    lines_read: u64,
    format: LineFormat,
    compression: Compression,
    max_line_bytes: usize,
    /// A compressed split's batches, once its decoding thread started.
    decoded: Option<mpsc::Receiver<Result<Decoded, IoError>>>,
    /// Compressed bytes the decoding thread has read.
    decoded_bytes: Arc<AtomicU64>,
}

impl fmt::Debug for LineReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineReader")
            .field("uri", &self.uri)
            .field("split", &(self.split.start..self.split.end))
            .field("pos", &self.pos)
            .field("bytes_read", &self.bytes_read)
            .finish()
    }
}

impl LineReader {
    /// A reader of `split`, an object of `location`'s store. Nothing is read yet.
    pub fn new(location: &DataLocation, split: TextSplit) -> Self {
        let uri = location.uri_of(&split.path);
        let compression = Compression::of(split.path.as_ref());
        let (buf_pos, pos) = if split.start == 0 { (0, Some(0)) } else { (split.start - 1, None) };
        Self {
            store: Arc::clone(location.store()),
            uri,
            split,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            batch_bytes: DEFAULT_BATCH_BYTES,
            buf: Vec::new(),
            buf_pos,
            pos,
            tail_read: TAIL_READ,
            batch: BatchWriter::new(),
            bytes_read: 0,
            lines_read: 0,
            format: LineFormat::Utf8,
            compression,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            decoded: None,
            decoded_bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sets what the lines are (default [`LineFormat::Utf8`]: checked).
    pub fn with_format(mut self, format: LineFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets the longest line of decompressed text accepted (default
    /// [`DEFAULT_MAX_LINE_BYTES`]). Plain objects have no such limit: a line
    /// is never longer than its file.
    pub fn with_max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }

    /// Sets the size of one ranged read (default [`DEFAULT_CHUNK_BYTES`]; at least 1).
    pub fn with_chunk_bytes(mut self, bytes: u64) -> Self {
        self.chunk_bytes = bytes.max(1);
        self.tail_read = self.tail_read.min(self.chunk_bytes);
        self
    }

    /// Sets the target size of a batch, framing included (default
    /// [`DEFAULT_BATCH_BYTES`]). A batch holds at least one line, so a longer line
    /// makes a larger batch.
    pub fn with_batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes;
        self
    }

    /// Bytes fetched from the store so far (compressed bytes, for compressed input).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read + self.decoded_bytes.load(Ordering::Relaxed)
    }

    /// Lines handed out or pending in the current batch so far.
    pub fn lines_read(&self) -> u64 {
        self.lines_read
    }

    /// The next batch of lines, or `None` when the split is exhausted.
    ///
    /// Cancel safe: dropping the future loses nothing, the next call resumes.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<u8>>, IoError> {
        if !self.compression.is_splittable() {
            return self.next_decoded_batch().await;
        }
        let pos = match self.pos {
            Some(pos) => pos,
            None => self.find_first_line().await?,
        };
        let mut pos = pos;
        let file_len = self.split.file_len;
        while pos < self.split.end && pos < file_len {
            let from = (pos - self.buf_pos) as usize;
            let (line, next) = match memchr::memchr(b'\n', &self.buf[from..]) {
                Some(i) => {
                    let line = &self.buf[from..from + i];
                    (line.strip_suffix(b"\r").unwrap_or(line), pos + i as u64 + 1)
                }
                None if self.buf_end() < file_len => {
                    self.fetch().await?;
                    continue;
                }
                None => (&self.buf[from..], file_len),
            };
            if !self.batch.is_empty() && self.batch.byte_len() + PREFIX + line.len() > self.batch_bytes {
                break;
            }
            self.format.check(line, &self.uri, pos, false)?;
            self.batch.push(line);
            self.lines_read += 1;
            pos = next;
            self.pos = Some(pos);
        }
        Ok(if self.batch.is_empty() { None } else { Some(self.batch.take()) })
    }

    /// The next batch of a compressed split, decoded from its start (the split
    /// covers the whole object) on a blocking thread.
    async fn next_decoded_batch(&mut self) -> Result<Option<Vec<u8>>, IoError> {
        // The split at byte 0 reads the whole object; any other has no lines.
        if self.split.start > 0 || self.pos.is_some_and(|pos| pos >= self.split.end) {
            return Ok(None);
        }
        let rx = match &mut self.decoded {
            Some(rx) => rx,
            None => {
                let job = DecodeJob {
                    store: Arc::clone(&self.store),
                    uri: self.uri.clone(),
                    split: self.split.clone(),
                    compression: self.compression,
                    format: self.format,
                    batch_bytes: self.batch_bytes,
                    max_line_bytes: self.max_line_bytes,
                    bytes_read: Arc::clone(&self.decoded_bytes),
                };
                self.decoded.insert(job.start().await?)
            }
        };
        match rx.recv().await {
            Some(Ok(Decoded { batch, lines })) => {
                self.lines_read += lines;
                Ok(Some(batch))
            }
            Some(Err(e)) => {
                self.pos = Some(self.split.end);
                Err(e)
            }
            None => {
                self.pos = Some(self.split.end);
                Ok(None)
            }
        }
    }

    /// Positions on the first line whose first byte is at or after `start`: the byte
    /// after the first `\n` at or after `start - 1` (or the end of the object).
    async fn find_first_line(&mut self) -> Result<u64, IoError> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                let pos = self.buf_pos + i as u64 + 1;
                self.pos = Some(pos);
                return Ok(pos);
            }
            if self.buf_end() >= self.split.file_len {
                self.pos = Some(self.split.file_len);
                return Ok(self.split.file_len);
            }
            self.fetch().await?;
        }
    }

    fn buf_end(&self) -> u64 {
        self.buf_pos + self.buf.len() as u64
    }

    /// Appends the next range of the object to the buffer, first dropping the bytes
    /// before the next line (all of them while the split's start is being looked for).
    async fn fetch(&mut self) -> Result<(), IoError> {
        let keep_from = self.pos.unwrap_or_else(|| self.buf_end());
        let consumed = (keep_from - self.buf_pos) as usize;
        if consumed > 0 {
            self.buf.drain(..consumed);
            self.buf_pos = keep_from;
        }
        let from = self.buf_end();
        let to = if from < self.split.end {
            self.split.end.min(from.saturating_add(self.chunk_bytes))
        } else {
            let to = from.saturating_add(self.tail_read);
            self.tail_read = (self.tail_read * 2).min(self.chunk_bytes);
            to
        }
        .min(self.split.file_len);
        let bytes = self
            .store
            .get_range(&self.split.path, from..to)
            .await
            .map_err(|source| IoError::from_store(self.uri.clone(), source))?;
        self.bytes_read += bytes.len() as u64;
        if bytes.is_empty() {
            return Err(IoError::Truncated {
                uri: self.uri.clone(),
                file_len: self.split.file_len,
                ended_at: from,
            });
        }
        self.buf.extend_from_slice(&bytes);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, PutPayload};
    use proptest::prelude::*;

    use super::*;

    async fn location_with(text: &str) -> DataLocation {
        let store = Arc::new(InMemory::new());
        store.put(&Path::from("f"), PutPayload::from(text.as_bytes().to_vec())).await.unwrap();
        DataLocation::new(store, Path::from("f"))
    }

    /// Lines of the splits cut at `cuts`, with small chunks and batches.
    async fn read_cut(text: &str, cuts: &[u64], chunk: u64, batch: usize) -> Vec<Vec<Vec<u8>>> {
        let location = location_with(text).await;
        let len = text.len() as u64;
        let mut bounds: Vec<u64> = cuts.iter().map(|c| c % (len + 1)).collect();
        bounds.extend([0, len]);
        bounds.sort_unstable();
        bounds.dedup();
        let mut per_split = Vec::new();
        for pair in bounds.windows(2) {
            let split = TextSplit { path: Path::from("f"), start: pair[0], end: pair[1], file_len: len };
            let mut reader =
                LineReader::new(&location, split).with_chunk_bytes(chunk).with_batch_bytes(batch);
            let mut lines = Vec::new();
            while let Some(buf) = reader.next_batch().await.unwrap() {
                assert!(buf.len() <= batch || weft_codec::batch::count(&buf).unwrap() == 1);
                lines.extend(weft_codec::batch::entries(&buf).map(|e| e.unwrap().to_vec()));
            }
            assert_eq!(reader.lines_read(), lines.len() as u64);
            assert!(reader.next_batch().await.unwrap().is_none(), "exhausted reader stays exhausted");
            per_split.push(lines);
        }
        per_split
    }

    fn reference(text: &str) -> Vec<Vec<u8>> {
        text.lines().map(|l| l.as_bytes().to_vec()).collect()
    }

    #[tokio::test]
    async fn each_line_belongs_to_the_split_holding_its_first_byte() {
        // "ab\ncd\nef": lines start at 0, 3, 6.
        let text = "ab\ncd\nef";
        assert_eq!(
            read_cut(text, &[3], 4, 100).await,
            [vec![b"ab".to_vec()], vec![b"cd".to_vec(), b"ef".to_vec()]]
        );
        assert_eq!(
            read_cut(text, &[4], 4, 100).await,
            [vec![b"ab".to_vec(), b"cd".to_vec()], vec![b"ef".to_vec()]]
        );
        assert_eq!(
            read_cut(text, &[2], 1, 100).await,
            [vec![b"ab".to_vec()], vec![b"cd".to_vec(), b"ef".to_vec()]]
        );
        // A split inside one long line has no lines.
        assert_eq!(read_cut("abcdefgh\n", &[2, 5], 2, 100).await[1], Vec::<Vec<u8>>::new());
        // CRLF and a lone CR.
        assert_eq!(read_cut("a\r\nb\rc\r\n\r\n", &[], 3, 100).await[0], reference("a\r\nb\rc\r\n\r\n"));
    }

    #[tokio::test]
    async fn counts_bytes_and_reads_a_little_past_the_end() {
        let text = format!("{}\n{}\n", "a".repeat(1000), "b".repeat(1000));
        let location = location_with(&text).await;
        let split = TextSplit { path: Path::from("f"), start: 0, end: 10, file_len: text.len() as u64 };
        let mut reader = LineReader::new(&location, split).with_chunk_bytes(100);
        let batch = reader.next_batch().await.unwrap().unwrap();
        assert_eq!(weft_codec::batch::entries(&batch).next().unwrap().unwrap(), "a".repeat(1000).as_bytes());
        assert!(reader.next_batch().await.unwrap().is_none());
        assert!((1001..=1100).contains(&reader.bytes_read()), "{}", reader.bytes_read());
    }

    #[tokio::test]
    async fn a_shrunken_file_is_a_typed_error() {
        let location = location_with("short\nfile").await;
        let split = TextSplit { path: Path::from("f"), start: 0, end: 100, file_len: 100 };
        let mut reader = LineReader::new(&location, split).with_chunk_bytes(4);
        let mut result = Ok(Some(Vec::new()));
        while let Ok(Some(_)) = result {
            result = reader.next_batch().await;
        }
        assert!(
            matches!(result, Err(IoError::Truncated { .. }) | Err(IoError::Storage { .. })),
            "{result:?}"
        );
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        let line = "[a-c \r]{0,12}";
        let ending = prop_oneof![Just("\n"), Just("\r\n")];
        (proptest::collection::vec((line, ending), 0..30), any::<bool>(), "[a-c]{0,5}").prop_map(
            |(lines, trailing, last)| {
                let mut text: String = lines.into_iter().map(|(l, e)| format!("{l}{e}")).collect();
                if !trailing {
                    text.push_str(&last);
                }
                text
            },
        )
    }

    proptest! {
        #[test]
        fn concatenated_splits_equal_str_lines(
            text in text_strategy(),
            cuts in proptest::collection::vec(any::<u64>(), 0..8),
            chunk in 1u64..20,
            batch in 1usize..40,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got: Vec<Vec<u8>> = runtime.block_on(read_cut(&text, &cuts, chunk, batch)).concat();
            prop_assert_eq!(got, reference(&text));
        }
    }
}
