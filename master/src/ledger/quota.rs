//! Fuel as a resource of its own: a job's budget and its tenant's quota per
//! period, both read from the ledger, and the one cap both put on a task's
//! fuel at launch ([`Ledger::fuel_left`]).
//!
//! A quota's windows are fixed in UTC: a period of `1h` runs from one whole
//! hour to the next, `1d` from midnight to midnight. The fuel of an attempt
//! counts in the window its end falls in.

use super::{Attempt, Ledger};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weft_core::ids::JobId;

/// A tenant's fuel quota: at most `amount` fuel per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuelQuota {
    /// Fuel per window.
    pub amount: u64,
    /// The window's length (at least a second).
    pub period: Duration,
}

/// Where a tenant stands against its fuel quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaState {
    /// The quota.
    pub quota: FuelQuota,
    /// Fuel its attempts that ended in the current window burned.
    pub used: u64,
    /// When the current window ends and `used` starts again from 0.
    pub resets_at: SystemTime,
}

/// Why a job must stop: its fuel is spent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FuelStop {
    /// The job's own budget (`--fuel-budget`) is used up.
    #[error(
        "the job's fuel budget of {budget} is used up ({used} burned): submit it with a larger \
         --fuel-budget, or make it do less"
    )]
    Budget {
        /// The budget.
        budget: u64,
        /// Fuel burned.
        used: u64,
    },
    /// Its tenant's quota for the current window is used up.
    #[error(
        "tenant `{tenant}` has used its fuel quota of {} per {} ({} burned in the window since {}); \
         it resets at {}: submit again then, or ask the operator to raise `[tenant.quota] fuel` \
         in the tenants file",
        state.quota.amount,
        humantime::format_duration(state.quota.period),
        state.used,
        humantime::format_rfc3339_seconds(state.resets_at - state.quota.period),
        humantime::format_rfc3339_seconds(state.resets_at)
    )]
    Quota {
        /// The tenant.
        tenant: String,
        /// Its quota and what it used.
        state: QuotaState,
    },
}

/// Each tenant's quota and the fuel burned in its current window.
#[derive(Debug, Default)]
pub(super) struct Quotas {
    pub(super) by_tenant: HashMap<u32, Window>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    quota: FuelQuota,
    start_us: u64,
    used: u64,
}

fn period_us(q: &FuelQuota) -> u64 {
    u64::try_from(q.period.as_micros()).unwrap_or(u64::MAX).max(1_000_000)
}

fn window_start(q: &FuelQuota, at_us: u64) -> u64 {
    let p = period_us(q);
    at_us / p * p
}

impl Quotas {
    /// Count `a` in its tenant's window.
    pub(super) fn add(&mut self, a: &Attempt) {
        let Some(w) = self.by_tenant.get_mut(&a.tenant) else { return };
        let start = window_start(&w.quota, a.end_us);
        if start > w.start_us {
            w.start_us = start;
            w.used = 0;
        }
        if start == w.start_us {
            w.used = w.used.saturating_add(a.meter.fuel);
        }
    }
}

impl Ledger {
    /// Set every tenant's fuel quota (a tenant not named has none); the
    /// fuel each burned in its current window is counted from the records.
    pub fn set_fuel_quotas(&mut self, quotas: HashMap<String, FuelQuota>, now: Instant) {
        let now_us = self.clock.unix_us(now);
        let mut by_tenant = HashMap::new();
        for (tenant, quota) in quotas {
            let id = self.intern(&tenant);
            by_tenant.insert(id, Window { quota, start_us: window_start(&quota, now_us), used: 0 });
        }
        for a in &self.records {
            if let Some(w) = by_tenant.get_mut(&a.tenant)
                && window_start(&w.quota, a.end_us) == w.start_us
            {
                w.used = w.used.saturating_add(a.meter.fuel);
            }
        }
        self.quotas = Quotas { by_tenant };
    }

    /// Where `tenant` stands against its fuel quota at `now`; `None`
    /// without a quota.
    pub fn quota_state(&self, tenant: &str, now: Instant) -> Option<QuotaState> {
        let id = self.tenant_ids.get(tenant)?;
        self.quota_of(*id, now)
    }

    pub(super) fn quota_of(&self, tenant: u32, now: Instant) -> Option<QuotaState> {
        let w = self.quotas.by_tenant.get(&tenant)?;
        let now_us = self.clock.unix_us(now);
        let start = window_start(&w.quota, now_us);
        let used = if start == w.start_us { w.used } else { 0 };
        let resets_at = UNIX_EPOCH + Duration::from_micros(start.saturating_add(period_us(&w.quota)));
        Some(QuotaState { quota: w.quota, used, resets_at })
    }

    /// Why `tenant` may not run anything now, if its quota is used up.
    pub fn quota_over(&self, tenant: &str, now: Instant) -> Option<FuelStop> {
        let state = self.quota_state(tenant, now)?;
        (state.used >= state.quota.amount).then(|| FuelStop::Quota { tenant: tenant.to_string(), state })
    }

    /// Why `job` (with fuel budget `budget`) must stop now, if it must: its
    /// budget or its tenant's quota is used up.
    pub fn fuel_over(&self, job: JobId, budget: Option<u64>, now: Instant) -> Option<FuelStop> {
        let j = self.jobs.get(&self.job_number(job)?)?;
        let used = j.totals.meter.fuel;
        if let Some(budget) = budget
            && used >= budget
        {
            return Some(FuelStop::Budget { budget, used });
        }
        let state = self.quota_of(j.tenant, now)?;
        (state.used >= state.quota.amount)
            .then(|| FuelStop::Quota { tenant: self.tenant_name(j.tenant).to_string(), state })
    }

    /// The most fuel a task of `job` may be launched with now: what is left
    /// of the job's budget and of its tenant's quota, whichever is less (at
    /// least 1); `None` when neither caps it.
    pub fn fuel_left(&self, job: JobId, budget: Option<u64>, now: Instant) -> Option<u64> {
        let j = self.jobs.get(&self.job_number(job)?)?;
        let of_budget = budget.map(|b| b.saturating_sub(j.totals.meter.fuel));
        let of_quota = self.quota_of(j.tenant, now).map(|s| s.quota.amount.saturating_sub(s.used));
        let left = match (of_budget, of_quota) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return None,
        };
        Some(left.max(1))
    }
}
