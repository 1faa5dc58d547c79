//! Logging into the task's (or driver's) bounded log.
//!
//! ```
//! let word = "weft";
//! weft::info!("counted {word}");
//! weft::log!(weft::log::Level::Debug, "{} records", 3);
//! ```
//!
//! Natively (outside a weft host) lines go to stderr, so user functions that log
//! still run in tests.

use crate::host;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// For debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected, work goes on.
    Warn,
    /// Something failed.
    Error,
}

/// Append one line to the log.
pub fn write(level: Level, message: &str) {
    host::log(level, message);
}

/// Log a formatted line at the given [`Level`]: `weft::log!(Level::Info, "{n} rows")`.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {
        $crate::log::write($level, &::std::format!($($arg)+))
    };
}

/// Log a formatted line at [`Level::Trace`].
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Trace, $($arg)+) };
}

/// Log a formatted line at [`Level::Debug`].
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Debug, $($arg)+) };
}

/// Log a formatted line at [`Level::Info`].
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Info, $($arg)+) };
}

/// Log a formatted line at [`Level::Warn`].
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Warn, $($arg)+) };
}

/// Log a formatted line at [`Level::Error`].
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Error, $($arg)+) };
}
