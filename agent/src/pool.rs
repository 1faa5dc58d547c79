//! The thread pool WebAssembly runs on.
//!
//! Guest code is CPU-bound and can run for seconds between awaits, so it never
//! runs on the agent's I/O runtime, where it would starve heartbeats and block
//! serving. Each pool thread owns a single-threaded tokio runtime (for the
//! async calls into wasmtime and its timers) and runs one job at a time to
//! completion, so a task stays on one thread and its CPU time is measurable.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, mpsc};

type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// A fixed pool of threads for running sandboxed work.
pub struct WasmPool {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// The pool shut down before the job ran or finished.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the WebAssembly thread pool has shut down")]
pub struct PoolClosed;

impl WasmPool {
    /// A pool of `threads` threads (at least one).
    ///
    /// # Errors
    /// When the OS refuses a thread or a runtime.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
            handles.push(std::thread::Builder::new().name(format!("weft-wasm-{i}")).spawn(move || {
                loop {
                    let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match job {
                        Ok(job) => rt.block_on(job()),
                        Err(_) => break,
                    }
                }
            })?);
        }
        Ok(Self { tx: Mutex::new(Some(tx)), threads: Mutex::new(handles) })
    }

    /// Run `f()` on a pool thread and await its output. The future `f` returns
    /// need not be `Send`: it is created and polled on the one pool thread.
    ///
    /// # Errors
    /// [`PoolClosed`] when the pool shut down, or the job panicked.
    ///
    /// # Cancel safety
    /// Dropping the returned future does not stop the job; it runs to its end
    /// (bounded by the task's deadline) and its output is dropped.
    pub async fn run<F, Fut, R>(&self, f: F) -> Result<R, PoolClosed>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        let (done, wait) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            Box::pin(async move {
                let _ = done.send(f().await);
            })
        });
        {
            let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
            tx.as_ref().ok_or(PoolClosed)?.send(job).map_err(|_| PoolClosed)?;
        }
        wait.await.map_err(|_| PoolClosed)
    }

    /// Stop taking jobs and wait for the running ones to finish.
    pub fn shutdown(&self) {
        self.tx.lock().unwrap_or_else(PoisonError::into_inner).take();
        let handles = std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for WasmPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}
