//! The TOML config file, through parsing and the checks run before start.
#![no_main]

use std::path::Path;

use emotion_pi::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("fuzz.toml");
    if let Ok(config) = Config::parse(text, path) {
        let _ = config.settings(path);
    }
});
