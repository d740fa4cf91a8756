//! Cutting an upright face out of a frame for the classifier.

use std::ops::RangeInclusive;

use image::GrayImage;
use serde::Serialize;

use crate::detect::{landmark, Face};
use crate::resample::{resample_into, AffineMap, Normalize, Output, Outside, SourceImage};

/// Allowed crop margins (`emotion_pi.crop_margin`, `detect.crop_margin`, `--crop-margin`):
/// from a square half the box's side to one three times it.
pub const CROP_MARGIN_RANGE: RangeInclusive<f32> = -0.5..=2.0;
/// Allowed vertical offsets of the crop centre (`emotion_pi.crop_offset_y`), in box sides.
pub const CROP_OFFSET_RANGE: RangeInclusive<f32> = -0.5..=0.5;

/// Where the classifier's square crop lies relative to the detector's box.
///
/// The model's ONNX metadata says which geometry matches the faces it was trained on
/// (`ClassifierMetadata::crop`); [`CropOverrides`] are what a user sets on top.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CropSettings {
    /// Extra side length as a fraction of the box's larger side (0.2 = 20% larger square,
    /// negative = a square inside the box).
    pub margin: f32,
    /// Shift of the crop centre along the face's vertical axis (towards the chin when
    /// positive), as a fraction of the box's larger side.
    pub offset_y: f32,
    /// Rotate the crop so the eyes are level.
    pub upright: bool,
}

impl Default for CropSettings {
    /// The geometry for models whose metadata names none: the box with 10% margin, centred
    /// and upright, as the runtime cropped before the geometry was stored with the model.
    fn default() -> Self {
        Self { margin: 0.1, offset_y: 0.0, upright: true }
    }
}

/// Parts of the crop geometry a user chose (config file, flags); `None` keeps the model's.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CropOverrides {
    pub margin: Option<f32>,
    pub offset_y: Option<f32>,
    pub upright: Option<bool>,
}

impl CropOverrides {
    /// `model`'s geometry with the chosen parts replaced.
    pub fn apply(&self, model: CropSettings) -> CropSettings {
        CropSettings {
            margin: self.margin.unwrap_or(model.margin),
            offset_y: self.offset_y.unwrap_or(model.offset_y),
            upright: self.upright.unwrap_or(model.upright),
        }
    }

    /// Every part chosen: exactly `settings`, whatever the model says.
    pub fn all(settings: CropSettings) -> Self {
        Self { margin: Some(settings.margin), offset_y: Some(settings.offset_y), upright: Some(settings.upright) }
    }
}

/// The map from crop pixels to frame pixels for `face`: a square around the box centre
/// (moved by `offset_y`), rotated by the eye line's angle when `settings.upright`.
pub fn crop_map(face: &Face, settings: &CropSettings, out_size: u32) -> AffineMap {
    let center = face.bbox.center();
    let box_side = face.bbox.width.max(face.bbox.height);
    let side = box_side * (1.0 + settings.margin);
    let angle = if settings.upright {
        let (right, left) = (face.keypoints[landmark::RIGHT_EYE], face.keypoints[landmark::LEFT_EYE]);
        (left.y - right.y).atan2(left.x - right.x)
    } else {
        0.0
    };
    // "Down" in the face's own frame: the crop's vertical axis after the rotation.
    let shift = settings.offset_y * box_side;
    let (sin, cos) = angle.sin_cos();
    AffineMap::rotated_square(center.x - shift * sin, center.y + shift * cos, side, angle, out_size)
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
    let output = Output { buffer: out, width: out_size, height: out_size, planar: false };
    resample_into(source, &crop_map(face, settings, out_size), output, Outside::ClampToEdge, normalize)
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
        let map = crop_map(&face, &CropSettings { margin: 0.2, offset_y: 0.0, upright: true }, 48);
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

    #[test]
    fn offset_moves_the_centre_towards_the_chin_of_a_tilted_face() {
        // Eyes on a 90 degree line (the face lies on its side, chin to the left): "down" in
        // the face is -x in the frame. Box side 20, offset 0.25: the centre moves 5 px.
        let face = face_with_eyes(Point { x: 20.0, y: 10.0 }, Point { x: 20.0, y: 30.0 });
        let settings = CropSettings { margin: 0.0, offset_y: 0.25, upright: true };
        let map = crop_map(&face, &settings, 48);
        let [[a, b, c], [d, e, f]] = map.m;
        // The crop's centre pixel (24, 24) in the frame.
        let (x, y) = (a * 24.0 + b * 24.0 + c, d * 24.0 + e * 24.0 + f);
        assert!((x - 15.0).abs() < 1e-4 && (y - 20.0).abs() < 1e-4, "({x}, {y})");
        let upright_off = crop_map(&face, &CropSettings { upright: false, ..settings }, 48);
        let [[a, b, c], [d, e, f]] = upright_off.m;
        let (x, y) = (a * 24.0 + b * 24.0 + c, d * 24.0 + e * 24.0 + f);
        assert!((x - 20.0).abs() < 1e-4 && (y - 25.0).abs() < 1e-4, "({x}, {y})");
    }

    /// A `side`-square gray picture of seeded noise: detail down to single pixels, as a
    /// sharp camera picture has and FER2013's blurred faces do not.
    fn noise(side: u32) -> GrayImage {
        let mut state = 0x2545_f491_u32;
        GrayImage::from_fn(side, side, |_, _| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            image::Luma([(state >> 24) as u8])
        })
    }

    #[test]
    fn a_face_larger_than_the_crop_is_averaged_not_sampled() {
        // A 480 px face box into 48 px: each crop pixel is the mean of the 10x10 block of the
        // picture under it. Four pixels read bilinearly would be noise, not that mean.
        let picture = noise(520);
        let face = Face {
            bbox: BoundingBox { x: 10.0, y: 20.0, width: 480.0, height: 480.0 },
            ..face_with_eyes(Point { x: 0.0, y: 0.0 }, Point { x: 1.0, y: 0.0 })
        };
        let settings = CropSettings { margin: 0.0, offset_y: 0.0, upright: false };
        let mut crop = vec![0f32; 48 * 48];
        assert!(crop_face_into(&picture, &face, &settings, 48, Normalize { scale: 1.0, offset: 0.0 }, &mut crop));
        for (v, row) in crop.chunks_exact(48).enumerate() {
            for (u, &value) in row.iter().enumerate() {
                let block =
                    (0..10).flat_map(|dy| (0..10).map(move |dx| (10 + u as u32 * 10 + dx, 20 + v as u32 * 10 + dy)));
                let mean = block.map(|(x, y)| f32::from(picture.get_pixel(x, y)[0])).sum::<f32>() / 100.0;
                assert!((value - mean).abs() < 0.01, "crop pixel ({u}, {v}): {value} against {mean}");
            }
        }
    }

    #[test]
    fn overrides_replace_only_what_they_name() {
        let model = CropSettings { margin: 0.3, offset_y: 0.05, upright: false };
        assert_eq!(CropOverrides::default().apply(model), model);
        let margin_only = CropOverrides { margin: Some(0.1), ..CropOverrides::default() };
        assert_eq!(margin_only.apply(model), CropSettings { margin: 0.1, ..model });
        assert_eq!(CropOverrides::all(CropSettings::default()).apply(model), CropSettings::default());
    }
}
