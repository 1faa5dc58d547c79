//! Where a shuffle's map outputs live, sent to an agent once per shuffle
//! rather than listed in every reduce task (Spark's `MapOutputTracker`
//! statuses): a reduce task's descriptor names the shuffle, and the agent
//! looks its blocks up in the table. See `docs/architecture.md` (Control
//! plane) for when the master sends one.

use crate::ids::{ActionId, ShuffleId};
use std::sync::Arc;

/// The map outputs of one shuffle, in map order, as an action's reduce
/// tasks read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapTable {
    /// The action whose reduce tasks read it (its job owns the blocks).
    pub action: ActionId,
    /// The shuffle.
    pub shuffle: ShuffleId,
    /// The block services holding the outputs; each map names one by index.
    pub addresses: Vec<Arc<str>>,
    /// One entry per map partition.
    pub maps: Vec<MapStatus>,
}

/// One map output: who serves it, which attempt wrote it and how large its
/// blocks are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapStatus {
    /// Index into [`MapTable::addresses`].
    pub address: u32,
    /// The attempt of the map task that wrote it (its [`TaskKey::attempt`]):
    /// the agent names the output's files by it, so a reader fetches this
    /// attempt's blocks and never another's.
    ///
    /// [`TaskKey::attempt`]: crate::task::TaskKey::attempt
    pub attempt: u32,
    /// The stored size of its block for each reduce partition.
    pub sizes: BlockSizes,
}

impl MapTable {
    /// The block service serving map `map`, if the table has it.
    pub fn address(&self, map: u32) -> Option<&Arc<str>> {
        let status = self.maps.get(map as usize)?;
        self.addresses.get(status.address as usize)
    }
}

/// The stored sizes of one map output's blocks, one per reduce partition,
/// kept in O(1) space for ordinary outputs (as Spark's
/// `HighlyCompressedMapStatus`): blocks much larger than the mean are kept
/// exactly, every other block is taken to be the mean of the rest. A reader
/// only uses sizes to bound the bytes it has in flight, which the large
/// blocks decide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockSizes {
    /// The size assumed for a block not in `exact`.
    pub mean: u64,
    /// `(reduce partition, bytes)` of the large blocks, by partition.
    pub exact: Vec<(u32, u64)>,
}

/// A block over this many times the mean of its map output is kept exactly.
const LARGE: u64 = 2;

impl BlockSizes {
    /// Sizes from each reduce partition's exact bytes.
    pub fn new(bytes: &[u64]) -> Self {
        let total: u64 = bytes.iter().sum();
        let mean = total / (bytes.len() as u64).max(1);
        let exact: Vec<(u32, u64)> = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b > mean.saturating_mul(LARGE))
            .map(|(r, b)| (r as u32, *b))
            .collect();
        let rest = bytes.len() - exact.len();
        let rest_bytes = total - exact.iter().map(|(_, b)| b).sum::<u64>();
        Self { mean: rest_bytes / (rest as u64).max(1), exact }
    }

    /// The size of the block for `reduce`: exact when large, else the mean.
    pub fn of(&self, reduce: u32) -> u64 {
        match self.exact.binary_search_by_key(&reduce, |(r, _)| *r) {
            Ok(i) => self.exact[i].1,
            Err(_) => self.mean,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_exact_and_the_rest_take_their_mean() {
        let bytes = [10, 12, 0, 1000, 8, 10];
        let sizes = BlockSizes::new(&bytes);
        assert_eq!(sizes.exact, [(3, 1000)]);
        assert_eq!(sizes.of(3), 1000);
        // (10 + 12 + 0 + 8 + 10) / 5
        for r in [0, 1, 2, 4, 5] {
            assert_eq!(sizes.of(r), 8);
        }
        // The total is kept up to the rounding of the mean.
        let estimated: u64 = (0..6).map(|r| sizes.of(r)).sum();
        assert!(estimated <= bytes.iter().sum::<u64>() && estimated + 5 >= bytes.iter().sum::<u64>());
    }

    #[test]
    fn even_and_empty_outputs_keep_nothing_exact() {
        assert_eq!(BlockSizes::new(&[5; 100]), BlockSizes { mean: 5, exact: vec![] });
        assert_eq!(BlockSizes::new(&[]), BlockSizes::default());
        assert_eq!(BlockSizes::new(&[0, 0]).of(1), 0);
    }
}
