//! k-way merge of sorted pair sources.
//!
//! Used twice: by the writer to merge its spilled runs into one block per
//! partition, and by the reader to merge the blocks of all map tasks into one
//! sorted stream. A binary heap holds the head key of every source; the value
//! waits beside it, so nothing is cloned. Ties go to the lower source index: the
//! writer numbers runs in the order they were cut, which keeps equal keys in
//! arrival order (a stable merge of stable sorts), and the reader numbers blocks
//! by map task, which makes its output deterministic. A source may also tag
//! its pairs ([`PairSource::next_tagged`]): equal keys are ordered by tag
//! before source index, which lets the reader spill a merge of some blocks and
//! still merge the run with the rest in map order (each pair carries its map
//! task as its tag).
//!
//! [`Merge::next_chunk`] cuts the merged stream into pair batches of about a
//! target size, only between keys, so a consumer (a combine step, a reduce
//! function) sees every pair of a key in one batch. A single key with more pairs
//! than the target makes one larger batch. Building batches, the merge reads
//! each pair into buffers it recycles ([`PairSource::next_into`]): a pair
//! from a batch in memory or from the map side's spilled runs costs no
//! allocation.

use super::buffer::key_prefix;
use super::error::ShuffleError;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use weft_codec::batch::{BatchWriter, PREFIX};

/// One owned pair: key bytes, value bytes.
pub type Pair = (Vec<u8>, Vec<u8>);

/// A source of pairs sorted by key.
pub trait PairSource {
    /// The next pair, `None` at the end.
    fn next_pair(&mut self) -> Result<Option<Pair>, ShuffleError>;

    /// The next pair and its tag: a [`Merge`] orders equal keys by tag, then
    /// by source index. Untagged sources tag every pair 0.
    fn next_tagged(&mut self) -> Result<Option<(Pair, u32)>, ShuffleError> {
        Ok(self.next_pair()?.map(|pair| (pair, 0)))
    }

    /// The next pair into `key` and `value`, replacing what they held and
    /// reusing their allocations where the source can; its tag, `None` at
    /// the end.
    fn next_into(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<Option<u32>, ShuffleError> {
        Ok(self.next_tagged()?.map(|((k, v), tag)| {
            *key = k;
            *value = v;
            tag
        }))
    }
}

impl<S: PairSource + ?Sized> PairSource for Box<S> {
    fn next_pair(&mut self) -> Result<Option<Pair>, ShuffleError> {
        (**self).next_pair()
    }

    fn next_tagged(&mut self) -> Result<Option<(Pair, u32)>, ShuffleError> {
        (**self).next_tagged()
    }

    fn next_into(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<Option<u32>, ShuffleError> {
        (**self).next_into(key, value)
    }
}

/// A source whose every pair carries one tag (the reader's map index).
#[derive(Debug)]
pub(crate) struct Tagged<S> {
    pub(crate) source: S,
    pub(crate) tag: u32,
}

impl<S: PairSource> PairSource for Tagged<S> {
    fn next_pair(&mut self) -> Result<Option<Pair>, ShuffleError> {
        self.source.next_pair()
    }

    fn next_tagged(&mut self) -> Result<Option<(Pair, u32)>, ShuffleError> {
        Ok(self.source.next_pair()?.map(|pair| (pair, self.tag)))
    }

    fn next_into(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<Option<u32>, ShuffleError> {
        Ok(self.source.next_into(key, value)?.map(|_| self.tag))
    }
}

/// A pair batch in memory, read front to back.
#[derive(Debug, Clone)]
pub(crate) struct BatchSource<B> {
    buf: B,
    pos: usize,
}

impl<B: AsRef<[u8]>> BatchSource<B> {
    pub(crate) fn new(buf: B) -> Self {
        Self { buf, pos: 0 }
    }
}

impl<B: AsRef<[u8]>> PairSource for BatchSource<B> {
    fn next_pair(&mut self) -> Result<Option<Pair>, ShuffleError> {
        fresh_pair(self)
    }

