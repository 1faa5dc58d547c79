//! `weft usage`: what tenants' task and driver attempts consumed, from the
//! master's usage ledger, as a table, JSON lines or CSV.

use crate::jobs::{ClientArgs, job_name, job_ref, jobs};
use anyhow::{Result, anyhow};
use clap::{Args, ValueEnum};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weft_core::metering::TaskMetering;
use weft_core::proto::v1::{self, UsageGroup, UsageRequest};

/// Options of `weft usage`.
#[derive(Args)]
pub struct UsageArgs {
    /// Only this tenant's usage (a tenant may name only itself; an admin
    /// sees every tenant's by default).
    #[arg(long)]
    tenant: Option<String>,
    /// Only this job's attempts.
    #[arg(long)]
    job: Option<String>,
    /// Only attempts that ended at or after TIME: RFC 3339
    /// (`2025-01-31T09:00:00Z`) or a span ago (`1h`, `2d`, `30m`).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<SystemTime>,
    /// Only attempts that ended before TIME (as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<SystemTime>,
    /// One row per tenant, job, or stage of each job's actions.
    #[arg(long, value_enum, default_value = "tenant")]
    by: By,
    /// One row per attempt (overrides --by): its ids, agent, times, end and metering.
    #[arg(long)]
    attempts: bool,
    /// Print CSV, with a header line, for spreadsheets.
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// How rows are summed.
#[derive(Clone, Copy, ValueEnum)]
enum By {
    Tenant,
    Job,
    Stage,
}

/// RFC 3339, or a span before now (`1h`, `2d`).
fn parse_time(s: &str) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    let span = humantime::parse_duration(s.trim().trim_end_matches("ago").trim()).map_err(|_| {
        format!("`{s}` is neither an RFC 3339 time (2025-01-31T09:00:00Z) nor a span ago (1h, 2d)")
    })?;
    SystemTime::now().checked_sub(span).ok_or_else(|| format!("`{s}` reaches before the epoch"))
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Every end label, in the ledger's order: the CSV's columns.
const ENDS: [&str; 12] = [
    "finished",
    "out_of_fuel",
    "deadline",
    "memory_limit",
    "output_limit",
    "guest_trap",
    "guest_error",
    "host_error",
    "killed",
    "fetch_failed",
    "lost",
    "refused",
];

fn metering(r: &v1::UsageRow) -> TaskMetering {
    r.metering.as_ref().map(Into::into).unwrap_or_default()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A row as flat fields (name, value), the same for JSON and CSV.
fn fields(r: &v1::UsageRow, attempts: bool) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::Value;
    let m = metering(r);
    let opt = |present: bool, v: Value| if present { v } else { Value::Null };
    let mut f = vec![
        ("tenant", Value::from(r.tenant.clone())),
        ("job", opt(r.job.is_some(), Value::from(job_name(r.job.as_ref())))),
        ("action", opt(r.action.is_some(), Value::from(r.action.as_ref().map_or(0, |a| a.seq)))),
        ("stage", opt(r.action.is_some(), Value::from(r.stage))),
    ];
    if attempts {
        let agent = r.agent.as_ref().map(|a| format!("agent-{:08x}-{}", a.incarnation, a.seq));
        f.extend([
            ("partition", Value::from(r.partition)),
            ("attempt", Value::from(r.attempt)),
            ("agent", agent.map_or(Value::Null, Value::from)),
            ("end", Value::from(r.end.clone())),
            ("start", Value::from(time(r.start_ms))),
            ("end_time", Value::from(time(r.end_ms))),
            ("task_memory", Value::from(r.memory_bytes)),
        ]);
    } else {
        f.extend([("jobs", Value::from(r.jobs)), ("running", Value::from(r.running))]);
    }
    f.push(("attempts", Value::from(r.attempts)));
    for end in ENDS {
        let n = r.by_end.iter().find(|c| c.end == end).map_or(0, |c| c.attempts);
        f.push((end, Value::from(n)));
    }
    let q = r.fuel_quota.as_ref();
    f.extend([
        ("fuel", Value::from(m.fuel)),
        ("peak_memory", Value::from(m.peak_memory)),
        ("peak_host_memory", Value::from(m.peak_host_memory)),
        ("wall_us", Value::from(micros(m.wall))),
        ("cpu_us", Value::from(micros(m.cpu))),
        ("instantiate_us", Value::from(micros(m.instantiate))),
        ("records_in", Value::from(m.records_in)),
        ("records_out", Value::from(m.records_out)),
        ("bytes_in", Value::from(m.bytes_in)),
        ("bytes_out", Value::from(m.bytes_out)),
        ("shuffle_written", Value::from(m.shuffle_bytes_written)),
        ("shuffle_read", Value::from(m.shuffle_bytes_read)),
        ("spill", Value::from(m.spill_bytes)),
        ("calls", Value::from(m.calls)),
        ("log_bytes", Value::from(m.log_bytes)),
        ("slot_us", Value::from(r.slot_us)),
        ("memory_byte_seconds", Value::from(r.memory_byte_seconds)),
        ("fuel_quota", q.map_or(Value::Null, |q| Value::from(q.amount))),
        ("fuel_quota_period_s", q.map_or(Value::Null, |q| Value::from(q.period_s))),
        ("fuel_quota_used", q.map_or(Value::Null, |q| Value::from(q.used))),
        ("fuel_quota_resets_at", q.map_or(Value::Null, |q| Value::from(time(q.resets_at_ms)))),
    ]);
    f
}

fn csv_cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) if s.contains([',', '"', '\n']) => {
            format!("\"{}\"", s.replace('"', "\"\""))
        }
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The table's line for a row.
fn line(r: &v1::UsageRow, attempts: bool) -> String {
    let m = metering(r);
    let who = match (&r.action, attempts) {
        (Some(a), true) => format!(
            "{} {}.{} stage {} part {} attempt {} on {}",
            r.tenant,
            job_name(r.job.as_ref()),
            a.seq,
            stage(r.stage),
            r.partition,
            r.attempt,
            r.agent.as_ref().map_or("-".into(), |a| format!("agent-{:08x}-{}", a.incarnation, a.seq)),
        ),
        (Some(a), false) => {
            format!("{} {}.{} stage {}", r.tenant, job_name(r.job.as_ref()), a.seq, stage(r.stage))
        }
        (None, _) if r.job.is_some() => format!("{} {}", r.tenant, job_name(r.job.as_ref())),
        (None, _) => r.tenant.clone(),
    };
    let ends: Vec<String> = r.by_end.iter().map(|c| format!("{} {}", c.attempts, c.end)).collect();
    let mut out = if attempts {
        format!("{who}: {} at {}", r.end, time(r.end_ms))
    } else {
        let jobs = if r.job.is_none() { format!("{} jobs, ", r.jobs) } else { String::new() };
        let running = if r.running > 0 { format!(", {} running", r.running) } else { String::new() };
        format!("{who}: {jobs}{} attempts ({}){running}", r.attempts, ends.join(", "))
    };
    out.push_str(&format!(
        "\n  fuel {}; cpu {:?}; {:.3} slot-s; {:.3} GiB-s; in {} records, {}; out {} records, {}; shuffle {} written, {} read",
        m.fuel,
        m.cpu,
        r.slot_us as f64 / 1e6,
        r.memory_byte_seconds as f64 / f64::from(1u32 << 30),
        m.records_in,
        bytesize::ByteSize(m.bytes_in),
        m.records_out,
        bytesize::ByteSize(m.bytes_out),
        bytesize::ByteSize(m.shuffle_bytes_written),
        bytesize::ByteSize(m.shuffle_bytes_read),
    ));
    if let Some(q) = &r.fuel_quota {
        out.push_str(&format!(
            "\n  fuel quota: {} of {} per {} used; resets at {}",
            q.used,
            q.amount,
            humantime::format_duration(Duration::from_secs(q.period_s)),
            time(q.resets_at_ms)
        ));
    }
    out
}

