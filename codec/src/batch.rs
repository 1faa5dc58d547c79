//! Batch framing: `u32` little-endian length, then that many bytes, repeated.
//!
//! The format is deliberately plain: no header, no count, no checksum. A batch
//! lives for one call or one block; integrity of stored blocks is the block
//! manager's job. Readers never trust a length: every entry is bounds-checked.

use crate::DecodeError;

/// Bytes of a length prefix.
pub const PREFIX: usize = 4;

/// Largest entry a batch can frame.
pub const MAX_ENTRY: usize = u32::MAX as usize;

/// Builds one batch buffer.
#[derive(Debug, Default, Clone)]
pub struct BatchWriter {
    buf: Vec<u8>,
    entries: usize,
}

impl BatchWriter {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `bytes` of framed data.
    pub fn with_capacity(bytes: usize) -> Self {
        Self { buf: Vec::with_capacity(bytes), entries: 0 }
    }

    /// Append one entry.
    ///
    /// # Panics
    /// When `entry` is longer than [`MAX_ENTRY`] (4 GiB), which no batch can frame.
    pub fn push(&mut self, entry: &[u8]) {
        self.buf.reserve(PREFIX + entry.len());
        self.buf.extend_from_slice(&entry_len(entry.len()).to_le_bytes());
        self.buf.extend_from_slice(entry);
        self.entries += 1;
    }

    /// Append one entry written in place by `write`, which appends to the buffer.
    /// Saves a copy when the caller encodes straight into the batch.
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; PREFIX]);
        write(&mut self.buf);
        let len = entry_len(self.buf.len() - at - PREFIX);
        self.buf[at..at + PREFIX].copy_from_slice(&len.to_le_bytes());
        self.entries += 1;
    }

    /// Entries pushed so far.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Framed bytes so far.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// The finished buffer.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// The framed bytes so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Empty the batch, keeping its buffer for the next entries.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.entries = 0;
    }

    /// Take the finished buffer and leave this writer empty, keeping nothing.
    pub fn take(&mut self) -> Vec<u8> {
        self.entries = 0;
        std::mem::take(&mut self.buf)
    }
}

#[allow(clippy::expect_used)]
fn entry_len(len: usize) -> u32 {
    u32::try_from(len).expect("batch entry larger than 4 GiB")
}

/// The entries of `buf`, in order; an error ends the iteration.
pub fn entries(buf: &[u8]) -> Entries<'_> {
    Entries { buf, pos: 0 }
}

/// Iterator over the entries of a batch.
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<&'a [u8], DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let Some((prefix, body)) = rest.split_first_chunk::<PREFIX>() else {
            return Some(Err(self.truncated(PREFIX)));
        };
        let len = u32::from_le_bytes(*prefix) as usize;
        if body.len() < len {
            return Some(Err(self.truncated(PREFIX + len)));
        }
        self.pos += PREFIX + len;
        Some(Ok(&body[..len]))
    }
}

impl Entries<'_> {
    fn truncated(&mut self, needed: usize) -> DecodeError {
        let err = DecodeError::Truncated { offset: self.pos, needed, available: self.buf.len() - self.pos };
        self.pos = self.buf.len();
        err
    }
}

/// The (key, value) pairs of a pair batch.
pub fn pairs(buf: &[u8]) -> Pairs<'_> {
    Pairs { inner: entries(buf), seen: 0 }
}

/// Iterator over the pairs of a pair batch.
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    inner: Entries<'a>,
    seen: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let key = match self.inner.next()? {
            Ok(k) => k,
            Err(e) => return Some(Err(e)),
        };
        self.seen += 1;
        match self.inner.next() {
            Some(Ok(v)) => {
                self.seen += 1;
                Some(Ok((key, v)))
            }
            Some(Err(e)) => Some(Err(e)),
            None => Some(Err(DecodeError::UnpairedKey { entries: self.seen })),
        }
    }
}

/// Count the entries of `buf`, checking its framing.
pub fn count(buf: &[u8]) -> Result<usize, DecodeError> {
    entries(buf).try_fold(0, |n, e| e.map(|_| n + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_batch_has_no_entries() {
        assert_eq!(count(&[]), Ok(0));
        assert!(BatchWriter::new().finish().is_empty());
    }

    #[test]
    fn truncated_prefix_and_body_are_errors() {
        let mut w = BatchWriter::new();
        w.push(b"hello");
        let buf = w.finish();
        for cut in 1..buf.len() {
            let err = entries(&buf[..cut]).next().and_then(Result::err);
            assert!(matches!(err, Some(DecodeError::Truncated { offset: 0, .. })), "cut {cut}");
        }
    }

    #[test]
    fn unpaired_key_is_an_error() {
        let mut w = BatchWriter::new();
        w.push(b"k1");
        w.push(b"v1");
        w.push(b"k2");
        let buf = w.finish();
        let got: Vec<_> = pairs(&buf).collect();
        assert_eq!(got[0], Ok((&b"k1"[..], &b"v1"[..])));
        assert_eq!(got[1], Err(DecodeError::UnpairedKey { entries: 3 }));
    }

    #[test]
    fn push_with_frames_like_push() {
        let mut a = BatchWriter::new();
        let mut b = BatchWriter::new();
        a.push(b"abc");
        b.push_with(|out| out.extend_from_slice(b"abc"));
        assert_eq!(a.finish(), b.finish());
    }

    proptest! {
        #[test]
        fn round_trip(items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..64)) {
            let mut w = BatchWriter::new();
            for i in &items { w.push(i); }
            prop_assert_eq!(w.len(), items.len());
            let buf = w.finish();
            let back: Vec<Vec<u8>> = entries(&buf).map(|e| e.map(<[u8]>::to_vec)).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(back, items);
        }

        #[test]
        fn garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = count(&buf);
            let _ = pairs(&buf).count();
        }
    }
}
