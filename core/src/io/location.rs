//! [`DataLocation`]: a dataset URI resolved to an object store and a path in it.

use std::fmt;
use std::path::{Component, Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

use super::error::IoError;
use crate::artifact::S3Config;

/// Where a dataset lives: an [`ObjectStore`], a path inside it, and the URI it was
/// named by. The path is a single object or a prefix (a directory).
///
/// | written as | store | path |
/// |---|---|---|
/// | `s3://bucket/prefix` (or `s3://bucket` for the whole bucket) | S3, per [`S3Config`] | `prefix` |
/// | `file:///abs/path` | the local filesystem | `abs/path` |
/// | `/abs/path`, `rel/path`, `./rel` | the local filesystem, relative paths against the current directory | the absolute path |
///
/// Cloning is cheap (the store is shared).
///
/// ```
/// use weft_core::artifact::S3Config;
/// use weft_core::io::{DataLocation, IoError};
///
/// let s3 = DataLocation::parse("s3://logs/2026/11/", &S3Config::default()).unwrap();
/// assert_eq!((s3.uri().as_str(), s3.path().as_ref()), ("s3://logs/2026/11", "2026/11"));
/// let local = DataLocation::parse("/var/data/../in", &S3Config::default()).unwrap();
/// assert_eq!(local.uri(), "file:///var/in");
/// assert!(matches!(DataLocation::parse("gs://b/x", &S3Config::default()), Err(IoError::UnknownScheme { .. })));
/// ```
#[derive(Clone)]
pub struct DataLocation {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// URI of the store's root; an object's URI is `root` + its path.
    root: String,
    /// The local directory or file, for locations on the local filesystem.
    local: Option<PathBuf>,
}

impl fmt::Debug for DataLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataLocation")
            .field("uri", &self.uri())
            .field("store", &format_args!("{}", self.store))
            .finish()
    }
}

impl fmt::Display for DataLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

impl DataLocation {
    /// Parses a dataset URI (see the table above). `s3://` locations get a client built
    /// from `s3`; the other forms ignore it. Nothing is read: a location that does not
    /// exist parses fine (outputs usually do not exist yet).
    pub fn parse(uri: &str, s3: &S3Config) -> Result<Self, IoError> {
        if uri.is_empty() {
            return Err(malformed(uri, "it is empty; write a path, file:///abs/path or s3://bucket/prefix"));
        }
        let url = match Url::parse(uri) {
            Ok(url) => url,
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                return Self::from_local_path(uri, FsPath::new(uri));
            }
            Err(err) => return Err(malformed(uri, err.to_string())),
        };
        match url.scheme() {
            "file" => {
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(malformed(
                        uri,
                        "file URIs take no query or fragment (percent-encode `?` as %3F, `#` as %23)",
                    ));
                }
                let path = url.to_file_path().map_err(|()| {
                    malformed(
                        uri,
                        "file URIs need an absolute local path with three slashes: file:///abs/path",
                    )
                })?;
                Self::from_local_path(uri, &path)
            }
            "s3" => Self::s3(uri, &url, s3),
            scheme => Err(IoError::UnknownScheme { uri: uri.to_owned(), scheme: scheme.to_owned() }),
        }
    }

    /// A location at `path` in any store (in-memory stores in tests, a store built by
    /// hand). Its URI is shown as `<store>/<path>`.
    pub fn new(store: Arc<dyn ObjectStore>, path: Path) -> Self {
        let root = format!("{store}/");
        Self { store, path, root, local: None }
    }

    fn from_local_path(uri: &str, path: &FsPath) -> Result<Self, IoError> {
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            let cwd = std::env::current_dir()
                .map_err(|source| IoError::CurrentDir { uri: uri.to_owned(), source })?;
            cwd.join(path)
        };
        let absolute = normalize(&absolute);
        let object_path = Path::from_absolute_path(&absolute)
            .map_err(|err| malformed(uri, format!("not a usable local path: {err}")))?;
        Ok(Self {
            store: Arc::new(LocalFileSystem::new()),
            path: object_path,
            root: "file:///".to_owned(),
            local: Some(absolute),
        })
    }

    fn s3(uri: &str, url: &Url, config: &S3Config) -> Result<Self, IoError> {
        let bucket = url.host_str().unwrap_or_default();
        if bucket.is_empty() {
            return Err(malformed(uri, "an s3 URI needs a bucket: s3://bucket/prefix"));
        }
        if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
            return Err(malformed(
                uri,
                "s3 URIs carry no user, password or port; set the endpoint and credentials in the [s3] config",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(malformed(
                uri,
                "s3 URIs take no query or fragment (percent-encode `?` as %3F, `#` as %23)",
            ));
        }
        let path = Path::from_url_path(url.path())
            .map_err(|err| malformed(uri, format!("invalid S3 key or prefix: {err}")))?;
        let store = config
            .build_store(bucket)
            .map_err(|source| IoError::S3Client { uri: uri.to_owned(), source: Box::new(source) })?;
        Ok(Self { store: Arc::new(store), path, root: format!("s3://{bucket}/"), local: None })
    }

    /// The object store holding the dataset.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The object or prefix inside the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The location as a URI (`s3://bucket/prefix`, `file:///abs/path`), without a
    /// trailing `/` except for a bucket's root (`s3://bucket/`).
    pub fn uri(&self) -> String {
        self.uri_of(&self.path)
    }

    /// The URI of an object of this location's store, for messages.
    pub fn uri_of(&self, path: &Path) -> String {
        format!("{}{path}", self.root)
    }

    /// The local file or directory, for locations on the local filesystem.
    pub fn local_path(&self) -> Option<&FsPath> {
        self.local.as_deref()
    }

    /// The location of `name` below this one (e.g. `_temporary`), same store.
    pub fn child(&self, name: &str) -> Self {
        Self {
            store: Arc::clone(&self.store),
            path: self.path.child(name),
            root: self.root.clone(),
            local: self.local.as_ref().map(|dir| dir.join(name)),
        }
    }
}

