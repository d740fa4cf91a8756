//! `emotion-pi-lab soak`: the device's whole loop for a long run (a looped image
//! folder paced like a camera, the PNG display, the emotion log on a pty) while faults are
//! injected through each seam in turn. It reports whether every fault was recovered from,
//! whether a log line the device wrote went missing, resident memory over time and loop
//! latency.
//!
//! The faults, one every `fault_every`, in this order:
//! - a corrupt frame, a read timeout, and an unplugged camera whose reopens fail for
//!   [`OUTAGE`], through a [`FrameSource`] wrapped around the image folder;
//! - the PNG display's folder replaced by a file for [`OUTAGE`] or one and a half screen
//!   periods if longer, so at least one screen cannot be written;
//! - the serial port pulled: the pty closed and its link removed, and after [`OUTAGE`] a
//!   new pty plugged in at the same link, as a USB-serial adapter pulled out and put back.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serialport::{SerialPort, TTYPort};

use emotion_pi::analyze::ModelPaths;
use emotion_pi::capture::images::ImageSource;
use emotion_pi::capture::source::{CaptureError, FrameSource};
use emotion_pi::capture::thread::SourceOpener;
use emotion_pi::config::{Config, DisplayKind, SerialTarget};
use emotion_pi::frame::Frame;
use emotion_pi::live::device::run_device_with_source;
use emotion_pi::live::stats::Percentiles;
use emotion_pi::output::display::DisplayCounts;
use emotion_pi::output::line_sink::SinkCounts;
use emotion_pi::report::Report;

use crate::live::{growth_percent, rss_kib, write_bench_frame};

/// How long a camera stays unplugged, the display folder gone, the serial port pulled.
pub const OUTAGE: Duration = Duration::from_secs(5);
/// The display draws every this many frames, as a kiosk's small screen might.
const DISPLAY_EVERY: u32 = 100;
/// A fault the device has not recovered from within this long counts as not recovered.
const RECOVERY_LIMIT: Duration = Duration::from_secs(60);
/// Resident memory and latency are sampled this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(60);
/// How often the injector looks at the device while it waits.
const POLL: Duration = Duration::from_millis(20);

/// What to soak.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub duration: Duration,
    /// Frame rate the looped folder is paced at, like a camera's.
    pub fps: u32,
    /// Folder to loop; default: the bench portrait framed at 640×480.
    pub source: Option<PathBuf>,
    /// Time between the starts of two faults.
    pub fault_every: Duration,
}

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    CorruptFrame,
    CameraTimeout,
    CameraUnplugged,
    DisplayUnwritable,
    SerialUnplugged,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::CorruptFrame => "corrupt_frame",
            Self::CameraTimeout => "camera_timeout",
            Self::CameraUnplugged => "camera_unplugged",
            Self::DisplayUnwritable => "display_unwritable",
            Self::SerialUnplugged => "serial_unplugged",
        }
    }
}

const FAULT_ORDER: [FaultKind; 5] = [
    FaultKind::CorruptFrame,
    FaultKind::CameraTimeout,
    FaultKind::CameraUnplugged,
    FaultKind::DisplayUnwritable,
    FaultKind::SerialUnplugged,
];

/// One injected fault and how the device came through it.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// Seconds into the run when it was injected.
    pub at_s: f64,
    /// Seconds from the end of the fault until that seam worked again: a frame processed,
    /// a screen written, a log line read from the new port. `None`: not within a minute.
    pub recovered_after_s: Option<f64>,
}

/// The device's state at one moment of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub minute: f64,
    pub frames: u64,
    pub rss_kib: u64,
    /// Frame taken to all outputs queued, over the latest frames (at most 4096).
    pub loop_ms: Percentiles,
    /// Capture to all outputs queued, over the same frames.
    pub latency_ms: Percentiles,
}

