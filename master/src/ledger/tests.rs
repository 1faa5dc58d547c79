use super::*;
use weft_core::ids::{ActionId, Incarnation, StageId};
use weft_core::metering::EndReason;

const INC: Incarnation = Incarnation(0xabc);

fn job(seq: u32) -> JobId {
    JobId { incarnation: INC, seq }
}

fn agent(seq: u32) -> AgentId {
    AgentId { incarnation: INC, seq }
}

fn key(j: u32, action: u32, stage: u32, partition: u32, attempt: u32) -> TaskKey {
    TaskKey { action: ActionId { job: job(j), seq: action }, stage: StageId(stage), partition, attempt }
}

/// A deterministic spread of meterings.
fn metering(i: u64) -> TaskMetering {
    TaskMetering {
        fuel: 1_000 + i * 7,
        peak_memory: (i % 5) << 20,
        wall: Duration::from_micros(300 + i),
        cpu: Duration::from_micros(200 + i),
        instantiate: Duration::from_micros(i % 3),
        records_in: i,
        records_out: i / 2,
        bytes_in: i * 10,
        bytes_out: i * 5,
        calls: 1,
        log_bytes: i % 2,
        shuffle_bytes_written: i * 3,
        shuffle_bytes_read: i * 4,
        spill_bytes: i % 7,
        peak_host_memory: (i % 11) << 16,
    }
}

/// Two tenants, three jobs, stages and attempts ending every way.
fn filled() -> (Ledger, Instant) {
    let mut l = Ledger::new();
    let t0 = Instant::now();
    l.job_submitted(job(1), "alpha");
    l.job_submitted(job(2), "beta");
    l.job_submitted(job(3), "alpha");
    let ends = [
        EndReason::Finished,
        EndReason::HostError { message: "disk".into() },
        EndReason::Killed,
        EndReason::OutOfFuel { limit: 9 },
    ];
    let mut i = 0u64;
    for j in 1..=3 {
        for stage in 0..2 {
            for p in 0..4 {
                for attempt in 0..2 {
                    let k = key(j, 1, stage, p, attempt);
                    l.started(k, agent(p % 2), 64 << 20, t0 + Duration::from_millis(i));
                    let end = &ends[(i % 4) as usize];
                    l.ended(k, EndLabel::of(end), &metering(i), t0 + Duration::from_millis(i + 250));
                    i += 1;
                }
            }
        }
        l.started(TaskKey::driver(job(j), 0), agent(0), 32 << 20, t0);
    }
    (l, t0)
}

fn sum(rows: &[UsageRow]) -> Totals {
    let mut all = Totals::default();
    for r in rows {
        all.attempts += r.totals.attempts;
        for (a, b) in all.by_end.iter_mut().zip(r.totals.by_end) {
            *a += b;
        }
        let (t, m) = (&mut all.meter, &r.totals.meter);
        t.fuel += m.fuel;
        t.peak_memory = t.peak_memory.max(m.peak_memory);
        t.peak_host_memory = t.peak_host_memory.max(m.peak_host_memory);
        t.wall_us += m.wall_us;
        t.cpu_us += m.cpu_us;
        t.instantiate_us += m.instantiate_us;
        t.records_in += m.records_in;
        t.records_out += m.records_out;
        t.bytes_in += m.bytes_in;
        t.bytes_out += m.bytes_out;
        t.calls += m.calls;
        t.log_bytes += m.log_bytes;
        t.shuffle_written += m.shuffle_written;
        t.shuffle_read += m.shuffle_read;
        t.spill += m.spill;
        all.slot_us += r.totals.slot_us;
        all.memory_byte_seconds += r.totals.memory_byte_seconds;
    }
    all
}

#[test]
fn a_record_is_compact() {
    let bytes = std::mem::size_of::<Attempt>();
    eprintln!("bytes per ledger record: {bytes}");
    assert!(bytes <= 176, "an attempt's record grew to {bytes} bytes");
}

