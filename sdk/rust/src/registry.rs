//! The table of user functions, filled without any code in `main`.
//!
//! Every `#[weft::map]` (and friends) defines its [`Registration`] as a
//! `static` (returned by `Function::registration`) and expands to an
//! [`inventory::submit!`] of a [`Registered`] pointing at it: a `static` node
//! plus a constructor, placed in the `.init_array` section, that links the node
//! into a global list. The `#[weft::main]` function is registered the same way
//! as a [`MainRegistration`].
//!
//! A constructor only runs if the linker keeps the object file holding it. The
//! job crate's own objects are always linked; for a function defined in a
//! library crate, the dataset methods read the function's name through
//! `Function::registration`, a reference to a symbol in that object, so a job
//! that uses the function links its registration too. (Checked with functions
//! from a dependency, with and without LTO.)
//!
//! Why this works inside a wasm32-wasip2 component: `wasm-ld` turns the
//! `.init_array` entries of every linked object into the synthesized
//! `__wasm_call_ctors` function, and the bindings `wit-bindgen` generates start
//! every export with `run_ctors_once()`, which calls `__wasm_call_ctors` once
//! per instance. So by the time the host calls `functions`, `run-chain` or
//! `run`, every registration has run. (This is checked end to end against the
//! built guest components; natively, the platform loader runs `.init_array`.)
//!
//! The table is built once, on first use, into a name-keyed map. Two functions
//! with the same name are not an error until a chain uses that name.

use crate::context::Context;
use crate::dispatch::{self, CallError};
use crate::function::{FilterFn, FlatMapFn, Function, MapBatchFn, MapFn, OpKind, ReduceFn};
use crate::fuse::{Combine, Fuse};
use std::collections::HashMap;
use std::sync::OnceLock;
use weft_codec::batch::BatchWriter;

/// Applies one registered function to a whole batch.
pub(crate) type ApplyFn = fn(&[u8], &mut BatchWriter) -> Result<(), CallError>;

/// One user function, as registered by its attribute macro.
#[derive(Debug)]
pub struct Registration {
    pub(crate) name: &'static str,
    pub(crate) kind: OpKind,
    pub(crate) module: &'static str,
    pub(crate) apply: ApplyFn,
    /// How to run it fused with its neighbours (per-record functions only).
    pub(crate) fuse: Option<Fuse>,
    /// How to run it as a map-side combine (reduce functions only).
    pub(crate) combine: Option<Combine>,
    /// The type of its bound parameter, if it takes one.
    pub(crate) param: Option<crate::param::ParamSpec>,
}

impl Registration {
    /// A `#[weft::map]` function, declared in `module`.
    pub const fn map<F: MapFn>(module: &'static str) -> Self {
        Self::new::<F>(module, dispatch::apply_map::<F>, Some(Fuse::map::<F>()))
    }
    /// A `#[weft::filter]` function, declared in `module`.
    pub const fn filter<F: FilterFn>(module: &'static str) -> Self {
        Self::new::<F>(module, dispatch::apply_filter::<F>, Some(Fuse::filter::<F>()))
    }
    /// A `#[weft::flat_map]` function, declared in `module`.
    pub const fn flat_map<F: FlatMapFn>(module: &'static str) -> Self {
        Self::new::<F>(module, dispatch::apply_flat_map::<F>, Some(Fuse::flat_map::<F>()))
    }
    /// A `#[weft::map_batch]` function, declared in `module`.
    pub const fn map_batch<F: MapBatchFn>(module: &'static str) -> Self {
        Self::new::<F>(module, dispatch::apply_map_batch::<F>, None)
    }
    /// A `#[weft::reduce]` function, declared in `module`.
    pub const fn reduce<F: ReduceFn>(module: &'static str) -> Self
    where
        F::Value: 'static,
    {
        Registration {
            combine: Some(Combine::of::<F>()),
            ..Self::new::<F>(module, dispatch::apply_reduce::<F>, None)
        }
    }

    const fn new<F: Function>(module: &'static str, apply: ApplyFn, fuse: Option<Fuse>) -> Self {
        Registration { name: F::NAME, kind: F::KIND, module, apply, fuse, combine: None, param: F::PARAM }
    }
}

/// What the macros submit: the way to a function's [`Registration`].
#[derive(Debug)]
pub struct Registered(pub fn() -> &'static Registration);

inventory::collect!(Registered);

/// The `#[weft::main]` function.
#[derive(Debug)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub struct MainRegistration {
    pub(crate) module: &'static str,
    pub(crate) run: fn(&Context) -> Result<(), String>,
}

impl MainRegistration {
    /// Register `run` (a wrapper around the user's main) declared in `module`.
    pub const fn new(module: &'static str, run: fn(&Context) -> Result<(), String>) -> Self {
        MainRegistration { module, run }
    }
}

inventory::collect!(MainRegistration);

/// What a name resolves to.
pub(crate) enum Entry {
    One(&'static Registration),
    /// Defined more than once; the modules that define it.
    Ambiguous(Vec<&'static str>),
}

fn table() -> &'static HashMap<&'static str, Entry> {
    static TABLE: OnceLock<HashMap<&'static str, Entry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table: HashMap<&'static str, Entry> = HashMap::new();
        for reg in inventory::iter::<Registered>.into_iter().map(|r| (r.0)()) {
            match table.get_mut(reg.name) {
                None => {
                    table.insert(reg.name, Entry::One(reg));
                }
                Some(Entry::One(first)) => {
                    let modules = vec![first.module, reg.module];
                    table.insert(reg.name, Entry::Ambiguous(modules));
                }
                Some(Entry::Ambiguous(modules)) => modules.push(reg.module),
            }
        }
        table
    })
}

/// The function registered under `name`.
pub(crate) fn lookup(name: &str) -> Option<&'static Entry> {
    table().get(name)
}

/// Names of all registered functions, sorted.
pub fn function_names() -> Vec<String> {
    let mut names: Vec<String> = table().keys().map(|n| n.to_string()).collect();
    names.sort_unstable();
    names
}

/// The registered `#[weft::main]`, or why there is none to run.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn main_function() -> Result<&'static MainRegistration, String> {
    let mut mains = inventory::iter::<MainRegistration>.into_iter();
    match (mains.next(), mains.next()) {
        (Some(main), None) => Ok(main),
        (None, _) => Err("this component has no #[weft::main] function".into()),
        (Some(a), Some(b)) => Err(format!(
            "this component has several #[weft::main] functions (in {} and {})",
            a.module, b.module
        )),
    }
}
