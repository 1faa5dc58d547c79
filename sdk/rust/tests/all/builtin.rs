//! Built-in steps (`weft:...` names) through the dispatcher, against the
//! SDK's own encodings computed natively.

use crate::{decode_keyed, decode_plain, keyed, plain, run};
use weft::codec::key::EncodeKey;
use weft::{Key, OpKind, Record};

const MB: OpKind = OpKind::MapBatch;

#[weft::map]
fn word_len(word: String) -> u32 {
    word.len() as u32
}

#[weft::map]
fn len_and_word(word: String) -> (u32, String) {
    (word.len() as u32, word)
}

#[weft::map]
fn shout(word: String) -> String {
    word.to_uppercase()
}

#[weft::flat_map]
fn letters(word: String) -> Vec<char> {
    word.chars().collect()
}

fn words() -> Vec<String> {
    ["b", "", "ccc", "a\0z", "b", "dd"].map(String::from).to_vec()
}

#[test]
fn keys_are_transcoded_to_records_and_back() {
    type K = (String, i32, Option<(u8, String)>);
    let pairs: Vec<(K, u8)> = vec![
        (("x\0y".into(), -4, Some((7, "t".into()))), 1),
        ((String::new(), i32::MAX, None), 2),
        (("z".into(), 0, Some((0, String::new()))), 3),
    ];
    let schema = K::schema().unwrap().to_string();
    let keys = run(&[(MB, &format!("weft:keys:{schema}"))], keyed(&pairs)).unwrap();
    let expected: Vec<K> = pairs.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(decode_plain::<K>(&keys), expected);
    // And back: keyed by themselves, the keys sort as the tuples do.
    let back = run(&[(MB, &format!("weft:key-self:{schema}"))], keys).unwrap();
    let back = decode_keyed::<K, K>(&back);
    assert!(back.iter().zip(&expected).all(|((k, v), e)| k == e && v == e));
    assert_eq!(decode_plain::<u8>(&run(&[(MB, "weft:values")], keyed(&pairs)).unwrap()), [1, 2, 3]);
}

#[test]
fn counting_steps_write_ones() {
    let ones = run(&[(MB, "weft:ones")], keyed(&[("a", 5u8), ("b", 6)])).unwrap();
    assert_eq!(decode_keyed::<String, i64>(&ones), [("a".into(), 1), ("b".into(), 1)]);
    let counted = run(&[(MB, "weft:count-self:s")], plain(&words())).unwrap();
    let expected: Vec<(String, i64)> = words().into_iter().map(|w| (w, 1)).collect();
    assert_eq!(decode_keyed::<String, i64>(&counted), expected);
    let unit = run(&[(MB, "weft:unit-key")], plain(&[3i64, 4])).unwrap();
    assert_eq!(decode_keyed::<(), i64>(&unit), [((), 3), ((), 4)]);
}

#[test]
fn user_functions_apply_to_values_and_make_keys() {
    let pairs: Vec<(i64, String)> = words().into_iter().enumerate().map(|(i, w)| (i as i64, w)).collect();
    let mapped = run(&[(MB, "weft:map-values:word_len")], keyed(&pairs)).unwrap();
    let expected: Vec<(i64, u32)> = pairs.iter().map(|(k, w)| (*k, w.len() as u32)).collect();
    assert_eq!(decode_keyed::<i64, u32>(&mapped), expected);
    let flat = run(&[(MB, "weft:flat-map-values:letters")], keyed(&pairs)).unwrap();
    let expected: Vec<(i64, char)> = pairs.iter().flat_map(|(k, w)| w.chars().map(|c| (*k, c))).collect();
    assert_eq!(decode_keyed::<i64, char>(&flat), expected);
    let by = run(&[(MB, "weft:key-by:s:shout")], plain(&words())).unwrap();
    let expected: Vec<(String, String)> = words().into_iter().map(|w| (w.to_uppercase(), w)).collect();
    assert_eq!(decode_keyed::<String, String>(&by), expected);
    let by = run(&[(MB, "weft:key-by:u32:word_len")], plain(&words())).unwrap();
    let expected: Vec<(u32, String)> = words().into_iter().map(|w| (w.len() as u32, w)).collect();
    assert_eq!(decode_keyed::<u32, String>(&by), expected);
}

#[test]
fn built_in_steps_chain_with_user_functions() {
    // A user map, a built-in step, a user map again: one chain.
    let chain = [(OpKind::Map, "len_and_word"), (MB, "weft:values"), (OpKind::Map, "word_len")];
    let out = run(&chain, plain(&words())).unwrap();
    assert_eq!(decode_plain::<u32>(&out), words().iter().map(|w| w.len() as u32).collect::<Vec<_>>());
}

#[test]
fn display_writes_what_rust_displays() {
    let values = [i64::MIN, -1, 0, 7, i64::MAX];
    let lines = run(&[(MB, "weft:display:i64")], plain(&values)).unwrap();
    assert_eq!(decode_plain::<String>(&lines), values.map(|v| v.to_string()));
    let pairs = [("a b".to_string(), 'x'), (String::new(), 'é')];
    let lines = run(&[(MB, "weft:display-pairs:s:c")], keyed(&pairs)).unwrap();
    assert_eq!(decode_plain::<String>(&lines), ["a b\tx", "\té"]);
    let lines = run(&[(MB, "weft:display-pairs:i32:f64")], keyed(&[(-3i32, 2.5f64)])).unwrap();
    assert_eq!(decode_plain::<String>(&lines), ["-3\t2.5"]);
    let floats = [-2.5f64, 0.1, 1e300];
    let lines = run(&[(MB, "weft:display:f64")], plain(&floats)).unwrap();
    assert_eq!(decode_plain::<String>(&lines), floats.map(|v| v.to_string()));
}

#[test]
fn a_bad_built_in_step_names_the_fix() {
    let err = run(&[(MB, "weft:map-values:nope")], keyed(&[(1u8, 2u8)])).unwrap_err();
    assert!(err.to_string().contains("#[weft::map] function named `nope`"), "{err}");
    assert!(run(&[(MB, "weft:explode")], Vec::new()).is_err());
    let err = run(&[(MB, "weft:keys:(s,")], keyed(&[(1u8, 2u8)])).unwrap_err();
    assert!(err.to_string().contains("does not parse"), "{err}");
    let err = run(&[(MB, "weft:keys:u64")], keyed(&[(1u8, 2u8)])).unwrap_err();
    assert!(err.to_string().contains("wrong width") || err.to_string().contains("too short"), "{err}");
    assert_eq!(1i64.to_key_bytes(), 1i64.to_record_bytes(), "the ones the steps write");
}
