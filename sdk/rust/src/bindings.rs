//! The one place that generates bindings from the WIT contract (`wit/weft.wit`,
//! world `job`), and the component's exports.
//!
//! Only built for WebAssembly. The exports are thin: they convert the generated
//! types and call [`dispatch`](crate::dispatch) (for `functions` and
//! `run-chain`) or the registered `#[weft::main]` (for `run`). Every export
//! first installs the panic hook, so a panicking user function leaves its
//! message on stderr, where the host captures it, before the trap.

#![allow(unsafe_code, missing_docs, clippy::all)]

wit_bindgen::generate!({
    path: "../../wit",
    world: "job",
});

use crate::dispatch::{self, CallError, Op};
use crate::function::OpKind;
use exports::weft::grid::dispatcher;
use weft::grid::types;

struct Component;

impl dispatcher::Guest for Component {
    fn functions() -> Vec<String> {
        crate::panic::install_hook();
        dispatch::functions()
    }

    fn run_chain(chain: Vec<types::Op>, input: Vec<u8>) -> Result<Vec<u8>, types::CallError> {
        crate::panic::install_hook();
        let result = dispatch::run_chain(&ops(chain), input);
        crate::task::flush_accumulators();
        result.map_err(call_error)
    }

    fn flush_chain(chain: Vec<types::Op>) -> Result<Vec<u8>, types::CallError> {
        crate::panic::install_hook();
        let result = dispatch::flush_chain(&ops(chain));
        crate::task::flush_accumulators();
        result.map_err(call_error)
    }
}

fn ops(chain: Vec<types::Op>) -> Vec<Op> {
    chain
        .into_iter()
        .map(|op| Op { kind: op_kind(op.kind), function: op.function, param: op.param })
        .collect()
}

fn call_error(e: CallError) -> types::CallError {
    match e {
        CallError::UnknownFunction(m) => types::CallError::UnknownFunction(m),
        CallError::Decode(m) => types::CallError::Decode(m),
        CallError::User(m) => types::CallError::User(m),
    }
}

impl Guest for Component {
    fn run() -> Result<(), String> {
        crate::panic::install_hook();
        let main = crate::registry::main_function()?;
        let result = (main.run)(&crate::context::Context::new());
        crate::task::flush_accumulators();
        result
    }
}

fn op_kind(kind: types::OpKind) -> OpKind {
    match kind {
        types::OpKind::Map => OpKind::Map,
        types::OpKind::Filter => OpKind::Filter,
        types::OpKind::FlatMap => OpKind::FlatMap,
        types::OpKind::MapBatch => OpKind::MapBatch,
        types::OpKind::Reduce => OpKind::Reduce,
        types::OpKind::Combine => OpKind::Combine,
    }
}

export!(Component);
