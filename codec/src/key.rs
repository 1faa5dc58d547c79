//! The order-preserving key encoding.
//!
//! For any two values `a` and `b` of one key type, `a.cmp(&b)` equals
//! `a.to_key_bytes().cmp(&b.to_key_bytes())`, and equal values encode to equal
//! bytes. The host relies on this to hash-partition, sort and group pairs on raw
//! bytes without calling back into the guest.
//!
//! The encoding, type by type, is part of the record contract that every SDK
//! follows: `docs/record-format.md` ("Keys") specifies it, and the golden
//! vectors in `codec/golden/records.json` pin it down byte for byte.

use crate::DecodeError;
use crate::schema::Schema;

/// A value with an order-preserving byte encoding.
pub trait EncodeKey {
    /// Append the encoding of `self` to `out`. `last` is true when nothing follows
    /// in the enclosing key, which lets variable-length types skip their terminator.
    fn encode_key(&self, out: &mut Vec<u8>, last: bool);

    /// The encoding of `self` as a whole key.
    fn to_key_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_key(&mut out, true);
        out
    }

    /// The encoding of `self` as a whole key when `self` already holds it
    /// (a `String` or byte-vector key is its own bytes), so that a caller can
    /// hash or compare the key without encoding it; `None` otherwise.
    #[inline]
    fn key_bytes_in_place(&self) -> Option<&[u8]> {
        None
    }
}

/// A key type that also decodes.
pub trait Key: EncodeKey + Sized {
    /// Decode one value from the front of `input`, advancing it.
    fn decode_key(input: &mut &[u8], last: bool) -> Result<Self, DecodeError>;

    /// The encoding of `self` as a whole key, reusing `self`'s own buffer
    /// where [`key_bytes_in_place`](EncodeKey::key_bytes_in_place) says it is one.
    #[inline]
    fn into_key_bytes(self) -> Vec<u8> {
        self.to_key_bytes()
    }

    /// The type's [`Schema`], with which generic
    /// steps transcode between its key and record encodings; `None` (the
    /// default, for types defined outside this crate) when it has none, and
    /// then the operations that need it (`keys()`, `key_by`, `distinct`, ...)
    /// are refused where the dataset is built.
    fn schema() -> Option<crate::schema::Schema> {
        None
    }

    /// Decode a whole key; trailing bytes are an error.
    fn from_key_bytes(mut bytes: &[u8]) -> Result<Self, DecodeError> {
        let value = Self::decode_key(&mut bytes, true)?;
        if bytes.is_empty() { Ok(value) } else { Err(bad::<Self>("trailing bytes after key")) }
    }
}

fn bad<T>(reason: &'static str) -> DecodeError {
    DecodeError::BadKey { expected: std::any::type_name::<T>(), reason }
}

fn take<'a, T>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if input.len() < n {
        return Err(bad::<T>("key too short"));
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

impl<T: EncodeKey + ?Sized> EncodeKey for &T {
    fn encode_key(&self, out: &mut Vec<u8>, last: bool) {
        (**self).encode_key(out, last)
    }
    #[inline]
    fn key_bytes_in_place(&self) -> Option<&[u8]> {
        (**self).key_bytes_in_place()
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl EncodeKey for $t {
            #[inline]
            fn encode_key(&self, out: &mut Vec<u8>, _last: bool) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
        impl Key for $t {
            fn schema() -> Option<Schema> {
                Some(Schema::Uint(size_of::<$t>() as u8))
            }
            #[inline]
            fn decode_key(input: &mut &[u8], _last: bool) -> Result<Self, DecodeError> {
                let raw = take::<$t>(input, size_of::<$t>())?;
                let mut a = [0u8; size_of::<$t>()];
                a.copy_from_slice(raw);
                Ok(<$t>::from_be_bytes(a))
            }
        }
    )*};
}
unsigned!(u8, u16, u32, u128);

impl EncodeKey for u64 {
    #[inline]
    fn encode_key(&self, out: &mut Vec<u8>, _last: bool) {
        out.extend_from_slice(&swap_bytes(self.to_le_bytes()));
    }
}

