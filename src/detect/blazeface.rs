//! MediaPipe BlazeFace (short range 128×128, or long range 256×256) run by tract.

use std::path::Path;
use std::sync::Arc;

use image::RgbImage;
use tract_onnx::prelude::*;

use super::anchors::anchor_centers;
use super::nms::weighted_nms;
use super::range::DetectorRange;
use super::Face;
use crate::geometry::{BoundingBox, Point};
use crate::model::{ConvLayout, LoadedOnnx, ModelError};
use crate::resample::{resample_into, AffineMap, Normalize, Output, Outside, SourceImage};

const VALUES_PER_ANCHOR: usize = 16;
const KEYPOINTS: usize = 6;

/// Detector tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorSettings {
    /// Minimum face score (0..1) for a detection to count; `None`, the one MediaPipe uses
    /// with the loaded model ([`DetectorRange::default_min_score`]).
    pub min_score: Option<f32>,
    /// Detections overlapping more than this (IoU) are merged into one face.
    pub iou_threshold: f32,
    /// Detect each face found a second time, in a window around it ([`TractDetector::refine`]),
    /// for a box that frames it better, at one more detector run per face.
    pub refine: bool,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        Self { min_score: None, iou_threshold: 0.3, refine: false }
    }
}

/// Side of the window a face is detected again in, in face box sides: the face then fills
/// half the window's width, about the share of a selfie the short-range model was made
/// for (the windows compared are in the model card, "Whole frames").
const REFINE_WINDOW: f32 = 2.0;

/// Least overlap (IoU) of the second detection with the first for it to replace it; a
/// window that shows another face, or none, leaves the first box.
const REFINE_MIN_IOU: f32 = 0.3;

/// How a frame was fitted into the square model input: scaled by `scale`, centred with
/// `pad_x`/`pad_y` pixels of black bars (in model-input pixels, not rounded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    pub input_size: f32,
}

impl Letterbox {
    /// The letterbox that fits a `width`×`height` frame into an `input_size` square.
    pub fn fit(width: u32, height: u32, input_size: u32) -> Self {
        let size = input_size as f32;
        let scale = (size / width as f32).min(size / height as f32);
        Self {
            scale,
            pad_x: (size - width as f32 * scale) / 2.0,
            pad_y: (size - height as f32 * scale) / 2.0,
            input_size: size,
        }
    }

    /// The map that shows the `side`-pixel square whose top-left corner is at `x`, `y` of a
    /// frame in an `input_size` square.
    pub fn window(x: f32, y: f32, side: f32, input_size: u32) -> Self {
        let size = input_size as f32;
        let scale = size / side;
        Self { scale, pad_x: -x * scale, pad_y: -y * scale, input_size: size }
    }

    /// Frame pixel coordinates of a point given in normalised (0..1) model-input coordinates.
    pub fn to_frame(&self, x: f32, y: f32) -> Point {
        Point { x: (x * self.input_size - self.pad_x) / self.scale, y: (y * self.input_size - self.pad_y) / self.scale }
    }
}

/// BlazeFace with its anchors, optimised once and then run per frame.
///
/// `detect` takes `&self`, so one detector serves several threads.
pub struct TractDetector {
    model: Arc<TypedRunnableModel>,
    anchors: Vec<(f32, f32)>,
    range: DetectorRange,
    input_size: u32,
    /// The model takes its input channels-first (its leading transpose was taken out at load).
    channels_first: bool,
    min_score: f32,
    iou_threshold: f32,
    refine: bool,
    path: std::path::PathBuf,
}

impl TractDetector {
    /// Loads and optimises the BlazeFace ONNX at `path`; its input size tells which of the two
    /// detectors it is, and so its anchors and default minimum score.
    pub fn load(path: &Path, settings: DetectorSettings) -> Result<Self, ModelError> {
        let loaded = LoadedOnnx::read(path)?;
        let range = input_range(&loaded)?;
        let options = range.anchor_options();
        let input_size = options.input_width;
        let anchors = anchor_centers(&options);
        let side = input_size as usize;
        let channels_first = loaded.input_made_channels_first;
        let shape = if channels_first { [1, 3, side, side] } else { [1, side, side, 3] };
        let model = loaded.runnable(&shape, ConvLayout::AsExported)?;
        let detector = Self {
            model,
            anchors,
            range,
            input_size,
            channels_first,
            min_score: settings.min_score.unwrap_or_else(|| range.default_min_score()),
            iou_threshold: settings.iou_threshold,
            refine: settings.refine,
            path: path.to_owned(),
        };
        detector.check_outputs()?;
        Ok(detector)
    }

