//! [`AgentConfig`]: everything an agent process is told at start. Loads from
//! TOML (unknown keys are an error), sizes and durations in human units.

use crate::executor::ExecutorConfig;
use crate::sandbox::SandboxConfig;
use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use weft_core::artifact::S3Config;

/// How an agent runs. `Default` plus the `with_*` builders, or TOML:
///
/// ```
/// use weft_agent::node::AgentConfig;
/// let config: AgentConfig = toml::from_str(r#"
///     master = "http://10.0.0.1:7070"
///     listen = "0.0.0.0:7071"
///     advertise = "10.0.0.7:7071"
///     slots = 4
///     memory = "8GiB"
///     cluster-token = "weft_c_0123456789abcdef0123456789abcdef"
///     work-dir = "/var/lib/weft/work"
///     cache-dir = "/var/lib/weft/artifacts"
///     rpc-timeout = "10s"
///     [attributes]
///     rack = "r1"
/// "#).unwrap();
/// assert_eq!(config.memory.as_u64(), 8 << 30);
/// assert!(toml::from_str::<AgentConfig>("slot = 4").is_err(), "a typo is an error");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AgentConfig {
    /// The master's gRPC address (`host:port` or `http://host:port`); with
    /// several masters (HA), every one's, separated by commas: the agent
    /// follows whichever leads.
    pub master: String,
    /// Where the agent's gRPC server (Agent and Blocks services) listens.
    pub listen: SocketAddr,
    /// The address the master and peer agents use to reach this agent; by
    /// default the bound address (`127.0.0.1` standing in for an unspecified IP).
    pub advertise: Option<String>,
    /// Tasks that may run at once; also the size of the WebAssembly pool.
    pub slots: u32,
    /// Tasks that may wait here for a free slot (`None`: four times `slots`).
    /// The master launches up to `slots + queue` tasks on the agent, so the
    /// next task is already here when one ends: a task's launch and its end
    /// report do not leave the slot idle in between.
    pub queue: Option<u32>,
    /// Memory offered to the master for tasks.
    pub memory: ByteSize,
    /// Slots and memory reserved for roles: the master offers them to the
    /// tenants of that role first, and lends them to others only revocably.
    pub reserve: Vec<Reserve>,
    /// Free-form attributes offered with the resources (rack, zone, …).
    pub attributes: BTreeMap<String, String>,
    /// The cluster's shared token (empty: none).
    pub cluster_token: String,
    /// TLS: the certificate and key it serves with, the CA it trusts.
    pub tls: weft_core::proto::tls::TlsConfig,
    /// Shuffle files live in `<work-dir>/jobs/<job>/shuffle/`.
    pub work_dir: PathBuf,
    /// The verified artifact (component) cache.
    pub cache_dir: PathBuf,
    /// The artifact cache's size budget.
    pub cache_size: ByteSize,
    /// Timeout of each call to the master (registration, heartbeat, update).
    #[serde(with = "weft_core::metering::humantime_serde_compat")]
    pub rpc_timeout: Duration,
    /// Timeout of one shuffle block fetch from a peer.
    #[serde(with = "weft_core::metering::humantime_serde_compat")]
    pub fetch_timeout: Duration,
    /// The WebAssembly sandbox.
    pub sandbox: SandboxConfig,
    /// The task executor.
    pub executor: ExecutorConfig,
    /// How to reach S3 for text input and output.
    pub s3: S3Config,
}

impl Default for AgentConfig {
    fn default() -> Self {
        let slots = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        Self {
            master: "http://127.0.0.1:7070".into(),
            listen: SocketAddr::from(([0, 0, 0, 0], 7071)),
            advertise: None,
            slots,
            queue: None,
            memory: ByteSize::gib(4),
            reserve: Vec::new(),
            attributes: BTreeMap::new(),
            cluster_token: String::new(),
            tls: Default::default(),
            work_dir: PathBuf::from("/var/lib/weft/agent/work"),
            cache_dir: PathBuf::from("/var/lib/weft/agent/artifacts"),
            cache_size: ByteSize::gib(10),
            rpc_timeout: Duration::from_secs(10),
            fetch_timeout: crate::blocks::DEFAULT_FETCH_TIMEOUT,
            sandbox: SandboxConfig::default(),
            executor: ExecutorConfig::default(),
            s3: S3Config::default(),
        }
    }
}

impl AgentConfig {
    /// Report to the master at `address` (or to whichever of a
    /// comma-separated list leads).
    pub fn with_master(mut self, address: impl Into<String>) -> Self {
        self.master = address.into();
        self
    }

