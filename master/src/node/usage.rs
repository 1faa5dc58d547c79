//! The `Usage` call of the `Jobs` service: rows of the usage ledger for a
//! client, restricted to its own tenant unless it is an admin (see
//! `docs/operators-guide.md`, Usage and metering).

use super::Shared;
use crate::ledger::{EndLabel, GroupBy, UsageQuery, UsageRow};
use crate::tenants::Client;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::Status;
use weft_core::proto::job_id;
use weft_core::proto::v1;

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A ledger row on the wire.
fn row(r: &UsageRow) -> v1::UsageRow {
    let t = &r.totals;
    let a = r.attempt.as_ref();
    v1::UsageRow {
        tenant: r.tenant.to_string(),
        job: r.job.map(Into::into),
        action: r.action.map(Into::into),
        stage: r.stage.unwrap_or(0),
        partition: a.map_or(0, |a| a.partition),
        attempt: a.map_or(0, |a| a.attempt),
        agent: a.and_then(|a| a.agent).map(Into::into),
        end: a.map_or_else(String::new, |a| a.end.name().to_string()),
        start_ms: a.map_or(0, |a| millis(a.start)),
        end_ms: a.map_or(0, |a| millis(a.ended)),
        memory_bytes: a.map_or(0, |a| a.memory),
        jobs: r.jobs,
        attempts: t.attempts,
        by_end: EndLabel::ALL
            .iter()
            .filter(|l| t.ended(**l) > 0)
            .map(|l| v1::EndCount { end: l.name().to_string(), attempts: t.ended(*l) })
            .collect(),
        running: r.running,
        metering: Some((&t.meter.metering()).into()),
        slot_us: t.slot_us,
        memory_byte_seconds: t.memory_byte_seconds,
        fuel_quota: r.fuel_quota.map(|q| v1::FuelQuotaState {
            amount: q.quota.amount,
            period_s: q.quota.period.as_secs(),
            used: q.used,
            resets_at_ms: millis(q.resets_at),
        }),
    }
}

impl Shared {
    /// The rows `req` asks for, if `who` may read them: a tenant its own, an
    /// admin any tenant's.
    pub(super) async fn usage_rows(
        &self,
        who: &Client,
        req: v1::UsageRequest,
    ) -> Result<Vec<v1::UsageRow>, Status> {
        let tenant = if req.tenant.is_empty() {
            (!who.admin).then(|| who.tenant.to_string())
        } else if who.can_see(&req.tenant) {
            Some(req.tenant.clone())
        } else {
            return Err(Status::permission_denied(format!(
                "tenant `{}` may not read the usage of tenant `{}`: leave out --tenant to read your own, \
                 or ask with an admin's token",
                who.tenant, req.tenant
            )));
        };
        let job = match &req.job {
            Some(j) => {
                let id = job_id(Some(j), "request").map_err(|e| Status::invalid_argument(e.to_string()))?;
                // Another tenant's job is `no job`, as everywhere.
                self.visible(who, id).await?;
                Some(id)
            }
            None => None,
        };
        let by = match v1::UsageGroup::try_from(req.by) {
            Ok(v1::UsageGroup::Unspecified | v1::UsageGroup::Tenant) => GroupBy::Tenant,
            Ok(v1::UsageGroup::Job) => GroupBy::Job,
            Ok(v1::UsageGroup::Stage) => GroupBy::Stage,
            Ok(v1::UsageGroup::Attempt) => GroupBy::Attempt,
            Err(_) => return Err(Status::invalid_argument(format!("unknown usage grouping {}", req.by))),
        };
        let time = |ms: u64| (ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(ms));
        let q = UsageQuery { tenant, job, since: time(req.since_ms), until: time(req.until_ms), by };
        let rows = self.core.call(move |c| c.ledger().usage(&q, Instant::now())).await?;
        Ok(rows.iter().map(row).collect())
    }
}
