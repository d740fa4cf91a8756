//! `emotion-pi eval --frames`: labelled faces placed into whole camera-sized frames and run
//! through the device's pipeline (detect → crop → classify), beside `eval` on the same crops.
//!
//! Each face gets its own frame, drawn from a seed and the face's index alone, so a run is
//! the same for a seed however the work is spread over threads.

use std::ops::RangeInclusive;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

use super::eval::fer_to_model;
use super::fer::LabelledFace;
use super::metrics::{AccuracyReport, Confusion};
use crate::analyze::Analyzer;
use crate::classify::{crop_map, mirror_average, CropSettings, Emotion, ViewScores, Views};
use crate::detect::{DetectorRange, Face};
use crate::frame::Frame;
use crate::geometry::{convex_iou, Point};
use crate::model::ModelError;
use crate::report::Report;
use crate::resample::{resample_into, warp_into, AffineMap, Normalize, Output, Outside, SourceImage};

/// Frame width: the camera's default `source.width`.
pub const FRAME_WIDTH: u32 = 640;
/// Frame height: the camera's default `source.height`.
pub const FRAME_HEIGHT: u32 = 480;
/// Side of a placed face in frame pixels, from a face across a room to one filling half the
/// frame's height.
pub const FACE_SIDES: RangeInclusive<f32> = 64.0..=240.0;
/// Largest tilt of a placed face, degrees either way.
pub const MAX_TILT_DEGREES: f32 = 15.0;
/// Contrast factor of a placed face (about mid-gray).
pub const CONTRAST: RangeInclusive<f32> = 0.6..=1.4;
/// Brightness shift of a placed face, in pixel levels.
pub const BRIGHTNESS: RangeInclusive<f32> = -40.0..=40.0;
/// A detection is the placed face when its box overlaps the placed square at least this much
/// (IoU). A FER2013 square holds more than the face BlazeFace boxes, so even a perfect box
/// has an IoU well under 1 with it; a detection elsewhere in the frame has 0.
pub const MATCH_IOU: f32 = 0.25;
/// Largest per-pixel noise of a background, levels either way (camera grain).
const MAX_NOISE: f32 = 12.0;
/// Face-side bins for the found-rate table: where the detector starts missing faces.
const SIDE_BINS: usize = 4;
/// How far a face moves from one frame to the next in `eval --frames --motion`, at most,
/// either way: a head turning or walking past at about 240 px a second at 30 FPS.
pub const MOTION_SHIFT_PX: f32 = 8.0;
/// How much its side changes (stepping closer or back), as a fraction.
pub const MOTION_SCALE: f32 = 0.03;
/// How much it turns, degrees.
pub const MOTION_TURN_DEGREES: f32 = 2.0;
/// Mixed into the seed for the second frames, so they do not repeat the first frames' draws.
const MOTION_SEED_SALT: u64 = 0x6d6f_7469_6f6e;

/// Where a face lies in its frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Placement {
    /// Centre of the face square, frame pixels.
    pub center: Point,
    /// Side of the face square, frame pixels.
    pub side: f32,
    /// Tilt in radians: the face's horizontal axis lies at this angle in the frame (y down).
    pub angle: f32,
}

impl Placement {
    /// The map from the pixels of a `face_side`-square face image to frame pixels.
    pub fn face_to_frame(&self, face_side: u32) -> AffineMap {
        AffineMap::rotated_square(self.center.x, self.center.y, self.side, self.angle, face_side)
    }

    /// The corners of the placed square in the frame, in order around it.
    pub fn corners(&self) -> [Point; 4] {
        square_corners(&self.face_to_frame(1), 1.0)
    }
}

/// The frame corners of a square whose pixels (`0..side`) `map` takes to the frame.
fn square_corners(map: &AffineMap, side: f32) -> [Point; 4] {
    [(0.0, 0.0), (side, 0.0), (side, side), (0.0, side)].map(|(u, v)| {
        let (x, y) = map.apply(u, v);
        Point { x, y }
    })
}

/// What lies behind the face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Background {
    /// A linear blend between two colours along a direction (a wall under a lamp).
    Gradient { from: [f32; 3], to: [f32; 3], angle: f32 },
    /// Random colours on a coarse grid of `cell`-pixel cells, blended smoothly (a cluttered room).
    Blotches { cell: u32, seed: u64 },
    /// Stripes of two colours, `period` pixels wide, at an angle (blinds, shelves: edges).
    Stripes { from: [f32; 3], to: [f32; 3], period: f32, angle: f32 },
}

/// Everything drawn at random for one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameSpec {
    pub placement: Placement,
    /// Face pixel `p` becomes `(p − 128) × contrast + 128 + brightness`.
    pub contrast: f32,
    pub brightness: f32,
    pub background: Background,
    /// Amplitude of the per-pixel noise added to the background, levels.
    pub noise: f32,
    /// Seeds the background noise.
    pub noise_seed: u64,
}

