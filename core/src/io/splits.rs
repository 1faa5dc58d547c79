//! Split planning: [`plan_text_splits`] lists an input and cuts its files into
//! [`TextSplit`] byte ranges.

use futures::TryStreamExt;
use object_store::ObjectMeta;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::decode::Compression;
use super::error::IoError;
use super::location::DataLocation;

/// One byte range `[start, end)` of one object: the unit of input of a task.
///
/// Which lines a split yields is defined in the [module docs](super#the-split-rule):
/// those whose first byte lies in `[start, end)`. Serializable, since it travels to
/// agents in task specs together with the dataset's URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TextSplit {
    /// The object, inside the dataset's store.
    #[serde(with = "object_path")]
    pub path: Path,
    /// First byte of the range.
    pub start: u64,
    /// One past the last byte of the range.
    pub end: u64,
    /// Size of the whole object when the split was planned.
    pub file_len: u64,
}

impl TextSplit {
    /// Bytes in the range (what the planner balanced; a reader reads a little more).
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }
}

/// Plans the splits of the text input at `location`: a single object, or a prefix
/// (directory) whose objects are all read.
///
/// - Objects below a prefix are listed recursively, sorted by path, and skipped when
///   any path segment below the prefix starts with `_` or `.` (`_SUCCESS`,
///   `_temporary/`, `.crc` files), as Hadoop does. Empty objects yield no split.
/// - The split size is `min(max_split_bytes, max(1, total_bytes / min_partitions))`
///   (`min_partitions` 0 means no minimum); each file of `n` bytes is cut into
///   `ceil(n / size)` ranges of near-equal length. So no split is larger than
///   `max_split_bytes`, and there are at least `min(min_partitions, total_bytes)`
///   splits (a file cannot be cut finer than one byte per split).
/// - A location where nothing exists is [`IoError::NotFound`]. An existing local
///   directory with no visible files yields no splits. On S3, which has no
///   directories, a prefix counts as existing when any object (hidden ones included,
///   such as a lone `_SUCCESS`) lies below it.
/// - A compressed object (`.gz`, `.zst`: [`Compression::of`]) cannot be cut:
///   it is one split, whatever its size (as in Hadoop).
/// - `max_split_bytes` 0 is [`IoError::InvalidSplitPlan`].
pub async fn plan_text_splits(
    location: &DataLocation,
    min_partitions: usize,
    max_split_bytes: u64,
) -> Result<Vec<TextSplit>, IoError> {
    plan_text_splits_in_waves(location, min_partitions, max_split_bytes, 1).await
}

/// [`plan_text_splits`] for a cluster that runs `slots` tasks at once: when
/// the input takes more than one split, the split size shrinks (never grows)
/// so that a single file is cut into a multiple of `slots` pieces. The last
/// wave of tasks then fills every slot instead of leaving cores idle while one
/// straggling split finishes. With several files the count is near, not
/// always exactly, a multiple. `slots` 0 or 1 changes nothing.
#[tracing::instrument(name = "weft.core.io.plan_splits", skip_all, fields(uri = %location))]
pub async fn plan_text_splits_in_waves(
    location: &DataLocation,
    min_partitions: usize,
    max_split_bytes: u64,
    slots: usize,
) -> Result<Vec<TextSplit>, IoError> {
    if max_split_bytes == 0 {
        return Err(IoError::InvalidSplitPlan {
            uri: location.uri(),
            reason: "max_split_bytes is 0; give a positive size such as 128 MiB",
        });
    }
    let objects = list_input(location).await?;
    let total: u64 = objects.iter().map(|meta| meta.size).sum();
    let goal = match u64::try_from(min_partitions) {
        Ok(0) | Err(_) => max_split_bytes,
        Ok(min) => (total / min).max(1),
    };
    let mut split_size = goal.min(max_split_bytes);
    let slots = u64::try_from(slots).unwrap_or(1).max(1);
    let count = total.div_ceil(split_size);
    if slots > 1 && count > 1 && count % slots != 0 {
        split_size = total.div_ceil(count.next_multiple_of(slots)).max(1);
    }
    let mut splits = Vec::new();
    for meta in objects {
        let file_len = meta.size;
        let pieces = if Compression::of(meta.location.as_ref()).is_splittable() {
            file_len.div_ceil(split_size)
        } else {
            1
        };
        for i in 0..pieces {
            splits.push(TextSplit {
                path: meta.location.clone(),
                start: cut(file_len, i, pieces),
                end: cut(file_len, i + 1, pieces),
                file_len,
            });
        }
    }
    tracing::debug!(splits = splits.len(), total, split_size, "planned text splits");
    Ok(splits)
}

/// The `i`-th of `pieces` near-equal cut points of `len` bytes.
fn cut(len: u64, i: u64, pieces: u64) -> u64 {
    // Exact in u128; the result is at most `len`, so it fits in u64.
    u64::try_from(u128::from(len) * u128::from(i) / u128::from(pieces)).unwrap_or(len)
}

/// The visible, non-empty objects of the input, sorted by path.
async fn list_input(location: &DataLocation) -> Result<Vec<ObjectMeta>, IoError> {
    let store = location.store();
    let path = location.path();
    if !path.as_ref().is_empty() {
        match store.head(path).await {
            Ok(meta) => return Ok(if meta.size > 0 { vec![meta] } else { Vec::new() }),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(IoError::from_store(location.uri(), source)),
        }
    }
    let listed: Vec<ObjectMeta> = match store.list(Some(path)).try_collect().await {
        Ok(listed) => listed,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(source) => return Err(IoError::from_store(location.uri(), source)),
    };
    if listed.is_empty() && !location.local_path().is_some_and(std::path::Path::is_dir) {
        return Err(IoError::NotFound { uri: location.uri(), source: None });
    }
    let mut visible: Vec<ObjectMeta> =
        listed.into_iter().filter(|meta| meta.size > 0 && !is_hidden(&meta.location, path)).collect();
    visible.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(visible)
}

