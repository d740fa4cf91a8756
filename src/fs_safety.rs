//! Reading and writing files without harming them: reads capped in size, writes that
//! either complete or leave nothing, and the identity of a file behind its names.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file or folder as the kernel knows it (device and inode), whatever path or link
/// leads to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    device: u64,
    inode: u64,
}

impl FileId {
    /// The identity of what `metadata` describes.
    pub fn of(metadata: &std::fs::Metadata) -> Self {
        Self { device: metadata.dev(), inode: metadata.ino() }
    }

    /// The identity of what `path` leads to (links followed), if it exists.
    pub fn of_path(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Self::of(&m))
    }
}

/// Whether `inner` is the folder `outer` or lies somewhere inside it, as the file system
/// resolves both (links followed, `..` resolved). Parts of `inner` that do not exist yet
/// are placed under their nearest existing ancestor.
pub fn lies_within(inner: &Path, outer: &Path) -> bool {
    let Some(outer) = FileId::of_path(outer) else { return false };
    let Ok(absolute) = std::path::absolute(inner) else { return false };
    let Some(existing) = absolute.ancestors().find_map(|path| path.canonicalize().ok()) else { return false };
    existing.ancestors().any(|folder| FileId::of_path(folder) == Some(outer))
}

/// A file read whole that turned out larger than its limit, or unreadable.
#[derive(Debug, thiserror::Error)]
pub enum CappedReadError {
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("larger than the {limit}-byte limit for {what}")]
    TooLarge { limit: u64, what: &'static str },
}

impl From<CappedReadError> for std::io::Error {
    fn from(err: CappedReadError) -> Self {
        match err {
            CappedReadError::Io(err) => err,
            too_large @ CappedReadError::TooLarge { .. } => {
                std::io::Error::new(std::io::ErrorKind::InvalidData, too_large.to_string())
            }
        }
    }
}

/// Reads `path` whole, refusing it once more than `limit` bytes have come: a path such as
/// `/dev/zero`, a pipe or a file still growing must not fill the memory. `what` names the
/// kind of file in the message ("image files").
pub fn read_capped(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, CappedReadError> {
    let file = File::open(path)?;
    let expected = file.metadata().map(|m| m.len()).unwrap_or(0);
    if expected > limit {
        return Err(CappedReadError::TooLarge { limit, what });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(CappedReadError::TooLarge { limit, what });
    }
    Ok(bytes)
}

/// Tells temporary files of concurrent writes in one process apart.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary name `path` is written under: hidden, in the same folder (so the rename
/// is atomic) and with an extension no reader of images or CSV picks up.
fn temporary_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let serial = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.partial-{}-{serial}", std::process::id()))
}

/// Writes `path` through `write`, first under a temporary name in the same folder, then
/// renamed over `path`: a failure at any point (disk full, file size limit, encoder
/// error) leaves `path` as it was and no partial file behind.
pub fn write_atomically<F>(path: &Path, write: F) -> std::io::Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
{
    let temporary = temporary_name(path);
    let file = File::options().write(true).create_new(true).open(&temporary)?;
    let mut writer = BufWriter::new(file);
    let written = write(&mut writer).and_then(|()| writer.flush()).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        // The error being reported matters more than one that cleaning up may add.
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_folder_inside_another_is_found_through_links_and_missing_parts() {
        let root = tempfile::tempdir().expect("tempdir");
        let images = root.path().join("images");
        std::fs::create_dir_all(images.join("day1")).expect("mkdir");
        std::os::unix::fs::symlink(&images, root.path().join("link")).expect("symlink");
        assert!(lies_within(&images, &images));
        assert!(lies_within(&images.join("day1"), &images));
        assert!(lies_within(&images.join("not/yet/made"), &images));
        assert!(lies_within(&root.path().join("link/screens"), &images));
        assert!(!lies_within(&images.join("../screens"), &images));
        assert!(!lies_within(root.path(), &images));
        assert!(!lies_within(&images, &root.path().join("missing")));
    }

    #[test]
    fn a_capped_read_of_an_endless_device_stops_at_the_limit() {
        let err = read_capped(Path::new("/dev/zero"), 1000, "test files").expect_err("endless");
        assert_eq!(err.to_string(), "larger than the 1000-byte limit for test files");
    }

    #[test]
    fn a_capped_read_returns_a_file_at_the_limit_and_refuses_one_byte_more() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, [7u8; 10]).expect("write");
        assert_eq!(read_capped(&file, 10, "x").expect("fits"), vec![7u8; 10]);
        assert!(matches!(read_capped(&file, 9, "x"), Err(CappedReadError::TooLarge { limit: 9, .. })));
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_partial_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("out.csv");
        std::fs::write(&target, "old").expect("write");
        let result = write_atomically(&target, |w| {
            w.write_all(&[b'x'; 100_000])?;
            Err(std::io::Error::other("disk full"))
        });
        assert_eq!(result.expect_err("failed").to_string(), "disk full");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "old");
        assert_eq!(names_in(dir.path()), ["out.csv"]);
    }

    #[test]
    fn a_write_that_cannot_be_renamed_into_place_leaves_no_partial_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A folder where the file should go: the rename fails after the data is written.
        std::fs::create_dir_all(dir.path().join("out.png/inside")).expect("mkdir");
        let result = write_atomically(&dir.path().join("out.png"), |w| w.write_all(b"data"));
        assert!(result.is_err());
        assert_eq!(names_in(dir.path()), ["out.png"]);
    }

    #[test]
    fn a_completed_write_replaces_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("out.csv");
        std::fs::write(&target, "old").expect("write");
        write_atomically(&target, |w| w.write_all(b"new")).expect("written");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "new");
        assert_eq!(names_in(dir.path()), ["out.csv"]);
    }
}
