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

/// Both sides tagged and grouped as the host would hand them over: one pair
/// per key whose value frames every tagged value.
fn grouped(left: &[(u8, &str)], right: &[(u8, char)]) -> Vec<u8> {
    let left: Vec<(u8, String)> = left.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let tagged_left = run(&[(MB, "weft:tag:0")], keyed(&left)).unwrap();
    let tagged_right = run(&[(MB, "weft:tag:1")], keyed(right)).unwrap();
    let mut groups: std::collections::BTreeMap<Vec<u8>, Vec<Vec<u8>>> = Default::default();
    for side in [tagged_left, tagged_right] {
        for pair in weft::codec::batch::pairs(&side) {
            let (k, v) = pair.unwrap();
            groups.entry(k.to_vec()).or_default().push(v.to_vec());
        }
    }
    let mut w = weft::codec::batch::BatchWriter::new();
    for (k, vs) in groups {
        w.push(&k);
        w.push_with(|o| {
            for v in vs {
                o.extend_from_slice(&(v.len() as u32).to_le_bytes());
                o.extend_from_slice(&v);
            }
        });
    }
    w.finish()
}

#[test]
fn grouped_sides_make_cogroups_and_outer_joins() {
    let left = [(1u8, "a"), (1, "b"), (2, "c")];
    let right = [(1u8, 'x'), (3, 'y')];
    let groups = grouped(&left, &right);
    let cogroup = run(&[(MB, "weft:cogroup")], groups.clone()).unwrap();
    type Co = (Vec<String>, Vec<char>);
    let want: Vec<(u8, Co)> = vec![
        (1, (vec!["a".into(), "b".into()], vec!['x'])),
        (2, (vec!["c".into()], vec![])),
        (3, (vec![], vec!['y'])),
    ];
    assert_eq!(decode_keyed::<u8, Co>(&cogroup), want);
    let left_outer = run(&[(MB, "weft:left-outer")], groups.clone()).unwrap();
    let want: Vec<(u8, (String, Option<char>))> =
        vec![(1, ("a".into(), Some('x'))), (1, ("b".into(), Some('x'))), (2, ("c".into(), None))];
    assert_eq!(decode_keyed::<u8, (String, Option<char>)>(&left_outer), want);
    let right_outer = run(&[(MB, "weft:right-outer")], groups.clone()).unwrap();
    let want: Vec<(u8, (Option<String>, char))> =
        vec![(1, (Some("a".into()), 'x')), (1, (Some("b".into()), 'x')), (3, (None, 'y'))];
    assert_eq!(decode_keyed::<u8, (Option<String>, char)>(&right_outer), want);
    let full = run(&[(MB, "weft:full-outer")], groups.clone()).unwrap();
    type Full = (Option<String>, Option<char>);
    let want: Vec<(u8, Full)> = vec![
        (1, (Some("a".into()), Some('x'))),
        (1, (Some("b".into()), Some('x'))),
        (2, (Some("c".into()), None)),
        (3, (None, Some('y'))),
    ];
    assert_eq!(decode_keyed::<u8, Full>(&full), want);
    let anti = run(&[(MB, "weft:anti:u8")], groups).unwrap();
    assert_eq!(
        decode_plain::<u8>(&anti),
        [2],
        "keys with a left value and no right one, once per left value"
    );
}

