//! TLS for every endpoint (rustls, through tonic): a process serves TLS when
//! it has a certificate and key, and reaches an `https://` peer trusting the
//! configured CA. See `docs/operators-guide.md` (TLS).

use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// A process's TLS files, all PEM.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsConfig {
    /// The certificate (chain) it serves with.
    pub cert: Option<PathBuf>,
    /// The certificate's private key.
    pub key: Option<PathBuf>,
    /// The CA whose certificates it trusts when it calls an `https://` peer.
    pub ca: Option<PathBuf>,
}

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("reading the TLS {what} {}: {source}", path.display())]
    Read {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate without its key, or the other way round.
    #[error("--tls-cert and --tls-key go together: give both, or neither")]
    Half,
    /// An `https://` address with no CA to check it against.
    #[error("{uri} is https: give the CA that signed its certificate (--tls-ca, or WEFT_TLS_CA)")]
    NoCa {
        /// The address.
        uri: String,
    },
    /// The address does not parse, or tonic refused the settings.
    #[error("{uri}: {reason}")]
    Endpoint {
        /// The address.
        uri: String,
        /// Why.
        reason: String,
    },
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_path_buf(), source })
}

impl TlsConfig {
    /// The server side, when a certificate and key are given.
    ///
    /// # Errors
    /// A file that cannot be read, or only one of the two.
    pub fn server(&self) -> Result<Option<ServerTlsConfig>, TlsError> {
        match (&self.cert, &self.key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => {
                let identity = Identity::from_pem(read("certificate", cert)?, read("key", key)?);
                Ok(Some(ServerTlsConfig::new().identity(identity)))
            }
            _ => Err(TlsError::Half),
        }
    }

    /// The client side: the CA to trust, if one is given.
    ///
    /// # Errors
    /// The CA file cannot be read.
    pub fn client(&self) -> Result<Option<ClientTlsConfig>, TlsError> {
        match &self.ca {
            None => Ok(None),
            Some(ca) => {
                Ok(Some(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("CA", ca)?))))
            }
        }
    }

    /// The scheme this process's own address has: `https` when it serves TLS.
    pub fn scheme(&self) -> &'static str {
        if self.cert.is_some() { "https" } else { "http" }
    }
}

/// An endpoint for `uri` (`host:port` means `http://`); an `https://` one
/// checks the peer's certificate against `tls`'s CA.
///
/// # Errors
/// A malformed address, or an `https://` one without a CA.
pub fn endpoint(uri: &str, tls: Option<&ClientTlsConfig>) -> Result<Endpoint, TlsError> {
    let full = if uri.contains("://") { uri.to_string() } else { format!("http://{uri}") };
    let bad = |reason: String| TlsError::Endpoint { uri: uri.to_string(), reason };
    let endpoint = Endpoint::from_shared(full.clone()).map_err(|e| bad(e.to_string()))?;
    if !full.starts_with("https://") {
        return Ok(endpoint);
    }
    let tls = tls.ok_or_else(|| TlsError::NoCa { uri: uri.to_string() })?;
    endpoint.tls_config(tls.clone()).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_address_is_http_and_https_needs_a_ca() {
        assert_eq!(endpoint("10.0.0.1:7070", None).unwrap().uri().to_string(), "http://10.0.0.1:7070/");
        let err = endpoint("https://m:7070", None).unwrap_err().to_string();
        assert!(err.contains("--tls-ca"), "{err}");
        assert!(matches!(
            TlsConfig { cert: Some("c".into()), ..Default::default() }.server(),
            Err(TlsError::Half)
        ));
    }
}
