//! Finding the image files named on the command line: the folder walker of every command
//! that takes folders (`classify`, `eval`, `run --source`, `bench --live --source`).
//!
//! Links are followed, but each real folder (device and inode) is walked once, so a link
//! loop (`self -> .`) or a second link to a walked folder ends instead of repeating it.
//! What is neither a regular file nor a folder (a FIFO, a device, a socket, a broken
//! link) and every entry that cannot be read is reported, never silently dropped.

use std::collections::HashMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::fs_safety::FileId;

/// Extensions `classify` reads (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp"];

/// An input image: the file argument, or the folder argument joined with the names that
/// led to the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
}

/// A path that names no image to read, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct InputProblem {
    pub path: PathBuf,
    pub problem: Problem,
}

/// Why a path named or found gives no image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("no such file or folder")]
    Missing,
    #[error("cannot read: {0}")]
    Unreadable(String),
    #[error("cannot list folder: {0}")]
    Unlistable(String),
    #[error("cannot read an entry of this folder: {0}")]
    UnreadableEntry(String),
    #[error("broken link: {0}")]
    BrokenLink(String),
    #[error("not a regular file or folder ({0}); skipped")]
    NotFileOrFolder(&'static str),
    /// A link back into a walked folder (a loop) or a second way to one.
    #[error("the same folder as {}, already walked; skipped", .0.display())]
    AlreadyWalked(PathBuf),
}

impl Problem {
    /// Whether an input was lost: everything but a folder skipped because its files are
    /// already listed under another path.
    pub fn is_failure(&self) -> bool {
        !matches!(self, Problem::AlreadyWalked(_))
    }
}

/// One entry of a walk: an image, or a path that gave none.
pub type InputEntry = Result<InputFile, InputProblem>;

/// What a walk found.
#[derive(Debug, Default)]
pub struct Walk {
    /// Images and problems, argument by argument, each argument's in path order.
    pub entries: Vec<InputEntry>,
    /// Every real folder walked and the first path it was walked under, so outputs can
    /// be kept out of them.
    pub folders: HashMap<FileId, PathBuf>,
    /// Every image file listed and its first path, so outputs can be kept off them.
    pub files: HashMap<FileId, PathBuf>,
}

/// Expands files and folders (recursively, sorted by path) into image files.
///
/// A path that does not exist, cannot be read or is not a regular file or folder is an
/// entry of its own, so the caller can report it and carry on with the rest.
pub fn collect_inputs(args: &[PathBuf]) -> Vec<InputEntry> {
    walk_inputs(args).entries
}

/// [`collect_inputs`], with the identities of the folders and files walked.
pub fn walk_inputs(args: &[PathBuf]) -> Walk {
    let mut walk = Walk::default();
    for arg in args {
        let problem = |problem| Err(InputProblem { path: arg.clone(), problem });
        match std::fs::metadata(arg) {
            Ok(metadata) if metadata.is_dir() => {
                let mut found = Vec::new();
                walk_folder(arg, FileId::of(&metadata), &mut walk.folders, &mut walk.files, &mut found);
                found.sort_by(|a, b| entry_path(a).cmp(entry_path(b)));
                walk.entries.extend(found);
            }
            Ok(metadata) if metadata.is_file() => {
                walk.files.entry(FileId::of(&metadata)).or_insert_with(|| arg.clone());
                walk.entries.push(Ok(InputFile { path: arg.clone() }));
            }
            Ok(metadata) => walk.entries.push(problem(Problem::NotFileOrFolder(kind_name(&metadata.file_type())))),
            Err(err) if arg.is_symlink() => walk.entries.push(problem(Problem::BrokenLink(err.to_string()))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => walk.entries.push(problem(Problem::Missing)),
            Err(err) => walk.entries.push(problem(Problem::Unreadable(err.to_string()))),
        }
    }
    walk
}

fn entry_path(entry: &InputEntry) -> &Path {
    match entry {
        Ok(file) => &file.path,
        Err(problem) => &problem.path,
    }
}

/// Walks the folder `root` with an explicit stack (a deep tree cannot overflow the
/// thread's stack), entries in name order so the first path to a folder is the smallest.
fn walk_folder(
    root: &Path,
    root_id: FileId,
    walked: &mut HashMap<FileId, PathBuf>,
    files: &mut HashMap<FileId, PathBuf>,
    found: &mut Vec<InputEntry>,
) {
    let problem = |path: &Path, problem| Err(InputProblem { path: path.to_owned(), problem });
    if let Some(first) = walked.get(&root_id) {
        found.push(problem(root, Problem::AlreadyWalked(first.clone())));
        return;
    }
    walked.insert(root_id, root.to_owned());
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(err) => {
                found.push(problem(&dir, Problem::Unlistable(err.to_string())));
                continue;
            }
        };
        let mut names = Vec::new();
        for entry in listing {
            match entry {
                Ok(entry) => names.push(entry.path()),
                Err(err) => found.push(problem(&dir, Problem::UnreadableEntry(err.to_string()))),
            }
        }
        names.sort();
        let mut subfolders = Vec::new();
        for path in names {
            match std::fs::metadata(&path) {
                Ok(metadata) if metadata.is_dir() => {
                    let id = FileId::of(&metadata);
                    if let Some(first) = walked.get(&id) {
                        found.push(problem(&path, Problem::AlreadyWalked(first.clone())));
                    } else {
                        walked.insert(id, path.clone());
                        subfolders.push(path);
                    }
                }
                Ok(metadata) if metadata.is_file() => {
                    if is_image(&path) {
                        files.entry(FileId::of(&metadata)).or_insert_with(|| path.clone());
                        found.push(Ok(InputFile { path }));
                    }
                }
                Ok(metadata) => found.push(problem(&path, Problem::NotFileOrFolder(kind_name(&metadata.file_type())))),
                Err(err) if path.is_symlink() => found.push(problem(&path, Problem::BrokenLink(err.to_string()))),
                Err(err) => found.push(problem(&path, Problem::Unreadable(err.to_string()))),
            }
        }
        // Popped in name order.
        pending.extend(subfolders.into_iter().rev());
    }
}