impl Key for u64 {
    fn schema() -> Option<Schema> {
        Some(Schema::Uint(8))
    }
    #[inline]
    fn decode_key(input: &mut &[u8], _last: bool) -> Result<Self, DecodeError> {
        let raw = take::<u64>(input, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(raw);
        Ok(u64::from_le_bytes(swap_bytes(a)))
    }
}

/// Eight bytes in reverse order: a big-endian `u64`'s bytes as little-endian
/// ones and back. WebAssembly has no byte swap instruction, so this is about
/// forty instructions (a `u64` key or record — `i64`, `u64`, `f64` — costs two
/// of these per round trip) unless the guest is built with SIMD (`-C
/// target-feature=+simd128`, as `cargo xtask guests` builds them): then it is
/// one byte shuffle. That is fuel, what a task is metered and limited by (a
/// fifth less in logistic regression), more than time: wasmtime compiles
/// the forty instructions to about one machine instruction anyway.
#[inline(always)]
fn swap_bytes(bytes: [u8; 8]) -> [u8; 8] {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::{i8x16, i8x16_swizzle, u64x2, u64x2_extract_lane};
        let v = u64x2(u64::from_le_bytes(bytes), 0);
        let reversed = i8x16_swizzle(v, i8x16(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8));
        u64x2_extract_lane::<0>(reversed).to_le_bytes()
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        u64::from_le_bytes(bytes).swap_bytes().to_le_bytes()
    }
}

macro_rules! signed {
    ($($t:ty => $u:ty),*) => {$(
        impl EncodeKey for $t {
            #[inline]
            fn encode_key(&self, out: &mut Vec<u8>, last: bool) {
                ((*self as $u) ^ (1 << (<$u>::BITS - 1))).encode_key(out, last)
            }
        }
        impl Key for $t {
            fn schema() -> Option<Schema> {
                Some(Schema::Int(size_of::<$t>() as u8))
            }
            #[inline]
            fn decode_key(input: &mut &[u8], last: bool) -> Result<Self, DecodeError> {
                Ok((<$u>::decode_key(input, last)? ^ (1 << (<$u>::BITS - 1))) as $t)
            }
        }
    )*};
}
signed!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128);

macro_rules! float {
    ($($t:ty => $u:ty, $ordered:ident, $from_ordered:ident);*) => {$(
        /// The float's bits in the key encoding's order (read as a
        /// big-endian integer): every bit flipped when negative, else the
        /// sign bit flipped, so the integers compare as IEEE total order.
        #[inline]
        pub fn $ordered(v: $t) -> $u {
            let bits = v.to_bits();
            let sign = 1 << (<$u>::BITS - 1);
            if bits & sign != 0 { !bits } else { bits ^ sign }
        }

        /// The float whose ordered bits (see above) are `ordered`.
        #[inline]
        pub fn $from_ordered(ordered: $u) -> $t {
            let sign = 1 << (<$u>::BITS - 1);
            <$t>::from_bits(if ordered & sign != 0 { ordered ^ sign } else { !ordered })
        }

        impl EncodeKey for $t {
            #[inline]
            fn encode_key(&self, out: &mut Vec<u8>, last: bool) {
                $ordered(*self).encode_key(out, last)
            }
        }
        impl Key for $t {
            fn schema() -> Option<Schema> {
                Some(Schema::Float(size_of::<$t>() as u8))
            }
            #[inline]
            fn decode_key(input: &mut &[u8], last: bool) -> Result<Self, DecodeError> {
                Ok($from_ordered(<$u>::decode_key(input, last)?))
            }
        }
    )*};
}
float!(f32 => u32, ordered_f32, f32_from_ordered; f64 => u64, ordered_f64, f64_from_ordered);

impl EncodeKey for bool {
    fn encode_key(&self, out: &mut Vec<u8>, _last: bool) {
        out.push(u8::from(*self));
    }
}
impl Key for bool {
    fn schema() -> Option<Schema> {
        Some(Schema::Bool)
    }
    fn decode_key(input: &mut &[u8], _last: bool) -> Result<Self, DecodeError> {
        match take::<bool>(input, 1)? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(bad::<bool>("bool byte is neither 0 nor 1")),
        }
    }
}

impl EncodeKey for char {
    fn encode_key(&self, out: &mut Vec<u8>, last: bool) {
        u32::from(*self).encode_key(out, last)
    }
}
impl Key for char {
    fn schema() -> Option<Schema> {
        Some(Schema::Char)
    }
    fn decode_key(input: &mut &[u8], last: bool) -> Result<Self, DecodeError> {
        char::from_u32(u32::decode_key(input, last)?).ok_or_else(|| bad::<char>("not a Unicode scalar value"))
    }
}

