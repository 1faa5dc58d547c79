//! Bounded per-task logs.
//!
//! A task's stdout, stderr and `log` import all land in one [`TaskLog`]. It keeps
//! the first half of its capacity and a rolling tail of the second half, so both
//! the start of a run and its last words (a panic message) survive a guest that
//! prints without end; every byte is counted, kept or not. Writes never fail, so
//! a chatty guest is stopped by its fuel or deadline, not by a broken pipe.

use bytes::Bytes;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// A bounded log shared by a task's output streams. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TaskLog {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    total: u64,
}

impl TaskLog {
    /// A log keeping at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        let head_cap = capacity / 2;
        Self {
            inner: Arc::new(Mutex::new(Inner {
                head: Vec::new(),
                tail: VecDeque::new(),
                head_cap,
                tail_cap: capacity - head_cap,
                total: 0,
            })),
        }
    }

    /// Append bytes; what does not fit pushes the oldest tail bytes out.
    pub fn write(&self, mut bytes: &[u8]) {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.total += bytes.len() as u64;
        let room = g.head_cap - g.head.len();
        if room > 0 && g.tail.is_empty() {
            let n = room.min(bytes.len());
            g.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        if bytes.len() > g.tail_cap {
            bytes = &bytes[bytes.len() - g.tail_cap..];
        }
        let overflow = (g.tail.len() + bytes.len()).saturating_sub(g.tail_cap);
        g.tail.drain(..overflow);
        g.tail.extend(bytes);
    }

    /// Append one line with a prefix (used by the `log` import).
    pub fn line(&self, prefix: &str, message: &str) {
        let mut buf = Vec::with_capacity(prefix.len() + message.len() + 1);
        buf.extend_from_slice(prefix.as_bytes());
        buf.extend_from_slice(message.as_bytes());
        buf.push(b'\n');
        self.write(&buf);
    }

    /// Bytes written in all, including dropped ones.
    pub fn total_bytes(&self) -> u64 {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).total
    }

    /// The kept log as text, with a marker where bytes were dropped.
    pub fn contents(&self) -> String {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = (g.head.len() + g.tail.len()) as u64;
        let mut out = String::from_utf8_lossy(&g.head).into_owned();
        if g.total > kept {
            out.push_str(&format!("\n[... {} bytes of log dropped ...]\n", g.total - kept));
        }
        let (a, b) = g.tail.as_slices();
        out.push_str(&String::from_utf8_lossy(&[a, b].concat()));
        out
    }

    /// The last line containing `needle`, if any (used to find a panic message).
    pub fn last_line_containing(&self, needle: &str) -> Option<String> {
        let text = self.contents();
        let start = text.rfind(needle)?;
        let begin = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let rest = &text[begin..];
        // A panic message runs to the end of its line and possibly one more
        // (Rust prints the location line, then the message line).
        let end = rest.match_indices('\n').nth(1).map_or(rest.len(), |(i, _)| i);
        Some(rest[..end].trim_end().to_string())
    }
}

impl IsTerminal for TaskLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for TaskLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// What `check-write` grants: writes are always accepted and bounded by the log.
const PERMIT: usize = 64 * 1024;

#[wasmtime_wasi::async_trait]
impl OutputStream for TaskLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        TaskLog::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for TaskLog {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for TaskLog {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        TaskLog::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_tail_and_counts_everything() {
        let log = TaskLog::new(16);
        log.write(b"01234567");
        log.write(b"abcdefghijklmnop");
        log.write(b"XYZ");
        assert_eq!(log.total_bytes(), 27);
        let text = log.contents();
        assert!(text.starts_with("01234567"), "{text}");
        assert!(text.ends_with("lmnopXYZ"), "{text}");
        assert!(text.contains("11 bytes of log dropped"), "{text}");
    }

    #[test]
    fn small_logs_are_kept_whole() {
        let log = TaskLog::new(1024);
        log.line("[info] ", "hello");
        assert_eq!(log.contents(), "[info] hello\n");
    }

    #[test]
    fn finds_the_panic_message() {
        let log = TaskLog::new(1024);
        log.write(b"noise\nthread '<unnamed>' panicked at src/lib.rs:3:5:\nboom\nmore\n");
        assert_eq!(
            log.last_line_containing("panicked at").as_deref(),
            Some("thread '<unnamed>' panicked at src/lib.rs:3:5:\nboom")
        );
    }
}
