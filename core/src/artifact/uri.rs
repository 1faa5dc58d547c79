//! [`ArtifactUri`]: where an artifact comes from, and optionally which digest it must
//! have.
//!
//! | form | source |
//! |---|---|
//! | `blake3:<hex>` | the cluster's artifact store (the digest *is* the address) |
//! | `file:///abs/path[#blake3:<hex>]` | a file on the local machine; absolute path, three slashes |
//! | `s3://bucket/key[#blake3:<hex>]` | an S3 (or S3-compatible) object, via the configured endpoint |
//! | `http://host/path[?query][#blake3:<hex>]`, `https://…` | a plain HTTP GET |
//!
//! The optional `#blake3:<hex>` fragment is the *expected digest*: when present, the
//! fetched bytes must hash to it or the fetch fails. Fragments are never sent to
//! servers, so the same URI works with any web server or presigned URL. A `blake3:` URI
//! needs no fragment (its digest is its address) and rejects one.
//!
//! URIs follow RFC 3986: file paths and S3 keys are percent-decoded (`%20` is a space,
//! `%23` a literal `#`), and [`Display`](fmt::Display) percent-encodes them back, so a
//! printed URI parses to the same value. S3 keys must be object keys: no empty segments
//! (`a//b`), no `.` or `..` segments, no trailing `/`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use super::digest::{Digest, DigestParseError};

/// The forms [`ArtifactUri`] accepts, for error messages.
const FORMS: &str = "blake3:<hex>, file:///abs/path, s3://bucket/key or https://host/path";

/// Where an artifact comes from. See the [module docs](self) for the syntax.
///
/// ```
/// use weft_core::artifact::{ArtifactUri, Digest};
///
/// let digest = Digest::of(b"job");
/// let uri: ArtifactUri = format!("https://example.com/job.wasm#{digest}").parse().unwrap();
/// assert_eq!(uri.expected_digest(), Some(digest));
/// assert_eq!(uri.scheme(), "https");
/// assert_eq!(uri.to_string().parse::<ArtifactUri>().unwrap(), uri);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArtifactUri {
    /// `blake3:<hex>`: an artifact in the cluster's content-addressed store.
    Blake3(Digest),
    /// `file:///abs/path`: a local file.
    File {
        /// Absolute path of the file.
        path: PathBuf,
        /// Digest the bytes must have, from the `#blake3:<hex>` fragment.
        expected: Option<Digest>,
    },
    /// `s3://bucket/key`: an object in S3 or an S3-compatible store.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Object key (percent-decoded, no leading `/`).
        key: String,
        /// Digest the bytes must have, from the `#blake3:<hex>` fragment.
        expected: Option<Digest>,
    },
    /// `http://…` or `https://…`: fetched with a GET request.
    Http {
        /// The URL, without its fragment; the query string is kept.
        url: Url,
        /// Digest the bytes must have, from the `#blake3:<hex>` fragment.
        expected: Option<Digest>,
    },
}

impl ArtifactUri {
    /// Where the artifact is read from, as a URL (`None` for `blake3:`, the
    /// cluster's own store): what a tenant's grants are checked against.
    pub fn source_url(&self) -> Option<Url> {
        match self {
            ArtifactUri::Blake3(_) => None,
            ArtifactUri::File { path, .. } => Url::from_file_path(path).ok(),
            ArtifactUri::S3 { bucket, key, .. } => {
                let mut url = Url::parse(&format!("s3://{bucket}/")).ok()?;
                url.set_path(key);
                Some(url)
            }
            ArtifactUri::Http { url, .. } => Some(url.clone()),
        }
    }

    /// Parses an artifact URI; same as [`str::parse`].
    pub fn parse(input: &str) -> Result<Self, UriError> {
        input.parse()
    }

    /// The digest the artifact must have, if the URI pins one: a `blake3:` URI's own
    /// digest, or the `#blake3:<hex>` fragment of any other.
    pub fn expected_digest(&self) -> Option<Digest> {
        match self {
            Self::Blake3(digest) => Some(*digest),
            Self::File { expected, .. } | Self::S3 { expected, .. } | Self::Http { expected, .. } => {
                *expected
            }
        }
    }

    /// Returns the URI with `digest` as its expected digest (a no-op for `blake3:`
    /// URIs, which already are their digest).
    pub fn with_expected_digest(mut self, digest: Digest) -> Self {
        match &mut self {
            Self::Blake3(_) => {}
            Self::File { expected, .. } | Self::S3 { expected, .. } | Self::Http { expected, .. } => {
                *expected = Some(digest)
            }
        }
        self
    }

    /// The URI's scheme: `blake3`, `file`, `s3`, `http` or `https`.
    pub fn scheme(&self) -> &str {
        match self {
            Self::Blake3(_) => "blake3",
            Self::File { .. } => "file",
            Self::S3 { .. } => "s3",
            Self::Http { url, .. } => url.scheme(),
        }
    }
}

impl From<Digest> for ArtifactUri {
    fn from(digest: Digest) -> Self {
        Self::Blake3(digest)
    }
}

impl FromStr for ArtifactUri {
    type Err = UriError;

