//! The agents: who is in the cluster, what they offer, whether they live, and
//! what of their task places and memory is free.
//!
//! Agents register with their resources (task slots, memory), attributes and
//! address, and then heartbeat every interval. An agent silent for
//! `lost_after` intervals is declared **LOST**: [`Agents::sweep`] returns it so
//! its tasks can fail over, and its next heartbeat is told to register again.
//! An id from another master run (or never given) is unknown: its holder is
//! told to register again too, never mistaken for the agent holding that
//! number now.
//!
//! An agent that refuses a launch because its slots are busy (stale attempts
//! still hold them) is **paused**: offered nothing until one of its attempts
//! ends, or until a backoff (doubling with jitter, bounded) has passed.

use super::pools::{Pool, Pools, Reservation};
use crate::free::{Demand, Free, FreeIndex};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use weft_core::ids::{AgentId, Incarnation};

/// What an agent offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    /// Concurrent tasks.
    pub slots: u32,
    /// Memory for tasks, in bytes.
    pub memory: u64,
    /// Tasks that may wait on the agent for a slot: the allocator offers
    /// `slots + queue` places, so a task's launch and the report of the one
    /// before it overlap instead of leaving the slot idle.
    pub queue: u32,
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
    /// Whether it is lost.
    pub lost: bool,
    /// When it last heartbeat (or registered).
    pub last_seen: Instant,
    /// Task attempts placed on it and not yet ended.
    pub running: u32,
    /// Its reservations, and what those attempts hold in each pool.
    pub pools: Pools,
    /// Drivers placed on it and not yet ended.
    pub drivers: u32,
    /// Offered nothing before this instant (it refused a launch).
    pub paused_until: Option<Instant>,
    /// Its unreserved room is held for one action (a large task waiting
    /// for it to drain): offered to no other.
    pub held: bool,
    /// The next pause, doubled at each refusal in a row.
    backoff: Duration,
    /// When its tasks failed for the host's reasons lately (within
    /// [`EXCLUDE_WINDOW`]).
    failures: std::collections::VecDeque<Instant>,
    /// When its tasks were out-run by their speculative copies lately
    /// (within `SLOW_WINDOW`).
    outruns: std::collections::VecDeque<Instant>,
    /// Offered nothing before this instant: its tasks kept failing, or
    /// kept being out-run (see `excluded_why`).
    pub excluded_until: Option<Instant>,
    /// Why it is excluded, while it is.
    pub excluded_why: Exclusion,
    /// Its memory as its last heartbeat reported it.
    pub memory: AgentMemory,
    /// When the master last checked whether its port still takes
    /// connections (it had missed heartbeats, or its connection closed).
    probed: Option<Instant>,
}

/// An agent's memory as it reports it in heartbeats (what the master places
/// by is its offered memory and the limits it placed there, not this).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentMemory {
    /// The memory limits its running tasks hold against its `--memory`.
    pub held: u64,
    /// The agent process's resident set.
    pub resident: u64,
    /// The most its resident set has been.
    pub peak_resident: u64,
    /// Persisted partitions it holds in memory (a part of `held`).
    pub cached_memory: u64,
    /// Persisted partitions it holds on disk.
    pub cached_disk: u64,
}

impl Agent {
    fn is_slow(&self, now: Instant) -> bool {
        !self.lost && self.excluded_why == Exclusion::Slow && self.excluded_until.is_some_and(|t| t > now)
    }

    /// Its task places (`slots + queue`) and memory (`u64::MAX` when it
    /// reports none: it is placed on by places alone).
    pub fn capacity(&self) -> (u32, u64) {
        let memory = if self.resources.memory == 0 { u64::MAX } else { self.resources.memory };
        (self.resources.slots + self.resources.queue, memory)
    }
}