fn kind_name(file_type: &std::fs::FileType) -> &'static str {
    if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else {
        "unknown kind"
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
    use std::os::unix::fs::symlink;

    /// The images found under the single folder `root`, relative to it.
    fn relatives(root: &Path) -> Vec<PathBuf> {
        collect_inputs(&[root.to_path_buf()])
            .into_iter()
            .map(|r| r.expect("ok").path.strip_prefix(root).expect("below the root").to_path_buf())
            .collect()
    }

    /// A named pipe at `path`, made in-process: forking `mkfifo` from a multithreaded test
    /// binary can deadlock under qemu-user, where the ARM tests run.
    fn make_fifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path");
        // SAFETY: `name` is a valid NUL-terminated path for the duration of the call.
        let made = unsafe { libc::mkfifo(name.as_ptr(), 0o644) };
        assert_eq!(made, 0, "mkfifo {}: {}", path.display(), std::io::Error::last_os_error());
    }

    #[test]
    fn folders_are_walked_recursively_in_sorted_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/c")).expect("mkdir");
        for name in ["b/c/z.PNG", "a.jpg", "b/y.bmp", "notes.txt"] {
            std::fs::write(root.join(name), b"x").expect("write");
        }
        assert_eq!(relatives(root), vec![PathBuf::from("a.jpg"), PathBuf::from("b/c/z.PNG"), PathBuf::from("b/y.bmp")]);
    }

    #[test]
    fn missing_path_is_an_error_entry() {
        let result = collect_inputs(&[PathBuf::from("/definitely/missing.jpg")]);
        let missing = InputProblem { path: PathBuf::from("/definitely/missing.jpg"), problem: Problem::Missing };
        assert_eq!(result, vec![Err(missing)]);
    }

    #[test]
    fn a_link_to_its_own_folder_lists_each_file_once_and_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("mkdir");
        std::fs::write(root.join("a.jpg"), b"x").expect("write");
        symlink(".", root.join("self")).expect("link");
        // The parent is walked once too, and leads back into the root.
        symlink("..", root.join("up")).expect("link");
        let entries = collect_inputs(std::slice::from_ref(&root));
        let files: Vec<&InputFile> = entries.iter().filter_map(|e| e.as_ref().ok()).collect();
        assert_eq!(files.len(), 1, "{entries:?}");
        assert_eq!(files[0].path, root.join("a.jpg"));
        let skipped: Vec<&InputProblem> = entries.iter().filter_map(|e| e.as_ref().err()).collect();
        assert_eq!(skipped.len(), 2, "{entries:?}");
        assert_eq!(skipped[0].path, root.join("self"));
        assert_eq!(skipped[1].path, root.join("up/root"));
        for problem in skipped {
            assert_eq!(problem.problem, Problem::AlreadyWalked(root.clone()));
            assert!(!problem.problem.is_failure());
        }
    }

    #[test]
    fn two_links_to_one_folder_walk_it_once_under_the_first_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("in");
        std::fs::create_dir_all(dir.path().join("elsewhere")).expect("mkdir");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(dir.path().join("elsewhere/x.png"), b"x").expect("write");
        symlink("../elsewhere", root.join("a")).expect("link");
        symlink("../elsewhere", root.join("b")).expect("link");
        symlink("b", root.join("c")).expect("link");
        let walk = walk_inputs(std::slice::from_ref(&root));
        assert_eq!(walk.entries.iter().filter(|e| e.is_ok()).count(), 1, "{:?}", walk.entries);
        assert_eq!(walk.entries[0], Ok(InputFile { path: root.join("a/x.png") }));
        assert_eq!(walk.folders.len(), 2);
    }

    #[test]
    fn special_files_and_broken_links_are_reported_not_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        make_fifo(&root.join("pipe.jpg"));
        symlink("nowhere.png", root.join("dangling.png")).expect("link");
        symlink("/dev/null", root.join("null.png")).expect("link");
        std::fs::write(root.join("real.png"), b"x").expect("write");
        let problems: Vec<(PathBuf, String)> = collect_inputs(&[root.to_path_buf()])
            .into_iter()
            .filter_map(Result::err)
            .map(|p| (p.path.strip_prefix(root).expect("inside").to_path_buf(), p.problem.to_string()))
            .collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].0 == Path::new("dangling.png") && problems[0].1.starts_with("broken link"), "{problems:?}");
        assert_eq!(
            problems[1],
            (PathBuf::from("null.png"), "not a regular file or folder (character device); skipped".into())
        );
        assert_eq!(problems[2], (PathBuf::from("pipe.jpg"), "not a regular file or folder (FIFO); skipped".into()));
        // A special file named on the command line is refused the same way, never opened.
        let zero = collect_inputs(&[PathBuf::from("/dev/zero")]);
        assert_eq!(
            zero[0].as_ref().err().map(|p| p.problem.clone()),
            Some(Problem::NotFileOrFolder("character device"))
        );
    }

    /// A small deterministic generator, so every run tries the same trees.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random trees of folders, images, links (to files, to folders, loops, dangling) and
    /// FIFOs: the walk ends, lists every real image exactly once per way into it through
    /// distinct folders, and every entry is either an image under the root or reported.
    #[test]
    fn random_trees_with_links_loops_and_fifos_are_walked_finitely_and_completely() {
        for seed in 0..40u64 {
            let mut rng = SplitMix(seed);
            let dir = tempfile::tempdir().expect("tempdir");
            let root = dir.path().join("root");
            std::fs::create_dir(&root).expect("mkdir");
            let mut folders = vec![root.clone()];
            let mut images = 0usize;
            let mut specials = 0usize;
            for index in 0..(5 + rng.below(25)) {
                let parent = folders[rng.below(folders.len())].clone();
                match rng.below(6) {
                    0 => {
                        let folder = parent.join(format!("d{index}"));
                        std::fs::create_dir(&folder).expect("mkdir");
                        folders.push(folder);
                    }
                    1 | 2 => {
                        std::fs::write(parent.join(format!("i{index}.png")), b"x").expect("write");
                        images += 1;
                    }
                    3 => {
                        // A link to any folder of the tree, often an ancestor: a loop.
                        let target = folders[rng.below(folders.len())].clone();
                        symlink(&target, parent.join(format!("l{index}"))).expect("link");
                    }
                    4 => {
                        make_fifo(&parent.join(format!("f{index}.jpg")));
                        specials += 1;
                    }
                    _ => {
                        symlink(parent.join("missing"), parent.join(format!("b{index}.png"))).expect("link");
                        specials += 1;
                    }
                }
            }
            let walk = walk_inputs(std::slice::from_ref(&root));
            let files: Vec<&InputFile> = walk.entries.iter().filter_map(|e| e.as_ref().ok()).collect();
            // Every real folder is walked once, so every real image is listed exactly once.
            assert_eq!(files.len(), images, "seed {seed}: {:?}", walk.entries);
            assert_eq!(walk.files.len(), images, "seed {seed}");
            assert_eq!(walk.folders.len(), folders.len(), "seed {seed}");
            let failures = walk.entries.iter().filter(|e| e.as_ref().is_err_and(|p| p.problem.is_failure())).count();
            assert_eq!(failures, specials, "seed {seed}: {:?}", walk.entries);
            for file in files {
                assert!(file.path.starts_with(&root), "seed {seed}: {file:?}");
            }
            let paths: Vec<&Path> = walk.entries.iter().map(entry_path).collect();
            assert!(paths.windows(2).all(|w| w[0] <= w[1]), "seed {seed}: not in path order: {paths:?}");
        }
    }
}
