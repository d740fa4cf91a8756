//! Command-line interface: flags parsed by clap, then handed to the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::analyze::{Analyzer, AnalyzerSettings, ModelPaths};
use crate::bench::{run_bench, BenchOptions};
use crate::bulk::classify_files::{classify_paths, ClassifyPlan, RowFormat};
use crate::bulk::eval::{evaluate, Evaluation};
use crate::bulk::fer::{self, Usage};
use crate::bulk::frames::evaluate_frames;
use crate::bulk::outputs::check_predictions_target;
use crate::classify::{
    ClassifierSettings, CropOverrides, CropSettings, Mirror, TractClassifier, CROP_MARGIN_RANGE, CROP_OFFSET_RANGE,
};
use crate::config::{Config, ConfigError, DisplayKind, RunSettings, MIN_SCORE_RANGE};
use crate::detect::{DetectorRange, DetectorSettings};
use crate::doctor::{self, Host, Verdict};
use crate::live::device::{check_before_start, run_device};
use crate::output::serial::target_name;
use crate::report::print_report;

/// Real-time facial-expression sensor for the Raspberry Pi.
///
/// Finds faces (MediaPipe BlazeFace) and classifies each one's expression
/// (angry, disgust, fear, happy, sad, surprise, neutral) with an int8 MobileNet.
#[derive(Debug, Parser)]
#[command(name = "emotion-pi", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find faces in images and classify their expressions (one row per face).
    Classify(ClassifyArgs),
    /// Accuracy of the emotion model on FER2013 (CSV or image folders of cropped faces).
    Eval(EvalArgs),
    /// The device's main job: camera in, emotions out (serial log), until stopped.
    Run(RunArgs),
    /// Per-stage latency of decode, detect, crop, classify and drawing on this machine.
    Bench(BenchArgs),
    /// What the device sees: cameras, SPI, GPIO, serial ports, groups, models; with fixes.
    Doctor(DoctorArgs),
}

/// Flags of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Config file whose camera and serial port to check [default: as for `run`].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub models: ModelArgs,
}

/// Flags of `run`; each overrides its key in the config file.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file [default: /etc/emotion-pi/config.toml if present, else built-in defaults].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Frames from /dev/videoN (or v4l2:PATH), stdin:yuv420:WxH (raw frames on standard input),
    /// or an image file or folder [config: source.uri].
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Replay an image folder source forever instead of ending after the last image [config: source.loop].
    #[arg(long = "loop")]
    pub loop_images: bool,
    /// Camera frame rate; for image sources, playback rate, 0 = as fast as possible [config: source.fps].
    #[arg(long, value_name = "FPS")]
    pub fps: Option<u32>,
    /// Emotion log target: a serial device, stdout, none, or a file path [config: serial.port].
    #[arg(long, value_name = "PORT|stdout|none|FILE")]
    pub serial: Option<String>,
    /// Serial baud rate (8N1) [config: serial.baud].
    #[arg(long, value_name = "BAUD")]
    pub baud: Option<u32>,
    /// Display: none, png:DIR to save the screens as PNG files, st7789 or ili9341 [config: display.kind].
    #[arg(long, value_name = "KIND")]
    pub display: Option<DisplayKind>,
    /// Run face detection on every Nth frame [config: detect.every].
    #[arg(long, value_name = "N")]
    pub detect_every: Option<u32>,
    /// Detect each face a second time in a window around it, for a better crop (one more
    /// detector run per face and frame) [config: detect.refine].
    #[arg(long)]
    pub refine: bool,
    /// Frames analysed at once, each on its own thread; 0 = one per CPU core [config: inference.workers].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Stop after this many processed frames.
    #[arg(long, value_name = "N")]
    pub max_frames: Option<u64>,
    /// Print the settings in effect and exit without starting.
    #[arg(long)]
    pub check_config: bool,
    #[command(flatten)]
    pub models: ModelArgs,
}

