//! `emotion-pi classify`: faces and emotions for image files, in parallel, in input order.

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use image::metadata::Orientation;
use image::{DynamicImage, GrayAlphaImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, RgbImage, RgbaImage};
use rayon::prelude::*;
use serde_json::{json, Map, Value};

use super::annotate::annotate;
use super::files::{walk_inputs, InputFile, InputProblem, Walk};
use super::limits::{
    within_pixel_limit, MemoryBudget, DECODE_BUDGET_BYTES, MAX_DECODED_BYTES, MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS,
};
use super::outputs::{annotated_copy_paths, OutputClash};
use crate::analyze::{Analyzer, FaceAnalysis};
use crate::capture::convert::mjpeg::is_complete_jpeg;
use crate::frame::Frame;
use crate::fs_safety::{read_capped, write_atomically};

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
    /// Files classified whose annotated copy could not be written.
    pub annotate_failed: usize,
}

/// What `classify` works through, settled before any image is read: the inputs found
/// and where each one's annotated copy goes.
#[derive(Debug)]
pub struct ClassifyPlan {
    walk: Walk,
    annotated_copies: Option<HashMap<PathBuf, PathBuf>>,
}

impl ClassifyPlan {
    /// Walks `paths`; with `annotate_dir`, places every annotated copy, refusing copies
    /// that would land on an input, in an input folder or on each other.
    pub fn new(paths: &[PathBuf], annotate_dir: Option<&Path>) -> Result<Self, OutputClash> {
        let walk = walk_inputs(paths);
        let annotated_copies = annotate_dir.map(|dir| annotated_copy_paths(dir, paths, &walk)).transpose()?;
        Ok(Self { walk, annotated_copies })
    }
}

/// Reads an image file upright (EXIF orientation applied), as RGB.
///
/// A JPEG cut short is an error here, not a picture with a gray bottom half. Files over
/// [`MAX_IMAGE_FILE_BYTES`] are refused before they are read.
pub fn read_image(path: &Path) -> Result<Frame, String> {
    let bytes = read_capped(path, MAX_IMAGE_FILE_BYTES, "image files").map_err(|err| err.to_string())?;
    decode_image(&bytes)
}

fn unreadable(err: impl std::fmt::Display) -> String {
    format!("cannot read image: {err}")
}

/// The width and height the header claims, refused over [`MAX_IMAGE_PIXELS`].
fn checked_dimensions(decoder: &impl ImageDecoder) -> Result<(u32, u32), String> {
    let (width, height) = decoder.dimensions();
    if !within_pixel_limit(width, height) {
        return Err(format!("image is {width}x{height}, over the {MAX_IMAGE_PIXELS}-pixel limit"));
    }
    Ok((width, height))
}

/// A reader of `source` whose decoders may allocate at most [`MAX_DECODED_BYTES`].
fn limited_reader<R: std::io::BufRead + std::io::Seek>(source: R) -> Result<ImageReader<R>, String> {
    let mut reader = ImageReader::new(source).with_guessed_format().map_err(unreadable)?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    Ok(reader)
}

/// Bytes a decoder writes per pixel here: 16-bit PNG samples are reduced to 8 bits while
/// decoding (see [`decode_png`]); other formats as the decoder says.
fn decoded_bytes_per_pixel(format: Option<ImageFormat>, color: image::ColorType) -> u64 {
    if format == Some(ImageFormat::Png) {
        u64::from(color.channel_count())
    } else {
        u64::from(color.bytes_per_pixel())
    }
}

/// The most memory classifying the image file at `path` holds at once: the file, the
/// decoded pixels, their RGB copy (unless decoded as RGB), a turned copy (when EXIF says
/// so) and the luma plane. Read from the header alone; the same pixel limit applies.
pub fn decoding_bytes(path: &Path) -> Result<u64, String> {
    let file = std::fs::File::open(path).map_err(|err| format!("cannot read file: {err}"))?;
    let file_bytes = file.metadata().map_err(|err| format!("cannot read file: {err}"))?.len();
    if file_bytes > MAX_IMAGE_FILE_BYTES {
        return Err(format!("larger than the {MAX_IMAGE_FILE_BYTES}-byte limit for image files"));
    }
    let reader = limited_reader(std::io::BufReader::new(file))?;
    let format = reader.format();
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    let (width, height) = checked_dimensions(&decoder)?;
    let pixels = u64::from(width) * u64::from(height);
    let color = decoder.color_type();
    let decoded = pixels * decoded_bytes_per_pixel(format, color);
    let rgb_copy = if matches!(color, image::ColorType::Rgb8 | image::ColorType::Rgb16) { 0 } else { 3 * pixels };
    let turned = if decoder.orientation().map_err(unreadable)? == Orientation::NoTransforms { 0 } else { 3 * pixels };
    Ok(file_bytes + decoded + rgb_copy + turned + pixels)
}

