//! The driver's view of the job: [`Context`], handed to `#[weft::main]`.

use crate::dataset::{Dataset, Handle, PairDataset};
use crate::error::Result;
use crate::host;
use crate::layout::{self, Pair, Plain};
use crate::record::{Bytes, Record};
use std::fmt;
use std::marker::PhantomData;
use weft_codec::key::Key;

/// The driver's entry to the job: its arguments, data sources, broadcasts and
/// accumulators. Only `#[weft::main]` receives one.
pub struct Context {
    _private: (),
}

impl Context {
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn new() -> Self {
        Context { _private: () }
    }

    /// The job's arguments (what follows `--` on the command line).
    pub fn args(&self) -> Vec<String> {
        host::driver::args()
    }

    /// The lines of the text files at `uri` (without their `\n` or `\r\n`), in
    /// at least `min_partitions` partitions, as Spark's `textFile`.
    ///
    /// `uri` names a file or a directory (every file below it, except names
    /// starting with `_` or `.`): a path, `file:///abs/path` or
    /// `s3://bucket/prefix`. Files ending in `.gz` (gzip) or `.zst`
    /// (Zstandard) are decompressed as they are read; such a file cannot be
    /// cut, so it is one partition, whatever `min_partitions` says (as in
    /// Spark and Hadoop). A decompressed line may be at most 64 MiB.
    ///
    /// Every line must be UTF-8: the first one that is not fails the job
    /// with an error naming the file and the byte offset. Read such input
    /// with [`text_file_bytes`](Self::text_file_bytes).
    pub fn text_file(&self, uri: &str, min_partitions: u32) -> Result<Dataset<String>> {
        Ok(Dataset::from_handle(Handle::new(Ok(host::driver::text_file(uri, min_partitions)?))))
    }

    /// The lines of the files at `uri` as raw bytes: [`text_file`](Self::text_file)
    /// for input that is not UTF-8 (Latin-1 logs, binary junk in text), as
    /// PySpark's `textFile(..., use_unicode=False)`.
    ///
    /// Lines are cut at `\n` (a `\r` before it is dropped), like
    /// `text_file`'s, and handed over unchecked; the same files, compressed or
    /// not, are read the same way. User functions take a line as `&[u8]` (or
    /// [`Bytes`]):
    ///
    /// ```no_run
    /// # mod job {
    /// use weft::prelude::*;
    ///
    /// /// Latin-1 to UTF-8: every byte is the code point of the same value.
    /// #[weft::map]
    /// fn latin1(line: &[u8]) -> String {
    ///     line.iter().map(|&b| char::from(b)).collect()
    /// }
    ///
    /// #[weft::main]
    /// fn main(ctx: &Context) -> weft::Result<()> {
    ///     let lines = ctx.text_file_bytes("s3://logs/2024/", 8)?.map(latin1);
    ///     lines.save_as_text_file("s3://logs-utf8/2024/")
    /// }
    /// # }
    /// # fn main() {}
    /// ```
    pub fn text_file_bytes(&self, uri: &str, min_partitions: u32) -> Result<Dataset<Bytes>> {
        Ok(Dataset::from_handle(Handle::new(Ok(host::driver::text_file_bytes(uri, min_partitions)?))))
    }

    /// A dataset of `records`, split into `partitions` partitions.
    pub fn parallelize<T: Record + 'static>(
        &self,
        records: impl IntoIterator<Item = T>,
        partitions: u32,
    ) -> Result<Dataset<T>> {
        let batch = layout::encode_all::<Plain<T>>(records);
        let id = host::driver::parallelize(&batch, false, partitions)?;
        Ok(Dataset::from_handle(Handle::new(Ok(id))))
    }

    /// A pair dataset of `pairs`, split into `partitions` partitions.
    pub fn parallelize_pairs<K: Key + 'static, V: Record + 'static>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
        partitions: u32,
    ) -> Result<PairDataset<K, V>> {
        let batch = layout::encode_all::<Pair<K, V>>(pairs);
        let id = host::driver::parallelize(&batch, true, partitions)?;
        Ok(PairDataset::from_handle(Handle::new(Ok(id))))
    }

    /// Ship `value` once to every task; user functions read it as a bound
    /// parameter (`f.with(&handle)`, see [`Broadcast`]).
    pub fn broadcast<T: Record>(&self, value: &T) -> Result<Broadcast<T>> {
        let id = host::driver::broadcast(&value.to_record_bytes())?;
        Ok(Broadcast::from_id(id))
    }

    /// The sum of every finished task's [`accumulator_add`](crate::accumulator_add)
    /// calls for `name` over this job's actions so far (0 before any).
    ///
    /// As in Spark, each finished task counts once per run: a failed or
    /// retried attempt adds nothing, but a task that runs again (a later
    /// action recomputing a dataset that was not cached, a map stage run again
    /// after its output was lost) adds again. Read a counter kept in a
    /// transformation right after the action that ran it.
    pub fn accumulator_value(&self, name: &str) -> Result<i64> {
        host::driver::accumulator_value(name)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Context")
    }
}

/// A value shipped once to every task of the job: a typed handle, made by
/// [`Context::broadcast`].
///
/// A user function reads it as a bound parameter: it declares a parameter
/// `&T`, and the driver binds the handle with `.with(&handle)`. The value
/// travels once per job however many datasets bind it, where `.with(&value)`
/// ships the value with each dataset built (see [the `param` module](crate::param)):
///
/// ```no_run
/// # mod job {
/// use weft::prelude::*;
///
/// #[weft::filter]
/// fn not_a_stopword(word: &str, stopwords: &Vec<String>) -> bool {
///     !stopwords.iter().any(|w| w == word)
/// }
///
/// #[weft::main]
/// fn main(ctx: &Context) -> weft::Result<()> {
///     let stopwords = ctx.broadcast(&vec!["the".to_string(), "a".to_string()])?;
///     let words = ctx.text_file("s3://corpus/", 8)?;
///     let kept = words.filter(not_a_stopword.with(&stopwords)).count()?;
///     # let _ = kept;
///     Ok(())
/// }
/// # }
/// # fn main() {}
/// ```
pub struct Broadcast<T> {
    /// The host's id (ids count from 0 in call order within a job).
    id: u64,
    _value: PhantomData<fn() -> T>,
}

impl<T> Broadcast<T> {
    pub(crate) const fn from_id(id: u64) -> Self {
        Broadcast { id, _value: PhantomData }
    }

    pub(crate) const fn id(&self) -> u64 {
        self.id
    }
}

impl<T> Clone for Broadcast<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Broadcast<T> {}
impl<T> PartialEq for Broadcast<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl<T> Eq for Broadcast<T> {}
impl<T> fmt::Debug for Broadcast<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Broadcast<{}>", std::any::type_name::<T>())
    }
}
