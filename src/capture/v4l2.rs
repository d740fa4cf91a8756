//! V4L2 capture with memory-mapped streaming: USB webcams and the Pi's V4L2 camera drivers.

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use v4l::buffer::{Flags, Type};
use v4l::format::Quantization;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use crate::capture::convert::{to_frame, PixelFormat, YuvRange};
use crate::capture::raw_stream::raw_frame_size;
use crate::capture::source::{CaptureError, FrameSource};
use crate::frame::Frame;

/// Formats in order of preference when the camera offers several: the planar 4:2:0 ones
/// carry the fewest bytes (1.5 a pixel) and need no decoding, YUYV carries 2 a pixel,
/// MJPEG must be decompressed; GREY is last because it leaves the display without colour.
const PREFERENCE: [PixelFormat; 5] =
    [PixelFormat::Nv12, PixelFormat::I420, PixelFormat::Yuyv, PixelFormat::Mjpeg, PixelFormat::Grey];

/// Buffers queued to the driver: enough to ride out one slow frame without the driver dropping.
const BUFFERS: u32 = 4;

/// How long one wait for a frame may take before the capture thread looks up (for shutdown).
const FRAME_TIMEOUT: Duration = Duration::from_secs(2);

/// The format to ask for: `forced` if given, else the most preferred one the camera offers.
pub fn choose_format(offered: &[PixelFormat], forced: Option<PixelFormat>) -> Option<PixelFormat> {
    match forced {
        Some(format) => Some(format),
        None => PREFERENCE.into_iter().find(|f| offered.contains(f)),
    }
}

/// A streaming V4L2 capture device.
pub struct V4l2Source {
    name: String,
    stream: Stream<'static>,
    format: PixelFormat,
    width: u32,
    height: u32,
    range: YuvRange,
}

/// What was negotiated with the driver, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
}

impl V4l2Source {
    /// Opens `device`, negotiates format, size and rate, and starts streaming.
    ///
    /// `range` is used when the driver does not say which quantisation range it sends.
    pub fn open(
        device: &Path,
        forced: Option<PixelFormat>,
        width: u32,
        height: u32,
        fps: u32,
        range: YuvRange,
    ) -> Result<(Self, Negotiated), CaptureError> {
        let name = device.display().to_string();
        let lost = |what: &str, err: std::io::Error| CaptureError::Lost {
            source_name: name.clone(),
            reason: format!("{what}: {err}"),
        };
        let dev = Device::with_path(device).map_err(|err| lost("cannot open", err))?;
        let offered: Vec<PixelFormat> = dev
            .enum_formats()
            .map_err(|err| lost("cannot list formats", err))?
            .iter()
            .filter_map(|d| PixelFormat::from_fourcc(&d.fourcc.repr))
            .collect();
        let format = choose_format(&offered, forced).ok_or_else(|| CaptureError::Lost {
            source_name: name.clone(),
            reason: "offers none of YUYV, MJPEG, GREY, NV12, YU12".to_owned(),
        })?;
        let current = dev.format().map_err(|err| lost("cannot read format", err))?;
        let wanted = requested_format(current, format, width, height);
        let actual = dev.set_format(&wanted).map_err(|err| lost("cannot set format", err))?;
        let format = PixelFormat::from_fourcc(&actual.fourcc.repr).ok_or_else(|| CaptureError::Lost {
            source_name: name.clone(),
            reason: format!("driver switched to unsupported format {}", actual.fourcc),
        })?;
        check_stride(&name, format, actual.width, actual.stride)?;
        if fps > 0 {
            if let Err(err) = dev.set_params(&Parameters::with_fps(fps)) {
                log::warn!("{name}: cannot set {fps} fps ({err}); using the driver's rate");
            }
        }
        let range = match actual.quantization {
            Quantization::FullRange => YuvRange::Full,
            Quantization::LimitedRange => YuvRange::Limited,
            Quantization::Default => range,
        };
        let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, BUFFERS)
            .map_err(|err| lost("cannot start streaming", err))?;
        stream.set_timeout(FRAME_TIMEOUT);
        let negotiated = Negotiated { format, width: actual.width, height: actual.height };
        let source = Self { name, stream, format, width: actual.width, height: actual.height, range };
        Ok((source, negotiated))
    }
}