impl EncodeKey for () {
    fn encode_key(&self, _out: &mut Vec<u8>, _last: bool) {}
}
impl Key for () {
    fn schema() -> Option<Schema> {
        Some(Schema::Unit)
    }
    fn decode_key(_input: &mut &[u8], _last: bool) -> Result<Self, DecodeError> {
        Ok(())
    }
}

pub(crate) fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>, last: bool) {
    if last {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(bytes.len() + 2);
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

fn decode_bytes<T>(input: &mut &[u8], last: bool) -> Result<Vec<u8>, DecodeError> {
    if last {
        let all = input.to_vec();
        *input = &[];
        return Ok(all);
    }
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match input.get(i..i + 1) {
            None => return Err(bad::<T>("unterminated string")),
            Some([0]) => match input.get(i + 1) {
                Some(0) => {
                    *input = &input[i + 2..];
                    return Ok(out);
                }
                Some(0xFF) => {
                    out.push(0);
                    i += 2;
                }
                _ => return Err(bad::<T>("bad escape after 0x00")),
            },
            Some(&[b]) => {
                out.push(b);
                i += 1;
            }
            Some(_) => unreachable!("a one-byte range"),
        }
    }
}

impl EncodeKey for [u8] {
    fn encode_key(&self, out: &mut Vec<u8>, last: bool) {
        encode_bytes(self, out, last)
    }
    #[inline]
    fn key_bytes_in_place(&self) -> Option<&[u8]> {
        Some(self)
    }
}
impl EncodeKey for Vec<u8> {
    fn encode_key(&self, out: &mut Vec<u8>, last: bool) {
        encode_bytes(self, out, last)
    }
    #[inline]
    fn key_bytes_in_place(&self) -> Option<&[u8]> {
        Some(self)
    }
}
impl Key for Vec<u8> {
    fn decode_key(input: &mut &[u8], last: bool) -> Result<Self, DecodeError> {
        decode_bytes::<Vec<u8>>(input, last)
    }
    #[inline]
    fn into_key_bytes(self) -> Vec<u8> {
        self
    }
}
impl EncodeKey for str {
    fn encode_key(&self, out: &mut Vec<u8>, last: bool) {
        encode_bytes(self.as_bytes(), out, last)
    }
    #[inline]
    fn key_bytes_in_place(&self) -> Option<&[u8]> {
        Some(self.as_bytes())
    }
}
impl EncodeKey for String {
    fn encode_key(&self, out: &mut Vec<u8>, last: bool) {
        encode_bytes(self.as_bytes(), out, last)
    }
    #[inline]
    fn key_bytes_in_place(&self) -> Option<&[u8]> {
        Some(self.as_bytes())
    }
}
impl Key for String {
    fn schema() -> Option<Schema> {
        Some(Schema::Str)
    }
    fn decode_key(input: &mut &[u8], last: bool) -> Result<Self, DecodeError> {
        String::from_utf8(decode_bytes::<String>(input, last)?).map_err(|_| bad::<String>("not UTF-8"))
    }
    #[inline]
    fn into_key_bytes(self) -> Vec<u8> {
        self.into_bytes()
    }
}

impl<T: EncodeKey> EncodeKey for Option<T> {
    fn encode_key(&self, out: &mut Vec<u8>, last: bool) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode_key(out, last);
            }
        }
    }
}
impl<T: Key> Key for Option<T> {
    fn schema() -> Option<Schema> {
        Some(Schema::Option(Box::new(T::schema()?)))
    }
    fn decode_key(input: &mut &[u8], last: bool) -> Result<Self, DecodeError> {
        match take::<Self>(input, 1)? {
            [0] => Ok(None),
            [1] => Ok(Some(T::decode_key(input, last)?)),
            _ => Err(bad::<Self>("option tag is neither 0 nor 1")),
        }
    }
}

