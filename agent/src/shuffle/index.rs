//! The index file of a map output, and reading one block through it.
//!
//! # Layout (version 1, all integers little-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `WEFTSHIX` |
//! | 8 | 2 | version, `1` |
//! | 10 | 1 | compression: `0` none, `1` lz4 frame (see [`Compression`]) |
//! | 11 | 1 | reserved, `0` |
//! | 12 | 4 | `N`, the number of partitions |
//! | 16 | 8 × (N+1) | block offsets into the data file: `offsets[0] = 0`, non-decreasing, `offsets[N]` = the data file's length |
//! | 16 + 8(N+1) | 4 × N | crc32c of each block's stored bytes |
//! | end − 4 | 4 | crc32c of every byte before it |
//!
//! Block `p` is `data[offsets[p]..offsets[p+1]]`; an empty partition has an
//! empty block. The trailing checksum catches a damaged index before a wrong
//! offset sends a reader to the wrong bytes; the per-block checksums catch a
//! damaged data file. The data file has no header: it is the blocks back to back.
//!
//! # Blocks, checksums, compression
//!
//! A block is stored as its pair batch, or (with [`Compression::Lz4`]) as one
//! lz4 frame of it in the `lz4_flex` frame format, streamed while writing. An
//! empty partition stores zero bytes under either codec. Checksums are crc32c
//! (Castagnoli, as in iSCSI, ext4 and Kafka; hardware-accelerated on x86-64 and
//! aarch64) over the *stored* bytes, so the block service can verify a block
//! before sending it without decompressing it, and a peer can verify what arrived
//! before spending time on it.

use super::block::{self, Compression};
use super::error::ShuffleError;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The index file's first eight bytes.
pub const MAGIC: [u8; 8] = *b"WEFTSHIX";
/// The index format version this code writes and reads.
pub const VERSION: u16 = 1;
const HEADER: usize = 16;

/// What is wrong with an index file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexDefect {
    /// Too short for its header, or not the length its partition count implies.
    #[error("index has {len} bytes, expected {expected}")]
    Length {
        /// Bytes found.
        len: usize,
        /// Bytes needed.
        expected: usize,
    },
    /// Not a weft shuffle index.
    #[error("bad magic")]
    Magic,
    /// A version this code does not read.
    #[error("unsupported index version {0}")]
    Version(u16),
    /// A compression code this code does not know.
    #[error("unknown compression code {0}")]
    Compression(u8),
    /// The trailing checksum does not match.
    #[error("index checksum mismatch")]
    Checksum,
    /// Offsets do not start at 0 or decrease.
    #[error("block offsets are not monotonic at partition {partition}")]
    Offsets {
        /// The first partition whose end is before its start.
        partition: usize,
    },
    /// The last offset is not the data file's length.
    #[error("index covers {indexed} bytes but the data file has {actual}")]
    DataLength {
        /// `offsets[N]`.
        indexed: u64,
        /// The data file's length.
        actual: u64,
    },
}

/// A parsed, validated index: where each block of one map output lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    compression: Compression,
    offsets: Vec<u64>,
    checksums: Vec<u32>,
}

impl IndexFile {
    pub(crate) fn new(compression: Compression, offsets: Vec<u64>, checksums: Vec<u32>) -> Self {
        Self { compression, offsets, checksums }
    }

