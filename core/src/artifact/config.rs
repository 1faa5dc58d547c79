//! Configuration of artifact fetching and caching: [`ResolverConfig`] (with its
//! [`S3Config`]) and [`CacheConfig`].
//!
//! Every struct has a [`Default`] (except [`CacheConfig`], which needs a directory),
//! builder methods, and loads from TOML with unknown keys rejected. Sizes are written
//! in human units (`"256 MiB"`, `"10GiB"`), durations too (`"2m"`, `"30s"`):
//!
//! ```
//! use weft_core::artifact::ResolverConfig;
//!
//! let config: ResolverConfig = toml::from_str(r#"
//!     max_artifact_size = "64 MiB"
//!     request_timeout = "30s"
//!
//!     [s3]
//!     endpoint = "http://127.0.0.1:9000"
//!     region = "us-east-1"
//!     allow_http = true
//! "#).unwrap();
//! assert_eq!(config.max_artifact_size.as_u64(), 64 << 20);
//! assert!(toml::from_str::<ResolverConfig>("max_size = 1").is_err());
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ClientOptions, RetryConfig};
use serde::{Deserialize, Serialize};

use super::error::ArtifactError;

/// Default largest artifact that is read: 256 MiB.
pub const DEFAULT_MAX_ARTIFACT_SIZE: ByteSize = ByteSize::mib(256);

/// Default budget of an agent's artifact cache: 10 GiB.
pub const DEFAULT_CACHE_SIZE: ByteSize = ByteSize::gib(10);

/// How artifacts named by URI are fetched and bounded (see
/// [`Resolver`](super::Resolver)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverConfig {
    /// Artifacts larger than this are refused before they are read in full.
    pub max_artifact_size: ByteSize,
    /// Time limit of one request to S3 or an HTTP server, body included.
    #[serde(with = "human_duration")]
    pub request_timeout: Duration,
    /// Retries of a failed request (connection errors, 5xx, throttling) before giving up.
    pub max_retries: usize,
    /// Time after which a failing request is not retried any more.
    #[serde(with = "human_duration")]
    pub retry_timeout: Duration,
    /// How `s3://` URIs are reached.
    pub s3: S3Config,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            max_artifact_size: DEFAULT_MAX_ARTIFACT_SIZE,
            request_timeout: Duration::from_secs(120),
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
            s3: S3Config::default(),
        }
    }
}

impl ResolverConfig {
    /// Sets [`max_artifact_size`](Self::max_artifact_size).
    pub fn with_max_artifact_size(mut self, size: ByteSize) -> Self {
        self.max_artifact_size = size;
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`max_retries`](Self::max_retries) and [`retry_timeout`](Self::retry_timeout).
    pub fn with_retries(mut self, max_retries: usize, retry_timeout: Duration) -> Self {
        self.max_retries = max_retries;
        self.retry_timeout = retry_timeout;
        self
    }

    /// Sets the [`S3Config`].
    pub fn with_s3(mut self, s3: S3Config) -> Self {
        self.s3 = s3;
        self
    }

    /// HTTP client options shared by the S3 and HTTP clients.
    pub(crate) fn client_options(&self) -> ClientOptions {
        ClientOptions::new().with_timeout(self.request_timeout)
    }

    /// Retry policy shared by the S3 and HTTP clients.
    pub(crate) fn retry_config(&self) -> RetryConfig {
        RetryConfig {
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
            ..RetryConfig::default()
        }
    }
}