#[test]
fn samples_are_seeded_and_scatter_keys_differ() {
    let records: Vec<i64> = (0..10_000).collect();
    let step = |seed: u64| format!("weft:sample:0.25:{seed}:0");
    let a = decode_plain::<i64>(&run(&[(MB, &step(7))], plain(&records)).unwrap());
    assert!((2000..3000).contains(&a.len()), "{} of 10000 at 0.25", a.len());
    assert!(a.windows(2).all(|w| w[0] < w[1]), "a subsequence of the input");
    let b = decode_plain::<i64>(&run(&[(MB, &step(8))], plain(&records)).unwrap());
    assert_ne!(a, b, "another seed draws other records");
    let all = run(&[(MB, "weft:sample:1:1:1")], keyed(&[(1u8, 2u8), (3, 4)])).unwrap();
    assert_eq!(decode_keyed::<u8, u8>(&all), [(1, 2), (3, 4)], "pairs stay whole");
    assert!(run(&[(MB, "weft:sample:x:1:0")], plain(&records)).is_err());
    let scattered = decode_keyed::<u64, i64>(&run(&[(MB, "weft:scatter")], plain(&records)).unwrap());
    let mut keys: Vec<u64> = scattered.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), records.len());
    assert_eq!(scattered.iter().map(|(_, v)| *v).collect::<Vec<_>>(), records);
}

#[weft::reduce]
fn plus(a: i64, b: i64) -> i64 {
    a + b
}

#[test]
fn zero_values_fold_in_and_records_are_numbered() {
    let zero = 100i64.to_record_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>();
    let step = format!("weft:with-zero:plus:{zero}");
    let folded = run(&[(MB, &step)], keyed(&[("a", 1i64), ("b", -5)])).unwrap();
    assert_eq!(decode_keyed::<String, i64>(&folded), [("a".into(), 101), ("b".into(), 95)]);
    assert!(run(&[(MB, "weft:with-zero:plus:zz")], keyed(&[("a", 1i64)])).is_err());

    let counted = run(&[(MB, "weft:batch-count")], plain(&["x", "y", "z"].map(String::from))).unwrap();
    assert_eq!(decode_keyed::<u32, i64>(&counted), [(0, 3)], "natively every task is partition 0");
    assert!(run(&[(MB, "weft:batch-count")], Vec::new()).unwrap().is_empty());
    // Numbering continues from batch to batch of one task.
    let step = "weft:zip:0=40";
    let first = run(&[(MB, step)], plain(&[7u8, 8])).unwrap();
    let second = run(&[(MB, step)], plain(&[9u8])).unwrap();
    assert_eq!(decode_keyed::<u64, u8>(&first), [(40, 7), (41, 8)]);
    assert_eq!(decode_keyed::<u64, u8>(&second), [(42, 9)]);
    assert!(run(&[(MB, "weft:zip:3=0")], plain(&[1u8])).is_err(), "no offset for this partition");
}

#[weft::map_batch]
fn count_all(records: Vec<String>) -> Vec<u64> {
    vec![records.len() as u64]
}

#[weft::map]
fn shout_len(n: u32) -> String {
    "!".repeat(n as usize)
}

#[weft::map]
fn doubled(n: u64) -> u64 {
    2 * n
}

#[test]
fn a_whole_partition_step_sees_every_batch_once_at_the_flush() {
    // Behind another built-in step, which splits the chain where it stands.
    let chain = [
        (OpKind::Map, "len_and_word"),
        (MB, "weft:keys:u32"),
        (OpKind::Map, "shout_len"),
        (MB, "weft:partition:count_all"),
        (OpKind::Map, "doubled"),
    ];
    assert!(run(&chain, plain(&words())).unwrap().is_empty(), "held, not applied");
    assert!(run(&chain, plain(&words()[..2])).unwrap().is_empty());
    let out = crate::flush(&chain).unwrap();
    assert_eq!(decode_plain::<u64>(&out), [2 * (words().len() as u64 + 2)], "one call over both batches");
    // An empty partition is seen too, once.
    assert_eq!(decode_plain::<u64>(&crate::flush(&chain).unwrap()), [0]);
}

#[test]
fn join_values_unnest_into_pairs() {
    let joined = keyed(&[((), ('x', 1i64)), ((), ('y', 2))]);
    let pairs = run(&[(MB, "weft:unnest:c")], joined).unwrap();
    assert_eq!(decode_keyed::<char, i64>(&pairs), [('x', 1), ('y', 2)]);
    assert!(run(&[(MB, "weft:unnest:c")], keyed(&[((), 'x')])).is_err(), "not a pair");
}