macro_rules! tuple {
    ($($name:ident)+ ; $lastname:ident) => {
        #[allow(non_snake_case)]
        impl<$($name: EncodeKey,)+ $lastname: EncodeKey> EncodeKey for ($($name,)+ $lastname,) {
            fn encode_key(&self, out: &mut Vec<u8>, last: bool) {
                let ($($name,)+ $lastname,) = self;
                $($name.encode_key(out, false);)+
                $lastname.encode_key(out, last);
            }
        }
        impl<$($name: Key,)+ $lastname: Key> Key for ($($name,)+ $lastname,) {
            fn schema() -> Option<Schema> {
                Some(Schema::Tuple(vec![$($name::schema()?,)+ $lastname::schema()?]))
            }
            fn decode_key(input: &mut &[u8], last: bool) -> Result<Self, DecodeError> {
                Ok(($($name::decode_key(input, false)?,)+ $lastname::decode_key(input, last)?,))
            }
        }
    };
}
tuple!(A; B);
tuple!(A B; C);
tuple!(A B C; D);
tuple!(A B C D; E);
tuple!(A B C D E; F);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    fn same_order<T: Key + std::fmt::Debug + PartialEq + Clone>(
        a: &T,
        b: &T,
        ord: Ordering,
    ) -> Result<(), TestCaseError> {
        let (ea, eb) = (a.to_key_bytes(), b.to_key_bytes());
        prop_assert_eq!(ea.cmp(&eb), ord, "{:?} vs {:?}", a, b);
        // The shortcuts give the same bytes as encoding.
        if let Some(in_place) = a.key_bytes_in_place() {
            prop_assert_eq!(in_place, ea.as_slice());
        }
        prop_assert_eq!(&a.clone().into_key_bytes(), &ea);
        prop_assert_eq!(&T::from_key_bytes(&ea)?, a);
        prop_assert_eq!(&T::from_key_bytes(&eb)?, b);
        Ok(())
    }

    #[test]
    fn only_whole_byte_strings_are_keys_in_place() {
        assert_eq!("ab".to_string().key_bytes_in_place(), Some(&b"ab"[..]));
        assert_eq!(vec![0u8, 1].key_bytes_in_place(), Some(&[0u8, 1][..]));
        let by_ref: &String = &"ab".to_string();
        assert_eq!(EncodeKey::key_bytes_in_place(&by_ref), Some(&b"ab"[..]));
        assert_eq!(7i64.key_bytes_in_place(), None);
        assert_eq!(Some("ab".to_string()).key_bytes_in_place(), None);
        assert_eq!(("ab".to_string(), 1u8).key_bytes_in_place(), None);
    }

    proptest! {
        #[test]
        fn i64_order(a: i64, b: i64) { same_order(&a, &b, a.cmp(&b))?; }
        #[test]
        fn u32_order(a: u32, b: u32) { same_order(&a, &b, a.cmp(&b))?; }
        #[test]
        fn i8_order(a: i8, b: i8) { same_order(&a, &b, a.cmp(&b))?; }
        #[test]
        fn f64_order(a: f64, b: f64) {
            let (ea, eb) = (a.to_key_bytes(), b.to_key_bytes());
            prop_assert_eq!(ea.cmp(&eb), a.total_cmp(&b));
            prop_assert_eq!(f64::from_key_bytes(&ea)?.to_bits(), a.to_bits());
        }
        #[test]
        fn string_order(a: String, b: String) { same_order(&a, &b, a.cmp(&b))?; }
        #[test]
        fn bytes_with_zeros_order(a in proptest::collection::vec(0u8..3, 0..8), b in proptest::collection::vec(0u8..3, 0..8)) {
            same_order(&(a.clone(), 7u8), &(b.clone(), 7u8), a.cmp(&b))?;
        }
        #[test]
        fn tuple_order(a: (String, i32, Option<u8>), b: (String, i32, Option<u8>)) { same_order(&a, &b, a.cmp(&b))?; }
        #[test]
        fn nested_strings(a: (String, String), b: (String, String)) { same_order(&a, &b, a.cmp(&b))?; }
        #[test]
        fn garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = <(String, i64, Option<Vec<u8>>)>::from_key_bytes(&buf);
            let _ = <(char, bool, f32)>::from_key_bytes(&buf);
        }
    }

    #[test]
    fn trailing_string_is_raw_utf8() {
        assert_eq!("hello".to_key_bytes(), b"hello");
        assert_eq!(("a", "b").to_key_bytes(), b"a\0\0b");
    }

    #[test]
    fn prefix_string_sorts_first_inside_tuples() {
        assert!(("a", 9u8).to_key_bytes() < ("ab", 0u8).to_key_bytes());
        assert!(("a\0", 0u8).to_key_bytes() > ("a", 9u8).to_key_bytes());
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut b = 5u32.to_key_bytes();
        b.push(0);
        assert!(u32::from_key_bytes(&b).is_err());
    }
}
