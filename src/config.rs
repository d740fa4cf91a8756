//! The device's settings: one TOML file, every key optional, checked before start.
//!
//! `config.example.toml` at the repository root documents every key with its default.
//! Unknown keys and out-of-range values are errors that name the key (and, for syntax
//! errors, the line), so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::capture::convert::YuvRange;
use crate::capture::source::{SourceSpec, SpecError};
use crate::classify::{ClassifierSettings, CropOverrides, Mirror, CROP_MARGIN_RANGE};
use crate::detect::DetectorRange;
use crate::output::display::DisplayTarget;
use crate::output::panel::driver::{Controller, PanelGeometry};
use crate::output::panel::linux::PanelWiring;
use crate::track::TrackerSettings;

/// Where the config is read from when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/emotion-pi/config.toml";

/// Allowed minimum face detection scores (`detect.min_score`, `--min-face-score`).
pub const MIN_SCORE_RANGE: RangeInclusive<f32> = 0.0..=1.0;

/// `display.kind` (and `run --display`): where screens go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum DisplayKind {
    /// `none`: headless.
    None,
    /// `png:DIR`: the simulator, screens saved as PNG files in DIR.
    Png(PathBuf),
    /// `st7789` or `ili9341`: an SPI panel wired as the other `[display]` keys say.
    Panel(Controller),
}

/// A `display.kind` that is none of the kinds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a display: expected none, png:DIR, st7789 or ili9341")]
pub struct UnknownDisplayKind(String);

impl FromStr for DisplayKind {
    type Err = UnknownDisplayKind;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "none" => Ok(Self::None),
            "st7789" => Ok(Self::Panel(Controller::St7789)),
            "ili9341" => Ok(Self::Panel(Controller::Ili9341)),
            _ => match text.strip_prefix("png:") {
                Some(dir) if !dir.is_empty() => Ok(Self::Png(PathBuf::from(dir))),
                _ => Err(UnknownDisplayKind(text.to_owned())),
            },
        }
    }
}

impl TryFrom<String> for DisplayKind {
    type Error = UnknownDisplayKind;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// `leds.kind`: how the LEDs are wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedKind {
    /// No LEDs.
    None,
    /// One LED per emotion (`leds.pins`).
    Gpio,
    /// One RGB LED (`leds.rgb_pins`).
    Rgb,
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    /// TOML syntax, an unknown key or a value of the wrong type; toml's message names the
    /// line, column and key.
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value of the right type outside its allowed range.
    #[error("config {path}: `{key}` = {value}: {reason}")]
    Invalid { path: PathBuf, key: &'static str, value: String, reason: String },
    /// A command-line flag's value that the key it overrides does not allow.
    #[error("{flag} {value}: {reason}")]
    Flag { flag: &'static str, value: String, reason: String },
}

impl ConfigError {
    /// This error blamed on `flag` when it is about `key`, which the flag set.
    pub fn blame_flag(self, key: &str, flag: &'static str) -> Self {
        match self {
            Self::Invalid { key: bad, value, reason, .. } if bad == key => Self::Flag { flag, value, reason },
            other => other,
        }
    }
}

/// Every setting of `emotion-pi run`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    pub detect: DetectConfig,
    pub track: TrackConfig,
    pub serial: SerialConfig,
    pub display: DisplayConfig,
    pub leds: LedsConfig,
    pub models: ModelsConfig,
    pub classify: ClassifyConfig,
    pub inference: InferenceConfig,
}

/// `[source]`: where frames come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// `/dev/videoN`, `v4l2:/dev/videoN`, `stdin:FORMAT:WxH`, or an image file or folder.
    pub uri: String,
    /// Requested camera resolution (the driver may pick the nearest it supports).
    pub width: u32,
    pub height: u32,
    /// Requested camera frame rate; for image sources, the playback rate (0 = as fast as possible).
    pub fps: u32,
    /// `auto` (the cheapest format the camera offers) or one of yuyv, mjpeg, grey, nv12, yu12.
    pub format: String,
    /// YUV quantisation range of the camera: `limited` (the V4L2 default) or `full`.
    pub yuv_range: YuvRange,
    /// Image folder sources: start again at the end instead of ending the run.
    #[serde(rename = "loop")]
    pub loop_images: bool,
    /// First wait before reopening a missing or failed camera; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            uri: "/dev/video0".to_owned(),
            width: 640,
            height: 480,
            fps: 30,
            format: "auto".to_owned(),
            yuv_range: YuvRange::Limited,
            loop_images: false,
            retry_initial_ms: 500,
            retry_max_ms: 10_000,
        }
    }
}

