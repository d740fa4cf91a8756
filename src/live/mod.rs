//! The live loop of `emotion-pi run`: frames from the capture thread through detection,
//! classification and tracking to the outputs.
//!
//! Detection runs on every `detect_every`th processed frame; between, tracks keep their
//! state. The emotion log gets a line per track event and, at each heartbeat, a status line
//! plus one line per current track. Outputs only queue work, so a slow serial port or
//! display never holds up the camera.

pub mod device;
pub mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::analyze::Analyzer;
use crate::capture::thread::{Capture, CaptureCounts, CapturedFrame, Taken};
use crate::output::display::DisplayCounts;
use crate::output::emotion_log::{DeviceStatus, EmotionLog, FaceEvent, StatusCounters};
use crate::output::line_sink::{LineSink, SinkCounts};
use crate::service::{self, Watchdog};
use crate::track::{Detections, Observation, Track, TrackEvent, Tracker};
use stats::{FrameRate, StageSummary, StageTimes};

/// How often the loop looks up from an empty slot to report status or notice a stop.
const POLL: Duration = Duration::from_millis(200);
/// An open source that sends no frame for this long is reported as `stream stalled`: a
/// camera at 1 FPS still sends several frames in this time.
pub const STALL_AFTER: Duration = Duration::from_secs(5);

/// Loop settings that are not the models', the tracker's or the outputs'.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopOptions {
    /// Run detection on every Nth processed frame (at least 1).
    pub detect_every: u32,
    /// Time between heartbeat lines; `None` logs changes only.
    pub heartbeat: Option<Duration>,
    /// Stop after this many processed frames (benchmarks, tests).
    pub max_frames: Option<u64>,
}

/// What the outputs see of each processed frame.
pub struct FrameReport<'a> {
    pub frame: &'a CapturedFrame,
    pub tracks: &'a [Track],
    /// Whether detection ran on this frame.
    pub detected: bool,
    pub fps: f64,
    pub stages: &'a StageTimes,
}

/// Totals of a finished run.
#[derive(Debug, Clone)]
pub struct LoopSummary {
    pub frames: u64,
    pub detections: u64,
    pub model_errors: u64,
    pub seconds: f64,
    /// Processed frames per second over the whole run.
    pub fps: f64,
    pub capture: CaptureCounts,
    pub log: SinkCounts,
    /// Screens of the display thread; zero without a display.
    pub display: DisplayCounts,
    pub stages: StageSummary,
}

/// The loop's state between frames.
pub struct LiveLoop<'a> {
    analyzer: &'a Analyzer,
    tracker: Tracker,
    log: Option<(&'a LineSink, EmotionLog)>,
    options: LoopOptions,
    stages: StageTimes,
    rate: FrameRate,
    frames: u64,
    detections: u64,
    model_errors: u64,
    frame_size: (u32, u32),
    status: Option<DeviceStatus>,
    last_heartbeat: Instant,
    last_frame: Instant,
    watchdog: Option<Watchdog>,
    /// The source's name for systemd's status text, when running as a service.
    service_source: Option<String>,
}

impl<'a> LiveLoop<'a> {
    /// A loop over `analyzer`'s models; `log` receives the emotion log lines.
    pub fn new(analyzer: &'a Analyzer, tracker: Tracker, log: Option<&'a LineSink>, options: LoopOptions) -> Self {
        let names = analyzer.classifier().metadata().class_names.clone();
        Self {
            analyzer,
            tracker,
            log: log.map(|sink| (sink, EmotionLog::new(names))),
            options: LoopOptions { detect_every: options.detect_every.max(1), ..options },
            stages: StageTimes::default(),
            rate: FrameRate::default(),
            frames: 0,
            detections: 0,
            model_errors: 0,
            frame_size: (0, 0),
            status: None,
            last_heartbeat: Instant::now(),
            last_frame: Instant::now(),
            watchdog: None,
            service_source: None,
        }
    }

    /// Tells systemd how the loop is doing: pings `watchdog` while frames are processed,
    /// and sets the service's status text (`systemctl status`) to the log's status and
    /// the name of `source` whenever the status changes.
    pub fn with_service(mut self, watchdog: Option<Watchdog>, source: String) -> Self {
        self.watchdog = watchdog;
        self.service_source = Some(source);
        self
    }

    /// Runs until the source ends, `stop` is set or `max_frames` is reached; `on_frame` sees
    /// every processed frame (the display, benchmarks).
    pub fn run(&mut self, capture: &Capture, stop: &AtomicBool, on_frame: &mut dyn FnMut(&FrameReport)) -> LoopSummary {
        let started = Instant::now();
        self.last_heartbeat = started;
        self.last_frame = started;
        while !stop.load(Ordering::Relaxed) && self.options.max_frames.is_none_or(|max| self.frames < max) {
            if self.log.as_ref().is_some_and(|(sink, _)| sink.reader_gone()) {
                log::info!("the log's reader is gone; stopping");
                break;
            }
            match capture.take(POLL) {
                Taken::Frame(frame) => {
                    self.last_frame = Instant::now();
                    let detected = self.process(&frame);
                    on_frame(&FrameReport {
                        frame: &frame,
                        tracks: self.tracker.tracks(),
                        detected,
                        fps: self.rate.fps(),
                        stages: &self.stages,
                    });
                }
                Taken::Timeout => {}
                Taken::Ended => break,
            }
            let counts = capture.counts();
            if let Some(watchdog) = &mut self.watchdog {
                watchdog.observe(Instant::now(), self.frames, !counts.connected);
            }
            self.report_status(counts, false);
        }
        self.report_status(capture.counts(), true);
        let seconds = started.elapsed().as_secs_f64();
        LoopSummary {
            frames: self.frames,
            detections: self.detections,
            model_errors: self.model_errors,
            seconds,
            fps: if seconds > 0.0 { self.frames as f64 / seconds } else { 0.0 },
            capture: capture.counts(),
            log: self.log.as_ref().map(|(sink, _)| sink.counts()).unwrap_or_default(),
            display: DisplayCounts::default(),
            stages: self.stages.summary(),
        }
    }