    fn next_into(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<Option<u32>, ShuffleError> {
        let rest = &self.buf.as_ref()[self.pos..];
        match weft_codec::batch::pairs(rest).next() {
            None => Ok(None),
            Some(Err(source)) => Err(ShuffleError::Malformed { source }),
            Some(Ok((k, v))) => {
                self.pos += 2 * PREFIX + k.len() + v.len();
                key.clear();
                key.extend_from_slice(k);
                value.clear();
                value.extend_from_slice(v);
                Ok(Some(0))
            }
        }
    }
}

/// The next pair of a source that implements [`PairSource::next_into`], in
/// new buffers: its `next_pair`.
pub(crate) fn fresh_pair<S: PairSource + ?Sized>(source: &mut S) -> Result<Option<Pair>, ShuffleError> {
    let (mut key, mut value) = (Vec::new(), Vec::new());
    Ok(source.next_into(&mut key, &mut value)?.map(|_| (key, value)))
}

/// A source's head pair in the merge: its key's prefix (compared first, see
/// [`key_prefix`]), key, tag and source index.
type Head = (u64, Vec<u8>, u32, usize);

/// The k-way merge of several sorted sources.
pub struct Merge<S> {
    sources: Vec<S>,
    values: Vec<Option<Vec<u8>>>,
    heap: BinaryHeap<Reverse<Head>>,
    primed: bool,
    /// Buffers of pairs already handed on, for the next pairs read.
    spare: (Vec<u8>, Vec<u8>),
}

impl<S: PairSource> Merge<S> {
    /// Merge `sources`; on equal keys, lower indices come first. Nothing is
    /// read until the first pair is asked for.
    pub fn new(sources: Vec<S>) -> Self {
        let heap = BinaryHeap::with_capacity(sources.len());
        Self { values: vec![None; sources.len()], sources, heap, primed: false, spare: Default::default() }
    }

    /// Read the head of every source.
    fn prime(&mut self) -> Result<(), ShuffleError> {
        if !self.primed {
            for i in 0..self.sources.len() {
                self.advance(i, None)?;
            }
            self.primed = true;
        }
        Ok(())
    }

    /// Pull source `i`'s next pair onto the heap, read into the spare buffers
    /// (when a handed-on pair left some); it must not sort before `after`.
    fn advance(&mut self, i: usize, after: Option<&[u8]>) -> Result<(), ShuffleError> {
        let (mut k, mut v) = std::mem::take(&mut self.spare);
        match self.sources[i].next_into(&mut k, &mut v)? {
            Some(tag) => {
                if after.is_some_and(|a| k.as_slice() < a) {
                    return Err(ShuffleError::Unsorted);
                }
                self.heap.push(Reverse((key_prefix(&k), k, tag, i)));
                self.values[i] = Some(v);
            }
            None => self.spare = (k, v),
        }
        Ok(())
    }

    /// The key the next pair will have (`None` at the end, or before the first
    /// pair was read).
    pub fn peek_key(&self) -> Option<&[u8]> {
        self.heap.peek().map(|Reverse((_, k, _, _))| k.as_slice())
    }

    /// The next pair in key order.
    pub fn next_pair(&mut self) -> Result<Option<Pair>, ShuffleError> {
        Ok(self.next_tagged()?.map(|(pair, _)| pair))
    }

    /// The next pair in key order and the tag its source gave it.
    pub fn next_tagged(&mut self) -> Result<Option<(Pair, u32)>, ShuffleError> {
        self.prime()?;
        let Some(Reverse((_, key, tag, i))) = self.heap.pop() else { return Ok(None) };
        let value = self.values[i].take().unwrap_or_default();
        self.advance(i, Some(&key))?;
        Ok(Some(((key, value), tag)))
    }

