//! [`IoError`]: everything that can go wrong locating, reading or writing a dataset,
//! one variant per cause, each message ending in what to do about it.

use crate::artifact::ArtifactError;

/// A dataset could not be located, listed, read or written.
///
/// `uri` fields name the dataset (or one of its objects) the way the user wrote it,
/// so a message can be pasted back into a command line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// The URI has a scheme weft cannot read or write datasets from.
    #[error("unknown dataset URI scheme `{scheme}` in `{uri}`: use {FORMS}")]
    UnknownScheme {
        /// The rejected URI.
        uri: String,
        /// Its scheme.
        scheme: String,
    },

    /// The URI does not have the shape its scheme requires.
    #[error("malformed dataset URI `{uri}`: {reason}")]
    Malformed {
        /// The rejected URI.
        uri: String,
        /// What is wrong and how to write it instead.
        reason: String,
    },

    /// A relative path could not be resolved because the current directory is unknown.
    #[error(
        "cannot resolve the relative path `{uri}`: the current directory is unusable ({source}); write an absolute path"
    )]
    CurrentDir {
        /// The relative path.
        uri: String,
        /// The operating system's report.
        #[source]
        source: std::io::Error,
    },

    /// A relative local path with nothing to resolve it against.
    #[error("cannot resolve the relative path `{uri}`: {reason}; write an absolute path or file:///abs/path")]
    RelativePath {
        /// The relative path.
        uri: String,
        /// Why there is no directory to resolve it against.
        reason: String,
    },

    /// The S3 client for an `s3://` URI could not be built.
    #[error("cannot build the S3 client for `{uri}`: {source}")]
    S3Client {
        /// The dataset URI.
        uri: String,
        /// What the client builder rejected.
        #[source]
        source: Box<ArtifactError>,
    },

    /// Nothing exists at the input location (no object, no directory, no prefix).
    #[error("input not found: nothing exists at `{uri}`; check the path or bucket and prefix")]
    NotFound {
        /// The missing input.
        uri: String,
        /// The storage layer's report, when there is one.
        #[source]
        source: Option<object_store::Error>,
    },

    /// The output location already holds data; weft refuses to overwrite it (as Spark does).
    #[error(
        "output location `{uri}` already exists (found `{found}`): choose a new output location, \
         or delete the old output first (a leftover `_temporary/` is from a job that crashed)"
    )]
    OutputExists {
        /// The output location.
        uri: String,
        /// One object found there.
        found: String,
    },

    /// A split-planning parameter is out of range.
    #[error("invalid split plan for `{uri}`: {reason}")]
    InvalidSplitPlan {
        /// The input location.
        uri: String,
        /// What is wrong.
        reason: &'static str,
    },

    /// A task asked to commit an attempt whose part file was never finished.
    #[error(
        "cannot commit partition {partition} attempt {attempt} of `{uri}`: its part file is missing; \
         finish the task writer before committing"
    )]
    AttemptNotFound {
        /// The output location.
        uri: String,
        /// The partition.
        partition: u32,
        /// The attempt that tried to commit.
        attempt: u32,
    },

    /// Another attempt of the partition committed first; this attempt's output is discarded.
    #[error(
        "commit of partition {partition} attempt {attempt} of `{uri}` denied: attempt {winner} \
         already committed it; discard this attempt (its output is never published)"
    )]
    CommitDenied {
        /// The output location.
        uri: String,
        /// The partition.
        partition: u32,
        /// The attempt that was refused.
        attempt: u32,
        /// The attempt that won.
        winner: String,
    },

    /// `commit_job` found partitions that no task committed; the job was rolled back.
    #[error(
        "output `{uri}` is incomplete: {} never committed; nothing was published. \
         The master commits what the tasks wrote: on several machines, write the output to s3:// \
         or to a filesystem that the master and every agent share; then re-run the job",
        missing_parts(missing, *partitions)
    )]
    IncompleteOutput {
        /// The output location.
        uri: String,
        /// The partitions with no committed part, sorted.
        missing: Vec<u32>,
        /// How many partitions the job has.
        partitions: u32,
    },

    /// A batch handed to a task writer is not validly framed.
    #[error(
        "cannot write to `{uri}`: the batch is malformed ({source}); this is a bug in the producer of the batch"
    )]
    BadBatch {
        /// The part file being written.
        uri: String,
        /// What is wrong with the framing.
        #[source]
        source: weft_codec::DecodeError,
    },

    /// An object is shorter than when its splits were planned (it changed meanwhile).
    #[error(
        "`{uri}` ended at byte {ended_at}, but it had {file_len} bytes when its splits were planned; \
         input files must not change while a job reads them: re-run the job"
    )]
    Truncated {
        /// The object.
        uri: String,
        /// Its planned size.
        file_len: u64,
        /// Where its bytes ran out.
        ended_at: u64,
    },

    /// A line of text input is not UTF-8.
    #[error(
        "`{uri}` is not UTF-8 text: invalid byte at offset {offset}{}; read it with \
         `ctx.text_file_bytes` (lines as bytes) and decode the lines in the job",
        if *decompressed { " of its decompressed text" } else { "" }
    )]
    NotUtf8 {
        /// The object.
        uri: String,
        /// Where the first invalid byte is (in the decompressed text of a
        /// compressed object).
        offset: u64,
        /// Whether the object is compressed.
        decompressed: bool,
    },

    /// A compressed object does not decompress: it is truncated or corrupt.
    #[error(
        "cannot decompress `{uri}` as {compression} (after {read} compressed bytes): {source}; \
         the file is truncated or corrupt (check it with `{tool} -t`), or its extension is wrong"
    )]
    Corrupt {
        /// The object.
        uri: String,
        /// How it is compressed, by its extension.
        compression: super::Compression,
        /// The tool that checks such a file.
        tool: &'static str,
        /// Compressed bytes read when decoding failed.
        read: u64,
        /// The decoder's report.
        #[source]
        source: std::io::Error,
    },

    /// A line of decompressed text is longer than a reader accepts.
    #[error(
        "`{uri}` has a line longer than {limit} bytes at offset {offset} of its decompressed text: \
         weft holds a line whole, so it refuses lines this long (a decompression bomb's endless \
         line would exhaust memory); split the input into shorter lines"
    )]
    LineTooLong {
        /// The object.
        uri: String,
        /// Where the line starts in the decompressed text.
        offset: u64,
        /// The longest line accepted, in bytes.
        limit: usize,
    },

    /// The store refused access: missing, wrong or insufficient credentials.
    #[error(
        "access to `{uri}` was denied: check the S3 credentials and the bucket's policy, \
         or the file permissions; {source}"
    )]
    AccessDenied {
        /// What was being accessed.
        uri: String,
        /// The storage layer's report.
        #[source]
        source: object_store::Error,
    },

    /// The store failed for another reason (network, server error, disk full).
    #[error("could not access `{uri}`: {source}; check that the store is reachable and healthy, then retry")]
    Storage {
        /// What was being accessed.
        uri: String,
        /// The storage layer's report.
        #[source]
        source: object_store::Error,
    },

    /// A local directory could not be cleaned up.
    #[error("I/O error on `{uri}`: {source}; check the path's permissions")]
    Local {
        /// The local path.
        uri: String,
        /// The operating system's report.
        #[source]
        source: std::io::Error,
    },
}

