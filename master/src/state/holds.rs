//! Offer filters and holds: how the allocator keeps from offering the same
//! resources to an action that just declined them, and keeps a large task
//! from being starved by a stream of small ones.
//!
//! - A **filter**: an action with ready tasks that placed nothing of what it
//!   was offered is not offered anything for `offer-filter` (Mesos's
//!   `refuse_seconds`), unless something it may fit in appears first: one of
//!   its tasks ends, an agent registers, reservations or tenants change.
//! - A **hold** (YARN's container reservation): the first action in line
//!   whose tasks fit on no agent now, but would on an agent whose tasks end,
//!   holds that agent's unreserved room: no other action places there until
//!   its task fits there, or `hold-timeout` passes.
//!
//! See `docs/architecture.md` ("Filters and holds").

use std::collections::HashMap;
use std::time::{Duration, Instant};
use weft_core::ids::{ActionId, AgentId};

/// The filters and holds in force.
#[derive(Debug)]
pub(crate) struct Holds {
    filter: Duration,
    timeout: Duration,
    filtered: HashMap<ActionId, Instant>,
    held: HashMap<ActionId, (AgentId, Instant)>,
}

impl Holds {
    /// Filters lasting `filter`, holds at most `timeout`.
    pub(crate) fn new(filter: Duration, timeout: Duration) -> Self {
        Self { filter, timeout, filtered: HashMap::new(), held: HashMap::new() }
    }

    /// Whether `action` is offered nothing now.
    pub(crate) fn is_filtered(&self, action: ActionId, now: Instant) -> bool {
        self.filtered.get(&action).is_some_and(|until| *until > now)
    }

    /// `action` declined what it was offered at `now`.
    pub(crate) fn filter(&mut self, action: ActionId, now: Instant) {
        if !self.filter.is_zero() {
            self.filtered.insert(action, now + self.filter);
        }
    }

    /// Something `action` may fit in appeared (one of its tasks ended).
    pub(crate) fn lift(&mut self, action: ActionId) {
        self.filtered.remove(&action);
    }

    /// Something any action may fit in appeared (an agent, a reservation,
    /// new settings).
    pub(crate) fn lift_all(&mut self) {
        self.filtered.clear();
    }

    /// The agent `action` holds, if any.
    pub(crate) fn agent_of(&self, action: ActionId) -> Option<AgentId> {
        self.held.get(&action).map(|(agent, _)| *agent)
    }

    /// Whether some action holds `agent`.
    pub(crate) fn is_held(&self, agent: AgentId) -> bool {
        self.held.values().any(|(a, _)| *a == agent)
    }

    /// How many holds are in force.
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// `action` holds `agent` from `now`.
    pub(crate) fn hold(&mut self, action: ActionId, agent: AgentId, now: Instant) {
        self.held.insert(action, (agent, now + self.timeout));
    }

    /// `action` holds nothing any more; the agent it held.
    pub(crate) fn release(&mut self, action: ActionId) -> Option<AgentId> {
        self.filtered.remove(&action);
        self.held.remove(&action).map(|(agent, _)| agent)
    }

    /// Holds past their timeout at `now`, or of actions `live` says are
    /// gone, end; the agents they held.
    pub(crate) fn expire(&mut self, now: Instant, live: impl Fn(ActionId) -> bool) -> Vec<AgentId> {
        let mut freed = Vec::new();
        self.held.retain(|action, (agent, until)| {
            let keep = *until > now && live(*action);
            if !keep {
                freed.push(*agent);
            }
            keep
        });
        self.filtered.retain(|action, until| *until > now && live(*action));
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::ids::{Incarnation, JobId};

    #[test]
    fn filters_lapse_or_lift_and_holds_time_out() {
        let t0 = Instant::now();
        let mut h = Holds::new(Duration::from_millis(200), Duration::from_secs(10));
        let job = JobId { incarnation: Incarnation(1), seq: 1 };
        let (a, b) = (ActionId { job, seq: 1 }, ActionId { job, seq: 2 });
        h.filter(a, t0);
        assert!(h.is_filtered(a, t0 + Duration::from_millis(199)) && !h.is_filtered(b, t0));
        assert!(!h.is_filtered(a, t0 + Duration::from_millis(200)), "lapsed");
        h.filter(a, t0);
        h.lift(a);
        assert!(!h.is_filtered(a, t0), "lifted");
        let agent = AgentId { incarnation: Incarnation(1), seq: 7 };
        h.hold(b, agent, t0);
        assert!(h.is_held(agent) && h.agent_of(b) == Some(agent));
        assert!(h.expire(t0 + Duration::from_secs(9), |_| true).is_empty());
        assert_eq!(h.expire(t0 + Duration::from_secs(10), |_| true), [agent]);
        h.hold(b, agent, t0);
        assert_eq!(h.expire(t0, |x| x != b), [agent], "its action is gone");
        assert_eq!(h.len(), 0);
    }
}
