//! Who may use the master's `Artifacts` service: agents with the cluster
//! token read and store anything (components, driver traffic); a tenant's
//! client stores artifacts and reads back only those it stored or submitted,
//! or that an admin pushed as public (an admin reads all). Which tenant holds which artifact is kept in memory:
//! after a master restart a tenant pushes its artifacts again (submitting a
//! local file does).

use super::TenantsCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use tonic::Status;
use tonic::metadata::MetadataMap;
use weft_core::artifact::{ArtifactGate, Caller, Digest};
use weft_core::proto::auth;
use weft_core::token::TokenHash;

/// Which tenants hold each artifact, and which an admin made public.
#[derive(Clone, Default)]
pub(crate) struct Owners(Arc<Mutex<Held>>);

#[derive(Default)]
struct Held {
    by_digest: HashMap<Digest, Vec<Arc<str>>>,
    public: HashSet<Digest>,
}

impl Owners {
    /// `tenant` holds `digest`.
    pub(crate) fn add(&self, digest: Digest, tenant: &Arc<str>) {
        let mut held = self.lock();
        let list = held.by_digest.entry(digest).or_default();
        if !list.iter().any(|t| t == tenant) {
            list.push(Arc::clone(tenant));
        }
    }

    /// Every tenant may read `digest`.
    pub(crate) fn publish(&self, digest: Digest) {
        self.lock().public.insert(digest);
    }

    /// Whether `tenant` may read (and submit) `digest`: it holds it, or the
    /// artifact is public.
    pub(crate) fn has(&self, digest: &Digest, tenant: &str) -> bool {
        let held = self.lock();
        held.public.contains(digest)
            || held.by_digest.get(digest).is_some_and(|list| list.iter().any(|t| **t == *tenant))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
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

    fn may_publish(&self, caller: &Caller) -> Result<(), Status> {
        match caller {
            Caller::Tenant { admin: true, .. } => Ok(()),
            Caller::Tenant { name, admin: false } => Err(Status::permission_denied(format!(
                "tenant `{name}` may not make artifacts public: every tenant could then run them; only an \
                 admin's token may (`admin = true` in the tenants file); push without --public"
            ))),
            Caller::Cluster => Err(Status::permission_denied(
                "the cluster token does not make artifacts public: push with an admin tenant's --token",
            )),
        }
    }

    fn stored(&self, caller: &Caller, digest: &Digest, public: bool) {
        if let Caller::Tenant { name, .. } = caller {
            self.owners.add(*digest, name);
        }
        if public {
            self.owners.publish(*digest);
        }
    }
}
