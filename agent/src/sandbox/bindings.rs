//! The one place the host bindings are generated from `wit/`.
//!
//! Everything else in the agent imports WIT types from here. Exports are called
//! asynchronously so that a deadline can interrupt a guest blocked in a host call
//! (`wasi:io/poll`, a driver action) as well as one spinning in its own code.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "job",
    imports: {
        // Host calls that make the host keep memory for the guest may trap it
        // (its memory limit, which host memory counts against).
        "weft:grid/driver": async | trappable,
        "weft:grid/accumulators": tracing | trappable,
        default: tracing,
    },
    exports: { default: async },
});

pub use weft::grid::{driver, log, types};