/// The first pause after a refused launch.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest pause.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Host failures of an agent's tasks within [`EXCLUDE_WINDOW`] that exclude
/// it (Spark's `excludeOnFailure`, which counts 2 per executor).
pub const EXCLUDE_AFTER: usize = 3;
/// How far back an agent's task failures count.
pub const EXCLUDE_WINDOW: Duration = Duration::from_secs(600);
/// How long an excluded agent is offered nothing.
pub const EXCLUDE_FOR: Duration = Duration::from_secs(300);

/// Tasks of an agent out-run by their speculative copies within
/// `SLOW_WINDOW` that exclude it as slow (as LATE keeps work off slow
/// nodes): its next tasks would straggle too.
pub const SLOW_AFTER: usize = 2;
/// How far back an agent's out-run tasks count.
pub const SLOW_WINDOW: Duration = Duration::from_secs(60);
/// How long an agent excluded as slow is offered nothing.
pub const SLOW_FOR: Duration = Duration::from_secs(60);

/// Why an agent is excluded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Exclusion {
    /// Its tasks kept failing for the host's reasons.
    #[default]
    Failing,
    /// Its tasks kept being out-run by their speculative copies.
    Slow,
}

impl Exclusion {
    /// Its name in `weft agents --json`.
    pub fn name(self) -> &'static str {
        match self {
            Exclusion::Failing => "failing",
            Exclusion::Slow => "slow",
        }
    }
}

/// Every agent, and the free places and memory of the live ones.
#[derive(Debug)]
pub struct Agents {
    incarnation: Incarnation,
    agents: FxHashMap<AgentId, Agent>,
    next: u32,
    interval: Duration,
    lost_after: u32,
    /// Free unreserved places and memory of live, unpaused agents: what the
    /// allocator offers every tenant.
    pub free: FreeIndex,
    /// Free places and memory reserved for each role (by role index).
    pub reserved: HashMap<u32, FreeIndex>,
    /// Task places (`slots + queue`) and memory of the live agents: the
    /// cluster that shares are shares of.
    totals: (u64, u64),
    /// The most slots and memory of any live agent.
    largest: Resources,
    /// How many agents live.
    live: usize,
    /// The agents excluded lately (some of them maybe no longer: see
    /// [`Agents::prune_exclusions`]); few, and mostly none.
    excluded: Vec<AgentId>,
}

impl Agents {
    /// No agents yet; ids will carry `incarnation`.
    pub fn new(incarnation: Incarnation, interval: Duration, lost_after: u32) -> Self {
        Self {
            incarnation,
            agents: FxHashMap::default(),
            next: 0,
            interval,
            lost_after: lost_after.max(1),
            free: FreeIndex::new(),
            reserved: HashMap::new(),
            totals: (0, 0),
            largest: Resources::default(),
            live: 0,
            excluded: Vec::new(),
        }
    }

    /// Task places and memory bytes of the live agents.
    pub fn totals(&self) -> (u64, u64) {
        self.totals
    }

    /// The heartbeat interval agents are told to keep.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long a silent agent takes to be declared lost.
    pub fn lost_after(&self) -> Duration {
        self.interval * self.lost_after
    }

    /// The addresses of agents lost within `within` of `now` that no live
    /// agent serves (one that came back registered again at its address).
    pub fn recently_lost(&self, now: Instant, within: Duration) -> Vec<String> {
        let live: std::collections::HashSet<&str> =
            self.agents.values().filter(|a| !a.lost).map(|a| a.address.as_str()).collect();
        let mut lost: Vec<String> = self
            .agents
            .values()
            .filter(|a| a.lost && now.saturating_duration_since(a.last_seen) <= within)
            .filter(|a| !live.contains(a.address.as_str()))
            .map(|a| a.address.clone())
            .collect();
        lost.sort();
        lost.dedup();
        lost
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
        let id = AgentId { incarnation: self.incarnation, seq: self.next };
        self.next += 1;
        let agent = Agent {
            id,
            address,
            resources,
            attributes,
            lost: false,
            last_seen: now,
            probed: None,
            running: 0,
            pools: Pools::default(),
            drivers: 0,
            paused_until: None,
            held: false,
            backoff: FIRST_BACKOFF,
            failures: std::collections::VecDeque::new(),
            outruns: std::collections::VecDeque::new(),
            excluded_until: None,
            excluded_why: Exclusion::Failing,
            memory: AgentMemory::default(),
        };
        self.totals.0 += u64::from(resources.slots + resources.queue);
        self.totals.1 += resources.memory;
        self.agents.insert(id, agent);
        self.reindex(id, now);
        self.remeasure();
        id
    }

