//! `emotion-pi-lab live`: the whole live loop on a looped image folder, printing
//! sustained frame rate, per-stage latency and whether memory stays flat.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use serde::Serialize;

use emotion_pi::analyze::ModelPaths;
use emotion_pi::bench::{bench_picture, camera_frame};
use emotion_pi::config::{Config, SerialTarget};
use emotion_pi::live::device::run_device;
use emotion_pi::live::stats::StageSummary;
use emotion_pi::report::Report;

/// Frame at which the baseline resident memory is taken: by then buffers and caches are warm.
pub const RSS_BASELINE_FRAME: u64 = 1000;

/// What the live benchmark loops and for how long.
pub struct LiveBenchOptions {
    /// Folder or image to loop; default: the bench portrait framed at 640×480.
    pub source: Option<PathBuf>,
    pub frames: u64,
    /// Frames analysed at once (`inference.workers`; 0 = one per CPU core).
    pub workers: usize,
}

/// What the live benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct LiveBenchReport {
    pub source: String,
    pub frames: u64,
    /// Worker threads that analysed the frames.
    pub workers: usize,
    pub detections: u64,
    /// Runs of the emotion graph (two for a face scored with its mirror image).
    pub classifier_passes: u64,
    pub seconds: f64,
    pub fps: f64,
    pub dropped: u64,
    pub log_lines: u64,
    /// Resident memory at [`RSS_BASELINE_FRAME`] (0 when the run was shorter) and at the end, KiB.
    pub rss_baseline_kib: u64,
    pub rss_end_kib: u64,
    pub rss_growth_percent: f64,
    pub stages: StageSummary,
}

/// Resident set size of this process in KiB (Linux), 0 where unknown.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// How much `to` exceeds `from`, in percent; 0 when `from` is unknown (0).
pub fn growth_percent(from: u64, to: u64) -> f64 {
    if from > 0 {
        (to as f64 / from as f64 - 1.0) * 100.0
    } else {
        0.0
    }
}

/// Writes the built-in bench portrait framed as a 640×480 camera frame into `dir`
/// (created) and returns `dir`, a folder source for the loop benchmarks.
pub fn write_bench_frame(dir: &Path) -> anyhow::Result<PathBuf> {
    let (decoded, _) = bench_picture(None)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let frame_path = dir.join("frame.png");
    camera_frame(&decoded).rgb.save(&frame_path).with_context(|| format!("writing {}", frame_path.display()))?;
    Ok(dir.to_owned())
}

/// Runs the loop for `options.frames` frames with detection on every frame and the log
/// written to /dev/null, so formatting and the writer thread are part of the measurement.
pub fn run_live_bench(models: &ModelPaths, options: &LiveBenchOptions) -> anyhow::Result<LiveBenchReport> {
    let scratch = std::env::temp_dir().join(format!("emotion-pi-bench-{}", std::process::id()));
    let source = match &options.source {
        Some(path) => path.clone(),
        None => write_bench_frame(&scratch)?,
    };
    let mut config = Config::default();
    config.source.uri = source.display().to_string();
    config.source.loop_images = true;
    config.source.fps = 0;
    config.serial.heartbeat_secs = 1.0;
    config.inference.workers = options.workers;
    let mut settings = config.settings(Path::new("(bench)"))?;
    settings.serial = SerialTarget::File(PathBuf::from("/dev/null"));
    let mut rss_baseline = 0;
    let stop = AtomicBool::new(false);
    let result = run_device(&settings, models, Some(options.frames), &stop, &mut |report| {
        if report.frame.index + 1 == RSS_BASELINE_FRAME {
            rss_baseline = rss_kib();
        }
    });
    let rss_end = rss_kib();
    if options.source.is_none() {
        // Best effort: a leftover scratch folder in /tmp is harmless.
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let summary = result?;
    let growth = growth_percent(rss_baseline, rss_end);
    Ok(LiveBenchReport {
        source: source.display().to_string(),
        frames: summary.frames,
        workers: settings.workers,
        detections: summary.detections,
        classifier_passes: summary.classifier_passes,
        seconds: summary.seconds,
        fps: summary.fps,
        dropped: summary.capture.dropped,
        log_lines: summary.log.written,
        rss_baseline_kib: rss_baseline,
        rss_end_kib: rss_end,
        rss_growth_percent: growth,
        stages: summary.stages,
    })
}

impl Report for LiveBenchReport {
    fn to_text(&self) -> String {
        let memory = if self.frames >= RSS_BASELINE_FRAME {
            format!(
                "RSS at frame {RSS_BASELINE_FRAME}: {} KiB, at the end: {} KiB ({:+.2}%)",
                self.rss_baseline_kib, self.rss_end_kib, self.rss_growth_percent
            )
        } else {
            format!("RSS at the end: {} KiB (growth is measured from frame {RSS_BASELINE_FRAME} on)", self.rss_end_kib)
        };
        let mut text = format!(
            "live loop on {} with {} worker(s): {} frames ({} detections, {} classifier passes) in {:.1} s = \
             {:.1} FPS sustained, {} log lines\n{memory}\n\n{:<10}{:>10}{:>10}{:>10}\n",
            self.source,
            self.workers,
            self.frames,
            self.detections,
            self.classifier_passes,
            self.seconds,
            self.fps,
            self.log_lines,
            "stage",
            "count",
            "p50 ms",
            "p99 ms"
        );
        let s = &self.stages;
        for (name, p) in [
            ("capture", s.capture),
            ("detect", s.detect),
            ("crop", s.crop),
            ("classify", s.classify),
            ("track", s.track),
            ("total", s.total),
            ("latency", s.latency),
        ] {
            text += &format!("{:<10}{:>10}{:>10.3}{:>10.3}\n", name, p.count, p.p50_ms, p.p99_ms);
        }
        text
    }
}
