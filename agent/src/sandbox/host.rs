//! The store's data and the host side of weft's imports.
//!
//! Each task gets a fresh [`TaskState`]: its WASI context (no filesystem,
//! network, environment or arguments), its limiter, its bounded log, the
//! broadcast values it may read and the accumulator additions it made. Driver
//! imports go to a [`DriverHost`] when the store runs a job's `run`, and fail
//! with `not-a-driver` inside a task.

use super::bindings::{driver, log, types};
use super::limiter::Limiter;
use super::log::TaskLog;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use weft_core::io::LineFormat;

pub use driver::{DatasetId, DriverError, Fold as WitFold, ShuffleOp, StorageLevel};
pub use types::{Op, OpKind, TaskInfo};

/// What a driver run can ask of the cluster: the host side of the `driver`
/// interface. The master-facing implementation lives with the driver runner;
/// inside a task there is none.
#[allow(missing_docs)]
pub trait DriverHost: Send {
    fn args(&mut self) -> Vec<String>;
    fn text_file(
        &mut self,
        uri: String,
        min_partitions: u32,
        lines: LineFormat,
    ) -> DriverFuture<'_, DatasetId>;
    fn parallelize(&mut self, records: Vec<u8>, keyed: bool, partitions: u32) -> DriverFuture<'_, DatasetId>;
    fn narrow(&mut self, parent: DatasetId, step: Op, keyed: bool) -> DriverFuture<'_, DatasetId>;
    fn shuffle(&mut self, parent: DatasetId, step: ShuffleOp, partitions: u32)
    -> DriverFuture<'_, DatasetId>;
    fn join(&mut self, left: DatasetId, right: DatasetId, partitions: u32) -> DriverFuture<'_, DatasetId>;
    fn union(&mut self, a: DatasetId, b: DatasetId) -> DriverFuture<'_, DatasetId>;
    /// Persist `ds` at `level` (`None`: unpersist it).
    fn persist(&mut self, ds: DatasetId, level: Option<StorageLevel>) -> DriverFuture<'_, ()>;
    fn collect(&mut self, ds: DatasetId) -> DriverFuture<'_, Vec<u8>>;
    fn count(&mut self, ds: DatasetId) -> DriverFuture<'_, u64>;
    fn take(&mut self, ds: DatasetId, n: u64) -> DriverFuture<'_, Vec<u8>>;
    fn save_as_text_file(&mut self, ds: DatasetId, uri: String) -> DriverFuture<'_, ()>;
    fn broadcast(&mut self, value: Vec<u8>) -> DriverFuture<'_, u64>;
    fn accumulator_value(&mut self, name: String) -> DriverFuture<'_, i64>;
}

/// The future a [`DriverHost`] method returns.
pub type DriverFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, DriverError>> + Send + 'a>>;

/// Everything one task's store holds.
pub struct TaskState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) log: TaskLog,
    pub(crate) info: TaskInfo,
    pub(crate) broadcasts: Arc<BTreeMap<u64, bytes::Bytes>>,
    pub(crate) accumulators: BTreeMap<String, i64>,
    pub(crate) driver: Option<Box<dyn DriverHost>>,
}

impl WasiView for TaskState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for TaskState {}

impl log::Host for TaskState {
    fn log(&mut self, level: log::Level, message: String) {
        let prefix = match level {
            log::Level::Trace => "[trace] ",
            log::Level::Debug => "[debug] ",
            log::Level::Info => "[info] ",
            log::Level::Warn => "[warn] ",
            log::Level::Error => "[error] ",
        };
        self.log.line(prefix, &message);
    }
}

impl super::bindings::weft::grid::broadcast::Host for TaskState {
    fn get(&mut self, id: u64) -> Option<Vec<u8>> {
        self.broadcasts.get(&id).map(|b| b.to_vec())
    }
}

/// What the host is charged for keeping one accumulator name for an attempt:
/// its entry here, the copy in the attempt's task update and its encoding.
const ACCUMULATOR_ENTRY_BYTES: usize = 256;

/// What the host is charged for one dataset of a driver's plan: the node,
/// kept by the driver and by the master, and its share of each action's
/// plan delta.
const PLAN_NODE_BYTES: usize = 512;
/// Host memory charged for a persist or unpersist mark the plan keeps.
const PERSIST_MARK_BYTES: usize = 16;

impl TaskState {
    /// Charge `bytes` of host memory to the guest, or trap it at its limit.
    fn charge(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.limiter.charge_host(bytes).map_err(wasmtime::Error::new)
    }
}