    /// Record a heartbeat; `false` when the agent is unknown or lost (it must
    /// register again).
    pub fn heartbeat(&mut self, id: AgentId, now: Instant) -> bool {
        match self.agents.get_mut(&id) {
            Some(a) if !a.lost => {
                a.last_seen = now;
                true
            }
            _ => false,
        }
    }

    /// Whether `id` is a live agent.
    pub fn is_live(&self, id: AgentId) -> bool {
        self.agents.get(&id).is_some_and(|a| !a.lost)
    }

    /// Live agents that missed two heartbeats and were not checked within
    /// the last interval, with their addresses: whether their port still
    /// takes connections tells a dead agent (its process gone, its port
    /// refusing) from a slow or paused one long before `lost_after`.
    pub fn overdue(&mut self, now: Instant) -> Vec<(AgentId, String)> {
        let late = self.interval * 2;
        let interval = self.interval;
        let mut out = Vec::new();
        for a in self.agents.values_mut().filter(|a| !a.lost) {
            let silent = now.saturating_duration_since(a.last_seen) > late;
            let checked = a.probed.is_some_and(|p| now.saturating_duration_since(p) < interval);
            if silent && !checked {
                a.probed = Some(now);
                out.push((a.id, a.address.clone()));
            }
        }
        out.sort();
        out
    }

    /// The address of live agent `id`, to check its port now (a connection
    /// of its closed, or a launch to it failed); `None` for an agent not live.
    pub fn probe(&mut self, id: AgentId, now: Instant) -> Option<String> {
        let a = self.agents.get_mut(&id).filter(|a| !a.lost)?;
        a.probed = Some(now);
        Some(a.address.clone())
    }

    /// Whether `id` is live and was last heard from at `since` or before.
    pub fn silent_since(&self, id: AgentId, since: Instant) -> bool {
        self.agents.get(&id).is_some_and(|a| !a.lost && a.last_seen <= since)
    }

    /// Declare agents silent for too long lost, and end pauses that are
    /// over; returns the newly lost agents.
    pub fn sweep(&mut self, now: Instant) -> Vec<AgentId> {
        let limit = self.interval * self.lost_after;
        let mut lost = Vec::new();
        let mut unpaused = Vec::new();
        for a in self.agents.values_mut().filter(|a| !a.lost) {
            if now.saturating_duration_since(a.last_seen) > limit {
                lost.push(a.id);
            } else if a.paused_until.is_some_and(|t| t <= now) {
                a.paused_until = None;
                unpaused.push(a.id);
            }
        }
        lost.sort();
        for id in &lost {
            self.mark_lost(*id);
        }
        for id in lost.iter().chain(&unpaused) {
            self.reindex(*id, now);
        }
        if !lost.is_empty() {
            self.remeasure();
            self.unexclude_if_none_left(now);
        }
        lost
    }

    /// When every live agent is excluded (the last one that was not is
    /// lost), lift the exclusions: the cluster must not stop.
    fn unexclude_if_none_left(&mut self, now: Instant) {
        let live = || self.agents.values().filter(|a| !a.lost);
        if live().next().is_none() || live().any(|a| a.excluded_until.is_none_or(|t| t <= now)) {
            return;
        }
        let excluded: Vec<AgentId> = live().map(|a| a.id).collect();
        for id in &excluded {
            if let Some(a) = self.agents.get_mut(id) {
                a.excluded_until = None;
                a.paused_until = None;
            }
            self.reindex(*id, now);
        }
        tracing::warn!(
            agents = excluded.len(),
            "no live agent is left that is not excluded: exclusions lifted"
        );
        self.excluded.clear();
    }

