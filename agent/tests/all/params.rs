//! Bound parameters in the real sandbox: a chain step names one of the job's
//! broadcast values as its function's parameter (the log-mining example's
//! `contains`, `fn(&str, &String) -> bool`), which the guest reads through
//! the `broadcast` import and decodes once.

use crate::support::{limits, lines, run_in, sandbox, strings};
use std::collections::BTreeMap;
use std::sync::Arc;
use weft_agent::{Chain, Op, OpKind, TaskContext};
use weft_core::metering::EndReason;

fn bound(function: &str, kind: OpKind, param: Option<u64>) -> Op {
    Op { kind, function: function.into(), param }
}

/// A task of the log-mining guest with broadcast values `values`.
fn run(ops: Vec<Op>, values: &[(u64, &[u8])], batches: Vec<Vec<u8>>) -> (Vec<Vec<u8>>, EndReason) {
    let broadcasts: BTreeMap<u64, bytes::Bytes> =
        values.iter().map(|(id, v)| (*id, bytes::Bytes::copy_from_slice(v))).collect();
    let ctx = TaskContext { limits: limits(), broadcasts: Arc::new(broadcasts), ..Default::default() };
    let chain = Chain { ops, input_keyed: false, output_keyed: false };
    let (out, report) = run_in(&sandbox().0, "logmining", chain, ctx, batches);
    (out, report.end)
}

#[test]
fn each_step_reads_the_value_it_names_in_every_batch() {
    let input = ["mysql down", "php warning", "mysql and php", "disk full"];
    let batches = vec![lines(input), lines(["php again", "mysql again"])];
    // Two steps of one function, each with its own value: records with both.
    let ops = vec![bound("contains", OpKind::Filter, Some(1)), bound("contains", OpKind::Filter, Some(0))];
    let (out, end) = run(ops, &[(0, b"mysql"), (1, b"php")], batches.clone());
    assert_eq!(end, EndReason::Finished);
    let got: Vec<String> = out.iter().flat_map(|b| strings(b)).collect();
    let native: Vec<&str> = input
        .iter()
        .chain(&["php again", "mysql again"])
        .filter(|l| l.contains("php") && l.contains("mysql"))
        .copied()
        .collect();
    assert_eq!(got, native);
    assert_eq!(native, ["mysql and php"]);

    let (out, end) = run(vec![bound("contains", OpKind::Filter, Some(0))], &[(0, b"again")], batches);
    assert_eq!(end, EndReason::Finished);
    assert_eq!(out.iter().flat_map(|b| strings(b)).collect::<Vec<_>>(), ["php again", "mysql again"]);
}

#[test]
fn a_bad_binding_fails_the_task_naming_the_function_and_type() {
    let batches = || vec![lines(["x"])];
    // Not UTF-8: does not decode as the `String` parameter.
    let (_, end) = run(vec![bound("contains", OpKind::Filter, Some(0))], &[(0, &[0xff, 0xfe])], batches());
    let EndReason::GuestError { message } = &end else { panic!("{end:?}") };
    assert!(
        message.contains("parameter bound to filter `contains` does not decode as `alloc::string::String`"),
        "{message}"
    );
    // No value bound to a function that needs one.
    let (_, end) = run(vec![bound("contains", OpKind::Filter, None)], &[], batches());
    let EndReason::GuestError { message } = &end else { panic!("{end:?}") };
    assert!(
        message.contains("takes a parameter of type `alloc::string::String`, but none is bound"),
        "{message}"
    );
    // A value the task was not given.
    let (_, end) = run(vec![bound("contains", OpKind::Filter, Some(3))], &[(0, b"a")], batches());
    let EndReason::GuestError { message } = &end else { panic!("{end:?}") };
    assert!(message.contains("broadcast value 3") && message.contains("not in this task"), "{message}");
    // A value bound to a function that takes none.
    let (_, end) = run(vec![bound("is_error", OpKind::Filter, Some(0))], &[(0, b"a")], batches());
    let EndReason::GuestError { message } = &end else { panic!("{end:?}") };
    assert!(message.contains("`is_error` takes no parameter"), "{message}");
}
