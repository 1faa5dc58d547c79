//! The panic hook: a panicking user function's message goes to stderr, which
//! the host captures, before the panic traps the instance (guests build with
//! `panic = "abort"` semantics on wasm32-wasip2: a panic is a trap).

use std::sync::Once;

/// Install the hook once per instance. Called by every export.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(report)));
}

fn report(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)");
    let location =
        info.location().map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column())).unwrap_or_default();
    match crate::dispatch::current_function() {
        Some(f) => eprintln!("weft: user function `{f}` panicked{location}: {message}"),
        None => eprintln!("weft: panicked{location}: {message}"),
    }
}