    /// Forget the exclusions that ended by `now`, and those of lost agents.
    pub fn prune_exclusions(&mut self, now: Instant) {
        let agents = &self.agents;
        self.excluded.retain(|id| {
            agents.get(id).is_some_and(|a| !a.lost && a.excluded_until.is_some_and(|t| t > now))
        });
    }

    /// The agents excluded lately: a task does not wait for one of them to
    /// keep its input (one whose exclusion ended since the last
    /// [`Agents::prune_exclusions`] may be among them).
    pub fn excluded(&self) -> &[AgentId] {
        &self.excluded
    }

    /// Declare live agent `id` lost now (it registered again, naming it as
    /// its previous id: what ran under it is gone); `false` if it was not live.
    pub fn lose(&mut self, id: AgentId, now: Instant) -> bool {
        if !self.is_live(id) {
            return false;
        }
        self.mark_lost(id);
        self.reindex(id, now);
        self.remeasure();
        self.unexclude_if_none_left(now);
        true
    }

    fn mark_lost(&mut self, id: AgentId) {
        let Some(a) = self.agents.get_mut(&id) else { return };
        a.lost = true;
        self.totals.0 = self.totals.0.saturating_sub(u64::from(a.resources.slots + a.resources.queue));
        self.totals.1 = self.totals.1.saturating_sub(a.resources.memory);
    }

    /// Note a live agent's memory report (nothing the placement reads).
    pub fn set_memory(&mut self, id: AgentId, memory: AgentMemory) {
        if let Some(a) = self.agents.get_mut(&id).filter(|a| !a.lost) {
            a.memory = memory;
        }
    }

    /// The agent `id`, live or lost.
    pub fn get(&self, id: AgentId) -> Option<&Agent> {
        self.agents.get(&id)
    }

    /// The address of a live agent.
    pub fn address(&self, id: AgentId) -> Option<&str> {
        self.agents.get(&id).filter(|a| !a.lost).map(|a| a.address.as_str())
    }

    /// Live agents, by id.
    pub fn live(&self) -> Vec<&Agent> {
        let mut v: Vec<&Agent> = self.agents.values().filter(|a| !a.lost).collect();
        v.sort_by_key(|a| a.id);
        v
    }

    /// Task slots of the live agents.
    pub fn capacity(&self) -> u32 {
        self.agents.values().filter(|a| !a.lost).map(|a| a.resources.slots).sum()
    }

    fn reindex(&mut self, id: AgentId, now: Instant) {
        let Some(a) = self.agents.get(&id) else { return };
        let offered = !a.lost && a.paused_until.is_none_or(|t| t <= now);
        let (places, memory) = a.capacity();
        let unreserved = a.pools.unreserved_free(places, memory);
        self.free.set(id, if offered && !a.held { unreserved } else { Free::default() });
        if a.pools.reservations().is_empty() {
            return; // the common case, at every task's end: one pool
        }
        for (pool, free) in a.pools.free_in(places, memory) {
            if let Pool::Reserved(role) = pool {
                self.reserved.entry(role).or_default().set(id, if offered { free } else { Free::default() });
            }
        }
    }

    /// What is free in the unreserved pool of live, unpaused agent `id`,
    /// whether it is held or not.
    pub fn unreserved_free(&self, id: AgentId, now: Instant) -> Free {
        let Some(a) = self.agents.get(&id).filter(|a| !a.lost && a.paused_until.is_none_or(|t| t <= now))
        else {
            return Free::default();
        };
        let (places, memory) = a.capacity();
        a.pools.unreserved_free(places, memory)
    }

    /// Hold (or stop holding) the unreserved room of `id` for one action.
    pub fn set_held(&mut self, id: AgentId, held: bool, now: Instant) {
        if let Some(a) = self.agents.get_mut(&id) {
            a.held = held;
        }
        self.reindex(id, now);
    }

