//! Text input that is compressed or not UTF-8, through `weft local`: word
//! count over `.gz` and `.zst` files equals a native count of the text; a
//! bytes source reads any bytes; `text_file` and corrupt input fail clearly.

use crate::support::{counts, guest, native_counts, output_lines, text, weft};
use std::io::Write;
use std::path::Path;
use std::process::Output;

/// `weft local` on `wasm` with `args`, its files in `dir`.
fn local(dir: &Path, wasm: &Path, args: &[&Path]) -> Output {
    weft().arg("local").arg("--dir").arg(dir.join("weft")).arg(wasm).arg("--").args(args).output().unwrap()
}

fn log(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn word_count_over_gzip_and_zstd_equals_the_native_count() {
    let dir = tempfile::tempdir().unwrap();
    let body = text(3 << 20);
    let (a, b) = body.split_at(body.find('\n').unwrap() + 1 + body.len() / 2);
    let files = [
        // Two members, as `cat a.gz b.gz` makes them.
        ("in.txt.gz", [gzip(a.as_bytes()), gzip(b.as_bytes())].concat()),
        ("in.txt.zst", zstd::encode_all(body.as_bytes(), 3).unwrap()),
    ];
    for (name, stored) in files {
        let (input, out) = (dir.path().join(name), dir.path().join(format!("out-{name}")));
        std::fs::write(&input, stored).unwrap();
        let o = local(dir.path(), &guest("wordcount"), &[&input, &out]);
        assert!(o.status.success(), "{name}: {}", log(&o));
        assert_eq!(counts(&output_lines(&out)), native_counts(&body), "{name}");
    }
}

#[test]
fn a_bytes_source_reads_what_text_file_refuses() {
    let dir = tempfile::tempdir().unwrap();
    // Latin-1, a stray byte, CRLF, an empty line, no newline at the end.
    let raw: &[u8] = b"caf\xe9 au lait\r\nplain words\n\n\xff\xfe binary\nlast";
    let want = [&b"caf\xe9 au lait"[..], b"plain words", b"", b"\xff\xfe binary", b"last"];
    let lines = guest("lines");
    for (name, stored) in [("latin1.txt", raw.to_vec()), ("latin1.txt.gz", gzip(raw))] {
        let input = dir.path().join(name);
        std::fs::write(&input, stored).unwrap();

        let out = dir.path().join(format!("bytes-{name}"));
        let o = local(dir.path(), &lines, &[Path::new("bytes"), &input, &out]);
        assert!(o.status.success(), "{name}: {}", log(&o));
        let mut got: Vec<Vec<u8>> = output_lines(&out)
            .iter()
            .map(|hex| {
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
            })
            .collect();
        let mut want: Vec<Vec<u8>> = want.iter().map(|l| l.to_vec()).collect();
        // Partitions may come in any order of files; lines are compared as a set.
        got.sort();
        want.sort();
        assert_eq!(got, want, "{name}");

        let out = dir.path().join(format!("text-{name}"));
        let o = local(dir.path(), &lines, &[Path::new("text"), &input, &out]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", log(&o));
        let log = log(&o);
        for needle in [name, "is not UTF-8", "text_file_bytes"] {
            assert!(log.contains(needle), "{name}: the error names {needle:?}:\n{log}");
        }
        // The first bad byte of whichever split failed first: of the first
        // line, or of the fourth (plain text is read in two splits).
        assert!(log.contains("offset 3") || log.contains("offset 27"), "{name}: the offset:\n{log}");
        assert!(!out.join("_SUCCESS").exists(), "a failed job leaves no output");
    }
}

#[test]
fn corrupt_compressed_input_fails_the_job_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let gz = gzip(text(64 << 10).as_bytes());
    let input = dir.path().join("cut.gz");
    std::fs::write(&input, &gz[..gz.len() / 2]).unwrap();
    let out = dir.path().join("out");
    let o = local(dir.path(), &guest("wordcount"), &[&input, &out]);
    assert_eq!(o.status.code(), Some(1), "{}", log(&o));
    let log = log(&o);
    for needle in ["cut.gz", "cannot decompress", "truncated or corrupt", "gzip -t"] {
        assert!(log.contains(needle), "the error names {needle:?}:\n{log}");
    }
    assert!(!out.join("_SUCCESS").exists(), "a failed job leaves no output");
}
