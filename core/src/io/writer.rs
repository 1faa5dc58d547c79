//! [`TextPartWriter`]: writes one task attempt's part file, one line per record.

use std::fmt;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use super::error::IoError;

/// Bytes buffered before a part file switches from one PUT to a multipart upload, and
/// the size of each uploaded part: 8 MiB.
pub const UPLOAD_CHUNK_BYTES: usize = 8 << 20;

/// Part uploads in flight at once per writer.
const UPLOAD_CONCURRENCY: usize = 4;

/// Writes the text part file of one task attempt (from
/// [`OutputCommitter::task_writer`](super::OutputCommitter::task_writer)): every record
/// followed by `\n`.
///
/// Small files are written with one PUT when [finished](Self::finish); past
/// [`UPLOAD_CHUNK_BYTES`] the writer streams a multipart upload with bounded memory.
/// Nothing is visible at the attempt's path before `finish` returns, on S3 and on the
/// local filesystem alike. Dropping an unfinished writer abandons the upload (call
/// [`abort`](Self::abort) to clean up a multipart upload at once).
///
/// Cancellation: a cancelled [`write_batch`](Self::write_batch) may have written part
/// of its batch; treat it as a failed attempt and abandon the writer.
pub struct TextPartWriter {
    store: Arc<dyn ObjectStore>,
    path: Path,
    uri: String,
    sink: Sink,
    bytes_written: u64,
    lines_written: u64,
}

enum Sink {
    Buffer(Vec<u8>),
    Multipart(WriteMultipart),
}

impl fmt::Debug for TextPartWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextPartWriter")
            .field("uri", &self.uri)
            .field("bytes_written", &self.bytes_written)
            .field("lines_written", &self.lines_written)
            .finish()
    }
}

/// What a finished part file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartStats {
    /// Lines written (records).
    pub lines: u64,
    /// Bytes written, newlines included.
    pub bytes: u64,
}

impl TextPartWriter {
    pub(super) fn new(store: Arc<dyn ObjectStore>, path: Path, uri: String) -> Self {
        Self { store, path, uri, sink: Sink::Buffer(Vec::new()), bytes_written: 0, lines_written: 0 }
    }

    /// The URI of the part file being written.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Writes one line; `line` should not contain `\n` (it would read back as two).
    pub async fn write_line(&mut self, line: &[u8]) -> Result<(), IoError> {
        self.append(line);
        self.flush_if_full().await
    }

    /// Writes every entry of a framed batch of string records
    /// ([`weft_codec::batch`]), one line each.
    pub async fn write_batch(&mut self, batch: &[u8]) -> Result<(), IoError> {
        for entry in weft_codec::batch::entries(batch) {
            let line = entry.map_err(|source| IoError::BadBatch { uri: self.uri.clone(), source })?;
            self.append(line);
            self.flush_if_full().await?;
        }
        Ok(())
    }

    fn append(&mut self, line: &[u8]) {
        match &mut self.sink {
            Sink::Buffer(buf) => {
                buf.extend_from_slice(line);
                buf.push(b'\n');
            }
            Sink::Multipart(upload) => {
                upload.write(line);
                upload.write(b"\n");
            }
        }
        self.lines_written += 1;
        self.bytes_written += line.len() as u64 + 1;
    }

    /// Starts the multipart upload once the buffer is full; bounds the parts in flight.
    async fn flush_if_full(&mut self) -> Result<(), IoError> {
        match &mut self.sink {
            Sink::Buffer(buf) if buf.len() >= UPLOAD_CHUNK_BYTES => {
                let upload = self.store.put_multipart(&self.path).await.map_err(|e| self.error(e))?;
                let mut upload = WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK_BYTES);
                // Taken only now, so a cancelled `put_multipart` loses nothing.
                if let Sink::Buffer(buffered) = &self.sink {
                    upload.write(buffered);
                }
                self.sink = Sink::Multipart(upload);
                Ok(())
            }
            Sink::Buffer(_) => Ok(()),
            Sink::Multipart(upload) => {
                let result = upload.wait_for_capacity(UPLOAD_CONCURRENCY).await;
                result.map_err(|e| self.error(e))
            }
        }
    }

    /// Completes the part file; only now does it exist at its path.
    pub async fn finish(self) -> Result<PartStats, IoError> {
        let stats = PartStats { lines: self.lines_written, bytes: self.bytes_written };
        let result = match self.sink {
            Sink::Buffer(buf) => self.store.put(&self.path, PutPayload::from(buf)).await.map(drop),
            Sink::Multipart(upload) => upload.finish().await.map(drop),
        };
        result.map_err(|source| IoError::from_store(self.uri.clone(), source))?;
        tracing::debug!(uri = %self.uri, lines = stats.lines, bytes = stats.bytes, "part file written");
        Ok(stats)
    }

    /// Abandons the part file, aborting a multipart upload in progress.
    pub async fn abort(self) -> Result<(), IoError> {
        match self.sink {
            Sink::Buffer(_) => Ok(()),
            Sink::Multipart(upload) => {
                upload.abort().await.map_err(|source| IoError::from_store(self.uri.clone(), source))
            }
        }
    }

    fn error(&self, source: object_store::Error) -> IoError {
        IoError::from_store(self.uri.clone(), source)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use object_store::memory::InMemory;
    use weft_codec::batch::BatchWriter;

    use super::*;

    #[tokio::test]
    async fn small_and_multipart_files_read_back() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for (name, lines) in [("small", 3usize), ("large", 40_000)] {
            let path = Path::from(name);
            let mut writer = TextPartWriter::new(Arc::clone(&store), path.clone(), name.into());
            let line = "x".repeat(300);
            let mut batch = BatchWriter::new();
            for i in 0..lines {
                batch.push(format!("{i}{line}").as_bytes());
            }
            writer.write_batch(&batch.finish()).await.unwrap();
            writer.write_line(b"").await.unwrap();
            assert!(store.head(&path).await.is_err(), "visible before finish");
            let stats = writer.finish().await.unwrap();
            let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(stats, PartStats { lines: lines as u64 + 1, bytes: bytes.len() as u64 });
            let text = String::from_utf8(bytes.to_vec()).unwrap();
            let expected: Vec<String> =
                (0..lines).map(|i| format!("{i}{line}")).chain([String::new()]).collect();
            assert_eq!(text.lines().collect::<Vec<_>>(), expected);
        }
    }

    #[tokio::test]
    async fn malformed_batch_is_typed() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut writer = TextPartWriter::new(store, Path::from("p"), "mem://p".into());
        let err = writer.write_batch(&[9, 0, 0, 0, b'a']).await.unwrap_err();
        assert!(matches!(err, IoError::BadBatch { .. }), "{err:?}");
    }
}
