//! The metering record of ordinary tasks, checked against what was sent.

use crate::support::{chain, limits, lines, run, strings};
use weft_agent::{Chain, Op, OpKind};
use weft_core::metering::EndReason;

#[test]
fn echo_meters_records_bytes_fuel_memory_and_time() {
    let records: Vec<String> = (0..1000).map(|i| format!("record number {i}")).collect();
    let batches = vec![lines(&records[..500]), lines(&records[500..])];
    let bytes_in: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let (out, r) = run("hostile", chain(OpKind::Map, "echo"), limits(), batches);
    assert_eq!(r.end, EndReason::Finished, "{}", r.log);
    let echoed: Vec<String> = out.iter().flat_map(|b| strings(b)).collect();
    assert_eq!(echoed, records);
    let m = &r.metering;
    assert_eq!((m.records_in, m.records_out, m.calls), (1000, 1000, 2));
    assert_eq!(m.bytes_in, bytes_in);
    assert_eq!(m.bytes_out, out.iter().map(|b| b.len() as u64).sum::<u64>());
    assert!(m.fuel > 1000, "fuel {}", m.fuel);
    assert!(m.peak_memory >= 64 << 10, "peak memory {}", m.peak_memory);
    assert!(m.instantiate > std::time::Duration::ZERO && m.instantiate <= m.wall);
    assert!(m.cpu > std::time::Duration::ZERO && m.cpu <= m.wall + std::time::Duration::from_millis(5));
}

#[test]
fn split_words_matches_a_native_split() {
    let text = "the quick  brown fox\njumps over\tthe lazy dog\n\nThe END";
    let input: Vec<&str> = text.lines().collect();
    let (out, r) = run("hostile", chain(OpKind::FlatMap, "split_words"), limits(), vec![lines(&input)]);
    assert_eq!(r.end, EndReason::Finished, "{}", r.log);
    let native: Vec<String> =
        input.iter().flat_map(|l| l.split_whitespace().map(str::to_lowercase)).collect();
    assert_eq!(strings(&out[0]), native);
    assert_eq!(r.metering.records_in, input.len() as u64);
    assert_eq!(r.metering.records_out, native.len() as u64);
}

#[test]
fn chains_pipeline_several_steps_in_one_call() {
    let chain = Chain {
        ops: vec![
            Op { kind: OpKind::FlatMap, function: "split_words".into(), param: None },
            Op { kind: OpKind::Map, function: "echo".into(), param: None },
        ],
        input_keyed: false,
        output_keyed: false,
    };
    let (out, r) = run("hostile", chain, limits(), vec![lines(["a b", "c"])]);
    assert_eq!(r.end, EndReason::Finished, "{}", r.log);
    assert_eq!(strings(&out[0]), ["a", "b", "c"]);
    assert_eq!(r.metering.calls, 1);
}