impl FrameSpec {
    /// The frame of face number `index` in the run seeded `seed`: the same for the same pair.
    pub fn draw(seed: u64, index: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // One stream per face: a face's frame does not depend on how many were drawn before it.
        rng.set_stream(index);
        let side = rng.random_range(FACE_SIDES);
        let max_tilt = MAX_TILT_DEGREES.to_radians();
        let angle = rng.random_range(-max_tilt..=max_tilt);
        // Half the extent of the turned square, so the whole face stays in the frame.
        let reach = side / 2.0 * (angle.cos().abs() + angle.sin().abs());
        let center = Point {
            x: rng.random_range(reach..=FRAME_WIDTH as f32 - reach),
            y: rng.random_range(reach..=FRAME_HEIGHT as f32 - reach),
        };
        let mut colour = || [0; 3].map(|_: i32| rng.random_range(0.0..=255.0f32));
        let (from, to) = (colour(), colour());
        let background = match rng.random_range(0..3u8) {
            0 => Background::Gradient { from, to, angle: rng.random_range(0.0..std::f32::consts::TAU) },
            1 => Background::Blotches { cell: rng.random_range(16..=96), seed: rng.random() },
            _ => Background::Stripes {
                from,
                to,
                period: rng.random_range(6.0..=80.0),
                angle: rng.random_range(0.0..std::f32::consts::PI),
            },
        };
        Self {
            placement: Placement { center, side, angle },
            contrast: rng.random_range(CONTRAST),
            brightness: rng.random_range(BRIGHTNESS),
            background,
            noise: rng.random_range(0.0..=MAX_NOISE),
            noise_seed: rng.random(),
        }
    }

    /// The next camera frame of the same scene, the face moved as a face moves between two
    /// frames (up to [`MOTION_SHIFT_PX`], [`MOTION_SCALE`], [`MOTION_TURN_DEGREES`]) and kept
    /// inside the frame, with fresh camera grain; drawn from `seed` and `index` alone.
    pub fn moved(&self, seed: u64, index: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ MOTION_SEED_SALT);
        rng.set_stream(index);
        let p = self.placement;
        let side = p.side * (1.0 + rng.random_range(-MOTION_SCALE..=MOTION_SCALE));
        let angle = p.angle + rng.random_range(-MOTION_TURN_DEGREES..=MOTION_TURN_DEGREES).to_radians();
        let reach = side / 2.0 * (angle.cos().abs() + angle.sin().abs());
        let mut shift = || rng.random_range(-MOTION_SHIFT_PX..=MOTION_SHIFT_PX);
        let center = Point {
            x: (p.center.x + shift()).clamp(reach, FRAME_WIDTH as f32 - reach),
            y: (p.center.y + shift()).clamp(reach, FRAME_HEIGHT as f32 - reach),
        };
        Self { placement: Placement { center, side, angle }, noise_seed: rng.random(), ..*self }
    }

    /// The frame with `face` (a `face_side`-square gray image, row-major) placed on the background.
    ///
    /// A face buffer shorter than `face_side`² pixels, or a square of no size, cannot be drawn:
    /// the frame then holds the background alone, which the evaluation counts as a face not found.
    pub fn render(&self, face: &[u8], face_side: u32) -> Frame {
        let mut rgb = self.background_image();
        let Some(frame_to_face) = self.placement.face_to_frame(face_side).inverse() else {
            return Frame::from_rgb(rgb);
        };
        // Only the box around the turned square is sampled; NaN marks its pixels outside the face.
        let corners = self.placement.corners();
        let bound =
            |f: fn(f32, f32) -> f32, pick: fn(&Point) -> f32| corners.iter().map(pick).fold(pick(&corners[0]), f);
        let x0 = bound(f32::min, |p| p.x).floor().max(0.0) as u32;
        let y0 = bound(f32::min, |p| p.y).floor().max(0.0) as u32;
        let x1 = (bound(f32::max, |p| p.x).ceil() as u32).min(FRAME_WIDTH);
        let y1 = (bound(f32::max, |p| p.y).ceil() as u32).min(FRAME_HEIGHT);
        if x1 <= x0 || y1 <= y0 {
            return Frame::from_rgb(rgb);
        }
        let (width, height) = (x1 - x0, y1 - y0);
        let [[a, b, c], [d, e, f]] = frame_to_face.m;
        let window_to_face =
            AffineMap { m: [[a, b, a * x0 as f32 + b * y0 as f32 + c], [d, e, d * x0 as f32 + e * y0 as f32 + f]] };
        let mut values = vec![0f32; (width * height) as usize];
        let source = SourceImage { data: face, width: face_side, height: face_side, channels: 1 };
        let look = Normalize { scale: self.contrast, offset: 128.0 * (1.0 - self.contrast) + self.brightness };
        if !warp_into(source, &window_to_face, &mut values, width, height, Outside::Fill(f32::NAN), look) {
            return Frame::from_rgb(rgb);
        }
        for (i, value) in values.iter().enumerate().filter(|(_, v)| !v.is_nan()) {
            let level = value.round().clamp(0.0, 255.0) as u8;
            let (x, y) = (x0 + i as u32 % width, y0 + i as u32 / width);
            rgb.put_pixel(x, y, image::Rgb([level; 3]));
        }
        Frame::from_rgb(rgb)
    }

    fn background_image(&self) -> image::RgbImage {
        let mut noise = ChaCha8Rng::seed_from_u64(self.noise_seed);
        let blend = |from: &[f32; 3], to: &[f32; 3], t: f32| [0, 1, 2].map(|c| from[c] + (to[c] - from[c]) * t);
        let base: image::RgbImage = match self.background {
            Background::Blotches { cell, seed } => {
                let mut cells = ChaCha8Rng::seed_from_u64(seed);
                let coarse = image::RgbImage::from_fn(FRAME_WIDTH / cell + 2, FRAME_HEIGHT / cell + 2, |_, _| {
                    image::Rgb([0; 3].map(|_: u8| cells.random()))
                });
                image::imageops::resize(&coarse, FRAME_WIDTH, FRAME_HEIGHT, image::imageops::FilterType::Triangle)
            }
            Background::Gradient { from, to, angle } => {
                let (sin, cos) = angle.sin_cos();
                let reach = FRAME_WIDTH as f32 * cos.abs() + FRAME_HEIGHT as f32 * sin.abs();
                image::RgbImage::from_fn(FRAME_WIDTH, FRAME_HEIGHT, |x, y| {
                    let along =
                        (x as f32 - FRAME_WIDTH as f32 / 2.0) * cos + (y as f32 - FRAME_HEIGHT as f32 / 2.0) * sin;
                    image::Rgb(blend(&from, &to, along / reach + 0.5).map(|v| v as u8))
                })
            }
            Background::Stripes { from, to, period, angle } => {
                let (sin, cos) = angle.sin_cos();
                image::RgbImage::from_fn(FRAME_WIDTH, FRAME_HEIGHT, |x, y| {
                    let along = x as f32 * cos + y as f32 * sin;
                    let t = if (along / period).rem_euclid(2.0) < 1.0 { 0.0 } else { 1.0 };
                    image::Rgb(blend(&from, &to, t).map(|v| v as u8))
                })
            }
        };
        let mut rgb = base;
        if self.noise > 0.0 {
            for value in rgb.iter_mut() {
                let grain = noise.random_range(-self.noise..=self.noise);
                *value = (*value as f32 + grain).round().clamp(0.0, 255.0) as u8;
            }
        }
        rgb
    }
}