/// The outcome of a soak.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub source: String,
    pub fps_target: u32,
    pub seconds: f64,
    pub frames: u64,
    pub fps: f64,
    pub dropped: u64,
    pub corrupt: u64,
    pub camera_failures: u64,
    pub model_errors: u64,
    pub display: DisplayCounts,
    pub log: SinkCounts,
    /// Complete lines read back from the ptys (a line sent again after a pulled port
    /// counted once), how many arrived twice, and how many lines (or bytes left over when
    /// a pty was pulled) were not JSON.
    pub lines_received: u64,
    pub lines_repeated: u64,
    pub lines_garbled: u64,
    pub faults: Vec<FaultRecord>,
    pub samples: Vec<Sample>,
    /// Resident memory at the end against the sample a sixth into the run (minute 5 of 30).
    pub rss_growth_percent: f64,
}

impl SoakReport {
    /// Faults the device came back from.
    pub fn recovered(&self) -> usize {
        self.faults.iter().filter(|f| f.recovered_after_s.is_some()).count()
    }

    /// Lines the device wrote that never arrived.
    pub fn lines_lost(&self) -> u64 {
        self.log.written.saturating_sub(self.lines_received)
    }

    /// Every fault recovered from and no log line lost.
    pub fn healthy(&self) -> bool {
        self.recovered() == self.faults.len() && self.lines_lost() == 0
    }
}

impl Report for SoakReport {
    fn to_text(&self) -> String {
        let mut text = format!(
            "soak on {} at {} fps: {:.1} min, {} frames ({:.1} FPS), {} dropped, {} corrupt, \
             {} camera failures, {} model errors\n\
             display: {} screens, {} skipped, {} failed\n\
             log: {} lines written, {} read back ({} lost, {} repeated, {} garbled), {} dropped, {} write failures\n\
             faults: {} injected, {} recovered\n\n{:<20}{:>10}{:>22}\n",
            self.source,
            self.fps_target,
            self.seconds / 60.0,
            self.frames,
            self.fps,
            self.dropped,
            self.corrupt,
            self.camera_failures,
            self.model_errors,
            self.display.rendered,
            self.display.skipped,
            self.display.failures,
            self.log.written,
            self.lines_received,
            self.lines_lost(),
            self.lines_repeated,
            self.lines_garbled,
            self.log.dropped,
            self.log.failures,
            self.faults.len(),
            self.recovered(),
            "fault",
            "at s",
            "recovered after s"
        );
        for fault in &self.faults {
            let recovered = fault.recovered_after_s.map_or("no".to_owned(), |s| format!("{s:.2}"));
            text += &format!("{:<20}{:>10.1}{:>22}\n", fault.kind.name(), fault.at_s, recovered);
        }
        text += &format!(
            "\n{:>7}{:>9}{:>10}{:>10}{:>10}{:>13}{:>13}\n",
            "minute", "frames", "RSS KiB", "loop p50", "loop p99", "latency p50", "latency p99"
        );
        for s in &self.samples {
            text += &format!(
                "{:>7.1}{:>9}{:>10}{:>10.2}{:>10.2}{:>13.2}{:>13.2}\n",
                s.minute,
                s.frames,
                s.rss_kib,
                s.loop_ms.p50_ms,
                s.loop_ms.p99_ms,
                s.latency_ms.p50_ms,
                s.latency_ms.p99_ms
            );
        }
        text += &format!("RSS growth from a sixth into the run to the end: {:+.2}%\n", self.rss_growth_percent);
        text
    }
}

/// Faults waiting for the camera wrapper, shared with the injector.
#[derive(Default)]
struct CameraFaults {
    /// The fault the next read returns.
    next: Mutex<Option<FaultKind>>,
    /// Reopens fail until then.
    unplugged_until: Mutex<Option<Instant>>,
}

impl CameraFaults {
    fn arm(&self, kind: FaultKind) {
        if let Ok(mut next) = self.next.lock() {
            *next = Some(kind);
        }
    }

    fn take(&self) -> Option<FaultKind> {
        self.next.lock().ok().and_then(|mut next| next.take())
    }

    fn armed(&self) -> bool {
        self.next.lock().map(|next| next.is_some()).unwrap_or(false)
    }

    fn unplugged(&self) -> bool {
        self.unplugged_until.lock().ok().and_then(|until| *until).is_some_and(|until| Instant::now() < until)
    }
}

/// The configured source with the armed fault delivered on its next read.
struct FaultyCamera {
    inner: Box<dyn FrameSource>,
    faults: Arc<CameraFaults>,
}