/// Partitions listed in a message: `part 3 (of 4) was`, `parts 1, 3 (of 4) were`; past
/// ten, the first ten and how many more.
fn missing_parts(missing: &[u32], partitions: u32) -> String {
    const SHOWN: usize = 10;
    let mut list = missing.iter().take(SHOWN).map(u32::to_string).collect::<Vec<_>>().join(", ");
    if missing.len() > SHOWN {
        list.push_str(&format!(" and {} more", missing.len() - SHOWN));
    }
    match missing.len() {
        1 => format!("part {list} (of {partitions}) was"),
        _ => format!("parts {list} (of {partitions}) were"),
    }
}

/// The forms a dataset URI may take, for error messages.
pub(crate) const FORMS: &str = "s3://bucket/prefix, file:///abs/path, or a plain path";

impl IoError {
    /// Classifies an `object_store` failure on `uri`.
    pub(crate) fn from_store(uri: impl Into<String>, source: object_store::Error) -> Self {
        let uri = uri.into();
        match source {
            object_store::Error::NotFound { .. } => Self::NotFound { uri, source: Some(source) },
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                Self::AccessDenied { uri, source }
            }
            source => Self::Storage { uri, source },
        }
    }

    /// Whether this is [`IoError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_are_classified() {
        let not_found = object_store::Error::NotFound { path: "p".into(), source: "gone".into() };
        assert!(IoError::from_store("s3://b/p", not_found).is_not_found());
        let denied = object_store::Error::PermissionDenied { path: "p".into(), source: "no".into() };
        assert!(matches!(IoError::from_store("u", denied), IoError::AccessDenied { .. }));
        let other = object_store::Error::NotImplemented;
        let err = IoError::from_store("file:///x", other);
        assert!(matches!(err, IoError::Storage { .. }));
        assert!(err.to_string().contains("file:///x"), "{err}");
    }

    #[test]
    fn incomplete_output_names_the_missing_parts() {
        let err = |missing: Vec<u32>, partitions| {
            IoError::IncompleteOutput { uri: "file:///x/out".into(), missing, partitions }.to_string()
        };
        let two = err(vec![1, 3], 4);
        assert!(
            two.starts_with(
                "output `file:///x/out` is incomplete: parts 1, 3 (of 4) were never committed; nothing was published"
            ),
            "{two}"
        );
        assert!(two.contains("s3://"), "{two}");
        assert!(err(vec![2], 3).contains(": part 2 (of 3) was never committed"));
        let many = err((0..100).collect(), 100);
        assert!(many.contains("parts 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 90 more (of 100) were"), "{many}");
    }
}
