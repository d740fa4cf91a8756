//! Face detection: where the faces are in a frame, with six landmarks each.

mod anchors;
mod blazeface;
mod nms;
mod range;

pub use anchors::{anchor_centers, AnchorOptions};
pub use blazeface::{DetectorSettings, Letterbox, TractDetector};
pub use nms::weighted_nms;
pub use range::DetectorRange;

use crate::geometry::{BoundingBox, Point};

/// Index of each landmark in [`Face::keypoints`]. "Right" is the subject's right,
/// which appears on the left of an unmirrored image.
pub mod landmark {
    pub const RIGHT_EYE: usize = 0;
    pub const LEFT_EYE: usize = 1;
    pub const NOSE_TIP: usize = 2;
    pub const MOUTH_CENTER: usize = 3;
    pub const RIGHT_EAR: usize = 4;
    pub const LEFT_EAR: usize = 5;
}

/// One detected face in frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Face {
    pub bbox: BoundingBox,
    /// Detector confidence, 0..1.
    pub score: f32,
    /// See [`landmark`] for the order.
    pub keypoints: [Point; 6],
}
