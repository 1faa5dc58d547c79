//! Bound parameters: functions that take a value bound in the driver
//! (`f.with(&value)`), run through the dispatcher natively.

use crate::{decode_keyed, decode_plain, keyed, plain};
use weft::dispatch::{CallError, Op, run_chain};
use weft::testing;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Weights {
    w: Vec<f64>,
}
weft::serde_record!(Weights);

#[weft::map]
fn p_dot(x: Vec<f64>, weights: &Weights) -> f64 {
    x.iter().zip(&weights.w).map(|(a, b)| a * b).sum()
}

#[weft::filter]
fn p_longer(word: &str, min: &u32) -> bool {
    word.len() > *min as usize
}

#[weft::flat_map]
fn p_repeat(word: String, times: &u32) -> Vec<String> {
    vec![word; *times as usize]
}

#[weft::map_batch]
fn p_tag(words: Vec<String>, tag: &String) -> Vec<(String, String)> {
    words.into_iter().map(|w| (tag.clone(), w)).collect()
}

#[weft::map]
fn p_keyed((k, v): (String, i64), offset: &i64) -> (String, i64) {
    (k, v + offset)
}

#[weft::map]
fn p_len(word: &str) -> u32 {
    word.len() as u32
}

#[test]
fn each_kind_takes_its_bound_parameter() {
    let rows = vec![vec![1.0, 2.0], vec![3.0, -1.0]];
    let w = Weights { w: vec![0.5, 2.0] };
    let out = run_chain(&[testing::op(p_dot.with(&w))], plain(&rows)).unwrap();
    let native: Vec<f64> = rows.iter().map(|r| p_dot.call(r.clone(), &w)).collect();
    assert_eq!(decode_plain::<f64>(&out), native);
    assert_eq!(native, [4.5, -0.5]);

    let words: Vec<String> = ["a", "bbb", "cc", "dddd"].map(String::from).to_vec();
    let out = run_chain(&[testing::op(p_longer.with(&2))], plain(&words)).unwrap();
    assert_eq!(decode_plain::<String>(&out), ["bbb", "dddd"]);

    let out = run_chain(&[testing::op(p_repeat.with(&2))], plain(&words[..2])).unwrap();
    assert_eq!(decode_plain::<String>(&out), ["a", "a", "bbb", "bbb"]);

    let out = run_chain(&[testing::op(p_tag.with(&"t".to_string()))], plain(&words[..2])).unwrap();
    assert_eq!(decode_keyed::<String, String>(&out), [("t".into(), "a".into()), ("t".into(), "bbb".into())]);

    let pairs = vec![("x".to_string(), 1i64), ("y".to_string(), 2)];
    let out = run_chain(&[testing::op(p_keyed.with(&10))], keyed(&pairs)).unwrap();
    assert_eq!(decode_keyed::<String, i64>(&out), [("x".into(), 11), ("y".into(), 12)]);
}

#[test]
fn the_same_function_twice_in_one_fused_chain_gets_each_steps_value() {
    let words: Vec<String> = ["a", "bb", "ccc", "dddd", "eeeee"].map(String::from).to_vec();
    // filter(>1) then repeat(x2) then filter(>3) then len: fused record by record.
    let chain = [
        testing::op(p_longer.with(&1)),
        testing::op(p_repeat.with(&2)),
        testing::op(p_longer.with(&3)),
        testing::op(p_len),
    ];
    let out = run_chain(&chain, plain(&words)).unwrap();
    let native: Vec<u32> = words
        .iter()
        .filter(|w| w.len() > 1)
        .flat_map(|w| [w.clone(), w.clone()])
        .filter(|w| w.len() > 3)
        .map(|w| w.len() as u32)
        .collect();
    assert_eq!(decode_plain::<u32>(&out), native);
    assert_eq!(native, [4, 4, 5, 5]);
}

#[test]
fn a_broadcast_binds_as_the_parameter() {
    let stop = testing::broadcast(&3u32);
    let words: Vec<String> = ["abcd", "ab"].map(String::from).to_vec();
    let out = run_chain(&[testing::op(p_longer.with(&stop))], plain(&words)).unwrap();
    assert_eq!(decode_plain::<String>(&out), ["abcd"]);
    let twice = [testing::op(p_longer.with(&stop)), testing::op(p_longer.with(&stop))];
    assert_eq!(twice[0].param, twice[1].param, "bound by id, not copied");
}

#[test]
fn bad_bindings_fail_with_the_function_and_type() {
    let words = plain(&["abc".to_string()]);
    // A value of another type: names the function and the type it wanted.
    let wrong = Op { param: testing::op(p_dot.with(&Weights { w: vec![] })).param, ..Op::of(p_longer) };
    let err = run_chain(&[wrong], words.clone()).unwrap_err();
    let CallError::Decode(msg) = err else { panic!("{err:?}") };
    assert!(msg.contains("filter `p_longer`") && msg.contains("`u32`"), "{msg}");
    // A function that takes a parameter, with none bound.
    let err = run_chain(&[Op::of(p_longer)], words.clone()).unwrap_err();
    assert!(err.to_string().contains("takes a parameter of type `u32`, but none is bound"), "{err}");
    // A parameter bound to a function that takes none.
    let extra = Op { param: testing::op(p_longer.with(&0)).param, ..Op::of(p_len) };
    let err = run_chain(&[extra], words.clone()).unwrap_err();
    assert!(err.to_string().contains("`p_len` takes no parameter"), "{err}");
    // A broadcast value the task does not have.
    let err = run_chain(&[Op { param: Some(u64::MAX), ..Op::of(p_longer) }], words).unwrap_err();
    assert!(err.to_string().contains("is not in this task"), "{err}");
    // Called natively without the dispatcher, the unbound constant says what to do.
    let err = weft::FilterFn::apply(&p_longer, &"abc".to_string()).unwrap_err();
    assert!(err.message().contains("p_longer.with(&value)"), "{err:?}");
}
