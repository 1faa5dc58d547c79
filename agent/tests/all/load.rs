//! Loading components: bad artifacts get clear errors, good ones are cached.

use crate::support::{chain, guest, limits, lines, run, sandbox};
use weft_agent::{OpKind, Sandbox, SandboxConfig, SandboxError};
use weft_core::artifact::Digest;
use weft_core::metering::EndReason;

fn load(bytes: &[u8]) -> Result<(), SandboxError> {
    sandbox().0.load(&Digest::of(bytes), bytes).map(|_| ())
}

#[test]
fn random_bytes_are_not_a_component() {
    let err = load(b"this is not wasm at all").unwrap_err();
    assert!(matches!(err, SandboxError::InvalidComponent { .. }), "{err:?}");
    assert!(err.to_string().contains("wasm32-wasip2"), "the message names the fix: {err}");
}

#[test]
fn a_core_module_is_not_a_component() {
    let module = wat::parse_str("(module (func (export \"f\")))").unwrap();
    let err = load(&module).unwrap_err();
    assert!(matches!(err, SandboxError::InvalidComponent { .. }), "{err:?}");
}

#[test]
fn a_component_without_the_job_exports_is_refused() {
    let empty = wat::parse_str("(component)").unwrap();
    let err = load(&empty).unwrap_err();
    assert!(matches!(err, SandboxError::MissingExports { .. }), "{err:?}");
    assert!(err.to_string().contains("#[weft::main]"), "{err}");
}

#[test]
fn a_component_importing_unknown_interfaces_is_refused() {
    let wat = r#"(component
        (import "acme:evil/backdoor" (instance (export "open" (func))))
    )"#;
    let err = load(&wat::parse_str(wat).unwrap()).unwrap_err();
    assert!(matches!(err, SandboxError::UnsatisfiedImports { .. }), "{err:?}");
    assert!(err.to_string().contains("acme:evil/backdoor"), "{err}");
}

#[test]
fn an_unknown_function_is_a_guest_error_naming_it() {
    let (_, r) = run("hostile", chain(OpKind::Map, "no_such_function"), limits(), vec![lines(["x"])]);
    let EndReason::GuestError { message } = &r.end else { panic!("{:?}", r.end) };
    assert!(message.contains("no_such_function"), "{message}");
}

#[test]
fn a_malformed_input_batch_is_a_host_error() {
    let (_, r) = run("hostile", chain(OpKind::Map, "echo"), limits(), vec![vec![9, 0, 0, 0, b'x']]);
    assert!(matches!(r.end, EndReason::HostError { .. }), "{:?}", r.end);
}

#[test]
fn compiled_components_are_cached_on_disk_and_survive_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = guest("hostile");
    let digest = Digest::of(&bytes);
    let config = || SandboxConfig::default().with_max_instances(2).with_cache_dir(dir.path());

    Sandbox::new(config()).unwrap().load(&digest, &bytes).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&digest.to_hex()) && name.ends_with(".cwasm"), "{name}");

    // A second agent process (a fresh sandbox) loads the machine code from disk:
    // it reads the file and does not write it again.
    let modified = |p: &std::path::Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let written = modified(&files[0]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    Sandbox::new(config()).unwrap().load(&digest, &bytes).unwrap();
    assert_eq!(modified(&files[0]), written, "a cache hit rewrote the file");

    // A corrupted file is discarded and the component recompiled into a good
    // file, which the next sandbox then loads without rewriting.
    std::fs::write(&files[0], b"garbage").unwrap();
    Sandbox::new(config()).unwrap().load(&digest, &bytes).unwrap();
    assert!(std::fs::read(&files[0]).unwrap().len() > 1000, "the cache file was rewritten");
    let rewritten = modified(&files[0]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    Sandbox::new(config()).unwrap().load(&digest, &bytes).unwrap();
    assert_eq!(modified(&files[0]), rewritten, "the rewritten file is a valid cache entry");
}