    fn from_str(input: &str) -> Result<Self, UriError> {
        if input.starts_with("blake3:") {
            return input
                .parse()
                .map(Self::Blake3)
                .map_err(|source| UriError::InvalidDigest { uri: input.to_owned(), source });
        }
        let url = Url::parse(input).map_err(|err| match err {
            url::ParseError::RelativeUrlWithoutBase => malformed(
                input,
                "it has no scheme; write file:///abs/path for a local file \
                 or blake3:<hex> for a pushed artifact",
            ),
            err => malformed(input, format!("{err}")),
        })?;
        let expected = url
            .fragment()
            .map(|fragment| {
                fragment
                    .parse::<Digest>()
                    .map_err(|source| UriError::InvalidDigest { uri: input.to_owned(), source })
            })
            .transpose()?;
        match url.scheme() {
            "file" => parse_file(input, &url, expected),
            "s3" => parse_s3(input, &url, expected),
            "http" | "https" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(malformed(input, "an http(s) URI needs a host"));
                }
                let mut url = url;
                url.set_fragment(None);
                Ok(Self::Http { url, expected })
            }
            scheme => Err(UriError::UnknownScheme { uri: input.to_owned(), scheme: scheme.to_owned() }),
        }
    }
}

fn parse_file(input: &str, url: &Url, expected: Option<Digest>) -> Result<ArtifactUri, UriError> {
    if url.query().is_some() {
        return Err(malformed(input, "file URIs take no query string (percent-encode `?` as %3F)"));
    }
    let path = url.to_file_path().map_err(|()| {
        malformed(input, "file URIs need an absolute local path with three slashes: file:///abs/path")
    })?;
    Ok(ArtifactUri::File { path, expected })
}

fn parse_s3(input: &str, url: &Url, expected: Option<Digest>) -> Result<ArtifactUri, UriError> {
    let bucket = url.host_str().unwrap_or_default();
    if bucket.is_empty() {
        return Err(malformed(input, "an s3 URI needs a bucket: s3://bucket/key"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
        return Err(malformed(
            input,
            "s3 URIs carry no user, password or port; set the endpoint and credentials in the [s3] config",
        ));
    }
    if url.query().is_some() {
        return Err(malformed(input, "s3 URIs take no query string (percent-encode `?` as %3F)"));
    }
    if url.path().ends_with('/') {
        return Err(malformed(input, "the key ends with `/`, which names a folder, not an object"));
    }
    let key = object_store::path::Path::from_url_path(url.path())
        .map_err(|err| malformed(input, format!("invalid S3 key: {err}")))?;
    if key.as_ref().is_empty() {
        return Err(malformed(input, "an s3 URI needs an object key: s3://bucket/key"));
    }
    Ok(ArtifactUri::S3 { bucket: bucket.to_owned(), key: key.as_ref().to_owned(), expected })
}

fn malformed(uri: &str, reason: impl Into<String>) -> UriError {
    UriError::Malformed { uri: uri.to_owned(), reason: reason.into() }
}

impl fmt::Display for ArtifactUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expected = match self {
            Self::Blake3(digest) => return write!(f, "{digest}"),
            Self::File { path, expected } => {
                match Url::from_file_path(path) {
                    Ok(url) => write!(f, "{url}")?,
                    // Unreachable for parsed URIs (their paths are absolute); printed
                    // verbatim rather than failing the formatter.
                    Err(()) => write!(f, "file://{}", path.display())?,
                }
                expected
            }
            Self::S3 { bucket, key, expected } => {
                match Url::parse(&format!("s3://{bucket}/")) {
                    Ok(mut url) => {
                        if let Ok(mut segments) = url.path_segments_mut() {
                            segments.pop_if_empty().extend(key.split('/'));
                        }
                        write!(f, "{url}")?
                    }
                    Err(_) => write!(f, "s3://{bucket}/{key}")?,
                }
                expected
            }
            Self::Http { url, expected } => {
                write!(f, "{url}")?;
                expected
            }
        };
        match expected {
            Some(digest) => write!(f, "#{digest}"),
            None => Ok(()),
        }
    }
}

