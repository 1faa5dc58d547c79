//! Hostile guests: each runs at least 100 times and must end with the right
//! typed reason, on time, without growing the host, while the sandbox keeps
//! serving ordinary tasks.

use crate::support::{chain, limits, lines, rss, run, run_on, strings};
use std::cell::RefCell;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use weft_agent::{OpKind, Sandbox, SandboxConfig};
use weft_core::limits::TaskLimits;
use weft_core::metering::{EndReason, TrapKind};

const RUNS: usize = 100;
const GUEST: &str = "hostile";

/// How late a deadline fires, typically (the median of a test's runs): the
/// issue's bound.
const DEADLINE_SLACK: Duration = Duration::from_millis(10);
/// How late any one run's deadline may fire: a run descheduled on a loaded
/// machine (tests in parallel on two cores) may miss the typical bound, but a
/// deadline that does not fire at all, or only by chance, fails here.
const DEADLINE_WORST: Duration = Duration::from_millis(250);

/// Run `function` `RUNS` times, checking each report, and an ordinary task
/// every tenth run to show the sandbox still serves. Hostile runs take turns
/// (one at a time) so that timing and memory figures are their own; host
/// memory is measured after a warm-up, so a leak shows as growth per run.
fn hammer(function: &str, kind: OpKind, limits: TaskLimits, check: impl Fn(&weft_agent::TaskReport)) {
    let _turn = turn();
    let mut warm = 0;
    for i in 0..RUNS {
        let (_, report) = run(GUEST, chain(kind, function), limits.clone(), vec![lines(["x"])]);
        check(&report);
        if i % 10 == 9 {
            still_serving();
        }
        if i == 9 {
            warm = rss();
        }
    }
    let grown = rss().saturating_sub(warm);
    assert!(grown < 32 << 20, "{function}: host RSS grew by {} MiB over {} runs", grown >> 20, RUNS - 10);
}

/// One hostile test at a time (and other tests that spin guests), so that
/// timing and memory figures are each test's own.
pub(crate) fn turn() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

fn still_serving() {
    let (out, report) = run(GUEST, chain(OpKind::Map, "echo"), limits(), vec![lines(["still", "here"])]);
    assert_eq!(report.end, EndReason::Finished, "{}", report.log);
    assert_eq!(strings(&out[0]), ["still", "here"]);
}

/// Check that `report` ended at its `deadline`, and note how late in `late`.
fn on_time(report: &weft_agent::TaskReport, deadline: Duration, late: &RefCell<Vec<Duration>>) {
    assert_eq!(report.end, EndReason::Deadline { limit: deadline }, "log: {}", report.log);
    let wall = report.metering.wall;
    assert!(wall >= deadline, "ended before its deadline: {wall:?}");
    assert!(wall <= deadline + DEADLINE_WORST, "deadline {deadline:?} fired late: {wall:?}");
    late.borrow_mut().push(wall - deadline);
}

/// The deadlines of a test's runs fired within [`DEADLINE_SLACK`], typically.
fn timely(late: RefCell<Vec<Duration>>) {
    let mut late = late.into_inner();
    late.sort();
    let median = late[late.len() / 2];
    assert!(median <= DEADLINE_SLACK, "deadlines fired {median:?} late typically: {late:?}");
}

#[test]
fn infinite_loop_hits_the_deadline() {
    let deadline = Duration::from_millis(20);
    let late = RefCell::default();
    hammer("spin", OpKind::Map, limits().with_deadline(deadline), |r| {
        on_time(r, deadline, &late);
        // 20 ms of spinning is tens of millions of instructions; fuel must show it.
        assert!(r.metering.fuel > 5_000_000, "fuel of a deadline-killed task: {}", r.metering.fuel);
    });
    timely(late);
}

#[test]
fn without_fuel_an_epoch_deadline_stops_an_infinite_loop() {
    // With fuel off the engine compiles in epoch checks instead of fuel
    // yields: the other path to the same `Deadline`.
    let _turn = turn();
    let unmetered = Sandbox::new(SandboxConfig::default().with_max_instances(2).with_fuel(false)).unwrap();
    let deadline = Duration::from_millis(20);
    let late = RefCell::default();
    for _ in 0..20 {
        let (_, r) = run_on(
            &unmetered,
            GUEST,
            chain(OpKind::Map, "spin"),
            limits().with_deadline(deadline),
            vec![lines(["x"])],
        );
        on_time(&r, deadline, &late);
        assert_eq!(r.metering.fuel, 0, "fuel is not metered");
    }
    timely(late);
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let l = limits().with_fuel(5_000_000).with_deadline(Duration::from_secs(30));
    hammer("spin", OpKind::Map, l, |r| {
        assert_eq!(r.end, EndReason::OutOfFuel { limit: 5_000_000 });
        assert!(r.metering.fuel >= 5_000_000, "fuel metered: {}", r.metering.fuel);
    });
}

