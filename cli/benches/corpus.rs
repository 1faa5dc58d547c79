//! Deterministic English-like text for the word-count benchmark and the
//! end-to-end tests: Zipf-ish common words, a tail of rare numbered words,
//! mixed case, spaces and tabs.

use std::io::Write;

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "Spark",
    "Mesos",
    "shuffle",
    "partition",
    "WebAssembly",
    "sandbox",
    "agent",
    "master",
    "dataset",
    "RDD",
    "lineage",
    "offer",
    "fair",
    "dominant",
    "resource",
    "Alice",
    "rabbit",
    "hole",
    "watch",
    "pocket",
];

/// Write at least `bytes` bytes of text lines to `out`.
pub fn write_text(out: &mut impl Write, bytes: u64) -> std::io::Result<()> {
    let (mut state, mut written) = (0x2545_f491_4f6c_dd1du64, 0u64);
    let mut line = String::new();
    while written < bytes {
        line.clear();
        for i in 0..(6 + state % 10) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i > 0 {
                line.push(if state.is_multiple_of(17) { '\t' } else { ' ' });
            }
            let r = state % 1000;
            if r < 950 {
                line.push_str(WORDS[(r * r / 1000 * WORDS.len() as u64 / 1000) as usize % WORDS.len()]);
            } else {
                line.push_str(&format!("w{}", state % 50_000));
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
    }
    Ok(())
}

/// Write `bytes` of text to `path` once (a file already that large is kept),
/// for the benchmarks that read it.
#[allow(dead_code)]
pub fn generate(path: &std::path::Path, bytes: u64) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= bytes) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    write_text(&mut f, bytes)?;
    f.flush()
}
