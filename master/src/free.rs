//! The free resources of the cluster (task places and memory per agent),
//! indexed for placement.
//!
//! The allocator offers these to jobs in turn; a job takes what it places
//! tasks on and declines the rest by leaving it. A task's [`Demand`] is its
//! slots and its memory limit, and it goes only where both fit. Taking the
//! agent with the most free memory (then places) that fits, or the best of a
//! few preferred agents, costs `O(log agents)` for one-slot tasks: placing a
//! task does not get dearer with the size of the cluster, the job or the
//! number of jobs. See `docs/architecture.md` ("Placement").

use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::BTreeSet;
use weft_core::ids::AgentId;

/// What one task holds on its agent while placed there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    /// Task places (its slots).
    pub places: u32,
    /// Memory bytes (its memory limit).
    pub memory: u64,
}

/// An agent's free places and memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Free {
    /// Free memory bytes (`u64::MAX` for an agent that offers no memory figure:
    /// it is placed on by places alone).
    pub memory: u64,
    /// Free task places.
    pub places: u32,
}

impl From<Demand> for Free {
    /// Room of that size, free.
    fn from(d: Demand) -> Self {
        Free { places: d.places, memory: d.memory }
    }
}

impl Free {
    /// Whether `d` fits in what is free.
    pub fn fits(&self, d: Demand) -> bool {
        self.places >= d.places.max(1) && self.memory >= d.memory
    }
}

/// How far down the index a multi-slot task looks for an agent with enough
/// places before it waits for the next round.
const MAX_WALK: usize = 64;

/// Free places and memory per agent, with the roomiest agent at hand.
#[derive(Debug, Clone, Default)]
pub struct FreeIndex {
    free: FxHashMap<AgentId, Free>,
    /// `(free, Reverse(agent))` of every agent with a free place: the last is
    /// the one with the most free memory, then places, the lowest id on a tie.
    room: BTreeSet<(Free, Reverse<AgentId>)>,
    places: u64,
}

impl FreeIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Say what `agent` has free (no place removes it from the offers).
    pub fn set(&mut self, agent: AgentId, free: Free) {
        let old = self.free(agent);
        if old == free {
            return;
        }
        if old.places > 0 {
            self.room.remove(&(old, Reverse(agent)));
        }
        self.places = self.places - u64::from(old.places) + u64::from(free.places);
        if free.places > 0 {
            self.room.insert((free, Reverse(agent)));
            self.free.insert(agent, free);
        } else {
            self.free.remove(&agent);
        }
    }

    /// What `agent` has free.
    pub fn free(&self, agent: AgentId) -> Free {
        self.free.get(&agent).copied().unwrap_or_default()
    }

    /// Free places in all.
    pub fn places(&self) -> u64 {
        self.places
    }

    /// Whether no place is free.
    pub fn is_empty(&self) -> bool {
        self.places == 0
    }

    /// Take `d` from `agent`, if it fits there.
    pub fn take(&mut self, agent: AgentId, d: Demand) -> bool {
        let free = self.free(agent);
        if !free.fits(d) {
            return false;
        }
        let left = Free { memory: free.memory - d.memory, places: free.places - d.places.max(1) };
        self.set(agent, left);
        true
    }

    /// Take `d` from the agent with the most free memory where it fits.
    pub fn take_roomiest(&mut self, d: Demand) -> Option<AgentId> {
        let agent = self
            .room
            .iter()
            .rev()
            .take(MAX_WALK)
            .take_while(|(f, _)| f.memory >= d.memory)
            .find(|(f, _)| f.fits(d))
            .map(|&(_, Reverse(agent))| agent)?;
        self.take(agent, d).then_some(agent)
    }

    /// Take `d` from the agent with the most free memory where it fits,
    /// other than `except` (a speculative copy runs away from its original).
    pub fn take_roomiest_except(&mut self, d: Demand, except: AgentId) -> Option<AgentId> {
        let agent = self
            .room
            .iter()
            .rev()
            .filter(|(_, Reverse(a))| *a != except)
            .take(MAX_WALK)
            .take_while(|(f, _)| f.memory >= d.memory)
            .find(|(f, _)| f.fits(d))
            .map(|&(_, Reverse(agent))| agent)?;
        self.take(agent, d).then_some(agent)
    }

    /// Take `d` from the roomiest of `agents` where it fits.
    pub fn take_best_of(&mut self, agents: &[AgentId], d: Demand) -> Option<AgentId> {
        let best = agents
            .iter()
            .copied()
            .filter(|a| self.free(*a).fits(d))
            .max_by_key(|a| (self.free(*a), Reverse(*a)))?;
        self.take(best, d).then_some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::ids::Incarnation;

    fn agent(seq: u32) -> AgentId {
        AgentId { incarnation: Incarnation(1), seq }
    }

    const GIB: u64 = 1 << 30;

    fn free(places: u32, gib: u64) -> Free {
        Free { places, memory: gib * GIB }
    }

    fn task(places: u32, gib: u64) -> Demand {
        Demand { places, memory: gib * GIB }
    }

    #[test]
    fn the_roomiest_agent_is_taken_first_lowest_id_on_a_tie() {
        let mut s = FreeIndex::new();
        s.set(agent(2), free(2, 4));
        s.set(agent(1), free(2, 4));
        s.set(agent(3), free(1, 4));
        assert_eq!(s.places(), 5);
        assert_eq!(s.take_roomiest(task(1, 1)), Some(agent(1)), "a tie: the lower id");
        assert_eq!(s.take_roomiest(task(1, 1)), Some(agent(2)), "4 GiB free beats 3, then more places");
        assert_eq!(s.take_best_of(&[agent(3), agent(2)], task(1, 1)), Some(agent(3)), "4 GiB beats 3");
        assert_eq!(s.take_best_of(&[agent(3)], task(1, 1)), None, "3 is full");
        assert_eq!(s.places(), 2);
        s.set(agent(1), Free::default());
        assert_eq!(s.take_roomiest(task(1, 1)), Some(agent(2)));
        assert_eq!(s.take_roomiest(task(1, 1)), None);
        assert!(s.is_empty());
    }

    #[test]
    fn a_task_goes_only_where_its_places_and_memory_both_fit() {
        let mut s = FreeIndex::new();
        s.set(agent(1), free(4, 2)); // places, little memory
        s.set(agent(2), free(1, 8)); // memory, one place
        assert_eq!(s.take_roomiest(task(1, 3)), Some(agent(2)), "only 2 has 3 GiB");
        assert_eq!(s.take_roomiest(task(1, 3)), None, "2 has no place left, 1 too little memory");
        assert_eq!(s.take_roomiest(task(2, 1)), Some(agent(1)), "two places: only 1 has them");
        assert_eq!(s.free(agent(1)), free(2, 1));
        assert_eq!(s.take_roomiest(task(3, 0)), None, "three places nowhere");
        assert!(!s.take(agent(1), task(1, 2)), "1 GiB left on 1");
        // An agent without a memory figure is placed on by places alone.
        s.set(agent(3), Free { places: 1, memory: u64::MAX });
        assert_eq!(s.take_roomiest(task(1, 100)), Some(agent(3)));
    }
}
