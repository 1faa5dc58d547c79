//! The SDK's integration tests, in one binary: user functions declared with the
//! attribute macros exactly as a job declares them, run through the dispatcher
//! natively.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod builtin;
mod dispatch;
mod driver;
mod functions;
mod golden;
mod params;

use weft::codec::batch::{BatchWriter, entries, pairs};
use weft::codec::key::EncodeKey;
use weft::{OpKind, Record};

/// A plain batch of `records`.
pub fn plain<T: Record>(records: &[T]) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for r in records {
        w.push(&r.to_record_bytes());
    }
    w.finish()
}

/// A pair batch of `records`.
pub fn keyed<K: EncodeKey, V: Record>(records: &[(K, V)]) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for (k, v) in records {
        w.push(&k.to_key_bytes());
        w.push(&v.to_record_bytes());
    }
    w.finish()
}

/// Decode a plain batch.
pub fn decode_plain<T: Record>(batch: &[u8]) -> Vec<T> {
    entries(batch).map(|e| T::decode(e.unwrap()).unwrap()).collect()
}

/// Decode a pair batch.
pub fn decode_keyed<K: weft::Key, V: Record>(batch: &[u8]) -> Vec<(K, V)> {
    pairs(batch)
        .map(|p| p.unwrap())
        .map(|(k, v)| (K::from_key_bytes(k).unwrap(), V::decode(v).unwrap()))
        .collect()
}

/// Run a chain of `(kind, name)` steps.
pub fn run(chain: &[(OpKind, &str)], input: Vec<u8>) -> Result<Vec<u8>, weft::dispatch::CallError> {
    weft::dispatch::run_chain(&ops(chain), input)
}

/// What `chain` still holds after its last batch.
pub fn flush(chain: &[(OpKind, &str)]) -> Result<Vec<u8>, weft::dispatch::CallError> {
    weft::dispatch::flush_chain(&ops(chain))
}

/// Run `chain` over each batch, then flush it: everything it produced.
pub fn run_all(
    chain: &[(OpKind, &str)],
    batches: Vec<Vec<u8>>,
) -> Result<Vec<u8>, weft::dispatch::CallError> {
    let mut out = Vec::new();
    for b in batches {
        out.extend(run(chain, b)?);
    }
    out.extend(flush(chain)?);
    Ok(out)
}

fn ops(chain: &[(OpKind, &str)]) -> Vec<weft::dispatch::Op> {
    chain.iter().map(|(k, f)| weft::dispatch::Op::new(*k, *f)).collect()
}