fn stage(s: u32) -> String {
    if s == u32::MAX { "driver".into() } else { s.to_string() }
}

/// `weft usage`.
pub async fn usage(a: UsageArgs) -> Result<u8> {
    let mut c = jobs(&a.client).await?;
    let by = match (a.attempts, a.by) {
        (true, _) => UsageGroup::Attempt,
        (false, By::Tenant) => UsageGroup::Tenant,
        (false, By::Job) => UsageGroup::Job,
        (false, By::Stage) => UsageGroup::Stage,
    };
    let req = UsageRequest {
        tenant: a.tenant.clone().unwrap_or_default(),
        job: a.job.as_deref().map(job_ref).transpose()?,
        since_ms: a.since.map_or(0, millis),
        until_ms: a.until.map_or(0, millis),
        by: by as i32,
    };
    let mut stream = c.usage(req).await.map_err(|s| anyhow!("{}", s.message()))?.into_inner();
    let mut rows = Vec::new();
    while let Some(r) = stream.message().await.map_err(|s| anyhow!("{}", s.message()))? {
        rows.push(r);
    }
    let mut out = String::new();
    if a.client.json {
        for r in &rows {
            let map: serde_json::Map<String, serde_json::Value> =
                fields(r, a.attempts).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            out += &format!("{}\n", serde_json::Value::Object(map));
        }
    } else if a.csv {
        let names: Vec<&str> = fields(&v1::UsageRow::default(), a.attempts).iter().map(|(k, _)| *k).collect();
        out += &format!("{}\n", names.join(","));
        for r in &rows {
            let cells: Vec<String> = fields(r, a.attempts).iter().map(|(_, v)| csv_cell(v)).collect();
            out += &format!("{}\n", cells.join(","));
        }
    } else if rows.is_empty() {
        out += "no usage recorded\n";
    } else {
        for r in &rows {
            out += &format!("{}\n", line(r, a.attempts));
        }
    }
    // A reader that stops early (`| head`) is not an error.
    match std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_or_spans_ago() {
        let t = parse_time("2025-01-31T09:00:00Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 1_738_314_000);
        for (span, secs) in [("1h", 3600), ("2d", 172_800), ("30m ago", 1800)] {
            let ago = SystemTime::now().duration_since(parse_time(span).unwrap()).unwrap().as_secs();
            assert!((secs - 1..secs + 5).contains(&ago), "{span}: {ago}");
        }
        let err = parse_time("yesterday").unwrap_err();
        assert!(err.contains("RFC 3339") && err.contains("1h"), "{err}");
    }

    #[test]
    fn csv_cells_are_quoted_when_they_must_be() {
        assert_eq!(csv_cell(&serde_json::Value::from("a,b")), "\"a,b\"");
        assert_eq!(csv_cell(&serde_json::Value::from(7)), "7");
        assert_eq!(csv_cell(&serde_json::Value::Null), "");
    }
}