#[test]
fn every_total_is_the_exact_sum_of_its_attempts() {
    let (l, t0) = filled();
    let now = t0 + Duration::from_secs(1);
    let q = |by| l.usage(&UsageQuery { by, ..Default::default() }, now);
    let (attempts, stages, jobs, tenants) =
        (q(GroupBy::Attempt), q(GroupBy::Stage), q(GroupBy::Job), q(GroupBy::Tenant));
    assert_eq!(attempts.len(), 48);
    assert_eq!((stages.len(), jobs.len(), tenants.len()), (6, 3, 2));
    let all = sum(&attempts);
    assert_eq!(sum(&stages), all);
    assert_eq!(sum(&jobs), all);
    assert_eq!(sum(&tenants), all);
    // Computed independently: fuel 1000 + 7i over i in 0..48; 250 ms held each.
    assert_eq!(all.meter.fuel, (0..48).map(|i| 1_000 + i * 7).sum::<u64>());
    assert_eq!(all.slot_us, 48 * 250_000);
    assert_eq!(all.memory_byte_seconds, 48 * ((64 << 20) / 4));
    assert_eq!(all.ended(EndLabel::Finished), 12);
    assert_eq!(all.ended(EndLabel::HostError), 12);
    assert_eq!(all.ended(EndLabel::Killed), 12);
    assert_eq!(all.ended(EndLabel::OutOfFuel), 12);
    assert_eq!(all.meter.peak_memory, 4 << 20, "peaks take the largest");
    for j in &jobs {
        let id = j.job.unwrap();
        assert_eq!(j.totals, l.job_totals(id), "the running totals are the same fold");
        let rows: Vec<UsageRow> = attempts.iter().filter(|a| a.job == Some(id)).cloned().collect();
        assert_eq!(sum(&rows), j.totals, "{id}");
        assert_eq!(j.running, 1, "its driver is still open");
    }
    let alpha = tenants.iter().find(|t| &*t.tenant == "alpha").unwrap();
    assert_eq!((alpha.jobs, alpha.running), (2, 2));
    let alpha_jobs: Vec<UsageRow> = jobs.iter().filter(|j| &*j.tenant == "alpha").cloned().collect();
    assert_eq!(alpha.totals, sum(&alpha_jobs), "a tenant's totals are the sum over its jobs");
}

#[test]
fn filters_pick_tenant_job_and_end_time() {
    let (l, t0) = filled();
    let now = t0 + Duration::from_secs(1);
    let beta = l.usage(&UsageQuery { tenant: Some("beta".into()), ..Default::default() }, now);
    assert_eq!(beta.len(), 1);
    assert_eq!(beta[0].totals, l.job_totals(job(2)));
    let q = UsageQuery { job: Some(job(3)), by: GroupBy::Attempt, ..Default::default() };
    assert!(l.usage(&q, now).iter().all(|r| r.job == Some(job(3))));
    // Attempt i ends at t0 + i + 250 ms: from 260 ms on, attempts 10.. remain.
    let since = l.unix_time(t0 + Duration::from_millis(260));
    let until = l.unix_time(t0 + Duration::from_millis(270));
    let q = UsageQuery { since: Some(since), until: Some(until), by: GroupBy::Attempt, ..Default::default() };
    let rows = l.usage(&q, now);
    assert_eq!(rows.len(), 10, "ends at 260..=269 ms");
    assert!(l.usage(&UsageQuery { tenant: Some("nobody".into()), ..Default::default() }, now).is_empty());
}