    /// The outputs must be two score tensors and two regressor tensors covering all anchors.
    fn check_outputs(&self) -> Result<(), ModelError> {
        let plan = self.model.model();
        let mut score_rows = 0;
        let mut regressor_rows = 0;
        for index in 0..plan.outputs.len() {
            let fact = plan.output_fact(index).map_err(|cause| ModelError::Load { path: self.path.clone(), cause })?;
            let dims: Option<Vec<usize>> = fact.shape.as_concrete().map(|d| d.to_vec());
            match dims.as_deref() {
                Some([1, rows, 1]) => score_rows += rows,
                Some([1, rows, VALUES_PER_ANCHOR]) => regressor_rows += rows,
                other => {
                    return Err(ModelError::Unsupported {
                        path: self.path.clone(),
                        reason: format!(
                            "unexpected output shape {other:?}; expected BlazeFace {} range",
                            self.range.name()
                        ),
                    })
                }
            }
        }
        if score_rows != self.anchors.len() || regressor_rows != self.anchors.len() {
            return Err(ModelError::Unsupported {
                path: self.path.clone(),
                reason: format!(
                    "outputs cover {score_rows} scores and {regressor_rows} boxes, expected {} anchors",
                    self.anchors.len()
                ),
            });
        }
        Ok(())
    }

    /// The optimised plan, for profiling.
    pub fn plan(&self) -> &Arc<TypedRunnableModel> {
        &self.model
    }

    /// Side of the square model input in pixels.
    pub fn input_size(&self) -> u32 {
        self.input_size
    }

    /// Which of the two BlazeFace detectors this is.
    pub fn range(&self) -> DetectorRange {
        self.range
    }

    /// Whether [`Self::detect`] detects each face a second time ([`Self::refine`]).
    pub fn refines(&self) -> bool {
        self.refine
    }

    /// The minimum face score in effect: the user's, or the model's default.
    pub fn min_score(&self) -> f32 {
        self.min_score
    }

    /// The letterboxed, normalised (-1..1) input tensor for `image`, in the model's layout
    /// (channels-last as exported, channels-first once its leading transpose is taken out).
    pub fn preprocess(&self, image: &RgbImage) -> Result<(Tensor, Letterbox), ModelError> {
        let letterbox = Letterbox::fit(image.width(), image.height(), self.input_size);
        Ok((self.preprocess_with(image, &letterbox)?, letterbox))
    }

    /// The input tensor for what `letterbox` maps of `image` onto the model input; outside
    /// the image, black.
    pub fn preprocess_with(&self, image: &RgbImage, letterbox: &Letterbox) -> Result<Tensor, ModelError> {
        let size = self.input_size;
        let side = size as usize;
        let mut data = vec![0f32; side * side * 3];
        let source = SourceImage { data: image.as_raw(), width: image.width(), height: image.height(), channels: 3 };
        let map = AffineMap::scale_translate(letterbox.scale, letterbox.pad_x, letterbox.pad_y);
        let shape = if self.channels_first { [1, 3, side, side] } else { [1, side, side, 3] };
        let output = Output { buffer: &mut data, width: size, height: size, planar: self.channels_first };
        let (outside, normalize) = (Outside::Fill(0.0), Normalize { scale: 1.0 / 127.5, offset: -1.0 });
        // An empty image leaves the buffer at 0 and finds nothing; not worth an error path.
        resample_into(source, &map, output, outside, normalize);
        Tensor::from_shape(&shape, &data).map_err(|cause| ModelError::Run { path: self.path.clone(), cause })
    }