impl Serialize for ArtifactUri {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ArtifactUri {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a string is not an [`ArtifactUri`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The scheme is not one weft can fetch from.
    #[error("unknown artifact URI scheme `{scheme}` in `{uri}`: use {FORMS}")]
    UnknownScheme {
        /// The rejected URI.
        uri: String,
        /// Its scheme.
        scheme: String,
    },
    /// The URI does not have the shape its scheme requires.
    #[error("malformed artifact URI `{uri}`: {reason}")]
    Malformed {
        /// The rejected URI.
        uri: String,
        /// What is wrong and how to write it instead.
        reason: String,
    },
    /// The `blake3:` digest, or the `#blake3:<hex>` expected-digest fragment, is invalid.
    #[error("invalid digest in artifact URI `{uri}`: {source}")]
    InvalidDigest {
        /// The rejected URI.
        uri: String,
        /// What is wrong with the digest.
        source: DigestParseError,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn digest() -> Digest {
        Digest::of(b"artifact")
    }

    #[test]
    fn parses_every_form() {
        let d = digest();
        assert_eq!(ArtifactUri::parse(&d.to_string()).unwrap(), ArtifactUri::Blake3(d));
        assert_eq!(
            ArtifactUri::parse(&format!("file:///tmp/a%20b.wasm#{d}")).unwrap(),
            ArtifactUri::File { path: "/tmp/a b.wasm".into(), expected: Some(d) }
        );
        assert_eq!(
            ArtifactUri::parse("s3://bucket/dir/job.wasm").unwrap(),
            ArtifactUri::S3 { bucket: "bucket".into(), key: "dir/job.wasm".into(), expected: None }
        );
        let http = ArtifactUri::parse(&format!("https://h:8443/x.wasm?sig=1#{d}")).unwrap();
        match &http {
            ArtifactUri::Http { url, expected } => {
                assert_eq!(url.as_str(), "https://h:8443/x.wasm?sig=1");
                assert_eq!(*expected, Some(d));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(http.scheme(), "https");
    }

    #[test]
    fn display_round_trips() {
        let d = digest();
        for text in [
            d.to_string(),
            format!("file:///tmp/a%20b%23c.wasm#{d}"),
            "file:///x".to_owned(),
            format!("s3://bucket/dir/a%23b%3Fc%25d.wasm#{d}"),
            "s3://b/k".to_owned(),
            format!("http://h/x?y=1#{d}"),
        ] {
            let uri = ArtifactUri::parse(&text).unwrap();
            assert_eq!(uri.to_string(), text);
            assert_eq!(ArtifactUri::parse(&uri.to_string()).unwrap(), uri);
        }
    }

    #[test]
    fn errors_are_specific() {
        let d = digest();
        type Check = fn(&UriError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            (
                "gs://bucket/key".into(),
                |e| matches!(e, UriError::UnknownScheme { scheme, .. } if scheme == "gs"),
            ),
            ("ftp://h/x".into(), |e| matches!(e, UriError::UnknownScheme { .. })),
            (
                "job.wasm".into(),
                |e| matches!(e, UriError::Malformed { reason, .. } if reason.contains("file:///")),
            ),
            (
                "file://relative/x".into(),
                |e| matches!(e, UriError::Malformed { reason, .. } if reason.contains("three slashes")),
            ),
            (
                "s3:///key".into(),
                |e| matches!(e, UriError::Malformed { reason, .. } if reason.contains("bucket")),
            ),
            (
                "s3://bucket".into(),
                |e| matches!(e, UriError::Malformed { reason, .. } if reason.contains("key")),
            ),
            (
                "s3://bucket/dir/".into(),
                |e| matches!(e, UriError::Malformed { reason, .. } if reason.contains("folder")),
            ),
            ("s3://bucket/a//b".into(), |e| matches!(e, UriError::Malformed { .. })),
            ("s3://bucket/k?x=1".into(), |e| matches!(e, UriError::Malformed { .. })),
            ("s3://u:p@bucket/k".into(), |e| matches!(e, UriError::Malformed { .. })),
            ("blake3:00".into(), |e| {
                matches!(e, UriError::InvalidDigest { source: DigestParseError::WrongLength { .. }, .. })
            }),
            (format!("{d}#{d}"), |e| matches!(e, UriError::InvalidDigest { .. })),
            ("s3://b/k#sha256:00".into(), |e| matches!(e, UriError::InvalidDigest { .. })),
            ("https://h/x#".into(), |e| matches!(e, UriError::InvalidDigest { .. })),
        ];
        for (input, check) in cases {
            let err = ArtifactUri::parse(&input).unwrap_err();
            assert!(check(&err), "{input}: {err:?}");
            assert!(err.to_string().contains(input.as_str()) || input.starts_with("blake3:"), "{err}");
        }
    }

    #[test]
    fn expected_digest_helpers() {
        let d = digest();
        let uri = ArtifactUri::parse("s3://b/k").unwrap();
        assert_eq!(uri.expected_digest(), None);
        let uri = uri.with_expected_digest(d);
        assert_eq!(uri.to_string(), format!("s3://b/k#{d}"));
        assert_eq!(ArtifactUri::from(d).expected_digest(), Some(d));
    }

    #[test]
    fn serde_uses_the_text_form() {
        let text = format!("\"s3://b/k#{}\"", digest());
        let uri: ArtifactUri = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&uri).unwrap(), text);
        assert!(serde_json::from_str::<ArtifactUri>("\"gs://b/k\"").is_err());
    }

    proptest! {
        #[test]
        fn s3_keys_round_trip(bucket in "[a-z0-9][a-z0-9.-]{2,20}", key in "[^/\\x00-\\x1f\\x7f]{1,12}(/[^/\\x00-\\x1f\\x7f]{1,12}){0,3}") {
            prop_assume!(key.split('/').all(|s| s != "." && s != ".."));
            let uri = ArtifactUri::S3 { bucket, key, expected: None };
            prop_assert_eq!(ArtifactUri::parse(&uri.to_string()), Ok(uri));
        }

        #[test]
        fn parsing_never_panics(input in "\\PC{0,60}") {
            let _ = ArtifactUri::parse(&input);
        }
    }
}