/// `[detect]`: face detection and the classifier crop.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Which shipped face detector: `short` (the default) or `long` (faces further away).
    pub range: DetectorRange,
    /// Minimum face score, 0..1; unset, the detector's MediaPipe default.
    pub min_score: Option<f32>,
    /// Run detection on every Nth frame; tracks hold their state in between.
    pub every: u32,
    /// Detect each face a second time in a window around it, for a better crop.
    pub refine: bool,
    /// Extra context around each face box for the classifier crop (0.1 = 10% larger); unset,
    /// the emotion model's own (its metadata), else 0.1.
    pub crop_margin: Option<f32>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self { range: DetectorRange::default(), min_score: None, every: 1, refine: false, crop_margin: None }
    }
}

/// `[track]`: see [`TrackerSettings`] for the meaning of each key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackConfig {
    pub min_iou: f32,
    pub max_missed: u32,
    pub probability_alpha: f32,
    pub box_alpha: f32,
    pub label_margin: f32,
}

impl Default for TrackConfig {
    fn default() -> Self {
        let d = TrackerSettings::default();
        Self {
            min_iou: d.min_iou,
            max_missed: d.max_missed,
            probability_alpha: d.probability_alpha,
            box_alpha: d.box_alpha,
            label_margin: d.label_margin,
        }
    }
}

/// `[serial]`: the JSON-lines emotion log.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SerialConfig {
    /// A serial device (`/dev/serial0`), `stdout`, `none`, or any other path (a log file, appended to).
    pub port: String,
    /// Baud rate of a serial device (8N1).
    pub baud: u32,
    /// Seconds between heartbeat lines (0 = only on changes).
    pub heartbeat_secs: f64,
    /// Lines held while the port is slow or gone; beyond this, new lines are dropped and counted.
    pub queue: usize,
}

impl Default for SerialConfig {
    fn default() -> Self {
        Self { port: "/dev/serial0".to_owned(), baud: 115_200, heartbeat_secs: 5.0, queue: 256 }
    }
}

/// `[display]`: the attached screen.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisplayConfig {
    /// `none` (headless), `png:DIR` (the simulator: screens written as PNG files), or a
    /// panel controller: `st7789`, `ili9341`.
    pub kind: DisplayKind,
    /// Screen size in pixels, after rotation (240x240, 240x320 and 320x240 are laid out).
    pub width: u32,
    pub height: u32,
    /// Draw every Nth camera frame.
    pub every: u32,
    /// The panel's spidev device and SPI clock.
    pub spi: String,
    pub spi_hz: u32,
    /// The GPIO chip of the pins below, and the pins (GPIO numbers, not header pins).
    pub gpio_chip: String,
    pub dc_pin: u32,
    /// Not wired when left out.
    pub reset_pin: Option<u32>,
    pub backlight_pin: Option<u32>,
    /// Clockwise degrees: 0, 90, 180 or 270.
    pub rotation: u16,
    /// Colour inversion (most ST7789 IPS modules need it) and BGR subpixel order.
    pub invert: bool,
    pub bgr: bool,
    /// Start of the visible area in the controller's memory.
    pub offset_x: u16,
    pub offset_y: u16,
}

impl Default for DisplayConfig {
    fn default() -> Self {
        Self {
            kind: DisplayKind::None,
            width: 320,
            height: 240,
            every: 1,
            spi: "/dev/spidev0.0".to_owned(),
            spi_hz: 40_000_000,
            gpio_chip: "/dev/gpiochip0".to_owned(),
            dc_pin: 25,
            reset_pin: None,
            backlight_pin: None,
            rotation: 0,
            invert: false,
            bgr: false,
            offset_x: 0,
            offset_y: 0,
        }
    }
}

