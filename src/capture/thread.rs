//! The capture thread: reads a [`FrameSource`] into a latest-frame slot, reopening it with
//! backoff when it fails, so the camera is never blocked by a slow consumer and a missing
//! camera never stops the rest of the device.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::capture::source::{CaptureError, FrameSource};
use crate::frame::Frame;
use crate::worker::{Backoff, Counter, Retry, WorkerThread};

/// A frame with where and when it came from.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    pub frame: Frame,
    /// Position in the stream of frames read (dropped ones included), from 0.
    pub index: u64,
    pub captured_at: Instant,
    /// Time spent in the source's `next_frame`: waiting for the device plus conversion.
    pub read_time: Duration,
}

/// Opens (or reopens) the source; called on the capture thread.
pub type SourceOpener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, CaptureError> + Send>;

/// Counters of the capture thread, readable at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaptureCounts {
    /// Frames read from the source and handed to the slot.
    pub captured: u64,
    /// Live frames replaced in the slot before the loop took them.
    pub dropped: u64,
    /// Frames the source could not convert, skipped.
    pub corrupt: u64,
    /// Times the source failed and had to be reopened, or failed to open.
    pub failures: u64,
    /// Whether the source is open right now.
    pub connected: bool,
}

#[derive(Default)]
struct Counters {
    captured: Counter,
    dropped: Counter,
    corrupt: Counter,
    failures: Counter,
    connected: AtomicBool,
}

#[derive(Default)]
struct SlotState {
    frame: Option<CapturedFrame>,
    ended: bool,
}

/// The hand-over point between the capture thread and the loop; holds at most one frame.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    changed: Condvar,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // A panic elsewhere while holding the lock leaves a frame or a flag, both still valid.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn end(&self) {
        self.lock().ended = true;
        self.changed.notify_all();
    }
}

/// What [`Capture::take`] found.
#[derive(Debug)]
pub enum Taken {
    Frame(CapturedFrame),
    /// No frame within the timeout (camera slow or missing): the loop can report status.
    Timeout,
    /// The source ended (files played once, or the stream closed) or capture was stopped.
    Ended,
}

/// A running capture thread.
pub struct Capture {
    slot: Arc<Slot>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    thread: Option<WorkerThread>,
}

impl Capture {
    /// Starts the capture thread; it runs until the source ends or [`Capture::stop`].
    pub fn start(open: SourceOpener, backoff: Backoff) -> std::io::Result<Self> {
        let slot = Arc::new(Slot::default());
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker { open, backoff, slot: slot.clone(), counters: counters.clone(), stop: stop.clone() };
        let thread = WorkerThread::spawn("capture", move || worker.run())?;
        Ok(Self { slot, counters, stop, thread: Some(thread) })
    }

