//! Raw camera buffers → [`Frame`], for the pixel formats V4L2 webcams and
//! `rpicam-vid --codec yuv420` deliver.
//!
//! [`to_frame`] is the single entry point: it checks the buffer against the
//! format and size, then hands it to the YUV converter or the MJPEG decoder.

pub(crate) mod mjpeg;
mod yuv;

use std::fmt;

use image::{GrayImage, RgbImage};

use crate::frame::Frame;

/// Pixel layout of a raw camera buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// YUV 4:2:2 packed as `Y0 U Y1 V`; each U/V pair covers two horizontal pixels.
    Yuyv,
    /// YUV 4:2:0: the Y plane, then one plane of interleaved `U V` pairs, each covering a 2x2 block.
    Nv12,
    /// YUV 4:2:0 fully planar (V4L2 `YU12`, `rpicam-vid --codec yuv420`): Y, then U, then V.
    I420,
    /// 8-bit luma only.
    Grey,
    /// One JPEG image per buffer, as UVC webcams send it.
    Mjpeg,
}

impl PixelFormat {
    /// Format for a V4L2 FourCC code, accepting the common aliases `I420` and `JPEG`.
    pub fn from_fourcc(code: &[u8; 4]) -> Option<Self> {
        match code {
            b"YUYV" => Some(Self::Yuyv),
            b"NV12" => Some(Self::Nv12),
            b"YU12" | b"I420" => Some(Self::I420),
            b"GREY" => Some(Self::Grey),
            // V4L2_PIX_FMT_JPEG is what some UVC drivers report for the same stream.
            b"MJPG" | b"JPEG" => Some(Self::Mjpeg),
            _ => None,
        }
    }

    /// The canonical V4L2 FourCC code of this format.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            Self::Yuyv => *b"YUYV",
            Self::Nv12 => *b"NV12",
            Self::I420 => *b"YU12",
            Self::Grey => *b"GREY",
            Self::Mjpeg => *b"MJPG",
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fourcc().iter().try_for_each(|&b| fmt::Write::write_char(f, char::from(b)))
    }
}

/// Quantisation range of the Y, U and V codes (BT.601 coefficients either way); the
/// config names them `limited` and `full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum YuvRange {
    /// Studio swing: Y in 16–235, U/V in 16–240. The V4L2 default for YUYV/NV12 cameras.
    Limited,
    /// Full swing 0–255 for all three, as in JPEG.
    Full,
}

