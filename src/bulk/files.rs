//! Finding the image files named on the command line.

use std::path::{Path, PathBuf};

/// Extensions `classify` reads (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp"];

/// An input image and the root it was found under (for mirroring paths in `--annotate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    /// Path relative to the folder argument it came from, or the file name for file arguments.
    pub relative: PathBuf,
}

/// Expands files and folders (recursively, sorted by path) into image files.
///
/// A path that does not exist is returned as an error entry so the caller can report it
/// and carry on with the rest.
pub fn collect_inputs(args: &[PathBuf]) -> Vec<Result<InputFile, (PathBuf, String)>> {
    let mut out = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut found = Vec::new();
            walk(arg, &mut found, &mut out);
            found.sort();
            out.extend(found.into_iter().map(|path| {
                let relative = path.strip_prefix(arg).unwrap_or(&path).to_path_buf();
                Ok(InputFile { path, relative })
            }));
        } else if arg.exists() {
            let relative = arg.file_name().map(PathBuf::from).unwrap_or_else(|| arg.clone());
            out.push(Ok(InputFile { path: arg.clone(), relative }));
        } else {
            out.push(Err((arg.clone(), "no such file or folder".to_owned())));
        }
    }
    out
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>, errors: &mut Vec<Result<InputFile, (PathBuf, String)>>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            errors.push(Err((dir.to_owned(), format!("cannot list folder: {err}"))));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, found, errors);
        } else if is_image(&path) {
            found.push(path);
        }
    }
}

/// Whether the file name has one of [`IMAGE_EXTENSIONS`] (any case).
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|known| known.eq_ignore_ascii_case(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_walked_recursively_in_sorted_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/c")).expect("mkdir");
        for name in ["b/c/z.PNG", "a.jpg", "b/y.bmp", "notes.txt"] {
            std::fs::write(root.join(name), b"x").expect("write");
        }
        let found: Vec<PathBuf> =
            collect_inputs(&[root.to_path_buf()]).into_iter().map(|r| r.expect("ok").relative).collect();
        assert_eq!(found, vec![PathBuf::from("a.jpg"), PathBuf::from("b/c/z.PNG"), PathBuf::from("b/y.bmp")]);
    }

    #[test]
    fn missing_path_is_an_error_entry() {
        let result = collect_inputs(&[PathBuf::from("/definitely/missing.jpg")]);
        assert_eq!(result, vec![Err((PathBuf::from("/definitely/missing.jpg"), "no such file or folder".to_owned()))]);
    }
}