    /// The next pair batch of at least `target` bytes (unless the stream ends
    /// first), cut between keys; `None` at the end.
    pub fn next_chunk(&mut self, target: usize) -> Result<Option<Vec<u8>>, ShuffleError> {
        self.next_batch(target, true)
    }

    /// The next pair batch of about `target` bytes, cut between keys if
    /// `whole_keys` (then a key with more pairs than `target` makes one larger
    /// batch), else anywhere; `None` at the end.
    pub fn next_batch(&mut self, target: usize, whole_keys: bool) -> Result<Option<Vec<u8>>, ShuffleError> {
        self.prime()?;
        let mut out = BatchWriter::new();
        while let Some(Reverse((_, k, _, i))) = self.heap.pop() {
            let v = self.values[i].take().unwrap_or_default();
            out.push(&k);
            out.push(&v);
            self.advance(i, Some(&k))?;
            let cut = out.byte_len() >= target && (!whole_keys || self.peek_key() != Some(k.as_slice()));
            // The pair is in the batch: its buffers hold the next one read.
            self.spare = (k, v);
            if cut {
                break;
            }
        }
        Ok(if out.is_empty() { None } else { Some(out.finish()) })
    }
}

impl<S: PairSource> PairSource for Merge<S> {
    fn next_pair(&mut self) -> Result<Option<Pair>, ShuffleError> {
        Merge::next_pair(self)
    }

    fn next_tagged(&mut self) -> Result<Option<(Pair, u32)>, ShuffleError> {
        Merge::next_tagged(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_codec::batch::pairs;

    fn batch(items: &[(&str, &str)]) -> Vec<u8> {
        let mut w = BatchWriter::new();
        for (k, v) in items {
            w.push(k.as_bytes());
            w.push(v.as_bytes());
        }
        w.finish()
    }

    fn flat(b: &[u8]) -> Vec<(String, String)> {
        pairs(b)
            .map(|p| {
                let (k, v) = p.unwrap();
                (String::from_utf8(k.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap())
            })
            .collect()
    }

    #[test]
    fn merges_stably_and_chunks_between_keys() {
        let a = BatchSource::new(batch(&[("a", "a0"), ("c", "a1"), ("c", "a2")]));
        let b = BatchSource::new(batch(&[("b", "b0"), ("c", "b1"), ("d", "b2")]));
        let mut m = Merge::new(vec![a, b]);
        let mut chunks = Vec::new();
        while let Some(c) = m.next_chunk(1).unwrap() {
            chunks.push(flat(&c));
        }
        let keys: Vec<Vec<&str>> =
            chunks.iter().map(|c| c.iter().map(|(k, _)| k.as_str()).collect()).collect();
        assert_eq!(keys, vec![vec!["a"], vec!["b"], vec!["c", "c", "c"], vec!["d"]]);
        let cs: Vec<&str> = chunks[2].iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(cs, ["a1", "a2", "b1"]);
    }

    #[test]
    fn batches_may_cut_a_key_when_keys_need_not_be_whole() {
        let a = BatchSource::new(batch(&[("a", "a0"), ("c", "a1"), ("c", "a2")]));
        let b = BatchSource::new(batch(&[("c", "b1"), ("d", "b2")]));
        let mut m = Merge::new(vec![a, b]);
        let mut sizes = Vec::new();
        while let Some(c) = m.next_batch(1, false).unwrap() {
            sizes.push(flat(&c).len());
        }
        assert_eq!(sizes, [1; 5], "one pair a batch, the three c's apart");
    }

    #[test]
    fn unsorted_source_is_an_error_and_empty_merge_ends() {
        let mut m = Merge::new(vec![BatchSource::new(batch(&[("b", ""), ("a", "")]))]);
        assert!(m.next_chunk(1 << 20).is_err());
        let mut empty = Merge::new(Vec::<BatchSource<Vec<u8>>>::new());
        assert!(empty.next_chunk(10).unwrap().is_none());
    }
}