/// How to reach S3 or an S3-compatible server (MinIO, Ceph, moto, …).
///
/// Unset fields fall back to the `AWS_*` environment variables when
/// [`from_env`](Self::from_env) is true (the default): `AWS_ENDPOINT_URL`,
/// `AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, then to region
/// `us-east-1`. Credentials are static or none: without them (and without
/// [`skip_signature`](Self::skip_signature)) a client is refused, never
/// pointed at an instance, container or web-identity credential service,
/// which would send requests off the machine on its own. The `Debug` output
/// redacts the secret key and session token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Endpoint URL for S3-compatible servers, e.g. `http://127.0.0.1:9000`; unset
    /// means AWS.
    pub endpoint: Option<String>,
    /// Region, e.g. `eu-west-1`.
    pub region: Option<String>,
    /// Access key ID.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
    /// Allow a plain-HTTP endpoint (needed by most local S3-compatible servers).
    pub allow_http: bool,
    /// Address buckets as `bucket.endpoint` instead of `endpoint/bucket`.
    pub virtual_hosted_style: bool,
    /// Send unsigned requests (public buckets); no credentials are looked up.
    pub skip_signature: bool,
    /// Read unset fields from the `AWS_*` environment variables.
    pub from_env: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            allow_http: false,
            virtual_hosted_style: false,
            skip_signature: false,
            from_env: true,
        }
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("skip_signature", &self.skip_signature)
            .field("from_env", &self.from_env)
            .finish()
    }
}

impl S3Config {
    /// Sets the endpoint of an S3-compatible server.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets static credentials.
    pub fn with_credentials(mut self, access_key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.access_key_id = Some(access_key_id.into());
        self.secret_access_key = Some(secret.into());
        self
    }

    /// Sets the session token of temporary credentials.
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// Allows or forbids a plain-HTTP endpoint.
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Chooses virtual-hosted-style (`bucket.host`) over path-style requests.
    pub fn with_virtual_hosted_style(mut self, enabled: bool) -> Self {
        self.virtual_hosted_style = enabled;
        self
    }

    /// Sends unsigned requests.
    pub fn with_skip_signature(mut self, skip: bool) -> Self {
        self.skip_signature = skip;
        self
    }

    /// Reads unset fields from the `AWS_*` environment variables, or not.
    pub fn with_from_env(mut self, from_env: bool) -> Self {
        self.from_env = from_env;
        self
    }

    /// Builds an S3 client for `bucket` with `object_store`'s default HTTP options.
    pub fn build_store(&self, bucket: &str) -> Result<AmazonS3, ArtifactError> {
        self.build_store_with(bucket, ClientOptions::new(), RetryConfig::default())
    }

    /// Builds an S3 client for `bucket` with the given HTTP options.
    pub(crate) fn build_store_with(
        &self,
        bucket: &str,
        options: ClientOptions,
        retry: RetryConfig,
    ) -> Result<AmazonS3, ArtifactError> {
        // Never `AmazonS3Builder::from_env()`: it would also take the
        // container and web-identity credential settings, which send
        // requests to other machines.
        let env = |name: &str| {
            if self.from_env { std::env::var(name).ok().filter(|v| !v.is_empty()) } else { None }
        };
        let endpoint = self.endpoint.clone().or_else(|| env("AWS_ENDPOINT_URL"));
        let region = self.region.clone().or_else(|| env("AWS_REGION")).or_else(|| env("AWS_DEFAULT_REGION"));
        let access_key_id = self.access_key_id.clone().or_else(|| env("AWS_ACCESS_KEY_ID"));
        let secret = self.secret_access_key.clone().or_else(|| env("AWS_SECRET_ACCESS_KEY"));
        let token = self.session_token.clone().or_else(|| env("AWS_SESSION_TOKEN"));
        let mut builder = AmazonS3Builder::new()
            .with_client_options(options.with_allow_http(self.allow_http))
            .with_retry(retry)
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(self.virtual_hosted_style)
            .with_skip_signature(self.skip_signature)
            .with_region(region.unwrap_or_else(|| "us-east-1".into()));
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        match (access_key_id, secret) {
            (Some(id), Some(secret)) => {
                builder = builder.with_access_key_id(id).with_secret_access_key(secret);
                if let Some(token) = token {
                    builder = builder.with_token(token);
                }
            }
            // Unsigned requests look no credentials up.
            _ if self.skip_signature => {}
            _ => return Err(ArtifactError::S3NoCredentials { bucket: bucket.to_owned() }),
        }
        builder.build().map_err(|source| ArtifactError::S3Config { bucket: bucket.to_owned(), source })
    }
}

