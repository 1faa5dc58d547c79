//! How one value becomes the bytes of one batch entry, and back.
//!
//! This is the record encoding of the record contract, which the host reads
//! too (text lines, native sums, join and group values) and every SDK follows:
//! `docs/record-format.md` ("Records") specifies the bytes, and the golden
//! vectors in `codec/golden/records.json` pin them down. The Rust types map
//! onto the contract's as follows:
//!
//! | Rust type | contract type |
//! |---|---|
//! | [`String`] | string |
//! | [`Bytes`] | bytes |
//! | integers, `f32`, `f64`, `bool`, `char`, `()` | the same |
//! | `usize`, `isize` | `u64`, `i64` |
//! | tuples `(A, B)` … `(A, …, F)` | tuple |
//! | [`Vec<T>`] | list (so a `Vec<u8>` is a list of `u8`, not bytes) |
//! | [`Option<T>`] | option |
//! | [`Serde<T>`] and [`serde_record!`](crate::serde_record) types | postcard |

use std::fmt;
use weft_codec::batch::{self, PREFIX};
use weft_codec::key::{EncodeKey, Key};

/// A value that can be a record of a dataset (or the value of a pair).
///
/// Implemented for the types in the [module table](self); implement it for your
/// own types with [`serde_record!`](crate::serde_record), or wrap them in
/// [`Serde`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a weft record type",
    label = "records must implement `weft::Record`",
    note = "strings, numbers, bool, char, tuples, Vec, Option and weft::Bytes are records; \
            make a serde type one with `weft::serde_record!(Type)` or wrap it in `weft::Serde<T>`"
)]
pub trait Record: Sized {
    /// Append the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Decode a value from the whole of `bytes`.
    fn decode(bytes: &[u8]) -> Result<Self, RecordError>;

    /// The length of every encoding of this type, when it has one (the
    /// fixed-width numbers): a `Vec` of such values then decodes frame by
    /// frame at a known stride, without walking the frames twice.
    #[doc(hidden)]
    const WIDTH: Option<usize> = None;

    /// The encoding of `self` as a new buffer.
    fn to_record_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Bytes that do not decode as the record type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A fixed-width value has the wrong number of bytes.
    #[error("{type_name}: expected {expected} bytes, found {found}")]
    Width {
        /// The Rust type asked for.
        type_name: &'static str,
        /// Its width.
        expected: usize,
        /// The entry's length.
        found: usize,
    },
    /// A `String` entry is not UTF-8.
    #[error("{type_name}: not UTF-8 (valid up to byte {valid_up_to})")]
    Utf8 {
        /// The Rust type asked for.
        type_name: &'static str,
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// A tuple or option has the wrong number of framed elements.
    #[error("{type_name}: expected {expected} framed elements, found {found}")]
    Arity {
        /// The Rust type asked for.
        type_name: &'static str,
        /// How many it needs, e.g. `"2"` or `"0 or 1"`.
        expected: &'static str,
        /// How many the entry holds (counted up to the first surplus one).
        found: usize,
    },
    /// The framing or key encoding inside the entry is broken.
    #[error("{type_name}: {source}")]
    Codec {
        /// The Rust type asked for.
        type_name: &'static str,
        /// What the codec found.
        source: weft_codec::DecodeError,
    },
    /// A postcard-encoded value does not decode.
    #[error("{type_name}: postcard: {source}")]
    Postcard {
        /// The Rust type asked for.
        type_name: &'static str,
        /// What postcard found.
        source: postcard::Error,
    },
}

impl RecordError {
    fn codec<T>(source: weft_codec::DecodeError) -> Self {
        Self::Codec { type_name: std::any::type_name::<T>(), source }
    }
}

/// Append one batch-framed element (`u32` LE length, then the bytes `write` appends).
#[inline]
pub(crate) fn framed(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; PREFIX]);
    write(out);
    let Ok(len) = u32::try_from(out.len() - at - PREFIX) else {
        panic!("a record element is larger than 4 GiB, which a batch cannot frame");
    };
    out[at..at + PREFIX].copy_from_slice(&len.to_le_bytes());
}

