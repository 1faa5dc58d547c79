//! User functions that misbehave, each called by name through the dispatcher,
//! so the host's tests can check the sandbox contains them.
//!
//! | name | kind | misbehaviour |
//! |---|---|---|
//! | `spin` | map `String` | loops forever (fuel / epoch deadline) |
//! | `burn` | map `String` | about a million loop turns, then its record (bounded work: many tasks against a fuel budget) |
//! | `sleep` | map `String` | `std::thread::sleep` for 60 s (wall-clock deadline) |
//! | `grow` | map `String` | allocates and touches memory without bound (memory limit) |
//! | `recurse` | map `String` | recurses without bound (stack limit) |
//! | `accumulate` | map `String` | adds to 1,000 new accumulator names per record, so the host holds ever more names (host memory charged to its limit) |
//! | `huge_output` | flat-map `String` | emits 1,024 records of 1 MiB, about 1 GiB (output / memory limit) |
//! | `sized_output` | map `String` | returns one record of as many MiB as its record says (past wasmtime's 128 MiB copy budget) |
//! | `print_forever` | map `String` | writes to stdout forever (output capture limit) |
//! | `escape` | map `String` | tries to leave the sandbox; returns a report, see below |
//! | `panic` | map `String` | panics with [`PANIC_MESSAGE`] |
//! | `unreachable` | map `String` | executes the `unreachable` instruction (a trap without a panic) |
//! | `echo` | map `String` | returns its record (well-behaved) |
//! | `split_words` | flat-map `String` | lowercased words (well-behaved) |
//! | `one`, `add` | map `String`, reduce `i64` | a word counted once, a sum (well-behaved) |
//! | `sleep_pair` | map `(String, i64)` | `std::thread::sleep` for 60 s, then the word |
//! | `slow_pair` | map `(String, i64)` | `std::thread::sleep` for 300 ms, then the pair (a straggling reduce) |
//!
//! As a job, `main` takes `<function> <input-uri> [partitions]` and counts the
//! lines of the input (read in at least `partitions` splits, default 4: one
//! task each) mapped through `spin`, `sleep`, `grow`, `recurse` or `burn`: jobs whose
//! tasks never end by themselves (for the tests that kill jobs) or end only at
//! a limit of the sandbox, and many small tasks that burn fuel (for the
//! isolation tests: endless loops, memory bombs, deep recursion, ten times
//! more tasks than a normal job, held by a fuel budget). With `shuffle-sleep` it
//! counts the input's words into 4 reduce partitions first (map tasks that end
//! and leave shuffle files) and then sleeps in every reduce task
//! (`sleep_pair`), for the tests that restart the master under a job that has
//! shuffle files. With `slow-count <input-uri> <output-uri> [reduces]` it is a
//! word count written as text (`word<TAB>count` lines, in `reduces` partitions,
//! default 4) whose reduce tasks take 300 ms per distinct word (`slow_pair`): a correct job slow enough for the fault
//! tests to pause, kill or slow an agent in the middle of its reduce stage.
//! `count-then-slow-count` takes the same arguments and counts the input's
//! lines first (an action that has ended by then, printed to the driver's
//! log), for the tests that restart the master in the middle of such a job.
//!
//! With `endless-plan` the driver itself misbehaves: it maps its lines
//! through `echo` in a loop that never ends, each step a dataset the host
//! keeps for it, until its memory limit.
//!
//! `escape` makes each attempt below and returns one line per attempt,
//! `<attempt>: denied (<error>)` or `<attempt>: ALLOWED (<what it got>)`, so a
//! host test asserts that the report contains no `ALLOWED`:
//! `open /etc/passwd`, `read_dir .`, `read_dir /`, `tcp connect 127.0.0.1:1`,
//! `env var HOME`, `env vars`, `args`.

use std::hint::black_box;
use weft::prelude::*;

