//! High availability on etcd: several masters started with `--ha
//! etcd://…` elect one leader through etcd's election API, and the leader
//! keeps its state in etcd instead of the embedded store.
//!
//! A master holds a lease it keeps alive; it campaigns under
//! `<prefix>/leader` with its URL as the value and stands by (without
//! listening) until it wins. The leader's every write is an etcd
//! transaction that holds only while its leadership key is the one it won
//! with, so a master that lost the lead (its lease expired while it was
//! paused or cut off) cannot write over its successor's state; it stops
//! serving as soon as it knows. No consensus is written here: etcd's Raft
//! decides. See `docs/architecture.md` (high availability) and
//! `docs/operators-guide.md` (running masters on etcd).

use crate::ledger::StoredAttempt;
use crate::persist::{ActEntry, ActWrite, JobRecord, PlacesRecord, Restored, StoreError, Writes, job_key};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KvClient, SortOrder, SortTarget, Txn, TxnOp,
};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use weft_core::ids::Incarnation;

/// Where the masters meet: etcd's endpoints and the prefix of weft's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HaConfig {
    /// etcd's client endpoints (`127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// The prefix of every key weft keeps (`/weft`): one per cluster.
    pub prefix: String,
    /// The lease a leader holds: after this long without renewing it (its
    /// process killed, paused or cut off from etcd) another master leads.
    /// etcd raises it to its own minimum (by default 2 s; see the
    /// operator's guide).
    #[serde(with = "weft_core::metering::humantime_serde_compat")]
    pub lease: Duration,
}

impl HaConfig {
    /// Parse `etcd://host:port[,host:port…][/prefix]`.
    ///
    /// # Errors
    /// Another scheme, no endpoint, or an endpoint without a port.
    pub fn parse(url: &str, lease: Duration) -> Result<Self, String> {
        let rest = url.strip_prefix("etcd://").ok_or_else(|| {
            format!("`{url}` is not an etcd URL: expected etcd://host:port[,host:port…][/prefix]")
        })?;
        let (hosts, prefix) = match rest.split_once('/') {
            Some((h, p)) if !p.trim_matches('/').is_empty() => (h, format!("/{}", p.trim_matches('/'))),
            Some((h, _)) => (h, "/weft".to_string()),
            None => (rest, "/weft".to_string()),
        };
        let endpoints: Vec<String> = hosts.split(',').filter(|h| !h.is_empty()).map(String::from).collect();
        if endpoints.is_empty() {
            return Err(format!("`{url}` names no etcd endpoint (e.g. etcd://127.0.0.1:2379)"));
        }
        if let Some(bad) =
            endpoints.iter().find(|h| h.rsplit_once(':').is_none_or(|(_, p)| p.parse::<u16>().is_err()))
        {
            return Err(format!("etcd endpoint `{bad}` has no port (e.g. 127.0.0.1:2379)"));
        }
        if lease < Duration::from_secs(1) {
            return Err("the HA lease must be at least 1s (etcd counts leases in seconds)".into());
        }
        Ok(Self { endpoints, prefix, lease })
    }

    fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.prefix)
    }
}

/// etcd cannot be reached or refused what the master asked.
#[derive(Debug, thiserror::Error)]
#[error("etcd at {endpoints}: {message}")]
pub struct HaError {
    /// The endpoints.
    pub endpoints: String,
    /// What went wrong, and what to do about it.
    pub message: String,
}

