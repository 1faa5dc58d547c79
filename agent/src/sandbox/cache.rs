//! Compiled components, kept twice: on disk and in memory.
//!
//! Compiling a component with Cranelift takes tens to hundreds of milliseconds;
//! instantiating a prepared one takes microseconds. So a component is compiled
//! once per agent: the machine code is written to
//! `<cache_dir>/<digest hex>-<engine hash>.cwasm` (the engine hash changes with
//! wasmtime's version and settings, so a stale file is never loaded), and the
//! linked, type-checked [`JobPre`] is kept in memory for every later task.

use super::bindings::JobPre;
use super::error::SandboxError;
use super::host::TaskState;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use weft_core::artifact::Digest;

/// A component ready to instantiate: compiled, linked and checked against the job world.
pub struct Prepared {
    pub(crate) digest: Digest,
    pub(crate) pre: JobPre<TaskState>,
}

impl Prepared {
    /// The component's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("digest", &self.digest).finish_non_exhaustive()
    }
}

pub(crate) struct ComponentCache {
    dir: Option<PathBuf>,
    engine_hash: String,
    capacity: usize,
    entries: Mutex<HashMap<Digest, (u64, Arc<Prepared>)>>,
    clock: std::sync::atomic::AtomicU64,
}

impl ComponentCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>, capacity: usize) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            dir,
            engine_hash: format!("{:016x}", h.finish()),
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
            clock: Default::default(),
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The prepared component for `digest`, from memory when it is there.
    pub(crate) fn get(&self, digest: &Digest) -> Option<Arc<Prepared>> {
        let now = self.tick();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get_mut(digest).map(|(used, p)| {
            *used = now;
            p.clone()
        })
    }

    /// Prepare `bytes` (whose digest the caller has verified) and remember it.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        linker: &Linker<TaskState>,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<Arc<Prepared>, SandboxError> {
        if let Some(p) = self.get(digest) {
            return Ok(p);
        }
        let component = self.compile(engine, digest, bytes)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| SandboxError::UnsatisfiedImports { reason: format!("{e:#}") })?;
        let pre = JobPre::new(instance_pre)
            .map_err(|e| SandboxError::MissingExports { reason: format!("{e:#}") })?;
        let prepared = Arc::new(Prepared { digest: *digest, pre });
        let now = self.tick();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity
            && let Some(oldest) = entries.iter().min_by_key(|(_, (used, _))| *used).map(|(d, _)| *d)
        {
            entries.remove(&oldest);
        }
        entries.insert(*digest, (now, prepared.clone()));
        Ok(prepared)
    }

    fn path(&self, digest: &Digest) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{}-{}.cwasm", digest.to_hex(), self.engine_hash)))
    }

    fn compile(&self, engine: &Engine, digest: &Digest, bytes: &[u8]) -> Result<Component, SandboxError> {
        let Some(path) = self.path(digest) else {
            return Component::new(engine, bytes).map_err(invalid);
        };
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unreadable precompiled component");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = Component::new(engine, bytes).map_err(invalid)?;
        match component.serialize() {
            Ok(code) => write_atomically(&path, &code)?,
            Err(e) => tracing::warn!(error = %e, "could not serialize compiled component; not caching it"),
        }
        Ok(component)
    }
}

fn invalid(e: wasmtime::Error) -> SandboxError {
    SandboxError::InvalidComponent { reason: format!("{e:#}") }
}

/// Load machine code that this cache wrote.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize_file` trusts the file to be wasmtime's own
    // output. Files in the cache directory are written only by `compile` above,
    // atomically (temp file + rename), named by the component's verified digest
    // and the engine's compatibility hash; wasmtime still checks the header and
    // engine settings and rejects a mismatched file. The directory belongs to the
    // agent and must not be writable by untrusted users (operator's guide).
    unsafe { Component::deserialize_file(engine, path) }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SandboxError> {
    let err = |source| SandboxError::Cache { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
