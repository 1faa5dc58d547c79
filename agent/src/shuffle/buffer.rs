//! The in-memory sort buffer of a map task.
//!
//! Pairs are copied into one arena (key bytes then value bytes, back to back);
//! each gets a fixed-size [`Entry`] naming its partition and where it lives.
//! Sorting moves only the entries, and compares their keys' first eight bytes
//! ([`key_prefix`], kept in the entry) before it reads a key in the arena:
//! most comparisons then touch no key bytes at all (a cache miss each).
//! The buffer's size, checked against the
//! writer's memory budget, is the arena's length plus the entries' size; a
//! spill builds one partition's batch at a time on top of that (the writer's
//! `finish` may build them all: see its module docs).

use super::combine::Combiner;
use super::error::ShuffleError;
use weft_codec::batch::{BatchWriter, PREFIX};

/// Where one buffered pair lives.
#[derive(Debug, Clone, Copy)]
struct Entry {
    partition: u32,
    key_len: u32,
    value_len: u32,
    /// The key's first bytes (see [`key_prefix`]).
    prefix: u64,
    start: usize,
}

/// A key's first eight bytes as a big-endian number, zero-padded: keys in
/// byte order have prefixes in the same order (equal prefixes say nothing),
/// so comparing prefixes first and keys only on a tie sorts by key.
#[inline]
pub(crate) fn key_prefix(key: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    let n = key.len().min(8);
    head[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(head)
}

/// Buffered pairs of one map task, waiting to be sorted.
#[derive(Debug, Default)]
pub(crate) struct SortBuffer {
    arena: Vec<u8>,
    entries: Vec<Entry>,
}

impl SortBuffer {
    /// Buffer one pair for `partition`.
    pub(crate) fn push(&mut self, partition: u32, key: &[u8], value: &[u8]) {
        let start = self.arena.len();
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(value);
        // Entries of a batch are at most 4 GiB, so the lengths fit in u32.
        let key_len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        let value_len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.entries.push(Entry { partition, key_len, value_len, prefix: key_prefix(key), start });
    }

    /// Bytes the buffer accounts for: pair bytes plus one entry per pair.
    pub(crate) fn bytes(&self) -> usize {
        self.arena.len() + self.entries.len() * size_of::<Entry>()
    }

    /// Whether nothing is buffered.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn key(&self, e: &Entry) -> &[u8] {
        &self.arena[e.start..e.start + e.key_len as usize]
    }

    fn value(&self, e: &Entry) -> &[u8] {
        let at = e.start + e.key_len as usize;
        &self.arena[at..at + e.value_len as usize]
    }

    /// Sort by (partition, key), stably, then hand each of the `partitions`
    /// partitions' pair batch (combined, when a combiner is given; empty for a
    /// partition without pairs) to `each`, in partition order. The buffer is empty
    /// afterwards and keeps its allocations.
    pub(crate) fn drain_sorted(
        &mut self,
        partitions: u32,
        mut combiner: Option<&mut Combiner>,
        mut each: impl FnMut(u32, Vec<u8>) -> Result<(), ShuffleError>,
    ) -> Result<(), ShuffleError> {
        let mut sorted = self.sorted();
        for p in 0..partitions {
            let these = sorted.take(p);
            let bytes: usize = sorted.pairs(these.clone()).map(|(k, v)| 2 * PREFIX + k.len() + v.len()).sum();
            let mut batch = BatchWriter::with_capacity(bytes);
            for (k, v) in sorted.pairs(these) {
                batch.push(k);
                batch.push(v);
            }
            let mut batch = batch.finish();
            if let Some(c) = combiner.as_deref_mut() {
                batch = c.apply(batch)?;
            }
            each(p, batch)?;
        }
        debug_assert!(sorted.is_drained(), "pairs of a partition past the last");
        Ok(())
    }

    /// Sort by (partition, key), stably, for reading partition by partition
    /// ([`Sorted::take`]); the buffer is empty once the result is dropped, and
    /// keeps its allocations.
    pub(crate) fn sorted(&mut self) -> Sorted<'_> {
        let mut entries = std::mem::take(&mut self.entries);
        // Equal keys keep their arrival order (an unstable sort made stable,
        // faster than a stable one): the arena offset breaks ties, and among
        // pairs at one offset the shorter value came first. Only an empty pair
        // leaves the offset as it was, so the pair after it shares its offset
        // and, with an equal (empty) key, has a value at least as long; two
        // pairs tied on both are the same empty pair.
        entries.sort_unstable_by(|a, b| {
            (a.partition, a.prefix)
                .cmp(&(b.partition, b.prefix))
                .then_with(|| self.key(a).cmp(self.key(b)))
                .then(a.start.cmp(&b.start))
                .then(a.value_len.cmp(&b.value_len))
        });
        Sorted { buffer: self, entries, at: 0 }
    }
}

