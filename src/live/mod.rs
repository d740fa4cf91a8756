//! The live loop of `emotion-pi run`: frames from the capture thread through detection,
//! classification and tracking to the outputs.
//!
//! Detection runs on every `detect_every`th processed frame; between, tracks keep their
//! state. Up to `workers` frames are analysed (detected and classified) at once on a pool of
//! threads, one frame per thread, while this thread tracks and reports the finished ones in
//! the order they were taken, so the log never sees frames out of order. The emotion log gets a line per track event and, at each heartbeat, a status line
//! plus one line per current track. Outputs only queue work, so a slow serial port or
//! display never holds up the camera.

pub mod device;
pub mod stats;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime};

use crate::analyze::Analyzer;
use crate::capture::thread::{Capture, CaptureCounts, CapturedFrame, Taken};
use crate::classify::{Mirror, Views};
use crate::detect::Face;
use crate::model::ModelError;
use crate::output::display::DisplayCounts;
use crate::output::emotion_log::{DeviceStatus, EmotionLog, FaceEvent, StatusCounters};
use crate::output::line_sink::{LineSink, SinkCounts};
use crate::service::{self, Watchdog};
use crate::track::{Detections, Observation, Track, TrackEvent, TrackedBoxes, Tracker};
use stats::{FrameRate, StageSummary, StageTimes};

