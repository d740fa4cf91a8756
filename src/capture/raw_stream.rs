//! Raw frames back to back on a byte stream: `rpicam-vid --codec yuv420 -o - | emotion-pi run
//! --source stdin:yuv420:640x480`, which is how the Pi Camera Module reaches us on the
//! libcamera stack.

use std::io::{ErrorKind, Read};

use crate::bulk::limits::{within_pixel_limit, MAX_IMAGE_PIXELS};
use crate::capture::convert::{to_frame, PixelFormat, YuvRange};
use crate::capture::source::{CaptureError, FrameSource};
use crate::frame::Frame;

/// Reads fixed-size raw frames from `R` (standard input in the device).
pub struct RawStreamSource<R> {
    reader: R,
    name: String,
    format: PixelFormat,
    width: u32,
    height: u32,
    range: YuvRange,
    /// Reused for every frame: the stream is read straight into it.
    buffer: Vec<u8>,
}

impl<R: Read + Send> RawStreamSource<R> {
    /// A source of `format` frames of `width`×`height`; MJPEG has no fixed size and is refused.
    pub fn new(
        reader: R,
        name: &str,
        format: PixelFormat,
        width: u32,
        height: u32,
        range: YuvRange,
    ) -> Result<Self, CaptureError> {
        let size = checked_raw_frame_size(format, width, height)
            .map_err(|reason| CaptureError::Lost { source_name: name.to_owned(), reason })?;
        Ok(Self { reader, name: name.to_owned(), format, width, height, range, buffer: vec![0; size] })
    }

    /// Fills the buffer; `Ok(false)` on a clean end of stream at a frame boundary.
    fn fill(&mut self) -> Result<bool, CaptureError> {
        let mut filled = 0;
        while filled < self.buffer.len() {
            match self.reader.read(&mut self.buffer[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => {
                    return Err(CaptureError::Lost {
                        source_name: self.name.clone(),
                        reason: format!(
                            "stream ended inside a frame ({filled} of {} bytes); is the size right?",
                            self.buffer.len()
                        ),
                    })
                }
                Ok(n) => filled += n,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(CaptureError::Lost { source_name: self.name.clone(), reason: err.to_string() }),
            }
        }
        Ok(true)
    }
}

impl<R: Read + Send> FrameSource for RawStreamSource<R> {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if !self.fill()? {
            return Ok(None);
        }
        to_frame(&self.buffer, self.format, self.width, self.height, self.range)
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

/// Bytes of one uncompressed `width`×`height` frame, or why the format cannot have that
/// size (odd sizes of subsampled formats, MJPEG) or the memory should not hold it (over
/// the image pixel limit). Checked when the settings are, before anything starts.
pub fn checked_raw_frame_size(format: PixelFormat, width: u32, height: u32) -> Result<usize, String> {
    if !within_pixel_limit(width, height) {
        return Err(format!("{width}x{height} frames are over the {MAX_IMAGE_PIXELS}-pixel limit"));
    }
    raw_frame_size(format, width, height).ok_or_else(|| match format {
        PixelFormat::Yuyv => format!("{format} frames need an even width, not {width}"),
        PixelFormat::Nv12 | PixelFormat::I420 => {
            format!("{format} frames need an even width and height, not {width}x{height}")
        }
        _ => format!("{format} at {width}x{height} has no fixed raw frame size"),
    })
}

/// Bytes of one uncompressed frame, or `None` for MJPEG or odd sizes the format cannot hold.
pub fn raw_frame_size(format: PixelFormat, width: u32, height: u32) -> Option<usize> {
    let pixels = usize::try_from(u64::from(width) * u64::from(height)).ok()?;
    match format {
        PixelFormat::Yuyv if width.is_multiple_of(2) => pixels.checked_mul(2),
        PixelFormat::Nv12 | PixelFormat::I420 if width.is_multiple_of(2) && height.is_multiple_of(2) => {
            Some(pixels + pixels / 2)
        }
        PixelFormat::Grey => Some(pixels),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes() {
        assert_eq!(raw_frame_size(PixelFormat::I420, 640, 480), Some(460_800));
        assert_eq!(raw_frame_size(PixelFormat::Yuyv, 640, 480), Some(614_400));
        assert_eq!(raw_frame_size(PixelFormat::Grey, 3, 3), Some(9));
        assert_eq!(raw_frame_size(PixelFormat::Nv12, 3, 2), None);
        assert_eq!(raw_frame_size(PixelFormat::Mjpeg, 640, 480), None);
    }

    #[test]
    fn raw_frame_sizes_the_format_cannot_have_or_memory_should_not_hold_are_refused() {
        assert_eq!(checked_raw_frame_size(PixelFormat::I420, 640, 480), Ok(460_800));
        assert_eq!(
            checked_raw_frame_size(PixelFormat::I420, 641, 480),
            Err("YU12 frames need an even width and height, not 641x480".to_owned())
        );
        assert_eq!(
            checked_raw_frame_size(PixelFormat::Nv12, 640, 479),
            Err("NV12 frames need an even width and height, not 640x479".to_owned())
        );
        assert_eq!(
            checked_raw_frame_size(PixelFormat::Yuyv, 3, 2),
            Err("YUYV frames need an even width, not 3".to_owned())
        );
        for (width, height) in [(4_294_967_295, 2), (100_000, 100_000)] {
            let err = checked_raw_frame_size(PixelFormat::Grey, width, height).expect_err("too large");
            assert_eq!(err, format!("{width}x{height} frames are over the 50000000-pixel limit"));
        }
    }

    #[test]
    fn reads_frames_until_the_stream_ends() {
        // Two 2x2 GREY frames.
        let bytes: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8];
        let mut source = RawStreamSource::new(bytes, "test", PixelFormat::Grey, 2, 2, YuvRange::Full).unwrap();
        assert_eq!(source.next_frame().unwrap().unwrap().gray.as_raw(), &[1, 2, 3, 4]);
        assert_eq!(source.next_frame().unwrap().unwrap().gray.as_raw(), &[5, 6, 7, 8]);
        assert!(source.next_frame().unwrap().is_none());
    }

    #[test]
    fn truncated_last_frame_is_reported() {
        let bytes: &[u8] = &[1, 2, 3, 4, 5, 6];
        let mut source = RawStreamSource::new(bytes, "stdin", PixelFormat::Grey, 2, 2, YuvRange::Full).unwrap();
        assert!(source.next_frame().unwrap().is_some());
        match source.next_frame() {
            Err(CaptureError::Lost { reason, .. }) => assert!(reason.contains("2 of 4 bytes"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    /// A reader that returns one byte per call, as a pipe may.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.split_first() {
                Some((&b, rest)) if !buf.is_empty() => {
                    buf[0] = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn short_reads_are_joined_into_whole_frames() {
        let mut source =
            RawStreamSource::new(Trickle(&[9, 8, 7, 6]), "pipe", PixelFormat::Grey, 2, 2, YuvRange::Full).unwrap();
        assert_eq!(source.next_frame().unwrap().unwrap().gray.as_raw(), &[9, 8, 7, 6]);
    }
}
