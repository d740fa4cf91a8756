//! The seam between the live loop and whatever produces frames.
//!
//! [`FrameSource`] is implemented by the V4L2 camera, raw frames on standard input and
//! image files; tests implement it to inject faults. [`SourceSpec`] is the parsed
//! `--source` / `source.uri` setting.

use std::path::PathBuf;

use crate::capture::convert::{ConvertError, PixelFormat};
use crate::capture::raw_stream::checked_raw_frame_size;
use crate::frame::Frame;

/// Why a source gave no frame this time.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// This frame is unusable (bad JPEG, short buffer, unreadable image file); the stream
    /// goes on and the frame is skipped and counted.
    #[error("corrupt frame from {source_name}: {reason}")]
    Corrupt { source_name: String, reason: String },
    /// The device or stream failed (unplugged camera, closed pipe); the source must be
    /// reopened, which the capture thread does with backoff.
    #[error("{source_name}: {reason}")]
    Lost { source_name: String, reason: String },
    /// No frame arrived within the source's timeout; nothing is wrong yet.
    #[error("{source_name}: no frame within the timeout")]
    Timeout { source_name: String },
}

impl CaptureError {
    /// A corrupt-frame error for a buffer the converter rejected.
    pub fn corrupt(source_name: &str, err: &ConvertError) -> Self {
        Self::Corrupt { source_name: source_name.to_owned(), reason: err.to_string() }
    }
}

/// Something that yields frames, one at a time.
pub trait FrameSource: Send {
    /// Blocks until the next frame; `Ok(None)` when the stream has ended for good.
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError>;

    /// Whether frames arrive in real time whether or not they are consumed (a camera). Live
    /// frames not taken in time are dropped; frames from files wait to be taken instead.
    fn is_live(&self) -> bool;

    /// Human-readable name for logs and status lines, such as the device path.
    fn name(&self) -> &str;
}

/// A parsed `--source` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A V4L2 capture device; `format` forces a pixel format instead of the cheapest offered.
    V4l2 { device: PathBuf, format: Option<PixelFormat> },
    /// Raw frames back to back on standard input, as `rpicam-vid --codec yuv420 -o -` writes them.
    Stdin { format: PixelFormat, width: u32, height: u32 },
    /// One image file, or a folder of them (recursive, in path order).
    Images { path: PathBuf },
}

impl std::fmt::Display for SourceSpec {
    /// Where the frames come from, for status lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::V4l2 { device, .. } => write!(f, "camera {}", device.display()),
            SourceSpec::Stdin { width, height, .. } => write!(f, "{width}x{height} frames on standard input"),
            SourceSpec::Images { path } => write!(f, "images from {}", path.display()),
        }
    }
}

/// A `--source` or `source.format` value that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("unknown pixel format {0:?}; expected auto, yuyv, mjpeg, grey, nv12 or yu12")]
    Format(String),
    #[error("{0:?} is not stdin:FORMAT:WIDTHxHEIGHT with FORMAT yuv420, yuyv, nv12 or grey")]
    Stdin(String),
    /// A frame size the format cannot have, or over the pixel limit.
    #[error("{reason}")]
    StdinSize { uri: String, reason: String },
}

impl SpecError {
    /// The config key the bad value belongs to.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Format(_) => "source.format",
            Self::Stdin(_) | Self::StdinSize { .. } => "source.uri",
        }
    }

    /// The rejected text.
    pub fn value(&self) -> &str {
        match self {
            Self::Format(text) | Self::Stdin(text) | Self::StdinSize { uri: text, .. } => text,
        }
    }
}

impl SourceSpec {
    /// Parses a source URI; `format` (`auto` or a pixel format name) applies to V4L2 devices.
    pub fn parse(uri: &str, format: &str) -> Result<Self, SpecError> {
        let forced = match format.to_ascii_lowercase().as_str() {
            "auto" => None,
            name => Some(pixel_format_named(name).ok_or_else(|| SpecError::Format(format.to_owned()))?),
        };
        if let Some(rest) = uri.strip_prefix("stdin:") {
            let spec = parse_stdin(rest).ok_or_else(|| SpecError::Stdin(uri.to_owned()))?;
            if let SourceSpec::Stdin { format, width, height } = &spec {
                checked_raw_frame_size(*format, *width, *height)
                    .map_err(|reason| SpecError::StdinSize { uri: uri.to_owned(), reason })?;
            }
            return Ok(spec);
        }
        if let Some(device) = uri.strip_prefix("v4l2:") {
            return Ok(Self::V4l2 { device: PathBuf::from(device), format: forced });
        }
        if uri.starts_with("/dev/video") {
            return Ok(Self::V4l2 { device: PathBuf::from(uri), format: forced });
        }
        Ok(Self::Images { path: PathBuf::from(uri) })
    }
}

/// `FORMAT:WIDTHxHEIGHT`.
fn parse_stdin(text: &str) -> Option<SourceSpec> {
    let (format, size) = text.split_once(':')?;
    let format = match format.to_ascii_lowercase().as_str() {
        // rpicam-vid's name for planar I420.
        "yuv420" => PixelFormat::I420,
        name => pixel_format_named(name).filter(|f| *f != PixelFormat::Mjpeg)?,
    };
    let (width, height) = size.split_once('x')?;
    let (width, height) = (width.parse().ok()?, height.parse().ok()?);
    if width == 0 || height == 0 {
        return None;
    }
    Some(SourceSpec::Stdin { format, width, height })
}

/// A pixel format by its lower-case name or FourCC.
fn pixel_format_named(name: &str) -> Option<PixelFormat> {
    match name {
        "yuyv" => Some(PixelFormat::Yuyv),
        "mjpeg" | "mjpg" | "jpeg" => Some(PixelFormat::Mjpeg),
        "grey" | "gray" => Some(PixelFormat::Grey),
        "nv12" => Some(PixelFormat::Nv12),
        "yu12" | "i420" => Some(PixelFormat::I420),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_source_kind() {
        let v4l2 = |d: &str, format| SourceSpec::V4l2 { device: PathBuf::from(d), format };
        assert_eq!(SourceSpec::parse("/dev/video0", "auto"), Ok(v4l2("/dev/video0", None)));
        assert_eq!(SourceSpec::parse("v4l2:/dev/cam", "MJPEG"), Ok(v4l2("/dev/cam", Some(PixelFormat::Mjpeg))));
        assert_eq!(
            SourceSpec::parse("stdin:yuv420:640x480", "auto"),
            Ok(SourceSpec::Stdin { format: PixelFormat::I420, width: 640, height: 480 })
        );
        assert_eq!(
            SourceSpec::parse("stdin:yuyv:320x240", "auto"),
            Ok(SourceSpec::Stdin { format: PixelFormat::Yuyv, width: 320, height: 240 })
        );
        assert_eq!(SourceSpec::parse("faces/", "auto"), Ok(SourceSpec::Images { path: PathBuf::from("faces/") }));
    }

    #[test]
    fn rejects_bad_stdin_and_format_values() {
        for uri in ["stdin:yuv420", "stdin:yuv420:640", "stdin:mjpeg:640x480", "stdin:rgb:1x1", "stdin:grey:0x10"] {
            assert_eq!(SourceSpec::parse(uri, "auto"), Err(SpecError::Stdin(uri.to_owned())), "{uri}");
        }
        let err = SourceSpec::parse("/dev/video0", "h264").unwrap_err();
        assert_eq!((err.key(), err.value()), ("source.format", "h264"));
    }
}
