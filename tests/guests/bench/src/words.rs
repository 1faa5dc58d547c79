// The word-splitting body shared by the `bench` guest and the native baseline.
//
// Dependency-free on purpose: a native benchmark compiles the very same code
// with `mod words { include!("<repo>/tests/guests/bench/src/words.rs"); }`, so
// the wasm/native ratio measures the sandbox, not two implementations.

/// The words of `line`, lowercased.
pub fn split_words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_lowercase).collect()
}