#[test]
fn sleeping_past_the_deadline_is_cut_off() {
    let deadline = Duration::from_millis(20);
    let late = RefCell::default();
    hammer("sleep", OpKind::Map, limits().with_deadline(deadline), |r| on_time(r, deadline, &late));
    timely(late);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    hammer("grow", OpKind::Map, limits().with_deadline(Duration::from_secs(10)), |r| {
        let EndReason::MemoryLimit { limit, requested } = r.end else { panic!("{:?}\n{}", r.end, r.log) };
        assert_eq!(limit, 64 << 20);
        assert!(requested > limit);
        assert!(r.metering.peak_memory <= limit, "peak {} over limit", r.metering.peak_memory);
    });
}

#[test]
fn a_flood_of_accumulator_names_ends_at_the_memory_limit() {
    let _turn = turn();
    let limit = 64 << 20;
    let l = limits().with_deadline(Duration::from_secs(20));
    // Each call sends 1,000 new names; 2,000 calls would be 2 million names.
    let batches = || (0..2000).map(|_| lines(["x"])).collect::<Vec<_>>();
    let mut warm = 0;
    for i in 0..10 {
        let (_, r) = run(GUEST, chain(OpKind::Map, "accumulate"), l.clone(), batches());
        let EndReason::MemoryLimit { limit: at, requested } = r.end else { panic!("{:?}\n{}", r.end, r.log) };
        assert_eq!(at, limit);
        assert!(requested > limit);
        let host = r.metering.peak_host_memory;
        assert!(
            host <= limit && host > limit / 2,
            "the names held {host} bytes of the host, against {limit}"
        );
        // The sandbox reports the names it took (the master drops a failed
        // attempt's additions); each was charged.
        assert!(r.accumulators.len() * 256 <= limit as usize, "{} names", r.accumulators.len());
        if i == 1 {
            warm = rss();
        }
    }
    let grown = rss().saturating_sub(warm);
    assert!(grown < 32 << 20, "host RSS grew by {} MiB over 8 runs", grown >> 20);
    // Fewer names fit: 20 calls leave 20,000 names, each added once.
    let (_, r) = run(GUEST, chain(OpKind::Map, "accumulate"), l, (0..20).map(|_| lines(["x"])).collect());
    assert_eq!(r.end, EndReason::Finished, "{}", r.log);
    assert_eq!(r.accumulators.len(), 20_000);
    assert!(r.accumulators.values().all(|&v| v == 1));
    assert!(r.metering.peak_host_memory >= 20_000 * 256, "{}", r.metering.peak_host_memory);
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    // The guest's frames hold 1 KiB each, so its shadow stack in linear memory
    // runs out before wasmtime's stack; the sandbox still names it a stack overflow.
    hammer("recurse", OpKind::Map, limits(), |r| {
        let EndReason::GuestTrap { kind, message } = &r.end else { panic!("{:?}", r.end) };
        assert_eq!(*kind, TrapKind::StackOverflow, "{message}");
        assert!(message.contains("deeper"), "the trap names the recursing function: {message}");
    });
}

#[test]
fn enormous_output_is_stopped() {
    // Within 64 MiB of memory the guest cannot build its 1 GiB answer.
    hammer("huge_output", OpKind::FlatMap, limits().with_deadline(Duration::from_secs(10)), |r| {
        assert!(matches!(r.end, EndReason::MemoryLimit { .. }), "{:?}", r.end);
    });
}

#[test]
fn output_over_the_per_call_limit_is_refused() {
    // With memory to spare, the per-call output limit is what stops it.
    let l =
        limits().with_memory(256 << 20).with_output_per_call(1 << 20).with_deadline(Duration::from_secs(30));
    let input: Vec<String> = (0..20_000).map(|i| format!("word{i} another{i} and more words here")).collect();
    let (_, r) = run(GUEST, chain(OpKind::FlatMap, "split_words"), l, vec![lines(&input)]);
    let EndReason::OutputLimit { limit, produced } = r.end else { panic!("{:?}\n{}", r.end, r.log) };
    assert_eq!(limit, 1 << 20);
    assert!(produced > limit);
}