/// `<spin|sleep|grow|recurse|burn|shuffle-sleep> <input-uri> [partitions]`: count
/// the input's lines through that function (`shuffle-sleep`: the input's
/// distinct words, through `sleep_pair`).
#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    const USAGE: &str = "usage: hostile <spin|sleep|grow|recurse|burn|accumulate|shuffle-sleep|endless-plan> <input-uri> [partitions], or hostile <slow-count|count-then-slow-count> <input-uri> <output-uri> [reduce-partitions]";
    let args = ctx.args();
    if let [function, input, output, rest @ ..] = args.as_slice()
        && (function == "slow-count" || function == "count-then-slow-count")
    {
        let reduces = match rest {
            [] => 4,
            [n] => n.parse().map_err(|e| weft::Error::msg(format!("{USAGE}: reduce partitions: {e}")))?,
            _ => return Err(weft::Error::msg(USAGE)),
        };
        let lines = ctx.text_file(input, 4)?;
        if function == "count-then-slow-count" {
            println!("{} lines", lines.count()?);
        }
        let counts = lines.flat_map(split_words).map(one).reduce_by_key(add, reduces);
        return counts.map(slow_pair).save_as_text_file(output);
    }
    let (function, input, partitions) = match args.as_slice() {
        [function, input] => (function, input, 4),
        [function, input, partitions] => {
            let n = partitions.parse().map_err(|e| weft::Error::msg(format!("{USAGE}: partitions: {e}")))?;
            (function, input, n)
        }
        _ => return Err(weft::Error::msg(USAGE)),
    };
    let lines = ctx.text_file(input, partitions)?;
    let n = match function.as_str() {
        "spin" => lines.map(spin).count()?,
        "sleep" => lines.map(sleep).count()?,
        "grow" => lines.map(grow).count()?,
        "recurse" => lines.map(recurse).count()?,
        "burn" => lines.map(burn).count()?,
        "accumulate" => lines.map(accumulate).count()?,
        "endless-plan" => {
            let mut mapped = lines;
            while black_box(true) {
                mapped = mapped.map(echo);
            }
            mapped.count()?
        }
        "shuffle-sleep" => {
            lines.flat_map(split_words).map(one).reduce_by_key(add, 4).map(sleep_pair).count()?
        }
        other => {
            return Err(weft::Error::msg(format!(
                "no job function `{other}`: spin, sleep, grow, recurse, burn, accumulate, shuffle-sleep \
                 or endless-plan"
            )));
        }
    };
    weft::info!("{n} lines");
    Ok(())
}

/// The message `panic` panics with.
pub const PANIC_MESSAGE: &str = "hostile guest panicked on purpose";

/// Loops forever.
#[weft::map]
pub fn spin(record: String) -> String {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
        if black_box(false) {
            return record;
        }
    }
}

/// Turns a loop 2^20 times (a few million units of fuel), then returns its record.
#[weft::map]
pub fn burn(record: String) -> String {
    let mut n: u64 = 0;
    for _ in 0..black_box(1u64 << 20) {
        n = black_box(n.wrapping_add(1));
    }
    if black_box(n) == 0 { String::new() } else { record }
}

/// Sleeps for 60 seconds, then returns its record.
#[weft::map]
pub fn sleep(record: String) -> String {
    std::thread::sleep(std::time::Duration::from_secs(60));
    record
}

/// Sleeps for 60 seconds, then returns the word.
#[weft::map]
pub fn sleep_pair((word, _n): (String, i64)) -> String {
    std::thread::sleep(std::time::Duration::from_secs(60));
    word
}

/// Sleeps for 300 ms, then returns the pair.
#[weft::map]
pub fn slow_pair(pair: (String, i64)) -> (String, i64) {
    std::thread::sleep(std::time::Duration::from_millis(300));
    pair
}

/// A word, counted once.
#[weft::map]
pub fn one(word: String) -> (String, i64) {
    (word, 1)
}

/// The sum of two counts.
#[weft::reduce]
pub fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Allocates 1 MiB blocks, touching every page, until the allocator fails.
#[weft::map]
pub fn grow(record: String) -> String {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        for page in block.chunks_mut(4096) {
            page[0] = black_box(1);
        }
        blocks.push(black_box(block));
        if black_box(blocks.len()) == usize::MAX {
            return record;
        }
    }
}