/// The detector's answer on one frame, and per crop geometry what the classifier made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameOutcome {
    /// Faces the detector reported, the placed one or not.
    pub detections: usize,
    /// The side of the placed face, frame pixels.
    pub side: f32,
    /// The class predicted for the frame cut exactly at the placed square, no detector: what
    /// placing and resampling alone cost.
    pub placed_prediction: usize,
    /// The detection taken for the placed face (best IoU, at least [`MATCH_IOU`]), if any.
    pub found: Option<FoundFace>,
}

/// The placed face as found and classified.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundFace {
    /// IoU of the detector's box with the placed square.
    pub box_iou: f32,
    /// Per crop geometry, in the order asked: the predicted class (model order), the IoU of
    /// the crop square with the placed square, and where the crop lies on that square.
    pub per_geometry: Vec<(usize, f32, CropInSquare)>,
}

/// Where a crop lies on the placed square, in the square's own axes (x right, y down as the
/// face is upright) and in units of its side: the jitter a face crop gets on the device,
/// which training's augmentation has to cover (`train --crop-jitter`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CropInSquare {
    /// Crop side over square side.
    pub scale: f32,
    /// Crop centre minus square centre, square sides.
    pub offset_x: f32,
    pub offset_y: f32,
    /// Angle of the crop's horizontal axis from the square's, degrees, clockwise as seen
    /// (y down).
    pub rotation_degrees: f32,
}

impl CropInSquare {
    /// The crop that `crop` maps from the unit square to frame pixels, seen from `placement`'s
    /// square.
    pub fn measure(crop: &AffineMap, placement: &Placement) -> Self {
        let (cx, cy) = crop.apply(0.5, 0.5);
        let (rx, ry) = crop.apply(1.5, 0.5);
        let (dx, dy) = (rx - cx, ry - cy);
        // The centre's offset turned back by the square's tilt into the square's axes.
        let (sin, cos) = placement.angle.sin_cos();
        let (ox, oy) = (cx - placement.center.x, cy - placement.center.y);
        Self {
            scale: dx.hypot(dy) / placement.side,
            offset_x: (ox * cos + oy * sin) / placement.side,
            offset_y: (oy * cos - ox * sin) / placement.side,
            rotation_degrees: (dy.atan2(dx) - placement.angle).to_degrees(),
        }
    }
}

