//! `emotion-pi classify`: faces and emotions for image files, in parallel, in input order.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use rayon::prelude::*;
use serde_json::{json, Map, Value};

use super::annotate::annotate;
use super::files::{collect_inputs, InputFile};
use crate::analyze::{Analyzer, FaceAnalysis};
use crate::capture::convert::mjpeg::is_complete_jpeg;
use crate::frame::Frame;

/// What became of one input file.
#[derive(Debug)]
pub enum FileOutcome {
    Faces(Vec<FaceAnalysis>),
    NoFace,
    Failed(String),
}

/// Output format of the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    Csv,
    JsonLines,
}

/// Totals of a classify run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClassifySummary {
    pub files: usize,
    pub faces: usize,
    pub without_face: usize,
    pub failed: usize,
}

/// Reads an image file upright (EXIF orientation applied), as RGB.
///
/// A JPEG cut short is an error here, not a picture with a gray bottom half.
pub fn read_image(path: &Path) -> Result<Frame, String> {
    let bytes = std::fs::read(path).map_err(|err| format!("cannot read file: {err}"))?;
    decode_image(&bytes)
}

/// Larger images are refused before decoding: a header can claim any size, and a few
/// bytes must not make the device allocate gigabytes. 50 MP holds any camera photo.
pub const MAX_IMAGE_PIXELS: u64 = 50_000_000;

fn within_pixel_limit(width: u32, height: u32) -> bool {
    u64::from(width) * u64::from(height) <= MAX_IMAGE_PIXELS
}

/// [`read_image`] on the bytes of an image file.
pub fn decode_image(bytes: &[u8]) -> Result<Frame, String> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|err| format!("cannot read image: {err}"))?;
    if reader.format() == Some(ImageFormat::Jpeg) && !is_complete_jpeg(bytes) {
        return Err("cannot read image: JPEG data is truncated or corrupt".to_owned());
    }
    let unreadable = |err: image::ImageError| format!("cannot read image: {err}");
    // The header alone, before any decoder sets up buffers for the size it claims.
    let (width, height) = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|err| format!("cannot read image: {err}"))?
        .into_dimensions()
        .map_err(unreadable)?;
    if !within_pixel_limit(width, height) {
        return Err(format!("image is {width}x{height}, over the {MAX_IMAGE_PIXELS}-pixel limit"));
    }
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    let orientation = decoder.orientation().map_err(unreadable)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err("image is empty".to_owned());
    }
    Ok(Frame::from_rgb(image.to_rgb8()))
}

fn process(analyzer: &Analyzer, input: &InputFile, annotate_dir: Option<&Path>, class_names: &[String]) -> FileOutcome {
    let frame = match read_image(&input.path) {
        Ok(frame) => frame,
        Err(message) => return FileOutcome::Failed(message),
    };
    let faces = match analyzer.analyze(&frame) {
        Ok(faces) => faces,
        Err(err) => return FileOutcome::Failed(err.to_string()),
    };
    if let Some(dir) = annotate_dir {
        let mut picture = frame.rgb;
        annotate(&mut picture, &faces, class_names);
        let out = dir.join(&input.relative);
        let saved = out
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| e.to_string())
            .and_then(|()| picture.save(&out).map_err(|e| e.to_string()));
        if let Err(err) = saved {
            return FileOutcome::Failed(format!("cannot write annotated copy {}: {err}", out.display()));
        }
    }
    if faces.is_empty() {
        FileOutcome::NoFace
    } else {
        FileOutcome::Faces(faces)
    }
}

/// The CSV header for `class_names`.
pub fn csv_header(class_names: &[String]) -> Vec<String> {
    let mut header: Vec<String> =
        ["file", "status", "face", "x", "y", "w", "h", "emotion", "confidence"].iter().map(|s| s.to_string()).collect();
    header.extend(class_names.iter().cloned());
    header
}

