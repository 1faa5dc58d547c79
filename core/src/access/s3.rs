//! S3 credentials per grant: an `s3://` grant may carry its own endpoint and
//! keys (`s3 = { … }` in `[[tenant.grant]]`), and a job's reads and writes
//! under that root use them, on the master (listing, splitting, committing,
//! artifacts) and on the agents that run its tasks, and nothing else does.
//! A grant without them uses the cluster's S3 settings. Secrets never
//! appear in `Debug` output.

use super::{Access, AccessError};
use crate::artifact::S3Config;
use std::fmt;
use std::path::PathBuf;
use url::Url;

/// A grant's S3 settings as written in the tenants file. The secret is given
/// inline (`secret-access-key`) or read from a file at load
/// (`secret-access-key-file`), exactly one of the two.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GrantS3 {
    /// Endpoint of an S3-compatible server; unset means AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key, inline.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// A file holding the secret access key (its first line).
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Session token of temporary credentials.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Allow a plain-HTTP endpoint.
    #[serde(default)]
    pub allow_http: bool,
    /// Address buckets as `bucket.endpoint`.
    #[serde(default)]
    pub virtual_hosted_style: bool,
}

impl fmt::Debug for GrantS3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantS3")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("secret_access_key_file", &self.secret_access_key_file)
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .finish()
    }
}

impl GrantS3 {
    /// The client settings of the grant of `root`: static credentials only,
    /// never from the environment or a credential service.
    ///
    /// # Errors
    /// No secret or two, or a secret file that cannot be read (naming it).
    pub fn config(&self, root: &str) -> Result<S3Config, AccessError> {
        let bad = |reason: String| AccessError::BadGrant { root: root.into(), reason };
        let secret = match (&self.secret_access_key, &self.secret_access_key_file) {
            (Some(s), None) => s.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| bad(format!("cannot read its secret-access-key-file {}: {e}", path.display())))?
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
            (None, None) => {
                return Err(bad("its s3 settings need secret-access-key or secret-access-key-file".into()));
            }
            (Some(_), Some(_)) => {
                return Err(bad("give secret-access-key or secret-access-key-file, not both".into()));
            }
        };
        if secret.is_empty() || self.access_key_id.is_empty() {
            return Err(bad("its s3 access-key-id and secret access key must not be empty".into()));
        }
        let mut config = S3Config::default()
            .with_credentials(&self.access_key_id, secret)
            .with_allow_http(self.allow_http)
            .with_virtual_hosted_style(self.virtual_hosted_style)
            .with_from_env(false);
        config.endpoint = self.endpoint.clone();
        config.region = self.region.clone();
        config.session_token = self.session_token.clone();
        Ok(config)
    }
}

/// One grant's root and access with the S3 settings its reads and writes use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Grant {
    /// The bucket.
    pub bucket: String,
    /// The prefix inside it (empty: the whole bucket).
    pub prefix: String,
    /// What the grant allows.
    pub access: Access,
    /// Its client settings.
    pub config: S3Config,
}

impl S3Grant {
    /// Its root, `s3://bucket/prefix`.
    pub fn root(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// The S3 settings of a job's grants that carry their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Grants(Vec<S3Grant>);

impl S3Grants {
    /// These grants.
    pub fn new(grants: Vec<S3Grant>) -> Self {
        Self(grants)
    }

    /// Every grant.
    pub fn iter(&self) -> impl Iterator<Item = &S3Grant> {
        self.0.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The settings to `want` at `uri`: those of the grant with the longest
    /// root covering it for that access; `None` for a URI that is not
    /// `s3://` or that no such grant covers (the cluster's settings apply).
    pub fn for_uri(&self, uri: &str, want: Access) -> Option<&S3Config> {
        let url = Url::parse(uri).ok().filter(|u| u.scheme() == "s3")?;
        self.for_object(url.host_str()?, url.path().trim_start_matches('/'), want)
    }

    /// As [`for_uri`](Self::for_uri), for `key` in `bucket`.
    pub fn for_object(&self, bucket: &str, key: &str, want: Access) -> Option<&S3Config> {
        self.0
            .iter()
            .filter(|g| g.bucket == bucket && g.access.covers(want) && super::under(key, &g.prefix))
            .max_by_key(|g| g.prefix.trim_end_matches('/').len())
            .map(|g| &g.config)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s3(key: &str, secret: &str) -> GrantS3 {
        GrantS3 {
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: None,
            access_key_id: key.into(),
            secret_access_key: Some(secret.into()),
            secret_access_key_file: None,
            session_token: None,
            allow_http: true,
            virtual_hosted_style: false,
        }
    }

    #[test]
    fn the_longest_covering_grant_for_the_access_wanted_gives_the_settings() {
        let grant = |bucket: &str, prefix: &str, access, key: &str| S3Grant {
            bucket: bucket.into(),
            prefix: prefix.into(),
            access,
            config: s3(key, "sk").config("x").unwrap(),
        };
        let grants = S3Grants::new(vec![
            grant("lake", "", Access::Read, "whole"),
            grant("lake", "analytics/", Access::ReadWrite, "analytics"),
            grant("lake", "analytics/out", Access::Write, "out"),
        ]);
        let key = |uri: &str, want| grants.for_uri(uri, want).and_then(|c| c.access_key_id.clone());
        assert_eq!(key("s3://lake/analytics/in/x", Access::Read).as_deref(), Some("analytics"));
        assert_eq!(key("s3://lake/analytics/out/part-0", Access::Write).as_deref(), Some("out"));
        assert_eq!(key("s3://lake/analytics/out/part-0", Access::Read).as_deref(), Some("analytics"));
        assert_eq!(key("s3://lake/raw/x", Access::Read).as_deref(), Some("whole"));
        assert_eq!(key("s3://lake/raw/x", Access::Write), None, "no grant to write there");
        assert_eq!(key("s3://lake/analytics-2/x", Access::Write), None, "not under analytics/");
        assert_eq!(key("s3://other/analytics/x", Access::Read), None);
        assert_eq!(key("/data/x", Access::Read), None);
    }

    #[test]
    fn a_secret_comes_inline_or_from_its_file_and_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("analytics.secret");
        std::fs::write(&file, "from-the-file\n").unwrap();
        let from_file =
            GrantS3 { secret_access_key: None, secret_access_key_file: Some(file), ..s3("AK", "") };
        let config = from_file.config("s3://lake/").unwrap();
        assert_eq!(config.secret_access_key.as_deref(), Some("from-the-file"));
        assert!(!config.from_env, "never the environment");
        let missing = GrantS3 {
            secret_access_key: None,
            secret_access_key_file: Some(dir.path().join("nope.secret")),
            ..s3("AK", "")
        };
        let err = missing.config("s3://lake/").unwrap_err().to_string();
        assert!(err.contains("nope.secret") && err.contains("s3://lake/"), "{err}");
        let both = GrantS3 { secret_access_key_file: Some("/x".into()), ..s3("AK", "inline-secret") };
        assert!(both.config("s3://lake/").unwrap_err().to_string().contains("not both"));
        let debug = format!("{:?} {:?}", s3("AK", "inline-secret"), s3("AK", "inline-secret").config("r"));
        assert!(!debug.contains("inline-secret") && debug.contains("AK"), "{debug}");
    }
}