impl Record for String {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    #[inline]
    fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        borrow_str(bytes).map(str::to_owned)
    }
}

/// A `String` record's text, borrowed from the batch (for `&str` parameters).
#[doc(hidden)]
#[inline]
pub fn borrow_str(bytes: &[u8]) -> Result<&str, RecordError> {
    std::str::from_utf8(bytes)
        .map_err(|e| RecordError::Utf8 { type_name: "String", valid_up_to: e.valid_up_to() })
}

macro_rules! fixed_width {
    ($($t:ty),*) => {$(
        impl Record for $t {
            const WIDTH: Option<usize> = Some(size_of::<$t>());
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                self.encode_key(out, true);
            }
            #[inline]
            fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
                check_width::<$t>(bytes, size_of::<$t>())?;
                <$t as Key>::from_key_bytes(bytes).map_err(RecordError::codec::<$t>)
            }
        }
    )*};
}
fixed_width!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64, bool);

impl Record for char {
    const WIDTH: Option<usize> = Some(4);
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_key(out, true);
    }
    #[inline]
    fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        check_width::<char>(bytes, 4)?;
        char::from_key_bytes(bytes).map_err(RecordError::codec::<char>)
    }
}

#[inline]
fn check_width<T>(bytes: &[u8], expected: usize) -> Result<(), RecordError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(RecordError::Width { type_name: std::any::type_name::<T>(), expected, found: bytes.len() })
    }
}

impl Record for usize {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u64).encode(out);
    }
    fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let wide = u64::decode(bytes)?;
        usize::try_from(wide).map_err(|_| {
            RecordError::codec::<usize>(weft_codec::DecodeError::BadKey {
                expected: "usize",
                reason: "value does not fit this platform's usize",
            })
        })
    }
}

impl Record for isize {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as i64).encode(out);
    }
    fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let wide = i64::decode(bytes)?;
        isize::try_from(wide).map_err(|_| {
            RecordError::codec::<isize>(weft_codec::DecodeError::BadKey {
                expected: "isize",
                reason: "value does not fit this platform's isize",
            })
        })
    }
}

impl Record for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        check_width::<()>(bytes, 0)
    }
}

/// Raw bytes as a record: the entry is the bytes themselves.
///
/// (A `Vec<u8>` is a `Vec<T>` like any other: one framed entry per byte.)
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub Vec<u8>);

impl Record for Bytes {
    #[inline]
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    #[inline]
    fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        Ok(Bytes(bytes.to_vec()))
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl<T: Record> Record for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        for item in self {
            framed(out, |o| item.encode(o));
        }
    }
    fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        if let Some(width) = T::WIDTH
            && let Some(out) = decode_fixed(bytes, width)
        {
            return out;
        }
        // Counting the frames first (a hop per element) lets the vector be
        // allocated once, at its size.
        let n = batch::count(bytes).map_err(RecordError::codec::<Self>)?;
        let mut out = Vec::with_capacity(n);
        for e in batch::entries(bytes) {
            out.push(T::decode(e.map_err(RecordError::codec::<Self>)?)?);
        }
        Ok(out)
    }
}

