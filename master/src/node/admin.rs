//! The `Jobs` service's cluster views and operator calls: what each tenant
//! holds (`weft tenants`), the agents (`weft agents`), and dynamic
//! reservations (`weft reserve`, `weft unreserve`; admins only). See
//! `docs/operators-guide.md` ("Roles and reservations").

use super::Shared;
use crate::free::Demand;
use crate::state::{Reservation, TenantHolding};
use crate::tenants::Client;
use std::time::Instant;
use tonic::{Request, Response, Status};
use weft_core::proto::v1;

impl Shared {
    fn admin(&self, md: &tonic::metadata::MetadataMap, what: &str) -> Result<Client, Status> {
        let who = self.client(md)?;
        if !who.admin {
            return Err(Status::permission_denied(format!(
                "only an admin tenant may {what}: ask your operator, whose token is an admin's"
            )));
        }
        Ok(who)
    }

    pub(super) async fn tenants_view(
        &self,
        request: Request<v1::TenantsRequest>,
    ) -> Result<Response<v1::TenantsResponse>, Status> {
        let who = self.client(request.metadata())?;
        let (mut holdings, (places, memory)) = self.core.call(|c| c.holdings(Instant::now())).await?;
        // Configured tenants that have run nothing yet hold nothing.
        let tenants = self.tenants.get();
        for name in tenants.names() {
            if !holdings.iter().any(|h| h.tenant == name) {
                let s = tenants.sharing().tenants.get(name).cloned().unwrap_or_default();
                let (weight, quota) = (s.weight, s.quota);
                holdings.push(TenantHolding {
                    tenant: name.to_string(),
                    weight,
                    quota,
                    ..Default::default()
                });
            }
        }
        holdings.retain(|h| who.can_see(&h.tenant));
        holdings.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(Response::new(v1::TenantsResponse {
            cluster_places: places,
            cluster_memory_bytes: memory,
            tenants: holdings.iter().map(holding).collect(),
        }))
    }

    pub(super) async fn agents_view(
        &self,
        request: Request<v1::AgentsRequest>,
    ) -> Result<Response<v1::AgentsResponse>, Status> {
        self.admin(request.metadata(), "list the agents")?;
        let views = self.core.call(|c| c.agent_views()).await?;
        let now = std::time::Instant::now();
        let agents = views
            .into_iter()
            .map(|(a, reservations)| v1::AgentStatus {
                agent: Some(a.id.into()),
                address: a.address,
                resources: Some(v1::Resources {
                    slots: a.resources.slots,
                    memory_bytes: a.resources.memory,
                    queue: a.resources.queue,
                }),
                reservations: reservations.iter().map(|(role, r)| reservation(role, r)).collect(),
                running: a.running,
                drivers: a.drivers,
                excluded_for_ms: a.excluded_until.map_or(0, |t| {
                    u64::try_from(t.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX)
                }),
                excluded_why: match a.excluded_until {
                    Some(t) if t > now => a.excluded_why.name().into(),
                    _ => String::new(),
                },
                memory: Some(v1::AgentMemory {
                    budget_bytes: a.resources.memory,
                    held_bytes: a.memory.held,
                    resident_bytes: a.memory.resident,
                    peak_resident_bytes: a.memory.peak_resident,
                    cached_memory_bytes: a.memory.cached_memory,
                    cached_disk_bytes: a.memory.cached_disk,
                }),
            })
            .collect();
        Ok(Response::new(v1::AgentsResponse { agents }))
    }

    pub(super) async fn reserve_rpc(
        &self,
        request: Request<v1::ReserveRequest>,
    ) -> Result<Response<v1::ReserveResponse>, Status> {
        self.admin(request.metadata(), "reserve resources")?;
        let req = request.into_inner();
        let r = req.reservation.unwrap_or_default();
        let amount = Demand { places: r.slots, memory: r.memory_bytes };
        if amount == Demand::default() {
            return Err(Status::invalid_argument("a reservation of nothing: give slots, memory or both"));
        }
        let role = r.role.clone();
        self.core
            .call(move |c| {
                let agent = c.find_agent(&req.agent).ok_or_else(|| no_agent(&req.agent))?;
                c.reserve(agent, &role, amount, Instant::now()).map_err(Status::failed_precondition)
            })
            .await??;
        tracing::info!(role = %r.role, slots = r.slots, memory = r.memory_bytes, "dynamic reservation made");
        Ok(Response::new(v1::ReserveResponse {}))
    }

    pub(super) async fn unreserve_rpc(
        &self,
        request: Request<v1::UnreserveRequest>,
    ) -> Result<Response<v1::ReserveResponse>, Status> {
        self.admin(request.metadata(), "drop reservations")?;
        let req = request.into_inner();
        self.core
            .call(move |c| {
                let agent = c.find_agent(&req.agent).ok_or_else(|| no_agent(&req.agent))?;
                c.unreserve(agent, &req.role, Instant::now()).map_err(Status::failed_precondition)
            })
            .await??;
        Ok(Response::new(v1::ReserveResponse {}))
    }
}

fn no_agent(name: &str) -> Status {
    Status::not_found(format!("no live agent `{name}`: `weft agents` lists their ids and addresses"))
}

fn reservation(role: &str, r: &Reservation) -> v1::Reservation {
    v1::Reservation {
        role: role.to_string(),
        slots: r.amount.places,
        memory_bytes: r.amount.memory,
        dynamic: r.dynamic,
    }
}

fn holding(h: &TenantHolding) -> v1::TenantHolding {
    let limit = h.quota.limit.unwrap_or_default();
    v1::TenantHolding {
        tenant: h.tenant.clone(),
        weight: h.weight,
        places: h.held.places,
        memory_bytes: h.held.memory,
        share: h.share,
        place_seconds: h.place_seconds,
        memory_byte_seconds: h.memory_byte_seconds,
        guarantee_places: h.quota.guarantee.places,
        guarantee_memory_bytes: h.quota.guarantee.memory,
        limit_places: limit.places,
        limit_memory_bytes: limit.memory,
        jobs: h.jobs,
        drivers: h.drivers,
    }
}