impl super::bindings::weft::grid::accumulators::Host for TaskState {
    fn add(&mut self, name: String, delta: i64) -> wasmtime::Result<()> {
        if let Some(slot) = self.accumulators.get_mut(&name) {
            *slot = slot.wrapping_add(delta);
            return Ok(());
        }
        self.charge(ACCUMULATOR_ENTRY_BYTES + 2 * name.len())?;
        self.accumulators.insert(name, delta);
        Ok(())
    }
}

impl super::bindings::weft::grid::context::Host for TaskState {
    fn info(&mut self) -> TaskInfo {
        self.info.clone()
    }
}

/// Ask the driver, if this store runs one; a host that keeps memory for the
/// guest is charged `bytes` first.
macro_rules! delegate {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {
        delegate!($self, 0, $method($($arg),*))
    };
    ($self:ident, $bytes:expr, $method:ident ( $($arg:expr),* )) => {
        match $self.driver.as_mut() {
            Some(d) => {
                $self.limiter.charge_host($bytes).map_err(wasmtime::Error::new)?;
                Ok(d.$method($($arg),*).await)
            }
            None => Ok(Err(DriverError::NotADriver)),
        }
    };
}

/// What a driver's plan keeps of `bytes` given to the host in `parts`
/// partitions or values: each up to the size that travels inline, the rest
/// is a block in the master's store.
fn kept(bytes: usize, parts: u32) -> usize {
    PLAN_NODE_BYTES + bytes.min((parts.max(1) as usize).saturating_mul(weft_core::task::Data::INLINE_MAX))
}

type Driven<T> = wasmtime::Result<Result<T, DriverError>>;

impl driver::Host for TaskState {
    async fn args(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.driver.as_mut().map(|d| d.args()).unwrap_or_default())
    }
    async fn text_file(&mut self, uri: String, min_partitions: u32) -> Driven<DatasetId> {
        delegate!(self, PLAN_NODE_BYTES + uri.len(), text_file(uri, min_partitions, LineFormat::Utf8))
    }
    async fn text_file_bytes(&mut self, uri: String, min_partitions: u32) -> Driven<DatasetId> {
        delegate!(self, PLAN_NODE_BYTES + uri.len(), text_file(uri, min_partitions, LineFormat::Bytes))
    }
    async fn parallelize(&mut self, records: Vec<u8>, keyed: bool, partitions: u32) -> Driven<DatasetId> {
        delegate!(self, kept(records.len(), partitions), parallelize(records, keyed, partitions))
    }
    async fn narrow(&mut self, parent: DatasetId, step: Op, keyed: bool) -> Driven<DatasetId> {
        delegate!(self, PLAN_NODE_BYTES + step.function.len(), narrow(parent, step, keyed))
    }
    async fn shuffle(&mut self, parent: DatasetId, step: ShuffleOp, partitions: u32) -> Driven<DatasetId> {
        delegate!(self, PLAN_NODE_BYTES, shuffle(parent, step, partitions))
    }
    async fn join(&mut self, left: DatasetId, right: DatasetId, partitions: u32) -> Driven<DatasetId> {
        delegate!(self, PLAN_NODE_BYTES, join(left, right, partitions))
    }
    async fn union(&mut self, a: DatasetId, b: DatasetId) -> Driven<DatasetId> {
        delegate!(self, PLAN_NODE_BYTES, union(a, b))
    }
    async fn persist(&mut self, ds: DatasetId, level: StorageLevel) -> Driven<()> {
        delegate!(self, PERSIST_MARK_BYTES, persist(ds, Some(level)))
    }
    async fn unpersist(&mut self, ds: DatasetId) -> Driven<()> {
        delegate!(self, PERSIST_MARK_BYTES, persist(ds, None))
    }
    async fn collect(&mut self, ds: DatasetId) -> Driven<Vec<u8>> {
        delegate!(self, collect(ds))
    }
    async fn count(&mut self, ds: DatasetId) -> Driven<u64> {
        delegate!(self, count(ds))
    }
    async fn take(&mut self, ds: DatasetId, n: u64) -> Driven<Vec<u8>> {
        delegate!(self, take(ds, n))
    }
    async fn save_as_text_file(&mut self, ds: DatasetId, uri: String) -> Driven<()> {
        delegate!(self, save_as_text_file(ds, uri))
    }
    async fn broadcast(&mut self, value: Vec<u8>) -> Driven<u64> {
        delegate!(self, kept(value.len(), 1), broadcast(value))
    }
    async fn accumulator_value(&mut self, name: String) -> Driven<i64> {
        delegate!(self, accumulator_value(name))
    }
}
