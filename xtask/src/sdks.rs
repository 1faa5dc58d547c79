//! The guest SDKs' toolchains and guest builds, beside the Rust ones.
//!
//! Each toolchain is installed into `target/sdk-tools/` by the project's own
//! commands, pinned, from the language's registry: nothing is needed on the
//! machine but Python 3 with venv, and Node.js 20+ with npm. A guest component
//! is rebuilt only when one of its inputs changes (its directory's sources,
//! the SDK, the WIT, the toolchain's version or lock): each output keeps the
//! blake3 digest of its inputs beside it.

use crate::{root, run};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// componentize-py's version, from PyPI.
const COMPONENTIZE_PY: &str = "0.25.1";

/// The Python virtual environment holding componentize-py, made on first use;
/// returns its `bin` directory.
fn python_tools() -> Result<PathBuf> {
    let venv = root().join("target/sdk-tools/python");
    let bin = venv.join("bin");
    let stamp = venv.join("weft-installed");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == COMPONENTIZE_PY) {
        return Ok(bin);
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(&python).args(["-m", "venv", "--clear"]).arg(&venv)).with_context(|| {
        format!("making a Python virtual environment needs {python} with its venv module")
    })?;
    run(Command::new(bin.join("pip")).args([
        "install",
        "--disable-pip-version-check",
        "--quiet",
        &format!("componentize-py=={COMPONENTIZE_PY}"),
    ]))?;
    std::fs::write(&stamp, COMPONENTIZE_PY)?;
    Ok(bin)
}

/// Build every Python job (a module with `@weft.main`) under
/// `guest-examples/python` and `tests/guests/python`.
pub fn python_guests() -> Result<()> {
    let sdk = root().join("sdk/python");
    let job = Jobs {
        lang: "python",
        ext: "py",
        marker: "@weft.main",
        inputs: files(&sdk.join("weft"), "py")?,
        version: COMPONENTIZE_PY.into(),
        tools: python_tools,
    };
    job.build(|bin, job, out| {
        run(Command::new(bin.join("python"))
            .args(["-m", "weft.build"])
            .arg(job)
            .arg("-o")
            .arg(out)
            .env("PYTHONPATH", &sdk)
            .env("COMPONENTIZE_PY", bin.join("componentize-py")))
    })
}

/// One SDK's jobs: the source files of a language, found by a marker, built
/// with the SDK's tools into `target/guests/<lang>/<module>.wasm`.
struct Jobs {
    lang: &'static str,
    ext: &'static str,
    /// What a module that is a job (not a helper module) contains.
    marker: &'static str,
    /// The SDK's files every job depends on.
    inputs: Vec<PathBuf>,
    /// The toolchain's version (and flags), also an input.
    version: String,
    /// Installs the toolchain (only when something is to be built).
    tools: fn() -> Result<PathBuf>,
}

impl Jobs {
    /// Build the jobs under `guest-examples/<lang>` and `tests/guests/<lang>`
    /// with `command(tools, job, output)`, each only when the digest of its
    /// directory's sources, the SDK's inputs, the WIT and the version changed.
    fn build(&self, build: impl Fn(&Path, &Path, &Path) -> Result<()>) -> Result<()> {
        let root = root();
        let out_dir = root.join("target/guests").join(self.lang);
        std::fs::create_dir_all(&out_dir)?;
        let wit = root.join("wit/weft.wit");
        let mut tools = None;
        for dir in ["guest-examples", "tests/guests"].map(|d| root.join(d).join(self.lang)) {
            let sources = files(&dir, self.ext)?;
            let mut shared = blake3::Hasher::new();
            shared.update(self.version.as_bytes());
            let mut jobs = Vec::new();
            for file in self.inputs.iter().chain([&wit]).chain(&sources) {
                let text = std::fs::read(file)?;
                shared.update(file.as_os_str().as_encoded_bytes());
                shared.update(&text);
                if sources.contains(file)
                    && text.windows(self.marker.len()).any(|w| w == self.marker.as_bytes())
                {
                    jobs.push(file);
                }
            }
            let digest = shared.finalize().to_hex().to_string();
            for job in jobs {
                let stem = job.file_stem().and_then(|s| s.to_str()).context("a module name")?;
                let out = out_dir.join(format!("{stem}.wasm"));
                let key = out_dir.join(format!("{stem}.inputs"));
                if out.exists() && std::fs::read_to_string(&key).is_ok_and(|k| k == digest) {
                    continue;
                }
                let tools = match &tools {
                    Some(t) => t,
                    None => tools.insert((self.tools)()?),
                };
                let _ = std::fs::remove_file(&key);
                build(tools, job, &out)?;
                std::fs::write(&key, &digest)?;
            }
        }
        Ok(())
    }
}

