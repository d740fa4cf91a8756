//! FER2013 faces for `eval`: the Kaggle CSV (plain or .gz) or the image-folder layout.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::classify_files::read_image;
use super::files::collect_inputs;
use super::limits::{MAX_CSV_BYTES, MAX_CSV_LINE_BYTES};

/// FER2013's own label order; CSV labels are indices into it and folders are named by it.
pub const FER_CLASSES: [&str; 7] = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
/// Side of a FER2013 face.
pub const FER_SIDE: u32 = 48;

/// The CSV `Usage` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Usage {
    #[value(name = "Training")]
    Training,
    #[value(name = "PublicTest")]
    PublicTest,
    #[value(name = "PrivateTest")]
    PrivateTest,
}

impl Usage {
    fn csv_name(self) -> &'static str {
        match self {
            Usage::Training => "Training",
            Usage::PublicTest => "PublicTest",
            Usage::PrivateTest => "PrivateTest",
        }
    }

    fn folder_name(self) -> Option<&'static str> {
        match self {
            Usage::Training => Some("train"),
            Usage::PublicTest => Some("test"),
            Usage::PrivateTest => None,
        }
    }
}

/// One labelled face: 48×48 gray pixels and the FER2013 class index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledFace {
    pub pixels: Vec<u8>,
    pub label: usize,
}

/// Data that cannot be evaluated; the message names the file and line or path.
#[derive(Debug, thiserror::Error)]
pub enum FerError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{path}:{line}: {message}")]
    Line { path: PathBuf, line: u64, message: String },
}

/// Loads the faces of `usage` from a CSV(.gz) file or an image-folder root.
pub fn load(path: &Path, usage: Usage) -> Result<Vec<LabelledFace>, FerError> {
    if path.is_dir() {
        load_folder(path, usage)
    } else {
        load_csv(path, usage)
    }
}

fn file_error(path: &Path, message: impl Into<String>) -> FerError {
    FerError::File { path: path.to_owned(), message: message.into() }
}

/// Reads the `emotion,pixels,Usage` CSV; rows of other usages are skipped unparsed.
pub fn load_csv(path: &Path, usage: Usage) -> Result<Vec<LabelledFace>, FerError> {
    let file = File::open(path).map_err(|e| file_error(path, format!("cannot open: {e}")))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")) {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    read_csv(reader, path, usage)
}

/// A reader that fails once a line, or the whole input, is longer than a FER2013 CSV has:
/// `/dev/zero` or a gzip bomb must not fill the memory.
struct BoundedCsv<R> {
    inner: R,
    total: u64,
    line: u64,
}

impl<R: Read> Read for BoundedCsv<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let too_long = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        self.total += n as u64;
        if self.total > MAX_CSV_BYTES {
            return Err(too_long(format!("more than the {MAX_CSV_BYTES}-byte limit for CSV files")));
        }
        let mut segments = buf[..n].split(|&b| b == b'\n');
        if let Some(first) = segments.next() {
            self.line += first.len() as u64;
        }
        for segment in segments {
            if self.line > MAX_CSV_LINE_BYTES {
                break;
            }
            self.line = segment.len() as u64;
        }
        if self.line > MAX_CSV_LINE_BYTES {
            return Err(too_long(format!("a line longer than {MAX_CSV_LINE_BYTES} bytes; not a FER2013 CSV")));
        }
        Ok(n)
    }
}

