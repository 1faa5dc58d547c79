//! Weighted Dominant Resource Fairness between tenants, then fairness
//! between a tenant's actions: what each tenant's running tasks hold (task
//! places and memory), its weighted dominant share of the cluster, and the
//! order in which actions are offered slots; and, for operators and the
//! fairness tests, what each tenant has held over time (place-seconds and
//! memory-byte-seconds, integrated at every change). Plain data inside the
//! core, which tells it the time.

use crate::free::Demand;
use std::collections::HashMap;
use std::time::Instant;
use weft_core::ids::ActionId;

/// A running attempt's claim: its tenant (interned), its task places (slots)
/// and memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    pub tenant: u32,
    pub places: u32,
    pub memory: u64,
}

impl Claim {
    /// What it holds on its agent.
    pub(crate) fn demand(&self) -> Demand {
        Demand { places: self.places, memory: self.memory }
    }
}

/// A tenant's quota: a guarantee (offered first, while the tenant holds less)
/// and a limit (never passed), each in task places and memory bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Held first, before shares are compared.
    pub guarantee: Amount,
    /// Never exceeded.
    pub limit: Option<Amount>,
}

/// Task places and memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amount {
    /// Task places (task slots and drivers).
    pub places: u64,
    /// Memory bytes (of memory limits).
    pub memory: u64,
}

/// How the tenants share the cluster, as configured (the tenants file).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sharing {
    /// Each configured tenant's weight, quota and role (a tenant not named
    /// weighs 1, has no quota and the role `*`).
    pub tenants: HashMap<String, TenantSharing>,
    /// Each role's quota, over all its tenants.
    pub roles: HashMap<String, Quota>,
}

/// One tenant's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSharing {
    /// Its weight (above 0).
    pub weight: f64,
    /// Its own quota.
    pub quota: Quota,
    /// Its role: resources reserved for the role are offered to it (`*`: none).
    pub role: String,
}

impl Default for TenantSharing {
    fn default() -> Self {
        Self { weight: 1.0, quota: Quota::default(), role: UNRESERVED.into() }
    }
}

/// The role of tenants without one: no reserved resources.
pub const UNRESERVED: &str = "*";

/// What each tenant, role and action holds.
#[derive(Debug)]
pub(crate) struct Shares {
    index: HashMap<String, u32>,
    /// By tenant index: what each holds, and its weight and quota.
    tenants: Vec<TenantShare>,
    /// By role index (0 is `*`): what its tenants hold, and its quota.
    roles: Vec<RoleShare>,
    role_index: HashMap<String, u32>,
    /// As configured, by name (for tenants interned later too).
    sharing: Sharing,
    /// Attempts running per action.
    per_action: rustc_hash::FxHashMap<ActionId, u32>,
    /// The latest time the core was told.
    now: Option<Instant>,
}

/// One tenant's holding and settings, looked up by index on the hot path.
#[derive(Debug, Clone)]
struct TenantShare {
    name: String,
    /// Task places and memory held.
    held: (u64, u64),
    weight: f64,
    quota: Quota,
    role: u32,
    /// ∫ held dt (place-seconds, memory-byte-seconds) up to `since`.
    integral: (f64, f64),
    since: Option<Instant>,
}

/// One role's holding (the sum of its tenants') and quota.
#[derive(Debug, Clone)]
struct RoleShare {
    name: String,
    held: (u64, u64),
    quota: Quota,
}

impl Default for Shares {
    fn default() -> Self {
        let star = RoleShare { name: UNRESERVED.into(), held: (0, 0), quota: Quota::default() };
        Self {
            index: HashMap::new(),
            tenants: Vec::new(),
            roles: vec![star],
            role_index: [(UNRESERVED.to_string(), 0)].into(),
            sharing: Sharing::default(),
            per_action: rustc_hash::FxHashMap::default(),
            now: None,
        }
    }
}

impl TenantShare {
    /// Fold what it held since the last change into its integral.
    fn advance(&mut self, now: Option<Instant>) {
        if let (Some(since), Some(now)) = (self.since, now) {
            let dt = now.saturating_duration_since(since).as_secs_f64();
            self.integral.0 += self.held.0 as f64 * dt;
            self.integral.1 += self.held.1 as f64 * dt;
        }
        self.since = now.or(self.since);
    }
}

