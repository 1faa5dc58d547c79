//! Imports of the `job` world, wrapped.

use super::{Fold, ShuffleOp};
use crate::bindings::weft::grid::{accumulators, broadcast, context, driver as wit, log as wit_log, types};
use crate::error::{Error, Result};
use crate::function::OpKind;
use crate::log::Level;
use crate::task::TaskInfo;

pub(crate) fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => wit_log::Level::Trace,
        Level::Debug => wit_log::Level::Debug,
        Level::Info => wit_log::Level::Info,
        Level::Warn => wit_log::Level::Warn,
        Level::Error => wit_log::Level::Error,
    };
    wit_log::log(level, message);
}

pub(crate) fn broadcast_get(id: u64) -> Option<Vec<u8>> {
    broadcast::get(id)
}

pub(crate) fn accumulator_add(name: &str, delta: i64) {
    accumulators::add(name, delta);
}

pub(crate) fn task_info() -> TaskInfo {
    let t = context::info();
    TaskInfo { job_id: t.job_id, stage_id: t.stage_id, partition: t.partition, attempt: t.attempt }
}

pub(crate) fn op_kind(kind: OpKind) -> types::OpKind {
    match kind {
        OpKind::Map => types::OpKind::Map,
        OpKind::Filter => types::OpKind::Filter,
        OpKind::FlatMap => types::OpKind::FlatMap,
        OpKind::MapBatch => types::OpKind::MapBatch,
        OpKind::Reduce => types::OpKind::Reduce,
        OpKind::Combine => types::OpKind::Combine,
    }
}

impl From<wit::DriverError> for Error {
    fn from(e: wit::DriverError) -> Self {
        match e {
            wit::DriverError::InvalidArgument(m) => Error::InvalidArgument(m),
            wit::DriverError::JobFailed(m) => Error::JobFailed(m),
            wit::DriverError::NotADriver => Error::NotADriver,
        }
    }
}

/// The `driver` interface.
pub(crate) mod driver {
    use super::*;

    pub(crate) fn args() -> Vec<String> {
        wit::args()
    }
    pub(crate) fn text_file(uri: &str, min_partitions: u32) -> Result<u32> {
        Ok(wit::text_file(uri, min_partitions)?)
    }
    pub(crate) fn text_file_bytes(uri: &str, min_partitions: u32) -> Result<u32> {
        Ok(wit::text_file_bytes(uri, min_partitions)?)
    }
    pub(crate) fn parallelize(records: &[u8], keyed: bool, partitions: u32) -> Result<u32> {
        Ok(wit::parallelize(records, keyed, partitions)?)
    }
    /// A narrow step whose function has broadcast value `param` bound.
    pub(crate) fn narrow_bound(
        parent: u32,
        kind: OpKind,
        function: &str,
        param: Option<u64>,
        keyed: bool,
    ) -> Result<u32> {
        let step = types::Op { kind: op_kind(kind), function: function.to_owned(), param };
        Ok(wit::narrow(parent, &step, keyed)?)
    }
    pub(crate) fn shuffle(parent: u32, op: ShuffleOp<'_>, partitions: u32) -> Result<u32> {
        let step = match op {
            ShuffleOp::ReduceByKey(name) => wit::ShuffleOp::ReduceByKey(name.to_owned()),
            ShuffleOp::SumByKey => wit::ShuffleOp::SumByKey,
            ShuffleOp::GroupByKey => wit::ShuffleOp::GroupByKey,
            ShuffleOp::SortByKey(ascending) => wit::ShuffleOp::SortByKey(ascending),
            ShuffleOp::PartitionBy => wit::ShuffleOp::PartitionBy,
            ShuffleOp::FoldByKey(fold) => wit::ShuffleOp::FoldByKey(match fold {
                Fold::SumF64 => wit::Fold::SumF64,
                Fold::Min => wit::Fold::Min,
                Fold::Max => wit::Fold::Max,
            }),
        };
        Ok(wit::shuffle(parent, &step, partitions)?)
    }
    pub(crate) fn join(left: u32, right: u32, partitions: u32) -> Result<u32> {
        Ok(wit::join(left, right, partitions)?)
    }
    pub(crate) fn union(a: u32, b: u32) -> Result<u32> {
        Ok(wit::union(a, b)?)
    }
    pub(crate) fn persist(ds: u32, level: Option<crate::StorageLevel>) -> Result<()> {
        use crate::StorageLevel as L;
        let level = match level {
            None => return Ok(wit::unpersist(ds)?),
            Some(L::MemoryOnly) => wit::StorageLevel::MemoryOnly,
            Some(L::MemoryAndDisk) => wit::StorageLevel::MemoryAndDisk,
            Some(L::DiskOnly) => wit::StorageLevel::DiskOnly,
        };
        Ok(wit::persist(ds, level)?)
    }
    pub(crate) fn collect(ds: u32) -> Result<Vec<u8>> {
        Ok(wit::collect(ds)?)
    }
    pub(crate) fn count(ds: u32) -> Result<u64> {
        Ok(wit::count(ds)?)
    }
    pub(crate) fn take(ds: u32, n: u64) -> Result<Vec<u8>> {
        Ok(wit::take(ds, n)?)
    }
    pub(crate) fn save_as_text_file(ds: u32, uri: &str) -> Result<()> {
        Ok(wit::save_as_text_file(ds, uri)?)
    }
    pub(crate) fn broadcast(value: &[u8]) -> Result<u64> {
        Ok(wit::broadcast(value)?)
    }
    pub(crate) fn accumulator_value(name: &str) -> Result<i64> {
        Ok(wit::accumulator_value(name)?)
    }
}
