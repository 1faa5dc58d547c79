//! Key schemas: the shape of a key type, enough to transcode between its
//! [`key`](crate::key) encoding and its record encoding without the type.
//!
//! A dataset operation that moves a value between the key and the value side
//! of a pair (`keys()`, `key_by`, `count_by_value`, `distinct`, `top`) must
//! change its encoding: a key is order-preserving (`("a", 2)` is `a 00 00`
//! then 8 bytes), a record frames the elements of a tuple. Such an operation is
//! type-generic, so no per-type user function exists to do it; instead the SDK
//! derives the type's [`Schema`] (`Key::schema`) and the step that runs it
//! transcodes bytes with it. Schemas travel as short text (see
//! [`Schema::parse`]): `i64`, `s` (a string), `(s,u32)`, `?f64`.
//!
//! The record encoding of a scalar (integers, floats, `bool`, `char`) is its
//! key encoding, and a string is its raw UTF-8 either way when it is last in a
//! key; tuples and options differ.

use crate::DecodeError;
use crate::batch::{self, PREFIX};
use std::fmt;

/// The shape of a key type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schema {
    /// A signed integer of this many bytes (`i8`…`i128`).
    Int(u8),
    /// An unsigned integer of this many bytes (`u8`…`u128`).
    Uint(u8),
    /// An IEEE float of this many bytes (`f32`, `f64`).
    Float(u8),
    /// `bool`.
    Bool,
    /// `char`.
    Char,
    /// `String`.
    Str,
    /// `()`.
    Unit,
    /// `Option<T>`.
    Option(Box<Schema>),
    /// A tuple of two to six elements.
    Tuple(Vec<Schema>),
}