/// [`read_image`] on the bytes of an image file.
pub fn decode_image(bytes: &[u8]) -> Result<Frame, String> {
    let reader = limited_reader(Cursor::new(bytes))?;
    if reader.format() == Some(ImageFormat::Jpeg) && !is_complete_jpeg(bytes) {
        return Err("cannot read image: JPEG data is truncated or corrupt".to_owned());
    }
    let format = reader.format();
    // The header alone, before any decoder sets up buffers for the size it claims.
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    checked_dimensions(&decoder)?;
    let orientation = decoder.orientation().map_err(unreadable)?;
    let image = if format == Some(ImageFormat::Png) {
        drop(decoder);
        decode_png(bytes)?
    } else {
        DynamicImage::from_decoder(decoder).map_err(unreadable)?
    };
    // RGB first, then turned: the turned copy is then the smallest it can be.
    let mut upright = DynamicImage::ImageRgb8(image.into_rgb8());
    upright.apply_orientation(orientation);
    if upright.width() == 0 || upright.height() == 0 {
        return Err("image is empty".to_owned());
    }
    Ok(Frame::from_rgb(upright.into_rgb8()))
}

/// Decodes a PNG with 16-bit samples reduced to 8 bits as they are read: the pipeline
/// works on 8-bit RGB, and a 16-bit buffer of a large image would double the memory.
fn decode_png(bytes: &[u8]) -> Result<DynamicImage, String> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits { bytes: usize::try_from(MAX_DECODED_BYTES).unwrap_or(usize::MAX) },
    );
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(unreadable)?;
    let size = reader
        .output_buffer_size()
        .filter(|&size| size as u64 <= MAX_DECODED_BYTES)
        .ok_or_else(|| format!("cannot read image: decoding needs more than the {MAX_DECODED_BYTES}-byte limit"))?;
    let mut buffer = vec![0; size];
    let info = reader.next_frame(&mut buffer).map_err(unreadable)?;
    buffer.truncate(info.buffer_size());
    let (width, height) = (info.width, info.height);
    let mismatch = || unreadable("decoded size does not match the header");
    Ok(match info.color_type {
        png::ColorType::Rgb => DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, buffer).ok_or_else(mismatch)?),
        png::ColorType::Rgba => {
            DynamicImage::ImageRgba8(RgbaImage::from_raw(width, height, buffer).ok_or_else(mismatch)?)
        }
        png::ColorType::Grayscale => {
            DynamicImage::ImageLuma8(GrayImage::from_raw(width, height, buffer).ok_or_else(mismatch)?)
        }
        png::ColorType::GrayscaleAlpha => {
            DynamicImage::ImageLumaA8(GrayAlphaImage::from_raw(width, height, buffer).ok_or_else(mismatch)?)
        }
        png::ColorType::Indexed => return Err(unreadable("palette left unexpanded")),
    })
}

/// The classification of one file and, beside it, why its annotated copy could not be
/// written: a failed side output never replaces the result.
struct Processed {
    outcome: FileOutcome,
    annotate_error: Option<String>,
}

fn process(
    analyzer: &Analyzer,
    input: &InputFile,
    annotated_copy: Option<&Path>,
    class_names: &[String],
    budget: &MemoryBudget,
) -> Processed {
    let failed = |message| Processed { outcome: FileOutcome::Failed(message), annotate_error: None };
    let _claim = match decoding_bytes(&input.path) {
        Ok(bytes) => budget.claim(bytes),
        Err(message) => return failed(message),
    };
    let frame = match read_image(&input.path) {
        Ok(frame) => frame,
        Err(message) => return failed(message),
    };
    let faces = match analyzer.analyze(&frame) {
        Ok(faces) => faces,
        Err(err) => return failed(err.to_string()),
    };
    let annotate_error = annotated_copy.and_then(|out| {
        let mut picture = frame.rgb;
        annotate(&mut picture, &faces, class_names);
        write_annotated_copy(&picture, out)
            .err()
            .map(|err| format!("cannot write annotated copy {}: {err}", out.display()))
    });
    let outcome = if faces.is_empty() { FileOutcome::NoFace } else { FileOutcome::Faces(faces) };
    Processed { outcome, annotate_error }
}