    /// Every master's address.
    pub fn masters(&self) -> impl Iterator<Item = &str> {
        self.master.split(',').map(str::trim).filter(|m| !m.is_empty())
    }

    /// Listen on `addr` (port 0 picks a free port).
    pub fn with_listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Tell the master and peers to reach this agent at `address`.
    pub fn with_advertise(mut self, address: impl Into<String>) -> Self {
        self.advertise = Some(address.into());
        self
    }

    /// Let up to `queue` tasks wait for a slot.
    pub fn with_queue(mut self, queue: u32) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The tasks that may wait for a slot.
    pub fn queue_depth(&self) -> u32 {
        self.queue.unwrap_or(self.slots * 4)
    }

    /// Run up to `slots` tasks at once (at least one).
    pub fn with_slots(mut self, slots: u32) -> Self {
        self.slots = slots.max(1);
        self
    }

    /// Offer `memory` for tasks.
    pub fn with_memory(mut self, memory: ByteSize) -> Self {
        self.memory = memory;
        self
    }

    /// Add the attribute `key = value`.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Authenticate with the cluster's `token`.
    pub fn with_cluster_token(mut self, token: impl Into<String>) -> Self {
        self.cluster_token = token.into();
        self
    }

    /// Keep shuffle files under `dir`.
    pub fn with_work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = dir.into();
        self
    }

    /// Cache artifacts under `dir`.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = dir.into();
        self
    }

    /// Give each call to the master `timeout`.
    pub fn with_rpc_timeout(mut self, timeout: Duration) -> Self {
        self.rpc_timeout = timeout;
        self
    }

    /// Use `sandbox` for the WebAssembly engine.
    pub fn with_sandbox(mut self, sandbox: SandboxConfig) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// Use `executor` for running tasks.
    pub fn with_executor(mut self, executor: ExecutorConfig) -> Self {
        self.executor = executor;
        self
    }

    /// Reach S3 with `s3`.
    pub fn with_s3(mut self, s3: S3Config) -> Self {
        self.s3 = s3;
        self
    }
}

/// Task slots and memory reserved for a role: `ROLE:slots=N,memory=SIZE`
/// on the command line (either part may be left out), a table in TOML.
///
/// ```
/// use weft_agent::node::Reserve;
/// let r: Reserve = "batch:slots=2,memory=4GiB".parse().unwrap();
/// assert_eq!((r.role.as_str(), r.slots, r.memory.as_u64()), ("batch", 2, 4 << 30));
/// assert!("batch".parse::<Reserve>().is_err(), "nothing reserved");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reserve {
    /// The role (as the master's tenants file names it).
    pub role: String,
    /// Task slots.
    #[serde(default)]
    pub slots: u32,
    /// Memory.
    #[serde(default)]
    pub memory: ByteSize,
}

impl std::str::FromStr for Reserve {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "write ROLE:slots=N,memory=SIZE, e.g. batch:slots=2,memory=4GiB";
        let (role, parts) = s.split_once(':').ok_or_else(|| format!("`{s}`: {usage}"))?;
        let ok = !role.is_empty() && role.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !ok {
            return Err(format!("`{role}` is not a role name (letters, digits, `.`, `_`, `-`): {usage}"));
        }
        let mut r = Reserve { role: role.into(), slots: 0, memory: ByteSize::b(0) };
        for part in parts.split(',') {
            match part.split_once('=') {
                Some(("slots", n)) => r.slots = n.parse().map_err(|_| format!("slots `{n}`: {usage}"))?,
                Some(("memory", m)) => r.memory = m.parse().map_err(|_| format!("memory `{m}`: {usage}"))?,
                _ => return Err(format!("`{part}`: {usage}")),
            }
        }
        if r.slots == 0 && r.memory.as_u64() == 0 {
            return Err(format!("`{s}` reserves nothing: {usage}"));
        }
        Ok(r)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let config = AgentConfig::default().with_slots(3).with_attribute("zone", "a");
        let text = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<AgentConfig>(&text).unwrap(), config);
    }

    #[test]
    fn the_shuffle_readers_budget_is_set_in_human_units() {
        let config: AgentConfig = toml::from_str("[executor.reader]\nmemory_budget = \"64MiB\"\n").unwrap();
        assert_eq!(config.executor.reader.memory_budget.as_u64(), 64 << 20);
        assert_eq!(AgentConfig::default().executor.reader.memory_budget.as_u64(), 256 << 20);
        assert!(toml::from_str::<AgentConfig>("[executor.reader]\nmemory = \"1GiB\"\n").is_err());
    }
}
