//! [`Digest`]: the blake3 content address of an artifact.
//!
//! The one textual form is `blake3:` followed by exactly 64 lowercase hex digits. It is
//! what [`Display`](fmt::Display) prints, what [`FromStr`] accepts and what serde reads
//! and writes, so a digest looks the same in URIs, configs, logs and the JSON API.
//! Parsing is strict (no uppercase, no whitespace, no other algorithm): two spellings of
//! one digest would make content addresses compare unequal as strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The algorithm prefix of every digest's textual form, without the colon.
const ALGORITHM: &str = "blake3";

/// Number of hex digits in a digest's textual form.
const HEX_LEN: usize = 64;

/// How much of a rejected input an error message repeats.
const MAX_ECHO: usize = 100;

/// The blake3 digest of an artifact's bytes: the artifact's identity everywhere in weft.
///
/// ```
/// use weft_core::artifact::Digest;
///
/// let digest = Digest::of(b"hello");
/// let text = digest.to_string();
/// assert!(text.starts_with("blake3:"));
/// assert_eq!(text.parse::<Digest>().unwrap(), digest);
/// assert!("blake3:ABC".parse::<Digest>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Hashes `bytes` with blake3.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Wraps 32 raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits, without the `blake3:` prefix (the form used in
    /// storage paths and file names).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the 64 lowercase hex digits alone, without the `blake3:` prefix.
    pub fn from_hex(hex_digits: &str) -> Result<Self, DigestParseError> {
        if hex_digits.len() != HEX_LEN {
            return Err(DigestParseError::WrongLength { len: hex_digits.len() });
        }
        if let Some((position, character)) =
            hex_digits.char_indices().find(|&(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
        {
            return Err(DigestParseError::InvalidCharacter { character, position });
        }
        let mut bytes = [0u8; 32];
        // Cannot fail: the length and alphabet were checked above.
        hex::decode_to_slice(hex_digits, &mut bytes)
            .map_err(|_| DigestParseError::WrongLength { len: hex_digits.len() })?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ALGORITHM}:{}", self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex_digits)) = s.split_once(':') else {
            return Err(DigestParseError::MissingAlgorithm { input: echo(s) });
        };
        if algorithm != ALGORITHM {
            return Err(DigestParseError::UnsupportedAlgorithm { algorithm: echo(algorithm) });
        }
        Self::from_hex(hex_digits)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a digest string `blake3:<64 lowercase hex digits>`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Digest, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Why a string is not a [`Digest`]. Every message names the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    /// There is no `algorithm:` prefix.
    #[error("`{input}` is not a digest: write `blake3:<64 lowercase hex digits>`")]
    MissingAlgorithm {
        /// The rejected input (shortened if long).
        input: String,
    },
    /// The prefix names an algorithm other than blake3.
    #[error(
        "digest algorithm `{algorithm}` is not supported: weft addresses artifacts by \
         `blake3:<64 lowercase hex digits>` (hash the artifact with blake3, e.g. `b3sum`)"
    )]
    UnsupportedAlgorithm {
        /// The algorithm named by the input (shortened if long).
        algorithm: String,
    },
    /// The hex part does not have exactly 64 characters.
    #[error("a blake3 digest has exactly 64 hex digits after `blake3:`, this one has {len}")]
    WrongLength {
        /// Length in bytes of the hex part that was given.
        len: usize,
    },
    /// The hex part holds something other than `0-9a-f`.
    #[error(
        "invalid character {character:?} at position {position} of a blake3 digest: \
         only lowercase hex digits 0-9 and a-f are allowed"
    )]
    InvalidCharacter {
        /// The first offending character.
        character: char,
        /// Its byte offset within the hex part.
        position: usize,
    },
}

/// Shortens user input for repetition in an error message.
fn echo(input: &str) -> String {
    match input.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => format!("{}…", &input[..cut]),
        None => input.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HELLO: &str = "blake3:ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f";

    #[test]
    fn known_vector() {
        assert_eq!(Digest::of(b"hello").to_string(), HELLO);
        assert_eq!(HELLO.parse::<Digest>().unwrap(), Digest::of(b"hello"));
        assert_eq!(format!("{:?}", Digest::of(b"hello")), format!("Digest({HELLO})"));
    }

    #[test]
    fn rejects_with_specific_errors() {
        let hex = &HELLO["blake3:".len()..];
        assert!(matches!(hex.parse::<Digest>(), Err(DigestParseError::MissingAlgorithm { .. })));
        assert!(matches!(
            format!("sha256:{hex}").parse::<Digest>(),
            Err(DigestParseError::UnsupportedAlgorithm { algorithm }) if algorithm == "sha256"
        ));
        assert!(matches!(
            format!("BLAKE3:{hex}").parse::<Digest>(),
            Err(DigestParseError::UnsupportedAlgorithm { .. })
        ));
        assert_eq!("blake3:abc".parse::<Digest>(), Err(DigestParseError::WrongLength { len: 3 }));
        assert_eq!(
            format!("blake3:{hex} ").parse::<Digest>(),
            Err(DigestParseError::WrongLength { len: 65 })
        );
        let upper = format!("blake3:{}", hex.to_uppercase());
        assert_eq!(
            upper.parse::<Digest>(),
            Err(DigestParseError::InvalidCharacter { character: 'E', position: 0 })
        );
        let message = "nope".parse::<Digest>().unwrap_err().to_string();
        assert!(message.contains("blake3:<64 lowercase hex digits>"), "{message}");
    }

    #[test]
    fn long_input_is_shortened_in_errors() {
        let long = "x".repeat(10_000);
        let message = long.parse::<Digest>().unwrap_err().to_string();
        assert!(message.len() < 300, "{message}");
    }

    #[test]
    fn serde_uses_the_text_form() {
        let digest = Digest::of(b"hello");
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{HELLO}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
        let err = serde_json::from_str::<Digest>("\"blake3:00\"").unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
        assert!(serde_json::from_str::<Digest>("42").is_err());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(bytes in any::<[u8; 32]>()) {
            let digest = Digest::from_bytes(bytes);
            let text = digest.to_string();
            prop_assert_eq!(text.len(), "blake3:".len() + 64);
            prop_assert_eq!(text.parse::<Digest>(), Ok(digest));
            prop_assert_eq!(Digest::from_hex(&digest.to_hex()), Ok(digest));
        }

        #[test]
        fn only_the_canonical_form_parses(input in "\\PC{0,80}|blake3:[0-9a-fA-F]{62,66}") {
            // Whatever parses prints back to exactly the input: one spelling per digest.
            if let Ok(digest) = input.parse::<Digest>() {
                prop_assert_eq!(digest.to_string(), input);
            }
        }

        #[test]
        fn uppercase_is_rejected(bytes in any::<[u8; 32]>()) {
            let text = Digest::from_bytes(bytes).to_string();
            let upper = format!("blake3:{}", text["blake3:".len()..].to_uppercase());
            prop_assert_eq!(upper.parse::<Digest>().is_ok(), upper == text);
        }
    }
}