/// This master leads: the key it won with, and a signal that turns true
/// when it no longer does (its lease could not be renewed in time, or a
/// write found another leader).
pub struct Leadership {
    config: HaConfig,
    client: Client,
    /// The election key this master holds, and the revision it was created at.
    key: Vec<u8>,
    rev: i64,
    lost: watch::Sender<bool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership").field("key", &String::from_utf8_lossy(&self.key)).finish_non_exhaustive()
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl Leadership {
    /// Stand by until this master (reached at `url`) leads. Logs the
    /// leader it waits behind.
    ///
    /// # Errors
    /// etcd cannot be reached, or refused the lease or the campaign.
    pub async fn win(config: &HaConfig, url: &str) -> Result<Self, HaError> {
        let fail = |e: etcd_client::Error| HaError {
            endpoints: config.endpoints.join(","),
            message: format!("{e} (is etcd running there? `weft master --ha etcd://host:port`)"),
        };
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2));
        let mut client = Client::connect(&config.endpoints, Some(options)).await.map_err(fail)?;
        let ttl = i64::try_from(config.lease.as_secs().max(1)).unwrap_or(i64::MAX);
        let lease = client.lease_grant(ttl, None).await.map_err(fail)?;
        let (lost, _) = watch::channel(false);
        let keeper = tokio::spawn(keep_alive(
            client.clone(),
            lease.id(),
            Duration::from_secs(lease.ttl().max(1) as u64),
            lost.clone(),
        ));
        let name = config.key("leader");
        match client.leader(name.as_bytes()).await {
            Ok(l) => {
                if let Some(kv) = l.kv() {
                    let leader = String::from_utf8_lossy(kv.value());
                    tracing::info!(%leader, "weft.master.ha.standby");
                    eprintln!("weft master: standing by; the leader is {leader}");
                }
            }
            // No leader yet: this one is likely to be it.
            Err(e) => tracing::debug!(error = %e, "weft.master.ha.no_leader"),
        }
        let won = client.campaign(name.as_bytes(), url, lease.id()).await.map_err(fail)?;
        let key = won.leader().ok_or_else(|| HaError {
            endpoints: config.endpoints.join(","),
            message: "etcd's campaign answer names no leadership key".into(),
        })?;
        tracing::info!(lease = lease.id(), "weft.master.ha.leader");
        Ok(Self { config: config.clone(), key: key.key().to_vec(), rev: key.rev(), client, lost, keeper })
    }

    /// A signal that turns true once this master no longer leads.
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.lost.subscribe()
    }

    /// Open the state the masters keep in etcd, read back what earlier
    /// leaders kept, and take a run number none of them had.
    ///
    /// # Errors
    /// etcd refused a read or write, or this master no longer leads.
    pub async fn open_state(&self) -> Result<(EtcdStore, Incarnation, Restored), StoreError> {
        let mut store = EtcdStore {
            kv: self.client.kv_client().max_decoding_message_size(MAX_MESSAGE),
            prefix: self.config.key("state"),
            key: self.key.clone(),
            rev: self.rev,
            lost: self.lost.clone(),
            next_attempt: 0,
            endpoints: self.config.endpoints.join(","),
        };
        let runs: Vec<u32> = match store.get_one("meta/runs").await? {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(|e| store.fail(format!("meta/runs: {e}")))?,
            None => Vec::new(),
        };
        if let Some(bytes) = store.get_one("meta/format").await? {
            let format: u32 =
                postcard::from_bytes(&bytes).map_err(|e| store.fail(format!("meta/format: {e}")))?;
            crate::persist::check_format(format).map_err(|m| store.fail(m))?;
        }
        let mut restored = Restored { runs: runs.len(), ..Restored::default() };
        restored.jobs = store.read_all::<JobRecord>("jobs/", "job").await?;
        restored.attempts = store.read_all::<StoredAttempt>("attempts/", "attempt record").await?;
        restored.places = store.read_all::<PlacesRecord>("places/", "places record").await?;
        restored.acts = store.read_all::<ActEntry>("acts/", "action answer").await?;
        store.next_attempt = restored.attempts.len() as u64;
        let incarnation = crate::persist::new_run(&runs);
        let mut all = runs;
        all.push(incarnation.0);
        let encode = |v: &dyn Fn() -> postcard::Result<Vec<u8>>| v().map_err(|e| store.fail(e.to_string()));
        let format = encode(&|| postcard::to_allocvec(&crate::persist::FORMAT))?;
        let runs = encode(&|| postcard::to_allocvec(&all))?;
        let puts = vec![store.put("meta/format", format), store.put("meta/runs", runs)];
        store.commit(puts).await?;
        Ok((store, incarnation, restored))
    }
}

