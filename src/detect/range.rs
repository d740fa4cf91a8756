//! The two BlazeFace detectors emotion-pi ships and what sets them apart.

use serde::{Deserialize, Serialize};

use super::anchors::AnchorOptions;

/// Which BlazeFace: MediaPipe's short-range (front camera) or longer-range (back camera) model.
///
/// The long-range model sees the frame at twice the resolution, so it finds much smaller faces,
/// for six times the multiply-adds per frame (README "Near or far: the face detector").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DetectorRange {
    /// `face_detection_front`: 128×128 input, faces filling a good part of the frame.
    #[default]
    Short,
    /// `face_detection_back`: 256×256 input, faces further from the camera.
    Long,
}

impl DetectorRange {
    /// The shipped model's file, relative to the models folder.
    pub fn model_file(self) -> &'static str {
        match self {
            Self::Short => "blazeface/face_detection_front_128x128_barracuda.onnx",
            Self::Long => "blazeface/face_detection_back_256x256_barracuda.onnx",
        }
    }

    /// The detector whose square input has this side in pixels, if it is one of the two.
    pub fn from_input_size(side: usize) -> Option<Self> {
        [Self::Short, Self::Long].into_iter().find(|range| range.anchor_options().input_width as usize == side)
    }

    /// The model's SSD anchor grid.
    pub fn anchor_options(self) -> AnchorOptions {
        match self {
            Self::Short => AnchorOptions::blazeface_short_range(),
            Self::Long => AnchorOptions::blazeface_long_range(),
        }
    }

    /// The face score MediaPipe's graph for this model requires (`min_score_thresh`).
    pub fn default_min_score(self) -> f32 {
        match self {
            Self::Short => 0.5,
            Self::Long => 0.65,
        }
    }

    /// The name users write in `detect.range` and `--detector-range`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Short => "short",
            Self::Long => "long",
        }
    }
}
