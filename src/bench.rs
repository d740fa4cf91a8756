//! `emotion-pi bench`: per-stage latency of the detect-and-classify pipeline.
//!
//! Numbers only; nothing here asserts a speed. Compare runs side by side on one machine.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::analyze::{Analyzer, AnalyzerSettings, ModelPaths};
use crate::bulk::classify_files::read_image;
use crate::frame::Frame;
use crate::output::ui::{draw_ui, Framebuffer, UiFace, UiState, UiStatus};

/// The image `bench` uses when none is given (present in a source checkout).
pub const DEFAULT_BENCH_IMAGE: &str = "tests/fixtures/grace_hopper.jpg";
/// Frame size the pipeline is benchmarked at, a common camera mode.
pub const BENCH_FRAME: (u32, u32) = (640, 480);

pub struct BenchOptions {
    pub image: Option<PathBuf>,
    pub iterations: usize,
}

/// Latency of one stage over all iterations, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct StageTiming {
    pub stage: &'static str,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub image: String,
    pub frame: [u32; 2],
    pub faces: usize,
    pub iterations: usize,
    pub arch: &'static str,
    pub classifier: String,
    pub stages: Vec<StageTiming>,
}

fn time_stage<T>(
    stage: &'static str,
    iterations: usize,
    mut work: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<StageTiming> {
    work()?; // warm-up: first runs allocate scratch buffers
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        std::hint::black_box(work()?);
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok(StageTiming { stage, median_ms: at(0.5), p90_ms: at(0.9), min_ms: samples[0] })
}

/// Fits `image` into a 640×480 frame (scaled, centred on gray), like a camera would frame it.
pub fn camera_frame(image: &Frame) -> Frame {
    let (w, h) = BENCH_FRAME;
    let scale = (w as f32 / image.width() as f32).min(h as f32 / image.height() as f32);
    let (sw, sh) = ((image.width() as f32 * scale) as u32, (image.height() as f32 * scale) as u32);
    let resized = image::imageops::resize(&image.rgb, sw, sh, image::imageops::FilterType::Triangle);
    let mut canvas = image::RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
    image::imageops::overlay(&mut canvas, &resized, ((w - sw) / 2) as i64, ((h - sh) / 2) as i64);
    Frame::from_rgb(canvas)
}

/// Times decode, each detector step, crop and classification on one frame.
pub fn run_bench(paths: &ModelPaths, options: &BenchOptions) -> anyhow::Result<BenchReport> {
    let image_path = options.image.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_BENCH_IMAGE));
    if !Path::new(&image_path).is_file() {
        anyhow::bail!("{}: bench image not found; pass --image FILE", image_path.display());
    }
    let analyzer = Analyzer::load(paths, AnalyzerSettings::default())?;
    let decoded = read_image(&image_path).map_err(|m| anyhow::anyhow!("{}: {m}", image_path.display()))?;
    let frame = camera_frame(&decoded);
    let detector = analyzer.detector();
    let faces = detector.detect(&frame.rgb)?;
    if faces.is_empty() {
        anyhow::bail!("{}: no face found; the bench needs an image with a face", image_path.display());
    }
    let n = options.iterations;
    let mut stages = vec![
        time_stage("decode image file", n, || read_image(&image_path).map_err(|m| anyhow::anyhow!(m)))?,
        time_stage("rgb to gray (640x480)", n, || Ok(Frame::from_rgb(frame.rgb.clone())))?,
        time_stage("detect: letterbox", n, || Ok(detector.preprocess(&frame.rgb)?))?,
    ];
    let (input, letterbox) = detector.preprocess(&frame.rgb)?;
    stages.push(time_stage("detect: inference", n, || Ok(detector.infer(input.clone())?))?);
    let (scores, regressors) = detector.infer(input)?;
    stages.push(time_stage("detect: decode+nms", n, || Ok(detector.decode(&scores, &regressors, &letterbox)))?);
    let one_face = &faces[..1];
    stages.push(time_stage("align/crop (per face)", n, || Ok(analyzer.crop_batch(&frame, one_face)))?);
    let batch = analyzer.crop_batch(&frame, one_face);
    let classifier = analyzer.classifier();
    stages.push(time_stage("classify (per face)", n, || Ok(classifier.classify_batch(&batch, one_face.len())?))?);
    stages.push(time_stage("detect+classify frame", n, || Ok(analyzer.analyze(&frame)?))?);
    let analyses = analyzer.analyze(&frame)?;
    let ui_faces: Vec<UiFace> = analyses
        .iter()
        .map(|a| {
            let (label, confidence) = a.emotion.top();
            UiFace { bbox: a.face.bbox, label, confidence, probabilities: a.emotion.probabilities.clone() }
        })
        .collect();
    let class_names = &analyzer.classifier().metadata().class_names;
    for (stage, width, height) in
        [("ui render 240x240", 240, 240), ("ui render 240x320", 240, 320), ("ui render 320x240", 320, 240)]
    {
        let mut screen = Framebuffer::new(width, height);
        let state =
            UiState { frame: Some(&frame.rgb), faces: &ui_faces, class_names, fps: 30.0, status: UiStatus::Running };
        stages.push(time_stage(stage, n, || Ok(draw_ui(&mut screen, &state)?))?);
    }
    Ok(BenchReport {
        image: image_path.display().to_string(),
        frame: [frame.width(), frame.height()],
        faces: faces.len(),
        iterations: n,
        arch: std::env::consts::ARCH,
        classifier: format!("{} ({})", paths.classifier.display(), analyzer.classifier().metadata().precision),
        stages,
    })
}

impl BenchReport {
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{} on {} ({}x{} frame, {} face(s), {} iterations)\nclassifier: {}\n\n{:<26}{:>10}{:>10}{:>10}\n",
            self.arch,
            self.image,
            self.frame[0],
            self.frame[1],
            self.faces,
            self.iterations,
            self.classifier,
            "stage",
            "median ms",
            "p90 ms",
            "min ms"
        );
        for s in &self.stages {
            text += &format!("{:<26}{:>10.3}{:>10.3}{:>10.3}\n", s.stage, s.median_ms, s.p90_ms, s.min_ms);
        }
        text
    }
}