/// Most bytes etcd's answers may carry here (a page of job records).
const MAX_MESSAGE: usize = 256 << 20;
/// Keys read per page.
const PAGE: i64 = 64;
/// Most operations per transaction (etcd's default `--max-txn-ops` is 128).
const TXN_OPS: usize = 100;
/// Most bytes per transaction (etcd's default `--max-request-bytes` is 1.5 MiB).
const TXN_BYTES: usize = 1 << 20;

/// Renew `lease` every third of its TTL; turn `lost` true once it could not
/// be renewed for a whole TTL, or etcd says it expired.
async fn keep_alive(mut client: Client, lease: i64, ttl: Duration, lost: watch::Sender<bool>) {
    let every = ttl / 3;
    let mut renewed = tokio::time::Instant::now();
    let mut stream = None;
    loop {
        if renewed.elapsed() >= ttl {
            tracing::error!(lease, "weft.master.ha.lease_lost");
            let _ = lost.send(true);
            return;
        }
        if stream.is_none() {
            stream =
                tokio::time::timeout(every, client.lease_keep_alive(lease)).await.ok().and_then(Result::ok);
        }
        if let Some((keeper, answers)) = &mut stream {
            let beat = async {
                keeper.keep_alive().await?;
                answers.message().await
            };
            match tokio::time::timeout(every, beat).await {
                Ok(Ok(Some(answer))) if answer.ttl() > 0 => renewed = tokio::time::Instant::now(),
                Ok(Ok(Some(_))) => {
                    tracing::error!(lease, "weft.master.ha.lease_expired");
                    let _ = lost.send(true);
                    return;
                }
                _ => stream = None,
            }
        }
        tokio::time::sleep(every.saturating_sub(renewed.elapsed().min(every))).await;
    }
}