    /// The live, unheld agent whose unreserved pool could hold `d` once its
    /// tasks end, with the most free memory now (the one that drains
    /// soonest, as far as the master can tell).
    pub fn to_hold_for(&self, d: Demand, now: Instant) -> Option<AgentId> {
        self.agents
            .values()
            .filter(|a| !a.lost && !a.held && a.paused_until.is_none_or(|t| t <= now))
            .filter(|a| {
                let (places, memory) = a.capacity();
                Free::from(a.pools.unreserved(places, memory)).fits(d)
            })
            .max_by_key(|a| (self.unreserved_free(a.id, now), std::cmp::Reverse(a.id)))
            .map(|a| a.id)
    }

    /// The index of free resources in `pool`, if any agent has that pool.
    pub fn pool(&mut self, pool: Pool) -> Option<&mut FreeIndex> {
        match pool {
            Pool::Unreserved => Some(&mut self.free),
            Pool::Reserved(role) => self.reserved.get_mut(&role),
        }
    }

    /// Whether any pool has a free place.
    pub fn any_free(&self) -> bool {
        !self.free.is_empty() || self.reserved.values().any(|f| !f.is_empty())
    }

    /// Whether any agent reserves anything.
    pub fn has_reservations(&self) -> bool {
        !self.reserved.is_empty()
    }

    /// The roles some agent reserves for.
    pub fn reserved_roles(&self) -> Vec<u32> {
        let mut roles: Vec<u32> = self.reserved.keys().copied().collect();
        roles.sort_unstable();
        roles
    }

    /// Reserve on live agent `id`.
    ///
    /// # Errors
    /// The agent is unknown or lost, or the reservation would not fit.
    pub fn reserve(&mut self, id: AgentId, r: Reservation, now: Instant) -> Result<(), String> {
        let a = self.agents.get_mut(&id).filter(|a| !a.lost).ok_or_else(|| format!("no live agent {id}"))?;
        a.pools.reserve(r, a.resources.slots, a.resources.memory)?;
        self.reindex(id, now);
        Ok(())
    }

    /// Drop `role`'s dynamic reservation on `id`; what it reserved.
    ///
    /// # Errors
    /// The agent is unknown, or reserves nothing for `role` through the API.
    pub fn unreserve(&mut self, id: AgentId, role: u32, now: Instant) -> Result<Demand, String> {
        let a = self.agents.get_mut(&id).ok_or_else(|| format!("no agent {id}"))?;
        let amount = a.pools.unreserve(role).ok_or_else(|| {
            format!("agent {id} has no dynamic reservation for that role (one made by --reserve stays)")
        })?;
        if !a.pools.roles().any(|r| r == role)
            && let Some(index) = self.reserved.get_mut(&role)
        {
            index.set(id, Free::default());
            if index.places() == 0 && self.agents.values().all(|a| !a.pools.roles().any(|r| r == role)) {
                self.reserved.remove(&role);
            }
        }
        self.reindex(id, now);
        Ok(amount)
    }

    /// The most task slots and memory any live agent offers in all: a task
    /// demanding more can never be placed.
    pub fn largest(&self) -> Resources {
        self.largest
    }

    /// How many agents live.
    pub fn live_count(&self) -> usize {
        self.live
    }

    fn remeasure(&mut self) {
        self.live = self.agents.values().filter(|a| !a.lost).count();
        let live = self.agents.values().filter(|a| !a.lost);
        self.largest = live.fold(Resources::default(), |l, a| Resources {
            slots: l.slots.max(a.resources.slots),
            memory: l.memory.max(a.capacity().1),
            queue: 0,
        });
    }

    /// An attempt holding `d` was placed in `pool` on `id` (`d` was taken
    /// from the pool's index).
    pub fn placed(&mut self, id: AgentId, pool: Pool, d: Demand) {
        if let Some(a) = self.agents.get_mut(&id) {
            a.running += 1;
            a.pools.place(pool, Demand { places: d.places.max(1), memory: d.memory });
        }
    }