/// `[leds]`: LEDs showing the main face's emotion.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedsConfig {
    /// `none`, `gpio` (one LED per emotion, `pins`) or `rgb` (one RGB LED, `rgb_pins`).
    pub kind: LedKind,
    /// Emotion name → GPIO number; emotions left out have no LED.
    pub pins: BTreeMap<String, u8>,
    /// Red, green and blue GPIO numbers of the RGB LED.
    pub rgb_pins: [u8; 3],
    /// An RGB LED whose common leg goes to 3.3 V lights when its pins are low.
    pub common_anode: bool,
}

impl Default for LedsConfig {
    fn default() -> Self {
        Self { kind: LedKind::None, pins: BTreeMap::new(), rgb_pins: [17, 22, 23], common_anode: false }
    }
}

/// The LEDs in effect; emotion names are matched to the model's classes when it is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedSettings {
    None,
    PerEmotion(BTreeMap<String, u8>),
    Rgb { pins: [u8; 3], common_anode: bool },
}

/// The highest GPIO number on the Pi's 40-pin header.
const HEADER_GPIO_MAX: u8 = 27;

/// `[models]`: where the ONNX models are.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Folder of the shipped models; empty = the built-in search (see `ModelPaths::default_dir`).
    pub dir: String,
}

/// `[classify]`: how the emotion model scores each face.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifyConfig {
    /// When each face is averaged with its mirror image: more accurate, a second pass of the
    /// classifier (see [`Mirror`]).
    pub mirror: Mirror,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        Self { mirror: ClassifierSettings::default().mirror }
    }
}

/// Most frames analysed at once (`inference.workers`, `--workers`): far beyond any Pi's
/// cores, and each worker holds a frame and its inference buffers.
pub const MAX_WORKERS: usize = 16;

/// `[inference]`: how the models use the CPU.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct InferenceConfig {
    /// Frames analysed at once, each on its own thread; 0 = one per CPU core.
    pub workers: usize,
}

impl InferenceConfig {
    /// The number of worker threads: `workers`, or the CPU's cores when 0.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |cores| cores.get().min(MAX_WORKERS)),
            n => n,
        }
    }
}

/// Where the serial log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialTarget {
    None,
    Stdout,
    /// A character device (serial port or pty), opened at the configured baud rate.
    Port(PathBuf),
    /// A regular file, appended to.
    File(PathBuf),
}

impl SerialTarget {
    /// `none`, `stdout`, a character device (a port, also through a link from outside
    /// `/dev/`) or a path under `/dev/` that does not exist yet (an adapter not plugged in),
    /// and otherwise a file. The kernel's memory devices (`/dev/null`, `/dev/full`) are
    /// written as files: they are sinks, not ports.
    pub fn parse(text: &str) -> Self {
        match text {
            "none" => Self::None,
            "stdout" | "-" => Self::Stdout,
            path => match char_device_major(Path::new(path)) {
                Some(MEMORY_DEVICES_MAJOR) => Self::File(PathBuf::from(path)),
                Some(_) => Self::Port(PathBuf::from(path)),
                None if path.starts_with("/dev/") => Self::Port(PathBuf::from(path)),
                None => Self::File(PathBuf::from(path)),
            },
        }
    }
}

/// Device major number of Linux's memory devices (null, zero, full, random).
const MEMORY_DEVICES_MAJOR: u64 = 1;

/// The major number of the character device at `path` (links followed), if it is one.
fn char_device_major(path: &Path) -> Option<u64> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let metadata = std::fs::metadata(path).ok()?;
    let rdev = metadata.rdev();
    // glibc's gnu_dev_major: bits 8-19 and 32-43.
    metadata.file_type().is_char_device().then_some(((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff))
}

/// The checked form of [`Config`] that the live loop runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    pub source: SourceSpec,
    pub capture: CaptureSettings,
    /// The shipped face detector to load from the models folder.
    pub detector_range: DetectorRange,
    /// `None`: the detector's own default.
    pub min_face_score: Option<f32>,
    /// Whether each face is detected a second time in a window around it.
    pub refine: bool,
    pub detect_every: u32,
    /// What the config changes of the emotion model's face crop.
    pub crop: CropOverrides,
    pub classifier: ClassifierSettings,
    /// Frames analysed at once, each on its own thread (at least 1).
    pub workers: usize,
    pub tracker: TrackerSettings,
    pub serial: SerialTarget,
    pub baud: u32,
    /// `None` when heartbeats are off.
    pub heartbeat: Option<Duration>,
    pub serial_queue: usize,
    pub display: DisplayTarget,
    /// Screen width and height in pixels.
    pub display_size: (u32, u32),
    /// Draw every Nth frame.
    pub display_every: u32,
    pub models_dir: Option<PathBuf>,
    pub leds: LedSettings,
}

