//! Reading the ledger: its records filtered by tenant, job and end time,
//! summed by tenant, job or stage with [`Totals::add`], or one row each.

use super::{Attempt, EndLabel, Ledger, QuotaState, Totals};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weft_core::ids::{ActionId, AgentId, JobId};

/// How rows are summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// One row per tenant, with its fuel quota.
    #[default]
    Tenant,
    /// One row per job.
    Job,
    /// One row per stage of each action (the driver is stage `DRIVER_STAGE`
    /// of action 0).
    Stage,
    /// One row per attempt.
    Attempt,
}

/// Which records to read.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only this job's.
    pub job: Option<JobId>,
    /// Only attempts that ended at or after this.
    pub since: Option<SystemTime>,
    /// Only attempts that ended before this.
    pub until: Option<SystemTime>,
    /// How to sum them.
    pub by: GroupBy,
}

/// One attempt, as a row names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// Its partition.
    pub partition: u32,
    /// Its number, from 0.
    pub attempt: u32,
    /// Its agent, if known.
    pub agent: Option<AgentId>,
    /// How it ended.
    pub end: EndLabel,
    /// When it was placed.
    pub start: SystemTime,
    /// When its end reached the master.
    pub ended: SystemTime,
    /// Its memory limit, in bytes.
    pub memory: u64,
}

/// One row of a usage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// The tenant.
    pub tenant: Arc<str>,
    /// The job (job, stage and attempt rows).
    pub job: Option<JobId>,
    /// The action (stage and attempt rows).
    pub action: Option<ActionId>,
    /// The stage (stage and attempt rows).
    pub stage: Option<u32>,
    /// The attempt (attempt rows).
    pub attempt: Option<AttemptRow>,
    /// Jobs with an attempt in the row.
    pub jobs: u64,
    /// Attempts of the row's jobs placed and not yet ended (job and tenant rows).
    pub running: u64,
    /// The row's attempts summed.
    pub totals: Totals,
    /// The tenant's fuel quota now (tenant rows).
    pub fuel_quota: Option<QuotaState>,
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn at(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

type Key = (u32, u32, u32, u32, u32, u32);

impl Ledger {
    /// The rows `q` asks for, ordered by tenant name, then job, action,
    /// stage, partition and attempt.
    pub fn usage(&self, q: &UsageQuery, now: Instant) -> Vec<UsageRow> {
        let tenant = match &q.tenant {
            Some(t) => match self.tenant_ids.get(t.as_str()) {
                Some(id) => Some(*id),
                None => return Vec::new(),
            },
            None => None,
        };
        let job = match q.job {
            Some(j) => match self.job_number(j) {
                Some(n) => Some(n),
                None => return Vec::new(),
            },
            None => None,
        };
        let (since, until) = (q.since.map(unix_us), q.until.map(unix_us));
        let keep = |a: &Attempt| {
            tenant.is_none_or(|t| a.tenant == t)
                && job.is_none_or(|j| a.job == j)
                && since.is_none_or(|s| a.end_us >= s)
                && until.is_none_or(|u| a.end_us < u)
        };
        let key = |a: &Attempt| -> Key {
            match q.by {
                GroupBy::Tenant => (a.tenant, 0, 0, 0, 0, 0),
                GroupBy::Job => (a.tenant, a.job, 0, 0, 0, 0),
                GroupBy::Stage => (a.tenant, a.job, a.action, a.stage, 0, 0),
                GroupBy::Attempt => (a.tenant, a.job, a.action, a.stage, a.partition, a.attempt),
            }
        };
        let mut groups: BTreeMap<Key, (Totals, BTreeSet<u32>, Vec<&Attempt>)> = BTreeMap::new();
        for a in self.records.iter().filter(|a| keep(a)) {
            let g = groups.entry(key(a)).or_default();
            g.0.add(a);
            g.1.insert(a.job);
            if q.by == GroupBy::Attempt {
                g.2.push(a);
            }
        }
        // A tenant with a quota shows it even before its first record.
        if q.by == GroupBy::Tenant && job.is_none() {
            for t in self.quotas.by_tenant.keys().filter(|t| tenant.is_none_or(|x| x == **t)) {
                groups.entry((*t, 0, 0, 0, 0, 0)).or_default();
            }
        }
        let mut rows = Vec::new();
        for ((t, j, action, stage, _, _), (totals, jobs, attempts)) in groups {
            let job_id = |n| self.job_id(n);
            let base = UsageRow {
                tenant: Arc::clone(&self.tenants[t as usize]),
                job: (q.by != GroupBy::Tenant).then(|| job_id(j)),
                action: matches!(q.by, GroupBy::Stage | GroupBy::Attempt)
                    .then(|| ActionId { job: job_id(j), seq: action }),
                stage: matches!(q.by, GroupBy::Stage | GroupBy::Attempt).then_some(stage),
                attempt: None,
                jobs: jobs.len() as u64,
                running: self.running(q.by, t, j),
                totals,
                fuel_quota: if q.by == GroupBy::Tenant { self.quota_of(t, now) } else { None },
            };
            if q.by != GroupBy::Attempt {
                rows.push(base);
                continue;
            }
            // The same attempt may have two records (closed as lost, then
            // reported): each is its own row.
            for a in attempts {
                let mut one = Totals::default();
                one.add(a);
                rows.push(UsageRow {
                    attempt: Some(AttemptRow {
                        partition: a.partition,
                        attempt: a.attempt,
                        agent: self.agent_id(a.agent),
                        end: a.end,
                        start: at(a.start_us),
                        ended: at(a.end_us),
                        memory: a.memory,
                    }),
                    totals: one,
                    ..base.clone()
                });
            }
        }
        rows.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        rows
    }

    fn running(&self, by: GroupBy, tenant: u32, job: u32) -> u64 {
        match by {
            GroupBy::Tenant => self.jobs.values().filter(|e| e.tenant == tenant).map(|e| e.open).sum(),
            GroupBy::Job => self.jobs.get(&job).map_or(0, |e| e.open),
            GroupBy::Stage | GroupBy::Attempt => 0,
        }
    }
}
