//! The FER2013 CSV reader (`emotion-pi eval`), for each usage.
#![no_main]

use std::path::Path;

use emotion_pi::bulk::fer::{read_csv, Usage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [usage, csv @ ..] = data else { return };
    let usage = [Usage::Training, Usage::PublicTest, Usage::PrivateTest][usize::from(*usage) % 3];
    if let Ok(faces) = read_csv(csv, Path::new("fuzz.csv"), usage) {
        assert!(faces.iter().all(|f| f.pixels.len() == 48 * 48 && f.label < 7));
    }
});
