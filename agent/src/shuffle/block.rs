//! Encoding one block: optional lz4 compression and a crc32c checksum.
//!
//! A block is stored as its pair batch, or as one lz4 *frame* of it (the
//! `lz4_flex` frame format, streamed, so a partition never has to sit in memory
//! whole). An empty partition stores zero bytes under either codec. The
//! checksum is crc32c (Castagnoli, as in iSCSI, ext4 and Kafka; hardware-accelerated
//! on x86-64 and aarch64) over the *stored* bytes, so the block service can
//! verify a block before sending it without decompressing, and a reader can
//! verify what arrived before spending time on it.

use super::error::ShuffleError;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::path::Path;

/// How blocks are stored in the data file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// The pair batch as is.
    #[default]
    None,
    /// One lz4 frame per non-empty block.
    Lz4,
}

impl Compression {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Lz4 => 1,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::None),
            1 => Some(Self::Lz4),
            _ => None,
        }
    }
}

/// A writer that counts and checksums what passes through it.
#[derive(Debug)]
pub(crate) struct Checksummed<W> {
    inner: W,
    crc: u32,
    bytes: u64,
}

impl<W: Write> Checksummed<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self { inner, crc: 0, bytes: 0 }
    }

    /// Bytes written so far, and the crc32c of the current block; resets the crc.
    pub(crate) fn end_block(&mut self) -> (u64, u32) {
        (self.bytes, std::mem::take(&mut self.crc))
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams one block's pair-batch chunks into the data file under a codec.
pub(crate) struct BlockEncoder<'a, W: Write> {
    codec: Compression,
    sink: Option<&'a mut W>,
    /// The lz4 frame, started on the first non-empty chunk (so an empty block
    /// stores nothing); it borrows the sink until the block ends.
    frame: Option<lz4_flex::frame::FrameEncoder<&'a mut W>>,
}

impl<'a, W: Write> BlockEncoder<'a, W> {
    pub(crate) fn new(codec: Compression, out: &'a mut W) -> Self {
        Self { codec, sink: Some(out), frame: None }
    }

    pub(crate) fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        if let Some(frame) = &mut self.frame {
            return frame.write_all(chunk);
        }
        match (self.codec, self.sink.take()) {
            (Compression::None, Some(out)) => {
                let r = out.write_all(chunk);
                self.sink = Some(out);
                r
            }
            (Compression::Lz4, Some(out)) => {
                let mut frame = lz4_flex::frame::FrameEncoder::new(out);
                let r = frame.write_all(chunk);
                self.frame = Some(frame);
                r
            }
            (_, None) => Err(io::Error::other("block encoder lost its sink")),
        }
    }

    pub(crate) fn finish(self) -> io::Result<()> {
        match self.frame {
            Some(frame) => frame.finish().map(drop).map_err(io::Error::other),
            None => Ok(()),
        }
    }
}

/// Decode a block's stored bytes into its pair batch.
pub(crate) fn decode(
    codec: Compression,
    stored: Vec<u8>,
    path: &Path,
    partition: u32,
) -> Result<Vec<u8>, ShuffleError> {
    match codec {
        Compression::None => Ok(stored),
        Compression::Lz4 if stored.is_empty() => Ok(stored),
        Compression::Lz4 => {
            let mut out = Vec::with_capacity(stored.len() * 2);
            lz4_flex::frame::FrameDecoder::new(stored.as_slice()).read_to_end(&mut out).map_err(|e| {
                ShuffleError::CorruptBlock {
                    path: path.to_path_buf(),
                    partition,
                    reason: format!("lz4: {e}"),
                }
            })?;
            Ok(out)
        }
    }
}
