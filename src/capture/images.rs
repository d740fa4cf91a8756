//! Image files as a frame source, for demos, tests and benchmarks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bulk::classify_files::read_image;
use crate::bulk::files::collect_inputs;
use crate::capture::source::{CaptureError, FrameSource};
use crate::frame::Frame;

/// Decoded frames kept for replay when looping; a larger folder is decoded again on each pass.
const REPLAY_CACHE_BYTES: usize = 128 << 20;

/// Plays an image file or a folder of images (path order), once or in a loop.
pub struct ImageSource {
    name: String,
    files: Vec<PathBuf>,
    next: usize,
    looping: bool,
    /// Minimum time between frames; zero plays as fast as the loop takes them.
    interval: Duration,
    last_frame: Option<Instant>,
    /// Decoded frames of the first pass, by file index, while they fit the budget.
    cache: Vec<Option<Frame>>,
    cached_bytes: usize,
}

impl ImageSource {
    /// Lists the images under `path`; an empty or missing folder is an error naming it.
    pub fn open(path: &Path, looping: bool, fps: u32) -> Result<Self, CaptureError> {
        let name = path.display().to_string();
        let lost = |reason: String| CaptureError::Lost { source_name: name.clone(), reason };
        let mut files = Vec::new();
        for entry in collect_inputs(&[path.to_owned()]) {
            match entry {
                Ok(input) => files.push(input.path),
                // The source itself unusable (missing, not a file or folder) stops the run;
                // a bad entry inside the folder is reported and skipped.
                Err(problem) if problem.path == path => return Err(lost(problem.to_string())),
                Err(problem) => log::warn!("image source: {problem}"),
            }
        }
        if files.is_empty() {
            return Err(lost("no images (jpg, png, bmp) found".to_owned()));
        }
        let interval = if fps == 0 { Duration::ZERO } else { Duration::from_secs_f64(1.0 / f64::from(fps)) };
        let cache = vec![None; files.len()];
        Ok(Self { name, files, next: 0, looping, interval, last_frame: None, cache, cached_bytes: 0 })
    }

    fn pace(&mut self) {
        if let Some(last) = self.last_frame {
            let due = last + self.interval;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        self.last_frame = Some(Instant::now());
    }

    fn decode(&mut self, index: usize) -> Result<Frame, CaptureError> {
        if let Some(frame) = &self.cache[index] {
            return Ok(frame.clone());
        }
        let path = &self.files[index];
        let frame = read_image(path).map_err(|reason| CaptureError::Corrupt {
            source_name: self.name.clone(),
            reason: format!("{}: {reason}", path.display()),
        })?;
        let bytes = frame.rgb.len() + frame.gray.len();
        if self.looping && self.cached_bytes + bytes <= REPLAY_CACHE_BYTES {
            self.cached_bytes += bytes;
            self.cache[index] = Some(frame.clone());
        }
        Ok(frame)
    }
}

impl FrameSource for ImageSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.next == self.files.len() {
            if !self.looping {
                return Ok(None);
            }
            self.next = 0;
        }
        let index = self.next;
        self.next += 1;
        self.pace();
        self.decode(index).map(Some)
    }

    fn is_live(&self) -> bool {
        false
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, value: u8) {
        image::RgbImage::from_pixel(4, 2, image::Rgb([value, value, value])).save(path).unwrap();
    }

    #[test]
    fn plays_once_in_path_order_and_skips_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("b.png"), 20);
        write_png(&dir.path().join("a.png"), 10);
        std::fs::write(dir.path().join("c.jpg"), b"not a jpeg").unwrap();
        let mut source = ImageSource::open(dir.path(), false, 0).unwrap();
        assert_eq!(source.next_frame().unwrap().unwrap().gray.as_raw()[0], 10);
        assert_eq!(source.next_frame().unwrap().unwrap().gray.as_raw()[0], 20);
        match source.next_frame() {
            Err(CaptureError::Corrupt { reason, .. }) => assert!(reason.contains("c.jpg"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(source.next_frame().unwrap().is_none());
    }

    #[test]
    fn loops_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("only.png");
        write_png(&file, 7);
        let mut source = ImageSource::open(&file, true, 0).unwrap();
        assert!(source.next_frame().unwrap().is_some());
        // The replay comes from memory: removing the file does not stop it.
        std::fs::remove_file(&file).unwrap();
        for _ in 0..3 {
            assert_eq!(source.next_frame().unwrap().unwrap().gray.as_raw()[0], 7);
        }
    }

    #[test]
    fn paces_to_the_frame_rate() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("x.png"), 1);
        let mut source = ImageSource::open(dir.path(), true, 50).unwrap();
        let start = Instant::now();
        for _ in 0..6 {
            source.next_frame().unwrap();
        }
        // Five intervals of 20 ms after the first frame.
        assert!(start.elapsed() >= Duration::from_millis(100), "{:?}", start.elapsed());
    }

    #[test]
    fn empty_or_missing_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(ImageSource::open(dir.path(), false, 0), Err(CaptureError::Lost { .. })));
        let missing = dir.path().join("missing");
        match ImageSource::open(&missing, false, 0) {
            Err(err) => assert!(err.to_string().contains("missing"), "{err}"),
            Ok(_) => panic!("opened a missing folder"),
        }
    }
}
