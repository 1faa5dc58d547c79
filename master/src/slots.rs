//! The free task slots of the cluster, indexed for placement.
//!
//! The allocator offers these slots to jobs in turn; a job takes the ones it
//! places tasks on and declines the rest by leaving them. Taking the agent
//! with the most free slots, or the best of a few preferred agents, costs
//! `O(log agents)`: placing a task does not get dearer with the size of the
//! cluster, the job or the number of jobs.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use weft_core::ids::AgentId;

/// Free slots per agent, with the roomiest agent at hand.
#[derive(Debug, Clone, Default)]
pub struct SlotIndex {
    free: HashMap<AgentId, u32>,
    /// `(free, Reverse(agent))` of every agent with a free slot: the last is
    /// the roomiest, the lowest id on a tie.
    room: BTreeSet<(u32, Reverse<AgentId>)>,
    total: u64,
}

impl SlotIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Say that `agent` has `free` slots (0 removes it from the offers).
    pub fn set(&mut self, agent: AgentId, free: u32) {
        let old = self.free.get(&agent).copied().unwrap_or(0);
        if old == free {
            return;
        }
        if old > 0 {
            self.room.remove(&(old, Reverse(agent)));
        }
        self.total = self.total - u64::from(old) + u64::from(free);
        if free > 0 {
            self.room.insert((free, Reverse(agent)));
            self.free.insert(agent, free);
        } else {
            self.free.remove(&agent);
        }
    }

    /// The free slots of `agent`.
    pub fn free(&self, agent: AgentId) -> u32 {
        self.free.get(&agent).copied().unwrap_or(0)
    }

    /// Free slots in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether no slot is free.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Take a slot of `agent`, if it has one.
    pub fn take(&mut self, agent: AgentId) -> bool {
        let free = self.free(agent);
        if free == 0 {
            return false;
        }
        self.set(agent, free - 1);
        true
    }

    /// Take a slot of the agent with the most free slots.
    pub fn take_roomiest(&mut self) -> Option<AgentId> {
        let &(_, Reverse(agent)) = self.room.last()?;
        self.take(agent).then_some(agent)
    }

    /// Take a slot of the roomiest of `agents` that has one.
    pub fn take_best_of(&mut self, agents: &[AgentId]) -> Option<AgentId> {
        let best = agents
            .iter()
            .copied()
            .filter(|a| self.free(*a) > 0)
            .max_by_key(|a| (self.free(*a), Reverse(*a)))?;
        self.take(best).then_some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::ids::Incarnation;

    fn agent(seq: u32) -> AgentId {
        AgentId { incarnation: Incarnation(1), seq }
    }

    #[test]
    fn the_roomiest_agent_is_taken_first_lowest_id_on_a_tie() {
        let mut s = SlotIndex::new();
        s.set(agent(2), 2);
        s.set(agent(1), 2);
        s.set(agent(3), 1);
        assert_eq!(s.total(), 5);
        assert_eq!(s.take_roomiest(), Some(agent(1)));
        assert_eq!(s.take_roomiest(), Some(agent(2)));
        assert_eq!(s.take_best_of(&[agent(3), agent(2)]), Some(agent(2)), "a tie: the lower id");
        assert_eq!(s.take_best_of(&[agent(2)]), None, "agent 2 is full");
        assert_eq!(s.total(), 2);
        s.set(agent(1), 0);
        assert_eq!(s.take_roomiest(), Some(agent(3)));
        assert_eq!(s.take_roomiest(), None);
        assert!(s.is_empty());
    }
}