impl FrameSource for FaultyCamera {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let Some(fault) = self.faults.take() else { return self.inner.next_frame() };
        let source_name = self.inner.name().to_owned();
        match fault {
            FaultKind::CorruptFrame => Err(CaptureError::Corrupt {
                source_name,
                reason: "injected: a 1000-byte buffer where a frame was expected".into(),
            }),
            FaultKind::CameraTimeout => Err(CaptureError::Timeout { source_name }),
            FaultKind::CameraUnplugged => {
                if let Ok(mut until) = self.faults.unplugged_until.lock() {
                    *until = Some(Instant::now() + OUTAGE);
                }
                Err(CaptureError::Lost { source_name, reason: "injected: camera unplugged".into() })
            }
            FaultKind::DisplayUnwritable | FaultKind::SerialUnplugged => self.inner.next_frame(),
        }
    }

    fn is_live(&self) -> bool {
        self.inner.is_live()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// A pty standing in for a USB-serial adapter at `link`.
struct Pty {
    master: TTYPort,
    /// Held so reading the master never fails for want of an open slave.
    _slave: TTYPort,
}

impl Pty {
    fn plug(link: &Path) -> anyhow::Result<Self> {
        let (mut master, slave) = TTYPort::pair().context("opening a pty pair")?;
        master.set_timeout(Duration::from_millis(100)).context("pty timeout")?;
        let name = slave.name().context("the pty has no name")?;
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(link).with_context(|| format!("removing {}", link.display()))?;
        }
        std::os::unix::fs::symlink(&name, link).with_context(|| format!("linking {} to {name}", link.display()))?;
        Ok(Self { master, _slave: slave })
    }
}

/// The other end of the serial line: reads and checks every line the device writes.
#[derive(Default)]
struct SerialPeer {
    lines: AtomicU64,
    repeated: AtomicU64,
    garbled: AtomicU64,
    /// Set by the injector; the peer pulls the port, waits [`OUTAGE`], plugs a new one
    /// and clears it.
    unplug: AtomicBool,
    /// Set after the device has closed its log: the peer reads what is left and ends.
    closing: AtomicBool,
}

impl SerialPeer {
    fn run(&self, link: &Path) -> anyhow::Result<()> {
        let mut port = Pty::plug(link)?;
        let mut pending = Vec::new();
        let mut previous = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match port.master.read(&mut buf) {
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    self.take_lines(&mut pending, &mut previous);
                    continue;
                }
                Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
                Err(err) => return Err(err).context("reading the pty"),
            }
            // Nothing more to read right now: the pty is drained.
            if self.closing.load(Ordering::Relaxed) {
                self.count_leftover(&mut pending);
                return Ok(());
            }
            if self.unplug.load(Ordering::Relaxed) {
                self.count_leftover(&mut pending);
                drop(port);
                std::fs::remove_file(link).with_context(|| format!("removing {}", link.display()))?;
                std::thread::sleep(OUTAGE);
                port = Pty::plug(link)?;
                self.unplug.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Counts the complete lines in `pending`; `previous` is the last line counted. Every
    /// line carries a millisecond timestamp, so an identical line straight after is the
    /// same line sent again (the writer's at-least-once retry), not a new one.
    fn take_lines(&self, pending: &mut Vec<u8>, previous: &mut Vec<u8>) {
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if line == *previous {
                self.repeated.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.lines.fetch_add(1, Ordering::Relaxed);
            if serde_json::from_slice::<serde_json::Value>(&line).is_err() {
                self.garbled.fetch_add(1, Ordering::Relaxed);
            }
            *previous = line;
        }
    }

    /// Bytes of a line cut off when the port went away.
    fn count_leftover(&self, pending: &mut Vec<u8>) {
        if !pending.is_empty() {
            self.garbled.fetch_add(1, Ordering::Relaxed);
            pending.clear();
        }
    }
}

/// What the injector watches and pulls.
struct Seams<'a> {
    started: Instant,
    camera: &'a CameraFaults,
    peer: &'a SerialPeer,
    screens: &'a Path,
    /// Long enough that at least one screen is due while the folder is gone.
    display_outage: Duration,
    /// Frames the loop has processed so far.
    frames: &'a AtomicU64,
    /// Set when the device has stopped: nothing can recover any more.
    finished: &'a AtomicBool,
}

