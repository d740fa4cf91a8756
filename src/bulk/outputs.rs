//! Where `classify --annotate` and `eval --predictions` write, decided before any work so
//! that no output lands on an input, inside an input folder, or on another output.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use super::files::Walk;
use crate::fs_safety::FileId;

/// An output that would harm an input or another output; the run is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputClash {
    #[error(
        "--annotate: {} would be written inside the input folder {}, and read back as input next time; \
         choose a folder outside the inputs",
        output.display(),
        folder.display()
    )]
    InsideInputFolder { output: PathBuf, folder: PathBuf },
    #[error("--annotate: the annotated copy of {} would be written over the input {}", input.display(), overwritten.display())]
    OverwritesInput { input: PathBuf, overwritten: PathBuf },
    #[error("--annotate: the annotated copies of {} and {} would both be written to {}", first.display(), second.display(), output.display())]
    SameOutput { first: PathBuf, second: PathBuf, output: PathBuf },
    #[error("--predictions {} would overwrite the data set {} it reads", predictions.display(), data.display())]
    PredictionsOverData { predictions: PathBuf, data: PathBuf },
    #[error("cannot find the current folder to place outputs: {0}")]
    NoCurrentFolder(String),
}

/// `path` made absolute against `current` with `.` and `..` resolved by name.
fn absolute(path: &Path, current: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in current.join(path).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn common_ancestor(a: &Path, b: &Path) -> PathBuf {
    a.components().zip(b.components()).take_while(|(x, y)| x == y).map(|(x, _)| x).collect()
}

/// The annotated copy of each input image, by input path: the input's path below the
/// deepest folder holding every argument, mirrored under `dir`. One folder argument is
/// mirrored as it is (`photos/a/x.jpg` → `DIR/a/x.jpg`); `a/x.jpg b/x.jpg` become
/// `DIR/a/x.jpg` and `DIR/b/x.jpg`.
///
/// Refused when a copy would be written over an input file, inside a folder that was
/// walked for inputs (a link included), or to the same place as another input's copy.
pub fn annotated_copy_paths(
    dir: &Path,
    args: &[PathBuf],
    walk: &Walk,
) -> Result<HashMap<PathBuf, PathBuf>, OutputClash> {
    let current = std::env::current_dir().map_err(|err| OutputClash::NoCurrentFolder(err.to_string()))?;
    let inputs: Vec<&Path> = walk.entries.iter().filter_map(|e| e.as_ref().ok()).map(|f| f.path.as_path()).collect();
    let mut roots = args.iter().map(|arg| {
        let arg_absolute = absolute(arg, &current);
        match std::fs::metadata(arg) {
            Ok(metadata) if metadata.is_dir() => arg_absolute,
            _ => arg_absolute.parent().map_or_else(|| arg_absolute.clone(), Path::to_path_buf),
        }
    });
    let Some(first_root) = roots.next() else { return Ok(HashMap::new()) };
    let base = roots.fold(first_root, |common, root| common_ancestor(&common, &root));
    let mut outputs: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut written_by: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut folder_ids: HashMap<PathBuf, Option<FileId>> = HashMap::new();
    for input in inputs {
        let input_absolute = absolute(input, &current);
        let below = input_absolute.strip_prefix(&base).unwrap_or(&input_absolute);
        let output = dir.join(below);
        if let Some(first) = written_by.get(&output) {
            if first != input {
                return Err(OutputClash::SameOutput { first: first.clone(), second: input.to_owned(), output });
            }
            continue;
        }
        // Absolute, so that a relative `--annotate` inside the current folder is checked
        // against every folder above it; links are resolved by the kernel, not by name.
        for ancestor in current.join(&output).ancestors().skip(1) {
            let id = *folder_ids.entry(ancestor.to_owned()).or_insert_with(|| FileId::of_path(ancestor));
            if let Some(folder) = id.and_then(|id| walk.folders.get(&id)) {
                return Err(OutputClash::InsideInputFolder { output, folder: folder.clone() });
            }
        }
        if let Some(overwritten) = FileId::of_path(&output).and_then(|id| walk.files.get(&id)) {
            return Err(OutputClash::OverwritesInput { input: input.to_owned(), overwritten: overwritten.clone() });
        }
        written_by.insert(output.clone(), input.to_owned());
        outputs.insert(input.to_owned(), output);
    }
    Ok(outputs)
}

/// Refuses a predictions file that is the data set `eval` reads, or inside its folder.
pub fn check_predictions_target(predictions: &Path, data: &Path) -> Result<(), OutputClash> {
    let Some(data_id) = FileId::of_path(data) else { return Ok(()) };
    let clash = || OutputClash::PredictionsOverData { predictions: predictions.to_owned(), data: data.to_owned() };
    let target = if predictions.parent().is_some_and(|p| p.as_os_str().is_empty()) {
        Path::new(".").join(predictions)
    } else {
        predictions.to_owned()
    };
    if target.ancestors().any(|ancestor| FileId::of_path(ancestor) == Some(data_id)) {
        return Err(clash());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::files::walk_inputs;
    use std::os::unix::fs::symlink;

    /// A folder with `a/x.jpg` and `b/x.jpg` inside `root`.
    fn two_folders_with_the_same_name() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["a", "b"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
            std::fs::write(dir.path().join(sub).join("x.jpg"), sub).expect("write");
        }
        dir
    }

    fn plan(out: &Path, args: &[PathBuf]) -> Result<HashMap<PathBuf, PathBuf>, OutputClash> {
        annotated_copy_paths(out, args, &walk_inputs(args))
    }

    #[test]
    fn inputs_with_the_same_name_get_distinct_annotated_copies() {
        let dir = two_folders_with_the_same_name();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let out = dir.path().join("out");
        for args in [vec![a.join("x.jpg"), b.join("x.jpg")], vec![a.clone(), b.clone()]] {
            let outputs = plan(&out, &args).expect("no clash");
            assert_eq!(outputs[&a.join("x.jpg")], out.join("a/x.jpg"), "{args:?}");
            assert_eq!(outputs[&b.join("x.jpg")], out.join("b/x.jpg"), "{args:?}");
        }
        // One folder is mirrored as it is.
        assert_eq!(plan(&out, std::slice::from_ref(&a)).expect("no clash")[&a.join("x.jpg")], out.join("x.jpg"));
    }

    #[test]
    fn an_annotate_folder_that_is_or_is_inside_an_input_folder_is_refused() {
        let dir = two_folders_with_the_same_name();
        let a = dir.path().join("a");
        for out in [a.clone(), a.join("annotated"), a.join("deeper/still")] {
            let clash = plan(&out, std::slice::from_ref(&a)).expect_err("inside");
            assert!(matches!(&clash, OutputClash::InsideInputFolder { folder, .. } if *folder == a), "{clash}");
            assert!(clash.to_string().contains(&a.display().to_string()), "{clash}");
        }
        // Through a link to an input folder, too.
        symlink(&a, dir.path().join("link")).expect("link");
        assert!(plan(&dir.path().join("link/out"), std::slice::from_ref(&a)).is_err());
        // Beside the inputs is fine.
        assert!(plan(&dir.path().join("out"), &[a]).is_ok());
    }

    #[test]
    fn an_annotated_copy_over_an_input_file_is_refused() {
        let dir = two_folders_with_the_same_name();
        let input = dir.path().join("a/x.jpg");
        // A file argument is mirrored below its own folder: `--annotate a a/x.jpg` is itself.
        let clash = plan(&dir.path().join("a"), std::slice::from_ref(&input)).expect_err("over the input");
        assert_eq!(clash, OutputClash::OverwritesInput { input: input.clone(), overwritten: input });
    }

    #[test]
    fn predictions_over_the_data_set_or_inside_its_folder_are_refused() {
        let dir = two_folders_with_the_same_name();
        let data = dir.path().join("a/x.jpg");
        assert!(check_predictions_target(&data, &data).is_err());
        symlink(&data, dir.path().join("same")).expect("link");
        assert!(check_predictions_target(&dir.path().join("same"), &data).is_err());
        let folder = dir.path().join("a");
        assert!(check_predictions_target(&folder.join("new.csv"), &folder).is_err());
        assert!(check_predictions_target(&dir.path().join("b/new.csv"), &folder).is_ok());
        assert!(check_predictions_target(&dir.path().join("p.csv"), &data).is_ok());
    }

    #[test]
    fn names_are_resolved_before_comparing() {
        assert_eq!(absolute(Path::new("a/./b/../c"), Path::new("/w")), PathBuf::from("/w/a/c"));
        assert_eq!(absolute(Path::new("/x/../../y"), Path::new("/w")), PathBuf::from("/y"));
        assert_eq!(common_ancestor(Path::new("/w/a/b"), Path::new("/w/a/c")), PathBuf::from("/w/a"));
    }
}
