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
        version: COMPONENTIZE_PY,
        tools: python_tools,
    };
    job.build(|bin, job, out| {
        let mut c = Command::new(bin.join("python"));
        c.args(["-m", "weft.build"])
            .arg(job)
            .arg("-o")
            .arg(out)
            .env("PYTHONPATH", &sdk)
            .env("COMPONENTIZE_PY", bin.join("componentize-py"));
        c
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
    /// The toolchain's version, also an input.
    version: &'static str,
    /// Installs the toolchain (only when something is to be built).
    tools: fn() -> Result<PathBuf>,
}

impl Jobs {
    /// Build the jobs under `guest-examples/<lang>` and `tests/guests/<lang>`
    /// with `command(tools, job, output)`, each only when the digest of its
    /// directory's sources, the SDK's inputs, the WIT and the version changed.
    fn build(&self, command: impl Fn(&Path, &Path, &Path) -> Command) -> Result<()> {
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
                run(&mut command(tools, job, &out))?;
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
    let job = Jobs { lang: "js", ext: "js", marker: "weft.main(", inputs, version: "", tools: js_tools };
    job.build(|tools, job, out| {
        let mut c = Command::new("node");
        c.arg(sdk.join("build.mjs")).arg(job).arg("-o").arg(out).env("WEFT_JS_TOOLS", tools);
        c
    })
}

/// The SDKs' own unit tests, run natively (the Python SDK's with the machine's
/// `python3`, the JavaScript SDK's with `node --test`): the golden vectors,
/// the dispatcher, and the JavaScript SDK's TypeScript declarations (`tsc`).
pub fn sdk_unit_tests() -> Result<()> {
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