/// What the capture thread needs besides the source itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaptureSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub range: YuvRange,
    pub loop_images: bool,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Config {
    /// Reads and parses `path` (no range checks yet: see [`Config::settings`]).
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = crate::fs_safety::read_capped(path, crate::bulk::limits::MAX_CONFIG_BYTES, "config files")
            .map_err(std::io::Error::from)
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))
            })
            .map_err(|cause| ConfigError::Read { path: path.to_owned(), cause })?;
        Self::parse(&text, path)
    }

    /// Parses TOML `text`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|err| ConfigError::Parse { path: path.to_owned(), message: err.to_string() })
    }

    /// The config at `path`, or the defaults when `path` is the default location and absent
    /// (a device without a config file runs with the defaults; an explicit path must exist).
    pub fn load(path: Option<&Path>) -> Result<(Self, PathBuf), ConfigError> {
        match path {
            Some(path) => Ok((Self::read(path)?, path.to_owned())),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_PATH);
                if default.exists() {
                    Ok((Self::read(&default)?, default))
                } else {
                    Ok((Self::default(), default))
                }
            }
        }
    }

    /// Checks every value and returns the settings the loop runs with; `path` names the
    /// file in errors.
    pub fn settings(&self, path: &Path) -> Result<RunSettings, ConfigError> {
        let invalid = |key: &'static str, value: String, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            value,
            reason,
        };
        let s = &self.source;
        let source = SourceSpec::parse(&s.uri, &s.format)
            .map_err(|err: SpecError| invalid(err.key(), format!("{:?}", err.value()), err.to_string()))?;
        if s.width == 0 || s.height == 0 {
            return Err(invalid("source.width", format!("{}x{}", s.width, s.height), "must be positive".into()));
        }
        if s.retry_initial_ms == 0 || s.retry_max_ms < s.retry_initial_ms {
            return Err(invalid(
                "source.retry_max_ms",
                format!("{} (retry_initial_ms {})", s.retry_max_ms, s.retry_initial_ms),
                "need 0 < retry_initial_ms <= retry_max_ms".into(),
            ));
        }
        let d = &self.detect;
        if let Some(score) = d.min_score.filter(|s| !MIN_SCORE_RANGE.contains(s)) {
            return Err(invalid(
                "detect.min_score",
                score.to_string(),
                format!("must be within {}..{}", MIN_SCORE_RANGE.start(), MIN_SCORE_RANGE.end()),
            ));
        }
        if d.every == 0 {
            return Err(invalid("detect.every", "0".into(), "must be at least 1".into()));
        }
        if let Some(margin) = d.crop_margin.filter(|m| !CROP_MARGIN_RANGE.contains(m)) {
            return Err(invalid(
                "detect.crop_margin",
                margin.to_string(),
                format!("must be within {}..{}", CROP_MARGIN_RANGE.start(), CROP_MARGIN_RANGE.end()),
            ));
        }
        let t = &self.track;
        let tracker = TrackerSettings {
            min_iou: t.min_iou,
            max_missed: t.max_missed,
            probability_alpha: t.probability_alpha,
            box_alpha: t.box_alpha,
            label_margin: t.label_margin,
        };
        tracker.validate().map_err(|err| ConfigError::Invalid {
            path: path.to_owned(),
            key: track_key(err.setting),
            value: err.value.clone(),
            reason: format!("allowed {}", err.allowed),
        })?;
        let serial = &self.serial;
        if serial.baud == 0 {
            return Err(invalid("serial.baud", "0".into(), "must be positive".into()));
        }
        if !(serial.heartbeat_secs.is_finite() && serial.heartbeat_secs >= 0.0) {
            return Err(invalid(
                "serial.heartbeat_secs",
                serial.heartbeat_secs.to_string(),
                "must be 0 or more".into(),
            ));
        }
        if serial.queue == 0 {
            return Err(invalid("serial.queue", "0".into(), "must be at least 1".into()));
        }
        if self.inference.workers > MAX_WORKERS {
            return Err(invalid(
                "inference.workers",
                self.inference.workers.to_string(),
                format!("must be within 0..{MAX_WORKERS} (0 = one per CPU core)"),
            ));
        }
        let display = &self.display;
        if !(16..=4096).contains(&display.width) || !(16..=4096).contains(&display.height) {
            return Err(invalid(
                "display.width",
                format!("{}x{}", display.width, display.height),
                "each side must be within 16..4096".into(),
            ));
        }
        let display_target = match &display.kind {
            DisplayKind::None => DisplayTarget::None,
            DisplayKind::Png(dir) => {
                // The image folder is read recursively: screens written inside it would be
                // read back as frames, and could replace the user's own images.
                if let SourceSpec::Images { path } = &source {
                    if path.is_dir() && crate::fs_safety::lies_within(dir, path) {
                        return Err(invalid(
                            "display.kind",
                            format!("png:{}", dir.display()),
                            format!("is inside the image folder {} that source.uri reads", path.display()),
                        ));
                    }
                }
                DisplayTarget::Png(dir.clone())
            }
            DisplayKind::Panel(controller) => {
                panel_target(display, *controller).map_err(|(key, value, reason)| invalid(key, value, reason))?
            }
        };
        if display.every == 0 {
            return Err(invalid("display.every", "0".into(), "must be at least 1".into()));
        }
        Ok(RunSettings {
            source,
            capture: CaptureSettings {
                width: s.width,
                height: s.height,
                fps: s.fps,
                range: s.yuv_range,
                loop_images: s.loop_images,
                retry_initial: Duration::from_millis(s.retry_initial_ms),
                retry_max: Duration::from_millis(s.retry_max_ms),
            },
            detector_range: d.range,
            min_face_score: d.min_score,
            refine: d.refine,
            detect_every: d.every,
            crop: CropOverrides { margin: d.crop_margin, ..CropOverrides::default() },
            classifier: ClassifierSettings { mirror: self.classify.mirror },
            workers: self.inference.worker_count(),
            tracker,
            serial: log_target(&serial.port).map_err(|reason| invalid("serial.port", serial.port.clone(), reason))?,
            baud: serial.baud,
            heartbeat: (serial.heartbeat_secs > 0.0).then(|| Duration::from_secs_f64(serial.heartbeat_secs)),
            serial_queue: serial.queue,
            display: display_target,
            display_size: (display.width, display.height),
            display_every: display.every,
            models_dir: (!self.models.dir.is_empty()).then(|| PathBuf::from(&self.models.dir)),
            leds: led_settings(&self.leds).map_err(|(key, value, reason)| invalid(key, value, reason))?,
        })
    }
}

