//! The record contract's golden vectors (`codec/golden/records.json`, described
//! in `docs/record-format.md`): every value encodes to exactly the bytes on
//! file, as a key and as a record, and those bytes decode back to it.
//!
//! `WEFT_GOLDEN_WRITE=1 cargo test -p weft-sdk --test all golden` rewrites the
//! bytes from this encoder instead of checking them: for new vectors only,
//! and never to make a changed encoding pass.

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;
use weft::codec::key::{EncodeKey, Key};
use weft::{Bytes, Record};

fn vectors_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../codec/golden/records.json")
}

/// A vector's bytes as this encoder makes them: (key, record), lowercase hex.
type Encoded = (Option<String>, String);

fn parse<T: DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("value {value}: {e}"))
}

/// Both encodings of `v`, each decoding to a value that encodes to the same
/// bits again: as encodings are one-to-one, the value itself (checked on bits
/// because `==` would let −0.0 come back as 0.0 and never holds for NaN). So
/// the bytes on file, once equal to these, decode to `v` too.
fn both<T: Key + Record + Debug>(v: T) -> Encoded {
    let key = v.to_key_bytes();
    assert_eq!(T::from_key_bytes(&key).unwrap().to_key_bytes(), key, "key of {v:?} decodes back");
    (Some(hex::encode(key)), record_of(v).1)
}

/// The record encoding of `v`, decoding as in [`both`].
fn record_of<T: Record + Debug>(v: T) -> Encoded {
    let record = v.to_record_bytes();
    assert_eq!(T::decode(&record).unwrap().to_record_bytes(), record, "record of {v:?} decodes back");
    (None, hex::encode(record))
}

/// A key type's vector.
fn key_and_record<T: Key + Record + DeserializeOwned + Debug>(value: &Value) -> Encoded {
    both(parse::<T>(value))
}

/// A value type's vector.
fn record_only<T: Record + DeserializeOwned + Debug>(value: &Value) -> Encoded {
    record_of(parse::<T>(value))
}

/// A float given by its IEEE bits (hex), so that NaN and the infinities have vectors.
fn f64_bits(value: &Value) -> Encoded {
    both(f64::from_bits(u64::from_str_radix(value.as_str().unwrap(), 16).unwrap()))
}

fn encoded(ty: &str, value: &Value) -> Encoded {
    match ty {
        "bool" => key_and_record::<bool>(value),
        "u8" => key_and_record::<u8>(value),
        "u16" => key_and_record::<u16>(value),
        "u32" => key_and_record::<u32>(value),
        "u64" => key_and_record::<u64>(value),
        "i8" => key_and_record::<i8>(value),
        "i16" => key_and_record::<i16>(value),
        "i32" => key_and_record::<i32>(value),
        "i64" => key_and_record::<i64>(value),
        "f32" => key_and_record::<f32>(value),
        "f64" => key_and_record::<f64>(value),
        "f64 bits" => f64_bits(value),
        "char" => key_and_record::<char>(value),
        "()" => key_and_record::<()>(value),
        "string" => key_and_record::<String>(value),
        "option<i64>" => key_and_record::<Option<i64>>(value),
        "option<string>" => key_and_record::<Option<String>>(value),
        "(string, i64)" => key_and_record::<(String, i64)>(value),
        "(i64, string)" => key_and_record::<(i64, String)>(value),
        "(string, string)" => key_and_record::<(String, String)>(value),
        "(bool, (u8, string))" => key_and_record::<(bool, (u8, String))>(value),
        "(string, i64, string)" => key_and_record::<(String, i64, String)>(value),
        "(i64, string, bool)" => key_and_record::<(i64, String, bool)>(value),
        "(option<string>, i32)" => key_and_record::<(Option<String>, i32)>(value),
        "list<i64>" => record_only::<Vec<i64>>(value),
        "list<f64>" => record_only::<Vec<f64>>(value),
        "list<string>" => record_only::<Vec<String>>(value),
        "list<(string, i64)>" => record_only::<Vec<(String, i64)>>(value),
        "(f64, list<f64>)" => record_only::<(f64, Vec<f64>)>(value),
        "option<list<i64>>" => record_only::<Option<Vec<i64>>>(value),
        "bytes" => {
            let raw = hex::decode(value.as_str().unwrap()).unwrap();
            let record = Bytes(raw.clone()).to_record_bytes();
            assert_eq!(Bytes::decode(&record).unwrap().0, raw);
            let key = raw.to_key_bytes();
            assert_eq!(<Vec<u8>>::from_key_bytes(&key).unwrap(), raw);
            (Some(hex::encode(key)), hex::encode(record))
        }
        other => panic!("golden vector of unknown type {other:?}: add it to this test"),
    }
}

#[test]
fn every_golden_vector_encodes_and_decodes_byte_for_byte() {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut file: Value = serde_json::from_str(&text).unwrap();
    let write = std::env::var("WEFT_GOLDEN_WRITE").is_ok_and(|v| v == "1");
    let vectors = file["vectors"].as_array_mut().unwrap();
    // All of them: a vector removed from the file is a change to this test too.
    assert_eq!(vectors.len(), 74, "the number of golden vectors");
    for vector in vectors.iter_mut() {
        let ty = vector["type"].as_str().unwrap().to_string();
        let (key, record) = encoded(&ty, &vector["value"]);
        if write {
            vector["key"] = key.map_or(Value::Null, Value::String);
            vector["record"] = Value::String(record);
            continue;
        }
        let want_key = vector["key"].as_str().map(str::to_string);
        assert_eq!(key, want_key, "key of {ty} {}", vector["value"]);
        assert_eq!(Some(record.as_str()), vector["record"].as_str(), "record of {ty} {}", vector["value"]);
    }
    if write {
        std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap() + "\n").unwrap();
    }
}

#[test]
fn golden_keys_sort_as_their_values() {
    // The vectors of one type (`f64 bits` with `f64`) that have an `order`:
    // their key bytes must sort as it ranks them.
    let file: Value = serde_json::from_str(&std::fs::read_to_string(vectors_path()).unwrap()).unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    let mut by_type: std::collections::BTreeMap<&str, Vec<(i64, Vec<u8>)>> = Default::default();
    for v in vectors {
        if let (Some(order), Some(key)) = (v["order"].as_i64(), v["key"].as_str()) {
            let ty = v["type"].as_str().unwrap().trim_end_matches(" bits");
            by_type.entry(ty).or_default().push((order, hex::decode(key).unwrap()));
        }
    }
    assert!(by_type.len() >= 5, "ordered vectors of several types");
    for (ty, mut keys) in by_type {
        keys.sort_by_key(|(order, _)| *order);
        assert!(keys.windows(2).all(|w| w[0].1 < w[1].1), "{ty}: key bytes sort as the values");
    }
}