/// A `Vec` of fixed-width values, every frame `width` long: one pass at a
/// known stride. `None` when the frames are not all that long (the general
/// path then decodes them, or names what is wrong).
#[inline]
fn decode_fixed<T: Record>(bytes: &[u8], width: usize) -> Option<Result<Vec<T>, RecordError>> {
    let stride = PREFIX + width;
    if !bytes.len().is_multiple_of(stride) {
        return None;
    }
    let prefix = u32::try_from(width).ok()?.to_le_bytes();
    let mut out = Vec::with_capacity(bytes.len() / stride);
    for frame in bytes.chunks_exact(stride) {
        let (len, body) = frame.split_at(PREFIX);
        if len != prefix {
            return None;
        }
        match T::decode(body) {
            Ok(v) => out.push(v),
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(out))
}

impl<T: Record> Record for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        if let Some(v) = self {
            framed(out, |o| v.encode(o));
        }
    }
    fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut it = batch::entries(bytes);
        let value = match it.next() {
            None => return Ok(None),
            Some(e) => T::decode(e.map_err(RecordError::codec::<Self>)?)?,
        };
        match it.next() {
            None => Ok(Some(value)),
            Some(_) => Err(RecordError::Arity {
                type_name: std::any::type_name::<Self>(),
                expected: "0 or 1",
                found: 2,
            }),
        }
    }
}

/// The next framed element of a tuple, or an arity error.
#[inline]
fn element<'a, T>(
    it: &mut batch::Entries<'a>,
    index: usize,
    arity: &'static str,
) -> Result<&'a [u8], RecordError> {
    match it.next() {
        Some(Ok(e)) => Ok(e),
        Some(Err(e)) => Err(RecordError::codec::<T>(e)),
        None => {
            Err(RecordError::Arity { type_name: std::any::type_name::<T>(), expected: arity, found: index })
        }
    }
}

macro_rules! tuple {
    ($arity:literal; $($name:ident $idx:tt),+) => {
        impl<$($name: Record),+> Record for ($($name,)+) {
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                $(framed(out, |o| self.$idx.encode(o));)+
            }
            #[inline]
            fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
                let mut it = batch::entries(bytes);
                let value = ($($name::decode(element::<Self>(&mut it, $idx, stringify!($arity))?)?,)+);
                if it.next().is_some() {
                    return Err(RecordError::Arity {
                        type_name: std::any::type_name::<Self>(),
                        expected: stringify!($arity),
                        found: $arity + 1,
                    });
                }
                Ok(value)
            }
        }
    };
}
tuple!(1; A 0);
tuple!(2; A 0, B 1);
tuple!(3; A 0, B 1, C 2);
tuple!(4; A 0, B 1, C 2, D 3);
tuple!(5; A 0, B 1, C 2, D 3, E 4);
tuple!(6; A 0, B 1, C 2, D 3, E 4, F 5);

/// Any serde type as a record, encoded with postcard.
///
/// ```
/// use weft::{Record, Serde};
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Point { x: i32, y: i32 }
///
/// let bytes = Serde(Point { x: 1, y: -2 }).to_record_bytes();
/// assert_eq!(Serde::<Point>::decode(&bytes).unwrap().0, Point { x: 1, y: -2 });
/// ```
///
/// # Panics
/// Encoding panics when postcard cannot serialize the value (for example a map
/// or sequence whose length serde does not know in advance); that is a bug in
/// the type's `Serialize`, not in the data.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serde<T>(pub T);

impl<T: serde::Serialize + serde::de::DeserializeOwned> Record for Serde<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        postcard_encode(&self.0, out);
    }
    fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        postcard_decode(bytes).map(Serde)
    }
}

#[doc(hidden)]
pub fn postcard_encode<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let buf = std::mem::take(out);
    match postcard::to_extend(value, buf) {
        Ok(buf) => *out = buf,
        Err(e) => panic!("{} does not serialize with postcard: {e}", std::any::type_name::<T>()),
    }
}

#[doc(hidden)]
pub fn postcard_decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    postcard::from_bytes(bytes)
        .map_err(|source| RecordError::Postcard { type_name: std::any::type_name::<T>(), source })
}