/// The log target named by `serial.port`; a file in a folder that does not exist could
/// never be written, so it is refused before start rather than retried forever.
fn log_target(port: &str) -> Result<SerialTarget, String> {
    let target = SerialTarget::parse(port);
    if let SerialTarget::File(path) = &target {
        if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
            if !folder.is_dir() {
                return Err(format!("the folder {} does not exist", folder.display()));
            }
        }
    }
    Ok(target)
}

/// The LEDs from the `[leds]` keys, or the key, value and reason of the first bad one.
fn led_settings(leds: &LedsConfig) -> Result<LedSettings, (&'static str, String, String)> {
    let (key, pins): (_, Vec<u8>) = match leds.kind {
        LedKind::None => return Ok(LedSettings::None),
        LedKind::Gpio if leds.pins.is_empty() => {
            return Err(("leds.pins", "{}".into(), "kind gpio needs at least one emotion = GPIO".into()))
        }
        LedKind::Gpio => ("leds.pins", leds.pins.values().copied().collect()),
        LedKind::Rgb => ("leds.rgb_pins", leds.rgb_pins.to_vec()),
    };
    if let Some(pin) = pins.iter().find(|&&p| p > HEADER_GPIO_MAX) {
        return Err((key, pin.to_string(), format!("GPIO numbers on the header are 0..={HEADER_GPIO_MAX}")));
    }
    let mut sorted = pins.clone();
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err((key, pair[0].to_string(), "a GPIO can drive only one LED".into()));
    }
    Ok(match leds.kind {
        LedKind::Gpio => LedSettings::PerEmotion(leds.pins.clone()),
        _ => LedSettings::Rgb { pins: leds.rgb_pins, common_anode: leds.common_anode },
    })
}

