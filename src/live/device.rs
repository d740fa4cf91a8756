//! Wiring the live loop to its source and outputs from the checked settings.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;

use crate::analyze::{Analyzer, AnalyzerSettings, ModelPaths};
use crate::capture::images::ImageSource;
use crate::capture::source::{FrameSource, SourceSpec};
use crate::capture::thread::{Capture, SourceOpener};
use crate::config::{LedSettings, RunSettings};
use crate::detect::DetectorSettings;
use crate::live::{FrameReport, LiveLoop, LoopOptions, LoopSummary};
use crate::output::display::{Display, Screen};
use crate::output::leds::rppal_pins::RppalPins;
use crate::output::leds::{LedLayout, Leds};
use crate::output::line_sink::LineSink;
use crate::output::serial::{target_name, writer_opener};
use crate::service::{self, Watchdog};
use crate::track::Tracker;
use crate::worker::{Backoff, Counter};

/// How long shutdown waits for the capture thread and for the log to drain.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs the device until the source ends or `stop` is set.
///
/// `models` overrides the models folder of the settings; `max_frames` ends the run early.
pub fn run_device(
    settings: &RunSettings,
    models: &ModelPaths,
    max_frames: Option<u64>,
    stop: &AtomicBool,
    on_frame: &mut dyn FnMut(&FrameReport),
) -> anyhow::Result<LoopSummary> {
    let reopen = crate::capture::opener(settings.source.clone(), settings.capture);
    // An image folder opened for the check is the capture thread's first source, so a large
    // folder is walked once at start, not twice.
    let source: SourceOpener = match check_source(settings)? {
        Some(images) => {
            let mut opened: Option<Box<dyn FrameSource>> = Some(Box::new(images));
            let mut reopen = reopen;
            Box::new(move || opened.take().map_or_else(&mut reopen, Ok))
        }
        None => reopen,
    };
    run_device_with_source(settings, models, source, max_frames, stop, on_frame)
}

/// Every check [`run_device`] makes before it opens a device, for `run --check-config`:
/// the source, both models, and the LEDs' emotions against the model's classes.
pub fn check_before_start(settings: &RunSettings, models: &ModelPaths) -> anyhow::Result<()> {
    check_source(settings)?;
    let analyzer = load_analyzer(settings, models)?;
    led_layout(&settings.leds, &analyzer.classifier().metadata().class_names)?;
    Ok(())
}

/// An image folder that does not exist is a mistake to report now, not a camera to wait for.
/// Returns the folder opened as the settings ask, for the run to play.
fn check_source(settings: &RunSettings) -> anyhow::Result<Option<ImageSource>> {
    match &settings.source {
        SourceSpec::Images { path } => {
            let capture = &settings.capture;
            Ok(Some(ImageSource::open(path, capture.loop_images, capture.fps).context("source")?))
        }
        _ => Ok(None),
    }
}

fn load_analyzer(settings: &RunSettings, models: &ModelPaths) -> anyhow::Result<Analyzer> {
    let analyzer_settings = AnalyzerSettings {
        detector: DetectorSettings {
            min_score: settings.min_face_score,
            refine: settings.refine,
            ..DetectorSettings::default()
        },
        crop: settings.crop,
        classifier: settings.classifier,
    };
    Ok(Analyzer::load(models, analyzer_settings)?)
}

/// [`run_device`] with frames from `source` instead of the configured one (the soak
/// benchmark wraps the configured source to inject camera faults).
pub fn run_device_with_source(
    settings: &RunSettings,
    models: &ModelPaths,
    source: SourceOpener,
    max_frames: Option<u64>,
    stop: &AtomicBool,
    on_frame: &mut dyn FnMut(&FrameReport),
) -> anyhow::Result<LoopSummary> {
    let analyzer = load_analyzer(settings, models)?;
    let class_names = &analyzer.classifier().metadata().class_names;
    let tracker = Tracker::new(class_names.len(), settings.tracker).context("tracker settings")?;
    let mut leds = led_layout(&settings.leds, class_names)?.and_then(open_leds);
    let led_failures = Counter::default();
    let backoff = Backoff { initial: settings.capture.retry_initial, max: settings.capture.retry_max };
    let sink = match writer_opener(&settings.serial, settings.baud) {
        Some(opener) => Some(
            LineSink::start(&target_name(&settings.serial), opener, settings.serial_queue, backoff)
                .context("starting the log writer")?,
        ),
        None => None,
    };
    let capture = Capture::start(source, backoff).context("starting the capture thread")?;
    let (width, height) = settings.display_size;
    let display =
        Display::start(&settings.display, width, height, analyzer.classifier().metadata().class_names.clone())
            .context("starting the display")?;
    let every = u64::from(settings.display_every);
    let mut outputs = |report: &FrameReport| {
        if let Some(display) = &display {
            if report.frame.index.is_multiple_of(every) {
                display.offer(Screen::new(report.frame.index, &report.frame.frame.rgb, report.tracks, report.fps));
            }
        }
        if let Some(leds) = &mut leds {
            if let Err(err) = leds.show(report.tracks) {
                led_failures.add_and_warn(|n| format!("leds: {err} ({n} failures so far)"));
            }
        }
        on_frame(report);
    };
    let options = LoopOptions {
        detect_every: settings.detect_every,
        heartbeat: settings.heartbeat,
        max_frames,
        workers: settings.workers,
    };
    let mut live = LiveLoop::new(&analyzer, tracker, sink.as_ref(), options)
        .with_service(Watchdog::from_env(), settings.source.to_string());
    service::notify_ready(&format!("started: {}", settings.source));
    let run = live.run(&capture, stop, &mut outputs);
    service::notify_stopping();
    capture.stop(SHUTDOWN_GRACE);
    // The outputs are closed whether or not the loop could start, so no thread is left behind.
    let display_counts = display.map(|display| display.close(SHUTDOWN_GRACE));
    let log_counts = sink.map(|sink| sink.close(SHUTDOWN_GRACE));
    let mut summary = run.context("starting the inference worker threads")?;
    if let Some(counts) = display_counts {
        summary.display = counts;
        log::info!(
            "display: {} screens drawn, {} skipped, {} failed",
            counts.rendered,
            counts.skipped,
            counts.failures
        );
    }
    if let Some(counts) = log_counts {
        summary.log = counts;
    }
    Ok(summary)
}

/// The LED wiring with emotions as the model's class indices; a name that is not one of
/// `class_names` is an error before start.
fn led_layout(settings: &LedSettings, class_names: &[String]) -> anyhow::Result<Option<LedLayout>> {
    Ok(Some(match settings {
        LedSettings::None => return Ok(None),
        LedSettings::Rgb { pins, common_anode } => LedLayout::Rgb { pins: *pins, common_anode: *common_anode },
        LedSettings::PerEmotion(pins) => {
            let mut by_class = BTreeMap::new();
            for (name, &pin) in pins {
                let class = class_names.iter().position(|c| c == name).with_context(|| {
                    format!("config leds.pins.{name}: not one of the model's classes ({})", class_names.join(", "))
                })?;
                by_class.insert(class, pin);
            }
            LedLayout::PerEmotion(by_class)
        }
    }))
}

/// The LEDs on the Pi's GPIO; LEDs that cannot be claimed leave the device running
/// without them, since the log and display still work.
fn open_leds(layout: LedLayout) -> Option<Leds> {
    match RppalPins::open(&layout.pins()).and_then(|pins| Leds::new(layout, Box::new(pins))) {
        Ok(leds) => Some(leds),
        Err(err) => {
            log::error!("leds: {err}; running without them");
            None
        }
    }
}