/// Whether any segment of `object` below `prefix` starts with `_` or `.`.
pub(crate) fn is_hidden(object: &Path, prefix: &Path) -> bool {
    match object.prefix_match(prefix) {
        Some(mut rest) => rest.any(|part| part.as_ref().starts_with(['_', '.'])),
        None => false,
    }
}

/// Serde for object paths as their text form, validated on the way in.
mod object_path {
    use object_store::path::Path;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(path.as_ref())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Path, D::Error> {
        let text = String::deserialize(deserializer)?;
        Path::parse(&text)
            .map_err(|err| serde::de::Error::custom(format!("invalid object path `{text}`: {err}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;
    use object_store::{ObjectStore, PutPayload};
    use proptest::prelude::*;

    use super::*;

    async fn store_with(files: &[(&str, usize)]) -> DataLocation {
        let store = Arc::new(InMemory::new());
        for (name, len) in files {
            store.put(&Path::from(*name), PutPayload::from(vec![b'x'; *len])).await.unwrap();
        }
        DataLocation::new(store, Path::from("in"))
    }

    #[tokio::test]
    async fn lists_sorted_visible_files_and_cuts_them() {
        let location = store_with(&[
            ("in/b", 10),
            ("in/a", 25),
            ("in/_SUCCESS", 0),
            ("in/.a.crc", 8),
            ("in/_temporary/0/part-00000", 5),
            ("in/empty", 0),
            ("inner/x", 5),
        ])
        .await;
        let splits = plan_text_splits(&location, 0, 10).await.unwrap();
        let got: Vec<_> = splits.iter().map(|s| (s.path.as_ref(), s.start, s.end, s.file_len)).collect();
        assert_eq!(got, [("in/a", 0, 8, 25), ("in/a", 8, 16, 25), ("in/a", 16, 25, 25), ("in/b", 0, 10, 10)]);
        // A named object is read even when a listing would hide it.
        let one = DataLocation::new(Arc::clone(location.store()), Path::from("in/.a.crc"));
        // 8 bytes, at least 3 splits: size 8 / 3 = 2, so 4 splits.
        assert_eq!(plan_text_splits(&one, 3, 100).await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn missing_input_and_bad_size_are_typed() {
        let location = store_with(&[("other/x", 3)]).await;
        let err = plan_text_splits(&location, 1, 10).await.unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        assert!(err.to_string().contains("/in"), "{err}");
        let err = plan_text_splits(&location, 1, 0).await.unwrap_err();
        assert!(matches!(err, IoError::InvalidSplitPlan { .. }), "{err:?}");
        // Only hidden objects: the prefix exists, there is just nothing to read.
        let hidden = store_with(&[("in/_SUCCESS", 0)]).await;
        assert_eq!(plan_text_splits(&hidden, 4, 10).await.unwrap(), []);
    }

    #[tokio::test]
    async fn a_big_file_is_cut_into_full_waves() {
        let one = store_with(&[("in/f", 1700)]).await;
        // 100-byte splits would be 17: one task alone in the last of 9 waves on 2 slots.
        assert_eq!(plan_text_splits(&one, 1, 100).await.unwrap().len(), 17);
        let splits = plan_text_splits_in_waves(&one, 1, 100, 2).await.unwrap();
        assert_eq!(splits.len(), 18);
        assert!(splits.iter().all(|s| s.len() <= 100), "splits only shrink");
        assert_eq!(plan_text_splits_in_waves(&one, 1, 100, 4).await.unwrap().len(), 20);
        assert_eq!(plan_text_splits_in_waves(&one, 17, 1000, 17).await.unwrap().len(), 17, "already full");
        // An input of one split stays one split.
        let small = store_with(&[("in/f", 50)]).await;
        assert_eq!(plan_text_splits_in_waves(&small, 1, 100, 4).await.unwrap().len(), 1);
    }

    #[test]
    fn serde_round_trips_odd_names() {
        let split = TextSplit { path: Path::from_iter(["dir", "a%b c#d"]), start: 1, end: 9, file_len: 20 };
        let json = serde_json::to_string(&split).unwrap();
        assert_eq!(serde_json::from_str::<TextSplit>(&json).unwrap(), split);
        assert!(
            serde_json::from_str::<TextSplit>(r#"{"path":"a//b","start":0,"end":1,"file_len":1}"#).is_err()
        );
    }

    proptest! {
        #[test]
        fn splits_cover_every_byte_within_the_bounds(
            sizes in proptest::collection::vec(0usize..300, 1..6),
            min_partitions in 0usize..40,
            max_split in 1u64..200,
            slots in 0usize..5,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let names: Vec<String> = (0..sizes.len()).map(|i| format!("in/f{i}")).collect();
            let files: Vec<(&str, usize)> = names.iter().map(String::as_str).zip(sizes.iter().copied()).collect();
            let splits = runtime.block_on(async {
                plan_text_splits_in_waves(&store_with(&files).await, min_partitions, max_split, slots).await.unwrap()
            });
            let total: u64 = sizes.iter().map(|&s| s as u64).sum();
            prop_assert!(splits.len() as u64 >= (min_partitions as u64).min(total));
            prop_assert!(splits.iter().all(|s| !s.is_empty() && s.len() <= max_split));
            for (name, size) in &files {
                let mut next = 0;
                for split in splits.iter().filter(|s| s.path.as_ref() == *name) {
                    prop_assert_eq!((split.start, split.file_len), (next, *size as u64));
                    next = split.end;
                }
                prop_assert_eq!(next, *size as u64);
            }
        }
    }
}