#[test]
fn attempts_without_a_report_are_lost_or_refused_and_unlaunched_ones_leave_no_record() {
    let mut l = Ledger::new();
    let t0 = Instant::now();
    l.job_submitted(job(1), "alpha");
    let (a, b, c) = (key(1, 1, 0, 0, 0), key(1, 1, 0, 1, 0), key(1, 1, 0, 2, 0));
    l.started(a, agent(0), 1, t0);
    l.started(b, agent(1), 1, t0);
    l.started(c, agent(1), 1, t0);
    l.forget(&c);
    l.closed(b, EndLabel::Refused, t0);
    l.closed(b, EndLabel::Refused, t0);
    l.agent_lost(agent(0), t0);
    l.agent_lost(agent(1), t0);
    let labels: Vec<EndLabel> = l.records().iter().map(|r| r.end).collect();
    assert_eq!(labels, [EndLabel::Refused, EndLabel::Lost]);
    // A report after the master closed the attempt still counts what it burned.
    l.ended(a, EndLabel::Killed, &metering(1), t0);
    assert_eq!(l.job_totals(job(1)).attempts, 3);
    assert_eq!(l.job_totals(job(1)).meter.fuel, 1_007);
    // An attempt the master is killing ends `killed` unless it finishes first.
    let (d, e) = (key(1, 1, 0, 3, 0), key(1, 1, 0, 4, 0));
    l.started(d, agent(0), 1, t0);
    l.started(e, agent(0), 1, t0);
    l.killing(&d);
    l.killing(&e);
    l.ended(d, EndLabel::GuestError, &metering(2), t0);
    l.ended(e, EndLabel::Finished, &metering(2), t0);
    let labels: Vec<EndLabel> = l.records()[3..].iter().map(|r| r.end).collect();
    assert_eq!(labels, [EndLabel::Killed, EndLabel::Finished]);
    // A job the ledger never heard of (another run's, not taken back) is not billed.
    l.ended(key(9, 1, 0, 0, 0), EndLabel::Finished, &metering(1), t0);
    let foreign =
        TaskKey { action: ActionId { job: JobId { incarnation: Incarnation(1), seq: 1 }, seq: 1 }, ..a };
    l.ended(foreign, EndLabel::Finished, &metering(1), t0);
    assert_eq!(l.records().len(), 5);
}

#[test]
fn a_fuel_quota_counts_the_current_utc_window_and_caps_with_the_budget() {
    let mut l = Ledger::new();
    let t0 = Instant::now();
    l.job_submitted(job(1), "alpha");
    l.job_submitted(job(2), "beta");
    let quota = FuelQuota { amount: 5_000, period: Duration::from_secs(3600) };
    l.ended(key(1, 1, 0, 0, 0), EndLabel::Finished, &metering(0), t0);
    // Set after a record: the record of this window counts.
    l.set_fuel_quotas([("alpha".to_string(), quota)].into(), t0);
    let s = l.quota_state("alpha", t0).unwrap();
    assert_eq!(s.used, 1_000);
    let now_us = l.clock.unix_us(t0);
    let hour = 3_600_000_000;
    assert_eq!(s.resets_at, UNIX_EPOCH + Duration::from_micros((now_us / hour + 1) * hour));
    assert!(l.quota_state("beta", t0).is_none());
    assert_eq!(l.fuel_left(job(1), None, t0), Some(4_000));
    assert_eq!(l.fuel_left(job(1), Some(1_500), t0), Some(500), "the budget is the smaller cap");
    assert_eq!(l.fuel_left(job(2), None, t0), None);
    assert!(l.fuel_over(job(1), None, t0).is_none());
    l.ended(key(1, 1, 0, 1, 0), EndLabel::Finished, &TaskMetering { fuel: 4_000, ..Default::default() }, t0);
    let over = l.fuel_over(job(1), None, t0).unwrap();
    let text = over.to_string();
    assert!(
        text.contains("tenant `alpha`")
            && text.contains("5000 per 1h")
            && text.contains("5000 burned")
            && text.contains(&humantime::format_rfc3339_seconds(s.resets_at).to_string())
            && text.contains("[tenant.quota] fuel"),
        "{text}"
    );
    assert_eq!(l.quota_over("alpha", t0), Some(over));
    assert_eq!(l.fuel_left(job(1), None, t0), Some(1), "never 0: the task would not start");
    assert!(l.fuel_over(job(2), None, t0).is_none(), "another tenant is unaffected");
    // The next window starts from nothing.
    let later = t0 + Duration::from_secs(3600);
    assert_eq!(l.quota_state("alpha", later).unwrap().used, 0);
    assert!(l.quota_over("alpha", later).is_none());
    l.ended(key(1, 1, 0, 2, 0), EndLabel::Finished, &metering(0), later);
    assert_eq!(l.quota_state("alpha", later).unwrap().used, 1_000);
    let budget = l.fuel_over(job(2), Some(0), t0).unwrap();
    assert!(matches!(budget, FuelStop::Budget { budget: 0, used: 0 }), "{budget:?}");
    assert!(budget.to_string().contains("--fuel-budget"));
}