/// An agent's local artifact cache (see [`ArtifactCache`](super::ArtifactCache)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Directory of the cache; created if missing. Nothing else should write there.
    pub dir: PathBuf,
    /// Budget for the cached files; least recently used artifacts are evicted past it.
    #[serde(default = "default_cache_size")]
    pub max_size: ByteSize,
}

fn default_cache_size() -> ByteSize {
    DEFAULT_CACHE_SIZE
}

impl CacheConfig {
    /// A cache in `dir` with the default budget ([`DEFAULT_CACHE_SIZE`]).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), max_size: DEFAULT_CACHE_SIZE }
    }

    /// Sets the size budget.
    pub fn with_max_size(mut self, size: ByteSize) -> Self {
        self.max_size = size;
        self
    }
}

/// Serde for durations in human units (`"30s"`, `"2m 30s"`), via `humantime`.
mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*duration))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|err| {
            serde::de::Error::custom(format!(
                "invalid duration `{text}`: {err} (write e.g. \"30s\" or \"2m\")"
            ))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn s3_config_loads_from_toml_and_rejects_unknown_keys() {
        let config: S3Config = toml::from_str(
            r#"
            endpoint = "http://127.0.0.1:9000"
            region = "eu-west-1"
            access_key_id = "AK"
            secret_access_key = "SK"
            allow_http = true
            from_env = false
            "#,
        )
        .unwrap();
        let built = S3Config::default()
            .with_endpoint("http://127.0.0.1:9000")
            .with_region("eu-west-1")
            .with_credentials("AK", "SK")
            .with_allow_http(true)
            .with_from_env(false);
        assert_eq!(config, built);
        let err = toml::from_str::<S3Config>("endpiont = \"x\"").unwrap_err().to_string();
        assert!(err.contains("unknown field `endpiont`"), "{err}");
        assert_eq!(toml::from_str::<S3Config>("").unwrap(), S3Config::default());
    }

    #[test]
    fn debug_redacts_secrets() {
        let config = S3Config::default().with_credentials("AK", "very-secret").with_session_token("tok");
        let debug = format!("{config:?}");
        assert!(
            debug.contains("AK") && !debug.contains("very-secret") && !debug.contains("tok\""),
            "{debug}"
        );
    }

    #[test]
    fn resolver_config_round_trips_in_human_units() {
        let config = ResolverConfig::default()
            .with_max_artifact_size(ByteSize::mib(8))
            .with_request_timeout(Duration::from_secs(90));
        let text = toml::to_string(&config).unwrap();
        assert!(text.contains("request_timeout = \"1m 30s\""), "{text}");
        assert_eq!(toml::from_str::<ResolverConfig>(&text).unwrap(), config);
        let err = toml::from_str::<ResolverConfig>("request_timeout = \"soon\"").unwrap_err().to_string();
        assert!(err.contains("invalid duration `soon`"), "{err}");
    }

    #[test]
    fn cache_config_needs_a_dir() {
        let config: CacheConfig = toml::from_str("dir = \"/var/cache/weft\"\nmax_size = \"1 GiB\"").unwrap();
        assert_eq!(config, CacheConfig::new("/var/cache/weft").with_max_size(ByteSize::gib(1)));
        assert!(toml::from_str::<CacheConfig>("max_size = \"1 GiB\"").is_err());
    }

    #[test]
    fn s3_store_builds_from_config() {
        let config = S3Config::default()
            .with_endpoint("http://127.0.0.1:1")
            .with_credentials("AK", "SK")
            .with_allow_http(true)
            .with_from_env(false);
        assert!(config.build_store("bucket").is_ok());
    }

    #[test]
    fn without_credentials_no_client_is_built_and_no_metadata_service_asked() {
        let none = S3Config::default().with_endpoint("http://127.0.0.1:1").with_from_env(false);
        let err = none.build_store("bucket").unwrap_err();
        assert!(matches!(err, ArtifactError::S3NoCredentials { .. }), "{err}");
        assert!(err.to_string().contains("skip-signature"), "{err}");
        // A public bucket needs none.
        assert!(none.with_skip_signature(true).build_store("bucket").is_ok());
    }
}