/// componentize-js and rolldown, installed by `npm ci` from `sdk/js`'s
/// package.json and lock into `target/sdk-tools/js`; returns that directory.
fn js_tools() -> Result<PathBuf> {
    let sdk = root().join("sdk/js");
    let dir = root().join("target/sdk-tools/js");
    let lock = std::fs::read(sdk.join("package-lock.json")).context("sdk/js/package-lock.json")?;
    let want = blake3::hash(&lock).to_hex().to_string();
    let stamp = dir.join("weft-installed");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(sdk.join(file), dir.join(file))?;
    }
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel", "error"]).current_dir(&dir))
        .context("installing the JavaScript SDK's tools needs Node.js 20+ and npm")?;
    std::fs::write(&stamp, want)?;
    Ok(dir)
}

/// Build every JavaScript job (a module calling `weft.main`) under
/// `guest-examples/js` and `tests/guests/js`.
pub fn js_guests() -> Result<()> {
    let sdk = root().join("sdk/js");
    let mut inputs = files(&sdk.join("src"), "js")?;
    inputs.extend([sdk.join("build.mjs"), sdk.join("package-lock.json")]);
    let job =
        Jobs { lang: "js", ext: "js", marker: "weft.main(", inputs, version: String::new(), tools: js_tools };
    job.build(js_build)
}

/// One JavaScript job into a component at `out`, with the tools in `tools`.
fn js_build(tools: &Path, job: &Path, out: &Path) -> Result<()> {
    run(Command::new("node")
        .arg(root().join("sdk/js/build.mjs"))
        .arg(job)
        .arg("-o")
        .arg(out)
        .env("WEFT_JS_TOOLS", tools))
}

/// The JavaScript cost probe `cargo xtask bench-sdks` runs
/// (`sdk/js/bench/costs.js`), built into `target/bench/js-costs.wasm`.
pub fn js_costs() -> Result<()> {
    let out = root().join("target/bench/js-costs.wasm");
    std::fs::create_dir_all(root().join("target/bench"))?;
    js_build(&js_tools()?, &root().join("sdk/js/bench/costs.js"), &out)
}

/// Debian's packages the C SDK builds with: clang, lld (`wasm-ld`), wasi-libc
/// and the compiler runtime for wasm32.
const C_PACKAGES: [&str; 4] = ["clang", "lld", "wasi-libc", "libclang-rt-dev-wasm32"];

/// The clang flags of every C job: wasm32 with wasi-libc as a reactor (a
/// library the host calls, not a command); optimised across the job and the
/// SDK (LTO), with bulk memory (`memcpy` as one `memory.copy`, as Rust's
/// wasm targets have it); the shadow stack first in linear memory, so that
/// overflowing it traps instead of overwriting data.
const C_FLAGS: [&str; 12] = [
    "--target=wasm32-wasi",
    "--sysroot=/usr",
    "-mexec-model=reactor",
    "-O3",
    "-flto",
    "-mbulk-memory",
    "-msign-ext",
    "-std=gnu11",
    "-Wall",
    "-Wextra",
    "-Wl,--stack-first",
    "-Wl,-z,stack-size=1048576",
];