    /// An attempt holding `d` on `id` ended (or never started): what it held
    /// is free again, and a paused agent is offered again, as it has just
    /// shown free room.
    pub fn freed(&mut self, id: AgentId, pool: Pool, d: Demand, now: Instant) {
        if let Some(a) = self.agents.get_mut(&id) {
            a.running = a.running.saturating_sub(1);
            a.pools.free(pool, Demand { places: d.places.max(1), memory: d.memory });
            // Room shown ends a pause, not an exclusion.
            a.paused_until = a.excluded_until.filter(|t| *t > now);
            a.backoff = FIRST_BACKOFF;
        }
        self.reindex(id, now);
    }

    /// `id` refused a launch (busy) or could not be reached: offer it nothing
    /// for a while, longer at each refusal in a row (with jitter, bounded).
    pub fn pause(&mut self, id: AgentId, now: Instant) {
        if let Some(a) = self.agents.get_mut(&id) {
            let jitter = a.backoff.mul_f64(fastrand::f64() * 0.5);
            // A pause never shortens an exclusion.
            a.paused_until = Some((now + a.backoff + jitter).max(a.excluded_until.unwrap_or(now)));
            a.backoff = (a.backoff * 2).min(MAX_BACKOFF);
        }
        self.reindex(id, now);
    }

    /// A task on `id` failed for the host's reasons (not its guest's, not a
    /// peer's): after [`EXCLUDE_AFTER`] such failures within
    /// [`EXCLUDE_WINDOW`] it is offered nothing for [`EXCLUDE_FOR`], unless
    /// every other live agent is excluded too (the cluster would stop).
    /// Whether this excluded it.
    pub fn task_failed(&mut self, id: AgentId, now: Instant) -> bool {
        self.strike(id, Exclusion::Failing, now)
    }

    /// A task on `id` was out-run by its speculative copy elsewhere: after
    /// `SLOW_AFTER` such tasks within `SLOW_WINDOW` it is excluded as
    /// slow for `SLOW_FOR`, on the same terms as [`Agents::task_failed`].
    /// Whether this excluded it.
    pub fn outrun(&mut self, id: AgentId, now: Instant) -> bool {
        self.strike(id, Exclusion::Slow, now)
    }

    /// Whether `id` is excluded as slow now: its running tasks are
    /// stragglers already.
    pub fn is_slow(&self, id: AgentId, now: Instant) -> bool {
        self.agents.get(&id).is_some_and(|a| a.is_slow(now))
    }

    /// The agents excluded as slow now (few, and mostly none).
    pub fn slow(&self, now: Instant) -> Vec<AgentId> {
        self.excluded.iter().copied().filter(|id| self.is_slow(*id, now)).collect()
    }

    /// Count a strike of kind `why` against live agent `id`, and exclude it
    /// when it has had enough of them lately (unless it is the last live
    /// agent not excluded, or already excluded).
    fn strike(&mut self, id: AgentId, why: Exclusion, now: Instant) -> bool {
        let others =
            self.agents.values().any(|a| a.id != id && !a.lost && a.excluded_until.is_none_or(|t| t <= now));
        let Some(a) = self.agents.get_mut(&id).filter(|a| !a.lost) else { return false };
        let (strikes, after, window, excluded_for) = match why {
            Exclusion::Failing => (&mut a.failures, EXCLUDE_AFTER, EXCLUDE_WINDOW, EXCLUDE_FOR),
            Exclusion::Slow => (&mut a.outruns, SLOW_AFTER, SLOW_WINDOW, SLOW_FOR),
        };
        strikes.push_back(now);
        while strikes.front().is_some_and(|t| now.saturating_duration_since(*t) > window) {
            strikes.pop_front();
        }
        if strikes.len() < after || !others || a.excluded_until.is_some_and(|t| t > now) {
            return false;
        }
        strikes.clear();
        a.excluded_until = Some(now + excluded_for);
        a.excluded_why = why;
        a.paused_until = a.excluded_until;
        if !self.excluded.contains(&id) {
            self.excluded.push(id);
        }
        self.reindex(id, now);
        true
    }

