//! `weft tenants`: what each tenant holds of the cluster now (task places,
//! memory, weighted dominant share, quota) and has held since the master
//! started. A tenant sees its own row; an admin sees every tenant. See
//! `docs/operators-guide.md` ("Tenants and fair sharing").

use crate::jobs::{ClientArgs, jobs};
use anyhow::Result;
use bytesize::ByteSize;
use clap::Args;
use weft_core::proto::v1::{TenantHolding, TenantsRequest};

/// Options of `weft tenants`.
#[derive(Args)]
pub struct TenantsArgs {
    #[command(flatten)]
    client: ClientArgs,
}

fn json(h: &TenantHolding) -> serde_json::Value {
    serde_json::json!({
        "tenant": h.tenant, "weight": h.weight, "jobs": h.jobs, "drivers": h.drivers,
        "places": h.places, "memory_bytes": h.memory_bytes, "share": h.share,
        "place_seconds": h.place_seconds, "memory_byte_seconds": h.memory_byte_seconds,
        "guarantee": { "places": h.guarantee_places, "memory_bytes": h.guarantee_memory_bytes },
        "limit": { "places": h.limit_places, "memory_bytes": h.limit_memory_bytes },
    })
}

/// `places/memory`, or `-` for a quota without either.
fn amount(places: u64, memory: u64) -> String {
    match (places, memory) {
        (0, 0) => "-".into(),
        (p, 0) => format!("{p} places"),
        (0, m) => ByteSize::b(m).to_string(),
        (p, m) => format!("{p} places, {}", ByteSize::b(m)),
    }
}

pub async fn tenants(a: TenantsArgs) -> Result<u8> {
    let mut c = jobs(&a.client).await?;
    let r = c.tenants(TenantsRequest {}).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?.into_inner();
    if a.client.json() {
        let v = serde_json::json!({
            "cluster": { "places": r.cluster_places, "memory_bytes": r.cluster_memory_bytes },
            "tenants": r.tenants.iter().map(json).collect::<Vec<_>>(),
        });
        println!("{v}");
        return Ok(0);
    }
    println!("cluster: {} task places, {} of memory", r.cluster_places, ByteSize::b(r.cluster_memory_bytes));
    println!(
        "{:<16} {:>6} {:>5} {:>7} {:>7} {:>10} {:>6}  {:<24} {:<24}",
        "TENANT", "WEIGHT", "JOBS", "DRIVERS", "PLACES", "MEMORY", "SHARE", "GUARANTEE", "LIMIT"
    );
    for h in &r.tenants {
        println!(
            "{:<16} {:>6} {:>5} {:>7} {:>7} {:>10} {:>5.1}%  {:<24} {:<24}",
            h.tenant,
            h.weight,
            h.jobs,
            h.drivers,
            h.places,
            ByteSize::b(h.memory_bytes).to_string(),
            h.share * 100.0,
            amount(h.guarantee_places, h.guarantee_memory_bytes),
            amount(h.limit_places, h.limit_memory_bytes),
        );
    }
    Ok(0)
}
