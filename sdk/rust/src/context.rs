//! The driver's view of the job: [`Context`], handed to `#[weft::main]`.

use crate::dataset::{Dataset, Handle, PairDataset};
use crate::error::{Error, Result};
use crate::host;
use crate::layout::{self, Pair, Plain};
use crate::record::{Bytes, Record};
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
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

    /// Ship `value` once to every task; user functions read it with
    /// [`Broadcast::get`] or [`broadcast_value`].
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

/// A typed broadcast id.
///
/// User functions are plain functions and capture nothing from the driver, so a
/// task learns which broadcast to read from its id alone. The host assigns ids;
/// a driver that broadcasts the same values in the same order gets the same ids,
/// so a job can name them as constants and check them in `main`:
///
/// ```no_run
/// # mod job {
/// use weft::prelude::*;
/// const STOPWORDS: Broadcast<Vec<String>> = Broadcast::from_id(0);
///
/// #[weft::filter]
/// fn not_a_stopword(word: &str) -> weft::Result<bool> {
///     Ok(!STOPWORDS.get()?.iter().any(|w| w == word))
/// }
///
/// #[weft::main]
/// fn main(ctx: &Context) -> weft::Result<()> {
///     let b = ctx.broadcast(&vec!["the".to_string(), "a".to_string()])?;
///     assert_eq!(b, STOPWORDS, "broadcast ids are assigned in order");
///     // ...
///     # Ok(())
/// }
/// # }
/// # fn main() {}
/// ```
pub struct Broadcast<T> {
    id: u64,
    _value: PhantomData<fn() -> T>,
}

impl<T> Broadcast<T> {
    /// The broadcast with this id.
    pub const fn from_id(id: u64) -> Self {
        Broadcast { id, _value: PhantomData }
    }

    /// Its id.
    pub const fn id(&self) -> u64 {
        self.id
    }
}

impl<T: Record + Send + Sync + 'static> Broadcast<T> {
    /// The value, decoded once per task and shared after that.
    pub fn get(&self) -> Result<Arc<T>> {
        broadcast_value(self.id)
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
        write!(f, "Broadcast<{}>({})", std::any::type_name::<T>(), self.id)
    }
}

thread_local! {
    /// Decoded broadcast values by id. One guest instance runs one task at a
    /// time, and a value is immutable for the job, so the cache never goes stale.
    static BROADCASTS: RefCell<HashMap<u64, Arc<dyn Any + Send + Sync>>> = RefCell::new(HashMap::new());
}

/// The broadcast value `id`, for use in user functions.
///
/// The first call in a task fetches and decodes it; later calls return the
/// same [`Arc`], so calling this once per record is cheap.
pub fn broadcast_value<T: Record + Send + Sync + 'static>(id: u64) -> Result<Arc<T>> {
    if let Some(cached) = BROADCASTS.with(|b| b.borrow().get(&id).cloned()) {
        return cached.downcast::<T>().map_err(|_| {
            Error::msg(format!(
                "broadcast {id} was already read as another type than {}",
                std::any::type_name::<T>()
            ))
        });
    }
    let bytes = host::broadcast_get(id).ok_or(Error::MissingBroadcast { id })?;
    let value = Arc::new(T::decode(&bytes)?);
    BROADCASTS.with(|b| b.borrow_mut().insert(id, value.clone()));
    Ok(value)
}