impl Seams<'_> {
    /// Injects one fault of `kind`, waits for its end and for the seam to work again.
    fn inject(&self, kind: FaultKind) -> anyhow::Result<FaultRecord> {
        let at_s = self.started.elapsed().as_secs_f64();
        let recovered_after = match kind {
            FaultKind::CorruptFrame | FaultKind::CameraTimeout | FaultKind::CameraUnplugged => {
                self.camera.arm(kind);
                self.wait_for(|| !self.camera.armed());
                if kind == FaultKind::CameraUnplugged {
                    self.wait_for(|| !self.camera.unplugged());
                }
                let frames = self.frames.load(Ordering::Relaxed);
                self.time_until(|| self.frames.load(Ordering::Relaxed) > frames)
            }
            FaultKind::DisplayUnwritable => {
                let away = self.screens.with_extension("away");
                std::fs::rename(self.screens, &away)
                    .with_context(|| format!("moving {} away", self.screens.display()))?;
                std::fs::write(self.screens, b"not a folder")
                    .with_context(|| format!("writing {}", self.screens.display()))?;
                std::thread::sleep(self.display_outage);
                std::fs::remove_file(self.screens).with_context(|| format!("removing {}", self.screens.display()))?;
                std::fs::rename(&away, self.screens)
                    .with_context(|| format!("moving {} back", self.screens.display()))?;
                let screens = count_files(self.screens);
                self.time_until(|| count_files(self.screens) > screens)
            }
            FaultKind::SerialUnplugged => {
                self.peer.unplug.store(true, Ordering::Relaxed);
                self.wait_for(|| !self.peer.unplug.load(Ordering::Relaxed));
                let lines = self.peer.lines.load(Ordering::Relaxed);
                self.time_until(|| self.peer.lines.load(Ordering::Relaxed) > lines)
            }
        };
        Ok(FaultRecord { kind, at_s, recovered_after_s: recovered_after.map(|d| d.as_secs_f64()) })
    }

    /// Waits until `done` holds or the device stops.
    fn wait_for(&self, done: impl Fn() -> bool) {
        while !done() && !self.finished.load(Ordering::Relaxed) {
            std::thread::sleep(POLL);
        }
    }

    /// How long until `recovered` holds, up to [`RECOVERY_LIMIT`] and while the device runs.
    fn time_until(&self, recovered: impl Fn() -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < RECOVERY_LIMIT && !self.finished.load(Ordering::Relaxed) {
            if recovered() {
                return Some(start.elapsed());
            }
            std::thread::sleep(POLL);
        }
        None
    }

    /// Injects the faults in turn, every `every`, until the device stops; none starts so
    /// late that the run would end before it could be recovered from.
    fn run(&self, every: Duration, run_for: Duration) -> anyhow::Result<Vec<FaultRecord>> {
        let mut records = Vec::new();
        let last_start = run_for.saturating_sub(OUTAGE + Duration::from_secs(10));
        for (i, kind) in FAULT_ORDER.iter().cycle().enumerate() {
            let due = every * (i as u32 + 1);
            if due > last_start {
                break;
            }
            while self.started.elapsed() < due {
                if self.finished.load(Ordering::Relaxed) {
                    return Ok(records);
                }
                std::thread::sleep(POLL);
            }
            records.push(self.inject(*kind)?);
        }
        Ok(records)
    }
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|entries| entries.count()).unwrap_or(0)
}