/// The format to ask the driver for, starting from the device's `current` one.
///
/// The row and image sizes are cleared so the driver computes them for the new format and
/// size: the current ones belong to the previous format (a YUYV stride of 1280 bytes left in
/// a YU12 request asks for padded rows, which drivers such as vivid grant).
fn requested_format(current: v4l::Format, format: PixelFormat, width: u32, height: u32) -> v4l::Format {
    v4l::Format { width, height, fourcc: FourCC::new(&format.fourcc()), stride: 0, size: 0, ..current }
}

/// Rows must be tightly packed for the converters; a padded stride is refused up front.
fn check_stride(name: &str, format: PixelFormat, width: u32, stride: u32) -> Result<(), CaptureError> {
    let packed = match format {
        PixelFormat::Yuyv => width * 2,
        PixelFormat::Mjpeg => return Ok(()),
        PixelFormat::Nv12 | PixelFormat::I420 | PixelFormat::Grey => width,
    };
    if stride == 0 || stride == packed {
        Ok(())
    } else {
        Err(CaptureError::Lost {
            source_name: name.to_owned(),
            reason: format!("{format} rows of {stride} bytes for width {width} are padded; try another resolution"),
        })
    }
}

impl FrameSource for V4l2Source {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let (buffer, meta) = match self.stream.next() {
            Ok(next) => next,
            Err(err) if err.kind() == ErrorKind::TimedOut => {
                return Err(CaptureError::Timeout { source_name: self.name.clone() })
            }
            Err(err) => return Err(CaptureError::Lost { source_name: self.name.clone(), reason: err.to_string() }),
        };
        if meta.flags.contains(Flags::ERROR) {
            return Err(CaptureError::Corrupt {
                source_name: self.name.clone(),
                reason: "driver flagged the buffer".into(),
            });
        }
        // Some drivers leave bytesused at 0 for uncompressed formats; the whole buffer is the frame then.
        let used = match meta.bytesused as usize {
            0 => raw_frame_size(self.format, self.width, self.height).unwrap_or(buffer.len()),
            n => n,
        };
        let data = &buffer[..used.min(buffer.len())];
        to_frame(data, self.format, self.width, self.height, self.range)
            .map(Some)
            .map_err(|err| CaptureError::corrupt(&self.name, &err))
    }

    fn is_live(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_planar_then_packed_then_jpeg_then_grey() {
        use PixelFormat::*;
        assert_eq!(choose_format(&[Mjpeg, Yuyv], None), Some(Yuyv));
        assert_eq!(choose_format(&[Yuyv, Nv12, Mjpeg], None), Some(Nv12));
        assert_eq!(choose_format(&[Grey, Mjpeg], None), Some(Mjpeg));
        assert_eq!(choose_format(&[Grey], None), Some(Grey));
        assert_eq!(choose_format(&[], None), None);
        assert_eq!(choose_format(&[Yuyv], Some(Mjpeg)), Some(Mjpeg));
    }

    #[test]
    fn a_new_format_leaves_row_and_image_sizes_to_the_driver() {
        // What a driver reports after a YUYV session at 640x480.
        let mut previous = v4l::Format::new(640, 480, FourCC::new(b"YUYV"));
        previous.stride = 1280;
        previous.size = 614_400;
        previous.quantization = Quantization::FullRange;
        let wanted = requested_format(previous, PixelFormat::I420, 320, 240);
        assert_eq!((wanted.width, wanted.height, wanted.fourcc), (320, 240, FourCC::new(b"YU12")));
        assert_eq!((wanted.stride, wanted.size), (0, 0));
        assert!(matches!(wanted.quantization, Quantization::FullRange));
    }

    #[test]
    fn padded_rows_are_refused() {
        assert!(check_stride("cam", PixelFormat::Yuyv, 640, 1280).is_ok());
        assert!(check_stride("cam", PixelFormat::Nv12, 640, 0).is_ok());
        assert!(check_stride("cam", PixelFormat::Mjpeg, 640, 7).is_ok());
        let err = check_stride("cam", PixelFormat::I420, 636, 640).unwrap_err();
        assert!(err.to_string().contains("636"), "{err}");
    }

    #[test]
    fn missing_device_is_lost_and_named() {
        let result = V4l2Source::open(Path::new("/dev/video-missing"), None, 640, 480, 30, YuvRange::Limited);
        match result {
            Err(CaptureError::Lost { source_name, reason }) => {
                assert_eq!(source_name, "/dev/video-missing");
                assert!(reason.contains("cannot open"), "{reason}");
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("opened a missing device"),
        }
    }
}
