//! Camera buffers of any format and size: YUYV, NV12, I420, GREY and MJPEG.
#![no_main]

use emotion_pi::capture::convert::{to_frame, PixelFormat, YuvRange};
use libfuzzer_sys::fuzz_target;

const FORMATS: [PixelFormat; 5] =
    [PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::I420, PixelFormat::Grey, PixelFormat::Mjpeg];

fuzz_target!(|data: &[u8]| {
    // Header: format, range, width, height (1..=256 each, odd sizes included); then the buffer.
    let [format, range, width, height, buffer @ ..] = data else { return };
    let format = FORMATS[usize::from(*format) % FORMATS.len()];
    let range = if range % 2 == 0 { YuvRange::Limited } else { YuvRange::Full };
    if let Ok(frame) = to_frame(buffer, format, u32::from(*width) + 1, u32::from(*height) + 1, range) {
        assert_eq!(frame.gray.len() as u64, u64::from(frame.width()) * u64::from(frame.height()));
    }
});