/// Why a buffer could not be turned into a [`Frame`].
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Width or height is zero.
    #[error("{format} frame has zero size {width}x{height}")]
    ZeroSize { format: PixelFormat, width: u32, height: u32 },
    /// The converted RGB image would not fit in this platform's address space.
    #[error("{width}x{height} frame is too large to convert")]
    TooLarge { width: u32, height: u32 },
    /// The format subsamples chroma across pixel pairs, so the subsampled
    /// dimensions must be even: the width for YUYV, both for NV12 and I420.
    #[error("{format} needs even subsampled dimensions, got {width}x{height}")]
    OddSize { format: PixelFormat, width: u32, height: u32 },
    /// The buffer holds fewer bytes than the format needs at this size.
    #[error("{format} buffer for {width}x{height} is too short: expected {expected} bytes, found {found}")]
    ShortBuffer {
        format: PixelFormat,
        width: u32,
        height: u32,
        /// Bytes the format needs at this size.
        expected: usize,
        /// Bytes the buffer holds.
        found: usize,
    },
    /// The JPEG's marker structure is broken before decoding could start:
    /// no start-of-image, a header running off the end, no scan, or no
    /// end-of-image (a frame truncated in transfer).
    #[error("corrupt JPEG: {0}")]
    CorruptJpeg(&'static str),
    /// The JPEG decoder rejected the image data.
    #[error("JPEG decoding failed: {0}")]
    JpegDecode(#[from] image::ImageError),
    /// The JPEG decoded to a size other than the one negotiated with the camera.
    #[error("JPEG is {found_width}x{found_height}, expected {width}x{height}")]
    JpegSize { width: u32, height: u32, found_width: u32, found_height: u32 },
}

/// Converts one raw camera buffer to a [`Frame`].
///
/// `data` may be longer than the format needs (V4L2 `sizeimage` padding); the
/// excess is ignored. Rows must be tightly packed: a stride wider than
/// `width` is not supported. `range` applies to the YUV formats and GREY;
/// MJPEG is always full range by definition of JPEG. The gray plane is
/// full-range BT.601 luma for every format.
pub fn to_frame(
    data: &[u8],
    format: PixelFormat,
    width: u32,
    height: u32,
    range: YuvRange,
) -> Result<Frame, ConvertError> {
    if width == 0 || height == 0 {
        return Err(ConvertError::ZeroSize { format, width, height });
    }
    let pixels = pixel_count(width, height)?;
    let (even_width, even_height) = match format {
        PixelFormat::Yuyv => (true, false),
        PixelFormat::Nv12 | PixelFormat::I420 => (true, true),
        PixelFormat::Grey | PixelFormat::Mjpeg => (false, false),
    };
    if (even_width && !width.is_multiple_of(2)) || (even_height && !height.is_multiple_of(2)) {
        return Err(ConvertError::OddSize { format, width, height });
    }
    // Each uncompressed format's byte count and converter; MJPEG carries its own size.
    let (expected, convert): (usize, YuvConverter) = match format {
        PixelFormat::Yuyv => (pixels * 2, yuv::yuyv),
        PixelFormat::Nv12 => (pixels + pixels / 2, yuv::nv12),
        PixelFormat::I420 => (pixels + pixels / 2, yuv::i420),
        PixelFormat::Grey => (pixels, yuv::grey),
        PixelFormat::Mjpeg => return mjpeg::decode(data, width, height),
    };
    let Some(data) = data.get(..expected) else {
        return Err(ConvertError::ShortBuffer { format, width, height, expected, found: data.len() });
    };
    Ok(convert(data, width, height, range))
}

/// Signature shared by the converters in [`yuv`]: an exactly sized buffer in, a frame out.
type YuvConverter = fn(&[u8], u32, u32, YuvRange) -> Frame;

/// `width * height`, guaranteeing that the three-byte-per-pixel RGB image
/// (and so every smaller buffer size derived from it) fits in memory.
fn pixel_count(width: u32, height: u32) -> Result<usize, ConvertError> {
    let pixels = u64::from(width) * u64::from(height);
    pixels
        .checked_mul(3)
        .filter(|&bytes| bytes <= isize::MAX as u64)
        .and_then(|_| usize::try_from(pixels).ok())
        .ok_or(ConvertError::TooLarge { width, height })
}

/// Frame whose colour image is the gray plane copied into all three channels.
fn frame_from_gray(gray: GrayImage) -> Frame {
    let mut rgb = RgbImage::new(gray.width(), gray.height());
    for (px, &g) in rgb.chunks_exact_mut(3).zip(gray.iter()) {
        px.fill(g);
    }
    Frame { rgb, gray }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_round_trips_and_accepts_aliases() {
        let all = [PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::I420, PixelFormat::Grey, PixelFormat::Mjpeg];
        for format in all {
            assert_eq!(PixelFormat::from_fourcc(&format.fourcc()), Some(format));
        }
        assert_eq!(PixelFormat::from_fourcc(b"I420"), Some(PixelFormat::I420));
        assert_eq!(PixelFormat::from_fourcc(b"JPEG"), Some(PixelFormat::Mjpeg));
        assert_eq!(PixelFormat::from_fourcc(b"RGB3"), None);
        assert_eq!(PixelFormat::I420.to_string(), "YU12");
    }

    #[test]
    fn short_buffer_names_format_and_sizes() {
        // NV12 at 640x480: 307200 luma bytes + 153600 chroma bytes.
        let data = vec![0u8; 460_799];
        let err = to_frame(&data, PixelFormat::Nv12, 640, 480, YuvRange::Limited).unwrap_err();
        assert!(
            matches!(
                err,
                ConvertError::ShortBuffer { format: PixelFormat::Nv12, expected: 460_800, found: 460_799, .. }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        for needle in ["NV12", "460800", "460799"] {
            assert!(message.contains(needle), "{message}");
        }
    }

    #[test]
    fn short_buffer_sizes_for_each_uncompressed_format() {
        // 4x2 frame: 8 pixels.
        for (format, expected) in
            [(PixelFormat::Yuyv, 16), (PixelFormat::Nv12, 12), (PixelFormat::I420, 12), (PixelFormat::Grey, 8)]
        {
            let data = vec![128u8; expected - 1];
            match to_frame(&data, format, 4, 2, YuvRange::Full) {
                Err(ConvertError::ShortBuffer { expected: e, found, .. }) => {
                    assert_eq!((e, found), (expected, expected - 1), "{format}")
                }
                other => panic!("{format}: {other:?}"),
            }
            let exact = vec![128u8; expected];
            assert!(to_frame(&exact, format, 4, 2, YuvRange::Full).is_ok());
        }
    }

    #[test]
    fn odd_subsampled_dimensions_are_rejected() {
        let data = vec![128u8; 64];
        for (format, w, h) in
            [(PixelFormat::Yuyv, 3, 2), (PixelFormat::Nv12, 3, 2), (PixelFormat::Nv12, 4, 3), (PixelFormat::I420, 4, 3)]
        {
            let result = to_frame(&data, format, w, h, YuvRange::Limited);
            assert!(
                matches!(result, Err(ConvertError::OddSize { width, height, .. }) if (width, height) == (w, h)),
                "{format} {w}x{h}: {result:?}"
            );
        }
        // YUYV shares chroma only horizontally, and GREY not at all.
        assert!(to_frame(&data, PixelFormat::Yuyv, 4, 3, YuvRange::Limited).is_ok());
        assert!(to_frame(&data, PixelFormat::Grey, 3, 3, YuvRange::Limited).is_ok());
    }

    #[test]
    fn zero_and_huge_sizes_are_rejected() {
        assert!(matches!(to_frame(&[], PixelFormat::Grey, 0, 4, YuvRange::Full), Err(ConvertError::ZeroSize { .. })));
        assert!(matches!(
            to_frame(&[], PixelFormat::Yuyv, 1 << 31, 1 << 31, YuvRange::Full),
            Err(ConvertError::TooLarge { .. })
        ));
    }

    #[test]
    fn padded_buffer_is_accepted_and_padding_ignored() {
        // 4x2 I420: Y plane then 2x1 U and V planes; neutral chroma gives gray pixels.
        let exact = [10, 20, 30, 40, 50, 60, 70, 80, 128, 128, 128, 128];
        let mut padded = exact.to_vec();
        padded.extend([255u8; 100]);
        let a = to_frame(&exact, PixelFormat::I420, 4, 2, YuvRange::Full).unwrap();
        let b = to_frame(&padded, PixelFormat::I420, 4, 2, YuvRange::Full).unwrap();
        assert_eq!(a.rgb, b.rgb);
        assert_eq!(b.gray.as_raw(), &exact[..8]);
    }
}