/// [`load_csv`] on any reader; `path` names the input in errors.
pub fn read_csv(reader: impl Read, path: &Path, usage: Usage) -> Result<Vec<LabelledFace>, FerError> {
    let reader = BoundedCsv { inner: reader, total: 0, line: 0 };
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = csv.headers().map_err(|e| file_error(path, format!("cannot read header: {e}")))?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h.trim() == name).ok_or_else(|| FerError::Line {
            path: path.to_owned(),
            line: 1,
            message: format!("header lacks column {name}; expected emotion,pixels,Usage"),
        })
    };
    let (emotion, pixels, usage_col) = (column("emotion")?, column("pixels")?, column("Usage")?);
    let mut faces = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = csv.position().line();
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(FerError::Line { path: path.to_owned(), line, message: format!("unreadable row: {e}") })
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        let line_error = |message: String| FerError::Line { path: path.to_owned(), line, message };
        if record.len() != headers.len() {
            return Err(line_error(format!("expected {} fields, found {}", headers.len(), record.len())));
        }
        let row_usage = record[usage_col].trim();
        if !["Training", "PublicTest", "PrivateTest"].contains(&row_usage) {
            return Err(line_error(format!("unknown Usage {row_usage:?}")));
        }
        if row_usage != usage.csv_name() {
            continue;
        }
        let label: usize = record[emotion]
            .trim()
            .parse()
            .map_err(|_| line_error(format!("emotion {:?} is not a number", &record[emotion])))?;
        if label >= FER_CLASSES.len() {
            return Err(line_error(format!("unknown emotion label {label}; expected 0..6")));
        }
        let values: Vec<u8> = record[pixels]
            .split_ascii_whitespace()
            .map(|v| v.parse::<u8>())
            .collect::<Result<_, _>>()
            .map_err(|_| line_error("pixels must be integers 0..255".to_owned()))?;
        let expected = (FER_SIDE * FER_SIDE) as usize;
        if values.len() != expected {
            return Err(line_error(format!("expected {expected} pixel values, found {}", values.len())));
        }
        faces.push(LabelledFace { pixels: values, label });
    }
    Ok(faces)
}