/// Runs the soak described by `options`.
pub fn run_soak(models: &ModelPaths, options: &SoakOptions) -> anyhow::Result<SoakReport> {
    let scratch = std::env::temp_dir().join(format!("emotion-pi-soak-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let result = soak_in(&scratch, models, options);
    // Best effort: a leftover scratch folder in /tmp is harmless.
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn soak_in(scratch: &Path, models: &ModelPaths, options: &SoakOptions) -> anyhow::Result<SoakReport> {
    let source = match &options.source {
        Some(path) => path.clone(),
        None => write_bench_frame(&scratch.join("frames"))?,
    };
    let screens = scratch.join("screens");
    let link = scratch.join("ttyUSB-soak");
    let mut config = Config::default();
    config.source.uri = source.display().to_string();
    config.source.loop_images = true;
    config.source.fps = options.fps;
    config.serial.heartbeat_secs = 1.0;
    config.display.kind = DisplayKind::Png(screens.clone());
    config.display.every = DISPLAY_EVERY;
    let mut settings = config.settings(Path::new("(soak)"))?;
    settings.serial = SerialTarget::Port(link.clone());
    ImageSource::open(&source, false, 0).context("source")?;
    let spec = settings.source.clone();

    let camera = Arc::new(CameraFaults::default());
    let faults = camera.clone();
    let capture_settings = settings.capture;
    let opener: SourceOpener = Box::new(move || {
        if faults.unplugged() {
            return Err(CaptureError::Lost {
                source_name: spec.to_string(),
                reason: "injected: camera still unplugged".into(),
            });
        }
        let inner = emotion_pi::capture::open(&spec, &capture_settings)?;
        Ok(Box::new(FaultyCamera { inner, faults: faults.clone() }) as Box<dyn FrameSource>)
    });

    let peer = SerialPeer::default();
    let frames = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let started = Instant::now();
    let screen_period = Duration::from_secs_f64(f64::from(DISPLAY_EVERY) / f64::from(options.fps.max(1)));
    let seams = Seams {
        started,
        camera: &camera,
        peer: &peer,
        screens: &screens,
        display_outage: OUTAGE.max(screen_period.mul_f64(1.5)),
        frames: &frames,
        finished: &finished,
    };
    let mut samples = Vec::new();
    let mut next_sample = SAMPLE_EVERY;
    let (summary, injected, peer_result) = std::thread::scope(|scope| {
        let peer_thread = scope.spawn(|| peer.run(&link));
        // The port must exist before the device opens it, or the first lines wait for a retry.
        while link.symlink_metadata().is_err() && !peer_thread.is_finished() {
            std::thread::sleep(POLL);
        }
        let injector = scope.spawn(|| seams.run(options.fault_every, options.duration));
        let summary = run_device_with_source(&settings, models, opener, None, &stop, &mut |report| {
            let processed = frames.fetch_add(1, Ordering::Relaxed) + 1;
            let elapsed = started.elapsed();
            let ending = elapsed >= options.duration;
            if elapsed >= next_sample || ending {
                samples.push(Sample {
                    minute: elapsed.as_secs_f64() / 60.0,
                    frames: processed,
                    rss_kib: rss_kib(),
                    loop_ms: report.stages.total.percentiles(),
                    latency_ms: report.stages.latency.percentiles(),
                });
                next_sample += SAMPLE_EVERY;
            }
            if ending {
                stop.store(true, Ordering::Relaxed);
            }
        });
        finished.store(true, Ordering::Relaxed);
        let injected = injector.join();
        peer.closing.store(true, Ordering::Relaxed);
        (summary, injected, peer_thread.join())
    });
    let summary = summary?;
    let faults = injected.map_err(|_| anyhow::anyhow!("the fault injector panicked"))??;
    peer_result.map_err(|_| anyhow::anyhow!("the serial peer panicked"))??;

    let baseline_minute = options.duration.as_secs_f64() / 60.0 / 6.0;
    let baseline = samples.iter().find(|s| s.minute >= baseline_minute).map_or(0, |s| s.rss_kib);
    let end = samples.last().map_or(0, |s| s.rss_kib);
    let rss_growth_percent = growth_percent(baseline, end);
    Ok(SoakReport {
        source: source.display().to_string(),
        fps_target: options.fps,
        seconds: summary.seconds,
        frames: summary.frames,
        fps: summary.fps,
        dropped: summary.capture.dropped,
        corrupt: summary.capture.corrupt,
        camera_failures: summary.capture.failures,
        model_errors: summary.model_errors,
        display: summary.display,
        log: summary.log,
        lines_received: peer.lines.load(Ordering::Relaxed),
        lines_repeated: peer.repeated.load(Ordering::Relaxed),
        lines_garbled: peer.garbled.load(Ordering::Relaxed),
        faults,
        samples,
        rss_growth_percent,
    })
}
