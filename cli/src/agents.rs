//! `weft agents`, `weft reserve`, `weft unreserve` (admins only): the live
//! agents with what they offer and reserve, and dynamic reservations of an
//! agent's slots and memory for a role. See `docs/operators-guide.md`
//! ("Roles and reservations").

use crate::jobs::{ClientArgs, jobs};
use anyhow::Result;
use bytesize::ByteSize;
use clap::Args;
use weft_agent::node::Reserve;
use weft_core::proto::v1::{self, AgentsRequest, ReserveRequest, UnreserveRequest};

/// Options of `weft agents`.
#[derive(Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// Options of `weft reserve`.
#[derive(Args)]
pub struct ReserveArgs {
    /// The agent: its id or address (`weft agents` lists them).
    agent: String,
    /// What to reserve, e.g. `batch:slots=2,memory=4GiB`; again for the same
    /// role replaces the earlier reservation.
    #[arg(value_name = "ROLE:slots=N,memory=SIZE")]
    reservation: Reserve,
    #[command(flatten)]
    client: ClientArgs,
}

/// Options of `weft unreserve`.
#[derive(Args)]
pub struct UnreserveArgs {
    /// The agent: its id or address.
    agent: String,
    /// The role whose dynamic reservation goes (one made by the agent's
    /// `--reserve` stays).
    role: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// An agent id as people read it.
fn name(agent: Option<&v1::AgentRef>) -> String {
    agent
        .and_then(|a| weft_core::ids::AgentId::try_from(a).ok())
        .map_or_else(|| "?".into(), |a| a.to_string())
}

fn describe(r: &v1::Reservation) -> String {
    let how = if r.dynamic { "" } else { " (static)" };
    format!("{}: {} slots, {}{how}", r.role, r.slots, ByteSize::b(r.memory_bytes))
}

pub async fn agents(a: AgentsArgs) -> Result<u8> {
    let mut c = jobs(&a.client).await?;
    let r = c.agents(AgentsRequest {}).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?.into_inner();
    if a.client.json() {
        let v: Vec<_> = r
            .agents
            .iter()
            .map(|s| {
                let res = s.resources.unwrap_or_default();
                let m = s.memory.unwrap_or_default();
                serde_json::json!({
                    "agent": name(s.agent.as_ref()),
                    "address": s.address, "slots": res.slots, "queue": res.queue, "memory_bytes": res.memory_bytes,
                    "running": s.running, "drivers": s.drivers, "excluded_for_ms": s.excluded_for_ms,
                    "excluded_why": s.excluded_why,
                    "memory": {
                        "budget_bytes": m.budget_bytes, "held_bytes": m.held_bytes,
                        "resident_bytes": m.resident_bytes, "peak_resident_bytes": m.peak_resident_bytes,
                        "cached_memory_bytes": m.cached_memory_bytes, "cached_disk_bytes": m.cached_disk_bytes,
                    },
                    "reservations": s.reservations.iter().map(|r| serde_json::json!({
                        "role": r.role, "slots": r.slots, "memory_bytes": r.memory_bytes, "dynamic": r.dynamic,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(0);
    }
    if r.agents.is_empty() {
        println!("no live agents");
    }
    for s in &r.agents {
        let res = s.resources.unwrap_or_default();
        println!(
            "{} at {}: {} slots (+{} queued), {}; {} tasks and {} drivers running",
            name(s.agent.as_ref()),
            s.address,
            res.slots,
            res.queue,
            ByteSize::b(res.memory_bytes),
            s.running,
            s.drivers
        );
        if let Some(m) = s.memory.filter(|m| m.budget_bytes > 0) {
            println!(
                "    memory: tasks and persisted partitions hold {} of {}; resident {} (peak {})",
                ByteSize::b(m.held_bytes),
                ByteSize::b(m.budget_bytes),
                ByteSize::b(m.resident_bytes),
                ByteSize::b(m.peak_resident_bytes)
            );
            if m.cached_memory_bytes + m.cached_disk_bytes > 0 {
                println!(
                    "    persisted partitions: {} in memory, {} on disk",
                    ByteSize::b(m.cached_memory_bytes),
                    ByteSize::b(m.cached_disk_bytes)
                );
            }
        }
        for r in &s.reservations {
            println!("    reserved for {}", describe(r));
        }
        if s.excluded_for_ms > 0 {
            let why = if s.excluded_why == "slow" {
                "its tasks kept being out-run by their speculative copies (a slow or overloaded machine)"
            } else {
                "its tasks kept failing for the host's reasons (see its log)"
            };
            println!(
                "    EXCLUDED for {} more: {why}",
                humantime::format_duration(std::time::Duration::from_secs(s.excluded_for_ms.div_ceil(1000)))
            );
        }
    }
    Ok(0)
}

pub async fn reserve(a: ReserveArgs) -> Result<u8> {
    let mut c = jobs(&a.client).await?;
    let r = &a.reservation;
    let reservation = v1::Reservation {
        role: r.role.clone(),
        slots: r.slots,
        memory_bytes: r.memory.as_u64(),
        dynamic: true,
    };
    c.reserve(ReserveRequest { agent: a.agent.clone(), reservation: Some(reservation.clone()) })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    println!("{} reserves {}", a.agent, describe(&reservation));
    Ok(0)
}

pub async fn unreserve(a: UnreserveArgs) -> Result<u8> {
    let mut c = jobs(&a.client).await?;
    c.unreserve(UnreserveRequest { agent: a.agent.clone(), role: a.role.clone() })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    println!("{} no longer reserves anything for {} through the API", a.agent, a.role);
    Ok(0)
}
