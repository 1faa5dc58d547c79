//! What user functions can ask of the task they run in: accumulators, task
//! info, and (in `log.rs`) logging.

use crate::host;
use std::cell::RefCell;
use std::collections::HashMap;

/// Where a task sits in its job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskInfo {
    /// The job this task belongs to.
    pub job_id: String,
    /// The stage within the job.
    pub stage_id: u32,
    /// The partition the task computes.
    pub partition: u32,
    /// Attempt number, starting at 0.
    pub attempt: u32,
}

/// This task's place in its job.
pub fn task_info() -> TaskInfo {
    host::task_info()
}

thread_local! {
    /// Additions not yet sent to the host, per accumulator.
    static PENDING: RefCell<HashMap<String, i64>> = RefCell::new(HashMap::new());
}

/// Add `delta` to the named accumulator of this task attempt.
///
/// Cheap enough to call per record: additions are summed in the guest and sent
/// to the host when the current `run-chain` call returns; a call that traps
/// sends nothing, and a failed attempt's additions are discarded by the host
/// either way. The driver reads the total with
/// [`Context::accumulator_value`](crate::Context::accumulator_value).
///
/// Call it from user functions: additions made in `main` itself are not
/// counted (keep a local variable there instead).
pub fn accumulator_add(name: &str, delta: i64) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        match p.get_mut(name) {
            Some(sum) => *sum = sum.wrapping_add(delta),
            None => {
                p.insert(name.to_owned(), delta);
            }
        }
    });
}

/// Send pending accumulator additions to the host.
pub(crate) fn flush_accumulators() {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    for (name, delta) in pending {
        host::accumulator_add(&name, delta);
    }
}
