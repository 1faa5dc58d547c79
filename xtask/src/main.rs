//! weft's build tooling, run as `cargo xtask <command>`.
//!
//! It needs nothing but rustup and cargo: it installs the `wasm32-wasip2` target
//! and the test servers it needs itself, so the same commands work on a fresh
//! machine, a developer's and CI's.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

mod sdks;

const USAGE: &str = "\
cargo xtask <command>

Commands:
  guests     build every guest component (guest-examples/, tests/guests/): Rust for wasm32-wasip2,
             Python with componentize-py, JavaScript with componentize-js, C with Debian's clang
             and wasi-libc (each installed on first use, the first two into target/sdk-tools/)
  build-c JOB.c -o OUT.wasm
             build one C job with the C SDK into a component (installing clang as `guests` does)
  demo       build weft and the guests, and run word count over the bundled text with `weft local`
  test       the full suite CI runs: guests, test services, fmt, clippy -D warnings, tests, docs
  bench      the sandbox benchmarks (release build), printing figures and native ratios
  bench-wordcount [MIB]
             word count over MIB (default 1024) of text: weft local vs a fair single-threaded
             native Rust count (the file read once, byte slices, FxHash, no allocation per word)
             (WEFT_BENCH_TLS=1: also a master and two agents, plain and with TLS everywhere)
  bench-sort [MIB] [PARTITIONS]
             sort of MIB (default 1024) of TeraSort-like records by their 10-byte keys into
             PARTITIONS (default 8): weft local vs a single-threaded native Rust sort
  bench-pagerank [PAGES] [ITERATIONS]
             PageRank over a generated graph of PAGES (default 200000) pages, ITERATIONS (default
             10) times: weft local vs a single-threaded native Rust PageRank
  bench-logreg [POINTS] [ITERATIONS]
             logistic regression over POINTS (default 1000000) generated points of 10 features,
             ITERATIONS (default 10) times: the first and the later iterations of weft local vs a
             single-threaded native Rust descent
  bench-tasks [SIZES]
             one-record tasks (SIZES e.g. 1000,10000; default 1000,10000,100000), empty and
             identity, through weft local and a master with two agents, vs a native thread pool
  bench-isolation [MIB]
             word count over MIB (default 256) of text as one tenant, alone and beside a hostile
             tenant (endless loops, memory bombs, recursion, a flood of tasks), with the same
             share of a 2-slot cluster: the ratio of the times
  bench-scale [TASKS]
             the master's scheduler core in-process with 10,000 simulated agents of 8 slots:
             decisions/s and memory per pending task for actions of TASKS (default 100000)
             tasks, vs a native placement loop
  bench-sdks [MIB]
             word count over MIB (default 256) of text with the job in each guest language,
             as a ratio to the Rust guest's time; each component's size, first and cached
             load, and instantiation p50/p99; JavaScript's single operations per word
             (sdk/js/bench/costs.js). WEFT_BENCH_LANGS=c,python,js picks the languages
  chaos [RUNS] [SEED] [ONLY]
             the chaos suite: RUNS (default 14) fault runs on a real master (or three on etcd) and three
             agents, each a job (word count, sort, iterative over cached blocks) and a fault drawn
             from SEED (default 1): agents killed in map, fetch or reduce, the driver's agent
             killed, a shuffle file or cached block corrupted, an agent paused or slowed 3x, the
             master or the leader killed, with a failure-free control run of each job after every
             ten; prints each run and a summary (wrong outputs, failed jobs, wall time against the
             nearest failure-free runs of the job, time until a master serves again). ONLY keeps
             the runs it names: a job and/or a part of a fault's name, e.g. \"sort slowed\"
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match args.first().map(String::as_str) {
        Some("guests") => guests().map(|_| ()),
        Some("build-c") => match &args[1..] {
            [job, o, out] if o == "-o" => sdks::build_c_job(Path::new(job), Path::new(out)),
            _ => bail!("usage: cargo xtask build-c JOB.c -o OUT.wasm"),
        },
        Some("test") => test(),
        Some("demo") => demo(),
        Some("bench") => bench(&args[1..]),
        Some("bench-wordcount") => cli_bench("wordcount", &[("WEFT_BENCH_MIB", arg(1))]),
        Some("bench-sort") => {
            cli_bench("sort", &[("WEFT_BENCH_MIB", arg(1)), ("WEFT_BENCH_PARTITIONS", arg(2))])
        }
        Some("bench-pagerank") => {
            cli_bench("pagerank", &[("WEFT_BENCH_PAGES", arg(1)), ("WEFT_BENCH_ITERATIONS", arg(2))])
        }
        Some("bench-logreg") => {
            cli_bench("logreg", &[("WEFT_BENCH_POINTS", arg(1)), ("WEFT_BENCH_ITERATIONS", arg(2))])
        }
        Some("bench-tasks") => cli_bench("tasks", &[("WEFT_BENCH_TASKS", arg(1))]),
        Some("bench-isolation") => cli_bench("isolation", &[("WEFT_BENCH_MIB", arg(1))]),
        Some("chaos") => cli_bench(
            "chaos",
            &[("WEFT_CHAOS_RUNS", arg(1)), ("WEFT_CHAOS_SEED", arg(2)), ("WEFT_CHAOS_ONLY", arg(3))],
        ),
        Some("bench-scale") => cargo_bench("weft-master", "scale", &[("WEFT_BENCH_TASKS", arg(1))]),
        Some("bench-sdks") => {
            guests()?;
            let langs = std::env::var("WEFT_BENCH_LANGS").unwrap_or_default().to_lowercase();
            if langs.is_empty() || langs.split(',').any(|l| l.trim() == "js") {
                sdks::js_costs()?;
            }
            cargo_bench("weft-cli", "sdks", &[("WEFT_BENCH_MIB", arg(1))])
        }
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

/// The workspace root (this crate's parent directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Where guest components land: `target/guests/wasm32-wasip2/release/<crate>.wasm`.
pub fn guest_dir() -> PathBuf {
    root().join("target/guests/wasm32-wasip2/release")
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd.status().with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Cargo, with a `protoc` for the build scripts that need one (etcd-client
/// compiles etcd's protocol with it): the one the environment names, or the
/// one the `protoc-bin-vendored` crate bundles, so a machine with only rustup
/// builds weft.
fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    if std::env::var_os("PROTOC").is_none()
        && let Ok(protoc) = protoc_bin_vendored::protoc_bin_path()
    {
        c.env("PROTOC", protoc);
    }
    c
}

/// Install the wasm32-wasip2 target when rustup lacks it.
fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match out {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") => {
            Ok(())
        }
        Ok(_) => run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"])),
        Err(e) => {
            eprintln!("xtask: rustup not found ({e}); assuming the toolchain has wasm32-wasip2");
            Ok(())
        }
    }
}