/// Make serde types records, encoded with postcard (like [`Serde`], without the
/// wrapper).
///
/// ```
/// use weft::Record;
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Visit { url: String, millis: u32 }
/// weft::serde_record!(Visit);
///
/// let v = Visit { url: "/".into(), millis: 12 };
/// assert_eq!(Visit::decode(&v.to_record_bytes()).unwrap(), v);
/// ```
#[macro_export]
macro_rules! serde_record {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::Record for $t {
            fn encode(&self, out: &mut ::std::vec::Vec<u8>) {
                $crate::__private::postcard_encode(self, out)
            }
            fn decode(bytes: &[u8]) -> ::std::result::Result<Self, $crate::RecordError> {
                $crate::__private::postcard_decode(bytes)
            }
        }
    )+};
}

impl fmt::Display for Bytes {
    /// Lossy UTF-8, for logging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weft_codec::batch::BatchWriter;

    fn round_trip<T: Record + PartialEq + fmt::Debug>(v: &T) -> Result<(), TestCaseError> {
        let bytes = v.to_record_bytes();
        prop_assert_eq!(&T::decode(&bytes)?, v);
        Ok(())
    }

    #[test]
    fn string_is_raw_utf8() {
        assert_eq!("héllo".to_string().to_record_bytes(), "héllo".as_bytes());
        assert!(matches!(String::decode(b"a\xffb"), Err(RecordError::Utf8 { valid_up_to: 1, .. })));
    }

