//! Which data a job may touch: the grants of its tenant (local directories,
//! S3 buckets and prefixes, HTTP hosts, each readable, writable or both),
//! checked wherever weft reads or writes on a job's behalf, and the
//! directories no job may reach even under a grant (a master's or agent's
//! own state). See `docs/operators-guide.md` (Data access).

mod s3;

pub use s3::{GrantS3, S3Grant, S3Grants};

use crate::io::DataLocation;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use url::Url;

/// A job's capability: 32 random bytes the master draws at submission and
/// gives the agents running the job's tasks. A peer serves a job's shuffle
/// blocks only to a fetch that presents it, so knowing a job's id is not
/// enough to read its data.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobCapability(pub [u8; 32]);

impl JobCapability {
    /// The metadata key a fetch presents it under.
    pub const HEADER: &'static str = "weft-job-capability";

    /// A fresh one from the operating system's random source.
    ///
    /// # Errors
    /// When the random source fails.
    pub fn fresh() -> Result<Self, crate::token::TokenError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| crate::token::TokenError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// From its wire bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Its hex form, as it travels in metadata.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `hex` is this capability (in constant time).
    pub fn matches_hex(&self, hex: &str) -> bool {
        let mut given = [0u8; 32];
        if hex::decode_to_slice(hex, &mut given).is_err() {
            return false;
        }
        given.iter().zip(self.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl fmt::Debug for JobCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JobCapability(<redacted>)")
    }
}

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Reading.
    Read,
    /// Writing.
    Write,
    /// Both.
    ReadWrite,
}

impl Access {
    fn covers(self, want: Access) -> bool {
        self == Access::ReadWrite || self == want
    }

    fn verb(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "read and write",
        }
    }
}

/// One grant as configured: a root URI (`/data/x` or `file:///data/x`,
/// `s3://bucket/prefix`, `https://host[:port]/path`) and its access.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Everything under it.
    pub root: String,
    /// What may be done there.
    pub access: Access,
    /// For an `s3://` root: the endpoint and credentials its reads and
    /// writes use instead of the cluster's S3 settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<GrantS3>,
}

impl Grant {
    /// `ROOT` (read and write) or `ROOT=read|write|read-write`, as on the
    /// command line.
    ///
    /// # Errors
    /// An unknown access.
    pub fn parse(text: &str) -> Result<Self, AccessError> {
        let (root, access) = match text.rsplit_once('=') {
            Some((root, "read")) => (root, Access::Read),
            Some((root, "write")) => (root, Access::Write),
            Some((root, "read-write")) => (root, Access::ReadWrite),
            Some((_, other)) if !other.contains('/') => {
                return Err(AccessError::BadGrant {
                    root: text.into(),
                    reason: format!("unknown access `{other}`: use read, write or read-write"),
                });
            }
            _ => (text, Access::ReadWrite),
        };
        Ok(Self { root: root.into(), access, s3: None })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Root {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
    Http { origin: String, path: String },
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Root::Local(p) => write!(f, "{}", p.display()),
            Root::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Root::Http { origin, path } => write!(f, "{origin}{path}"),
        }
    }
}

/// The grants of one job, and the places no job may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    grants: Vec<(Root, Access)>,
    deny: Vec<PathBuf>,
    s3: S3Grants,
}

impl Policy {
    /// A policy of `grants`, with nothing denied beyond what they leave out.
    ///
    /// # Errors
    /// A grant whose root is not a local path, an `s3://` or an `http(s)://` URI.
    /// A grant with S3 settings whose root is not `s3://`, or whose secret
    /// cannot be read (see [`GrantS3::config`]).
    pub fn new(grants: &[Grant]) -> Result<Self, AccessError> {
        let mut s3 = Vec::new();
        for g in grants.iter().filter(|g| g.s3.is_some()) {
            let (Ok(Root::S3 { bucket, prefix }), Some(settings)) = (root(&g.root), &g.s3) else {
                return Err(AccessError::BadGrant {
                    root: g.root.clone(),
                    reason: "only an s3:// grant takes s3 settings".into(),
                });
            };
            s3.push(S3Grant { bucket, prefix, access: g.access, config: settings.config(&g.root)? });
        }
        let grants = grants.iter().map(|g| Ok((root(&g.root)?, g.access))).collect::<Result<_, _>>()?;
        Ok(Self { grants, deny: Vec::new(), s3: S3Grants::new(s3) })
    }

    /// The S3 settings of the grants that carry their own.
    pub fn s3(&self) -> &S3Grants {
        &self.s3
    }

    /// Refuse everything under `dirs` even where a grant covers it (a
    /// process's own configuration, state and artifacts).
    pub fn deny(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        // Relative directories (a configured `.weft/agent`) mean the process's own.
        self.deny
            .extend(dirs.into_iter().map(|d| resolve(&normalize(&std::path::absolute(&d).unwrap_or(d)))));
        self
    }

