//! Tenants: who may use the master's client API, known by the hash of the
//! token they present. A request's tenant comes from its token, never from
//! the request; an admin tenant sees every job. Configured in a TOML file
//! (reloaded when it changes) and by `--client-token`; see
//! `docs/operators-guide.md` (Tenants and tokens).

use crate::ledger::FuelQuota;
use crate::state::{Amount, Quota, Sharing, TenantSharing, UNRESERVED};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weft_core::access::{Grant, Policy};
use weft_core::token::{self, TokenError, TokenHash};

/// The tenants file.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantsFile {
    /// Every tenant.
    #[serde(default)]
    pub tenant: Vec<TenantConfig>,
    /// Roles' quotas (`[role.NAME.quota]`), over all the role's tenants.
    #[serde(default)]
    pub role: std::collections::BTreeMap<String, RoleConfig>,
}

/// One role in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Its quota: what its tenants hold first together, and never pass.
    #[serde(default)]
    pub quota: QuotaConfig,
}

/// One tenant in the file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Its name: letters, digits, `.`, `_` and `-`.
    pub name: String,
    /// The hashes of its tokens (`blake3:<hex>`, from `weft token hash`);
    /// several, so a token can be rotated.
    pub tokens: Vec<TokenHash>,
    /// Whether it sees and may kill every tenant's jobs.
    #[serde(default)]
    pub admin: bool,
    /// Its weight in Dominant Resource Fairness: a tenant of weight 2 is
    /// offered twice the share of one of weight 1 (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// The data its jobs may read and write (`[[tenant.grant]]`: `root`,
    /// `access`); nothing else.
    #[serde(default)]
    pub grant: Vec<Grant>,
    /// Its quota (`[tenant.quota]`): what it holds before shares are
    /// compared (`guarantee`) and what it never passes (`limit`).
    #[serde(default)]
    pub quota: QuotaConfig,
    /// Its role: resources agents reserve for the role are offered to its
    /// tenants first (`*`, the default: none).
    #[serde(default = "unreserved")]
    pub role: String,
}

fn unreserved() -> String {
    UNRESERVED.into()
}

/// A tenant's quota as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Held first, while the tenant has work.
    #[serde(default)]
    pub guarantee: Option<AmountConfig>,
    /// Never exceeded.
    #[serde(default)]
    pub limit: Option<AmountConfig>,
    /// Fuel its attempts may burn per fixed UTC window (`fuel = { amount =
    /// N, period = "1h" }`).
    #[serde(default)]
    pub fuel: Option<FuelQuotaConfig>,
}

/// A fuel quota as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FuelQuotaConfig {
    /// Fuel per window.
    pub amount: u64,
    /// The window, e.g. `"1h"` or `"1d"` (whole seconds, at least one).
    #[serde(with = "weft_core::metering::humantime_serde_compat")]
    pub period: std::time::Duration,
}

/// Task slots (tasks and drivers) and memory (of their limits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmountConfig {
    /// Task slots.
    #[serde(default)]
    pub slots: Option<u64>,
    /// Memory, e.g. `"16GiB"`.
    #[serde(default)]
    pub memory: Option<bytesize::ByteSize>,
}

impl QuotaConfig {
    /// The quota, checked: no guarantee over its limit.
    fn quota(&self, whose: &str) -> Result<Quota, String> {
        let quota = Quota {
            guarantee: self.guarantee.map(AmountConfig::amount).unwrap_or_default(),
            limit: self.limit.map(AmountConfig::amount),
        };
        if let Some(limit) = quota.limit {
            let over = |g: u64, l: u64| l > 0 && g > l;
            if over(quota.guarantee.places, limit.places) || over(quota.guarantee.memory, limit.memory) {
                return Err(format!("{whose} is guaranteed more than its limit"));
            }
        }
        Ok(quota)
    }
}

impl AmountConfig {
    fn amount(self) -> Amount {
        Amount { places: self.slots.unwrap_or(0), memory: self.memory.map_or(0, |m| m.as_u64()) }
    }
}

fn one() -> f64 {
    1.0
}

/// The caller of a client RPC, as its token identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its tenant.
    pub tenant: Arc<str>,
    /// Whether it sees every tenant's jobs.
    pub admin: bool,
}

impl Client {
    /// Whether it may see (and kill) a job of `tenant`.
    pub fn can_see(&self, tenant: &str) -> bool {
        self.admin || *self.tenant == *tenant
    }
}