/// Bytes that do not fit a schema, or a schema text that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The schema text is malformed.
    #[error("key schema `{text}` does not parse at byte {at}")]
    Parse {
        /// The text.
        text: String,
        /// Where it went wrong.
        at: usize,
    },
    /// The bytes do not hold a value of the schema.
    #[error("bytes do not hold a `{schema}`: {reason}")]
    Mismatch {
        /// The schema, as text.
        schema: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A framed entry is malformed.
    #[error(transparent)]
    Framing(#[from] DecodeError),
}

impl Schema {
    /// Parse the text [`Display`](fmt::Display) writes.
    ///
    /// # Errors
    /// [`SchemaError::Parse`] with where it stopped.
    pub fn parse(text: &str) -> Result<Schema, SchemaError> {
        let mut at = 0;
        let schema =
            parse_at(text.as_bytes(), &mut at).ok_or(SchemaError::Parse { text: text.into(), at })?;
        if at != text.len() {
            return Err(SchemaError::Parse { text: text.into(), at });
        }
        Ok(schema)
    }

    /// The width of a scalar's encoding (either encoding), `None` for others.
    fn width(&self) -> Option<usize> {
        match self {
            Schema::Int(w) | Schema::Uint(w) | Schema::Float(w) => Some(*w as usize),
            Schema::Bool => Some(1),
            Schema::Char => Some(4),
            _ => None,
        }
    }

    fn mismatch(&self, reason: &'static str) -> SchemaError {
        SchemaError::Mismatch { schema: self.to_string(), reason }
    }

    /// Append the record encoding of the whole key `key` to `out`.
    ///
    /// # Errors
    /// [`SchemaError::Mismatch`] when `key` is not such a key.
    pub fn key_to_record(&self, key: &[u8], out: &mut Vec<u8>) -> Result<(), SchemaError> {
        let mut input = key;
        self.key_part(&mut input, true, out)?;
        if !input.is_empty() {
            return Err(self.mismatch("trailing bytes after the key"));
        }
        Ok(())
    }

    fn key_part(&self, input: &mut &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), SchemaError> {
        if let Some(width) = self.width() {
            let head = take(input, width).ok_or_else(|| self.mismatch("key too short"))?;
            out.extend_from_slice(head);
            return Ok(());
        }
        match self {
            Schema::Str => unescape(input, last, out).ok_or_else(|| self.mismatch("unterminated string")),
            Schema::Unit => Ok(()),
            Schema::Option(inner) => match take(input, 1) {
                Some([0]) => Ok(()),
                Some([1]) => framed(out, |o| inner.key_part(input, last, o)),
                _ => Err(self.mismatch("option tag is neither 0 nor 1")),
            },
            Schema::Tuple(elements) => {
                for (i, element) in elements.iter().enumerate() {
                    let last = last && i + 1 == elements.len();
                    framed(out, |o| element.key_part(input, last, o))?;
                }
                Ok(())
            }
            _ => Err(self.mismatch("not a scalar")),
        }
    }

    /// Append the key encoding (as a whole key) of the record `record` to `out`.
    ///
    /// # Errors
    /// [`SchemaError::Mismatch`] when `record` is not such a record.
    pub fn record_to_key(&self, record: &[u8], out: &mut Vec<u8>) -> Result<(), SchemaError> {
        self.record_part(record, true, out)
    }

    fn record_part(&self, record: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), SchemaError> {
        if let Some(width) = self.width() {
            if record.len() != width {
                return Err(self.mismatch("wrong width"));
            }
            out.extend_from_slice(record);
            return Ok(());
        }
        match self {
            Schema::Str => {
                crate::key::encode_bytes(record, out, last);
                Ok(())
            }
            Schema::Unit if record.is_empty() => Ok(()),
            Schema::Option(inner) => {
                let mut entries = batch::entries(record);
                match (entries.next(), entries.next()) {
                    (None, _) => out.push(0),
                    (Some(value), None) => {
                        out.push(1);
                        inner.record_part(value?, last, out)?;
                    }
                    (Some(_), Some(_)) => return Err(self.mismatch("an option with two values")),
                }
                Ok(())
            }
            Schema::Tuple(elements) => {
                let mut entries = batch::entries(record);
                for (i, element) in elements.iter().enumerate() {
                    let value = entries.next().ok_or_else(|| self.mismatch("too few tuple elements"))??;
                    element.record_part(value, last && i + 1 == elements.len(), out)?;
                }
                match entries.next() {
                    None => Ok(()),
                    Some(_) => Err(self.mismatch("too many tuple elements")),
                }
            }
            _ => Err(self.mismatch("unit with bytes")),
        }
    }

    /// The text of a scalar or string record as Rust's `Display` writes the
    /// value (a `String` as itself, numbers in decimal).
    ///
    /// # Errors
    /// [`SchemaError::Mismatch`] for other schemas (tuples and options have
    /// no `Display`) or bytes that are not such a record.
    pub fn display(&self, record: &[u8], out: &mut Vec<u8>) -> Result<(), SchemaError> {
        use std::io::Write;
        let fixed = |bytes: &[u8]| -> Result<u128, SchemaError> {
            if Some(bytes.len()) != self.width() {
                return Err(self.mismatch("wrong width"));
            }
            Ok(bytes.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b)))
        };
        let bits = |w: &u8| 8 * u32::from(*w);
        let written = match self {
            Schema::Str => {
                out.extend_from_slice(record);
                Ok(())
            }
            Schema::Uint(_) => write!(out, "{}", fixed(record)?),
            Schema::Int(w) => {
                let flipped = fixed(record)? ^ (1u128 << (bits(w) - 1));
                // Sign-extend from the type's width.
                let shift = 128 - bits(w);
                write!(out, "{}", ((flipped << shift) as i128) >> shift)
            }
            Schema::Float(4) => write!(out, "{}", crate::key::f32_from_ordered(fixed(record)? as u32)),
            Schema::Float(_) => write!(out, "{}", crate::key::f64_from_ordered(fixed(record)? as u64)),
            Schema::Bool => write!(out, "{}", fixed(record)? != 0),
            Schema::Char => {
                let c = char::from_u32(fixed(record)? as u32).ok_or_else(|| self.mismatch("not a char"))?;
                write!(out, "{c}")
            }
            _ => return Err(self.mismatch("only scalars and strings have a text form")),
        };
        written.map_err(|_| self.mismatch("unwritable"))
    }
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if input.len() < n {
        return None;
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Some(head)
}