/// A [`SortBuffer`]'s pairs, sorted, read one partition after another.
pub(crate) struct Sorted<'a> {
    buffer: &'a mut SortBuffer,
    entries: Vec<Entry>,
    /// The entries before this one were taken.
    at: usize,
}

impl Sorted<'_> {
    /// The entries of partition `p`, which must come after every partition
    /// taken before (none when it has no pairs).
    pub(crate) fn take(&mut self, p: u32) -> std::ops::Range<usize> {
        let n = self.entries[self.at..].iter().take_while(|e| e.partition == p).count();
        self.at += n;
        self.at - n..self.at
    }

    /// Whether every partition's entries were taken.
    pub(crate) fn is_drained(&self) -> bool {
        self.at == self.entries.len()
    }

    /// The pairs of `entries` (from [`take`](Self::take)), in order.
    pub(crate) fn pairs(&self, entries: std::ops::Range<usize>) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries[entries].iter().map(|e| (self.buffer.key(e), self.buffer.value(e)))
    }
}

impl Drop for Sorted<'_> {
    fn drop(&mut self) {
        let mut entries = std::mem::take(&mut self.entries);
        entries.clear();
        self.buffer.entries = entries;
        self.buffer.arena.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_codec::batch::pairs;

    #[test]
    fn a_pair_after_an_empty_pair_shares_its_offset_and_still_comes_after_it() {
        // Empty pairs, each followed by a pair of the same (empty) key at the
        // same offset, between pairs of a key that sorts after them: enough
        // of them for the sort to move ties (a short or sorted slice it would not).
        let mut b = SortBuffer::default();
        let mut arrived = Vec::new();
        for i in 0u32..3000 {
            let (key, value) = match i % 3 {
                0 => (&b""[..], Vec::new()),
                1 => (&b""[..], i.to_be_bytes().to_vec()),
                _ => (&b"k"[..], i.to_be_bytes().to_vec()),
            };
            b.push(0, key, &value);
            arrived.push((key.to_vec(), value));
        }
        let mut got = Vec::new();
        b.drain_sorted(1, None, |_, batch| {
            got.extend(pairs(&batch).map(|p| p.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()));
            Ok(())
        })
        .unwrap();
        arrived.sort_by(|a, b| a.0.cmp(&b.0)); // stable
        assert!(got == arrived, "equal keys out of arrival order");
    }

    #[test]
    fn sorts_stably_by_partition_then_key() {
        let mut b = SortBuffer::default();
        for (p, k, v) in [(1, "b", "1"), (0, "z", "2"), (1, "a", "3"), (1, "b", "4"), (0, "a", "5")] {
            b.push(p, k.as_bytes(), v.as_bytes());
        }
        assert!(b.bytes() >= 10);
        let mut got = Vec::new();
        b.drain_sorted(3, None, |p, batch| {
            for pair in pairs(&batch) {
                let (k, v) = pair.unwrap();
                got.push((p, String::from_utf8(k.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()));
            }
            Ok(())
        })
        .unwrap();
        let want = [(0, "a", "5"), (0, "z", "2"), (1, "a", "3"), (1, "b", "1"), (1, "b", "4")];
        let want: Vec<_> = want.iter().map(|(p, k, v)| (*p, k.to_string(), v.to_string())).collect();
        assert_eq!(got, want);
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }

    /// Keys of a few bytes from a small alphabet with zero bytes: many share
    /// their eight-byte prefix, or are a prefix of another, or differ only in
    /// trailing zeros, where the prefixes alone cannot order them.
    fn keys() -> impl proptest::strategy::Strategy<Value = Vec<(u32, Vec<u8>)>> {
        use proptest::prelude::*;
        let key = proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(255)], 0..12);
        proptest::collection::vec((0u32..3, key), 0..200)
    }

    proptest::proptest! {
        #[test]
        fn sorts_as_a_stable_sort_by_partition_then_key_bytes(pairs_in in keys()) {
            let mut b = SortBuffer::default();
            for (i, (p, k)) in pairs_in.iter().enumerate() {
                b.push(*p, k, &(i as u32).to_be_bytes());
            }
            let mut got = Vec::new();
            b.drain_sorted(3, None, |p, batch| {
                for pair in pairs(&batch) {
                    let (k, v) = pair.unwrap();
                    got.push((p, k.to_vec(), u32::from_be_bytes(v.try_into().unwrap())));
                }
                Ok(())
            })
            .unwrap();
            let mut want: Vec<_> =
                pairs_in.iter().enumerate().map(|(i, (p, k))| (*p, k.clone(), i as u32)).collect();
            want.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            proptest::prop_assert_eq!(got, want);
        }

        #[test]
        fn prefixes_order_as_their_keys(a in proptest::collection::vec(0u8..3, 0..12), b in proptest::collection::vec(0u8..3, 0..12)) {
            if a < b {
                proptest::prop_assert!(key_prefix(&a) <= key_prefix(&b));
            }
        }
    }
}