thread_local! {
    /// The next accumulator name `accumulate` makes up.
    static NAMES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Adds 1 to each of 1,000 accumulator names never used before. The guest
/// sends its additions when the call returns, so its own memory stays small
/// while the host's list of names for the attempt grows with every call.
#[weft::map]
pub fn accumulate(record: String) -> String {
    for _ in 0..1000 {
        let i = NAMES.get();
        NAMES.set(i + 1);
        weft::accumulator_add(&format!("accumulator {i}"), 1);
    }
    record
}

/// Recurses without bound; every frame holds a 1 KiB buffer.
#[weft::map]
pub fn recurse(record: String) -> String {
    let depth = deeper(black_box(0));
    format!("{record} {depth}")
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn deeper(n: u64) -> u64 {
    let frame = black_box([n as u8; 1024]);
    // Not a tail call: the result is used after the call returns.
    black_box(deeper(black_box(n + 1))) + u64::from(frame[black_box(7)])
}

/// Emits 1,024 records of 1 MiB each: about 1 GiB of output for one input.
#[weft::flat_map]
pub fn huge_output(_record: String) -> impl Iterator<Item = String> {
    (0..1024).map(|i| char::from(b'a' + (i % 26) as u8).to_string().repeat(1 << 20))
}

/// Returns one record of `x`s, as many MiB of them as `record` says (`"150"`):
/// one call's output of any size, in one allocation.
#[weft::map]
pub fn sized_output(record: String) -> String {
    let mib: usize = record.trim().parse().unwrap_or(0);
    "x".repeat(mib << 20)
}

/// Prints to stdout forever.
#[weft::map]
pub fn print_forever(record: String) -> String {
    let mut n: u64 = 0;
    loop {
        println!("print_forever line {n}: {record}");
        n = black_box(n + 1);
        if black_box(false) {
            return record;
        }
    }
}

/// Tries to reach outside the sandbox; one report line per attempt.
#[weft::map]
pub fn escape(_record: String) -> String {
    let mut report = Vec::new();
    let mut line = |attempt: &str, outcome: Result<String, String>| {
        report.push(match outcome {
            Ok(got) => format!("{attempt}: ALLOWED ({got})"),
            Err(e) => format!("{attempt}: denied ({e})"),
        });
    };
    line(
        "open /etc/passwd",
        std::fs::read_to_string("/etc/passwd")
            .map(|s| format!("{} bytes", s.len()))
            .map_err(|e| e.to_string()),
    );
    for dir in [".", "/"] {
        line(
            &format!("read_dir {dir}"),
            std::fs::read_dir(dir).map(|d| format!("{} entries", d.count())).map_err(|e| e.to_string()),
        );
    }
    line(
        "tcp connect 127.0.0.1:1",
        std::net::TcpStream::connect("127.0.0.1:1")
            .map(|s| format!("{:?}", s.peer_addr()))
            .map_err(|e| e.to_string()),
    );
    line("env var HOME", std::env::var("HOME").map_err(|e| e.to_string()));
    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    line("env vars", if vars.is_empty() { Err("none visible".into()) } else { Ok(vars.join(",")) });
    let args: Vec<String> = std::env::args().collect();
    line("args", if args.is_empty() { Err("none visible".into()) } else { Ok(args.join(" ")) });
    report.join("\n")
}

/// Panics with [`PANIC_MESSAGE`].
#[weft::map]
pub fn panic(_record: String) -> String {
    panic!("{PANIC_MESSAGE}")
}

/// Traps with the `unreachable` instruction, without panicking.
#[weft::map]
pub fn unreachable(_record: String) -> String {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Returns its record.
#[weft::map]
pub fn echo(record: String) -> String {
    record
}

/// The lowercased words of a line.
#[weft::flat_map]
pub fn split_words(line: String) -> Vec<String> {
    line.split_whitespace().map(str::to_lowercase).collect()
}
