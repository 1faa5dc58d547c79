//! The sort example through `weft local`: its part files, read in partition
//! order, are the input's lines ordered by key, as a native sort orders them.

use crate::support::{guest, output_lines, run};
use std::path::Path;

#[path = "../../benches/records.rs"]
mod records;

/// The example's key of a line: its first 10 bytes, cut back to a character boundary.
fn key(line: &str) -> &str {
    let mut cut = records::KEY_BYTES.min(line.len());
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    &line[..cut]
}

/// Sort `input` with `weft local` into `out`, with the example's optional partition argument.
fn weft_sort(dir: &Path, input: &Path, out: &Path, partitions: Option<&str>) -> Vec<String> {
    let wasm = guest("sort");
    let mut args = vec!["local", "--dir", dir.to_str().unwrap(), wasm.to_str().unwrap(), "--"];
    args.extend([input.to_str().unwrap(), out.to_str().unwrap()]);
    args.extend(partitions);
    let o = run(&args);
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    output_lines(out)
}

#[test]
fn sort_through_weft_local_orders_lines_as_a_native_sort() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = Vec::new();
    records::write_records(&mut body, 4 << 20).unwrap();
    // Beside the records: an empty line, lines shorter than a key, lines sharing
    // a key, and a two-byte character across byte 10 (the key stops before it).
    // The last line has no `\n`.
    body.extend_from_slice("\nabc\n~~~~~~~~~~ z\n~~~~~~~~~~ a\n!!!!!!!!!é after\n!!!!!!!!!~\nabc".as_bytes());
    let body = String::from_utf8(body).unwrap();
    let input = dir.path().join("records.txt");
    std::fs::write(&input, &body).unwrap();

    let mut want: Vec<&str> = body.lines().collect();
    want.sort_by(|a, b| key(a).cmp(key(b)));
    let want_keys: Vec<&str> = want.iter().map(|l| key(l)).collect();
    want.sort_unstable();

    for (partitions, arg) in [(8, None), (3, Some("3"))] {
        let out = dir.path().join(format!("out-{partitions}"));
        let got = weft_sort(&dir.path().join("weft"), &input, &out, arg);
        let parts = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("part-"))
            .collect::<Vec<_>>();
        assert_eq!(parts.len(), partitions, "{parts:?}");
        // Range partitioning from a sample spreads uniform keys over every partition.
        for p in &parts {
            assert!(std::fs::metadata(out.join(p)).unwrap().len() > 0, "{p} of {partitions} is empty");
        }
        let got_keys: Vec<&str> = got.iter().map(|l| key(l)).collect();
        assert!(got_keys == want_keys, "{partitions} partitions: the keys are not in the native order");
        let mut got_lines: Vec<&str> = got.iter().map(String::as_str).collect();
        got_lines.sort_unstable();
        assert!(got_lines == want, "{partitions} partitions: not the input's lines");
    }
}