/// The detection taken for the face placed at `placement`, with its IoU: the best overlap,
/// at least [`MATCH_IOU`].
fn placed_face<'a>(faces: &'a [Face], placement: &Placement) -> Option<(f32, &'a Face)> {
    let placed = placement.corners();
    faces
        .iter()
        .map(|f| (convex_iou(&f.bbox.corners(), &placed), f))
        .filter(|(iou, _)| *iou >= MATCH_IOU)
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// Builds the frame of `spec` for `face` and runs the device's pipeline on it, cropping the
/// found face with each of `geometries`.
pub fn run_frame(
    analyzer: &Analyzer,
    face: &[u8],
    face_side: u32,
    spec: &FrameSpec,
    geometries: &[CropSettings],
) -> Result<FrameOutcome, ModelError> {
    let frame = spec.render(face, face_side);
    let faces = analyzer.detector().detect(&frame.rgb)?;
    let placed = spec.placement.corners();
    let best = placed_face(&faces, &spec.placement);
    let classifier = analyzer.classifier();
    let input_side = classifier.metadata().input_size;
    // The first face of the batch is the placed square itself, then one crop per geometry.
    let mut batch = vec![0f32; classifier.face_len()];
    let gray = SourceImage { data: frame.gray.as_raw(), width: frame.width(), height: frame.height(), channels: 1 };
    let square = spec.placement.face_to_frame(input_side);
    // Cut the way the device cuts its crops, so that the two differ only in where they lie.
    let output = Output { buffer: &mut batch, width: input_side, height: input_side, planar: false };
    resample_into(gray, &square, output, Outside::ClampToEdge, classifier.metadata().normalize());
    if let Some((_, detected)) = best {
        let one = std::slice::from_ref(detected);
        batch.extend(geometries.iter().flat_map(|g| analyzer.crop_batch_with(&frame, one, g)));
    }
    let emotions = classifier.classify_batch(&batch, batch.len() / classifier.face_len())?;
    let mut predictions = emotions.iter().map(|e| e.top().0);
    let placed_prediction = predictions.next().unwrap_or_default();
    let found = best.map(|(box_iou, detected)| FoundFace {
        box_iou,
        per_geometry: geometries
            .iter()
            .zip(predictions)
            .map(|(g, predicted)| {
                let crop = crop_map(detected, g, 1);
                (
                    predicted,
                    convex_iou(&square_corners(&crop, 1.0), &placed),
                    CropInSquare::measure(&crop, &spec.placement),
                )
            })
            .collect(),
    });
    Ok(FrameOutcome { detections: faces.len(), side: spec.placement.side, placed_prediction, found })
}

/// What the live loop's default `classify.mirror = "alternate"` makes of a face that moves:
/// class probabilities (model order) for the second of two frames.
#[derive(Debug, Clone, PartialEq)]
pub struct MovingFace {
    /// Both images of the second frame's crop averaged (`always`).
    pub both: Emotion,
    /// The first frame's crop scored as it is, paired with the second frame's mirror image
    /// (`alternate`, a tracked face).
    pub paired: Emotion,
    /// The second frame's crop alone (`off`).
    pub alone: Emotion,
}

/// Runs the pipeline on the frames of `first` and `second` and, when the placed face is found
/// in both, scores it as each mirror mode would on the second frame; `None` when either
/// frame misses it.
pub fn run_moving_face(
    analyzer: &Analyzer,
    face: &[u8],
    face_side: u32,
    first: &FrameSpec,
    second: &FrameSpec,
) -> Result<Option<MovingFace>, ModelError> {
    let mut batch = Vec::new();
    for spec in [first, second] {
        let frame = spec.render(face, face_side);
        let faces = analyzer.detector().detect(&frame.rgb)?;
        let Some((_, detected)) = placed_face(&faces, &spec.placement) else { return Ok(None) };
        batch.extend(analyzer.crop_batch(&frame, std::slice::from_ref(detected)));
    }
    let scores = analyzer.classifier().classify_views(&batch, &[Views::Face, Views::Both])?;
    match scores.as_slice() {
        [ViewScores::Face(earlier), later @ ViewScores::Both { face, mirror }] => Ok(Some(MovingFace {
            both: Emotion { probabilities: later.combined() },
            paired: Emotion { probabilities: mirror_average(earlier, mirror) },
            alone: Emotion { probabilities: face.clone() },
        })),
        _ => Ok(None),
    }
}

/// How often the detector found the placed face.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionCounts {
    /// Frames with no detection, one, and more than one.
    pub none: u64,
    pub one: u64,
    pub several: u64,
    /// Frames whose placed face was found (a box with IoU ≥ `match_iou`).
    pub found: u64,
    pub match_iou: f32,
    /// Mean IoU of the found boxes with the placed squares.
    pub mean_box_iou: f64,
    /// Found rate by face side: `[from, to)` pixels, frames, found.
    pub by_side: Vec<SideBin>,
}

/// Frames whose face side lies in `[from, to)` and how many of their faces were found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideBin {
    pub from: f32,
    pub to: f32,
    pub frames: u64,
    pub found: u64,
}

/// One crop geometry's results over all frames.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeometryReport {
    pub crop: CropSettings,
    /// Mean IoU of the crop square with the placed square, over found faces.
    pub mean_crop_iou: f64,
    /// Where the crops lay on the placed squares, over found faces.
    pub crop_in_square: CropSpread,
    /// Every face; one not found counts wrong (`missed`).
    pub all_faces: AccuracyReport,
    /// The found faces only.
    pub found_faces: AccuracyReport,
}

/// The spread of [`CropInSquare`] over the found faces, each quantity on its own.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CropSpread {
    pub scale: Spread,
    pub offset_x: Spread,
    pub offset_y: Spread,
    pub rotation_degrees: Spread,
}

impl CropSpread {
    fn of(crops: &[CropInSquare]) -> Self {
        let spread = |pick: fn(&CropInSquare) -> f32| Spread::of(&crops.iter().map(pick).collect::<Vec<_>>());
        Self {
            scale: spread(|c| c.scale),
            offset_x: spread(|c| c.offset_x),
            offset_y: spread(|c| c.offset_y),
            rotation_degrees: spread(|c| c.rotation_degrees),
        }
    }
}

/// Mean, standard deviation and percentiles of one quantity (all 0 for no values).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    /// The 5th, 25th, 50th, 75th and 95th percentiles (nearest rank).
    pub percentiles: [f64; 5],
}