/// Whether clang builds a wasm32-wasi module here.
fn c_toolchain_works(dir: &Path) -> bool {
    let probe = dir.join("probe.c");
    std::fs::write(&probe, "#include <stdlib.h>\nint probe(void) { return abs(-1); }\n").is_ok()
        && Command::new("clang")
            .args(C_FLAGS)
            .arg(&probe)
            .arg("-o")
            .arg(dir.join("probe.wasm"))
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// clang, lld and wasi-libc from Debian (installed with apt-get when they are
/// missing), and the WIT bindings from wit-bindgen's C generator, written
/// into `target/sdk-tools/c`; returns that directory.
fn c_tools() -> Result<PathBuf> {
    let dir = root().join("target/sdk-tools/c");
    std::fs::create_dir_all(&dir)?;
    if !c_toolchain_works(&dir) {
        // apt-get, as root or through sudo.
        let apt = |args: &[&str]| {
            let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
            let mut c = Command::new(if root { "apt-get" } else { "sudo" });
            if !root {
                c.arg("apt-get");
            }
            c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            c
        };
        let install = ["install", "-y", "--no-install-recommends"];
        let install: Vec<&str> = install.iter().chain(&C_PACKAGES).copied().collect();
        // A fresh machine may have no package lists yet.
        if run(&mut apt(&install)).is_err() {
            run(&mut apt(&["update"]))?;
            run(&mut apt(&install))
                .context("the C SDK needs Debian's clang, lld, wasi-libc and libclang-rt-dev-wasm32")?;
        }
        if !c_toolchain_works(&dir) {
            bail!("clang cannot build for wasm32-wasi even with {C_PACKAGES:?} installed");
        }
    }
    let mut resolve = wit_bindgen_core::wit_parser::Resolve::default();
    let (package, _) = resolve.push_path(root().join("wit"))?;
    let world = resolve.select_world(&[package], Some("job"))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default().build().generate(&resolve, world, &mut files)?;
    let bindings = dir.join("bindings");
    std::fs::create_dir_all(&bindings)?;
    for (name, contents) in files.iter() {
        std::fs::write(bindings.join(name), contents)?;
    }
    Ok(bindings)
}

/// Build every C job (a file with `WEFT_MAIN(`) under `guest-examples/c` and
/// `tests/guests/c`: clang makes a core module of the job, the SDK and the
/// bindings; wit-component makes it a component with the WASI preview-1
/// adapter.
pub fn c_guests() -> Result<()> {
    let sdk = root().join("sdk/c");
    let sources = files(&sdk.join("src"), "c")?;
    let mut inputs = sources.clone();
    inputs.extend(files(&sdk.join("src"), "h")?);
    inputs.extend(files(&sdk.join("include"), "h")?);
    let version = format!("{C_VERSION} {}", C_FLAGS.join(" "));
    let job = Jobs { lang: "c", ext: "c", marker: "WEFT_MAIN(", inputs, version, tools: c_tools };
    job.build(|bindings, job, out| c_build(bindings, &sources, job, out))
}

/// `cargo xtask build-c JOB.c -o OUT.wasm`: one C job, anywhere.
pub fn build_c_job(job: &Path, out: &Path) -> Result<()> {
    let bindings = c_tools()?;
    c_build(&bindings, &files(&root().join("sdk/c/src"), "c")?, job, out)?;
    eprintln!("xtask: built {}", out.display());
    Ok(())
}

/// What else a C job's build depends on (beside the flags): the generator's
/// and the encoder's versions.
const C_VERSION: &str = "wit-bindgen-c 0.46; wit-component 0.239";

/// One C job into a component at `out`.
pub fn c_build(bindings: &Path, sdk: &[PathBuf], job: &Path, out: &Path) -> Result<()> {
    let core = out.with_extension("core.wasm");
    run(Command::new("clang")
        .args(C_FLAGS)
        .arg("-I")
        .arg(root().join("sdk/c/include"))
        .arg("-I")
        .arg(bindings)
        .arg(job)
        .args(sdk)
        .arg(bindings.join("job.c"))
        .arg(bindings.join("job_component_type.o"))
        .arg("-o")
        .arg(&core))?;
    let module = std::fs::read(&core)?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
        .with_context(|| format!("making {} a component", job.display()))?;
    std::fs::write(out, component)?;
    std::fs::remove_file(&core)?;
    Ok(())
}

/// The SDKs' own unit tests, run natively (the Python SDK's with the machine's
/// `python3`, the JavaScript SDK's with `node --test`, the C SDK's compiled
/// for this machine with the sanitizers): the golden vectors, the dispatcher,
/// and the JavaScript SDK's TypeScript declarations (`tsc`).
pub fn sdk_unit_tests() -> Result<()> {
    c_tools()?; // the WIT bindings the C dispatcher's test compiles against
    run(Command::new("bash").arg(root().join("sdk/c/tests/run.sh")))?;
    let sdk = root().join("sdk/python");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(python)
        .args(["-m", "unittest", "discover", "-s", "tests", "-t", "."])
        .current_dir(&sdk))?;
    let js = root().join("sdk/js");
    run(Command::new("node").args(["--test", "test/"]).current_dir(&js))?;
    // The TypeScript declarations, checked against a job (with expected errors).
    run(Command::new(js_tools()?.join("node_modules/.bin/tsc")).args(["-p", "test/types"]).current_dir(&js))
}

/// The `.<ext>` files directly in `dir`, sorted (none when it does not exist).
fn files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == ext) {
            files.push(path);
        }
    }
    files.sort();
    if files.iter().any(|f| f.to_str().is_none()) {
        bail!("a file name under {} is not UTF-8", dir.display());
    }
    Ok(files)
}
