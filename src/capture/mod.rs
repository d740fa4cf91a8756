//! Camera capture: getting frames off the sensor and into [`crate::frame::Frame`].
//!
//! [`source::FrameSource`] is the seam; [`v4l2`], [`raw_stream`] and [`images`] implement
//! it, and [`thread`] runs one on its own thread with reconnection.

pub mod convert;
pub mod images;
pub mod raw_stream;
pub mod source;
pub mod thread;
pub mod v4l2;

use crate::config::CaptureSettings;
use images::ImageSource;
use raw_stream::RawStreamSource;
use source::{CaptureError, FrameSource, SourceSpec};
use thread::SourceOpener;
use v4l2::V4l2Source;

/// Opens the source `spec` describes; the capture thread calls it again after a failure.
pub fn opener(spec: SourceSpec, settings: CaptureSettings) -> SourceOpener {
    Box::new(move || open(&spec, &settings))
}

/// Opens `spec` once.
pub fn open(spec: &SourceSpec, settings: &CaptureSettings) -> Result<Box<dyn FrameSource>, CaptureError> {
    match spec {
        SourceSpec::V4l2 { device, format } => {
            let (source, negotiated) =
                V4l2Source::open(device, *format, settings.width, settings.height, settings.fps, settings.range)?;
            log::info!("{}: {} {}x{}", device.display(), negotiated.format, negotiated.width, negotiated.height);
            Ok(Box::new(source))
        }
        SourceSpec::Stdin { format, width, height } => {
            let source = RawStreamSource::new(std::io::stdin(), "stdin", *format, *width, *height, settings.range)?;
            Ok(Box::new(source))
        }
        SourceSpec::Images { path } => Ok(Box::new(ImageSource::open(path, settings.loop_images, settings.fps)?)),
    }
}
