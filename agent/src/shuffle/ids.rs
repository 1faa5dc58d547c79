//! Typed ids of shuffles, map tasks, reduce partitions and blocks.
//!
//! [`ShuffleId`] is `weft_core::ids::ShuffleId`; the map, reduce and block ids
//! are small newtypes here for now and move to `weft_core::ids` when the master
//! needs them too. File names derived from them are part of the on-disk layout
//! (see [`BlockId::data_file_name`], and the [shuffle's files](super#files)).

use serde::{Deserialize, Serialize};
use std::fmt;
pub use weft_core::ids::ShuffleId;

macro_rules! id {
    ($(#[$doc:meta] $name:ident, $prefix:literal;)*) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl From<u32> for $name {
            fn from(v: u32) -> Self {
                Self(v)
            }
        }
    )*};
}

id! {
    /// One map task's output within a shuffle (the map partition index).
    MapId, "map-";
    /// One reduce partition of a shuffle.
    ReduceId, "reduce-";
}

/// One block: the pairs attempt `attempt` of map task `map` wrote for reduce
/// partition `reduce`.
///
/// Displayed as `shuffle_<shuffle>_<map>_<attempt>_<reduce>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockId {
    /// The shuffle.
    pub shuffle: ShuffleId,
    /// The map task that wrote it.
    pub map: MapId,
    /// The attempt of that map task whose output it is (the `#N` of its
    /// [`TaskKey`](weft_core::task::TaskKey)).
    #[serde(default)]
    pub attempt: u32,
    /// The reduce partition it belongs to.
    pub reduce: ReduceId,
}

impl BlockId {
    /// The block for `reduce` of attempt `attempt` of `map` in `shuffle`.
    pub fn new(shuffle: ShuffleId, map: MapId, attempt: u32, reduce: ReduceId) -> Self {
        Self { shuffle, map, attempt, reduce }
    }

    /// `shuffle_<shuffle>_<map>_<attempt>.data`: the data file holding this block.
    pub fn data_file_name(&self) -> String {
        data_file_name(self.shuffle, self.map, self.attempt)
    }

    /// `shuffle_<shuffle>_<map>_<attempt>.index`: the index of that data file.
    pub fn index_file_name(&self) -> String {
        index_file_name(self.shuffle, self.map, self.attempt)
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shuffle_{}_{}_{}_{}", self.shuffle.0, self.map.0, self.attempt, self.reduce.0)
    }
}

/// The data file of attempt `attempt` of map task `map` of `shuffle`.
pub(crate) fn data_file_name(shuffle: ShuffleId, map: MapId, attempt: u32) -> String {
    format!("shuffle_{}_{}_{attempt}.data", shuffle.0, map.0)
}

/// The index file of attempt `attempt` of map task `map` of `shuffle`.
pub(crate) fn index_file_name(shuffle: ShuffleId, map: MapId, attempt: u32) -> String {
    format!("shuffle_{}_{}_{attempt}.index", shuffle.0, map.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_serde() {
        let b = BlockId::new(ShuffleId(3), MapId(7), 1, ReduceId(2));
        assert_eq!(b.to_string(), "shuffle_3_7_1_2");
        assert_eq!(b.data_file_name(), "shuffle_3_7_1.data");
        assert_eq!(b.index_file_name(), "shuffle_3_7_1.index");
        assert_eq!(MapId(7).to_string(), "map-7");
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, r#"{"shuffle":3,"map":7,"attempt":1,"reduce":2}"#);
        assert_eq!(serde_json::from_str::<BlockId>(&json).unwrap(), b);
        let without = r#"{"shuffle":3,"map":7,"reduce":2}"#;
        assert_eq!(serde_json::from_str::<BlockId>(without).unwrap().attempt, 0, "attempt 0 when unnamed");
    }

    #[test]
    fn attempts_of_one_map_task_have_their_own_files() {
        let first = BlockId::new(ShuffleId(3), MapId(7), 0, ReduceId(2));
        let second = BlockId { attempt: 1, ..first };
        assert_ne!(first.data_file_name(), second.data_file_name());
        assert_ne!(first.index_file_name(), second.index_file_name());
        assert_ne!(first, second);
    }
}