    /// A driver was placed on (`+1`) or left (`-1`) agent `id`.
    pub fn drivers(&mut self, id: AgentId, placed: bool) {
        if let Some(a) = self.agents.get_mut(&id) {
            a.drivers = if placed { a.drivers + 1 } else { a.drivers.saturating_sub(1) };
        }
    }

    /// The live agent with the most free driver slots (as many as task slots).
    pub fn roomiest_for_driver(&self, now: Instant) -> Option<AgentId> {
        self.agents
            .values()
            .filter(|a| !a.lost && a.paused_until.is_none_or(|t| t <= now) && a.drivers < a.resources.slots)
            .max_by_key(|a| (a.resources.slots - a.drivers, std::cmp::Reverse(a.id)))
            .map(|a| a.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(slots: u32) -> Resources {
        Resources { slots, memory: 1 << 30, queue: 0 }
    }

    #[test]
    fn silent_agents_are_lost_and_must_reregister() {
        let t0 = Instant::now();
        let mut r = Agents::new(Incarnation(1), Duration::from_millis(100), 3);
        let a = r.register("a:1".into(), res(2), BTreeMap::new(), t0);
        let b = r.register("b:1".into(), res(4), BTreeMap::new(), t0);
        assert_ne!(a, b);
        assert_eq!((r.capacity(), r.free.places()), (6, 6));

        assert!(r.heartbeat(a, t0 + Duration::from_millis(250)));
        assert!(r.sweep(t0 + Duration::from_millis(300)).is_empty(), "300ms is not past 3 intervals");
        assert_eq!(r.sweep(t0 + Duration::from_millis(301)), [b]);
        assert!(r.sweep(t0 + Duration::from_millis(302)).is_empty(), "lost once");
        assert!(!r.heartbeat(b, t0 + Duration::from_millis(400)));
        assert_eq!((r.capacity(), r.free.places()), (2, 2), "a lost agent offers nothing");
    }

    #[test]
    fn ids_of_another_master_run_are_unknown() {
        let t0 = Instant::now();
        let mut old = Agents::new(Incarnation(1), Duration::from_secs(1), 3);
        let mut new = Agents::new(Incarnation(2), Duration::from_secs(1), 3);
        let stale = old.register("a:1".into(), res(1), BTreeMap::new(), t0);
        let fresh = new.register("b:1".into(), res(1), BTreeMap::new(), t0);
        assert_eq!(stale.seq, fresh.seq, "the same number in both runs");
        assert!(!new.heartbeat(stale, t0), "the old run's agent must register again");
        assert!(new.heartbeat(fresh, t0));
    }

    #[test]
    fn a_refusing_agent_is_paused_until_a_slot_frees_or_its_backoff_ends() {
        let t0 = Instant::now();
        let mut r = Agents::new(Incarnation(1), Duration::from_secs(10), 3);
        let a = r.register("a:1".into(), res(2), BTreeMap::new(), t0);
        r.pause(a, t0);
        assert_eq!(r.free.free(a).places, 0, "paused: offered nothing");
        let until = r.get(a).unwrap().paused_until.unwrap();
        assert!(until >= t0 + FIRST_BACKOFF && until <= t0 + FIRST_BACKOFF * 3 / 2);
        r.sweep(until);
        assert_eq!(r.free.free(a).places, 2, "the backoff is over");
        // Refusals in a row back off further, up to the bound.
        for _ in 0..20 {
            r.pause(a, t0);
        }
        let until = r.get(a).unwrap().paused_until.unwrap();
        assert!(until - t0 <= MAX_BACKOFF * 3 / 2, "bounded: {:?}", until - t0);
        assert!(until - t0 >= MAX_BACKOFF, "grown: {:?}", until - t0);
        let one = Demand { places: 1, memory: 1 << 20 };
        r.placed(a, Pool::Unreserved, one);
        r.freed(a, Pool::Unreserved, one, t0);
        assert_eq!(r.free.free(a).places, 2, "a freed slot ends the pause at once");
    }
}
