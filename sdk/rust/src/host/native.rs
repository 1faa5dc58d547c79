//! Native stand-ins for the host imports, for tests and docs.
//!
//! Logging goes to stderr, accumulators and broadcasts live in thread-locals
//! (see [`testing`]), and every driver call fails with [`Error::NotADriver`].

use super::ShuffleOp;
use crate::error::{Error, Result};
use crate::function::OpKind;
use crate::log::Level;
use crate::task::TaskInfo;
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static BROADCASTS: RefCell<HashMap<u64, Vec<u8>>> = RefCell::new(HashMap::new());
    static ACCUMULATORS: RefCell<HashMap<String, i64>> = RefCell::new(HashMap::new());
}

pub(crate) fn log(level: Level, message: &str) {
    eprintln!("[{level:?}] {message}");
}

pub(crate) fn broadcast_get(id: u64) -> Option<Vec<u8>> {
    BROADCASTS.with(|b| b.borrow().get(&id).cloned())
}

pub(crate) fn accumulator_add(name: &str, delta: i64) {
    ACCUMULATORS.with(|a| *a.borrow_mut().entry(name.to_owned()).or_default() += delta);
}

pub(crate) fn task_info() -> TaskInfo {
    TaskInfo { job_id: "native".into(), ..TaskInfo::default() }
}

/// Driver calls, which need a weft host.
pub(crate) mod driver {
    use super::*;

    pub(crate) fn args() -> Vec<String> {
        Vec::new()
    }
    pub(crate) fn text_file(_uri: &str, _min_partitions: u32) -> Result<u32> {
        Err(Error::NotADriver)
    }
    pub(crate) fn text_file_bytes(_uri: &str, _min_partitions: u32) -> Result<u32> {
        Err(Error::NotADriver)
    }
    pub(crate) fn parallelize(_records: &[u8], _keyed: bool, _partitions: u32) -> Result<u32> {
        Err(Error::NotADriver)
    }
    pub(crate) fn narrow_bound(
        _parent: u32,
        _kind: OpKind,
        _function: &str,
        _param: Option<u64>,
        _keyed: bool,
    ) -> Result<u32> {
        Err(Error::NotADriver)
    }
    pub(crate) fn shuffle(_parent: u32, _op: ShuffleOp<'_>, _partitions: u32) -> Result<u32> {
        Err(Error::NotADriver)
    }
    pub(crate) fn join(_left: u32, _right: u32, _partitions: u32) -> Result<u32> {
        Err(Error::NotADriver)
    }
    pub(crate) fn union(_a: u32, _b: u32) -> Result<u32> {
        Err(Error::NotADriver)
    }
    pub(crate) fn persist(_ds: u32, _level: Option<crate::StorageLevel>) -> Result<()> {
        Err(Error::NotADriver)
    }
    pub(crate) fn collect(_ds: u32) -> Result<Vec<u8>> {
        Err(Error::NotADriver)
    }
    pub(crate) fn count(_ds: u32) -> Result<u64> {
        Err(Error::NotADriver)
    }
    pub(crate) fn take(_ds: u32, _n: u64) -> Result<Vec<u8>> {
        Err(Error::NotADriver)
    }
    pub(crate) fn save_as_text_file(_ds: u32, _uri: &str) -> Result<()> {
        Err(Error::NotADriver)
    }
    pub(crate) fn broadcast(_value: &[u8]) -> Result<u64> {
        Err(Error::NotADriver)
    }
    pub(crate) fn accumulator_value(_name: &str) -> Result<i64> {
        Err(Error::NotADriver)
    }
}

/// Native test helpers (not built for WebAssembly): stand-ins for what a weft
/// host provides to user functions.
///
/// ```
/// use weft::dispatch::run_chain;
/// use weft::{codec::batch::BatchWriter, testing};
///
/// #[weft::map]
/// fn scale(x: i64, by: &i64) -> i64 { x * by }
///
/// let mut input = BatchWriter::new();
/// input.push(&weft::Record::to_record_bytes(&3i64));
/// let out = run_chain(&[testing::op(scale.with(&7))], input.finish()).unwrap();
/// assert_eq!(weft::codec::batch::entries(&out).next().unwrap().unwrap(), weft::Record::to_record_bytes(&21i64));
///
/// weft::accumulator_add("lines", 2);
/// assert_eq!(testing::accumulator("lines"), 2);
/// ```
pub mod testing {
    use super::{ACCUMULATORS, BROADCASTS};
    use crate::dispatch::Op;
    use crate::param::{Bindable, Param};
    use crate::{Function, Record};

    /// The chain step a dataset method would make of `f` (a user function,
    /// or one with its parameter bound), for [`run_chain`](crate::dispatch::run_chain):
    /// a bound value becomes a broadcast value of this thread, as a host
    /// would ship it.
    pub fn op<B: Bindable>(f: B) -> Op {
        let param = f.into_param().map(|p| match p {
            Param::Broadcast(id) => id,
            Param::Value(bytes) => keep(bytes),
        });
        Op { param, ..Op::new(B::Function::KIND, B::Function::NAME) }
    }

    /// A broadcast value of this thread, as [`Context::broadcast`](crate::Context::broadcast)
    /// makes one in a job, to bind with `f.with(&handle)`.
    pub fn broadcast<T: Record>(value: &T) -> crate::Broadcast<T> {
        crate::Broadcast::from_id(keep(value.to_record_bytes()))
    }

    /// Keep `bytes` as this thread's next broadcast value; its id.
    fn keep(bytes: Vec<u8>) -> u64 {
        BROADCASTS.with(|b| {
            let mut b = b.borrow_mut();
            let id = b.keys().max().map_or(0, |m| m + 1);
            b.insert(id, bytes);
            id
        })
    }

    /// The sum of this thread's `accumulator_add` calls for `name`, including
    /// those not yet flushed.
    pub fn accumulator(name: &str) -> i64 {
        crate::task::flush_accumulators();
        ACCUMULATORS.with(|a| a.borrow().get(name).copied().unwrap_or(0))
    }
}