/// One record of `mib` MiB of `x`, as a batch: what `sized_output` returns.
fn sized(mib: usize) -> Vec<u8> {
    lines(["x".repeat(mib << 20)])
}

#[test]
fn a_call_may_return_up_to_its_output_limit() {
    // 150 MiB is past what wasmtime lets one call copy out by default
    // (128 MiB), and within the documented 256 MiB per call.
    let _turn = turn();
    let l = limits().with_memory(512 << 20).with_deadline(Duration::from_secs(30));
    assert_eq!(l.output_per_call.as_u64(), 256 << 20);
    let (out, r) = run(GUEST, chain(OpKind::Map, "sized_output"), l, vec![lines(["150"])]);
    assert_eq!(r.end, EndReason::Finished, "{}", r.log);
    let expected = sized(150);
    assert_eq!(out.len(), 1);
    assert!(out[0] == expected, "the output is the 150 MiB record");
    assert_eq!(r.metering.bytes_out, expected.len() as u64);
    assert_eq!(r.metering.records_out, 1);
}

#[test]
fn a_call_over_its_output_limit_ends_output_limit_with_its_size() {
    // Over a 140 MiB limit, and past wasmtime's default copy budget: the end
    // is the documented `OutputLimit`, with the true size, not a trap.
    let _turn = turn();
    let limit = 140 << 20;
    let l =
        limits().with_memory(512 << 20).with_output_per_call(limit).with_deadline(Duration::from_secs(30));
    let (out, r) = run(GUEST, chain(OpKind::Map, "sized_output"), l, vec![lines(["150"])]);
    let produced = sized(150).len() as u64;
    assert_eq!(r.end, EndReason::OutputLimit { limit, produced }, "{}", r.log);
    assert!(out.is_empty());
    assert_eq!(r.metering.bytes_out, 0, "nothing of a refused call is counted");
}

#[test]
fn endless_printing_is_bounded() {
    let deadline = Duration::from_millis(20);
    let l = limits().with_deadline(deadline).with_log(4096);
    let late = RefCell::default();
    hammer("print_forever", OpKind::Map, l, |r| {
        on_time(r, deadline, &late);
        assert!(r.metering.log_bytes > 4096, "printed only {} bytes", r.metering.log_bytes);
        assert!(r.log.len() < 4096 + 100, "kept {} bytes of log", r.log.len());
        assert!(r.log.contains("bytes of log dropped"));
    });
    timely(late);
}

#[test]
fn panics_are_guest_traps_with_the_message() {
    hammer("panic", OpKind::Map, limits(), |r| {
        let EndReason::GuestTrap { kind, message } = &r.end else { panic!("{:?}", r.end) };
        assert_eq!(*kind, TrapKind::Panic);
        assert!(message.contains("hostile guest panicked on purpose"), "{message}");
    });
}

#[test]
fn unreachable_is_a_guest_trap() {
    hammer("unreachable", OpKind::Map, limits(), |r| {
        assert!(matches!(r.end, EndReason::GuestTrap { kind: TrapKind::Unreachable, .. }), "{:?}", r.end);
    });
}

#[test]
fn files_sockets_and_environment_are_out_of_reach() {
    hammer("escape", OpKind::Map, limits().with_deadline(Duration::from_secs(10)), |r| {
        assert_eq!(r.end, EndReason::Finished, "{}", r.log);
    });
    let (out, _) = run(GUEST, chain(OpKind::Map, "escape"), limits(), vec![lines(["x"])]);
    let report = strings(&out[0]).join("\n");
    let attempts = [
        "open /etc/passwd",
        "read_dir .",
        "read_dir /",
        "tcp connect 127.0.0.1:1",
        "env var HOME",
        "env vars",
        "args",
    ];
    for attempt in attempts {
        let line = report
            .lines()
            .find(|l| l.starts_with(attempt))
            .unwrap_or_else(|| panic!("no `{attempt}` in {report}"));
        assert!(line.starts_with(&format!("{attempt}: denied")), "not denied: {line}");
    }
    assert!(!report.contains("ALLOWED"), "{report}");
}
