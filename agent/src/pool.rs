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
    /// Dropping the returned future cancels the job: the pool thread drops the
    /// job's future at its next await, so a killed task's guest stops and its
    /// thread is free for the next one. A guest awaits often: it yields every
    /// few million units of fuel, and a WASI sleep or poll is an await.
    pub async fn run<F, Fut, R>(&self, f: F) -> Result<R, PoolClosed>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        let (mut done, wait) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            Box::pin(async move {
                tokio::select! {
                    output = f() => {
                        let _ = done.send(output);
                    }
                    () = done.closed() => {}
                }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn dropping_a_run_cancels_its_job_and_frees_the_thread() {
        let pool = WasmPool::new(1).unwrap();
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
        struct Guard(std::sync::mpsc::Sender<()>);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let forever = pool.run(move || async move {
            let _guard = Guard(dropped_tx);
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        // Let the job start, then walk away from it.
        let _ = tokio::time::timeout(Duration::from_millis(50), forever).await;
        dropped_rx.recv_timeout(Duration::from_secs(5)).expect("the job's future was dropped");
        let next = tokio::time::timeout(Duration::from_secs(30), pool.run(|| async { 7 })).await;
        assert_eq!(next.unwrap().unwrap(), 7, "the one thread runs the next job");
    }
}
