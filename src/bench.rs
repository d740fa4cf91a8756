//! `emotion-pi bench`: per-stage latency of the detect-and-classify pipeline on the
//! machine it runs on, a Pi or a PC.
//!
//! Numbers only; nothing here asserts a speed. Compare runs side by side on one machine.
//! The longer benchmarks (the whole live loop, soak, per-node profiles, SPI traffic) are
//! in the workbench, `crates/lab`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tract_onnx::prelude::TypedRunnableModel;

use crate::analyze::{Analyzer, AnalyzerSettings, ModelPaths};
use crate::bulk::classify_files::{decode_image, read_image};
use crate::classify::ClassifierSettings;
use crate::frame::Frame;
use crate::output::ui::{draw_ui, Framebuffer, UiFace, UiState, UiStatus};
use crate::report::Report;

/// The picture `bench` uses when none is given: a public-domain portrait (see
/// `tests/fixtures`), built into the binary so the benchmark runs on an installed device.
pub const BUILT_IN_PICTURE: &[u8] = include_bytes!("../tests/fixtures/grace_hopper.jpg");
/// How reports name [`BUILT_IN_PICTURE`].
pub const BUILT_IN_PICTURE_NAME: &str = "built-in portrait (grace_hopper.jpg)";
/// Frame size the pipeline is benchmarked at, a common camera mode.
pub const BENCH_FRAME: (u32, u32) = (640, 480);

/// What `bench` runs on and how often.
pub struct BenchOptions {
    /// The picture; `None` for [`BUILT_IN_PICTURE`].
    pub image: Option<PathBuf>,
    /// Timed repetitions per stage.
    pub iterations: usize,
    /// How the classifier scores each face.
    pub classifier: ClassifierSettings,
}

/// Latency of one stage over all iterations, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct StageTiming {
    pub stage: &'static str,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
}

/// What `bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The picture's file, or [`BUILT_IN_PICTURE_NAME`].
    pub image: String,
    pub frame: [u32; 2],
    pub faces: usize,
    pub iterations: usize,
    pub arch: &'static str,
    /// The emotion model's file, precision and test-time processing.
    pub classifier: String,
    /// How many times the emotion graph runs per face of a still picture (or new to the live
    /// loop): 2 when this runtime adds the mirror image.
    pub graph_runs_per_face: usize,
    /// How many times it runs per frame for a face the live loop already tracks.
    pub graph_runs_per_tracked_face: usize,
    /// The matrix-product kernels tract picked for this CPU, per model: kernel name → products.
    pub kernels: BTreeMap<String, BTreeMap<String, usize>>,
    pub stages: Vec<StageTiming>,
}

/// The matrix-product kernels in `plan` with the number of products each runs. tract
/// describes a product as e.g. `Mult: m:576 k:16 n:96 with [arm64simd_mmm_f32_8x8_gen]`.
fn product_kernels(plan: &TypedRunnableModel) -> BTreeMap<String, usize> {
    let mut kernels = BTreeMap::new();
    for node in &plan.model().nodes {
        for line in node.op.info().unwrap_or_default() {
            let Some((_, after)) = line.split_once(" with [") else { continue };
            if let Some((kernel, _)) = after.split_once(']') {
                *kernels.entry(kernel.to_owned()).or_insert(0) += 1;
            }
        }
    }
    kernels
}

/// The bench picture: `path`, or the built-in portrait.
pub fn bench_picture(path: Option<&Path>) -> anyhow::Result<(Frame, String)> {
    match path {
        Some(path) => {
            let decoded = read_image(path).map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
            Ok((decoded, path.display().to_string()))
        }
        None => {
            let decoded =
                decode_image(BUILT_IN_PICTURE).map_err(|m| anyhow::anyhow!("{BUILT_IN_PICTURE_NAME}: {m}"))?;
            Ok((decoded, BUILT_IN_PICTURE_NAME.to_owned()))
        }
    }
}