impl Spread {
    fn of(values: &[f32]) -> Self {
        let mean = mean(values);
        let variance = mean_of(values.iter().map(|&v| (v as f64 - mean).powi(2)), values.len());
        let mut sorted = values.to_vec();
        sorted.sort_by(f32::total_cmp);
        let percentiles = [5.0, 25.0, 50.0, 75.0, 95.0].map(|p: f64| {
            let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
            sorted.get(rank.saturating_sub(1)).map_or(0.0, |&v| v as f64)
        });
        Self { mean, std: variance.sqrt(), percentiles }
    }
}

/// `eval --frames`: the frames, the detector, and per crop geometry the classifier, beside
/// `eval` on the same faces' crops.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FramesReport {
    pub seed: u64,
    /// Frame width and height.
    pub frame: [u32; 2],
    /// Range of the placed faces' sides, pixels.
    pub face_sides: [f32; 2],
    pub max_tilt_degrees: f32,
    /// The face detector that ran, and the minimum score it kept faces at.
    pub detector: DetectorRange,
    pub min_face_score: f32,
    /// Whether each face was detected a second time in a window around it (`--refine`).
    pub refine: bool,
    pub detections: DetectionCounts,
    /// `eval` on the same faces, already cropped.
    pub crops: AccuracyReport,
    /// `eval` on the crops of the faces found in their frames: what `found_faces` compares with.
    pub crops_of_found: AccuracyReport,
    /// Every frame cut exactly at its placed square, no detector: what placing a face in a frame
    /// and resampling it back cost, apart from where the crop lands.
    pub placed_square: AccuracyReport,
    pub geometries: Vec<GeometryReport>,
    /// With `--motion`: each face in a second frame, moved, scored as each mirror mode would.
    pub motion: Option<MotionReport>,
}

/// Faces that move between two frames, found in both, scored on the second as each
/// `classify.mirror` mode would (the model's crop): what pairing a tracked face's pass with
/// the other image's pass from the frame before costs when the face has moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MotionReport {
    /// The largest shift (pixels), scale change and turn (degrees) between the two frames.
    pub max_shift_px: f32,
    pub max_scale_change: f32,
    pub max_turn_degrees: f32,
    /// `always`: both images of the second frame.
    pub both: AccuracyReport,
    /// `alternate`: the first frame's face with the second frame's mirror image.
    pub paired: AccuracyReport,
    /// `off`: the second frame's face alone.
    pub alone: AccuracyReport,
}

/// Places every face of `faces` in its own frame (seeded by `seed`), runs the pipeline, and
/// reports it per crop geometry beside `eval` on the same faces' crops (`crop_predictions`,
/// [`super::eval::Evaluation::predictions`]).
pub fn evaluate_frames(
    analyzer: &Analyzer,
    faces: &[LabelledFace],
    seed: u64,
    geometries: &[CropSettings],
    motion: bool,
    crop_predictions: &[usize],
    progress: &indicatif::ProgressBar,
) -> Result<FramesReport, ModelError> {
    let to_model = fer_to_model(analyzer.classifier())?;
    let side = analyzer.classifier().metadata().input_size;
    progress.set_length(faces.len() as u64);
    let results: Vec<(FrameOutcome, Option<MovingFace>)> = faces
        .par_iter()
        .enumerate()
        .map(|(index, face)| {
            let spec = FrameSpec::draw(seed, index as u64);
            let outcome = run_frame(analyzer, &face.pixels, side, &spec, geometries)?;
            let moving = if motion {
                run_moving_face(analyzer, &face.pixels, side, &spec, &spec.moved(seed, index as u64))?
            } else {
                None
            };
            progress.inc(1);
            Ok((outcome, moving))
        })
        .collect::<Result<_, ModelError>>()?;
    progress.finish_and_clear();
    let (outcomes, moving): (Vec<FrameOutcome>, Vec<Option<MovingFace>>) = results.into_iter().unzip();
    let names = &analyzer.classifier().metadata().class_names;
    let tally = |predicted: &dyn Fn(usize, &FrameOutcome) -> Option<usize>| {
        let mut confusion = Confusion::new(names.len());
        for (index, (face, outcome)) in faces.iter().zip(&outcomes).enumerate() {
            if let Some(class) = predicted(index, outcome) {
                confusion.add(to_model[face.label], class);
            }
        }
        confusion.report(names)
    };
    let crops = tally(&|index, _| crop_predictions.get(index).copied());
    let crops_of_found = tally(&|index, outcome| outcome.found.as_ref().and(crop_predictions.get(index).copied()));
    let placed_square = tally(&|_, outcome| Some(outcome.placed_prediction));
    let moving_tally =
        |pick: fn(&MovingFace) -> &Emotion| tally(&|index, _| moving[index].as_ref().map(|m| pick(m).top().0));
    let motion = motion.then(|| MotionReport {
        max_shift_px: MOTION_SHIFT_PX,
        max_scale_change: MOTION_SCALE,
        max_turn_degrees: MOTION_TURN_DEGREES,
        both: moving_tally(|m| &m.both),
        paired: moving_tally(|m| &m.paired),
        alone: moving_tally(|m| &m.alone),
    });
    let geometries = geometries
        .iter()
        .enumerate()
        .map(|(g, &crop)| {
            let mut all_faces = Confusion::counting_missed(names.len());
            let mut found_faces = Confusion::new(names.len());
            let mut crop_iou = Vec::new();
            let mut crop_in_square = Vec::new();
            for (face, outcome) in faces.iter().zip(&outcomes) {
                let truth = to_model[face.label];
                match outcome.found.as_ref().and_then(|found| found.per_geometry.get(g)) {
                    Some(&(predicted, iou, seen)) => {
                        all_faces.add(truth, predicted);
                        found_faces.add(truth, predicted);
                        crop_iou.push(iou);
                        crop_in_square.push(seen);
                    }
                    None => all_faces.add_missed(truth),
                }
            }
            GeometryReport {
                crop,
                mean_crop_iou: mean(&crop_iou),
                crop_in_square: CropSpread::of(&crop_in_square),
                all_faces: all_faces.report(names),
                found_faces: found_faces.report(names),
            }
        })
        .collect();
    Ok(FramesReport {
        seed,
        frame: [FRAME_WIDTH, FRAME_HEIGHT],
        face_sides: [*FACE_SIDES.start(), *FACE_SIDES.end()],
        max_tilt_degrees: MAX_TILT_DEGREES,
        detector: analyzer.detector().range(),
        min_face_score: analyzer.detector().min_score(),
        refine: analyzer.detector().refines(),
        detections: count_detections(&outcomes),
        crops,
        crops_of_found,
        placed_square,
        geometries,
        motion,
    })
}

