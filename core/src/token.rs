//! Bearer tokens: generated from the operating system's random source, kept
//! by the master only as their blake3 hash (`blake3:<hex>`), and compared in
//! constant time. See `docs/operators-guide.md` (Tenants and tokens).
//!
//! A weft token carries 256 random bits, so a fast cryptographic hash is as
//! safe as a slow password hash and costs nothing per request.

use std::fmt;
use std::str::FromStr;

/// Bytes of randomness in a generated token.
const RANDOM_BYTES: usize = 32;

/// Tokens shorter than this are refused where they are configured: a token
/// is a secret, not a password a person types.
pub const MIN_LEN: usize = 24;

/// A new token: `prefix` (such as `weft_t_` for a tenant or `weft_c_` for the
/// cluster, so that secret scanners can recognise them) and 64 hex digits.
///
/// # Errors
/// When the operating system's random source fails.
pub fn generate(prefix: &str) -> Result<String, TokenError> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(format!("{prefix}{}", hex::encode(bytes)))
}

/// The hash of a token, as the master keeps it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(blake3::Hash);

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> Self {
        Self(blake3::hash(token.as_bytes()))
    }

    /// Whether `token` hashes to this (in constant time).
    pub fn matches(&self, token: &str) -> bool {
        // `blake3::Hash`'s equality is constant-time.
        self.0 == blake3::hash(token.as_bytes())
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blake3:{}", self.0.to_hex())
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({self})")
    }
}

impl FromStr for TokenHash {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, TokenError> {
        let bad = || TokenError::BadHash(s.chars().take(80).collect());
        let hex = s.strip_prefix("blake3:").ok_or_else(bad)?;
        blake3::Hash::from_hex(hex).map(Self).map_err(|_| bad())
    }
}

impl serde::Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a token or its hash is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The random source failed.
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    /// Not `blake3:` and 64 hex digits.
    #[error("`{0}` is not a token hash: expected `blake3:` and 64 hex digits (`weft token hash` prints one)")]
    BadHash(String),
    /// Too short to be a secret.
    #[error("a token of {len} characters is too short: use at least {MIN_LEN} (`weft token new` makes one)")]
    TooShort {
        /// Its length.
        len: usize,
    },
}

/// Check that a configured plain token is long enough to be a secret.
///
/// # Errors
/// [`TokenError::TooShort`].
pub fn check_strength(token: &str) -> Result<(), TokenError> {
    if token.len() < MIN_LEN {
        return Err(TokenError::TooShort { len: token.len() });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_distinct_prefixed_and_long() {
        let (a, b) = (generate("weft_t_").unwrap(), generate("weft_t_").unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("weft_t_") && a.len() == 7 + 64, "{a}");
        assert!(check_strength(&a).is_ok());
        assert!(matches!(check_strength("s3cret"), Err(TokenError::TooShort { len: 6 })));
    }

    #[test]
    fn a_hash_matches_its_token_only_and_round_trips_as_text() {
        let h = TokenHash::of("weft_t_abc");
        assert!(h.matches("weft_t_abc"));
        assert!(!h.matches("weft_t_abd"));
        let text = h.to_string();
        assert!(text.starts_with("blake3:") && text.len() == 7 + 64);
        assert_eq!(text.parse::<TokenHash>().unwrap(), h);
        assert!(matches!("sha256:00".parse::<TokenHash>(), Err(TokenError::BadHash(_))));
        assert!("blake3:zz".parse::<TokenHash>().is_err());
    }
}