/// What one tenant holds now and has held over time (a view).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantHolding {
    /// Its name.
    pub tenant: String,
    /// Its weight.
    pub weight: f64,
    /// Its quota.
    pub quota: Quota,
    /// Task places and memory bytes its running tasks and drivers hold.
    pub held: Amount,
    /// Its weighted dominant share of the cluster now.
    pub share: f64,
    /// ∫ places dt, in place-seconds, since the master started.
    pub place_seconds: f64,
    /// ∫ memory dt, in byte-seconds, since the master started.
    pub memory_byte_seconds: f64,
    /// Its live jobs.
    pub jobs: u32,
    /// Its drivers running now.
    pub drivers: u32,
}

impl Shares {
    /// The interned index of `tenant`.
    pub(crate) fn tenant(&mut self, tenant: &str) -> u32 {
        if let Some(i) = self.index.get(tenant) {
            return *i;
        }
        let i = self.tenants.len() as u32;
        self.index.insert(tenant.to_string(), i);
        let s = self.sharing.tenants.get(tenant).cloned().unwrap_or_default();
        let role = self.role(&s.role);
        self.tenants.push(TenantShare {
            name: tenant.to_string(),
            held: (0, 0),
            weight: s.weight,
            quota: s.quota,
            role,
            integral: (0.0, 0.0),
            since: self.now,
        });
        i
    }

    /// The interned index of `role` (0 for `*`).
    pub(crate) fn role(&mut self, role: &str) -> u32 {
        if let Some(i) = self.role_index.get(role) {
            return *i;
        }
        let i = self.roles.len() as u32;
        self.role_index.insert(role.to_string(), i);
        let quota = self.sharing.roles.get(role).copied().unwrap_or_default();
        self.roles.push(RoleShare { name: role.to_string(), held: (0, 0), quota });
        i
    }

    /// The role of `tenant`.
    pub(crate) fn role_of(&self, tenant: u32) -> u32 {
        self.tenants.get(tenant as usize).map_or(0, |t| t.role)
    }

    /// The name of role `role`.
    pub(crate) fn role_name(&self, role: u32) -> &str {
        self.roles.get(role as usize).map_or(UNRESERVED, |r| &r.name)
    }

    /// Take new settings: weights, quotas and roles apply to what runs now
    /// (a role's holding is its tenants' again).
    pub(crate) fn configure(&mut self, sharing: Sharing) {
        self.sharing = sharing;
        for r in &mut self.roles {
            r.quota = self.sharing.roles.get(&r.name).copied().unwrap_or_default();
            r.held = (0, 0);
        }
        for i in 0..self.tenants.len() {
            let s = self.sharing.tenants.get(&self.tenants[i].name).cloned().unwrap_or_default();
            let role = self.role(&s.role);
            let t = &mut self.tenants[i];
            (t.weight, t.quota, t.role) = (s.weight, s.quota, role);
            let held = t.held;
            let r = &mut self.roles[role as usize];
            r.held = (r.held.0 + held.0, r.held.1 + held.1);
        }
    }

    /// The time is `now` (never earlier than before).
    pub(crate) fn at(&mut self, now: Instant) {
        self.now = Some(self.now.map_or(now, |t| t.max(now)));
    }