fn mean(values: &[f32]) -> f64 {
    mean_of(values.iter().map(|&v| v as f64), values.len())
}

fn mean_of(values: impl Iterator<Item = f64>, count: usize) -> f64 {
    if count == 0 {
        0.0
    } else {
        values.sum::<f64>() / count as f64
    }
}

fn count_detections(outcomes: &[FrameOutcome]) -> DetectionCounts {
    let count = |keep: &dyn Fn(&FrameOutcome) -> bool| outcomes.iter().filter(|o| keep(o)).count() as u64;
    let (lowest, highest) = (*FACE_SIDES.start(), *FACE_SIDES.end());
    let width = (highest - lowest) / SIDE_BINS as f32;
    let by_side = (0..SIDE_BINS)
        .map(|bin| {
            let (from, to) = (lowest + width * bin as f32, lowest + width * (bin + 1) as f32);
            // The last bin holds the top of the range too.
            let inside = |o: &FrameOutcome| o.side >= from && (o.side < to || bin + 1 == SIDE_BINS);
            SideBin { from, to, frames: count(&|o| inside(o)), found: count(&|o| inside(o) && o.found.is_some()) }
        })
        .collect();
    let box_ious: Vec<f32> = outcomes.iter().filter_map(|o| o.found.as_ref().map(|f| f.box_iou)).collect();
    DetectionCounts {
        none: count(&|o| o.detections == 0),
        one: count(&|o| o.detections == 1),
        several: count(&|o| o.detections > 1),
        found: box_ious.len() as u64,
        match_iou: MATCH_IOU,
        mean_box_iou: mean(&box_ious),
        by_side,
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn describe(crop: &CropSettings) -> String {
    format!(
        "margin {:+.2}, offset {:+.2}, {}",
        crop.margin,
        crop.offset_y,
        if crop.upright { "upright" } else { "not rotated" }
    )
}

fn recall(report: &AccuracyReport, class: &str) -> f64 {
    report.per_class.get(class).and_then(|m| m.get("recall")).and_then(|v| v.as_f64()).unwrap_or(0.0)
}

impl CropSpread {
    /// One line per quantity: mean, standard deviation and percentiles.
    fn to_text(&self) -> String {
        let rows = [
            ("scale (crop / square)", &self.scale),
            ("offset x (square sides)", &self.offset_x),
            ("offset y (square sides)", &self.offset_y),
            ("rotation (degrees)", &self.rotation_degrees),
        ];
        let mut text = "crop on the placed square, found faces: mean, std; percentiles 5 25 50 75 95\n".to_string();
        for (name, s) in rows {
            let [p5, p25, p50, p75, p95] = s.percentiles;
            text += &format!(
                "  {name:<24}{:>8.3}{:>8.3};{:>8.3}{:>8.3}{:>8.3}{:>8.3}{:>8.3}\n",
                s.mean, s.std, p5, p25, p50, p75, p95
            );
        }
        text
    }
}

impl MotionReport {
    fn to_text(&self) -> String {
        let mut text = format!(
            "\n\nmoving faces: a second frame each, the face moved up to {} px, scaled up to {:.0}%, turned up to {} \
             degrees; found in both frames: {}\naccuracy on the second frame, classify.mirror =\n",
            self.max_shift_px,
            self.max_scale_change * 100.0,
            self.max_turn_degrees,
            self.both.n
        );
        for (mode, report) in [
            ("always (both images of this frame)", &self.both),
            ("alternate (this frame's mirror image, the frame before's face)", &self.paired),
            ("off (this frame's face alone)", &self.alone),
        ] {
            text += &format!("  {mode:<64}{:>8.2}%  macro-F1 {:.4}\n", report.accuracy * 100.0, report.macro_f1);
        }
        text
    }
}

impl FramesReport {
    fn frames(&self) -> u64 {
        let d = &self.detections;
        d.none + d.one + d.several
    }

    /// One geometry in full: crops and frames, over all faces and over the found ones, side by side.
    fn side_by_side(&self, geometry: &GeometryReport) -> String {
        let columns = [&self.crops, &geometry.all_faces, &self.crops_of_found, &geometry.found_faces];
        let mut text = format!(
            "crop: {}; mean IoU of the crop with the placed square {:.3}\n{}\
             frame cut at the placed square (no detector): accuracy {:.2}%, macro-F1 {:.4}\n\n{:<18}",
            describe(&geometry.crop),
            geometry.mean_crop_iou,
            geometry.crop_in_square.to_text(),
            self.placed_square.accuracy * 100.0,
            self.placed_square.macro_f1,
            "",
        );
        for heading in ["crops", "frames, all", "difference", "crops, found", "frames, found", "difference"] {
            text += &format!("{heading:>14}");
        }
        let mut row = |label: String, values: [f64; 4]| {
            text += &format!("\n{label:<18}");
            let [crops, all, crops_found, found] = values;
            for value in [crops, all, all - crops, crops_found, found, found - crops_found] {
                text += &format!("{value:>14.4}");
            }
        };
        row("accuracy".into(), columns.map(|r| r.accuracy));
        row("macro-F1".into(), columns.map(|r| r.macro_f1));
        for class in self.crops.per_class.keys() {
            row(format!("recall {class}"), columns.map(|r| recall(r, class)));
        }
        text + "\n\nframes, all faces (a face not found counts wrong):\n" + &geometry.all_faces.to_text()
    }

    /// Several geometries: one row each, then the best by accuracy and by crop IoU.
    fn sweep(&self) -> String {
        let mut text = format!(
            "crops: accuracy {:.2}% over all faces, {:.2}% over the found ones\n\n{:<42}{:>10}{:>12}{:>14}{:>16}{:>16}\n",
            self.crops.accuracy * 100.0,
            self.crops_of_found.accuracy * 100.0,
            "crop",
            "crop IoU",
            "acc, all",
            "acc, found",
            "found - crops",
            "macro-F1, found"
        );
        for g in &self.geometries {
            text += &format!(
                "{:<42}{:>10.3}{:>11.2}%{:>13.2}%{:>16.2}{:>16.4}\n",
                describe(&g.crop),
                g.mean_crop_iou,
                g.all_faces.accuracy * 100.0,
                g.found_faces.accuracy * 100.0,
                (g.found_faces.accuracy - self.crops_of_found.accuracy) * 100.0,
                g.found_faces.macro_f1
            );
        }
        let best = |key: fn(&GeometryReport) -> f64| {
            self.geometries.iter().max_by(|a, b| key(a).total_cmp(&key(b))).map(|g| describe(&g.crop))
        };
        if let (Some(accuracy), Some(iou)) = (best(|g| g.found_faces.accuracy), best(|g| g.mean_crop_iou)) {
            text += &format!("\nbest accuracy (found faces): {accuracy}\nbest crop IoU: {iou}\n");
        }
        text
    }
}

impl Report for FramesReport {
    fn to_text(&self) -> String {
        let d = &self.detections;
        let frames = self.frames();
        let mut text = format!(
            "{frames} faces, each in its own {}x{} frame (seed {}): side {}-{} px, tilt up to {} degrees\n",
            self.frame[0], self.frame[1], self.seed, self.face_sides[0], self.face_sides[1], self.max_tilt_degrees
        );
        text += &format!(
            "detector: BlazeFace {} range, min score {}{}\n",
            self.detector.name(),
            self.min_face_score,
            if self.refine { ", each face detected again in a window around it" } else { "" }
        );
        text += &format!(
            "detections per frame: none {} ({:.2}%), one {} ({:.2}%), several {} ({:.2}%)\n",
            d.none,
            percent(d.none, frames),
            d.one,
            percent(d.one, frames),
            d.several,
            percent(d.several, frames)
        );
        text += &format!(
            "placed face found (box IoU >= {}): {} of {frames} ({:.2}%), mean box IoU {:.3}\nfound by face side:",
            d.match_iou,
            d.found,
            percent(d.found, frames),
            d.mean_box_iou
        );
        for bin in &d.by_side {
            text += &format!("  {}-{} px {:.1}%", bin.from, bin.to, percent(bin.found, bin.frames));
        }
        text += "\n\n";
        text += &match self.geometries.as_slice() {
            [one] => self.side_by_side(one),
            _ => self.sweep(),
        };
        if let Some(motion) = &self.motion {
            text += &motion.to_text();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_the_same_for_a_seed_and_index_and_differs_otherwise() {
        let face: Vec<u8> = (0..48 * 48).map(|i| (i % 251) as u8).collect();
        let first = FrameSpec::draw(7, 3);
        assert_eq!(first, FrameSpec::draw(7, 3));
        assert_eq!(first.render(&face, 48).rgb, FrameSpec::draw(7, 3).render(&face, 48).rgb);
        assert_ne!(first, FrameSpec::draw(8, 3));
        assert_ne!(first, FrameSpec::draw(7, 4));
    }

    #[test]
    fn drawn_faces_stay_inside_the_frame_within_the_stated_ranges() {
        for index in 0..200 {
            let spec = FrameSpec::draw(1, index);
            let p = spec.placement;
            assert!(FACE_SIDES.contains(&p.side) && p.angle.abs() <= MAX_TILT_DEGREES.to_radians() + 1e-6);
            assert!(CONTRAST.contains(&spec.contrast) && BRIGHTNESS.contains(&spec.brightness));
            for corner in p.corners() {
                assert!((-1e-3..=FRAME_WIDTH as f32 + 1e-3).contains(&corner.x), "{p:?}");
                assert!((-1e-3..=FRAME_HEIGHT as f32 + 1e-3).contains(&corner.y), "{p:?}");
            }
        }
    }

    #[test]
    fn a_moved_frame_is_the_same_for_a_seed_and_index_and_moves_the_face_within_the_limits() {
        for index in 0..200 {
            let first = FrameSpec::draw(5, index);
            let second = first.moved(5, index);
            assert_eq!(second, first.moved(5, index));
            let (p, q) = (first.placement, second.placement);
            // The scene stays; the grain and the face's place change.
            assert_eq!(
                (second.background, second.contrast, second.brightness),
                (first.background, first.contrast, first.brightness)
            );
            assert_ne!(second.noise_seed, first.noise_seed);
            assert!((q.side / p.side - 1.0).abs() <= MOTION_SCALE + 1e-6, "{p:?} {q:?}");
            assert!((q.angle - p.angle).abs() <= MOTION_TURN_DEGREES.to_radians() + 1e-6, "{p:?} {q:?}");
            for corner in q.corners() {
                assert!((-1e-3..=FRAME_WIDTH as f32 + 1e-3).contains(&corner.x), "{q:?}");
                assert!((-1e-3..=FRAME_HEIGHT as f32 + 1e-3).contains(&corner.y), "{q:?}");
            }
            // Faces clear of the border move by the drawn shift alone.
            let reach = q.side * std::f32::consts::SQRT_2;
            if (reach..FRAME_WIDTH as f32 - reach).contains(&p.center.x)
                && (reach..FRAME_HEIGHT as f32 - reach).contains(&p.center.y)
            {
                assert!((q.center.x - p.center.x).abs() <= MOTION_SHIFT_PX + 1e-4, "{p:?} {q:?}");
                assert!((q.center.y - p.center.y).abs() <= MOTION_SHIFT_PX + 1e-4, "{p:?} {q:?}");
            }
        }
        assert_ne!(FrameSpec::draw(5, 1).moved(5, 1).placement, FrameSpec::draw(5, 1).placement);
    }

    #[test]
    fn the_face_lands_on_its_square_with_its_contrast_and_brightness() {
        // A flat face of level 100 on a black, noiseless background, untilted.
        let spec = FrameSpec {
            placement: Placement { center: Point { x: 100.0, y: 80.0 }, side: 64.0, angle: 0.0 },
            contrast: 0.5,
            brightness: 10.0,
            background: Background::Gradient { from: [0.0; 3], to: [0.0; 3], angle: 0.0 },
            noise: 0.0,
            noise_seed: 0,
        };
        let frame = spec.render(&[100; 48 * 48], 48);
        // (100 - 128) × 0.5 + 128 + 10 = 124 inside the square x 68..132, y 48..112.
        assert_eq!(frame.rgb.get_pixel(68, 48).0, [124; 3]);
        assert_eq!(frame.rgb.get_pixel(131, 111).0, [124; 3]);
        assert_eq!(frame.rgb.get_pixel(67, 80).0, [0; 3]);
        assert_eq!(frame.rgb.get_pixel(132, 80).0, [0; 3]);
        assert_eq!(frame.rgb.get_pixel(100, 112).0, [0; 3]);
    }

    #[test]
    fn a_crop_is_measured_in_the_tilted_squares_own_axes() {
        let placement = Placement { center: Point { x: 300.0, y: 200.0 }, side: 80.0, angle: 10f32.to_radians() };
        // 0.1 sides right and 0.05 up along the square's own axes, 1.2 times its side, turned
        // 5 degrees further.
        let (sin, cos) = placement.angle.sin_cos();
        let (along, down) = (0.1 * 80.0, -0.05 * 80.0);
        let (cx, cy) = (300.0 + along * cos - down * sin, 200.0 + along * sin + down * cos);
        let crop = AffineMap::rotated_square(cx, cy, 96.0, 15f32.to_radians(), 1);
        let seen = CropInSquare::measure(&crop, &placement);
        for (got, want) in
            [(seen.scale, 1.2), (seen.offset_x, 0.1), (seen.offset_y, -0.05), (seen.rotation_degrees, 5.0)]
        {
            assert!((got - want).abs() < 1e-4, "{seen:?}");
        }
        // The placed square itself, seen from itself.
        let same = CropInSquare::measure(&placement.face_to_frame(1), &placement);
        for (got, want) in [(same.scale, 1.0), (same.offset_x, 0.0), (same.offset_y, 0.0), (same.rotation_degrees, 0.0)]
        {
            assert!((got - want).abs() < 1e-4, "{same:?}");
        }
    }

    #[test]
    fn a_spread_has_the_mean_deviation_and_nearest_rank_percentiles() {
        let values: Vec<f32> = (1..=20).rev().map(|v| v as f32).collect();
        let spread = Spread::of(&values);
        assert_eq!(spread.mean, 10.5);
        // Population deviation of 1..=n: sqrt((n² - 1) / 12).
        assert!((spread.std - (399.0f64 / 12.0).sqrt()).abs() < 1e-9);
        assert_eq!(spread.percentiles, [1.0, 5.0, 10.0, 15.0, 19.0]);
        assert_eq!(Spread::of(&[]), Spread { mean: 0.0, std: 0.0, percentiles: [0.0; 5] });
    }
}