    /// Runs the model on a preprocessed input: raw score logits and regressors, anchor order.
    pub fn infer(&self, input: Tensor) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
        let run_error = |cause: anyhow::Error| ModelError::Run { path: self.path.clone(), cause };
        let outputs = self.model.run(tvec!(input.into())).map_err(run_error)?;
        let mut scores = Vec::with_capacity(self.anchors.len());
        let mut regressors = Vec::with_capacity(self.anchors.len() * VALUES_PER_ANCHOR);
        for output in &outputs {
            let view = output.try_as_plain_ram().map_err(run_error)?;
            let values = view.as_slice::<f32>().map_err(run_error)?;
            if output.shape().last() == Some(&1) {
                scores.extend_from_slice(values);
            } else {
                regressors.extend_from_slice(values);
            }
        }
        Ok((scores, regressors))
    }

    /// Faces from raw outputs: threshold, decode against the anchors, merge, map to frame pixels.
    pub fn decode(&self, scores: &[f32], regressors: &[f32], letterbox: &Letterbox) -> Vec<Face> {
        let size = self.input_size as f32;
        let candidates = self
            .anchors
            .iter()
            .zip(scores)
            .zip(regressors.chunks_exact(VALUES_PER_ANCHOR))
            .filter_map(|((&(ax, ay), &logit), r)| {
                let score = sigmoid(logit.clamp(-100.0, 100.0));
                if score < self.min_score {
                    return None;
                }
                let (cx, cy) = (r[0] / size + ax, r[1] / size + ay);
                let (w, h) = (r[2] / size, r[3] / size);
                let top_left = letterbox.to_frame(cx - w / 2.0, cy - h / 2.0);
                let bottom_right = letterbox.to_frame(cx + w / 2.0, cy + h / 2.0);
                let mut keypoints = [Point { x: 0.0, y: 0.0 }; KEYPOINTS];
                for (k, point) in keypoints.iter_mut().enumerate() {
                    *point = letterbox.to_frame(r[4 + 2 * k] / size + ax, r[5 + 2 * k] / size + ay);
                }
                Some(Face {
                    bbox: BoundingBox {
                        x: top_left.x,
                        y: top_left.y,
                        width: bottom_right.x - top_left.x,
                        height: bottom_right.y - top_left.y,
                    },
                    score,
                    keypoints,
                })
            })
            .collect();
        weighted_nms(candidates, self.iou_threshold)
    }

    /// All faces in `image`, best first; each detected again in its own window when the
    /// settings ask for it (then in the order of the first detection's scores).
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Face>, ModelError> {
        let (input, letterbox) = self.preprocess(image)?;
        let (scores, regressors) = self.infer(input)?;
        let faces = self.decode(&scores, &regressors, &letterbox);
        if !self.refine {
            return Ok(faces);
        }
        faces.into_iter().map(|face| self.refine(image, face)).collect()
    }

    /// `face` detected again in a square window twice its box's side, centred on it. The
    /// whole frame shows the short-range model a 640x480 frame at a fifth of its size, so a
    /// 150 px face is 30 px to it and its box is coarse; in the window the face is 64 px.
    /// The detection overlapping `face` most replaces it, if it overlaps enough. A box
    /// that is not a finite area of at least a pixel each way has no window to look in
    /// and stays as it is.
    pub fn refine(&self, image: &RgbImage, face: Face) -> Result<Face, ModelError> {
        let BoundingBox { x, y, width, height } = face.bbox;
        if ![x, y, width, height].iter().all(|v| v.is_finite()) || width < 1.0 || height < 1.0 {
            return Ok(face);
        }
        let side = width.max(height) * REFINE_WINDOW;
        let centre = face.bbox.center();
        let window = Letterbox::window(centre.x - side / 2.0, centre.y - side / 2.0, side, self.input_size);
        let (scores, regressors) = self.infer(self.preprocess_with(image, &window)?)?;
        let again = self
            .decode(&scores, &regressors, &window)
            .into_iter()
            .map(|found| (found.bbox.iou(&face.bbox), found))
            .filter(|(iou, _)| *iou >= REFINE_MIN_IOU)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        Ok(again.map_or(face, |(_, found)| found))
    }
}

/// The detector a model is, from its declared `1×side×side×3` input.
fn input_range(loaded: &LoadedOnnx) -> Result<DetectorRange, ModelError> {
    let unsupported = |reason: String| ModelError::Unsupported { path: loaded.path.clone(), reason };
    let shape = loaded
        .model
        .input_fact(0)
        .and_then(|fact| fact.shape.as_concrete_finite())
        .map_err(|cause| ModelError::Load { path: loaded.path.clone(), cause })?;
    // Named as exported, channels-last, whatever the load made of its leading transpose.
    let shape: Option<Vec<usize>> = shape.map(|dims| match *dims {
        [n, c, h, w] if loaded.input_made_channels_first => vec![n, h, w, c],
        _ => dims.to_vec(),
    });
    match shape.as_deref() {
        Some(&[1, side, width, 3]) if side == width => DetectorRange::from_input_size(side).ok_or_else(|| {
            unsupported(format!(
                "input 1x{side}x{side}x3 is neither BlazeFace short range (128x128) nor long range (256x256)"
            ))
        }),
        other => Err(unsupported(format!(
            "input shape {other:?}; expected BlazeFace's 1xNxNx3 (N = 128 short range, 256 long range)"
        ))),
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
