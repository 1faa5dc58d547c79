//! One task attempt's instance: instantiate, call, meter, classify the end.

use super::Sandbox;
use super::bindings::Job;
use super::cache::Prepared;
use super::host::{DriverHost, Op, TaskInfo, TaskState};
use super::limiter::{Limiter, MemoryLimitExceeded};
use super::log::TaskLog;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{Store, Trap, UpdateDeadline};
use weft_core::codec::batch;
use weft_core::limits::TaskLimits;
use weft_core::metering::{EndReason, TaskMetering, TrapKind};

/// Fuel between two saves of the fuel count (about a millisecond of guest code).
const FUEL_YIELD_INTERVAL: u64 = 2_000_000;

/// What a task needs besides its component.
#[derive(Default)]
pub struct TaskContext {
    /// Where the task sits in its job.
    pub info: TaskInfo,
    /// Its budget.
    pub limits: TaskLimits,
    /// Broadcast values readable through the `broadcast` import.
    pub broadcasts: Arc<BTreeMap<u64, Vec<u8>>>,
    /// The cluster side of the driver imports; `None` inside a task.
    pub driver: Option<Box<dyn DriverHost>>,
}

impl Default for TaskInfo {
    fn default() -> Self {
        TaskInfo { job_id: String::new(), stage_id: 0, partition: 0, attempt: 0 }
    }
}

/// A chain of narrow steps and the shape of its input and output.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The steps, in order.
    pub ops: Vec<Op>,
    /// Whether the input batches hold pairs (two entries per record).
    pub input_keyed: bool,
    /// Whether the output batches hold pairs.
    pub output_keyed: bool,
}

/// How a task attempt ended, what it consumed and what it left behind.
#[derive(Debug, Clone)]
pub struct TaskReport {
    /// The verdict.
    pub end: EndReason,
    /// What the attempt consumed.
    pub metering: TaskMetering,
    /// Its bounded stdout/stderr/log.
    pub log: String,
    /// Its additions to the job's accumulators.
    pub accumulators: BTreeMap<String, i64>,
}

/// A live instance of a component, running one task attempt.
///
/// Created by [`Sandbox::instantiate`]; call [`run_chain`](Self::run_chain)
/// once per batch (or [`run_main`](Self::run_main) for a driver), then
/// [`finish`](Self::finish). After an error the instance is spent: the error
/// is the report, and further calls return it again.
///
/// CPU time is measured on the calling thread, so an instance must stay on one
/// thread from instantiation to finish (the [`WasmPool`](crate::WasmPool)
/// guarantees that).
pub struct TaskInstance {
    store: Store<TaskState>,
    job: Job,
    limits: TaskLimits,
    fuel_enabled: bool,
    started: Instant,
    cpu_started: Option<cpu_time::ThreadTime>,
    deadline: Instant,
    metering: TaskMetering,
    ended: Option<EndReason>,
}

impl Sandbox {
    /// Instantiate `prepared` for one task attempt under `ctx.limits` (capped
    /// by the sandbox's maxima).
    ///
    /// # Errors
    /// The report of an attempt that ended while instantiating: a component's
    /// start-up code runs here and can trap, run out of fuel or memory.
    pub async fn instantiate(
        &self,
        prepared: &Prepared,
        ctx: TaskContext,
    ) -> Result<TaskInstance, TaskReport> {
        let started = Instant::now();
        let cpu_started = cpu_time::ThreadTime::try_now().ok();
        let limits = ctx.limits.capped_by(&self.config().max_limits);
        let log = TaskLog::new(usize::try_from(limits.log.as_u64()).unwrap_or(usize::MAX));
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.stdout(log.clone())
            .stderr(log.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let state = TaskState {
            wasi: wasi.build(),
            table: Default::default(),
            limiter: Limiter::new(limits.memory.as_u64()),
            log,
            info: ctx.info,
            broadcasts: ctx.broadcasts,
            accumulators: BTreeMap::new(),
            driver: ctx.driver,
        };
        let mut store = Store::new(self.engine(), state);
        store.limiter(|s| &mut s.limiter);
        let fuel_enabled = self.config().fuel;
        if fuel_enabled {
            // Neither can fail: fuel is enabled on the engine. The yield interval
            // makes compiled code save its fuel count to the store at least every
            // FUEL_YIELD_INTERVAL units: wasmtime does not save it before an epoch
            // interrupt, so without this a task stopped by its deadline would
            // report only the fuel of its last host call.
            let _ = store.set_fuel(limits.fuel);
            let _ = store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL));
        }
        let deadline = started + limits.deadline;
        let tick = self.config().epoch_tick;
        store.set_epoch_deadline(ticks_until(deadline, tick));
        // Ticks are a sleeping thread's count and run slow under load, so the
        // deadline is checked against the clock whenever the count runs out.
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Continue(ticks_until(deadline, tick)))
            }
        });

        let result =
            tokio::time::timeout_at(deadline.into(), prepared.pre.instantiate_async(&mut store)).await;
        let instantiate = started.elapsed();
        let outcome = match result {
            Ok(Ok(job)) => Ok(job),
            Ok(Err(e)) => Err(classify(&e, &store, &limits)),
            Err(_) => Err(EndReason::Deadline { limit: limits.deadline }),
        };
        let metering = TaskMetering { instantiate, ..Default::default() };
        match outcome {
            Ok(job) => Ok(TaskInstance {
                store,
                job,
                limits,
                fuel_enabled,
                started,
                cpu_started,
                deadline,
                metering,
                ended: None,
            }),
            Err(end) => Err(report(store, limits.fuel, fuel_enabled, started, cpu_started, metering, end)),
        }
    }
}