impl RunArgs {
    /// The checked settings of the config file with these flags applied on top; an error
    /// in a value a flag gave names the flag, not the file.
    fn settings(&self) -> Result<RunSettings, ConfigError> {
        let (mut config, path) = Config::load(self.config.as_deref())?;
        // Each flag given, with the config key it overrides.
        let mut given: Vec<(&str, &'static str)> = Vec::new();
        if let Some(source) = &self.source {
            config.source.uri = source.clone();
            given.push(("source.uri", "--source"));
        }
        if self.loop_images {
            config.source.loop_images = true;
        }
        if let Some(fps) = self.fps {
            config.source.fps = fps;
            given.push(("source.fps", "--fps"));
        }
        if let Some(serial) = &self.serial {
            config.serial.port = serial.clone();
            given.push(("serial.port", "--serial"));
        }
        if let Some(baud) = self.baud {
            config.serial.baud = baud;
            given.push(("serial.baud", "--baud"));
        }
        if let Some(display) = &self.display {
            config.display.kind = display.clone();
            given.push(("display.kind", "--display"));
        }
        if let Some(every) = self.detect_every {
            config.detect.every = every;
            given.push(("detect.every", "--detect-every"));
        }
        if self.refine {
            config.detect.refine = true;
        }
        if let Some(workers) = self.workers {
            config.inference.workers = workers;
            given.push(("inference.workers", "--workers"));
        }
        if let Some(mirror) = self.models.mirror {
            config.classify.mirror = mirror;
        }
        if let Some(range) = self.models.detector_range {
            config.detect.range = range;
        }
        config.settings(&path).map_err(|err| given.iter().fold(err, |err, &(key, flag)| err.blame_flag(key, flag)))
    }
}

/// Which models to use.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Folder holding the shipped models [default: $EMOTION_PI_MODELS, ./models, or the installed copy].
    #[arg(long, value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Emotion model file, overriding the one in the models folder.
    #[arg(long, value_name = "FILE")]
    pub emotion_model: Option<PathBuf>,
    /// Which shipped face detector: short (faces near the camera) or long (smaller faces,
    /// further away; several times the detector's work, README "Near or far") [default: short] [config: detect.range].
    #[arg(long, value_enum, value_name = "RANGE")]
    pub detector_range: Option<DetectorRange>,
    /// Face detector model file, overriding the one in the models folder: a BlazeFace whose
    /// input size (128 or 256) says which range it is.
    #[arg(long, value_name = "FILE")]
    pub detector_model: Option<PathBuf>,
    /// When each face is averaged with its mirror image: always (two classifier passes per
    /// face), off (one pass, about 1.5 points less accurate on FER2013) or alternate (still
    /// pictures and new faces as always; faces the live loop tracks one pass per frame,
    /// face and mirror image in turn, averaged by the tracker) [default: alternate] [config: classify.mirror].
    #[arg(long, value_enum, value_name = "MODE")]
    pub mirror: Option<Mirror>,
}

impl ModelArgs {
    /// The models to use with `settings`: `--models` and `--detector-range` win over
    /// `models.dir` and `detect.range` of the config.
    fn paths_for(&self, settings: &RunSettings) -> ModelPaths {
        ModelArgs {
            models: self.models.clone().or_else(|| settings.models_dir.clone()),
            detector_range: self.detector_range.or(Some(settings.detector_range)),
            ..self.clone()
        }
        .paths()
    }

    /// How the classifier scores faces when no config applies.
    fn classifier_settings(&self) -> ClassifierSettings {
        ClassifierSettings { mirror: self.mirror.unwrap_or_default() }
    }

    fn paths(&self) -> ModelPaths {
        let dir = self.models.clone().unwrap_or_else(ModelPaths::default_dir);
        let mut paths = ModelPaths::in_dir(&dir, self.detector_range.unwrap_or_default());
        if let Some(p) = &self.emotion_model {
            paths.classifier = p.clone();
        }
        if let Some(p) = &self.detector_model {
            paths.detector = p.clone();
        }
        paths
    }
}

/// Detection and crop tuning.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Minimum face detection score, 0..1 [default: MediaPipe's for the detector: 0.5 short
    /// range, 0.65 long range].
    #[arg(long, value_parser = min_face_score)]
    pub min_face_score: Option<f32>,
    /// Detect each face found a second time, in a window twice its size, for a box that frames
    /// it better: about a point more accurate on whole frames, one more detector run per face
    /// (README "Near or far") [config: detect.refine].
    #[arg(long)]
    pub refine: bool,
    /// Extra context around each face box for the classifier crop (0.1 = 10% larger), -0.5..2
    /// [default: the emotion model's, from its metadata, else 0.1].
    #[arg(long, value_parser = crop_margin)]
    pub crop_margin: Option<f32>,
}

