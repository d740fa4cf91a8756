//! Faults through the FrameSource seam, end to end through the loop into the emotion log.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::analyze::{AnalyzerSettings, ModelPaths};
use crate::capture::source::{CaptureError, FrameSource};
use crate::capture::thread::SourceOpener;
use crate::classify::ClassifierSettings;
use crate::detect::DetectorRange;
use crate::frame::Frame;
use crate::track::TrackerSettings;
use crate::worker::Backoff;

type Step = Result<Option<Frame>, CaptureError>;

/// A camera that plays its steps, then reports the stream lost.
struct ScriptedCamera {
    steps: VecDeque<Step>,
}

impl FrameSource for ScriptedCamera {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        self.steps.pop_front().unwrap_or_else(|| Err(lost("script over")))
    }
    // Frames wait to be taken, so every one is processed and the counts are exact.
    fn is_live(&self) -> bool {
        false
    }
    fn name(&self) -> &str {
        "scripted camera"
    }
}

fn lost(reason: &str) -> CaptureError {
    CaptureError::Lost { source_name: "scripted camera".into(), reason: reason.into() }
}

/// Retries fast: the tests' sources fail on purpose.
const FAST: Backoff = Backoff { initial: Duration::from_millis(1), max: Duration::from_millis(5) };

/// The in-memory serial port the log goes to.
#[derive(Clone, Default)]
struct Port(Arc<Mutex<Vec<u8>>>);

impl Port {
    fn text(&self) -> String {
        self.0.lock().map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
    }
}

