//! The driver API outside a weft host.

use weft::prelude::*;
use weft::{Error, testing};

#[test]
fn accumulators_sum_per_name() {
    accumulator_add("a", 2);
    accumulator_add("a", 3);
    accumulator_add("b", -1);
    assert_eq!(testing::accumulator("a"), 5);
    assert_eq!(testing::accumulator("b"), -1);
    assert_eq!(testing::accumulator("c"), 0);
}

#[test]
fn task_info_natively() {
    assert_eq!(task_info().job_id, "native");
}

#[test]
fn errors_display_their_cause() {
    assert_eq!(Error::msg("bad input").to_string(), "bad input");
    assert_eq!(Error::JobFailed("agent lost".into()).to_string(), "job failed: agent lost");
    let decode = weft::RecordError::Width { type_name: "i64", expected: 8, found: 1 };
    assert_eq!(Error::from(decode).to_string(), "records do not decode: i64: expected 8 bytes, found 1");
}