/// The leader's state in etcd: the same records as the embedded store, under
/// `<prefix>/state/` (`meta/runs`, `jobs/<id>`, `attempts/<n>`,
/// `places/<id>`, `acts/<id>-<n>`), every write
/// fenced by the leadership key.
pub struct EtcdStore {
    kv: KvClient,
    prefix: String,
    key: Vec<u8>,
    rev: i64,
    lost: watch::Sender<bool>,
    next_attempt: u64,
    endpoints: String,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl EtcdStore {
    fn fail(&self, message: String) -> StoreError {
        StoreError { path: PathBuf::from(format!("etcd://{}{}", self.endpoints, self.prefix)), message }
    }

    async fn get_one(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let got = self
            .kv
            .get(format!("{}/{key}", self.prefix), None)
            .await
            .map_err(|e| self.fail(e.to_string()))?;
        Ok(got.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Every record under `dir`, in key order, a page at a time.
    async fn read_all<T: for<'de> serde::Deserialize<'de>>(
        &mut self,
        dir: &str,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let start = format!("{}/{dir}", self.prefix);
        let mut end = start.clone().into_bytes();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let mut from = start.into_bytes();
        let mut out = Vec::new();
        loop {
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(PAGE)
                .with_sort(SortTarget::Key, SortOrder::Ascend);
            let page =
                self.kv.get(from.clone(), Some(options)).await.map_err(|e| self.fail(e.to_string()))?;
            for kv in page.kvs() {
                let record = postcard::from_bytes(kv.value()).map_err(|e| {
                    self.fail(format!("{what} {} does not decode: {e}", String::from_utf8_lossy(kv.key())))
                })?;
                out.push(record);
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    /// A put of `value` at `key` under the prefix.
    fn put(&self, key: &str, value: Vec<u8>) -> (String, Option<Vec<u8>>) {
        (format!("{}/{key}", self.prefix), Some(value))
    }

    /// Carry out `puts` (a `None` value deletes its key) while this master
    /// leads, in transactions of at most [`TXN_OPS`] operations and about
    /// [`TXN_BYTES`] (a larger record goes alone): each record is written
    /// whole or not at all.
    async fn commit(&mut self, puts: Vec<(String, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        let mut batch: Vec<TxnOp> = Vec::new();
        let mut bytes = 0;
        let mut batches = Vec::new();
        for (key, value) in puts {
            let size = key.len() + value.as_ref().map_or(0, Vec::len);
            let op = match value {
                Some(value) => TxnOp::put(key, value, None),
                None => TxnOp::delete(key, None),
            };
            if !batch.is_empty() && (batch.len() >= TXN_OPS || bytes + size > TXN_BYTES) {
                batches.push(std::mem::take(&mut batch));
                bytes = 0;
            }
            bytes += size;
            batch.push(op);
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        for ops in batches {
            let txn = Txn::new()
                .when([Compare::create_revision(self.key.clone(), CompareOp::Equal, self.rev)])
                .and_then(ops);
            let done = self.kv.txn(txn).await.map_err(|e| self.fail(e.to_string()))?;
            if !done.succeeded() {
                let _ = self.lost.send(true);
                return Err(self.fail("this master no longer leads: another master took over".into()));
            }
        }
        Ok(())
    }

    /// Keep `writes` while this master leads.
    ///
    /// # Errors
    /// etcd refused them (unreachable, a record over its request size), or
    /// this master no longer leads (it then stops serving).
    pub async fn write(&mut self, writes: &Writes) -> Result<(), StoreError> {
        let mut puts = Vec::with_capacity(writes.jobs.len() + writes.attempts.len());
        for job in &writes.jobs {
            let bytes = postcard::to_allocvec(job).map_err(|e| self.fail(e.to_string()))?;
            puts.push(self.put(&format!("jobs/{:016x}", job_key(job.id)), bytes));
        }
        let mut next = self.next_attempt;
        for a in &writes.attempts {
            let bytes = postcard::to_allocvec(a).map_err(|e| self.fail(e.to_string()))?;
            puts.push(self.put(&format!("attempts/{next:016x}"), bytes));
            next += 1;
        }
        for (job, record) in &writes.places {
            let key = format!("places/{:016x}", job_key(*job));
            let mut bytes = match record {
                Some(r) => Some(postcard::to_allocvec(r).map_err(|e| self.fail(e.to_string()))?),
                None => None,
            };
            // Places are hints: one too large for a transaction is dropped
            // (a restarted leader computes those outputs again).
            if bytes.as_ref().is_some_and(|b| b.len() > TXN_BYTES) {
                tracing::warn!(job = %job, "weft.master.state_store.places_too_large");
                bytes = None;
            }
            puts.push((format!("{}/{key}", self.prefix), bytes));
        }
        for write in &writes.acts {
            let (job, number) = write.key();
            let key = format!("{}/acts/{:016x}-{number:08x}", self.prefix, job_key(job));
            let bytes = match write {
                ActWrite::Keep(entry) => {
                    Some(postcard::to_allocvec(entry).map_err(|e| self.fail(e.to_string()))?)
                }
                ActWrite::Drop(..) => None,
            };
            puts.push((key, bytes));
        }
        self.commit(puts).await?;
        self.next_attempt = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_etcd_url_names_its_endpoints_and_prefix() {
        let lease = Duration::from_secs(2);
        let c = HaConfig::parse("etcd://127.0.0.1:2379", lease).unwrap();
        assert_eq!((c.endpoints, c.prefix.as_str()), (vec!["127.0.0.1:2379".to_string()], "/weft"));
        let c = HaConfig::parse("etcd://a:1,b:2/prod/weft/", lease).unwrap();
        assert_eq!(c.endpoints, vec!["a:1", "b:2"]);
        assert_eq!(c.prefix, "/prod/weft");
        assert_eq!(c.key("leader"), "/prod/weft/leader");
        for (bad, says) in [
            ("http://127.0.0.1:2379", "not an etcd URL"),
            ("etcd:///weft", "names no etcd endpoint"),
            ("etcd://127.0.0.1/weft", "has no port"),
            ("etcd://127.0.0.1:x", "has no port"),
        ] {
            let e = HaConfig::parse(bad, lease).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = HaConfig::parse("etcd://127.0.0.1:2379", Duration::from_millis(500)).unwrap_err();
        assert!(e.contains("at least 1s"), "{e}");
    }
}