/// Append one framed entry written by `write`.
fn framed(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), SchemaError>,
) -> Result<(), SchemaError> {
    let at = out.len();
    out.extend_from_slice(&[0; PREFIX]);
    write(out)?;
    let len = (out.len() - at - PREFIX) as u32;
    out[at..at + PREFIX].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// A string's key bytes (raw when last, else escaped and terminated) to its raw bytes.
fn unescape(input: &mut &[u8], last: bool, out: &mut Vec<u8>) -> Option<()> {
    if last {
        out.extend_from_slice(input);
        *input = &[];
        return Some(());
    }
    let mut i = 0;
    loop {
        match input.get(i..i + 2)? {
            [0, 0] => break,
            [0, 0xFF] => {
                out.push(0);
                i += 2;
            }
            [0, _] => return None,
            [b, _] => {
                out.push(*b);
                i += 1;
            }
            _ => return None,
        }
    }
    *input = &input[i + 2..];
    Some(())
}

fn parse_at(text: &[u8], at: &mut usize) -> Option<Schema> {
    let rest = &text[*at..];
    let word = |w: &str| rest.starts_with(w.as_bytes());
    for (name, make) in [("i", Schema::Int as fn(u8) -> Schema), ("u", Schema::Uint), ("f", Schema::Float)] {
        for bits in ["128", "64", "32", "16", "8"] {
            if word(&format!("{name}{bits}")) {
                *at += name.len() + bits.len();
                let bytes = bits.parse::<u8>().ok()? / 8;
                return (name != "f" || matches!(bytes, 4 | 8)).then(|| make(bytes));
            }
        }
    }
    let first = *rest.first()?;
    *at += 1;
    match first {
        b'b' => Some(Schema::Bool),
        b'c' => Some(Schema::Char),
        b's' => Some(Schema::Str),
        b'u' => Some(Schema::Unit),
        b'?' => Some(Schema::Option(Box::new(parse_at(text, at)?))),
        b'(' => {
            let mut elements = vec![parse_at(text, at)?];
            loop {
                match text.get(*at)? {
                    b',' => {
                        *at += 1;
                        elements.push(parse_at(text, at)?);
                    }
                    b')' => {
                        *at += 1;
                        return Some(Schema::Tuple(elements));
                    }
                    _ => return None,
                }
            }
        }
        _ => {
            *at -= 1;
            None
        }
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schema::Int(w) => write!(f, "i{}", 8 * w),
            Schema::Uint(w) => write!(f, "u{}", 8 * w),
            Schema::Float(w) => write!(f, "f{}", 8 * w),
            Schema::Bool => f.write_str("b"),
            Schema::Char => f.write_str("c"),
            Schema::Str => f.write_str("s"),
            Schema::Unit => f.write_str("u"),
            Schema::Option(inner) => write!(f, "?{inner}"),
            Schema::Tuple(elements) => {
                f.write_str("(")?;
                for (i, e) in elements.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{EncodeKey, Key};
    use proptest::prelude::*;

    #[test]
    fn schemas_print_and_parse_back() {
        type T = (String, i32, Option<(u8, f64)>, bool, char, ());
        let schema = T::schema().unwrap();
        assert_eq!(schema.to_string(), "(s,i32,?(u8,f64),b,c,u)");
        assert_eq!(Schema::parse(&schema.to_string()).unwrap(), schema);
        assert_eq!(Schema::parse("u128").unwrap(), Schema::Uint(16));
        assert!(matches!(Schema::parse("(s,"), Err(SchemaError::Parse { at: 3, .. })));
        assert!(Schema::parse("f16").is_err() && Schema::parse("s s").is_err());
        assert_eq!(Vec::<u8>::schema(), None, "no schema: refused where it is needed");
    }

    #[test]
    fn scalars_display_as_rust_does() {
        let show = |schema: Schema, key: Vec<u8>| {
            let mut out = Vec::new();
            schema.display(&key, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        for v in [i64::MIN, -7, 0, 42, i64::MAX] {
            assert_eq!(show(Schema::Int(8), v.to_key_bytes()), v.to_string());
        }
        assert_eq!(show(Schema::Int(1), (-3i8).to_key_bytes()), "-3");
        assert_eq!(show(Schema::Uint(4), 7u32.to_key_bytes()), "7");
        for v in [-1.5f64, 0.0, 2.25, f64::MAX] {
            assert_eq!(show(Schema::Float(8), v.to_key_bytes()), v.to_string());
        }
        assert_eq!(show(Schema::Float(4), (-0.5f32).to_key_bytes()), "-0.5");
        assert_eq!(show(Schema::Char, 'é'.to_key_bytes()), "é");
        assert_eq!(show(Schema::Bool, true.to_key_bytes()), "true");
        assert!(Schema::Tuple(vec![Schema::Bool]).display(&[], &mut Vec::new()).is_err());
    }

    proptest! {
        #[test]
        fn key_to_record_and_back_is_the_identity(v: (String, i32, Option<(u8, String)>, String)) {
            let schema = <(String, i32, Option<(u8, String)>, String)>::schema().unwrap();
            let key = v.to_key_bytes();
            let mut record = Vec::new();
            schema.key_to_record(&key, &mut record).unwrap();
            let mut back = Vec::new();
            schema.record_to_key(&record, &mut back).unwrap();
            prop_assert_eq!(back, key);
        }

        #[test]
        fn garbage_is_an_error_never_a_panic(buf in proptest::collection::vec(any::<u8>(), 0..32)) {
            let schema = Schema::parse("(s,?i16,(c,s))").unwrap();
            let _ = schema.key_to_record(&buf, &mut Vec::new());
            let _ = schema.record_to_key(&buf, &mut Vec::new());
        }
    }
}
