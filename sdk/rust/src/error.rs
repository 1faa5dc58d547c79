//! Errors of driver calls and of the typed helpers user functions call.

use crate::record::RecordError;

/// A weft operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The host rejected an argument (unknown dataset, bad URI, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The job an action started failed.
    #[error("job failed: {0}")]
    JobFailed(String),
    /// A driver call (datasets, actions, broadcasts, accumulator values) made
    /// outside the driver: in a task, or natively outside a weft host.
    #[error("not in a driver: datasets and actions are only available inside #[weft::main]")]
    NotADriver,
    /// Records from the host do not decode as the dataset's record type.
    #[error("records do not decode: {0}")]
    Decode(#[from] RecordError),
    /// An operation that moves values between keys and records (`keys`,
    /// `key_by`, `distinct`, ...) over a key type without a
    /// [`Schema`](weft_codec::schema::Schema).
    #[error(
        "{operation} needs the key schema of `{type_name}`, which has none: use a key made of integers, \
         floats, bool, char, String, (), Option and tuples"
    )]
    NoKeySchema {
        /// The operation.
        operation: &'static str,
        /// The key type.
        type_name: &'static str,
    },
    /// An error of the job's own code, made with [`Error::msg`].
    #[error("{0}")]
    Job(String),
}

impl Error {
    /// An error of your own, for `weft::Result` in `main` or a user function.
    ///
    /// ```
    /// fn parse(arg: &str) -> weft::Result<u32> {
    ///     arg.parse().map_err(|e| weft::Error::msg(format!("bad partition count {arg:?}: {e}")))
    /// }
    /// assert!(parse("x").is_err());
    /// ```
    pub fn msg(message: impl std::fmt::Display) -> Self {
        Error::Job(message.to_string())
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