impl DetectArgs {
    fn settings(&self) -> AnalyzerSettings {
        AnalyzerSettings {
            detector: DetectorSettings {
                min_score: self.min_face_score,
                refine: self.refine,
                ..DetectorSettings::default()
            },
            crop: CropOverrides { margin: self.crop_margin, ..CropOverrides::default() },
            classifier: ClassifierSettings::default(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Image files (jpg, png, bmp) and folders (searched recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// JSON lines instead of CSV.
    #[arg(long)]
    pub json: bool,
    /// Also write copies with boxes and labels drawn into DIR (mirroring folder structure).
    #[arg(long, value_name = "DIR")]
    pub annotate: Option<PathBuf>,
    #[command(flatten)]
    pub models: ModelArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// FER2013 CSV (plain or .gz) or an image-folder root (`train|test/<class>/*.jpg`).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Which rows of the CSV (Training, PublicTest, PrivateTest); folders use train/ or test/.
    #[arg(long, value_enum, default_value = "PublicTest")]
    pub usage: Usage,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write each face's true and predicted class as CSV (row,label,predicted), in input order.
    #[arg(long, value_name = "FILE", conflicts_with = "frames")]
    pub predictions: Option<PathBuf>,
    #[command(flatten)]
    pub frames: FramesArgs,
    #[command(flatten)]
    pub models: ModelArgs,
    /// With --frames: detection and crop tuning.
    #[command(flatten)]
    pub detect: DetectArgs,
}

/// `eval --frames`: the faces placed into whole frames and run through the whole pipeline.
#[derive(Debug, Args)]
pub struct FramesArgs {
    /// Place each face in its own 640x480 frame (size 64-240 px, tilt up to 15 degrees, contrast,
    /// brightness and background at random) and run detect, crop and classify as the device
    /// does; reported beside `eval` on the same crops.
    #[arg(long)]
    pub frames: bool,
    /// Seed of the frames: the same seed gives the same frames.
    #[arg(long, default_value_t = 1, requires = "frames")]
    pub seed: u64,
    /// Crop margins to compare on the same frames (comma-separated) [default: the model's].
    #[arg(long, value_delimiter = ',', value_name = "LIST", requires = "frames", value_parser = crop_margin)]
    pub sweep_margin: Vec<f32>,
    /// Vertical offsets of the crop centre to compare, in box sides, -0.5..0.5 [default: the model's].
    #[arg(long, value_delimiter = ',', value_name = "LIST", requires = "frames", value_parser = crop_offset)]
    pub sweep_offset_y: Vec<f32>,
    /// Eye levelling to compare: true, false or true,false [default: the model's].
    #[arg(long, value_delimiter = ',', value_name = "LIST", requires = "frames")]
    pub sweep_upright: Vec<bool>,
    /// Also place each face in a second frame, moved a little as between two camera frames,
    /// and compare the mirror modes on it (what `classify.mirror = alternate` costs a moving
    /// face).
    #[arg(long, requires = "frames")]
    pub motion: bool,
}

impl FramesArgs {
    /// Every combination of the swept values, `base` filling the parts not swept.
    fn geometries(&self, base: CropSettings) -> Vec<CropSettings> {
        let or_base = |values: &[f32], base: f32| if values.is_empty() { vec![base] } else { values.to_vec() };
        let margins = or_base(&self.sweep_margin, base.margin);
        let offsets = or_base(&self.sweep_offset_y, base.offset_y);
        let uprights = if self.sweep_upright.is_empty() { vec![base.upright] } else { self.sweep_upright.clone() };
        let mut geometries = Vec::new();
        for &upright in &uprights {
            for &offset_y in &offsets {
                for &margin in &margins {
                    geometries.push(CropSettings { margin, offset_y, upright });
                }
            }
        }
        geometries
    }
}

/// Flags of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Picture to run the pipeline on, framed at 640x480 [default: a portrait built into the program].
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// Timed repetitions per stage.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub iterations: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub models: ModelArgs,
}

/// A number within `range`, for a flag.
fn number_in(text: &str, range: std::ops::RangeInclusive<f32>) -> Result<f32, String> {
    let v: f32 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside {}..{}", range.start(), range.end()))
    }
}

fn min_face_score(text: &str) -> Result<f32, String> {
    number_in(text, MIN_SCORE_RANGE)
}

fn crop_margin(text: &str) -> Result<f32, String> {
    number_in(text, CROP_MARGIN_RANGE)
}

fn crop_offset(text: &str) -> Result<f32, String> {
    number_in(text, CROP_OFFSET_RANGE)
}

fn progress_bar() -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} (eta {eta})") {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// Runs the parsed command; the exit code is 1 when any input failed.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Classify(args) => {
            // Before the models load: a refused output costs the user no wait.
            let plan = ClassifyPlan::new(&args.paths, args.annotate.as_deref())?;
            let settings = AnalyzerSettings { classifier: args.models.classifier_settings(), ..args.detect.settings() };
            let analyzer = Analyzer::load(&args.models.paths(), settings)?;
            let format = if args.json { RowFormat::JsonLines } else { RowFormat::Csv };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let summary =
                classify_paths(&analyzer, &plan, format, &mut out, &progress_bar()).context("writing results")?;
            log::info!(
                "{} files: {} faces, {} without a face, {} failed",
                summary.files,
                summary.faces,
                summary.without_face,
                summary.failed
            );
            if summary.failed > 0 {
                eprintln!(
                    "emotion-pi: {} of {} files could not be classified (see rows with status error)",
                    summary.failed, summary.files
                );
            }
            if summary.annotate_failed > 0 {
                eprintln!(
                    "emotion-pi: {} annotated copies could not be written (their results are in the output)",
                    summary.annotate_failed
                );
            }
            if summary.failed > 0 || summary.annotate_failed > 0 {
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(args) => {
            if let Some(path) = &args.predictions {
                check_predictions_target(path, &args.path)?;
            }
            if args.frames.frames {
                return eval_frames(&args);
            }
            let classifier = TractClassifier::load(&args.models.paths().classifier, args.models.classifier_settings())?;
            let faces = fer::load(&args.path, args.usage)?;
            if faces.is_empty() {
                anyhow::bail!("{}: no {:?} faces to evaluate", args.path.display(), args.usage);
            }
            let Evaluation { report, predictions } = evaluate(&classifier, &faces, &progress_bar())?;
            // The report first: a predictions file that cannot be written must not lose it.
            print_report(&report, args.json)?;
            if let Some(path) = &args.predictions {
                write_predictions(path, &faces, &predictions, &classifier.metadata().class_names)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run_command(&args),
        Command::Doctor(args) => {
            let (config, path) = Config::load(args.config.as_deref())?;
            let settings = config.settings(&path)?;
            println!("config: {}", if path.exists() { path.display().to_string() } else { "built-in defaults".into() });
            let findings = doctor::examine(&Host::this_machine(), &settings, &args.models.paths_for(&settings));
            for finding in &findings {
                println!("{finding}");
            }
            let count = |v: Verdict| findings.iter().filter(|f| f.verdict == v).count();
            let problems = count(Verdict::Problem);
            println!("{problems} problems, {} warnings", count(Verdict::Warning));
            Ok(if problems > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Bench(args) => {
            let options = BenchOptions {
                image: args.image,
                iterations: args.iterations as usize,
                classifier: args.models.classifier_settings(),
            };
            print_report(&run_bench(&args.models.paths(), &options)?, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `eval --frames`: `eval` on the crops, then the same faces in whole frames per crop geometry.
fn eval_frames(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let settings = AnalyzerSettings { classifier: args.models.classifier_settings(), ..args.detect.settings() };
    let analyzer = Analyzer::load(&args.models.paths(), settings)?;
    let faces = fer::load(&args.path, args.usage)?;
    if faces.is_empty() {
        anyhow::bail!("{}: no {:?} faces to evaluate", args.path.display(), args.usage);
    }
    let crops = evaluate(analyzer.classifier(), &faces, &progress_bar())?;
    let geometries = args.frames.geometries(analyzer.crop());
    let report = evaluate_frames(
        &analyzer,
        &faces,
        args.frames.seed,
        &geometries,
        args.frames.motion,
        &crops.predictions,
        &progress_bar(),
    )?;
    print_report(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// `row,label,predicted` per face; labels are FER2013 names, predictions the model's.
fn write_predictions(
    path: &Path,
    faces: &[fer::LabelledFace],
    predicted: &[usize],
    names: &[String],
) -> anyhow::Result<()> {
    crate::fs_safety::write_atomically(path, |file| {
        let mut out = csv::Writer::from_writer(file);
        out.write_record(["row", "label", "predicted"])?;
        for (row, (face, &class)) in faces.iter().zip(predicted).enumerate() {
            let predicted_name = names.get(class).map_or("?", String::as_str);
            out.write_record([row.to_string().as_str(), fer::FER_CLASSES[face.label], predicted_name])?;
        }
        out.flush()
    })?;
    Ok(())
}

/// `emotion-pi run`: checks the settings, then runs until the source ends or SIGINT/SIGTERM.
/// The exit code is 1 when log lines were computed but never delivered.
fn run_command(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let settings = args.settings()?;
    let models = args.models.paths_for(&settings);
    if args.check_config {
        check_before_start(&settings, &models)?;
        println!("{settings:#?}\n{models:#?}");
        return Ok(ExitCode::SUCCESS);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first signal asks for a clean stop; a second one while stopping exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, stop.clone()))
            .context("installing the signal handlers")?;
    }
    let summary = run_device(&settings, &models, args.max_frames, &stop, &mut |_| {})?;
    let log = summary.log;
    log::info!(
        "stopped after {} frames ({:.1} FPS): {} dropped, {} corrupt, {} camera failures; \
         log: {} written, {} dropped, {} undelivered",
        summary.frames,
        summary.fps,
        summary.capture.dropped,
        summary.capture.corrupt,
        summary.capture.failures,
        log.written,
        log.dropped,
        log.undelivered
    );
    // A reader that closed the pipe chose to stop reading: that ends the run cleanly.
    if log.lost() > 0 && !log.reader_gone {
        eprintln!(
            "emotion-pi: {} log lines were not delivered to {} ({} dropped with the queue full, {} still queued at stop)",
            log.lost(),
            target_name(&settings.serial),
            log.dropped,
            log.undelivered
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