    /// The bytes of this index.
    pub fn encode(&self) -> Vec<u8> {
        let n = self.checksums.len();
        let mut out = Vec::with_capacity(encoded_len(n));
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.push(self.compression.code());
        out.push(0);
        out.extend_from_slice(&(n as u32).to_le_bytes());
        for o in &self.offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        for c in &self.checksums {
            out.extend_from_slice(&c.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parse and validate index bytes against the length of its data file.
    pub fn parse(bytes: &[u8], data_len: u64) -> Result<Self, IndexDefect> {
        let short = || IndexDefect::Length { len: bytes.len(), expected: encoded_len(0) };
        let header = bytes.get(..HEADER).ok_or_else(short)?;
        if header[..8] != MAGIC {
            return Err(IndexDefect::Magic);
        }
        let version = u16::from_le_bytes([header[8], header[9]]);
        if version != VERSION {
            return Err(IndexDefect::Version(version));
        }
        let compression = Compression::from_code(header[10]).ok_or(IndexDefect::Compression(header[10]))?;
        let n = u32::from_le_bytes([header[12], header[13], header[14], header[15]]) as usize;
        let expected = encoded_len(n);
        if bytes.len() != expected {
            return Err(IndexDefect::Length { len: bytes.len(), expected });
        }
        let (body, trailer) = bytes.split_at(expected - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) {
            return Err(IndexDefect::Checksum);
        }
        let offsets: Vec<u64> = body[HEADER..HEADER + 8 * (n + 1)]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let checksums: Vec<u32> = body[HEADER + 8 * (n + 1)..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if offsets[0] != 0 {
            return Err(IndexDefect::Offsets { partition: 0 });
        }
        if let Some(p) = offsets.windows(2).position(|w| w[1] < w[0]) {
            return Err(IndexDefect::Offsets { partition: p });
        }
        if offsets[n] != data_len {
            return Err(IndexDefect::DataLength { indexed: offsets[n], actual: data_len });
        }
        Ok(Self { compression, offsets, checksums })
    }

    /// Read and validate the index at `index` for the data file at `data`.
    pub fn open(index: &Path, data: &Path) -> Result<Self, ShuffleError> {
        let bytes = std::fs::read(index).map_err(ShuffleError::io(index))?;
        let data_len = std::fs::metadata(data).map_err(ShuffleError::io(data))?.len();
        Self::parse(&bytes, data_len)
            .map_err(|reason| ShuffleError::CorruptIndex { path: index.to_path_buf(), reason })
    }

    /// Number of partitions (blocks).
    pub fn partitions(&self) -> u32 {
        self.checksums.len() as u32
    }

    /// How the blocks are stored.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The byte range of block `partition` in the data file.
    pub fn block_range(&self, partition: u32) -> Option<std::ops::Range<u64>> {
        let p = partition as usize;
        Some(*self.offsets.get(p)?..*self.offsets.get(p + 1)?)
    }

    /// The crc32c of block `partition`'s stored bytes.
    pub fn checksum(&self, partition: u32) -> Option<u32> {
        self.checksums.get(partition as usize).copied()
    }

    /// The stored length of every block.
    pub fn block_lengths(&self) -> Vec<u64> {
        self.offsets.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// Bytes of an index with `n` partitions.
fn encoded_len(n: usize) -> usize {
    HEADER + 8 * (n + 1) + 4 * n + 4
}

/// Read block `partition`'s stored bytes (compressed, if the map output is) and
/// verify their checksum. This is what the block service sends to peers.
pub fn read_stored_block(data: &Path, index: &IndexFile, partition: u32) -> Result<Vec<u8>, ShuffleError> {
    let (range, want) = match (index.block_range(partition), index.checksum(partition)) {
        (Some(r), Some(c)) => (r, c),
        _ => return Err(ShuffleError::NoSuchPartition { partition, partitions: index.partitions() }),
    };
    let mut file = File::open(data).map_err(ShuffleError::io(data))?;
    file.seek(SeekFrom::Start(range.start)).map_err(ShuffleError::io(data))?;
    let mut stored = vec![0u8; (range.end - range.start) as usize];
    file.read_exact(&mut stored).map_err(ShuffleError::io(data))?;
    let got = crc32c::crc32c(&stored);
    if got != want {
        return Err(ShuffleError::CorruptBlock {
            path: data.to_path_buf(),
            partition,
            reason: format!("crc32c {got:08x}, index says {want:08x}"),
        });
    }
    Ok(stored)
}

/// Read block `partition` of a map output as its pair batch: verify the
/// checksum, then decompress.
pub fn read_block(data: &Path, index: &IndexFile, partition: u32) -> Result<Vec<u8>, ShuffleError> {
    let stored = read_stored_block(data, index, partition)?;
    block::decode(index.compression, stored, data, partition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> IndexFile {
        IndexFile::new(Compression::Lz4, vec![0, 10, 10, 25], vec![1, 2, 3])
    }

    #[test]
    fn round_trip_and_layout() {
        let bytes = sample().encode();
        assert_eq!(bytes.len(), 16 + 8 * 4 + 4 * 3 + 4);
        assert_eq!(&bytes[..8], b"WEFTSHIX");
        assert_eq!(IndexFile::parse(&bytes, 25).unwrap(), sample());
        assert_eq!(sample().block_lengths(), vec![10, 0, 15]);
        assert_eq!(sample().block_range(1), Some(10..10));
        assert_eq!(sample().block_range(3), None);
    }

    #[test]
    fn defects_are_typed() {
        let bytes = sample().encode();
        assert!(matches!(
            IndexFile::parse(&bytes, 24),
            Err(IndexDefect::DataLength { indexed: 25, actual: 24 })
        ));
        for cut in 0..bytes.len() {
            assert!(
                matches!(IndexFile::parse(&bytes[..cut], 25), Err(IndexDefect::Length { .. })),
                "cut {cut}"
            );
        }
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert_eq!(IndexFile::parse(&bad, 25), Err(IndexDefect::Checksum));
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert_eq!(IndexFile::parse(&v2, 25), Err(IndexDefect::Version(2)));
        let backwards = IndexFile::new(Compression::None, vec![0, 10, 5, 25], vec![0; 3]).encode();
        assert_eq!(IndexFile::parse(&backwards, 25), Err(IndexDefect::Offsets { partition: 1 }));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), len in 0u64..100) {
            let _ = IndexFile::parse(&bytes, len);
            // A valid header with garbage after it must not panic either.
            let mut framed = sample().encode()[..16].to_vec();
            framed.extend_from_slice(&bytes);
            let _ = IndexFile::parse(&framed, len);
        }

        #[test]
        fn any_flipped_bit_is_detected(at in 0usize..64, bit in 0u8..8) {
            let mut bytes = sample().encode();
            bytes[at] ^= 1 << bit;
            prop_assert!(IndexFile::parse(&bytes, 25).is_err());
        }
    }
}