/// Whether `name` is 1-64 letters, digits, `.`, `_` or `-`.
fn well_formed(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// The tenant every job belongs to when a master has only a client token.
pub const DEFAULT_TENANT: &str = "default";

/// Where tenants come from: a file, plus single tokens given on the command
/// line (each an admin of [`DEFAULT_TENANT`]).
#[derive(Debug, Clone, Default)]
pub struct TenantsSource {
    /// The tenants file, if any.
    pub file: Option<PathBuf>,
    /// Plain client tokens of the default (admin) tenant.
    pub client_tokens: Vec<String>,
    /// The default tenant's grants.
    pub default_grants: Vec<Grant>,
    /// Directories no job may reach under any grant (the master's own).
    pub protected: Vec<PathBuf>,
}

impl TenantsSource {
    /// Read the file (if any) and build the table.
    ///
    /// # Errors
    /// A [`TenantsError`] naming the file and what is wrong in it.
    pub fn load(&self) -> Result<Tenants, TenantsError> {
        let (mut tenants, roles) = match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| TenantsError::Read { path: path.clone(), reason: e.to_string() })?;
                let file: TenantsFile = toml::from_str(&text)
                    .map_err(|e| TenantsError::Parse { path: path.clone(), reason: e.to_string() })?;
                (file.tenant, file.role)
            }
            None => Default::default(),
        };
        if !self.client_tokens.is_empty() {
            let mut tokens = Vec::new();
            for t in &self.client_tokens {
                token::check_strength(t)
                    .map_err(|e| TenantsError::Token { what: "--client-token", source: e })?;
                tokens.push(TokenHash::of(t));
            }
            tenants.push(TenantConfig {
                name: DEFAULT_TENANT.into(),
                tokens,
                admin: true,
                weight: 1.0,
                grant: self.default_grants.clone(),
                quota: QuotaConfig::default(),
                role: unreserved(),
            });
        }
        let mut protected = self.protected.clone();
        protected.extend(self.file.clone());
        Tenants::new(tenants, &roles, &protected).map_err(|reason| TenantsError::Invalid {
            path: self.file.clone().unwrap_or_else(|| PathBuf::from("--client-token")),
            reason,
        })
    }

    /// Whether any tenant is configured at all.
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.client_tokens.is_empty()
    }
}

/// The tenants, ready to identify callers.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    by_token: HashMap<TokenHash, Client>,
    names: Vec<Arc<str>>,
    policies: HashMap<Arc<str>, Arc<Policy>>,
    sharing: Sharing,
    fuel_quotas: HashMap<String, FuelQuota>,
}

impl Tenants {
    /// The table of `tenants`, checked: names well formed and distinct, every
    /// tenant with a token, no token shared by two tenants, grants that
    /// parse. No job reaches `protected` under any grant.
    ///
    /// # Errors
    /// What is wrong, naming the tenant.
    pub fn new(
        tenants: Vec<TenantConfig>,
        roles: &std::collections::BTreeMap<String, RoleConfig>,
        protected: &[PathBuf],
    ) -> Result<Self, String> {
        let mut by_token = HashMap::new();
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut policies = HashMap::new();
        let mut sharing = Sharing::default();
        for (name, role) in roles {
            if !well_formed(name) || name == UNRESERVED {
                return Err(format!(
                    "role name `{}` is not 1-64 letters, digits, `.`, `_` or `-`",
                    name.escape_debug()
                ));
            }
            sharing.roles.insert(name.clone(), role.quota.quota(&format!("role `{name}`"))?);
        }
        let mut fuel_quotas = HashMap::new();
        for t in tenants {
            if !well_formed(&t.name) {
                return Err(format!(
                    "tenant name `{}` is not 1-64 letters, digits, `.`, `_` or `-`",
                    t.name.escape_debug()
                ));
            }
            if names.iter().any(|n| **n == *t.name) {
                return Err(format!("tenant `{}` is listed twice", t.name));
            }
            if t.tokens.is_empty() {
                return Err(format!("tenant `{}` has no tokens: add one from `weft token new`", t.name));
            }
            if !(t.weight.is_finite() && t.weight > 0.0) {
                return Err(format!(
                    "tenant `{}` has weight {}: a weight is a number above 0",
                    t.name, t.weight
                ));
            }
            if t.role != UNRESERVED && !well_formed(&t.role) {
                return Err(format!(
                    "tenant `{}` has role `{}`: a role is 1-64 letters, digits, `.`, `_` or `-`, or `*`",
                    t.name,
                    t.role.escape_debug()
                ));
            }
            let quota = t.quota.quota(&format!("tenant `{}`", t.name))?;
            sharing
                .tenants
                .insert(t.name.clone(), TenantSharing { weight: t.weight, quota, role: t.role.clone() });
            if let Some(f) = t.quota.fuel {
                if f.amount == 0 || f.period.as_secs() == 0 || f.period.subsec_nanos() != 0 {
                    return Err(format!(
                        "tenant `{}` has a fuel quota of {} per {}: give an amount above 0 and a period of \
                         whole seconds, e.g. fuel = {{ amount = 1000000000000, period = \"1d\" }}",
                        t.name,
                        f.amount,
                        humantime::format_duration(f.period)
                    ));
                }
                fuel_quotas.insert(t.name.clone(), FuelQuota { amount: f.amount, period: f.period });
            }
            let policy = Policy::new(&t.grant).map_err(|e| format!("tenant `{}`: {e}", t.name))?;
            let name: Arc<str> = t.name.into();
            policies.insert(Arc::clone(&name), Arc::new(policy.deny(protected.iter().cloned())));
            for hash in t.tokens {
                let client = Client { tenant: Arc::clone(&name), admin: t.admin };
                if let Some(other) = by_token.insert(hash, client) {
                    return Err(format!("tenants `{}` and `{name}` share a token", other.tenant));
                }
            }
            names.push(name);
        }
        Ok(Self { by_token, names, policies, sharing, fuel_quotas })
    }

