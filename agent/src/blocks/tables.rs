//! The map-output tables this agent was sent: where each map output of a
//! shuffle lives and how large its blocks are, kept per action and shuffle
//! until the master removes the job (`RemoveJob`), so that a reduce task's
//! descriptor need only name its shuffle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use weft_core::ids::{ActionId, ShuffleId};
use weft_core::task::MapTable;

type Tables = HashMap<(ActionId, ShuffleId), Arc<MapTable>>;

/// The tables, shared by the `Agent` service (which installs them) and the
/// `Blocks` service (which drops a job's).
#[derive(Debug, Clone, Default)]
pub struct MapTables {
    tables: Arc<Mutex<Tables>>,
}

impl MapTables {
    /// Keep `table`, replacing an earlier one of its action and shuffle: the
    /// master sends a table again only when its map outputs changed, and in
    /// order, so the last one received is the current one.
    pub fn install(&self, table: MapTable) {
        let key = (table.action, table.shuffle);
        self.lock().insert(key, Arc::new(table));
    }

    /// The table of `shuffle` as `action` reads it.
    pub fn get(&self, action: ActionId, shuffle: ShuffleId) -> Option<Arc<MapTable>> {
        self.lock().get(&(action, shuffle)).cloned()
    }

    /// Drop every table of the job named `job` (as the wire names it);
    /// returns how many.
    pub fn remove_job(&self, job: &str) -> usize {
        let mut tables = self.lock();
        let before = tables.len();
        tables.retain(|(action, _), _| action.job.to_string() != job);
        before - tables.len()
    }

    /// How many tables are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use weft_core::ids::{Incarnation, JobId};

    fn table(job: u32, shuffle: u32, address: &str) -> MapTable {
        let job = JobId { incarnation: Incarnation(7), seq: job };
        MapTable {
            action: ActionId { job, seq: 1 },
            shuffle: ShuffleId(shuffle),
            addresses: vec![address.into()],
            maps: vec![],
        }
    }

    #[test]
    fn the_last_table_wins_and_a_removed_job_takes_only_its_own() {
        let tables = MapTables::default();
        tables.install(table(1, 0, "127.0.0.1:1"));
        tables.install(table(1, 0, "127.0.0.1:2"));
        tables.install(table(1, 1, "127.0.0.1:3"));
        tables.install(table(2, 0, "127.0.0.1:4"));
        let t = table(1, 0, "");
        assert_eq!(&*tables.get(t.action, t.shuffle).unwrap().addresses[0], "127.0.0.1:2");
        assert_eq!(tables.len(), 3);
        assert_eq!(tables.remove_job(&t.action.job.to_string()), 2);
        let other = table(2, 0, "");
        assert!(tables.get(t.action, t.shuffle).is_none());
        assert!(tables.get(other.action, other.shuffle).is_some());
    }
}
