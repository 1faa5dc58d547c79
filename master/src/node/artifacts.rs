//! Who may use the master's `Artifacts` service: agents with the cluster
//! token read and store anything (components, driver traffic); a tenant's
//! client stores artifacts and reads back only those it stored or submitted
//! (an admin reads all). Which tenant holds which artifact is kept in memory:
//! after a master restart a tenant pushes its artifacts again (submitting a
//! local file does).

use super::TenantsCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tonic::Status;
use tonic::metadata::MetadataMap;
use weft_core::artifact::{ArtifactGate, Caller, Digest};
use weft_core::proto::auth;
use weft_core::token::TokenHash;

/// Which tenants hold each artifact.
#[derive(Clone, Default)]
pub(crate) struct Owners(Arc<Mutex<HashMap<Digest, Vec<Arc<str>>>>>);

impl Owners {
    /// `tenant` holds `digest`.
    pub(crate) fn add(&self, digest: Digest, tenant: &Arc<str>) {
        let mut owners = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let list = owners.entry(digest).or_default();
        if !list.iter().any(|t| t == tenant) {
            list.push(Arc::clone(tenant));
        }
    }

    /// Whether `tenant` holds `digest`.
    pub(crate) fn has(&self, digest: &Digest, tenant: &str) -> bool {
        let owners = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        owners.get(digest).is_some_and(|list| list.iter().any(|t| **t == *tenant))
    }
}

/// The master's [`ArtifactGate`].
pub(crate) struct MasterGate {
    cluster: TokenHash,
    tenants: Arc<TenantsCell>,
    owners: Owners,
}

impl MasterGate {
    pub(crate) fn new(cluster_token: &str, tenants: Arc<TenantsCell>, owners: Owners) -> Self {
        Self { cluster: TokenHash::of(cluster_token), tenants, owners }
    }
}

impl ArtifactGate for MasterGate {
    fn caller(&self, md: &MetadataMap) -> Result<Caller, Status> {
        auth::check_protocol(md, "caller")?;
        let Some(token) = auth::bearer(md) else {
            return Err(Status::unauthenticated(
                "the request carries no token: clients pass --token (or WEFT_TOKEN), agents --cluster-token",
            ));
        };
        if self.cluster.matches(token) {
            return Ok(Caller::Cluster);
        }
        match self.tenants.get().identify(token) {
            Some(c) => Ok(Caller::Tenant { name: Arc::clone(&c.tenant), admin: c.admin }),
            None => Err(Status::unauthenticated(
                "the master knows no such token: check --token (or WEFT_TOKEN), or an agent's --cluster-token",
            )),
        }
    }

    fn may_read(&self, caller: &Caller, digest: &Digest) -> bool {
        match caller {
            Caller::Cluster | Caller::Tenant { admin: true, .. } => true,
            Caller::Tenant { name, admin: false } => self.owners.has(digest, name),
        }
    }

    fn stored(&self, caller: &Caller, digest: &Digest) {
        if let Caller::Tenant { name, .. } = caller {
            self.owners.add(*digest, name);
        }
    }
}
