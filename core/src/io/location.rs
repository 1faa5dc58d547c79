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
/// | `/abs/path`, `rel/path`, `./rel` | the local filesystem, relative paths against the current directory (or a given base directory, [`parse_in`](Self::parse_in)) | the absolute path |
///
/// A relative path means the same file only to processes in the same directory,
/// so a cluster resolves it once, on the master, against the submitter's working
/// directory ([`parse_in`](Self::parse_in)), and hands tasks the absolute
/// [`to_uri`](Self::to_uri).
///
/// Cloning is cheap (the store is shared).
///
/// ```
/// use weft_core::artifact::S3Config;
/// use weft_core::io::{DataLocation, IoError};
///
/// let s3 = DataLocation::parse("s3://logs/2026/11/", &S3Config::default().with_skip_signature(true)).unwrap();
/// assert_eq!((s3.uri().as_str(), s3.path().as_ref()), ("s3://logs/2026/11", "2026/11"));
/// let local = DataLocation::parse("/var/data/../in", &S3Config::default()).unwrap();
/// assert_eq!(local.uri(), "file:///var/in");
/// let relative = DataLocation::parse_in("../out dir", Some("/home/ada/jobs".as_ref()), &S3Config::default()).unwrap();
/// assert_eq!(relative.to_uri(), "file:///home/ada/out%20dir");
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
        Self::parse_from(uri, Base::CurrentDir, s3)
    }

    /// Parses a dataset URI as [`parse`](Self::parse) does, but resolves a relative
    /// local path (`out/`, `./x`, `../x`) against `base_dir` instead of the current
    /// directory: `base_dir` is where the path was written, e.g. a submitter's working
    /// directory. Absolute paths, `file://` and `s3://` URIs are not affected.
    ///
    /// With no `base_dir`, or one that is not absolute, a relative path is
    /// [`IoError::RelativePath`]: it would otherwise mean different files to
    /// different processes.
    pub fn parse_in(uri: &str, base_dir: Option<&FsPath>, s3: &S3Config) -> Result<Self, IoError> {
        Self::parse_from(uri, base_dir.map_or(Base::Unknown, Base::Dir), s3)
    }

    fn parse_from(uri: &str, base: Base<'_>, s3: &S3Config) -> Result<Self, IoError> {
        if uri.is_empty() {
            return Err(malformed(uri, "it is empty; write a path, file:///abs/path or s3://bucket/prefix"));
        }
        let url = match Url::parse(uri) {
            Ok(url) => url,
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                return Self::from_local_path(uri, FsPath::new(uri), base);
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
                Self::from_local_path(uri, &path, base)
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

    fn from_local_path(uri: &str, path: &FsPath, base: Base<'_>) -> Result<Self, IoError> {
        let absolute = match base {
            _ if path.is_absolute() => path.to_path_buf(),
            Base::CurrentDir => std::env::current_dir()
                .map_err(|source| IoError::CurrentDir { uri: uri.to_owned(), source })?
                .join(path),
            Base::Dir(dir) if dir.is_absolute() => dir.join(path),
            Base::Dir(dir) => {
                return Err(IoError::RelativePath {
                    uri: uri.to_owned(),
                    reason: format!("its base directory `{}` is not absolute", dir.display()),
                });
            }
            Base::Unknown => {
                return Err(IoError::RelativePath {
                    uri: uri.to_owned(),
                    reason: "the client that submitted the job did not send its working directory \
                             (a weft client older than the master, or a directory name that is not UTF-8)"
                        .to_owned(),
                });
            }
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

    /// The bucket, for an `s3://` location.
    pub fn s3_bucket(&self) -> Option<&str> {
        self.root.strip_prefix("s3://").and_then(|b| b.strip_suffix('/'))
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

    /// The location as a URI that [`parse`](Self::parse) reads back as the same store
    /// and path in any process and directory: percent-encoded (`file:///tmp/a%20b`,
    /// `s3://bucket/100%25`) where [`uri`](Self::uri) is written for people. A location
    /// made by [`new`](Self::new) has no such URI and gives its [`uri`](Self::uri).
    pub fn to_uri(&self) -> String {
        let Ok(mut url) = Url::parse(&self.root) else { return self.uri() };
        match url.path_segments_mut() {
            Ok(mut segments) => {
                segments.pop_if_empty().extend(self.path.parts().map(|part| part.as_ref().to_owned()));
            }
            Err(()) => return self.uri(),
        }
        url.to_string()
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

/// What a relative local path is resolved against.
#[derive(Clone, Copy)]
enum Base<'a> {
    /// The process's current directory.
    CurrentDir,
    /// A given directory.
    Dir(&'a FsPath),
    /// Nothing: relative paths are refused.
    Unknown,
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
        DataLocation::parse(
            uri,
            &S3Config::default().with_region("us-east-1").with_credentials("AK", "SK").with_from_env(false),
        )
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

    fn parse_in(uri: &str, base: Option<&str>) -> Result<DataLocation, IoError> {
        let s3 =
            S3Config::default().with_region("us-east-1").with_credentials("AK", "SK").with_from_env(false);
        DataLocation::parse_in(uri, base.map(FsPath::new), &s3)
    }

    #[test]
    fn relative_paths_resolve_against_the_base_dir_only() {
        let base = Some("/home/ada/jobs");
        let local = |uri| parse_in(uri, base).unwrap().local_path().unwrap().to_path_buf();
        assert_eq!(local("out/"), PathBuf::from("/home/ada/jobs/out"));
        assert_eq!(local("in.txt"), PathBuf::from("/home/ada/jobs/in.txt"));
        assert_eq!(local("./data/in.txt"), PathBuf::from("/home/ada/jobs/data/in.txt"));
        assert_eq!(local("../shared/out"), PathBuf::from("/home/ada/shared/out"));
        assert_eq!(local("../../../.."), PathBuf::from("/"));
        assert_eq!(parse_in("out", base).unwrap().to_uri(), "file:///home/ada/jobs/out");
        // Absolute paths and URIs do not depend on the base, nor on there being one.
        for base in [base, None, Some("not/absolute")] {
            assert_eq!(parse_in("/srv/in/../data", base).unwrap().to_uri(), "file:///srv/data");
            assert_eq!(parse_in("file:///srv/x%20y", base).unwrap().to_uri(), "file:///srv/x%20y");
            let s3 = parse_in("s3://bucket/logs/2026/", base).unwrap();
            assert_eq!((s3.to_uri().as_str(), s3.path().as_ref()), ("s3://bucket/logs/2026", "logs/2026"));
        }
        // A relative path needs an absolute base: no silent fallback to this process's directory.
        for (base, says) in [(None, "did not send its working directory"), (Some("rel/dir"), "not absolute")]
        {
            match parse_in("out/", base) {
                Err(err @ IoError::RelativePath { .. }) => {
                    let message = err.to_string();
                    assert!(message.contains(says) && message.contains("absolute path"), "{message}");
                }
                other => panic!("{base:?}: expected RelativePath, got {other:?}"),
            }
        }
    }

    /// `to_uri` is what the master hands tasks: it must name the same object
    /// whatever characters the names hold.
    #[test]
    fn to_uri_reads_back_as_the_same_location() {
        let names = ["plain", "a b", "100%", "%41", "x#y", "q?z=1", "ünï", "[x]{y}", "~tilde"];
        for name in names {
            let local = parse(&format!("/tmp/weft dir/{name}")).unwrap();
            let again = parse(&local.to_uri()).unwrap();
            assert_eq!(again.local_path(), local.local_path(), "{name}: {}", local.to_uri());
            assert_eq!(again.path(), local.path(), "{name}");
            let s3 = parse(&format!(
                "s3://bucket/pre fix/{}",
                name.replace('%', "%25").replace('#', "%23").replace('?', "%3F")
            ))
            .unwrap();
            assert!(s3.path().as_ref().ends_with(name), "{name}: {}", s3.path());
            let again = parse(&s3.to_uri()).unwrap();
            assert_eq!(again.path(), s3.path(), "{name}: {}", s3.to_uri());
        }
        assert_eq!(parse("s3://bucket").unwrap().to_uri().trim_end_matches('/'), "s3://bucket");
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(FsPath::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(FsPath::new("/../a")), PathBuf::from("/a"));
    }
}