    /// Each tenant's fuel quota (tenants without one are not listed).
    pub fn fuel_quotas(&self) -> &HashMap<String, FuelQuota> {
        &self.fuel_quotas
    }

    /// How the tenants share the cluster: weights, quotas, roles.
    pub fn sharing(&self) -> &Sharing {
        &self.sharing
    }

    /// What the jobs of `tenant` may read and write (nothing, for a tenant
    /// no longer configured).
    pub fn policy(&self, tenant: &str) -> Arc<Policy> {
        self.policies.get(tenant).cloned().unwrap_or_default()
    }

    /// Who presents `token`, if anyone.
    pub fn identify(&self, token: &str) -> Option<&Client> {
        // The lookup is by the token's hash, whose equality is constant-time.
        self.by_token.get(&TokenHash::of(token))
    }

    /// The tenants' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// Whether no tenant can call.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

/// Why the tenants cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    /// The file cannot be read.
    #[error("reading the tenants file {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not a valid tenants file.
    #[error("the tenants file {} is not valid: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The tenants disagree.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file (or the flag).
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A plain token is unusable.
    #[error("{what}: {source}")]
    Token {
        /// Where it was given.
        what: &'static str,
        /// Why.
        source: TokenError,
    },
}

/// The modification time of `path`, to notice edits.
pub(crate) fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use weft_core::access::Access;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_token_identifies_its_tenant_and_only_admins_see_others() {
        let (a, b, root) = (
            "weft_t_aaaaaaaaaaaaaaaaaaaaaaaa",
            "weft_t_bbbbbbbbbbbbbbbbbbbbbbbb",
            "weft_t_root-root-root-root-root",
        );
        let text = format!(
            "[[tenant]]\nname = \"analytics\"\ntokens = [\"{}\", \"{}\"]\n\n[[tenant]]\nname = \"ops\"\ntokens = [\"{}\"]\nadmin = true\nrole = \"batch\"\n[tenant.quota]\nlimit = {{ slots = 4, memory = \"8GiB\" }}\nfuel = {{ amount = 5000, period = \"1h\" }}\n\n[role.batch.quota]\nguarantee = {{ slots = 2 }}\n",
            TokenHash::of(a),
            TokenHash::of(b),
            TokenHash::of(root)
        );
        let (_dir, path) = write(&text);
        let tenants = TenantsSource { file: Some(path), ..Default::default() }.load().unwrap();
        let who = tenants.identify(b).unwrap();
        assert_eq!((&*who.tenant, who.admin), ("analytics", false));
        assert!(who.can_see("analytics") && !who.can_see("ops"));
        assert!(tenants.identify(root).unwrap().can_see("analytics"));
        assert!(tenants.identify("weft_t_cccccccccccccccccccccccc").is_none());
        assert_eq!(tenants.names().collect::<Vec<_>>(), ["analytics", "ops"]);
        let limit = Amount { places: 4, memory: 8 << 30 };
        let s = tenants.sharing();
        assert_eq!(s.tenants["ops"].quota, Quota { guarantee: Amount::default(), limit: Some(limit) });
        assert_eq!((s.tenants["ops"].role.as_str(), s.tenants["analytics"].role.as_str()), ("batch", "*"));
        assert_eq!(s.tenants["analytics"].quota, Quota::default());
        assert_eq!(s.roles["batch"].guarantee, Amount { places: 2, memory: 0 });
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(tenants.fuel_quotas()["ops"], FuelQuota { amount: 5000, period: hour });
        assert!(!tenants.fuel_quotas().contains_key("analytics"));
    }

    #[test]
    fn an_s3_grant_carries_its_own_settings_and_its_secret_never_shows() {
        let h = TokenHash::of("weft_t_aaaaaaaaaaaaaaaaaaaaaaaa");
        let text = format!(
            "[[tenant]]\nname = \"a\"\ntokens = [\"{h}\"]\n[[tenant.grant]]\nroot = \"s3://lake/a/\"\n\
             access = \"read-write\"\ns3 = {{ endpoint = \"http://127.0.0.1:9000\", access-key-id = \"AK\", \
             secret-access-key = \"very-secret\", allow-http = true }}\n[[tenant.grant]]\nroot = \"s3://lake/b/\"\n\
             access = \"read\"\n"
        );
        let (_dir, path) = write(&text);
        let source = TenantsSource { file: Some(path.clone()), ..Default::default() };
        let tenants = source.load().unwrap();
        let policy = tenants.policy("a");
        let settings = policy.s3().for_uri("s3://lake/a/x", Access::Write).unwrap();
        assert_eq!(settings.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(settings.secret_access_key.as_deref(), Some("very-secret"));
        assert!(policy.s3().for_uri("s3://lake/b/x", Access::Read).is_none(), "the cluster's settings there");
        let file: TenantsFile = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let debug = format!("{file:?} {policy:?} {tenants:?}");
        assert!(!debug.contains("very-secret") && debug.contains("AK"), "{debug}");
    }

    #[test]
    fn a_client_token_is_an_admin_of_the_default_tenant() {
        let t = "weft_t_0123456789abcdef01234567";
        let tenants = TenantsSource { client_tokens: vec![t.into()], ..Default::default() }.load().unwrap();
        let who = tenants.identify(t).unwrap();
        assert_eq!((&*who.tenant, who.admin), (DEFAULT_TENANT, true));
        let short =
            TenantsSource { client_tokens: vec!["s3cret".into()], ..Default::default() }.load().unwrap_err();
        assert!(
            short.to_string().contains("--client-token") && short.to_string().contains("weft token new"),
            "{short}"
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let h = TokenHash::of("weft_t_aaaaaaaaaaaaaaaaaaaaaaaa");
        for (text, expected) in [
            (format!("[[tenant]]\nname = \"a b\"\ntokens = [\"{h}\"]\n"), "is not 1-64 letters"),
            (
                format!(
                    "[[tenant]]\nname = \"a\"\ntokens = [\"{h}\"]\n[[tenant]]\nname = \"a\"\ntokens = []\n"
                ),
                "listed twice",
            ),
            ("[[tenant]]\nname = \"a\"\ntokens = []\n".to_string(), "has no tokens"),
            (
                format!(
                    "[[tenant]]\nname = \"a\"\ntokens = [\"{h}\"]\n[[tenant]]\nname = \"b\"\ntokens = [\"{h}\"]\n"
                ),
                "share a token",
            ),
            ("[[tenant]]\nname = \"a\"\ntokens = [\"s3cret\"]\n".to_string(), "not a token hash"),
            (format!("[[tenant]]\nname = \"a\"\ntokens = [\"{h}\"]\nrloe = 2\n"), "unknown field"),
            (format!("[[tenant]]\nname = \"a\"\ntokens = [\"{h}\"]\nrole = \"a b\"\n"), "has role `a b`"),
            ("[role.\"*\".quota]\nlimit = { slots = 1 }\n".to_string(), "role name `*`"),
            (
                format!(
                    "[[tenant]]\nname = \"a\"\ntokens = [\"{h}\"]\n[tenant.quota]\nguarantee = {{ slots = 9 }}\nlimit = {{ slots = 4 }}\n"
                ),
                "guaranteed more than its limit",
            ),
            (
                format!(
                    "[[tenant]]\nname = \"a\"\ntokens = [\"{h}\"]\n[tenant.quota]\nfuel = {{ amount = 0, period = \"1h\" }}\n"
                ),
                "give an amount above 0",
            ),
            (
                format!("[[tenant]]\nname = \"a\"\ntokens = [\"{h}\"]\nweight = 0\n"),
                "a weight is a number above 0",
            ),
        ] {
            let (_dir, path) = write(&text);
            let err =
                TenantsSource { file: Some(path), ..Default::default() }.load().unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let missing = TenantsSource { file: Some("/nonexistent/tenants.toml".into()), ..Default::default() };
        // A grant's secret file that is not there names the file.
        let text = format!(
            "[[tenant]]\nname = \"a\"\ntokens = [\"{h}\"]\n[[tenant.grant]]\nroot = \"s3://lake/a/\"\naccess = \"read\"\n\
             s3 = {{ access-key-id = \"AK\", secret-access-key-file = \"/nonexistent/a.secret\" }}\n"
        );
        let (_dir, path) = write(&text);
        let err = TenantsSource { file: Some(path), ..Default::default() }.load().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/a.secret") && err.contains("tenant `a`"), "{err}");
        assert!(missing.load().unwrap_err().to_string().contains("reading the tenants file"));
    }
}