    /// Whether a job may `want` at `location`.
    ///
    /// # Errors
    /// [`AccessError::Denied`], naming the location and what it lacks.
    pub fn check(&self, location: &DataLocation, want: Access) -> Result<(), AccessError> {
        if let Some(path) = location.local_path() {
            return self.check_local(path, want, &location.uri());
        }
        let uri = location.uri();
        if let Some(bucket) = location.s3_bucket() {
            let key = location.path().as_ref();
            let granted = self.grants.iter().any(|(r, a)| {
                a.covers(want)
                    && matches!(r, Root::S3 { bucket: b, prefix } if b == bucket && under(key, prefix))
            });
            return if granted { Ok(()) } else { Err(self.denied(&uri, want)) };
        }
        Err(self.denied(&uri, want))
    }

    /// Whether a job may read the artifact at `url` (`file://`, `s3://`, `http(s)://`).
    ///
    /// # Errors
    /// [`AccessError::Denied`].
    pub fn check_url(&self, url: &Url) -> Result<(), AccessError> {
        match url.scheme() {
            "file" => match url.to_file_path() {
                Ok(path) => self.check_local(&normalize(&path), Access::Read, url.as_str()),
                Err(()) => Err(self.denied(url.as_str(), Access::Read)),
            },
            "s3" => {
                let (bucket, key) = (url.host_str().unwrap_or_default(), url.path().trim_start_matches('/'));
                let granted = self.grants.iter().any(|(r, a)| {
                    a.covers(Access::Read)
                        && matches!(r, Root::S3 { bucket: b, prefix } if b == bucket && under(key, prefix))
                });
                if granted { Ok(()) } else { Err(self.denied(url.as_str(), Access::Read)) }
            }
            "http" | "https" => {
                let origin = url.origin().ascii_serialization();
                let granted = self.grants.iter().any(|(r, a)| {
                    a.covers(Access::Read)
                        && matches!(r, Root::Http { origin: o, path } if *o == origin && url.path().starts_with(path.as_str()))
                });
                if granted { Ok(()) } else { Err(self.denied(url.as_str(), Access::Read)) }
            }
            _ => Err(self.denied(url.as_str(), Access::Read)),
        }
    }

    /// Whether `location` is outside the denied directories (grants aside):
    /// what an agent checks of the locations its master sends.
    ///
    /// # Errors
    /// [`AccessError::Protected`].
    pub fn check_not_protected(&self, location: &DataLocation) -> Result<(), AccessError> {
        let Some(path) = location.local_path() else { return Ok(()) };
        let real = resolve(path);
        match self.deny.iter().find(|d| real.starts_with(d)) {
            Some(d) => Err(AccessError::Protected { location: location.uri(), dir: d.clone() }),
            None => Ok(()),
        }
    }

    fn check_local(&self, path: &Path, want: Access, uri: &str) -> Result<(), AccessError> {
        // Symbolic links are followed as far as the path exists, so a link
        // inside a granted directory cannot lead out of it.
        let real = resolve(path);
        if let Some(d) = self.deny.iter().find(|d| real.starts_with(d)) {
            return Err(AccessError::Protected { location: uri.into(), dir: d.clone() });
        }
        let granted = self.grants.iter().any(|(r, a)| {
            a.covers(want) && matches!(r, Root::Local(root) if real.starts_with(resolve(root)))
        });
        if granted { Ok(()) } else { Err(self.denied(uri, want)) }
    }

    fn denied(&self, location: &str, want: Access) -> AccessError {
        let grants = if self.grants.is_empty() {
            "none".to_string()
        } else {
            self.grants.iter().map(|(r, a)| format!("{r} ({})", a.verb())).collect::<Vec<_>>().join(", ")
        };
        AccessError::Denied { location: location.into(), want: want.verb(), grants }
    }
}

/// Whether `key` is `prefix` or under it (at a `/`).
fn under(key: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || key == prefix || key.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

fn root(text: &str) -> Result<Root, AccessError> {
    let bad = |reason: &str| AccessError::BadGrant { root: text.into(), reason: reason.into() };
    if text.starts_with('/') {
        return Ok(Root::Local(normalize(Path::new(text))));
    }
    let url = Url::parse(text)
        .map_err(|e| bad(&format!("{e}: write /abs/path, s3://bucket/prefix or https://host/path")))?;
    match url.scheme() {
        "file" => Ok(Root::Local(normalize(&url.to_file_path().map_err(|()| bad("file:///abs/path"))?))),
        "s3" => {
            let bucket =
                url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| bad("an s3 grant needs a bucket"))?;
            Ok(Root::S3 { bucket: bucket.into(), prefix: url.path().trim_start_matches('/').into() })
        }
        "http" | "https" => {
            Ok(Root::Http { origin: url.origin().ascii_serialization(), path: url.path().into() })
        }
        other => Err(bad(&format!("unknown scheme `{other}`"))),
    }
}

