//! A text-line writer on its own thread that never blocks its caller.
//!
//! The live loop hands lines to [`LineSink::send`], which only queues them. The writer
//! thread (re)opens the target when needed and writes each line in full; when the
//! target fails (serial adapter unplugged, pty closed, disk full) the line being written
//! is kept and retried after reopening, so a line once accepted is not lost. Delivery is
//! at least once: a line whose flush failed may have reached the other end already, and
//! then arrives twice. While the
//! target is gone the queue fills and further lines are refused and counted instead of
//! stalling the camera loop.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use crate::worker::{Backoff, Counter, Retry, WorkerThread};

/// Opens (or reopens) the target; called on the writer thread.
pub type WriterOpener = Box<dyn FnMut() -> std::io::Result<Box<dyn Write + Send>> + Send>;

/// Counters of a [`LineSink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SinkCounts {
    /// Lines written and flushed.
    pub written: u64,
    /// Lines refused because the queue was full.
    pub dropped: u64,
    /// Failed opens and writes.
    pub failures: u64,
}

#[derive(Default)]
struct Counters {
    written: Counter,
    dropped: Counter,
    failures: Counter,
    /// Set by `close`: the writer stops waiting for a failed target to come back.
    closing: AtomicBool,
}

/// The sending side; dropping it (or [`LineSink::close`]) lets the writer finish the queue.
pub struct LineSink {
    name: String,
    sender: Option<SyncSender<String>>,
    counters: Arc<Counters>,
    thread: Option<WorkerThread>,
}

impl LineSink {
    /// Starts the writer thread for `name` (used in log messages), queueing up to `queue` lines.
    pub fn start(name: &str, open: WriterOpener, queue: usize, backoff: Backoff) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel(queue.max(1));
        let counters = Arc::new(Counters::default());
        let writer = Writer { name: name.to_owned(), open, backoff, counters: counters.clone() };
        let thread = WorkerThread::spawn(&format!("{name} writer"), move || writer.run(receiver))?;
        Ok(Self { name: name.to_owned(), sender: Some(sender), counters, thread: Some(thread) })
    }

    /// Queues `line` (without its newline); false when the queue was full and it was dropped.
    pub fn send(&self, line: String) -> bool {
        let Some(sender) = &self.sender else { return false };
        match sender.try_send(line) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.add_and_warn(|n| format!("{}: queue full, {n} lines dropped so far", self.name));
                false
            }
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> SinkCounts {
        SinkCounts {
            written: self.counters.written.get(),
            dropped: self.counters.dropped.get(),
            failures: self.counters.failures.get(),
        }
    }

    /// Stops accepting lines and waits up to `grace` for the queue to be written.
    pub fn close(mut self, grace: Duration) -> SinkCounts {
        self.counters.closing.store(true, Ordering::Relaxed);
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            thread.join(grace);
        }
        self.counts()
    }
}

struct Writer {
    name: String,
    open: WriterOpener,
    backoff: Backoff,
    counters: Arc<Counters>,
}

impl Writer {
    fn run(mut self, receiver: Receiver<String>) {
        let mut target: Option<Box<dyn Write + Send>> = None;
        let mut retry = Retry::new(self.backoff);
        while let Ok(mut line) = receiver.recv() {
            line.push('\n');
            // The same line is retried until written; once closing, each line gets one more
            // try, so shutdown cannot hang on a dead port.
            loop {
                match self.write(&mut target, &line) {
                    Ok(()) => {
                        self.counters.written.add();
                        retry.reset();
                        break;
                    }
                    Err(err) => {
                        target = None;
                        self.counters
                            .failures
                            .add_and_warn(|n| format!("{}: {err} ({n} failures so far); retrying", self.name));
                        if self.counters.closing.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::sleep(retry.next_wait());
                    }
                }
            }
        }
        if let Some(target) = target.as_mut() {
            if let Err(err) = target.flush() {
                log::warn!("{}: final flush failed: {err}", self.name);
            }
        }
    }

    fn write(&mut self, target: &mut Option<Box<dyn Write + Send>>, line: &str) -> std::io::Result<()> {
        if target.is_none() {
            *target = Some((self.open)()?);
        }
        match target {
            Some(out) => {
                out.write_all(line.as_bytes())?;
                out.flush()
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Mutex;
    use std::time::Instant;

    /// A target shared with the test: it fails while `broken` is set.
    #[derive(Clone, Default)]
    struct Shared {
        written: Arc<Mutex<Vec<u8>>>,
        broken: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.broken.load(Ordering::Relaxed) {
                return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "port gone"));
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const FAST: Backoff = Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(5) };

    fn lines(shared: &Shared) -> Vec<String> {
        String::from_utf8(shared.written.lock().unwrap().clone()).unwrap().lines().map(String::from).collect()
    }

    #[test]
    fn writes_lines_in_order() {
        let shared = Shared::default();
        let target = shared.clone();
        let sink = LineSink::start("test", Box::new(move || Ok(Box::new(target.clone()) as _)), 16, FAST).unwrap();
        for i in 0..10 {
            assert!(sink.send(format!("line {i}")));
        }
        let counts = sink.close(Duration::from_secs(2));
        assert_eq!(counts.written, 10);
        assert_eq!(lines(&shared), (0..10).map(|i| format!("line {i}")).collect::<Vec<_>>());
    }

    #[test]
    fn accepted_lines_survive_a_failing_target_and_excess_is_counted() {
        let shared = Shared::default();
        shared.broken.store(true, Ordering::Relaxed);
        let target = shared.clone();
        let opens = Arc::new(AtomicU64::new(0));
        let open_count = opens.clone();
        let opener: WriterOpener = Box::new(move || {
            open_count.fetch_add(1, Ordering::Relaxed);
            Ok(Box::new(target.clone()) as _)
        });
        let sink = LineSink::start("test", opener, 4, FAST).unwrap();
        let accepted: Vec<String> = (0..20).map(|i| format!("event {i}")).filter(|l| sink.send(l.clone())).collect();
        // The writer holds one line and the queue four more; the rest are refused.
        assert!(accepted.len() <= 5 && accepted.len() >= 4, "{accepted:?}");
        assert_eq!(sink.counts().dropped, 20 - accepted.len() as u64);
        std::thread::sleep(Duration::from_millis(30));
        shared.broken.store(false, Ordering::Relaxed);
        while sink.counts().written < accepted.len() as u64 {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(sink.send("after recovery".into()));
        let counts = sink.close(Duration::from_secs(2));
        let mut expected = accepted.clone();
        expected.push("after recovery".into());
        assert_eq!(lines(&shared), expected);
        assert!(counts.failures > 0 && opens.load(Ordering::Relaxed) > 1, "{counts:?}");
    }

    #[test]
    fn close_does_not_hang_on_a_dead_target() {
        let opener: WriterOpener = Box::new(|| Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no port")));
        let sink = LineSink::start("dead", opener, 4, FAST).unwrap();
        sink.send("a".into());
        sink.send("b".into());
        let started = Instant::now();
        let counts = sink.close(Duration::from_secs(2));
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert_eq!(counts.written, 0);
    }
}
