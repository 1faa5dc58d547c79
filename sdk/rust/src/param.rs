//! Bound parameters: a runtime value handed to a user function without a
//! closure.
//!
//! A user function is a plain function the host calls by name, so it cannot
//! capture a driver variable. Instead it declares one extra parameter, taken
//! by reference, and the driver binds a value to it where it builds the
//! dataset:
//!
//! ```no_run
//! # mod job {
//! use weft::prelude::*;
//!
//! #[weft::filter]
//! fn longer_than(word: &str, min: &usize) -> bool {
//!     word.len() > *min
//! }
//!
//! #[weft::main]
//! fn main(ctx: &Context) -> weft::Result<()> {
//!     let words = ctx.parallelize(["a", "bb", "ccc"].map(String::from), 2)?;
//!     let long = words.filter(longer_than.with(&1)).collect()?;
//!     # let _ = long;
//!     Ok(())
//! }
//! # }
//! # fn main() {}
//! ```
//!
//! How it travels: [`with`](Bound) encodes the value ([`Record`]) once; the
//! dataset method ships those bytes as one of the job's broadcast values (inline
//! when small, else a content-addressed block every agent fetches and verifies
//! once through its artifact cache) and names it in the plan step. In a task,
//! the dispatcher fetches and decodes it once per instance, before the first
//! record, and hands every call the same reference. A bound [`Broadcast`] is not
//! shipped again: its value is the parameter.
//!
//! How the dispatcher reaches the function: the attribute macro makes a
//! function with a parameter a `Copy` struct holding `Option<&'static P>`
//! (plus a constant of the same name, so `longer_than` is still a value), whose
//! `Default` reads the value the dispatcher binds while it builds the
//! step. The decoded value lives as long as the instance (one task attempt).

use crate::context::Broadcast;
use crate::dispatch::CallError;
use crate::function::Function;
use crate::record::{Record, RecordError};
use crate::registry::Registration;
use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

/// A decoded parameter, for the step being built.
pub(crate) type Binding = Option<&'static Value>;

/// A decoded parameter, type-erased.
type Value = dyn Any + Send + Sync;

/// A value to bind: encoded bytes, or a broadcast already shipped.
#[doc(hidden)]
#[derive(Clone, PartialEq, Eq)]
pub enum Param {
    /// The value's [`Record`] encoding, shipped when the dataset is built.
    Value(Vec<u8>),
    /// A broadcast value of the job, by the host's id.
    Broadcast(u64),
}

/// What can be bound as a parameter of type `P`: `&P`, or `&Broadcast<P>`.
pub trait IntoParam<P> {
    #[doc(hidden)]
    fn into_param(self) -> Param;
}

impl<P: Record> IntoParam<P> for &P {
    fn into_param(self) -> Param {
        Param::Value(self.to_record_bytes())
    }
}

impl<P> IntoParam<P> for &Broadcast<P> {
    fn into_param(self) -> Param {
        Param::Broadcast(self.id())
    }
}

/// A user function with its parameter bound: what `gradient.with(&w)` makes,
/// for a dataset method.
pub struct Bound<F> {
    param: Param,
    _function: PhantomData<F>,
}

impl<F: Function> Bound<F> {
    #[doc(hidden)]
    pub fn new<P>(param: impl IntoParam<P>) -> Self {
        Bound { param: param.into_param(), _function: PhantomData }
    }
}

impl<F: Function> fmt::Debug for Bound<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Param::Value(bytes) => write!(f, "{}.with(<{} bytes>)", F::NAME, bytes.len()),
            Param::Broadcast(_) => write!(f, "{}.with(<broadcast>)", F::NAME),
        }
    }
}

/// What a dataset method takes: a user function (`parse`), or one with its
/// parameter bound (`gradient.with(&w)`).
pub trait Bindable {
    /// The user function.
    type Function: Function;
    #[doc(hidden)]
    fn into_param(self) -> Option<Param>;
}