    /// Every tenant's holding, integrated up to the latest time told, in a
    /// cluster of `places` task places and `memory` bytes.
    pub(crate) fn holdings(&self, places: u64, memory: u64) -> Vec<TenantHolding> {
        self.tenants
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut t = t.clone();
                t.advance(self.now);
                TenantHolding {
                    tenant: t.name.clone(),
                    weight: t.weight,
                    quota: t.quota,
                    held: Amount { places: t.held.0, memory: t.held.1 },
                    share: self.share(i as u32, places, memory),
                    place_seconds: t.integral.0,
                    memory_byte_seconds: t.integral.1,
                    jobs: 0,
                    drivers: 0,
                }
            })
            .collect()
    }

    fn held_by(&self, tenant: u32) -> (u64, u64) {
        self.tenants.get(tenant as usize).map(|t| t.held).unwrap_or_default()
    }

    /// The quotas that bind `tenant`: its own and its role's, each with what
    /// it counts against.
    fn quotas(&self, tenant: u32) -> [(Quota, (u64, u64)); 2] {
        let Some(t) = self.tenants.get(tenant as usize) else { return [(Quota::default(), (0, 0)); 2] };
        let role = self.roles.get(t.role as usize).map_or((Quota::default(), (0, 0)), |r| (r.quota, r.held));
        [(t.quota, t.held), role]
    }

    /// Whether `tenant`, or its role, holds less than its guarantee (in
    /// either dimension it guarantees): it is offered resources before
    /// shares are compared.
    pub(crate) fn below_guarantee(&self, tenant: u32) -> bool {
        self.quotas(tenant).iter().any(|(q, (p, m))| {
            let g = q.guarantee;
            (g.places > 0 && *p < g.places) || (g.memory > 0 && *m < g.memory)
        })
    }

    /// How many more tasks claiming `claim` the limits of its tenant and of
    /// its role allow (`usize::MAX` without a limit).
    pub(crate) fn room(&self, claim: Claim) -> usize {
        let memory = claim.memory;
        let places = u64::from(claim.places.max(1));
        let room = |(q, (p, m)): &(Quota, (u64, u64))| {
            let Some(limit) = q.limit else { return u64::MAX };
            let by_places =
                if limit.places > 0 { limit.places.saturating_sub(*p) / places } else { u64::MAX };
            let by_memory = if limit.memory > 0 && memory > 0 {
                limit.memory.saturating_sub(*m) / memory
            } else {
                u64::MAX
            };
            by_places.min(by_memory)
        };
        let least = self.quotas(claim.tenant).iter().map(room).min().unwrap_or(u64::MAX);
        usize::try_from(least).unwrap_or(usize::MAX)
    }

    fn weight(&self, tenant: u32) -> f64 {
        self.tenants.get(tenant as usize).map_or(1.0, |t| t.weight)
    }

    /// An attempt of `action` started with `claim`.
    pub(crate) fn start(&mut self, action: ActionId, claim: Claim) {
        if let Some(t) = self.tenants.get_mut(claim.tenant as usize) {
            t.advance(self.now);
            t.held.0 += u64::from(claim.places.max(1));
            t.held.1 += claim.memory;
            if let Some(r) = self.roles.get_mut(t.role as usize) {
                r.held.0 += u64::from(claim.places.max(1));
                r.held.1 += claim.memory;
            }
        }
        *self.per_action.entry(action).or_default() += 1;
    }

    /// An attempt of `action` holding `claim` ended.
    pub(crate) fn end(&mut self, action: ActionId, claim: Claim) {
        if let Some(t) = self.tenants.get_mut(claim.tenant as usize) {
            t.advance(self.now);
            t.held.0 = t.held.0.saturating_sub(u64::from(claim.places.max(1)));
            t.held.1 = t.held.1.saturating_sub(claim.memory);
            if let Some(r) = self.roles.get_mut(t.role as usize) {
                r.held.0 = r.held.0.saturating_sub(u64::from(claim.places.max(1)));
                r.held.1 = r.held.1.saturating_sub(claim.memory);
            }
        }
        if let Some(n) = self.per_action.get_mut(&action) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_action.remove(&action);
            }
        }
    }

    /// The weighted dominant share of `tenant` in a cluster of `places` task
    /// places and `memory` bytes.
    pub(crate) fn share(&self, tenant: u32, places: u64, memory: u64) -> f64 {
        let (p, m) = self.held_by(tenant);
        dominant(p, places, m, memory) / self.weight(tenant)
    }

    /// How many more tasks claiming `claim` its tenant may take before its
    /// share passes `next` (at least one).
    pub(crate) fn budget(&self, claim: Claim, places: u64, total_memory: u64, next: f64) -> usize {
        let tenant = claim.tenant;
        let step = dominant(u64::from(claim.places.max(1)), places, claim.memory, total_memory)
            / self.weight(tenant);
        let room = next - self.share(tenant, places, total_memory);
        if !room.is_finite() || step <= 0.0 {
            return usize::MAX;
        }
        // (The epsilon keeps 0.3 / 0.1 from rounding down to 2.)
        ((room / step + 1e-9).floor().max(0.0) as usize).saturating_add(1)
    }

    /// Attempts of `action` running.
    pub(crate) fn running(&self, action: ActionId) -> u32 {
        self.per_action.get(&action).copied().unwrap_or(0)
    }

    /// Places and memory `tenant` holds (for views and tests).
    pub(crate) fn held(&self, tenant: &str) -> (u64, u64) {
        self.index.get(tenant).map(|i| self.held_by(*i)).unwrap_or_default()
    }
}