    /// The newest frame, waiting up to `timeout` for one.
    pub fn take(&self, timeout: Duration) -> Taken {
        let deadline = Instant::now() + timeout;
        let mut state = self.slot.lock();
        loop {
            if let Some(frame) = state.frame.take() {
                self.slot.changed.notify_all();
                return Taken::Frame(frame);
            }
            if state.ended {
                return Taken::Ended;
            }
            let now = Instant::now();
            if now >= deadline {
                return Taken::Timeout;
            }
            state = match self.slot.changed.wait_timeout(state, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> CaptureCounts {
        let c = &self.counters;
        CaptureCounts {
            captured: c.captured.get(),
            dropped: c.dropped.get(),
            corrupt: c.corrupt.get(),
            failures: c.failures.get(),
            connected: c.connected.load(Ordering::Relaxed),
        }
    }

    /// Asks the thread to stop and waits up to `grace` for it (closing the camera stream).
    /// A thread blocked in a read that never returns (an idle pipe) is left behind.
    pub fn stop(mut self, grace: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.slot.end();
        if let Some(thread) = self.thread.take() {
            thread.join(grace);
        }
    }
}

struct Worker {
    open: SourceOpener,
    backoff: Backoff,
    slot: Arc<Slot>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

/// How one open source's stream finished.
enum StreamEnd {
    Ended,
    Failed,
    Stopped,
}

impl Worker {
    fn run(mut self) {
        let mut retry = Retry::new(self.backoff);
        let mut last_error = String::new();
        let mut next_index = 0;
        while !self.stopping() {
            match (self.open)() {
                Ok(mut source) => {
                    self.counters.connected.store(true, Ordering::Relaxed);
                    log::info!("capturing from {}", source.name());
                    retry.reset();
                    last_error.clear();
                    match self.stream(source.as_mut(), &mut next_index) {
                        // A source that ended is not a missing camera: its last frames are
                        // still being processed and must not be reported as "no camera".
                        StreamEnd::Ended | StreamEnd::Stopped => break,
                        StreamEnd::Failed => self.counters.connected.store(false, Ordering::Relaxed),
                    }
                }
                Err(err) => {
                    self.counters.failures.add();
                    // The same error every few seconds for hours would flood the journal.
                    let message = err.to_string();
                    if message != last_error {
                        log::warn!("no camera: {message}; retrying");
                        last_error = message;
                    }
                }
            }
            self.sleep(retry.next_wait());
        }
        self.slot.end();
    }

    fn stream(&self, source: &mut dyn FrameSource, next_index: &mut u64) -> StreamEnd {
        let live = source.is_live();
        loop {
            if self.stopping() {
                return StreamEnd::Stopped;
            }
            let started = Instant::now();
            match source.next_frame() {
                Ok(Some(frame)) => {
                    let captured = CapturedFrame {
                        frame,
                        index: *next_index,
                        captured_at: Instant::now(),
                        read_time: started.elapsed(),
                    };
                    *next_index += 1;
                    self.counters.captured.add();
                    self.put(captured, live);
                }
                Ok(None) => return StreamEnd::Ended,
                Err(CaptureError::Corrupt { source_name, reason }) => {
                    *next_index += 1;
                    self.counters
                        .corrupt
                        .add_and_warn(|n| format!("skipped corrupt frame from {source_name} ({n} so far): {reason}"));
                }
                Err(CaptureError::Timeout { .. }) => {}
                Err(err @ CaptureError::Lost { .. }) => {
                    self.counters.failures.add();
                    log::warn!("camera lost: {err}; reopening");
                    return StreamEnd::Failed;
                }
            }
        }
    }

    /// Live frames replace an untaken one (counted as dropped); file frames wait their turn.
    fn put(&self, frame: CapturedFrame, live: bool) {
        let mut state = self.slot.lock();
        if !live {
            while state.frame.is_some() && !state.ended && !self.stopping() {
                state = match self.slot.changed.wait_timeout(state, Duration::from_millis(100)) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
        }
        if state.frame.replace(frame).is_some() {
            self.counters.dropped.add();
        }
        self.slot.changed.notify_all();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps `duration`, waking early when stopped.
    fn sleep(&self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while !self.stopping() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;
    use std::collections::VecDeque;

    /// A scripted source: each step yields a frame (with its gray value) or an error.
    struct Scripted {
        steps: VecDeque<Result<Option<u8>, CaptureError>>,
        live: bool,
    }

    impl FrameSource for Scripted {
        fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
            match self.steps.pop_front() {
                Some(Ok(Some(v))) => Ok(Some(Frame::from_rgb(RgbImage::from_pixel(2, 2, image::Rgb([v, v, v]))))),
                Some(Ok(None)) | None => Ok(None),
                Some(Err(err)) => Err(err),
            }
        }
        fn is_live(&self) -> bool {
            self.live
        }
        fn name(&self) -> &str {
            "scripted"
        }
    }

    fn lost() -> CaptureError {
        CaptureError::Lost { source_name: "scripted".into(), reason: "unplugged".into() }
    }

    fn corrupt() -> CaptureError {
        CaptureError::Corrupt { source_name: "scripted".into(), reason: "bad jpeg".into() }
    }

    const FAST: Backoff = Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(4) };

    fn drain(capture: &Capture) -> Vec<u8> {
        let mut values = Vec::new();
        loop {
            match capture.take(Duration::from_secs(5)) {
                Taken::Frame(f) => values.push(f.frame.gray.as_raw()[0]),
                Taken::Ended => return values,
                Taken::Timeout => panic!("capture stalled"),
            }
        }
    }

    #[test]
    fn file_frames_are_all_delivered_in_order_and_corrupt_ones_counted() {
        let mut scripts = VecDeque::from([Scripted {
            steps: VecDeque::from([Ok(Some(1)), Err(corrupt()), Ok(Some(2)), Ok(Some(3)), Ok(None)]),
            live: false,
        }]);
        let opener: SourceOpener =
            Box::new(move || scripts.pop_front().map(|s| Box::new(s) as Box<dyn FrameSource>).ok_or_else(lost));
        let capture = Capture::start(opener, FAST).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(drain(&capture), vec![1, 2, 3]);
        let counts = capture.counts();
        assert_eq!((counts.captured, counts.corrupt, counts.dropped), (3, 1, 0));
        capture.stop(Duration::from_secs(1));
    }

    #[test]
    fn source_lost_mid_stream_is_reopened_and_open_failures_retried() {
        // First stream dies after one frame; one failed open; the second stream ends normally.
        let mut opens: VecDeque<Result<Scripted, CaptureError>> = VecDeque::from([
            Ok(Scripted { steps: VecDeque::from([Ok(Some(1)), Err(lost())]), live: false }),
            Err(lost()),
            Ok(Scripted { steps: VecDeque::from([Ok(Some(2)), Ok(None)]), live: false }),
        ]);
        let opener: SourceOpener = Box::new(move || match opens.pop_front() {
            Some(Ok(s)) => Ok(Box::new(s) as Box<dyn FrameSource>),
            Some(Err(e)) => Err(e),
            None => Err(lost()),
        });
        let capture = Capture::start(opener, FAST).unwrap();
        assert_eq!(drain(&capture), vec![1, 2]);
        assert_eq!(capture.counts().failures, 2);
        capture.stop(Duration::from_secs(1));
    }

    #[test]
    fn live_frames_not_taken_are_dropped_and_the_newest_kept() {
        let steps = (1..=20).map(|v| Ok(Some(v))).chain([Ok(None)]).collect();
        let mut script = Some(Scripted { steps, live: true });
        let opener: SourceOpener =
            Box::new(move || script.take().map(|s| Box::new(s) as Box<dyn FrameSource>).ok_or_else(lost));
        let capture = Capture::start(opener, FAST).unwrap();
        // Let the thread run through the whole stream before taking anything.
        while capture.counts().captured < 20 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(drain(&capture), vec![20]);
        assert_eq!(capture.counts().dropped, 19);
        capture.stop(Duration::from_secs(1));
    }

    #[test]
    fn stop_interrupts_retrying() {
        let opener: SourceOpener = Box::new(|| Err(lost()));
        let capture =
            Capture::start(opener, Backoff { initial: Duration::from_secs(30), max: Duration::from_secs(30) }).unwrap();
        assert!(matches!(capture.take(Duration::from_millis(20)), Taken::Timeout));
        assert!(!capture.counts().connected);
        let started = Instant::now();
        capture.stop(Duration::from_secs(2));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