impl<F: Function> Bindable for F {
    type Function = F;
    fn into_param(self) -> Option<Param> {
        None
    }
}

impl<F: Function> Bindable for Bound<F> {
    type Function = F;
    fn into_param(self) -> Option<Param> {
        Some(self.param)
    }
}

/// The parameter type of a user function that takes one.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    type_name: fn() -> &'static str,
    type_id: fn() -> TypeId,
    decode: fn(&[u8]) -> Result<&'static Value, RecordError>,
}

impl ParamSpec {
    /// Parameters of type `P`.
    pub const fn of<P: Record + Send + Sync + 'static>() -> Self {
        ParamSpec { type_name: std::any::type_name::<P>, type_id: TypeId::of::<P>, decode: decode::<P> }
    }

    /// The type's name, for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        (self.type_name)()
    }
}

/// Decoded once and kept for the instance's life (one task attempt).
fn decode<P: Record + Send + Sync + 'static>(bytes: &[u8]) -> Result<&'static Value, RecordError> {
    Ok(Box::leak(Box::new(P::decode(bytes)?)))
}

thread_local! {
    /// The parameter of the step being built, read by `Default`.
    static BINDING: Cell<Binding> = const { Cell::new(None) };
    /// Decoded parameters by broadcast id and type: each is decoded once per instance.
    static DECODED: RefCell<HashMap<(u64, TypeId), &'static Value>> = RefCell::new(HashMap::new());
}

/// Run `build` (which builds a step's function values with `Default`) with
/// `binding` as their parameter.
pub(crate) fn scope<R>(binding: Binding, build: impl FnOnce() -> R) -> R {
    let before = BINDING.with(|b| b.replace(binding));
    let result = build();
    BINDING.with(|b| b.set(before));
    result
}

/// The parameter bound for the step being built, if it is a `P`.
#[doc(hidden)]
pub fn binding<P: 'static>() -> Option<&'static P> {
    BINDING.with(Cell::get).and_then(|b| (b as &dyn Any).downcast_ref::<P>())
}

/// The error of a function with a parameter called without one (natively,
/// outside the dispatcher).
#[doc(hidden)]
pub fn unbound<F: Function>() -> crate::function::UserError {
    crate::function::UserError::new(format!(
        "`{0}` takes a parameter and none is bound: use `{0}.with(&value)`, or call `{0}.call(..)` with it",
        F::NAME
    ))
}

/// The decoded parameter of a step applying `reg` with broadcast value `param`.
pub(crate) fn resolve(reg: &Registration, param: Option<u64>) -> Result<Binding, CallError> {
    let (spec, id) = match (reg.param, param) {
        (None, None) => return Ok(None),
        (Some(spec), None) => {
            return Err(CallError::Decode(format!(
                "{} `{}` takes a parameter of type `{}`, but none is bound: use `{}.with(&value)`",
                reg.kind,
                reg.name,
                spec.type_name(),
                reg.name
            )));
        }
        (None, Some(_)) => {
            return Err(CallError::Decode(format!(
                "{} `{}` takes no parameter, but the step binds one",
                reg.kind, reg.name
            )));
        }
        (Some(spec), Some(id)) => (spec, id),
    };
    let key = (id, (spec.type_id)());
    if let Some(value) = DECODED.with(|d| d.borrow().get(&key).copied()) {
        return Ok(Some(value));
    }
    let bytes = crate::host::broadcast_get(id).ok_or_else(|| {
        CallError::Decode(format!(
            "the parameter bound to {} `{}` (broadcast value {id}) is not in this task",
            reg.kind, reg.name
        ))
    })?;
    let value = (spec.decode)(&bytes).map_err(|e| {
        CallError::Decode(format!(
            "the parameter bound to {} `{}` does not decode as `{}`: {e}",
            reg.kind,
            reg.name,
            spec.type_name()
        ))
    })?;
    DECODED.with(|d| d.borrow_mut().insert(key, value));
    Ok(Some(value))
}
