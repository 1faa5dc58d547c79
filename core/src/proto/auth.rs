//! The metadata every RPC carries: the protocol version and a bearer token.
//! One implementation for both ends: clients add it with [`Credentials`],
//! servers check it with [`check`].

use super::{PROTOCOL_HEADER, PROTOCOL_VERSION};
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Adds the protocol version and the token to every outgoing request.
#[derive(Clone, Debug)]
pub struct Credentials {
    bearer: Option<AsciiMetadataValue>,
}

impl Credentials {
    /// No token: the protocol version only.
    pub fn none() -> Self {
        Self { bearer: None }
    }

    /// Credentials carrying `token` (empty for none).
    ///
    /// # Errors
    /// When the token has characters that cannot travel in HTTP/2 metadata.
    pub fn new(token: &str) -> Result<Self, Status> {
        if token.is_empty() {
            return Ok(Self { bearer: None });
        }
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::invalid_argument("the token must be printable ASCII"))?;
        Ok(Self { bearer: Some(bearer) })
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let md = request.metadata_mut();
        md.insert(PROTOCOL_HEADER, AsciiMetadataValue::from(PROTOCOL_VERSION));
        if let Some(b) = &self.bearer {
            md.insert("authorization", b.clone());
        }
        Ok(request)
    }
}

/// Check a request's protocol version and token (`expected` empty: no token needed).
///
/// # Errors
/// `FAILED_PRECONDITION` for another protocol version, `UNAUTHENTICATED` for a
/// missing or wrong token; each message says how to fix it.
pub fn check(md: &MetadataMap, expected: &str, what: &str) -> Result<(), Status> {
    check_protocol(md, what)?;
    if expected.is_empty() {
        return Ok(());
    }
    match bearer(md) {
        Some(t) if constant_time_eq(t.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(Status::unauthenticated(format!(
            "the {what}'s token does not match the master's: pass the same --cluster-token to both"
        ))),
        None => Err(Status::unauthenticated(format!("the {what} sent no token: pass --cluster-token"))),
    }
}

/// Check a request's protocol version.
///
/// # Errors
/// `FAILED_PRECONDITION` for another version or none, saying how to fix it.
pub fn check_protocol(md: &MetadataMap, what: &str) -> Result<(), Status> {
    let version = md.get(PROTOCOL_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u32>().ok());
    match version {
        Some(PROTOCOL_VERSION) => Ok(()),
        Some(other) => Err(Status::failed_precondition(format!(
            "this {what} speaks weft protocol {other}, the master speaks {PROTOCOL_VERSION}: run the same weft version on both"
        ))),
        None => Err(Status::failed_precondition(format!(
            "request without the `{PROTOCOL_HEADER}` header: is the {what} a weft process?"
        ))),
    }
}

/// The bearer token a request carries, if any.
pub fn bearer(md: &MetadataMap) -> Option<&str> {
    md.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped(token: &str) -> MetadataMap {
        Credentials::new(token).unwrap().call(Request::new(())).unwrap().metadata().clone()
    }

    #[test]
    fn the_right_token_and_version_pass() {
        assert!(check(&stamped("s3cret"), "s3cret", "agent").is_ok());
        assert!(check(&stamped(""), "", "agent").is_ok());
    }

    #[test]
    fn wrong_or_missing_tokens_are_unauthenticated() {
        let err = check(&stamped("nope"), "s3cret", "agent").unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(err.message().contains("--cluster-token"));
        assert_eq!(check(&stamped(""), "s3cret", "agent").unwrap_err().code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn another_protocol_version_is_refused() {
        let mut md = stamped("t");
        md.insert(PROTOCOL_HEADER, AsciiMetadataValue::from(PROTOCOL_VERSION + 1));
        let err = check(&md, "t", "agent").unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert!(check(&MetadataMap::new(), "t", "agent").is_err());
    }
}
