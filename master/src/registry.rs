//! The agent registry: who is in the cluster, what they offer, whether they live.
//!
//! Agents register with their resources (task slots, memory), attributes and
//! address, and then heartbeat every interval. An agent silent for
//! `lost_after` intervals is declared **LOST**: [`Registry::sweep`] returns it
//! so the scheduler can fail over its tasks, and its next heartbeat is told to
//! register again (a lost agent's tasks have been rescheduled; it starts over).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use weft_core::ids::AgentId;

/// What an agent offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    /// Concurrent tasks.
    pub slots: u32,
    /// Memory for tasks, in bytes.
    pub memory: u64,
}

/// Whether an agent counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    /// Heartbeating.
    Active,
    /// Missed too many heartbeats; its tasks are LOST.
    Lost,
}

/// One registered agent.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Where its Agent and Blocks services listen.
    pub address: String,
    /// What it offers.
    pub resources: Resources,
    /// Operator-set attributes (rack, zone, ...).
    pub attributes: BTreeMap<String, String>,
    /// Active or lost.
    pub state: AgentState,
    /// When it last heartbeat (or registered).
    pub last_seen: Instant,
}

/// The registry of agents.
#[derive(Debug)]
pub struct Registry {
    agents: HashMap<AgentId, Agent>,
    next_id: u32,
    interval: Duration,
    lost_after: u32,
}

/// A heartbeat from an agent the registry does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("agent {0} is unknown or was declared lost: it must register again")]
pub struct Reregister(pub AgentId);

impl Registry {
    /// A registry expecting heartbeats every `interval`, declaring an agent lost
    /// after `lost_after` silent intervals.
    pub fn new(interval: Duration, lost_after: u32) -> Self {
        Self { agents: HashMap::new(), next_id: 0, interval, lost_after: lost_after.max(1) }
    }

    /// The heartbeat interval agents are told to keep.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Register an agent; it gets a fresh id (a returning agent too: its old
    /// tasks were or will be failed over under the old id).
    pub fn register(
        &mut self,
        address: String,
        resources: Resources,
        attributes: BTreeMap<String, String>,
        now: Instant,
    ) -> AgentId {
        let id = AgentId(self.next_id);
        self.next_id += 1;
        self.agents.insert(
            id,
            Agent { id, address, resources, attributes, state: AgentState::Active, last_seen: now },
        );
        id
    }

    /// Record a heartbeat.
    ///
    /// # Errors
    /// [`Reregister`] when the agent is unknown or lost.
    pub fn heartbeat(&mut self, id: AgentId, now: Instant) -> Result<(), Reregister> {
        match self.agents.get_mut(&id) {
            Some(a) if a.state == AgentState::Active => {
                a.last_seen = now;
                Ok(())
            }
            _ => Err(Reregister(id)),
        }
    }

    /// Declare agents silent for too long lost; returns the newly lost ones.
    pub fn sweep(&mut self, now: Instant) -> Vec<AgentId> {
        let limit = self.interval * self.lost_after;
        let mut lost: Vec<AgentId> = self
            .agents
            .values_mut()
            .filter(|a| a.state == AgentState::Active && now.saturating_duration_since(a.last_seen) > limit)
            .map(|a| {
                a.state = AgentState::Lost;
                a.id
            })
            .collect();
        lost.sort();
        lost
    }

    /// The agent `id`, active or lost.
    pub fn get(&self, id: AgentId) -> Option<&Agent> {
        self.agents.get(&id)
    }

    /// Active agents, by id.
    pub fn active(&self) -> Vec<&Agent> {
        let mut v: Vec<&Agent> = self.agents.values().filter(|a| a.state == AgentState::Active).collect();
        v.sort_by_key(|a| a.id);
        v
    }

    /// Total resources of the active agents.
    pub fn capacity(&self) -> Resources {
        self.active().iter().fold(Resources::default(), |acc, a| Resources {
            slots: acc.slots + a.resources.slots,
            memory: acc.memory + a.resources.memory,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(slots: u32) -> Resources {
        Resources { slots, memory: 1 << 30 }
    }

    #[test]
    fn silent_agents_are_lost_and_must_reregister() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_millis(100), 3);
        let a = r.register("a:1".into(), res(2), BTreeMap::new(), t0);
        let b = r.register("b:1".into(), res(4), BTreeMap::new(), t0);
        assert_ne!(a, b);
        assert_eq!(r.capacity().slots, 6);

        r.heartbeat(a, t0 + Duration::from_millis(250)).unwrap();
        assert!(r.sweep(t0 + Duration::from_millis(300)).is_empty(), "300ms is not past 3 intervals");
        assert_eq!(r.sweep(t0 + Duration::from_millis(301)), [b]);
        assert!(r.sweep(t0 + Duration::from_millis(302)).is_empty(), "lost once");
        assert_eq!(r.heartbeat(b, t0 + Duration::from_millis(400)), Err(Reregister(b)));
        assert_eq!(r.capacity().slots, 2);
        assert_eq!(r.active().len(), 1);
    }

    #[test]
    fn unknown_agents_must_register() {
        let mut r = Registry::new(Duration::from_secs(1), 3);
        assert_eq!(r.heartbeat(AgentId(7), Instant::now()), Err(Reregister(AgentId(7))));
    }
}