impl TaskInstance {
    /// Run `chain` over one input batch and return the output batch.
    ///
    /// # Errors
    /// The [`EndReason`] that ends the attempt; the instance is spent.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropping the future mid-call leaves the instance spent
    /// (its store may be mid-call); finish it with [`EndReason::Killed`].
    pub async fn run_chain(&mut self, chain: &Chain, input: &[u8]) -> Result<Vec<u8>, EndReason> {
        if let Some(end) = &self.ended {
            return Err(end.clone());
        }
        let records_in = records(input, chain.input_keyed).map_err(|e| self.end(host_error(e)))?;
        let ops: Vec<Op> = chain.ops.clone();
        let call = self.job.weft_grid_dispatcher().call_run_chain(&mut self.store, &ops, input);
        let result = tokio::time::timeout_at(self.deadline.into(), call).await;
        self.metering.calls += 1;
        let out = match result {
            Err(_) => return Err(self.end(EndReason::Deadline { limit: self.limits.deadline })),
            Ok(Err(e)) => {
                let end = classify(&e, &self.store, &self.limits);
                return Err(self.end(end));
            }
            Ok(Ok(Err(e))) => return Err(self.end(EndReason::GuestError { message: call_error(e) })),
            Ok(Ok(Ok(out))) => out,
        };
        let limit = self.limits.output_per_call.as_u64();
        if out.len() as u64 > limit {
            return Err(self.end(EndReason::OutputLimit { limit, produced: out.len() as u64 }));
        }
        let records_out = records(&out, chain.output_keyed).map_err(|e| {
            self.end(EndReason::GuestError { message: format!("the guest returned a malformed batch: {e}") })
        })?;
        self.metering.records_in += records_in;
        self.metering.bytes_in += input.len() as u64;
        self.metering.records_out += records_out;
        self.metering.bytes_out += out.len() as u64;
        Ok(out)
    }