/// How often the loop looks up from an empty slot to report status or notice a stop.
const POLL: Duration = Duration::from_millis(200);
/// How long the loop waits for a new frame while workers are busy before it looks for
/// finished frames to report: short, because it adds to their latency.
const FINISHED_POLL: Duration = Duration::from_millis(2);
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
    /// Frames analysed at once, each on its own thread (at least 1).
    pub workers: usize,
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
    /// Runs of the emotion graph over all faces: two per face scored with its mirror image.
    pub classifier_passes: u64,
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
    classifier_passes: u64,
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
            options: LoopOptions {
                detect_every: options.detect_every.max(1),
                workers: options.workers.max(1),
                ..options
            },
            stages: StageTimes::default(),
            rate: FrameRate::default(),
            frames: 0,
            detections: 0,
            classifier_passes: 0,
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
    /// every processed frame (the display, benchmarks), in the order the frames were taken.
    /// Fails only when the worker threads cannot be started.
    pub fn run(
        &mut self,
        capture: &Capture,
        stop: &AtomicBool,
        on_frame: &mut dyn FnMut(&FrameReport),
    ) -> Result<LoopSummary, rayon::ThreadPoolBuildError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.options.workers)
            .thread_name(|i| format!("analyse-{i}"))
            .build()?;
        let started = Instant::now();
        self.last_heartbeat = started;
        self.last_frame = started;
        pool.in_place_scope(|scope| self.run_frames(scope, capture, stop, on_frame));
        self.report_status(capture.counts(), true);
        let seconds = started.elapsed().as_secs_f64();
        Ok(LoopSummary {
            frames: self.frames,
            detections: self.detections,
            classifier_passes: self.classifier_passes,
            model_errors: self.model_errors,
            seconds,
            fps: if seconds > 0.0 { self.frames as f64 / seconds } else { 0.0 },
            capture: capture.counts(),
            log: self.log.as_ref().map(|(sink, _)| sink.counts()).unwrap_or_default(),
            display: DisplayCounts::default(),
            stages: self.stages.summary(),
        })
    }

    /// Takes frames while fewer than `workers` are in flight, hands those due for detection
    /// to the pool and finishes every frame in the order taken. Once it stops taking frames
    /// it still finishes those in flight: no analysed frame is dropped.
    fn run_frames<'s>(
        &mut self,
        scope: &rayon::Scope<'s>,
        capture: &Capture,
        stop: &AtomicBool,
        on_frame: &mut dyn FnMut(&FrameReport),
    ) where
        'a: 's,
    {
        let analyzer = self.analyzer;
        let (finished, finished_frames) = mpsc::channel::<(u64, Analysed)>();
        // Frames taken and not yet reported, by the order taken: `None` while a worker has it.
        let mut in_flight: BTreeMap<u64, Option<Analysed>> = BTreeMap::new();
        let mut taken: u64 = 0;
        let mut ended = false;
        loop {
            receive_finished(&finished_frames, &mut in_flight, None);
            while let Some(entry) = in_flight.first_entry() {
                if entry.get().is_none() {
                    break;
                }
                if let Some(analysed) = entry.remove() {
                    self.finish(analysed, on_frame);
                }
            }
            let reader_gone = self.log.as_ref().is_some_and(|(sink, _)| sink.reader_gone());
            if reader_gone && !ended {
                log::info!("the log's reader is gone; stopping");
            }
            ended |=
                reader_gone || stop.load(Ordering::Relaxed) || self.options.max_frames.is_some_and(|max| taken >= max);
            if ended && in_flight.is_empty() {
                break;
            }
            if !ended && in_flight.len() < self.options.workers {
                let wait = if in_flight.is_empty() { POLL } else { FINISHED_POLL };
                match capture.take(wait) {
                    Taken::Frame(captured) => {
                        let now = Instant::now();
                        self.last_frame = now;
                        let due = taken.is_multiple_of(u64::from(self.options.detect_every));
                        let mut analysed = Analysed { captured, taken_at: now, analysis: None };
                        if due {
                            in_flight.insert(taken, None);
                            let finished = finished.clone();
                            let order = taken;
                            let views = ViewPlan {
                                tracked: self.tracker.tracked_boxes(),
                                turn: taken / u64::from(self.options.detect_every),
                            };
                            scope.spawn(move |_| {
                                analysed.analysis = Some(analyse(analyzer, &analysed.captured, &views));
                                // The receiver lives until every frame in flight is back.
                                let _ = finished.send((order, analysed));
                            });
                        } else {
                            in_flight.insert(taken, Some(analysed));
                        }
                        taken += 1;
                    }
                    Taken::Timeout => {}
                    Taken::Ended => ended = true,
                }
            } else if !in_flight.is_empty() {
                receive_finished(&finished_frames, &mut in_flight, Some(POLL));
            }
            let counts = capture.counts();
            if let Some(watchdog) = &mut self.watchdog {
                watchdog.observe(Instant::now(), self.frames, !counts.connected);
            }
            // Until the first frame is finished, whether it holds a face is not known yet.
            if self.frames > 0 || in_flight.is_empty() {
                self.report_status(counts, false);
            }
        }
    }

    /// Tracks one frame with its analysis (if detection ran on it), logs the events and
    /// shows it to `on_frame`.
    fn finish(&mut self, analysed: Analysed, on_frame: &mut dyn FnMut(&FrameReport)) {
        let Analysed { captured, taken_at, analysis } = analysed;
        self.stages.capture.record(captured.read_time);
        self.frame_size = (captured.frame.width(), captured.frame.height());
        self.frames += 1;
        let observations = analysis.and_then(|analysis| self.record_analysis(captured.index, analysis));
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
        self.stages.total.record(now - taken_at);
        self.stages.latency.record(now.saturating_duration_since(captured.captured_at));
        on_frame(&FrameReport {
            frame: &captured,
            tracks: self.tracker.tracks(),
            detected: observations.is_some(),
            fps: self.rate.fps(),
            stages: &self.stages,
        });
    }

    /// Records a worker's stage times; the faces it found, or `None` when the models failed.
    fn record_analysis(&mut self, index: u64, analysis: Analysis) -> Option<Vec<Observation>> {
        match analysis {
            Analysis::Found { observations, detect, crop, classify, passes } => {
                self.detections += 1;
                self.classifier_passes += passes;
                self.stages.detect.record(detect);
                self.stages.crop.record(crop);
                if let Some(classify) = classify {
                    self.stages.classify.record(classify);
                }
                Some(observations)
            }
            Analysis::Failed(err) => {
                self.model_errors += 1;
                log::error!("frame {index}: {err}");
                None
            }
        }
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

/// A frame taken from the capture thread, with what a worker found in it when detection
/// was due.
struct Analysed {
    captured: CapturedFrame,
    taken_at: Instant,
    analysis: Option<Analysis>,
}

/// Detection and classification of one frame, done on a worker thread.
enum Analysis {
    Found {
        observations: Vec<Observation>,
        detect: Duration,
        crop: Duration,
        /// `None` when there was no face to classify.
        classify: Option<Duration>,
        /// Runs of the emotion graph.
        passes: u64,
    },
    Failed(AnalysisError),
}

/// Why a frame's analysis gave no faces.
#[derive(Debug, thiserror::Error)]
enum AnalysisError {
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A bug in inference must not stop the loop or leave the frame's slot waiting forever.
    #[error("inference panicked: {0}")]
    Panicked(String),
}

/// Moves finished frames into their slots, waiting up to `wait` for the first one.
fn receive_finished(
    finished: &Receiver<(u64, Analysed)>,
    in_flight: &mut BTreeMap<u64, Option<Analysed>>,
    wait: Option<Duration>,
) {
    let first = match wait {
        Some(wait) => finished.recv_timeout(wait).ok(),
        None => None,
    };
    for (order, analysed) in first.into_iter().chain(finished.try_iter()) {
        in_flight.insert(order, Some(analysed));
    }
}

/// Which images of each face a worker scores (`classify.mirror`): `alternate` needs to know
/// which faces the tracker already follows.
struct ViewPlan {
    /// The tracks when the frame was taken. A face that started a track in a frame still in
    /// flight then is scored on both images once more: with several workers the first
    /// frames of a track may get both where one worker gives them one (either is a correct
    /// mirror average; for a face that holds still, the same one).
    tracked: TrackedBoxes,
    /// The frame's place among the frames detection runs on, so that a track's consecutive
    /// detections alternate between the face and its mirror image.
    turn: u64,
}

impl ViewPlan {
    fn views(&self, mirror: Mirror, face: &Face) -> Views {
        mirror.views(self.tracked.holds(&face.bbox).then_some(self.turn))
    }
}

/// Detects the faces in `captured` and classifies them on the images `plan` picks, timing
/// each stage.
fn analyse(analyzer: &Analyzer, captured: &CapturedFrame, plan: &ViewPlan) -> Analysis {
    let run = || -> Result<Analysis, ModelError> {
        let frame = &captured.frame;
        let t = Instant::now();
        let faces = analyzer.detector().detect(&frame.rgb)?;
        let detect = t.elapsed();
        let t = Instant::now();
        let batch = analyzer.crop_batch(frame, &faces);
        let crop = t.elapsed();
        let t = Instant::now();
        let classifier = analyzer.classifier();
        let views: Vec<Views> = faces.iter().map(|face| plan.views(classifier.mirror(), face)).collect();
        let scores = classifier.classify_views(&batch, &views)?;
        let classify = (!faces.is_empty()).then(|| t.elapsed());
        let passes = views.iter().map(|views| views.passes() as u64).sum();
        let observations =
            faces.iter().zip(scores).map(|(face, scores)| Observation { bbox: face.bbox, scores }).collect();
        Ok(Analysis::Found { observations, detect, crop, classify, passes })
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(analysis)) => analysis,
        Ok(Err(err)) => Analysis::Failed(err.into()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Analysis::Failed(AnalysisError::Panicked(message))
        }
    }
}

#[cfg(test)]
mod tests;
