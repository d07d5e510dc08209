//! Where log lines go: stderr, written in batches when stderr is not a terminal.
//!
//! A busy worker logs a line per job. Written one by one, each line is a `write` system
//! call, and a wake-up of whatever reads the other end (a container runtime, journald, a
//! supervising test): in a profile of a worker running trivial jobs, that was an eighth
//! of its CPU time. So lines are gathered in memory and written by a background thread
//! every [`FLUSH_EVERY`], or at once when [`BATCH_BYTES`] are waiting. Each line is
//! written whole, and in order. [`flush`] writes what is waiting: `main` calls it before
//! the process exits, and so do the panic hook and the paths that exit at once. A process
//! killed with SIGKILL loses at most the last [`FLUSH_EVERY`] of lines.
//!
//! On a terminal every line is written at once: a person is reading it.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in memory.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Waiting lines are written at once past this many bytes.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;

struct Batch {
    /// Lines not written yet.
    waiting: Mutex<Vec<u8>>,
    /// Held while a batch is written, so batches reach stderr in the order they were
    /// taken.
    writing: Mutex<()>,
}

static BATCH: OnceLock<Batch> = OnceLock::new();

/// The writer for the log subscriber: batched (and a flushing thread started) unless
/// stderr is a terminal.
pub(crate) fn writer() -> Stderr {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return Stderr { batched: false };
    }
    let mut started = false;
    BATCH.get_or_init(|| {
        started = true;
        Batch {
            waiting: Mutex::new(Vec::with_capacity(BATCH_BYTES)),
            writing: Mutex::new(()),
        }
    });
    if started {
        let spawned = std::thread::Builder::new()
            .name("wasmq-log".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flush();
                }
            });
        if spawned.is_err() {
            // No thread: every line is written at once instead.
            return Stderr { batched: false };
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            flush();
            previous(info);
        }));
    }
    Stderr { batched: true }
}

/// Writes every waiting line to stderr.
pub(crate) fn flush() {
    let Some(batch) = BATCH.get() else { return };
    let _order = batch.writing.lock().unwrap_or_else(|e| e.into_inner());
    let lines = {
        let mut waiting = batch.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.is_empty() {
            return;
        }
        std::mem::replace(&mut *waiting, Vec::with_capacity(BATCH_BYTES))
    };
    // Nowhere to report a failed write of the log itself.
    let _ = std::io::stderr().lock().write_all(&lines);
}

/// The log's stderr: see the module's documentation.
#[derive(Clone, Copy)]
pub(crate) struct Stderr {
    batched: bool,
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            batched: self.batched,
        }
    }
}

/// One log line's writer: the subscriber formats a line, then writes it in one call.
pub(crate) struct Line {
    batched: bool,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let batch = match BATCH.get() {
            Some(b) if self.batched => b,
            _ => return std::io::stderr().write_all(buf),
        };
        let full = {
            let mut waiting = batch.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.extend_from_slice(buf);
            waiting.len() >= BATCH_BYTES
        };
        if full {
            flush();
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