/// A model's file name, as the report's key.
fn model_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned())
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
    // Models first: tools/arm_cost.sh counts the load up to the picture's first read.
    let analyzer =
        Analyzer::load(paths, AnalyzerSettings { classifier: options.classifier, ..AnalyzerSettings::default() })?;
    let (decoded, image_name) = bench_picture(options.image.as_deref())?;
    let frame = camera_frame(&decoded);
    let detector = analyzer.detector();
    let faces = detector.detect(&frame.rgb)?;
    if faces.is_empty() {
        anyhow::bail!("{image_name}: no face found; the bench needs an image with a face");
    }
    let n = options.iterations;
    let decode = || match &options.image {
        Some(path) => read_image(path).map_err(|m| anyhow::anyhow!(m)),
        None => decode_image(BUILT_IN_PICTURE).map_err(|m| anyhow::anyhow!(m)),
    };
    let mut stages = vec![
        time_stage("decode image file", n, decode)?,
        time_stage("rgb to gray (640x480)", n, || Ok(Frame::from_rgb(frame.rgb.clone())))?,
        time_stage("detect: letterbox", n, || Ok(detector.preprocess(&frame.rgb)?))?,
    ];
    let (input, letterbox) = detector.preprocess(&frame.rgb)?;
    stages.push(time_stage("detect: inference", n, || Ok(detector.infer(input.clone())?))?);
    let (scores, regressors) = detector.infer(input)?;
    stages.push(time_stage("detect: decode+nms", n, || Ok(detector.decode(&scores, &regressors, &letterbox)))?);
    let first = &faces[0];
    stages.push(time_stage("detect: refine (per face)", n, || Ok(detector.refine(&frame.rgb, first.clone())?))?);
    let one_face = &faces[..1];
    stages.push(time_stage("align/crop (per face)", n, || Ok(analyzer.crop_batch(&frame, one_face)))?);
    let batch = analyzer.crop_batch(&frame, one_face);
    let classifier = analyzer.classifier();
    stages.push(time_stage("classify (per face)", n, || Ok(classifier.classify_batch(&batch, one_face.len())?))?);
    // A face the live loop already tracks is scored on the images `classify.mirror` gives it
    // from its second detection on (one, with `alternate`).
    let tracked = classifier.mirror().views(Some(0));
    stages.push(time_stage("classify (tracked face)", n, || Ok(classifier.classify_views(&batch, &[tracked])?))?);
    stages.push(time_stage("detect+classify frame", n, || Ok(analyzer.analyze(&frame)?))?);
    stages.push(time_stage("detect+classify frame (tracked face)", n, || {
        let faces = detector.detect(&frame.rgb)?;
        Ok(classifier.classify_views(&analyzer.crop_batch(&frame, &faces), &vec![tracked; faces.len()])?)
    })?);
    let analyses = analyzer.analyze(&frame)?;
    let ui_faces: Vec<UiFace> = analyses.iter().map(UiFace::from).collect();
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
        image: image_name,
        frame: [frame.width(), frame.height()],
        faces: faces.len(),
        iterations: n,
        arch: std::env::consts::ARCH,
        classifier: {
            let classifier = analyzer.classifier();
            format!(
                "{} ({}; {}; mirror {})",
                paths.classifier.display(),
                classifier.metadata().precision,
                classifier.scoring(),
                classifier.mirror()
            )
        },
        graph_runs_per_face: analyzer.classifier().graph_runs_per_face(),
        graph_runs_per_tracked_face: tracked.passes(),
        kernels: BTreeMap::from([
            (model_name(&paths.detector), product_kernels(analyzer.detector().plan())),
            (model_name(&paths.classifier), product_kernels(analyzer.classifier().plan())),
        ]),
        stages,
    })
}

impl Report for BenchReport {
    fn to_text(&self) -> String {
        let mut text = format!(
            "{} on {} ({}x{} frame, {} face(s), {} iterations)\nclassifier: {}\n\n{:<38}{:>10}{:>10}{:>10}\n",
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
            text += &format!("{:<38}{:>10.3}{:>10.3}{:>10.3}\n", s.stage, s.median_ms, s.p90_ms, s.min_ms);
        }
        text += "\nmatrix-product kernels tract picked for this CPU:\n";
        for (model, kernels) in &self.kernels {
            let used: Vec<String> = kernels.iter().map(|(kernel, n)| format!("{kernel} x{n}")).collect();
            text += &format!("  {model}: {}\n", used.join(", "));
        }
        text
    }
}
