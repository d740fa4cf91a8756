//! Cutting an upright face out of a frame for the classifier.

use image::GrayImage;

use crate::detect::{landmark, Face};
use crate::resample::{warp_into, AffineMap, Normalize, Outside, SourceImage};

/// How much context around the detector's box goes into the crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropSettings {
    /// Extra side length as a fraction of the box's larger side (0.2 = 20% larger square).
    pub margin: f32,
    /// Rotate the crop so the eyes are level.
    pub upright: bool,
}

impl Default for CropSettings {
    /// FER2013 faces are tightly framed from the brow to the chin, about BlazeFace's box;
    /// a small margin keeps the jaw and forehead that expressions move.
    fn default() -> Self {
        Self { margin: 0.1, upright: true }
    }
}

/// The map from crop pixels to frame pixels for `face`: a square around the box centre,
/// rotated by the eye line's angle when `settings.upright`.
pub fn crop_map(face: &Face, settings: &CropSettings, out_size: u32) -> AffineMap {
    let center = face.bbox.center();
    let side = face.bbox.width.max(face.bbox.height) * (1.0 + settings.margin);
    let angle = if settings.upright {
        let (right, left) = (face.keypoints[landmark::RIGHT_EYE], face.keypoints[landmark::LEFT_EYE]);
        (left.y - right.y).atan2(left.x - right.x)
    } else {
        0.0
    };
    AffineMap::rotated_square(center.x, center.y, side, angle, out_size)
}

/// Writes the normalised `out_size`² crop of `face` from `gray` into `out`.
pub fn crop_face_into(
    gray: &GrayImage,
    face: &Face,
    settings: &CropSettings,
    out_size: u32,
    normalize: Normalize,
    out: &mut [f32],
) -> bool {
    let source = SourceImage { data: gray.as_raw(), width: gray.width(), height: gray.height(), channels: 1 };
    warp_into(source, &crop_map(face, settings, out_size), out, out_size, out_size, Outside::ClampToEdge, normalize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{BoundingBox, Point};

    fn face_with_eyes(right: Point, left: Point) -> Face {
        Face {
            bbox: BoundingBox { x: 10.0, y: 10.0, width: 20.0, height: 20.0 },
            score: 1.0,
            keypoints: [right, left, right, left, right, left],
        }
    }

    #[test]
    fn level_eyes_give_an_axis_aligned_square_with_margin() {
        let face = face_with_eyes(Point { x: 15.0, y: 18.0 }, Point { x: 25.0, y: 18.0 });
        let map = crop_map(&face, &CropSettings { margin: 0.2, upright: true }, 48);
        // side 24 px over 48 output px: 0.5 px per output px, centred on (20, 20).
        let [[a, b, c], [d, e, f]] = map.m;
        assert!((a - 0.5).abs() < 1e-6 && b.abs() < 1e-6 && d.abs() < 1e-6 && (e - 0.5).abs() < 1e-6);
        assert!((c - 8.0).abs() < 1e-5 && (f - 8.0).abs() < 1e-5);
    }

    #[test]
    fn tilted_eyes_are_levelled() {
        // Eyes on a 30 degree line; the crop's horizontal axis must follow it in the frame.
        let angle = 30f32.to_radians();
        let face = face_with_eyes(
            Point { x: 15.0, y: 15.0 },
            Point { x: 15.0 + 10.0 * angle.cos(), y: 15.0 + 10.0 * angle.sin() },
        );
        let map = crop_map(&face, &CropSettings::default(), 48);
        let [[a, _, _], [d, _, _]] = map.m;
        assert!((d.atan2(a) - angle).abs() < 1e-5);
    }
}
