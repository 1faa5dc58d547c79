//! Weighted Dominant Resource Fairness between tenants, then fairness
//! between a tenant's actions: what each tenant's running tasks hold (task
//! places and memory), its weighted dominant share of the cluster, and the
//! order in which actions are offered slots. Plain data inside the core.

use crate::free::Demand;
use std::collections::HashMap;
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

/// What each tenant and action holds.
#[derive(Debug, Default)]
pub(crate) struct Shares {
    index: HashMap<String, u32>,
    /// By tenant index: what each holds, and its weight and quota.
    tenants: Vec<TenantShare>,
    /// As configured, by name (for tenants interned later too).
    weights: HashMap<String, f64>,
    quotas: HashMap<String, Quota>,
    /// Attempts running per action.
    per_action: HashMap<ActionId, u32>,
}

/// One tenant's holding and settings, looked up by index on the hot path.
#[derive(Debug, Clone)]
struct TenantShare {
    name: String,
    /// Task places and memory held.
    held: (u64, u64),
    weight: f64,
    quota: Quota,
}

impl Shares {
    /// The interned index of `tenant`.
    pub(crate) fn tenant(&mut self, tenant: &str) -> u32 {
        if let Some(i) = self.index.get(tenant) {
            return *i;
        }
        let i = self.tenants.len() as u32;
        self.index.insert(tenant.to_string(), i);
        self.tenants.push(TenantShare {
            name: tenant.to_string(),
            held: (0, 0),
            weight: weight_of(&self.weights, tenant),
            quota: self.quotas.get(tenant).copied().unwrap_or_default(),
        });
        i
    }

    /// The tenants' weights (a tenant not named weighs 1).
    pub(crate) fn set_weights(&mut self, weights: HashMap<String, f64>) {
        for t in &mut self.tenants {
            t.weight = weight_of(&weights, &t.name);
        }
        self.weights = weights;
    }

    /// The tenants' quotas (a tenant not named has none).
    pub(crate) fn set_quotas(&mut self, quotas: HashMap<String, Quota>) {
        for t in &mut self.tenants {
            t.quota = quotas.get(&t.name).copied().unwrap_or_default();
        }
        self.quotas = quotas;
    }

    fn held_by(&self, tenant: u32) -> (u64, u64) {
        self.tenants.get(tenant as usize).map(|t| t.held).unwrap_or_default()
    }

    fn quota(&self, tenant: u32) -> Quota {
        self.tenants.get(tenant as usize).map(|t| t.quota).unwrap_or_default()
    }

    /// Whether `tenant` holds less than its guarantee (in either dimension
    /// it guarantees): it is offered slots before shares are compared.
    pub(crate) fn below_guarantee(&self, tenant: u32) -> bool {
        let (p, m) = self.held_by(tenant);
        let g = self.quota(tenant).guarantee;
        (g.places > 0 && p < g.places) || (g.memory > 0 && m < g.memory)
    }

    /// How many more tasks claiming `claim` its tenant's limit allows
    /// (`usize::MAX` without a limit).
    pub(crate) fn room(&self, claim: Claim) -> usize {
        let Some(limit) = self.quota(claim.tenant).limit else { return usize::MAX };
        let (p, m) = self.held_by(claim.tenant);
        let memory = claim.memory;
        let places = u64::from(claim.places.max(1));
        let by_places = if limit.places > 0 { limit.places.saturating_sub(p) / places } else { u64::MAX };
        let by_memory =
            if limit.memory > 0 && memory > 0 { limit.memory.saturating_sub(m) / memory } else { u64::MAX };
        usize::try_from(by_places.min(by_memory)).unwrap_or(usize::MAX)
    }

    fn weight(&self, tenant: u32) -> f64 {
        self.tenants.get(tenant as usize).map_or(1.0, |t| t.weight)
    }

    /// An attempt of `action` started with `claim`.
    pub(crate) fn start(&mut self, action: ActionId, claim: Claim) {
        if let Some(t) = self.tenants.get_mut(claim.tenant as usize) {
            t.held.0 += u64::from(claim.places.max(1));
            t.held.1 += claim.memory;
        }
        *self.per_action.entry(action).or_default() += 1;
    }

    /// An attempt of `action` holding `claim` ended.
    pub(crate) fn end(&mut self, action: ActionId, claim: Claim) {
        if let Some(t) = self.tenants.get_mut(claim.tenant as usize) {
            t.held.0 = t.held.0.saturating_sub(u64::from(claim.places.max(1)));
            t.held.1 = t.held.1.saturating_sub(claim.memory);
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

/// `tenant`'s weight in `weights` (1 when not named, or not above 0).
fn weight_of(weights: &HashMap<String, f64>, tenant: &str) -> f64 {
    weights.get(tenant).copied().filter(|w| *w > 0.0).unwrap_or(1.0)
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
        s.set_weights([("a".to_string(), 2.0)].into());
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
}