/// Build every guest component: the Rust workspaces, then the other SDKs' jobs.
fn guests() -> Result<PathBuf> {
    let dir = rust_guests()?;
    sdks::python_guests()?;
    sdks::js_guests()?;
    sdks::c_guests()?;
    Ok(dir)
}

/// Build the Rust guest workspaces; returns the directory holding their `.wasm` files.
fn rust_guests() -> Result<PathBuf> {
    ensure_wasm_target()?;
    let root = root();
    for ws in ["guest-examples", "tests/guests"] {
        let manifest = root.join(ws).join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let mut build = cargo();
        build
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", root.join("target/guests"));
        // WebAssembly SIMD (wasmtime runs it by default): the SDK swaps the
        // bytes of 8-byte numbers with one shuffle instead of ~40
        // instructions, which costs less fuel (`weft_codec::key`). Cargo
        // ignores a target's rustflags when RUSTFLAGS is set, so add to it then.
        const SIMD: &str = "-C target-feature=+simd128";
        match std::env::var("RUSTFLAGS") {
            Ok(flags) => build.env("RUSTFLAGS", format!("{flags} {SIMD}")),
            Err(_) => build.env("CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS", SIMD),
        };
        run(&mut build)?;
    }
    Ok(guest_dir())
}

fn test() -> Result<()> {
    let root = root();
    guests()?;
    let setup = root.join("ci/setup-test-services.sh");
    if setup.exists() {
        run(Command::new("bash").arg(&setup))?;
    }
    run(cargo().current_dir(&root).args(["fmt", "--all", "--", "--check"]))?;
    sdks::sdk_unit_tests()?;
    run(cargo().current_dir(&root).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // The SDK's bindings to the host exist only on wasm32: lint that side too.
    run(cargo().current_dir(&root).args([
        "clippy",
        "-p",
        "weft-sdk",
        "--target",
        "wasm32-wasip2",
        "--",
        "-D",
        "warnings",
    ]))?;
    let (passed, failed) = run_tests(cargo().current_dir(&root).args(["test", "--workspace"]))?;
    run(cargo()
        .current_dir(&root)
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    println!("tests: {passed} passed, {failed} failed");
    Ok(())
}

/// Run a `cargo test` command, echoing its output, and add up its
/// `test result:` lines. Fails when cargo does.
fn run_tests(cmd: &mut Command) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    eprintln!("xtask: {cmd:?}");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {cmd:?}"))?;
    let (mut passed, mut failed) = (0, 0);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| {
                    rest.split(';')
                        .find_map(|part| {
                            part.trim()
                                .trim_start_matches("ok. ")
                                .trim_start_matches("FAILED. ")
                                .strip_suffix(word)
                        })
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                passed += count(" passed");
                failed += count(" failed");
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!("tests: {passed} passed, {failed} failed");
        bail!("{cmd:?} failed with {status}");
    }
    Ok((passed, failed))
}

/// Build weft and the guests, then run word count over the bundled text
/// through `weft local` (a master and an agent in one process).
fn demo() -> Result<()> {
    let root = root();
    let guests = rust_guests()?;
    run(cargo().current_dir(&root).args(["build", "--release", "-p", "weft-cli"]))?;
    let weft = root.join("target/release/weft");
    let out = root.join("target/demo/wordcount-out");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    run(Command::new(&weft)
        .current_dir(&root)
        .args(["local", "--dir", "target/demo/weft"])
        .arg(guests.join("wordcount.wasm"))
        .arg("--")
        .arg("guest-examples/data/alice.txt")
        .arg(&out))?;
    println!("counts written to {}", out.display());
    Ok(())
}

/// A `weft-cli` benchmark over the Rust guests.
fn cli_bench(bench: &str, vars: &[(&str, Option<&str>)]) -> Result<()> {
    rust_guests()?;
    cargo_bench("weft-cli", bench, vars)
}

/// `cargo bench -p package --bench bench`, with each variable that has a value.
fn cargo_bench(package: &str, bench: &str, vars: &[(&str, Option<&str>)]) -> Result<()> {
    let mut cmd = cargo();
    cmd.current_dir(root()).args(["bench", "-p", package, "--bench", bench]);
    for (name, value) in vars {
        if let Some(value) = value {
            cmd.env(name, value);
        }
    }
    run(&mut cmd)
}

fn bench(extra: &[String]) -> Result<()> {
    rust_guests()?;
    run(cargo().current_dir(root()).args(["bench", "-p", "weft-agent"]).args(extra))
}
