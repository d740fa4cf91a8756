//! A captured or decoded picture, in the two forms the pipeline uses.

use image::{GrayImage, RgbImage};

/// One frame: RGB for the face detector and the display, grayscale (BT.601 luma) for the classifier.
///
/// Both are kept because camera formats deliver luma for free (the Y plane) while
/// the detector needs colour; computing one from the other per face would repeat work.
#[derive(Debug, Clone)]
pub struct Frame {
    pub rgb: RgbImage,
    pub gray: GrayImage,
}

impl Frame {
    /// Frame from RGB pixels, computing the luma plane.
    pub fn from_rgb(rgb: RgbImage) -> Self {
        let luma = rgb.as_raw().chunks_exact(3).map(|p| luma_bt601(p[0], p[1], p[2])).collect();
        // The buffer has exactly width × height values, so from_raw cannot fail.
        let gray = GrayImage::from_raw(rgb.width(), rgb.height(), luma).unwrap_or_default();
        Self { rgb, gray }
    }

    pub fn width(&self) -> u32 {
        self.rgb.width()
    }

    pub fn height(&self) -> u32 {
        self.rgb.height()
    }
}

/// ITU-R BT.601 luma, the Y of JPEG and of the YUV camera formats, rounded to nearest.
pub fn luma_bt601(r: u8, g: u8, b: u8) -> u8 {
    // Fixed-point weights 0.299, 0.587, 0.114 scaled by 2^16.
    let y = 19595 * r as u32 + 38470 * g as u32 + 7471 * b as u32;
    ((y + 32768) >> 16) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_bt601_weights() {
        for &(r, g, b) in &[(255u8, 0u8, 0u8), (0, 255, 0), (0, 0, 255), (10, 200, 77), (255, 255, 255)] {
            let expected = (0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64).round() as u8;
            assert_eq!(luma_bt601(r, g, b), expected, "rgb {r} {g} {b}");
        }
    }
}