/// The larger of `p` of `places` and `m` of `memory` (a cluster that
/// reports no memory is shared by places alone).
fn dominant(p: u64, places: u64, m: u64, memory: u64) -> f64 {
    let by_places = p as f64 / places.max(1) as f64;
    if memory == 0 { by_places } else { by_places.max(m as f64 / memory as f64) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::ids::{Incarnation, JobId};

    #[test]
    fn shares_are_dominant_and_weighted_and_budgets_reach_the_next_share() {
        let mut s = Shares::default();
        let (a, b) = (s.tenant("a"), s.tenant("b"));
        let action = ActionId { job: JobId { incarnation: Incarnation(1), seq: 1 }, seq: 1 };
        // 10 places, 10 GiB: a holds 2 places and 6 GiB (memory dominates).
        for _ in 0..2 {
            s.start(action, Claim { tenant: a, places: 1, memory: 3 << 30 });
        }
        assert!((s.share(a, 10, 10 << 30) - 0.6).abs() < 1e-9);
        s.configure(Sharing {
            tenants: [("a".to_string(), TenantSharing { weight: 2.0, ..Default::default() })].into(),
            ..Default::default()
        });
        assert!((s.share(a, 10, 10 << 30) - 0.3).abs() < 1e-9, "weight 2 halves it");
        // b's 1 GiB tasks cost 0.1 each: 3 reach a's 0.3, the 4th passes it.
        assert_eq!(s.budget(Claim { tenant: b, places: 1, memory: 1 << 30 }, 10, 10 << 30, 0.3), 4);
        // Alone, a tenant's budget is unbounded.
        assert_eq!(
            s.budget(Claim { tenant: b, places: 1, memory: 1 << 30 }, 10, 10 << 30, f64::INFINITY),
            usize::MAX
        );
        s.end(action, Claim { tenant: a, places: 1, memory: 3 << 30 });
        assert_eq!(s.held("a"), (1, 3 << 30));
        assert_eq!(s.running(action), 1);
    }

    #[test]
    fn holdings_integrate_what_each_tenant_held_over_time() {
        let t0 = Instant::now();
        let mut s = Shares::default();
        s.at(t0);
        let a = s.tenant("a");
        let action = ActionId { job: JobId { incarnation: Incarnation(1), seq: 1 }, seq: 1 };
        let claim = Claim { tenant: a, places: 2, memory: 100 };
        s.start(action, claim); // 2 places, 100 B from 0 s
        s.at(t0 + std::time::Duration::from_secs(3));
        s.start(action, claim); // 4 places, 200 B from 3 s
        s.at(t0 + std::time::Duration::from_secs(4));
        s.end(action, claim); // back to 2 places from 4 s
        s.at(t0 + std::time::Duration::from_secs(10));
        let h = &s.holdings(10, 1000)[0];
        // 2×3 + 4×1 + 2×6 place-seconds; 100×3 + 200×1 + 100×6 byte-seconds.
        assert!((h.place_seconds - 22.0).abs() < 1e-6, "{h:?}");
        assert!((h.memory_byte_seconds - 1100.0).abs() < 1e-6, "{h:?}");
        assert_eq!(h.held, Amount { places: 2, memory: 100 });
        assert!((h.share - 0.2).abs() < 1e-9, "2 of 10 places beats 100 of 1000 bytes");
        s.at(t0); // the clock never goes back
        assert!((s.holdings(10, 1000)[0].place_seconds - 22.0).abs() < 1e-6);
    }
}
