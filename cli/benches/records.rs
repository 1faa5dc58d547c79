//! Deterministic TeraSort-like records for the sort benchmark and the
//! end-to-end tests: lines of a 10-byte key, a space and an 80-byte payload
//! (the record's number in 16 hex digits, then 64 letters and digits), all
//! printable ASCII. Keys are near-uniform over `'!'..='~'`, so they spread evenly
//! over any range partitioning and almost never repeat.

use std::io::Write;

/// Bytes of a record's key.
pub const KEY_BYTES: usize = 10;

/// Bytes of a record line, its `\n` included.
pub const LINE_BYTES: usize = KEY_BYTES + 1 + 80 + 1;

/// Write records to `out` until at least `bytes` bytes are written.
pub fn write_records(out: &mut impl Write, bytes: u64) -> std::io::Result<()> {
    const PAYLOAD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64*: fast, and good enough to look random.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut line = [0u8; LINE_BYTES];
    let (mut n, mut written) = (0u64, 0u64);
    while written < bytes {
        let (a, b) = (next(), next());
        for (i, k) in line[..KEY_BYTES].iter_mut().enumerate() {
            // 94 printable characters, from 6 or 7 bits of `a` or `b` each.
            let r = if i < 5 { a >> (i * 12) } else { b >> ((i - 5) * 12) };
            *k = b'!' + (((r & 0xfff) * 94) >> 12) as u8;
        }
        line[KEY_BYTES] = b' ';
        let payload = &mut line[KEY_BYTES + 1..LINE_BYTES - 1];
        for (j, c) in payload[..16].iter_mut().enumerate() {
            *c = b"0123456789abcdef"[(n >> (60 - 4 * j)) as usize & 15];
        }
        for chunk in payload[16..].chunks_mut(10) {
            let r = next();
            for (j, c) in chunk.iter_mut().enumerate() {
                *c = PAYLOAD[(r >> (j * 6)) as usize & 63];
            }
        }
        line[LINE_BYTES - 1] = b'\n';
        out.write_all(&line)?;
        written += LINE_BYTES as u64;
        n += 1;
    }
    Ok(())
}