    /// Detects (when due), classifies and tracks one frame; returns whether detection ran.
    fn process(&mut self, captured: &CapturedFrame) -> bool {
        let started = Instant::now();
        self.stages.capture.record(captured.read_time);
        self.frame_size = (captured.frame.width(), captured.frame.height());
        let due = self.frames.is_multiple_of(u64::from(self.options.detect_every));
        self.frames += 1;
        let observations = if due { self.observe(captured) } else { None };
        // Only a frame with detections can lose a track, and a lost track's last state is
        // what its `lost` line reports; skipped frames need no copy.
        let before: Vec<Track> = if observations.is_some() { self.tracker.tracks().to_vec() } else { Vec::new() };
        let track_started = Instant::now();
        let detections = match &observations {
            Some(observations) => Detections::Ran(observations),
            None => Detections::Skipped,
        };
        let events = match self.tracker.update(detections) {
            Ok(events) => events,
            Err(err) => {
                self.model_errors += 1;
                log::error!("frame {}: tracker refused the classifier output: {err}", captured.index);
                Vec::new()
            }
        };
        self.stages.track.record(track_started.elapsed());
        self.log_events(&events, &before);
        let now = Instant::now();
        self.rate.tick(now);
        self.stages.total.record(now - started);
        self.stages.latency.record(now.saturating_duration_since(captured.captured_at));
        observations.is_some()
    }

    /// Faces with their raw class probabilities, or `None` when the models failed.
    fn observe(&mut self, captured: &CapturedFrame) -> Option<Vec<Observation>> {
        let frame = &captured.frame;
        let t = Instant::now();
        let faces = match self.analyzer.detector().detect(&frame.rgb) {
            Ok(faces) => faces,
            Err(err) => return self.model_failed(captured.index, &err),
        };
        self.stages.detect.record(t.elapsed());
        self.detections += 1;
        let t = Instant::now();
        let batch = self.analyzer.crop_batch(frame, &faces);
        self.stages.crop.record(t.elapsed());
        let t = Instant::now();
        let emotions = match self.analyzer.classifier().classify_batch(&batch, faces.len()) {
            Ok(emotions) => emotions,
            Err(err) => return self.model_failed(captured.index, &err),
        };
        if !faces.is_empty() {
            self.stages.classify.record(t.elapsed());
        }
        Some(
            faces
                .iter()
                .zip(emotions)
                .map(|(face, emotion)| Observation { bbox: face.bbox, probabilities: emotion.probabilities })
                .collect(),
        )
    }

    fn model_failed(&mut self, index: u64, err: &dyn std::fmt::Display) -> Option<Vec<Observation>> {
        self.model_errors += 1;
        log::error!("frame {index}: {err}");
        None
    }

    fn log_events(&self, events: &[TrackEvent], before: &[Track]) {
        let Some((sink, log)) = &self.log else { return };
        let now = SystemTime::now();
        let current = |id: u64| self.tracker.tracks().iter().find(|t| t.id() == id);
        for event in events {
            let line = match *event {
                TrackEvent::New { id, .. } => {
                    current(id).map(|t| log.face_line(FaceEvent::New, t, None, self.frame_size, now))
                }
                TrackEvent::LabelChanged { id, from, .. } => {
                    current(id).map(|t| log.face_line(FaceEvent::Change, t, Some(from), self.frame_size, now))
                }
                TrackEvent::Lost { id } => before
                    .iter()
                    .find(|t| t.id() == id)
                    .map(|t| log.face_line(FaceEvent::Lost, t, None, self.frame_size, now)),
            };
            if let Some(line) = line {
                sink.send(line);
            }
        }
    }

    /// Writes a status line when the status changed, at each heartbeat (with a line per
    /// track), and a final `stopped` line.
    fn report_status(&mut self, capture: CaptureCounts, stopping: bool) {
        let status = if stopping {
            DeviceStatus::Stopped
        } else if !capture.connected && capture.failures > 0 {
            DeviceStatus::NoCamera
        } else if capture.connected && self.last_frame.elapsed() >= STALL_AFTER {
            DeviceStatus::Stalled
        } else if self.tracker.tracks().is_empty() {
            DeviceStatus::NoFace
        } else {
            DeviceStatus::Running
        };
        let heartbeat_due = self.options.heartbeat.is_some_and(|every| self.last_heartbeat.elapsed() >= every);
        if self.status == Some(status) && !heartbeat_due {
            return;
        }
        if self.status != Some(status) {
            if let Some(source) = &self.service_source {
                service::notify_status(&format!("{}: {source}", status.as_str()));
            }
        }
        self.status = Some(status);
        let Some((sink, log)) = &self.log else { return };
        let now = SystemTime::now();
        let counters = StatusCounters {
            faces: self.tracker.tracks().len(),
            fps: self.rate.fps(),
            frames: self.frames,
            dropped: capture.dropped,
            corrupt: capture.corrupt,
            camera_failures: capture.failures,
            log_dropped: sink.counts().dropped,
        };
        sink.send(log.status_line(status, counters, now));
        if heartbeat_due {
            self.last_heartbeat = Instant::now();
            for track in self.tracker.tracks() {
                sink.send(log.face_line(FaceEvent::Heartbeat, track, None, self.frame_size, now));
            }
        }
    }
}

#[cfg(test)]
mod tests;