    /// Run the job's `run` export (its `main`), for a driver.
    ///
    /// # Errors
    /// The [`EndReason`] that ends the run; the instance is spent.
    pub async fn run_main(&mut self) -> Result<(), EndReason> {
        if let Some(end) = &self.ended {
            return Err(end.clone());
        }
        let call = self.job.call_run(&mut self.store);
        let result = tokio::time::timeout_at(self.deadline.into(), call).await;
        self.metering.calls += 1;
        match result {
            Err(_) => Err(self.end(EndReason::Deadline { limit: self.limits.deadline })),
            Ok(Err(e)) => {
                let end = classify(&e, &self.store, &self.limits);
                Err(self.end(end))
            }
            Ok(Ok(Err(message))) => Err(self.end(EndReason::GuestError { message })),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }

    /// The user functions the component exports.
    ///
    /// # Errors
    /// As [`run_chain`](Self::run_chain).
    pub async fn functions(&mut self) -> Result<Vec<String>, EndReason> {
        if let Some(end) = &self.ended {
            return Err(end.clone());
        }
        let call = self.job.weft_grid_dispatcher().call_functions(&mut self.store);
        match tokio::time::timeout_at(self.deadline.into(), call).await {
            Err(_) => Err(self.end(EndReason::Deadline { limit: self.limits.deadline })),
            Ok(Err(e)) => {
                let end = classify(&e, &self.store, &self.limits);
                Err(self.end(end))
            }
            Ok(Ok(names)) => Ok(names),
        }
    }

    fn end(&mut self, end: EndReason) -> EndReason {
        self.ended = Some(end.clone());
        end
    }

    /// End the attempt: its verdict is the first error a call returned, or
    /// `end` when none did.
    pub fn finish(self, end: EndReason) -> TaskReport {
        let end = self.ended.unwrap_or(end);
        report(
            self.store,
            self.limits.fuel,
            self.fuel_enabled,
            self.started,
            self.cpu_started,
            self.metering,
            end,
        )
    }
}

fn report(
    store: Store<TaskState>,
    fuel_limit: u64,
    fuel_enabled: bool,
    started: Instant,
    cpu_started: Option<cpu_time::ThreadTime>,
    mut metering: TaskMetering,
    end: EndReason,
) -> TaskReport {
    metering.wall = started.elapsed();
    metering.cpu = cpu_started.map(|t| t.elapsed()).unwrap_or_default();
    if fuel_enabled {
        metering.fuel = fuel_limit.saturating_sub(store.get_fuel().unwrap_or(0));
    }
    let state = store.into_data();
    metering.peak_memory = state.limiter.peak();
    metering.log_bytes = state.log.total_bytes();
    TaskReport { end, metering, log: state.log.contents(), accumulators: state.accumulators }
}

/// Epoch ticks to wait before looking at the clock again: half the time left
/// while it is long, then every tick.
fn ticks_until(deadline: Instant, tick: std::time::Duration) -> u64 {
    let left = deadline.saturating_duration_since(Instant::now());
    let ticks = (left.as_nanos() / tick.as_nanos().max(1)) as u64;
    if ticks > 64 { ticks / 2 } else { 1 }
}

/// Count the records of a batch, checking its framing.
fn records(buf: &[u8], keyed: bool) -> Result<u64, weft_core::codec::DecodeError> {
    let entries = batch::count(buf)? as u64;
    if keyed && entries % 2 == 1 {
        return Err(weft_core::codec::DecodeError::UnpairedKey { entries: entries as usize });
    }
    Ok(if keyed { entries / 2 } else { entries })
}

fn host_error(e: impl std::fmt::Display) -> EndReason {
    EndReason::HostError { message: format!("input batch is malformed: {e}") }
}

fn call_error(e: super::bindings::types::CallError) -> String {
    use super::bindings::types::CallError;
    match e {
        CallError::UnknownFunction(name) => format!(
            "the component exports no user function named `{name}` (check the name, or rebuild the job)"
        ),
        CallError::Decode(msg) => format!("input does not decode as the function's record type: {msg}"),
        CallError::User(msg) => msg,
    }
}

/// The one mapping from a wasmtime error to the task's end reason.
pub(crate) fn classify(err: &wasmtime::Error, store: &Store<TaskState>, limits: &TaskLimits) -> EndReason {
    if let Some(m) = err.downcast_ref::<MemoryLimitExceeded>() {
        return EndReason::MemoryLimit { limit: m.limit, requested: m.requested };
    }
    let Some(trap) = err.downcast_ref::<Trap>() else {
        // Not a trap: a failure lifting the guest's values (bad pointers, invalid
        // UTF-8) or in a host import. Both are the guest's doing here, since
        // weft's imports never fail.
        return EndReason::GuestTrap { kind: TrapKind::Other, message: format!("{err:#}") };
    };
    let kind = match trap {
        Trap::OutOfFuel => return EndReason::OutOfFuel { limit: limits.fuel },
        Trap::Interrupt => return EndReason::Deadline { limit: limits.deadline },
        Trap::StackOverflow => TrapKind::StackOverflow,
        Trap::UnreachableCodeReached => TrapKind::Unreachable,
        Trap::MemoryOutOfBounds | Trap::TableOutOfBounds | Trap::HeapMisaligned => TrapKind::OutOfBounds,
        Trap::IntegerOverflow | Trap::IntegerDivisionByZero | Trap::BadConversionToInteger => {
            TrapKind::Arithmetic
        }
        Trap::IndirectCallToNull | Trap::BadSignature => TrapKind::BadCall,
        _ => TrapKind::Other,
    };
    let panic = store.data().log.last_line_containing("panicked at");
    match (kind, panic) {
        (TrapKind::Unreachable, Some(message)) => EndReason::GuestTrap { kind: TrapKind::Panic, message },
        (kind, _) => EndReason::GuestTrap { kind, message: format!("{err:?}") },
    }
}