/// A panel from the `[display]` keys, or the key, value and reason of the first bad one.
fn panel_target(
    display: &DisplayConfig,
    controller: Controller,
) -> Result<DisplayTarget, (&'static str, String, String)> {
    if ![0, 90, 180, 270].contains(&display.rotation) {
        return Err(("display.rotation", display.rotation.to_string(), "must be 0, 90, 180 or 270".into()));
    }
    if !(100_000..=125_000_000).contains(&display.spi_hz) {
        return Err(("display.spi_hz", display.spi_hz.to_string(), "must be within 100000..125000000".into()));
    }
    // Both controllers drive 240x320 pixels in portrait.
    let (across, down) = if display.rotation.is_multiple_of(180) { (240, 320) } else { (320, 240) };
    let (offset_x, offset_y) = (u32::from(display.offset_x), u32::from(display.offset_y));
    if display.width + offset_x > across || display.height + offset_y > down {
        return Err((
            "display.width",
            format!("{}x{} at offset {offset_x},{offset_y}", display.width, display.height),
            format!("{controller:?} at rotation {} has {across}x{down} pixels", display.rotation),
        ));
    }
    let to_u16 = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
    Ok(DisplayTarget::Panel {
        wiring: PanelWiring {
            spi: PathBuf::from(&display.spi),
            clock_hz: display.spi_hz,
            gpio_chip: PathBuf::from(&display.gpio_chip),
            dc_line: display.dc_pin,
            reset_line: display.reset_pin,
            backlight_line: display.backlight_pin,
        },
        geometry: PanelGeometry {
            controller,
            width: to_u16(display.width),
            height: to_u16(display.height),
            rotation: display.rotation,
            invert: display.invert,
            bgr: display.bgr,
            offset_x: display.offset_x,
            offset_y: display.offset_y,
        },
    })
}

