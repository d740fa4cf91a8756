//! A text-line writer on its own thread that never blocks its caller.
//!
//! The live loop hands lines to [`LineSink::send`], which only queues them. The writer
//! thread (re)opens the target when needed and writes each line in full; when the
//! target fails (serial adapter unplugged, pty closed, disk full) the line being written
//! is kept and retried after reopening, so a line once accepted is not lost. Delivery is
//! at least once: a line whose flush failed may have reached the other end already, and
//! then arrives twice. While the target is gone the queue fills and further lines are
//! refused and counted instead of stalling the camera loop.
//!
//! Nothing is lost silently: lines refused with the queue full are `dropped`, lines
//! accepted but still unwritten when the sink closes are `undelivered`. Standard output
//! whose reader went away (`emotion-pi run --serial stdout | head`) cannot come back, so
//! the sink ends there and says so ([`SinkCounts::reader_gone`]) instead of retrying
//! forever; a serial port that hangs up (which serialport also reports as a broken pipe)
//! is retried like any other failure.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use crate::worker::{Backoff, Counter, Retry, WorkerThread};

/// Opens (or reopens) the target; called on the writer thread.
pub type WriterOpener = Box<dyn FnMut() -> std::io::Result<Box<dyn Write + Send>> + Send>;

/// A target that cannot be opened again once its reader leaves (an inherited standard
/// output): a broken pipe from it ends the sink.
pub struct EndsWithItsReader<W>(pub W);

/// The error an [`EndsWithItsReader`] target answers once its reader is gone.
#[derive(Debug, thiserror::Error)]
#[error("the reader closed the pipe")]
struct ReaderGone;

impl<W: Write> Write for EndsWithItsReader<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(reader_gone)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(reader_gone)
    }
}

fn reader_gone(err: std::io::Error) -> std::io::Error {
    if err.kind() == ErrorKind::BrokenPipe {
        std::io::Error::new(ErrorKind::BrokenPipe, ReaderGone)
    } else {
        err
    }
}

fn is_reader_gone(err: &std::io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<ReaderGone>())
}

/// Counters of a [`LineSink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct SinkCounts {
    /// Lines written and flushed.
    pub written: u64,
    /// Lines refused because the queue was full.
    pub dropped: u64,
    /// Failed opens and writes.
    pub failures: u64,
    /// Lines accepted into the queue but not written when the sink closed: the target
    /// was gone, or its reader went away.
    pub undelivered: u64,
    /// The target was a pipe whose reader closed it: the sink stopped writing.
    pub reader_gone: bool,
}

impl SinkCounts {
    /// Lines the target never got: dropped with the queue full, or still queued at the end.
    pub fn lost(&self) -> u64 {
        self.dropped + self.undelivered
    }
}

#[derive(Default)]
struct Counters {
    accepted: Counter,
    written: Counter,
    dropped: Counter,
    failures: Counter,
    /// Set by `close`: the writer stops waiting for a failed target to come back.
    closing: AtomicBool,
    /// Set by the writer when the reader of its pipe is gone.
    reader_gone: AtomicBool,
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

    /// Queues `line` (without its newline); false when it was not taken: the queue was
    /// full (the line is counted as dropped) or the reader is gone.
    pub fn send(&self, line: String) -> bool {
        let Some(sender) = &self.sender else { return false };
        if self.reader_gone() {
            return false;
        }
        match sender.try_send(line) {
            Ok(()) => {
                self.counters.accepted.add();
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.add_and_warn(|n| format!("{}: queue full, {n} lines dropped so far", self.name));
                false
            }
        }
    }

    /// Whether the target was a pipe whose reader went away: nothing more can be written.
    pub fn reader_gone(&self) -> bool {
        self.counters.reader_gone.load(Ordering::Relaxed)
    }

    /// The counters so far; `undelivered` counts the lines waiting in the queue.
    pub fn counts(&self) -> SinkCounts {
        let written = self.counters.written.get();
        SinkCounts {
            written,
            dropped: self.counters.dropped.get(),
            failures: self.counters.failures.get(),
            undelivered: self.counters.accepted.get().saturating_sub(written),
            reader_gone: self.reader_gone(),
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
                    Err(err) if is_reader_gone(&err) => {
                        log::info!("{}: the reader closed the pipe; no more lines", self.name);
                        self.counters.reader_gone.store(true, Ordering::Relaxed);
                        return;
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
                // An unplugged adapter or a closed pty answers EIO.
                return Err(std::io::Error::from_raw_os_error(5));
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
    fn lines_still_queued_when_the_sink_closes_are_counted_undelivered() {
        let opener: WriterOpener = Box::new(|| Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no port")));
        let sink = LineSink::start("dead", opener, 4, FAST).unwrap();
        let taken = (0..3).filter(|i| sink.send(format!("line {i}"))).count() as u64;
        let counts = sink.close(Duration::from_secs(2));
        // All three fit in the queue of four; none could be written.
        assert_eq!(taken, 3);
        assert_eq!((counts.written, counts.dropped, counts.undelivered), (0, 0, 3), "{counts:?}");
        assert_eq!(counts.lost(), 3);
    }

    #[test]
    fn a_pipe_whose_reader_left_ends_the_sink_instead_of_retrying() {
        let (reader, writer) = std::io::pipe().unwrap();
        let mut writer = Some(writer);
        let opener: WriterOpener = Box::new(move || {
            writer.take().map(|w| Box::new(EndsWithItsReader(w)) as _).ok_or_else(|| std::io::Error::other("reopened"))
        });
        let sink = LineSink::start("pipe", opener, 16, FAST).unwrap();
        drop(reader);
        assert!(sink.send("first".into()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !sink.reader_gone() {
            assert!(Instant::now() < deadline, "the writer kept retrying: {:?}", sink.counts());
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(!sink.send("second".into()), "a line was taken for a reader that is gone");
        let counts = sink.close(Duration::from_secs(2));
        assert!(counts.reader_gone);
        // The pipe was opened once and never reopened; the first line never arrived.
        assert_eq!((counts.written, counts.undelivered, counts.failures, counts.dropped), (0, 1, 0, 0), "{counts:?}");
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
