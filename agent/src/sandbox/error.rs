//! Errors loading a component into the sandbox.
//!
//! These are about the artifact, not a task: a file that is not a component, a
//! component that imports what weft does not provide or lacks the exports a
//! weft job has. Task failures are [`EndReason`](weft_core::metering::EndReason)s.

/// Why a component could not be prepared for running.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The bytes are not a valid WebAssembly component.
    #[error(
        "not a valid WebAssembly component: {reason}\n  \
         hint: build the job for wasm32-wasip2 with the weft SDK (a core module or a native binary will not do)"
    )]
    InvalidComponent {
        /// What the validator or compiler said.
        reason: String,
    },
    /// The component imports something the sandbox does not provide.
    #[error(
        "the component imports what weft does not provide: {reason}\n  \
         hint: weft grants only the weft:grid interfaces and WASI without filesystem or network"
    )]
    UnsatisfiedImports {
        /// Wasmtime's description of the missing import.
        reason: String,
    },
    /// The component lacks the `job` world's exports.
    #[error(
        "the component does not export the weft job world (weft:grid/dispatcher and run): {reason}\n  \
         hint: mark the job's entry point with #[weft::main]"
    )]
    MissingExports {
        /// What is missing.
        reason: String,
    },
    /// The engine could not be built from the configuration.
    #[error("invalid sandbox configuration: {reason}")]
    Config {
        /// What wasmtime rejected.
        reason: String,
    },
    /// The precompiled-component cache could not be written.
    #[error("component cache at {path}: {source}")]
    Cache {
        /// The file involved.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