/// The config key of a tracker setting (the names match the struct fields).
fn track_key(setting: &str) -> &'static str {
    match setting {
        "min_iou" => "track.min_iou",
        "probability_alpha" => "track.probability_alpha",
        "box_alpha" => "track.box_alpha",
        "label_margin" => "track.label_margin",
        "max_missed" => "track.max_missed",
        _ => "track",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RunSettings, ConfigError> {
        let path = Path::new("test.toml");
        Config::parse(text, path)?.settings(path)
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let settings = parse("").unwrap();
        assert_eq!(settings.source, SourceSpec::V4l2 { device: PathBuf::from("/dev/video0"), format: None });
        assert_eq!(settings.capture.width, 640);
        assert_eq!(settings.detect_every, 1);
        assert_eq!(settings.serial, SerialTarget::Port(PathBuf::from("/dev/serial0")));
        assert_eq!(settings.baud, 115_200);
        assert_eq!(settings.heartbeat, Some(Duration::from_secs(5)));
        assert_eq!(settings.tracker, TrackerSettings::default());
    }

    #[test]
    fn the_crop_margin_is_the_models_unless_the_file_sets_one() {
        assert_eq!(parse("").unwrap().crop, CropOverrides::default());
        let set = parse("[detect]\ncrop_margin = 0.3\n").unwrap();
        assert_eq!(set.crop, CropOverrides { margin: Some(0.3), ..CropOverrides::default() });
        let err = parse("[detect]\ncrop_margin = 2.5\n").unwrap_err().to_string();
        assert!(err.contains("detect.crop_margin") && err.contains("-0.5..2"), "{err}");
    }

    #[test]
    fn the_detector_range_and_score_default_to_the_short_model_and_its_own_score() {
        let defaults = parse("").unwrap();
        assert_eq!((defaults.detector_range, defaults.min_face_score), (DetectorRange::Short, None));
        let long = parse("[detect]\nrange = \"long\"\nmin_score = 0.8\n").unwrap();
        assert_eq!((long.detector_range, long.min_face_score), (DetectorRange::Long, Some(0.8)));
        let message = parse("\n[detect]\nrange = \"medium\"\n").unwrap_err().to_string();
        assert!(message.contains("medium") && message.contains("long") && message.contains("line 3"), "{message}");
    }

    #[test]
    fn refining_the_boxes_is_off_unless_asked_for() {
        assert!(!parse("").unwrap().refine);
        assert!(parse("[detect]\nrefine = true\n").unwrap().refine);
        let message = parse("[detect]\n\nrefine = \"yes\"\n").unwrap_err().to_string();
        assert!(message.contains("refine") && message.contains("line 3"), "{message}");
    }

    #[test]
    fn the_mirror_takes_a_mode_or_the_old_flag() {
        assert_eq!(parse("").unwrap().classifier.mirror, Mirror::Alternate);
        for (value, mode) in [
            ("\"off\"", Mirror::Off),
            ("\"always\"", Mirror::Always),
            ("\"alternate\"", Mirror::Alternate),
            ("true", Mirror::Always),
            ("false", Mirror::Off),
        ] {
            let settings = parse(&format!("[classify]\nmirror = {value}\n")).unwrap();
            assert_eq!(settings.classifier.mirror, mode, "mirror = {value}");
        }
        let message = parse("[classify]\n\nmirror = \"sometimes\"\n").unwrap_err().to_string();
        assert!(
            message.contains("sometimes") && message.contains("alternate") && message.contains("line 3"),
            "{message}"
        );
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let text = include_str!("../config.example.toml");
        let config = Config::parse(text, Path::new("config.example.toml")).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse("[source]\nuri = \"/dev/video1\"\nwidht = 320\n").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("widht"), "{message}");
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("test.toml"), "{message}");
    }

    #[test]
    fn wrong_type_is_named() {
        let message = parse("[serial]\nbaud = \"fast\"\n").unwrap_err().to_string();
        assert!(message.contains("baud") && message.contains("line 2"), "{message}");
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let cases = [
            ("[detect]\nevery = 0", "detect.every"),
            ("[detect]\nmin_score = 1.5", "detect.min_score"),
            ("[track]\nlabel_margin = 1.0", "track.label_margin"),
            ("[track]\nmin_iou = 0", "track.min_iou"),
            ("[serial]\nbaud = 0", "serial.baud"),
            ("[serial]\nheartbeat_secs = -1", "serial.heartbeat_secs"),
            ("[source]\nuri = \"stdin:rgb24:640x480\"", "source.uri"),
            ("[source]\nformat = \"h264\"", "source.format"),
            ("[leds]\nkind = \"gpio\"", "leds.pins"),
            ("[leds]\nkind = \"gpio\"\npins = { happy = 19, sad = 19 }", "leds.pins"),
            ("[leds]\nkind = \"rgb\"\nrgb_pins = [17, 27, 40]", "leds.rgb_pins"),
            ("[display]\nkind = \"st7789\"\nrotation = 45", "display.rotation"),
            ("[display]\nkind = \"ili9341\"\nwidth = 320\nheight = 240", "display.width"),
            ("[display]\nkind = \"st7789\"\nspi_hz = 0", "display.spi_hz"),
            ("[display]\nevery = 0", "display.every"),
            ("[display]\nwidth = 8", "display.width"),
        ];
        for (text, key) in cases {
            match parse(text) {
                Err(ConfigError::Invalid { key: found, .. }) => assert_eq!(found, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn screens_may_not_be_written_into_the_image_folder_being_read() {
        let root = tempfile::tempdir().unwrap();
        let images = root.path().join("images");
        std::fs::create_dir(&images).unwrap();
        let config = |display: &Path| {
            format!(
                "[source]\nuri = {:?}\n[display]\nkind = \"png:{}\"",
                images.display().to_string(),
                display.display()
            )
        };
        for inside in [images.clone(), images.join("screens")] {
            match parse(&config(&inside)) {
                Err(ConfigError::Invalid { key, reason, .. }) => {
                    assert_eq!(key, "display.kind");
                    assert!(reason.contains("images"), "{reason}");
                }
                other => panic!("png:{} inside the source: {other:?}", inside.display()),
            }
        }
        let beside = root.path().join("screens");
        assert!(matches!(parse(&config(&beside)).unwrap().display, DisplayTarget::Png(dir) if dir == beside));
    }

    #[test]
    fn unknown_kinds_are_named_with_their_line_and_the_choices() {
        let cases = [
            ("[source]\nyuv_range = \"studio\"", "studio", "limited"),
            ("\n[display]\nkind = \"ssd1306\"", "ssd1306", "png:DIR"),
            ("\n\n[leds]\nkind = \"neopixel\"", "neopixel", "rgb"),
        ];
        for (line, (text, value, choice)) in cases.into_iter().enumerate() {
            let message = parse(text).unwrap_err().to_string();
            let at = format!("line {}", line + 2);
            assert!(message.contains(value) && message.contains(choice) && message.contains(&at), "{message}");
        }
        assert_eq!("png:/tmp/ui".parse(), Ok(DisplayKind::Png(PathBuf::from("/tmp/ui"))));
        assert_eq!("png:".parse::<DisplayKind>(), Err(UnknownDisplayKind("png:".into())));
        assert_eq!("st7789".parse(), Ok(DisplayKind::Panel(Controller::St7789)));
    }

    #[test]
    fn a_panel_kind_takes_its_wiring_and_geometry_from_the_display_keys() {
        let text = "[display]\nkind = \"st7789\"\nwidth = 240\nheight = 240\nreset_pin = 27\nbacklight_pin = 24\n\
                    rotation = 180\ninvert = true\noffset_y = 80\nspi = \"/dev/spidev0.1\"";
        let settings = parse(text).unwrap();
        let expected = DisplayTarget::Panel {
            wiring: PanelWiring {
                spi: PathBuf::from("/dev/spidev0.1"),
                clock_hz: 40_000_000,
                gpio_chip: PathBuf::from("/dev/gpiochip0"),
                dc_line: 25,
                reset_line: Some(27),
                backlight_line: Some(24),
            },
            geometry: PanelGeometry {
                controller: Controller::St7789,
                width: 240,
                height: 240,
                rotation: 180,
                invert: true,
                bgr: false,
                offset_x: 0,
                offset_y: 80,
            },
        };
        assert_eq!(settings.display, expected);
    }

    #[test]
    fn serial_targets() {
        assert_eq!(SerialTarget::parse("none"), SerialTarget::None);
        assert_eq!(SerialTarget::parse("stdout"), SerialTarget::Stdout);
        assert_eq!(SerialTarget::parse("/dev/ttyUSB0"), SerialTarget::Port(PathBuf::from("/dev/ttyUSB0")));
        assert_eq!(SerialTarget::parse("log/emotions.jsonl"), SerialTarget::File(PathBuf::from("log/emotions.jsonl")));
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("ttyUSB-by-id");
        std::os::unix::fs::symlink("/dev/tty", &link).unwrap();
        assert_eq!(SerialTarget::parse(link.to_str().unwrap()), SerialTarget::Port(link.clone()));
        assert_eq!(SerialTarget::parse("/dev/null"), SerialTarget::File(PathBuf::from("/dev/null")));
        let full = dir.path().join("full-disk");
        std::os::unix::fs::symlink("/dev/full", &full).unwrap();
        assert_eq!(SerialTarget::parse(full.to_str().unwrap()), SerialTarget::File(full.clone()));
    }

    #[test]
    fn a_file_log_in_a_missing_folder_is_refused_before_start() {
        let err = parse("[serial]\nport = \"/nonexistent/dir/emotions.jsonl\"").unwrap_err();
        match &err {
            ConfigError::Invalid { key, reason, .. } => {
                assert_eq!(*key, "serial.port");
                assert!(reason.contains("/nonexistent/dir"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let dir = tempfile::tempdir().unwrap();
        let fine = dir.path().join("emotions.jsonl");
        let settings = parse(&format!("[serial]\nport = {:?}", fine.display().to_string())).unwrap();
        assert_eq!(settings.serial, SerialTarget::File(fine));
        assert_eq!(
            parse("[serial]\nport = \"emotions.jsonl\"").unwrap().serial,
            SerialTarget::File("emotions.jsonl".into())
        );
        let blamed = err.blame_flag("serial.port", "--serial");
        assert!(blamed.to_string().starts_with("--serial /nonexistent/dir/emotions.jsonl: "), "{blamed}");
    }

    #[test]
    fn missing_explicit_file_is_an_error_naming_it() {
        let err = Config::load(Some(Path::new("/nonexistent/emotion.toml"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/emotion.toml"), "{err}");
    }
}