/// Reads `<root>/<train|test>/<class>/*` (or `<root>/<class>/*`), converting to 48×48 gray.
pub fn load_folder(root: &Path, usage: Usage) -> Result<Vec<LabelledFace>, FerError> {
    let split = match usage.folder_name() {
        Some(name) if root.join(name).is_dir() => root.join(name),
        _ if FER_CLASSES.iter().any(|c| root.join(c).is_dir()) => root.to_owned(),
        Some(name) => {
            return Err(file_error(
                root,
                format!("no {name}/ folder and no class folders ({})", FER_CLASSES.join(", ")),
            ))
        }
        None => return Err(file_error(root, "the image-folder layout has no PrivateTest split")),
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(&split).map_err(|e| file_error(&split, format!("cannot list: {e}")))? {
        let path = entry.map_err(|e| file_error(&split, format!("cannot read a folder entry: {e}")))?.path();
        if path.is_dir() {
            entries.push(path);
        }
    }
    entries.sort();
    let mut faces = Vec::new();
    for dir in entries {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let label = FER_CLASSES.iter().position(|c| *c == name).ok_or_else(|| {
            file_error(&dir, format!("unknown class folder; expected one of {}", FER_CLASSES.join(", ")))
        })?;
        // The shared walker: links followed once per folder, special files and unreadable
        // entries reported. A face that cannot be read stops the evaluation: a score over
        // a silently smaller set would mislead.
        for entry in collect_inputs(std::slice::from_ref(&dir)) {
            match entry {
                Ok(file) => faces.push(LabelledFace { pixels: read_face(&file.path)?, label }),
                Err(problem) if problem.problem.is_failure() => {
                    return Err(file_error(&problem.path, problem.problem.to_string()))
                }
                Err(skipped) => log::warn!("{skipped}"),
            }
        }
    }
    if faces.is_empty() {
        return Err(file_error(&split, "no images found"));
    }
    Ok(faces)
}

/// The face at `path` as 48×48 gray, read as `classify` reads images (size limits, a
/// truncated JPEG refused).
fn read_face(path: &Path) -> Result<Vec<u8>, FerError> {
    let gray = read_image(path).map_err(|e| file_error(path, format!("unreadable image: {e}")))?.gray;
    if gray.width() == FER_SIDE && gray.height() == FER_SIDE {
        return Ok(gray.into_raw());
    }
    // Other sizes are resampled to 48×48 like the training tools do (bilinear).
    let resized = image::imageops::resize(&gray, FER_SIDE, FER_SIDE, image::imageops::FilterType::Triangle);
    Ok(resized.into_raw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pixels(value: u8) -> String {
        vec![value.to_string(); 2304].join(" ")
    }

    fn write_csv(rows: &[String]) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".csv").tempfile().expect("temp");
        writeln!(file, "emotion,pixels,Usage").expect("write");
        for row in rows {
            writeln!(file, "{row}").expect("write");
        }
        file
    }

    #[test]
    fn csv_keeps_requested_usage_and_skips_private_test_unparsed() {
        let file = write_csv(&[
            format!("3,{},Training", pixels(1)),
            format!("5,{},PublicTest", pixels(2)),
            "0,1 2 3,PrivateTest".to_owned(),
        ]);
        let faces = load_csv(file.path(), Usage::PublicTest).expect("loads");
        assert_eq!(faces, vec![LabelledFace { pixels: vec![2; 2304], label: 5 }]);
    }

    #[test]
    fn gzip_csv_is_read() {
        let file = tempfile::Builder::new().suffix(".csv.gz").tempfile().expect("temp");
        let mut gz = flate2::write::GzEncoder::new(File::create(file.path()).expect("create"), Default::default());
        write!(gz, "emotion,pixels,Usage\n6,{},Training\n", pixels(9)).expect("write");
        gz.finish().expect("finish");
        assert_eq!(load_csv(file.path(), Usage::Training).expect("loads")[0].label, 6);
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        for (row, message) in [
            ("3,1 2 3,Training".to_owned(), ":3: expected 2304 pixel values, found 3"),
            (format!("9,{},Training", pixels(0)), ":3: unknown emotion label 9"),
            (format!("1,{},Validation", pixels(0)), ":3: unknown Usage \"Validation\""),
            (format!("1,{},Training", pixels(0)).replacen("0 ", "300 ", 1), ":3: pixels must be integers 0..255"),
        ] {
            let file = write_csv(&[format!("0,{},Training", pixels(0)), row]);
            let err = load_csv(file.path(), Usage::Training).expect_err("bad row").to_string();
            assert!(err.starts_with(&file.path().display().to_string()) && err.contains(message), "{err}");
        }
    }

    #[test]
    fn folder_layout_reads_classes_from_folder_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let happy = dir.path().join("test/happy");
        std::fs::create_dir_all(&happy).expect("mkdir");
        image::GrayImage::from_pixel(48, 48, image::Luma([77])).save(happy.join("a.png")).expect("save");
        let faces = load(dir.path(), Usage::PublicTest).expect("loads");
        assert_eq!(faces, vec![LabelledFace { pixels: vec![77; 2304], label: 3 }]);
        std::fs::write(happy.join("broken.jpg"), b"nope").expect("write");
        let err = load(dir.path(), Usage::PublicTest).expect_err("broken").to_string();
        assert!(err.contains("broken.jpg: unreadable image"), "{err}");
    }

    #[test]
    fn folder_layout_rejects_a_truncated_jpeg_like_classify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let happy = dir.path().join("test/happy");
        std::fs::create_dir_all(&happy).expect("mkdir");
        let mut jpeg = Vec::new();
        image::GrayImage::from_fn(48, 48, |x, y| image::Luma([(x * 5 + y * 3) as u8]))
            .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .expect("encode");
        jpeg.truncate(jpeg.len() * 2 / 3);
        std::fs::write(happy.join("cut.jpg"), &jpeg).expect("write");
        let err = load(dir.path(), Usage::PublicTest).expect_err("truncated").to_string();
        assert!(err.contains("cut.jpg: unreadable image: cannot read image: JPEG data is truncated"), "{err}");
    }

    #[test]
    fn an_endless_csv_line_is_refused_at_the_line_limit() {
        let endless = std::io::Read::take(std::fs::File::open("/dev/zero").expect("zero"), 10 << 20);
        let err = read_csv(endless, Path::new("/dev/zero"), Usage::Training).expect_err("refused").to_string();
        assert!(err.contains("a line longer than 65536 bytes"), "{err}");
        let long_row = format!("emotion,pixels,Usage\n{}\n", "1".repeat(70_000));
        let err =
            read_csv(long_row.as_bytes(), Path::new("rows.csv"), Usage::Training).expect_err("refused").to_string();
        assert!(err.starts_with("rows.csv:2: ") && err.contains("a line longer than 65536 bytes"), "{err}");
    }
}