impl Write for Port {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A log writer into `port`, retried after `backoff`.
fn memory_sink(port: &Port, backoff: Backoff) -> LineSink {
    let writer = port.clone();
    LineSink::start("memory port", Box::new(move || Ok(Box::new(writer.clone()) as Box<dyn Write + Send>)), 64, backoff)
        .unwrap()
}

/// The shipped models, scoring mirror images as `mirror` says.
fn shipped_analyzer(mirror: Mirror) -> Analyzer {
    let models =
        ModelPaths::in_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models"), DetectorRange::Short);
    let settings = AnalyzerSettings { classifier: ClassifierSettings { mirror }, ..AnalyzerSettings::default() };
    Analyzer::load(&models, settings).unwrap()
}

#[test]
fn camera_faults_mid_stream_are_counted_and_recovered_without_losing_log_lines() {
    let analyzer = shipped_analyzer(Mirror::default());
    let face = Frame::from_rgb(
        image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/astronaut.png")).unwrap().to_rgb8(),
    );
    let corrupt = CaptureError::Corrupt {
        source_name: "scripted camera".into(),
        reason: "frame of 1000 bytes, expected 460800".into(),
    };
    let timeout = CaptureError::Timeout { source_name: "scripted camera".into() };
    // First session: a frame, a wrong-size buffer, a timeout, a frame, then unplugged.
    // Then two failed reopens. Second session: two frames and the end of the stream.
    let mut sessions: VecDeque<Result<Vec<Step>, CaptureError>> = VecDeque::from([
        Ok(vec![Ok(Some(face.clone())), Err(corrupt), Err(timeout), Ok(Some(face.clone())), Err(lost("unplugged"))]),
        Err(lost("no such device")),
        Err(lost("no such device")),
        Ok(vec![Ok(Some(face.clone())), Ok(Some(face)), Ok(None)]),
    ]);
    let port = Port::default();
    let watched = port.clone();
    let opener: SourceOpener = Box::new(move || {
        // The camera comes back only once the log has said it was missing, however slow
        // the machine (under qemu one frame takes seconds).
        if sessions.len() == 1 {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while !watched.text().contains("\"no camera\"") && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        match sessions.pop_front() {
            Some(Ok(steps)) => Ok(Box::new(ScriptedCamera { steps: steps.into() }) as Box<dyn FrameSource>),
            Some(Err(err)) => Err(err),
            None => Err(lost("gone for good")),
        }
    });
    let capture = Capture::start(opener, FAST).unwrap();
    let sink = memory_sink(&port, FAST);
    let tracker = Tracker::new(7, TrackerSettings::default()).unwrap();
    let options = LoopOptions { detect_every: 1, heartbeat: None, max_frames: None, workers: 1 };
    let summary = LiveLoop::new(&analyzer, tracker, Some(&sink), options)
        .run(&capture, &AtomicBool::new(false), &mut |_| {})
        .unwrap();
    capture.stop(Duration::from_secs(1));
    let counts = sink.close(Duration::from_secs(2));

    assert_eq!(summary.frames, 4);
    assert_eq!((summary.capture.corrupt, summary.capture.failures), (1, 3), "{:?}", summary.capture);
    let text = port.text();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(counts.written as usize, lines.len());
    assert_eq!(counts.dropped, 0);
    let statuses: Vec<&str> = lines.iter().filter_map(|l| l["status"].as_str()).collect();
    let missing = statuses.iter().position(|&s| s == "no camera").unwrap_or_else(|| panic!("{text}"));
    assert!(statuses[missing..].contains(&"running"), "recovered after the camera came back: {text}");
    assert_eq!(statuses.last(), Some(&"stopped"));
    let last = lines.last().unwrap();
    assert_eq!(
        (last["frames"].as_u64(), last["corrupt"].as_u64(), last["camera_failures"].as_u64()),
        (Some(4), Some(1), Some(3))
    );
    // The same face before and after the fault: one track, one `new` line.
    assert_eq!(lines.iter().filter(|l| l["event"] == "new").count(), 1, "{text}");
}

/// The frames a run showed its outputs: (index, whether detection ran, track ids and labels),
/// and the log's face lines without their times (status lines count frames as they go, so
/// they depend on timing).
type Observed = (Vec<(u64, bool, Vec<(u64, usize)>)>, Vec<Value>);

/// A capture of a camera that plays `frames` once and ends.
fn play_once(frames: Vec<Frame>) -> Capture {
    let mut steps: Vec<Step> = frames.into_iter().map(|frame| Ok(Some(frame))).collect();
    steps.push(Ok(None));
    let mut session = Some(steps);
    let opener: SourceOpener = Box::new(move || match session.take() {
        Some(steps) => Ok(Box::new(ScriptedCamera { steps: steps.into() }) as Box<dyn FrameSource>),
        None => Err(lost("played once")),
    });
    Capture::start(opener, FAST).unwrap()
}

fn run_script(frames: Vec<Frame>, workers: usize, detect_every: u32) -> Observed {
    let analyzer = shipped_analyzer(Mirror::default());
    let capture = play_once(frames);
    let port = Port::default();
    let sink = memory_sink(&port, FAST);
    let tracker = Tracker::new(7, TrackerSettings::default()).unwrap();
    let options = LoopOptions { detect_every, heartbeat: None, max_frames: None, workers };
    let mut shown = Vec::new();
    let summary = LiveLoop::new(&analyzer, tracker, Some(&sink), options)
        .run(&capture, &AtomicBool::new(false), &mut |report| {
            let tracks = report.tracks.iter().map(|t| (t.id(), t.label())).collect();
            shown.push((report.frame.index, report.detected, tracks));
        })
        .unwrap();
    capture.stop(Duration::from_secs(1));
    let counts = sink.close(Duration::from_secs(2));
    assert_eq!((counts.dropped, summary.model_errors), (0, 0));
    let face_lines = port
        .text()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line.get("track").is_some())
        .map(|mut line| {
            line.as_object_mut().unwrap().remove("time");
            line
        })
        .collect();
    (shown, face_lines)
}

#[test]
fn several_workers_report_every_frame_in_order_with_the_same_log_as_one() {
    let image = |name: &str| {
        Frame::from_rgb(image::open(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap().to_rgb8())
    };
    let (astronaut, hopper) = (image("astronaut.png"), image("grace_hopper.jpg"));
    let empty = Frame::from_rgb(image::RgbImage::from_pixel(320, 240, image::Rgb([90, 120, 150])));
    // A face, a different person long enough for the first track to end, no one, then the
    // first face again: `new`, `lost` and `new` events whose order depends on frame order.
    // Each person holds still, so a track's scores are the same whether a frame in flight
    // scored its face on both images or on one (`classify.mirror = "alternate"`).
    let mut script = vec![astronaut.clone(); 3];
    script.extend(vec![hopper; 8]);
    script.extend(vec![empty; 12]);
    script.extend(vec![astronaut; 3]);
    for detect_every in [1, 3] {
        let (one_shown, one_log) = run_script(script.clone(), 1, detect_every);
        assert_eq!(one_shown.len(), script.len());
        assert!(one_shown.iter().enumerate().all(|(i, shown)| shown.0 == i as u64), "{one_shown:?}");
        let events: Vec<&str> = one_log.iter().filter_map(|l| l["event"].as_str()).collect();
        assert!(events.iter().filter(|&&e| e == "new").count() >= 3, "{events:?}");
        assert!(events.contains(&"lost"), "{events:?}");
        for workers in [2, 3] {
            let (shown, log) = run_script(script.clone(), workers, detect_every);
            assert_eq!(shown, one_shown, "{workers} workers, detection every {detect_every} frames");
            assert_eq!(log, one_log, "{workers} workers, detection every {detect_every} frames");
        }
    }
}

/// Per frame, each track's id and smoothed probabilities.
type TrackScores = Vec<Vec<(u64, Vec<f32>)>>;

/// Runs the loop over `frames` with one worker and `mirror`: the loop's totals and the
/// tracks' scores.
fn run_with_mirror(frames: Vec<Frame>, mirror: Mirror) -> (LoopSummary, TrackScores) {
    let analyzer = shipped_analyzer(mirror);
    let capture = play_once(frames);
    let tracker = Tracker::new(7, TrackerSettings::default()).unwrap();
    let options = LoopOptions { detect_every: 1, heartbeat: None, max_frames: None, workers: 1 };
    let mut shown = Vec::new();
    let summary = LiveLoop::new(&analyzer, tracker, None, options)
        .run(&capture, &AtomicBool::new(false), &mut |report| {
            shown.push(report.tracks.iter().map(|t| (t.id(), t.probabilities().to_vec())).collect());
        })
        .unwrap();
    capture.stop(Duration::from_secs(1));
    (summary, shown)
}

#[test]
fn a_tracked_face_alternates_images_one_pass_a_frame_and_a_still_one_tracks_as_with_both_each_frame() {
    let astronaut = Frame::from_rgb(
        image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/astronaut.png")).unwrap().to_rgb8(),
    );
    let frames = vec![astronaut; 5];
    let (always, always_tracks) = run_with_mirror(frames.clone(), Mirror::Always);
    let (alternate, alternate_tracks) = run_with_mirror(frames.clone(), Mirror::Alternate);
    let (off, off_tracks) = run_with_mirror(frames, Mirror::Off);
    // One face per frame: both images on all 5 frames; both on the first, then one each;
    // one each.
    assert_eq!(
        (always.classifier_passes, alternate.classifier_passes, off.classifier_passes),
        (10, 6, 5),
        "detections: {}",
        always.detections
    );
    // The same picture each frame, so each single pass pairs with the other image of the
    // frame before into exactly what both images give.
    assert_eq!(alternate_tracks, always_tracks);
    assert_eq!(always_tracks.len(), 5);
    assert!(always_tracks.iter().all(|tracks| tracks.len() == 1));
    assert_ne!(off_tracks, always_tracks, "the mirror image must change the scores for this test to mean anything");
}
