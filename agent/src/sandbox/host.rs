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

pub use driver::{DatasetId, DriverError, ShuffleOp};
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
    fn cache(&mut self, ds: DatasetId) -> DriverFuture<'_, ()>;
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

impl super::bindings::weft::grid::accumulators::Host for TaskState {
    fn add(&mut self, name: String, delta: i64) {
        let slot = self.accumulators.entry(name).or_default();
        *slot = slot.wrapping_add(delta);
    }
}

impl super::bindings::weft::grid::context::Host for TaskState {
    fn info(&mut self) -> TaskInfo {
        self.info.clone()
    }
}

macro_rules! delegate {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {
        match $self.driver.as_mut() {
            Some(d) => d.$method($($arg),*).await,
            None => Err(DriverError::NotADriver),
        }
    };
}

impl driver::Host for TaskState {
    async fn args(&mut self) -> Vec<String> {
        self.driver.as_mut().map(|d| d.args()).unwrap_or_default()
    }
    async fn text_file(&mut self, uri: String, min_partitions: u32) -> Result<DatasetId, DriverError> {
        delegate!(self, text_file(uri, min_partitions, LineFormat::Utf8))
    }
    async fn text_file_bytes(&mut self, uri: String, min_partitions: u32) -> Result<DatasetId, DriverError> {
        delegate!(self, text_file(uri, min_partitions, LineFormat::Bytes))
    }
    async fn parallelize(
        &mut self,
        records: Vec<u8>,
        keyed: bool,
        partitions: u32,
    ) -> Result<DatasetId, DriverError> {
        delegate!(self, parallelize(records, keyed, partitions))
    }
    async fn narrow(&mut self, parent: DatasetId, step: Op, keyed: bool) -> Result<DatasetId, DriverError> {
        delegate!(self, narrow(parent, step, keyed))
    }
    async fn shuffle(
        &mut self,
        parent: DatasetId,
        step: ShuffleOp,
        partitions: u32,
    ) -> Result<DatasetId, DriverError> {
        delegate!(self, shuffle(parent, step, partitions))
    }
    async fn join(
        &mut self,
        left: DatasetId,
        right: DatasetId,
        partitions: u32,
    ) -> Result<DatasetId, DriverError> {
        delegate!(self, join(left, right, partitions))
    }
    async fn union(&mut self, a: DatasetId, b: DatasetId) -> Result<DatasetId, DriverError> {
        delegate!(self, union(a, b))
    }
    async fn cache(&mut self, ds: DatasetId) -> Result<(), DriverError> {
        delegate!(self, cache(ds))
    }
    async fn collect(&mut self, ds: DatasetId) -> Result<Vec<u8>, DriverError> {
        delegate!(self, collect(ds))
    }
    async fn count(&mut self, ds: DatasetId) -> Result<u64, DriverError> {
        delegate!(self, count(ds))
    }
    async fn take(&mut self, ds: DatasetId, n: u64) -> Result<Vec<u8>, DriverError> {
        delegate!(self, take(ds, n))
    }
    async fn save_as_text_file(&mut self, ds: DatasetId, uri: String) -> Result<(), DriverError> {
        delegate!(self, save_as_text_file(ds, uri))
    }
    async fn broadcast(&mut self, value: Vec<u8>) -> Result<u64, DriverError> {
        delegate!(self, broadcast(value))
    }
    async fn accumulator_value(&mut self, name: String) -> Result<i64, DriverError> {
        delegate!(self, accumulator_value(name))
    }
}