/// Writes `picture` to `out` (format by extension) through a temporary file.
fn write_annotated_copy(picture: &RgbImage, out: &Path) -> std::io::Result<()> {
    let format = ImageFormat::from_path(out).map_err(std::io::Error::other)?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    write_atomically(out, |file| picture.write_to(file, format).map_err(std::io::Error::other))
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

/// Classifies every image of `plan`, writing rows to `out` in input order.
///
/// Files are processed in parallel in chunks so rows stream out while later files
/// are still being read; the images held at once share [`DECODE_BUDGET_BYTES`]. A
/// progress bar shows on a terminal only.
pub fn classify_paths(
    analyzer: &Analyzer,
    plan: &ClassifyPlan,
    format: RowFormat,
    out: &mut dyn Write,
    progress: &indicatif::ProgressBar,
) -> std::io::Result<ClassifySummary> {
    let class_names = analyzer.classifier().metadata().class_names.clone();
    if format == RowFormat::Csv {
        writeln!(out, "{}", csv_line(&csv_header(&class_names)))?;
    }
    let inputs = &plan.walk.entries;
    progress.set_length(inputs.len() as u64);
    let budget = MemoryBudget::new(DECODE_BUDGET_BYTES);
    let mut summary = ClassifySummary::default();
    let chunk = rayon::current_num_threads() * 4;
    for batch in inputs.chunks(chunk) {
        let outcomes: Vec<Result<(&Path, Processed), &InputProblem>> = batch
            .par_iter()
            .map(|input| {
                let result = match input {
                    Ok(file) => {
                        let copy = plan.annotated_copies.as_ref().and_then(|copies| copies.get(&file.path));
                        Ok((
                            file.path.as_path(),
                            process(analyzer, file, copy.map(PathBuf::as_path), &class_names, &budget),
                        ))
                    }
                    Err(problem) if problem.problem.is_failure() => {
                        let outcome = FileOutcome::Failed(problem.problem.to_string());
                        Ok((problem.path.as_path(), Processed { outcome, annotate_error: None }))
                    }
                    Err(skipped) => Err(skipped),
                };
                progress.inc(1);
                result
            })
            .collect();
        for result in outcomes {
            let (path, Processed { outcome, annotate_error }) = match result {
                Ok(processed) => processed,
                Err(skipped) => {
                    // A folder reached again through a link: its images are listed once already.
                    progress.suspend(|| log::warn!("{skipped}"));
                    continue;
                }
            };
            summary.files += 1;
            match &outcome {
                FileOutcome::Faces(faces) => summary.faces += faces.len(),
                FileOutcome::NoFace => summary.without_face += 1,
                FileOutcome::Failed(message) => {
                    summary.failed += 1;
                    progress.suspend(|| log::warn!("{}: {message}", path.display()));
                }
            }
            if let Some(message) = annotate_error {
                summary.annotate_failed += 1;
                progress.suspend(|| log::warn!("{}: {message}", path.display()));
            }
            for row in outcome_rows(path, &outcome, &class_names, format) {
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

    fn png_bytes(image: DynamicImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).expect("encode");
        bytes
    }

    #[test]
    fn a_16_bit_png_is_decoded_to_the_high_byte_of_each_sample() {
        let sample = |x: u32, y: u32, c: u32| ((x * 0x1357 + y * 0x2468 + c * 0x0f0f) & 0xffff) as u16;
        let wide =
            image::ImageBuffer::from_fn(7, 5, |x, y| image::Rgb([sample(x, y, 0), sample(x, y, 1), sample(x, y, 2)]));
        let frame = decode_image(&png_bytes(DynamicImage::ImageRgb16(wide))).expect("decodes");
        for (x, y, pixel) in frame.rgb.enumerate_pixels() {
            let expected = [0, 1, 2].map(|c| (sample(x, y, c) >> 8) as u8);
            assert_eq!(pixel.0, expected, "pixel {x},{y}");
        }
    }

    #[test]
    fn the_memory_claimed_for_an_image_counts_file_pixels_rgb_copy_and_luma() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 16-bit RGB: decoded at 3 bytes per pixel, already RGB, plus the luma plane.
        let wide = dir.path().join("wide.png");
        std::fs::write(
            &wide,
            png_bytes(DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(100, 50, image::Rgb([1000u16, 2, 3])))),
        )
        .expect("write");
        let file = std::fs::metadata(&wide).expect("stat").len();
        assert_eq!(decoding_bytes(&wide), Ok(file + 100 * 50 * 3 + 100 * 50));
        // 8-bit RGBA: 4 bytes decoded, a 3-byte RGB copy, the luma plane.
        let rgba = dir.path().join("rgba.png");
        std::fs::write(
            &rgba,
            png_bytes(DynamicImage::ImageRgba8(RgbaImage::from_pixel(10, 10, image::Rgba([1, 2, 3, 4])))),
        )
        .expect("write");
        let file = std::fs::metadata(&rgba).expect("stat").len();
        assert_eq!(decoding_bytes(&rgba), Ok(file + 10 * 10 * (4 + 3 + 1)));
    }
}