    #[test]
    fn i64_is_the_key_encoding_the_host_sums() {
        for v in [i64::MIN, -1, 0, 1, 42, i64::MAX] {
            let bytes = v.to_record_bytes();
            assert_eq!(bytes, v.to_key_bytes());
            assert_eq!(i64::from_key_bytes(&bytes), Ok(v));
        }
        assert_eq!(1i64.to_record_bytes(), [0x80, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn wrong_width_is_an_error() {
        assert_eq!(
            i64::decode(&[1, 2, 3]),
            Err(RecordError::Width { type_name: "i64", expected: 8, found: 3 })
        );
        assert!(bool::decode(&[2]).is_err());
        assert!(<()>::decode(&[0]).is_err());
    }

    #[test]
    fn join_values_are_framed_like_the_host_builds_them() {
        let (left, right) = ("x".to_string(), 7i64);
        let mut w = BatchWriter::new();
        w.push(&left.to_record_bytes());
        w.push(&right.to_record_bytes());
        let host_built = w.finish();
        assert_eq!((left.clone(), right).to_record_bytes(), host_built);
        assert_eq!(<(String, i64)>::decode(&host_built), Ok((left, right)));
    }

    #[test]
    fn group_values_are_framed_like_the_host_builds_them() {
        let values = vec![3i64, 1, 2];
        let mut w = BatchWriter::new();
        for v in &values {
            w.push(&v.to_record_bytes());
        }
        let host_built = w.finish();
        assert_eq!(values.to_record_bytes(), host_built);
        assert_eq!(Vec::<i64>::decode(&host_built), Ok(values));
    }

    #[test]
    fn tuple_arity_is_checked() {
        let three = (1u8, 2u8, 3u8).to_record_bytes();
        assert!(matches!(<(u8, u8)>::decode(&three), Err(RecordError::Arity { found: 3, .. })));
        let one = (1u8,).to_record_bytes();
        assert!(matches!(<(u8, u8)>::decode(&one), Err(RecordError::Arity { found: 1, .. })));
        assert!(matches!(<Option<u8>>::decode(&three), Err(RecordError::Arity { .. })));
    }

    #[test]
    fn option_is_zero_or_one_entry() {
        assert!(None::<String>.to_record_bytes().is_empty());
        assert_eq!(Some(String::new()).to_record_bytes(), [0, 0, 0, 0]);
        assert_eq!(Option::<String>::decode(&[0, 0, 0, 0]), Ok(Some(String::new())));
    }

    #[test]
    fn bytes_are_raw_and_vec_u8_is_framed() {
        assert_eq!(Bytes(vec![1, 2]).to_record_bytes(), [1, 2]);
        assert_eq!(vec![1u8, 2].to_record_bytes(), [1, 0, 0, 0, 1, 1, 0, 0, 0, 2]);
    }

    #[test]
    fn a_vec_of_numbers_with_a_frame_of_another_width_is_an_error_naming_it() {
        let mut w = BatchWriter::new();
        w.push(&1.5f64.to_record_bytes());
        w.push(&[1, 2, 3, 4]);
        w.push(&[1, 2, 3, 4]);
        // 12 + 8 + 8 bytes: not a multiple of the stride, the general path names the frame.
        assert_eq!(
            Vec::<f64>::decode(&w.finish()),
            Err(RecordError::Width { type_name: "f64", expected: 8, found: 4 })
        );
        // A multiple of the stride (12 + 12), but the second frame is 4 bytes long.
        let mut bytes = 2.5f64.to_record_bytes().to_vec();
        bytes.splice(0..0, 8u32.to_le_bytes());
        bytes.extend_from_slice(&4u32.to_le_bytes());
        bytes.extend_from_slice(&[0; 8]);
        assert_eq!(
            Vec::<f64>::decode(&bytes),
            Err(RecordError::Width { type_name: "f64", expected: 8, found: 4 })
        );
        assert_eq!(Vec::<f64>::decode(&[]), Ok(vec![]));
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Visit {
        url: String,
        tags: Vec<String>,
        score: Option<f64>,
    }
    crate::serde_record!(Visit);

    #[test]
    fn serde_types_use_postcard() {
        let v = Visit { url: "/a".into(), tags: vec!["x".into()], score: Some(0.5) };
        assert_eq!(v.to_record_bytes(), postcard::to_allocvec(&v).unwrap());
        assert_eq!(Visit::decode(&v.to_record_bytes()), Ok(v.clone()));
        assert_eq!(Serde(v.clone()).to_record_bytes(), v.to_record_bytes());
        assert!(matches!(Visit::decode(&[0xff]), Err(RecordError::Postcard { .. })));
    }

    proptest! {
        #[test]
        fn scalars(a: i64, b: u32, c: i8, d: bool, e: char, f: u128, g: usize, h: isize) {
            round_trip(&a)?; round_trip(&b)?; round_trip(&c)?; round_trip(&d)?;
            round_trip(&e)?; round_trip(&f)?; round_trip(&g)?; round_trip(&h)?;
        }

        #[test]
        fn floats_keep_their_bits(a: f64, b: f32) {
            prop_assert_eq!(f64::decode(&a.to_record_bytes())?.to_bits(), a.to_bits());
            prop_assert_eq!(f32::decode(&b.to_record_bytes())?.to_bits(), b.to_bits());
        }

        #[test]
        fn strings(s: String) { round_trip(&s)?; }

        #[test]
        fn vecs_of_numbers(a: Vec<f64>, b: Vec<u8>, c: Vec<i32>, d: Vec<char>, e: Vec<Vec<u16>>) {
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&Vec::<f64>::decode(&a.to_record_bytes())?), bits(&a));
            round_trip(&b)?; round_trip(&c)?; round_trip(&d)?; round_trip(&e)?;
        }

        #[test]
        fn nested(v: Vec<(String, Option<i64>, Vec<u8>)>, o: Option<Option<String>>, t: (u8, String, bool, i32, char, Vec<String>)) {
            round_trip(&v)?; round_trip(&o)?; round_trip(&t)?;
        }

        #[test]
        fn serde(url: String, tags: Vec<String>, score: Option<f64>) {
            let v = Visit { url, tags, score: score.filter(|s| !s.is_nan()) };
            round_trip(&v)?;
        }

        #[test]
        fn garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = <(String, Vec<i64>, Option<(u8, char)>)>::decode(&buf);
            let _ = Vec::<Vec<String>>::decode(&buf);
            let _ = Visit::decode(&buf);
        }
    }
}
