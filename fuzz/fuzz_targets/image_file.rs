//! Image files as `emotion-pi classify` and image-folder sources read them (JPEG, PNG, BMP).
#![no_main]

use emotion_pi::bulk::classify_files::decode_image;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_image(data) {
        assert_eq!(frame.gray.len() as u64, u64::from(frame.width()) * u64::from(frame.height()));
    }
});
