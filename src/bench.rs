//! `emotion-pi bench`: per-stage latency of the detect-and-classify pipeline.
//!
//! Numbers only; nothing here asserts a speed. Compare runs side by side on one machine.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::analyze::{Analyzer, AnalyzerSettings, ModelPaths};
use crate::bulk::classify_files::read_image;
use crate::frame::Frame;
use crate::kernel_choice::KernelChoice;
use crate::output::panel::bands::PanelWriter;
use crate::output::panel::driver::{init_panel, Controller, PanelGeometry};
use crate::output::panel::fake_bus::{FakeBus, FakePin, NoDelay};
use crate::output::panel::interface::SPIDEV_CHUNK;
use crate::output::ui::{draw_ui, Framebuffer, UiFace, UiState, UiStatus};
use crate::profile::{profile_plan, ModelProfile};

/// The image `bench` uses when none is given (present in a source checkout).
pub const DEFAULT_BENCH_IMAGE: &str = "tests/fixtures/grace_hopper.jpg";
/// Frame size the pipeline is benchmarked at, a common camera mode.
pub const BENCH_FRAME: (u32, u32) = (640, 480);

pub struct BenchOptions {
    pub image: Option<PathBuf>,
    pub iterations: usize,
    /// Who picks the emotion model's matrix-product kernels.
    pub kernels: KernelChoice,
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
    pub panels: Vec<PanelTraffic>,
}

/// SPI traffic of one screen size, counted through the real panel driver on a
/// recording bus.
#[derive(Debug, Clone, Serialize)]
pub struct PanelTraffic {
    pub screen: String,
    pub controller: String,
    /// The first screen, sent whole.
    pub full_frame_bytes: usize,
    /// Mean over screens whose camera picture changes every frame (bars and status do not).
    pub bytes_per_frame: f64,
    /// What `bytes_per_frame` takes at the default 40 MHz SPI clock (computed, 8 bits a byte).
    pub spi_ms_at_40mhz: f64,
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
    let analyzer = Analyzer::load(paths, AnalyzerSettings { kernels: options.kernels, ..AnalyzerSettings::default() })?;
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
    let mirrored = image::imageops::flip_horizontal(&frame.rgb);
    let mut panels = Vec::new();
    for (controller, width, height, rotation) in
        [(Controller::St7789, 240, 240, 0), (Controller::Ili9341, 240, 320, 0), (Controller::Ili9341, 320, 240, 90)]
    {
        let frames = [&frame.rgb, &mirrored];
        panels.push(panel_traffic(controller, width, height, rotation, &frames, &ui_faces, class_names)?);
    }
    Ok(BenchReport {
        image: image_path.display().to_string(),
        frame: [frame.width(), frame.height()],
        faces: faces.len(),
        iterations: n,
        arch: std::env::consts::ARCH,
        classifier: {
            let meta = analyzer.classifier().metadata();
            let kernels = match analyzer.classifier().kernel_report() {
                None => "kernels picked by tract".to_owned(),
                Some(k) => match k.timings {
                    Some(t) => format!(
                        "kernels measured at load: {} candidates, {} runs each, {} product shapes, products {:.0} us with tract's picks, {:.0} us with the fastest",
                        k.candidates,
                        t.runs,
                        k.chosen.len(),
                        t.tract_us,
                        t.chosen_us
                    ),
                    None => format!("one kernel for all {} product shapes, nothing to measure", k.chosen.len()),
                },
            };
            format!("{} ({}; {}; {kernels})", paths.classifier.display(), meta.precision, meta.test_time)
        },
        stages,
        panels,
    })
}

/// Profiles the detector and the emotion model node by node over `runs` runs each.
pub fn run_profile(paths: &ModelPaths, runs: usize, kernels: KernelChoice) -> anyhow::Result<Vec<ModelProfile>> {
    let analyzer = Analyzer::load(paths, AnalyzerSettings { kernels, ..AnalyzerSettings::default() })?;
    Ok(vec![
        profile_plan(&paths.detector, analyzer.detector().plan(), runs)?,
        profile_plan(&paths.classifier, analyzer.classifier().plan(), runs)?,
    ])
}

/// Renders 60 screens alternating between `frames` and counts what goes over SPI.
fn panel_traffic(
    controller: Controller,
    width: u16,
    height: u16,
    rotation: u16,
    frames: &[&image::RgbImage],
    faces: &[UiFace],
    class_names: &[String],
) -> anyhow::Result<PanelTraffic> {
    const SCREENS: usize = 60;
    let bus = FakeBus::new(false);
    let geometry =
        PanelGeometry { controller, width, height, rotation, invert: false, bgr: false, offset_x: 0, offset_y: 0 };
    let driver = init_panel(&geometry, bus.spi(), bus.dc_pin(), None::<FakePin>, SPIDEV_CHUNK, &mut NoDelay)
        .map_err(|err| anyhow::anyhow!(err))?;
    let mut writer = PanelWriter::new(driver);
    let mut screen = Framebuffer::new(u32::from(width), u32::from(height));
    let mut sent = Vec::with_capacity(SCREENS);
    for index in 0..SCREENS {
        let state = UiState {
            frame: Some(frames[index % frames.len()]),
            faces,
            class_names,
            fps: 30.0,
            status: UiStatus::Running,
        };
        draw_ui(&mut screen, &state)?;
        bus.take_byte_count();
        writer.push(&screen).map_err(|err| anyhow::anyhow!(err))?;
        sent.push(bus.take_byte_count());
    }
    let steady = &sent[1..];
    let bytes_per_frame = steady.iter().sum::<usize>() as f64 / steady.len() as f64;
    Ok(PanelTraffic {
        screen: format!("{width}x{height}"),
        controller: format!("{controller:?}"),
        full_frame_bytes: sent[0],
        bytes_per_frame,
        spi_ms_at_40mhz: bytes_per_frame * 8.0 / 40e6 * 1e3,
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
        text += &format!(
            "\n{:<10}{:<10}{:>14}{:>16}{:>14}\n",
            "screen", "panel", "first frame B", "per frame B", "SPI ms @40MHz"
        );
        for p in &self.panels {
            text += &format!(
                "{:<10}{:<10}{:>14}{:>16.0}{:>14.2}\n",
                p.screen, p.controller, p.full_frame_bytes, p.bytes_per_frame, p.spi_ms_at_40mhz
            );
        }
        text
    }
}