/// Removes `.` and resolves `..` lexically (a missing output path cannot be
/// canonicalized); `..` above the root stays at the root.
fn normalize(path: &FsPath) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn malformed(uri: &str, reason: impl Into<String>) -> IoError {
    IoError::Malformed { uri: uri.to_owned(), reason: reason.into() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> Result<DataLocation, IoError> {
        DataLocation::parse(uri, &S3Config::default().with_region("us-east-1").with_from_env(false))
    }

    #[test]
    fn parses_every_form() {
        let s3 = parse("s3://bucket/logs/2026/").unwrap();
        assert_eq!(s3.path().as_ref(), "logs/2026");
        assert_eq!(s3.uri(), "s3://bucket/logs/2026");
        assert_eq!(s3.uri_of(&s3.path().child("part-00000")), "s3://bucket/logs/2026/part-00000");
        assert!(s3.local_path().is_none());
        let whole = parse("s3://bucket").unwrap();
        assert_eq!((whole.path().as_ref(), whole.uri().as_str()), ("", "s3://bucket/"));

        let file = parse("file:///tmp/a%20b/in.txt").unwrap();
        assert_eq!(file.path().as_ref(), "tmp/a b/in.txt");
        assert_eq!(file.local_path(), Some(FsPath::new("/tmp/a b/in.txt")));
        assert_eq!(file.uri(), "file:///tmp/a b/in.txt");

        let plain = parse("/tmp/./x/../y").unwrap();
        assert_eq!(plain.path().as_ref(), "tmp/y");
        let relative = parse("data/in.txt").unwrap();
        let expected = std::env::current_dir().unwrap().join("data/in.txt");
        assert_eq!(relative.local_path(), Some(expected.as_path()));
        assert_eq!(relative.child("_SUCCESS").local_path(), Some(expected.join("_SUCCESS").as_path()));
    }

    #[test]
    fn errors_are_specific_and_name_the_fix() {
        let err = parse("gs://bucket/x").unwrap_err();
        assert!(matches!(&err, IoError::UnknownScheme { scheme, .. } if scheme == "gs"), "{err:?}");
        assert!(err.to_string().contains("s3://bucket/prefix"), "{err}");
        type Check = fn(&str) -> bool;
        let cases: [(&str, Check); 7] = [
            ("", |r| r.contains("empty")),
            ("file://host/x", |r| r.contains("three slashes")),
            ("file:///x?y", |r| r.contains("query")),
            ("s3:///key", |r| r.contains("bucket")),
            ("s3://u:p@bucket/k", |r| r.contains("[s3] config")),
            ("s3://bucket/k#frag", |r| r.contains("fragment")),
            ("s3://bucket/a//b", |r| r.contains("invalid S3 key")),
        ];
        for (uri, check) in cases {
            match parse(uri) {
                Err(IoError::Malformed { reason, uri: named }) => {
                    assert!(check(&reason), "{uri}: {reason}");
                    assert_eq!(named, uri);
                }
                other => panic!("{uri}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(FsPath::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(FsPath::new("/../a")), PathBuf::from("/a"));
    }
}
