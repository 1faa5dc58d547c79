//! Shared test setup: guest components and a sandbox with small limits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use weft_agent::{Chain, Op, OpKind, Prepared, Sandbox, SandboxConfig, TaskContext, TaskReport, WasmPool};
use weft_core::artifact::Digest;
use weft_core::codec::batch::BatchWriter;
use weft_core::limits::TaskLimits;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Build the guest programs once per test process (cargo is incremental, so
/// this is quick when they are up to date) and return the bytes of `name`.
pub fn guest(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["xtask", "guests"])
            .current_dir(root())
            .status()
            .expect("could not run `cargo xtask guests`");
        assert!(status.success(), "`cargo xtask guests` failed");
    });
    let path = root().join(format!("target/guests/wasm32-wasip2/release/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("guest {name} not built at {}: {e}", path.display()))
}

/// One sandbox and pool for the whole test binary, as an agent has.
pub fn sandbox() -> &'static (Sandbox, WasmPool) {
    static S: OnceLock<(Sandbox, WasmPool)> = OnceLock::new();
    S.get_or_init(|| {
        let sandbox = Sandbox::new(SandboxConfig::default().with_max_instances(8)).unwrap();
        (sandbox, WasmPool::new(2).unwrap())
    })
}

pub fn prepared(name: &str) -> Arc<Prepared> {
    let bytes = guest(name);
    sandbox().0.load(&Digest::of(&bytes), &bytes).unwrap()
}

pub fn limits() -> TaskLimits {
    TaskLimits::default()
        .with_memory(64 << 20)
        .with_fuel(20_000_000_000)
        .with_deadline(Duration::from_millis(100))
}

pub fn chain(kind: OpKind, function: &str) -> Chain {
    Chain {
        ops: vec![Op { kind, function: function.into(), param: None }],
        input_keyed: false,
        output_keyed: false,
    }
}

/// A batch of plain String records.
pub fn lines<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for l in lines {
        w.push(l.as_ref().as_bytes());
    }
    w.finish()
}

/// Run `chain` over `batches` as one task on the shared pool.
pub fn run(
    name: &str,
    chain: Chain,
    limits: TaskLimits,
    batches: Vec<Vec<u8>>,
) -> (Vec<Vec<u8>>, TaskReport) {
    run_on(&sandbox().0, name, chain, limits, batches)
}

/// Run `chain` over `batches` as one task in `sandbox`, on the shared pool.
pub fn run_on(
    sandbox: &Sandbox,
    name: &str,
    chain: Chain,
    limits: TaskLimits,
    batches: Vec<Vec<u8>>,
) -> (Vec<Vec<u8>>, TaskReport) {
    run_in(sandbox, name, chain, TaskContext { limits, ..Default::default() }, batches)
}

/// Run `chain` over `batches` as one task with context `ctx` (its limits,
/// broadcast values, ...) in `sandbox`, on the shared pool.
pub fn run_in(
    sandbox: &Sandbox,
    name: &str,
    chain: Chain,
    ctx: TaskContext,
    batches: Vec<Vec<u8>>,
) -> (Vec<Vec<u8>>, TaskReport) {
    let bytes = guest(name);
    let prepared = sandbox.load(&Digest::of(&bytes), &bytes).unwrap();
    let sandbox = sandbox.clone();
    let fut =
        sandbox_pool().run(move || async move { sandbox.run_task(&prepared, ctx, &chain, batches).await });
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(fut).unwrap()
}

fn sandbox_pool() -> &'static WasmPool {
    &sandbox().1
}

/// The String records of an output batch.
pub fn strings(batch: &[u8]) -> Vec<String> {
    weft_core::codec::batch::entries(batch).map(|e| String::from_utf8(e.unwrap().to_vec()).unwrap()).collect()
}

/// Resident set size of this process, in bytes.
pub fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
