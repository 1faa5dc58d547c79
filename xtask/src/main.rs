//! weft's build tooling, run as `cargo xtask <command>`.
//!
//! It needs nothing but rustup and cargo: it installs the `wasm32-wasip2` target
//! and the test servers it needs itself, so the same commands work on a fresh
//! machine, a developer's and CI's.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const USAGE: &str = "\
cargo xtask <command>

Commands:
  guests     build every guest component (guest-examples/, tests/guests/) for wasm32-wasip2
  demo       build weft and the guests, and run word count over the bundled text with `weft local`
  test       the full suite CI runs: guests, test services, fmt, clippy -D warnings, tests, docs
  bench      the benchmark harness (release build), printing figures and native ratios
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("guests") => guests().map(|_| ()),
        Some("test") => test(),
        Some("demo") => demo(),
        Some("bench") => bench(&args[1..]),
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

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
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

/// Build the guest workspaces; returns the directory holding the `.wasm` files.
fn guests() -> Result<PathBuf> {
    ensure_wasm_target()?;
    let root = root();
    for ws in ["guest-examples", "tests/guests"] {
        let manifest = root.join(ws).join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        run(cargo()
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", root.join("target/guests")))?;
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
    run(cargo().current_dir(&root).args(["test", "--workspace"]))?;
    run(cargo()
        .current_dir(&root)
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    Ok(())
}

/// Build weft and the guests, then run word count over the bundled text
/// through `weft local` (a master and an agent in one process).
fn demo() -> Result<()> {
    let root = root();
    let guests = guests()?;
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

fn bench(extra: &[String]) -> Result<()> {
    guests()?;
    run(cargo().current_dir(root()).args(["bench", "-p", "weft-agent"]).args(extra))
}