/// `path` without `.` and `..` (lexically; `..` at the root stays at the root).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `path` with symbolic links resolved as far as it exists; the rest as written.
fn resolve(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            out.extend(rest.iter().rev());
            return normalize(&out);
        }
        match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Why a job may not touch a location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No grant covers it.
    #[error(
        "the job may not {want} {location}: its tenant's grants are {grants}; ask the operator for a grant \
         (`[[tenant.grant]]` in the tenants file, or `weft master --grant`)"
    )]
    Denied {
        /// The location.
        location: String,
        /// What was wanted.
        want: &'static str,
        /// The grants there are.
        grants: String,
    },
    /// It is inside a directory of weft's own.
    #[error("the job may not touch {location}: it is inside {}, which weft keeps for itself", dir.display())]
    Protected {
        /// The location.
        location: String,
        /// The protected directory.
        dir: PathBuf,
    },
    /// A grant that cannot be understood.
    #[error("bad grant `{root}`: {reason}")]
    BadGrant {
        /// The grant as written.
        root: String,
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::artifact::S3Config;

    fn loc(uri: &str) -> DataLocation {
        DataLocation::parse(uri, &S3Config::default().with_credentials("AK", "SK").with_from_env(false))
            .unwrap()
    }

    fn policy(grants: &[&str]) -> Policy {
        Policy::new(&grants.iter().map(|g| Grant::parse(g).unwrap()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn local_grants_cover_what_is_under_them_for_the_access_they_give() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("in")).unwrap();
        let p = policy(&[&format!("{}=read", data.display()), &format!("{}/out", dir.path().display())]);
        assert!(p.check(&loc(&format!("{}/in/x.txt", data.display())), Access::Read).is_ok());
        let err = p.check(&loc(&format!("{}/in/x.txt", data.display())), Access::Write).unwrap_err();
        assert!(err.to_string().contains("may not write") && err.to_string().contains("(read)"), "{err}");
        assert!(p.check(&loc(&format!("{}/out/part-0", dir.path().display())), Access::Write).is_ok());
        // A sibling whose name starts like the root is not under it.
        assert!(p.check(&loc(&format!("{}/data2/x", dir.path().display())), Access::Read).is_err());
        // Nor is a way out through `..`.
        assert!(p.check(&loc(&format!("{}/in/../../etc", data.display())), Access::Read).is_err());
        let none = Policy::default().check(&loc("/etc/shadow"), Access::Read).unwrap_err();
        assert!(
            none.to_string().contains("/etc/shadow") && none.to_string().contains("grants are none"),
            "{none}"
        );
    }

    #[test]
    fn a_symbolic_link_does_not_lead_out_of_a_grant() {
        let dir = tempfile::tempdir().unwrap();
        let granted = dir.path().join("granted");
        std::fs::create_dir_all(&granted).unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), granted.join("link")).unwrap();
        let p = policy(&[granted.to_str().unwrap()]);
        let err = p.check(&loc(granted.join("link").to_str().unwrap()), Access::Read).unwrap_err();
        assert!(matches!(err, AccessError::Denied { .. }), "{err}");
    }

    #[test]
    fn protected_directories_stay_out_of_reach_under_any_grant() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join(".weft/master");
        std::fs::create_dir_all(&own).unwrap();
        let p = policy(&[dir.path().to_str().unwrap()]).deny([own.clone()]);
        let err = p.check(&loc(own.join("credentials.toml").to_str().unwrap()), Access::Read).unwrap_err();
        assert!(matches!(err, AccessError::Protected { .. }), "{err}");
        assert!(p.check(&loc(dir.path().join("in.txt").to_str().unwrap()), Access::Read).is_ok());
    }

    #[test]
    fn s3_and_http_grants_match_bucket_prefix_and_origin() {
        let p = policy(&["s3://lake/analytics=read", "https://artifacts.example.org/jobs/=read"]);
        assert!(p.check(&loc("s3://lake/analytics/2026/x"), Access::Read).is_ok());
        assert!(p.check(&loc("s3://lake/analytics"), Access::Read).is_ok());
        assert!(p.check(&loc("s3://lake/analytics-raw/x"), Access::Read).is_err());
        assert!(p.check(&loc("s3://other/analytics/x"), Access::Read).is_err());
        assert!(p.check(&loc("s3://lake/analytics/out"), Access::Write).is_err());
        let url = |u: &str| Url::parse(u).unwrap();
        assert!(p.check_url(&url("https://artifacts.example.org/jobs/wc.wasm")).is_ok());
        assert!(p.check_url(&url("https://artifacts.example.org/other/wc.wasm")).is_err());
        assert!(p.check_url(&url("http://artifacts.example.org/jobs/wc.wasm")).is_err(), "another origin");
        assert!(p.check_url(&url("https://169.254.169.254/latest/meta-data")).is_err());
        assert!(p.check_url(&url("file:///etc/passwd")).is_err());
        assert!(p.check_url(&url("s3://lake/analytics/job.wasm")).is_ok());
    }

    #[test]
    fn grants_parse_from_the_command_line_form() {
        assert_eq!(
            Grant::parse("/data").unwrap(),
            Grant { root: "/data".into(), access: Access::ReadWrite, s3: None }
        );
        assert_eq!(Grant::parse("s3://b/p=read").unwrap().access, Access::Read);
        assert!(Grant::parse("/data=all").is_err());
        assert!(Policy::new(&[Grant::parse("gs://b=read").unwrap()]).is_err());
    }
}
