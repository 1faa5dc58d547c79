//! How records sit in a batch: one entry each ([`Plain`]) or two ([`Pair`]).
//!
//! A user function's input and output each have a layout, chosen by the
//! attribute macros from its signature: a 2-tuple parameter or result is a
//! [`Pair`] (key entry, then value entry), anything else is [`Plain`]. The layout
//! also names the dataset type that holds such records, which is how
//! `ds.map(one)` knows to return a [`PairDataset`](crate::PairDataset).

use crate::dataset::{Dataset, Handle, PairDataset};
use crate::record::{Record, RecordError};
use std::marker::PhantomData;
use weft_codec::DecodeError;
use weft_codec::batch::{self, BatchWriter};
use weft_codec::key::Key;

/// The arrangement of one record in a batch. Implemented by [`Plain`] and [`Pair`] only.
pub trait Layout: 'static {
    /// The Rust value of one record.
    type Item;
    /// The dataset type holding such records.
    type Dataset;
    /// Whether records are (key, value) pairs.
    const KEYED: bool;
    /// One record's undecoded entries.
    type Raw<'a>: Copy;
    /// Iterates over a batch record by record.
    type Reader<'a>: Iterator<Item = Result<Self::Raw<'a>, DecodeError>>;

    /// The records of `batch`, undecoded.
    fn reader(batch: &[u8]) -> Self::Reader<'_>;
    /// Decode one record.
    fn decode(raw: Self::Raw<'_>) -> Result<Self::Item, RecordError>;
    /// Append one record to a batch.
    fn encode(item: &Self::Item, out: &mut BatchWriter);
    /// Append one record's entries unchanged.
    fn copy(raw: Self::Raw<'_>, out: &mut BatchWriter);
    #[doc(hidden)]
    fn dataset(handle: Handle) -> Self::Dataset;
    /// `W`'s sink in front of a sink folding records of this layout with an
    /// erased reducer (pairs only).
    #[doc(hidden)]
    fn combining<W: crate::fuse::Wrap<Self::Item>>(
        _reducer: Box<dyn std::any::Any>,
    ) -> Option<Box<dyn std::any::Any>> {
        None
    }
}

/// One entry per record, encoded with [`Record`].
pub struct Plain<T>(PhantomData<fn() -> T>);

/// Two entries per record: the key with the order-preserving [`Key`] encoding,
/// then the value with [`Record`].
pub struct Pair<K, V>(PhantomData<fn() -> (K, V)>);

impl<T: Record + 'static> Layout for Plain<T> {
    type Item = T;
    type Dataset = Dataset<T>;
    const KEYED: bool = false;
    type Raw<'a> = &'a [u8];
    type Reader<'a> = batch::Entries<'a>;

    #[inline]
    fn reader(batch: &[u8]) -> Self::Reader<'_> {
        batch::entries(batch)
    }
    #[inline]
    fn decode(raw: &[u8]) -> Result<T, RecordError> {
        T::decode(raw)
    }
    #[inline]
    fn encode(item: &T, out: &mut BatchWriter) {
        out.push_with(|o| item.encode(o));
    }
    #[inline]
    fn copy(raw: &[u8], out: &mut BatchWriter) {
        out.push(raw);
    }
    fn dataset(handle: Handle) -> Dataset<T> {
        Dataset::from_handle(handle)
    }
}

impl<K: Key + 'static, V: Record + 'static> Layout for Pair<K, V> {
    type Item = (K, V);
    type Dataset = PairDataset<K, V>;
    const KEYED: bool = true;
    type Raw<'a> = (&'a [u8], &'a [u8]);
    type Reader<'a> = batch::Pairs<'a>;

    #[inline]
    fn reader(batch: &[u8]) -> Self::Reader<'_> {
        batch::pairs(batch)
    }
    #[inline]
    fn decode((k, v): (&[u8], &[u8])) -> Result<(K, V), RecordError> {
        let key = K::from_key_bytes(k)
            .map_err(|source| RecordError::Codec { type_name: std::any::type_name::<K>(), source })?;
        Ok((key, V::decode(v)?))
    }
    #[inline]
    fn encode((k, v): &(K, V), out: &mut BatchWriter) {
        out.push_with(|o| k.encode_key(o, true));
        out.push_with(|o| v.encode(o));
    }
    #[inline]
    fn copy((k, v): (&[u8], &[u8]), out: &mut BatchWriter) {
        out.push(k);
        out.push(v);
    }
    fn dataset(handle: Handle) -> PairDataset<K, V> {
        PairDataset::from_handle(handle)
    }
    fn combining<W: crate::fuse::Wrap<(K, V)>>(
        reducer: Box<dyn std::any::Any>,
    ) -> Option<Box<dyn std::any::Any>> {
        crate::fuse::combining_sink::<W, K, V>(reducer)
    }
}

/// Encode records into a new batch.
pub(crate) fn encode_all<L: Layout>(items: impl IntoIterator<Item = L::Item>) -> Vec<u8> {
    let mut out = BatchWriter::new();
    for item in items {
        L::encode(&item, &mut out);
    }
    out.finish()
}

/// Decode every record of a batch.
pub(crate) fn decode_all<L: Layout>(batch: &[u8]) -> Result<Vec<L::Item>, RecordError> {
    L::reader(batch)
        .map(|raw| L::decode(raw.map_err(|source| RecordError::Codec { type_name: "batch", source })?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_codec::key::EncodeKey;

    #[test]
    fn pairs_are_key_entry_then_value_entry() {
        let batch = encode_all::<Pair<String, i64>>([("b".to_string(), 2), ("a".to_string(), -1)]);
        let mut expected = BatchWriter::new();
        for (k, v) in [("b", 2i64), ("a", -1)] {
            expected.push(&k.to_key_bytes());
            expected.push(&v.to_record_bytes());
        }
        assert_eq!(batch, expected.finish());
        assert_eq!(
            decode_all::<Pair<String, i64>>(&batch),
            Ok(vec![("b".to_string(), 2), ("a".to_string(), -1)])
        );
    }

    #[test]
    fn composite_keys_use_the_key_encoding_not_record_framing() {
        let batch = encode_all::<Pair<(String, u8), ()>>([(("a".to_string(), 1), ())]);
        let (k, _) = batch::pairs(&batch).next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(k, b"a\0\0\x01");
    }

    #[test]
    fn plain_records_are_one_entry_each() {
        let batch = encode_all::<Plain<String>>(["x".to_string(), String::new()]);
        assert_eq!(batch, [1, 0, 0, 0, b'x', 0, 0, 0, 0]);
        assert!(decode_all::<Plain<String>>(&batch[..3]).is_err());
    }
}