/// The rows (CSV fields or JSON objects) describing one file's outcome.
pub fn outcome_rows(file: &Path, outcome: &FileOutcome, class_names: &[String], format: RowFormat) -> Vec<String> {
    let name = file.display().to_string();
    match (outcome, format) {
        (FileOutcome::Faces(faces), RowFormat::JsonLines) => faces
            .iter()
            .enumerate()
            .map(|(index, analysis)| {
                let (class, confidence) = analysis.emotion.top();
                let probs: Map<String, Value> = class_names
                    .iter()
                    .zip(&analysis.emotion.probabilities)
                    .map(|(n, &p)| (n.clone(), json!(round6(p))))
                    .collect();
                json!({
                    "file": name,
                    "status": "ok",
                    "face": index,
                    "box": analysis.face.bbox.to_pixels(),
                    "detector_score": round6(analysis.face.score),
                    "emotion": class_names.get(class),
                    "confidence": round6(confidence),
                    "probs": probs,
                })
                .to_string()
            })
            .collect(),
        (FileOutcome::Faces(faces), RowFormat::Csv) => faces
            .iter()
            .enumerate()
            .map(|(index, analysis)| {
                let (class, confidence) = analysis.emotion.top();
                let [x, y, w, h] = analysis.face.bbox.to_pixels();
                let mut fields = vec![
                    name.clone(),
                    "ok".to_owned(),
                    index.to_string(),
                    x.to_string(),
                    y.to_string(),
                    w.to_string(),
                    h.to_string(),
                    class_names.get(class).cloned().unwrap_or_default(),
                    format!("{confidence:.6}"),
                ];
                fields.extend(analysis.emotion.probabilities.iter().map(|p| format!("{p:.6}")));
                csv_line(&fields)
            })
            .collect(),
        (FileOutcome::NoFace, RowFormat::JsonLines) => vec![json!({"file": name, "status": "no_face"}).to_string()],
        (FileOutcome::NoFace, RowFormat::Csv) => vec![csv_line(&[name, "no_face".to_owned()])],
        (FileOutcome::Failed(message), RowFormat::JsonLines) => {
            vec![json!({"file": name, "status": "error", "error": message}).to_string()]
        }
        (FileOutcome::Failed(message), RowFormat::Csv) => {
            vec![csv_line(&[name, format!("error: {message}")])]
        }
    }
}

fn round6(v: f32) -> f64 {
    (v as f64 * 1e6).round() / 1e6
}

fn csv_line(fields: &[String]) -> String {
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(fields);
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).trim_end().to_owned()
}

/// Classifies every image under `paths`, writing rows to `out` in input order.
///
/// Files are processed in parallel in chunks so rows stream out while later files
/// are still being read; a progress bar shows on a terminal only.
pub fn classify_paths(
    analyzer: &Analyzer,
    paths: &[PathBuf],
    format: RowFormat,
    annotate_dir: Option<&Path>,
    out: &mut dyn Write,
    progress: &indicatif::ProgressBar,
) -> std::io::Result<ClassifySummary> {
    let class_names = analyzer.classifier().metadata().class_names.clone();
    if format == RowFormat::Csv {
        writeln!(out, "{}", csv_line(&csv_header(&class_names)))?;
    }
    let inputs = collect_inputs(paths);
    progress.set_length(inputs.len() as u64);
    let mut summary = ClassifySummary::default();
    let chunk = rayon::current_num_threads() * 4;
    for batch in inputs.chunks(chunk) {
        let outcomes: Vec<(PathBuf, FileOutcome)> = batch
            .par_iter()
            .map(|input| {
                let result = match input {
                    Ok(file) => (file.path.clone(), process(analyzer, file, annotate_dir, &class_names)),
                    Err((path, message)) => (path.clone(), FileOutcome::Failed(message.clone())),
                };
                progress.inc(1);
                result
            })
            .collect();
        for (path, outcome) in &outcomes {
            summary.files += 1;
            match outcome {
                FileOutcome::Faces(faces) => summary.faces += faces.len(),
                FileOutcome::NoFace => summary.without_face += 1,
                FileOutcome::Failed(message) => {
                    summary.failed += 1;
                    progress.suspend(|| log::warn!("{}: {message}", path.display()));
                }
            }
            for row in outcome_rows(path, outcome, &class_names, format) {
                writeln!(out, "{row}")?;
            }
        }
        out.flush()?;
    }
    progress.finish_and_clear();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_whose_header_claims_a_huge_size_is_refused_before_decoding() {
        // Found by the image_file fuzz target: 82 bytes of PNG made the decoder allocate 37 GB
        // (IHDR CRC fixed here; fuzzing builds of the png crate skip CRC checks).
        let bytes = include_bytes!("../../fuzz/regressions/image_file/png_header_claims_8x1560281096.png");
        let message = decode_image(bytes).err().unwrap_or_default();
        if cfg!(target_pointer_width = "64") {
            assert_eq!(message, "image is 8x1560281096, over the 50000000-pixel limit");
        } else {
            // On 32-bit targets the png decoder refuses the header itself: the buffer it
            // claims cannot be addressed.
            assert_eq!(message, "cannot read image: Memory limit exceeded");
        }
    }

    #[test]
    fn the_pixel_limit_admits_a_48_megapixel_photo_and_no_more_than_50() {
        assert!(within_pixel_limit(8000, 6000));
        assert!(within_pixel_limit(10_000, 5_000));
        assert!(!within_pixel_limit(10_000, 5_001));
        assert!(!within_pixel_limit(u32::MAX, u32::MAX));
    }
}
