//! User functions for the host's benchmarks.
//!
//! | name | kind | what |
//! |---|---|---|
//! | `split_words` | flat-map, `String` → `String` | [`words::split_words`], the body the native baseline also compiles |
//! | `identity` | map, `Bytes` → `Bytes` | returns its record; measures the per-batch call overhead |

mod words;

use weft::Bytes;

/// The lowercased words of a line (borrowed from the input batch: no copy).
#[weft::flat_map]
pub fn split_words(line: &str) -> Vec<String> {
    words::split_words(line)
}

/// The record itself.
#[weft::map]
pub fn identity(record: Bytes) -> Bytes {
    record
}
