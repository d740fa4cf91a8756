//! The binary on careless and hostile input: outputs never land on inputs, folders with
//! link loops and special files end, endless files are refused fast, and a failed side
//! output never replaces a result. Real files, links, FIFOs and kernel file-size limits.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_emotion-pi")
}

/// Runs `command` to its end, failing the test (and killing the child) when it takes
/// longer than `limit`: the behaviours tested here used to hang or eat all memory.
fn finish_within(mut command: Command, limit: Duration) -> Output {
    command.current_dir(root()).env_remove("EMOTION_PI_MODELS").stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("binary starts");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output { status, stdout: out_reader.join().expect("stdout"), stderr: err_reader.join().expect("stderr") }
}

fn emotion_pi(args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command.args(args);
    command
}

/// `args` run with the kernel's file-size limit at 0 bytes (`ulimit -f 0`, SIGXFSZ
/// ignored so writes fail with EFBIG): every write to a regular file fails, as on a full disk.
fn emotion_pi_on_a_full_disk(args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command.arg("-c").arg("trap '' XFSZ; ulimit -f 0; exec \"$0\" \"$@\"").arg(binary()).args(args);
    command
}

const LIMIT: Duration = Duration::from_secs(120);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_lines(output: &Output) -> Vec<Value> {
    text(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn photo_folder() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).expect("mkdir");
    std::fs::copy(fixture("astronaut.png"), photos.join("astronaut.png")).expect("copy");
    (dir, photos)
}

#[test]
fn classify_refuses_to_annotate_over_its_input_folder() {
    let (_dir, photos) = photo_folder();
    let original = std::fs::read(photos.join("astronaut.png")).expect("read");
    let output = finish_within(emotion_pi(&["classify", "--annotate", s(&photos), s(&photos)]), LIMIT);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("inside the input folder") && stderr.contains(s(&photos)), "{stderr}");
    assert_eq!(std::fs::read(photos.join("astronaut.png")).expect("read"), original, "the photo was overwritten");
}

#[test]
fn classify_refuses_an_annotate_folder_inside_the_input_folder() {
    let (_dir, photos) = photo_folder();
    let inside = photos.join("annotated");
    let output = finish_within(emotion_pi(&["classify", "--annotate", s(&inside), s(&photos)]), LIMIT);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(s(&inside)) && stderr.contains(&format!("input folder {}", photos.display())), "{stderr}");
    assert!(!inside.exists(), "nothing is written when refused");
}

#[test]
fn classify_refuses_an_annotated_copy_over_an_input_file() {
    let (_dir, photos) = photo_folder();
    let photo = photos.join("astronaut.png");
    // A file argument's copy is mirrored below its own folder: here, over itself.
    let output = finish_within(emotion_pi(&["classify", "--annotate", s(&photos), s(&photo)]), LIMIT);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&format!("would be written over the input {}", photo.display())), "{stderr}");
}

#[test]
fn classify_gives_inputs_with_the_same_name_distinct_annotated_copies() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (sub, source) in [("a", "astronaut.png"), ("b", "grace_hopper.jpg")] {
        std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        let image = image::open(fixture(source)).expect("fixture").to_rgb8();
        image.save(dir.path().join(sub).join("x.png")).expect("save");
    }
    let out = dir.path().join("out");
    let (a, b) = (dir.path().join("a/x.png"), dir.path().join("b/x.png"));
    let output = finish_within(emotion_pi(&["classify", "--annotate", s(&out), s(&a), s(&b)]), LIMIT);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let copies = files_under(&out);
    assert_eq!(copies, vec![out.join("a/x.png"), out.join("b/x.png")]);
    // Each copy is the annotated version of its own input (the two photos differ in size).
    for (copy, input) in [(&copies[0], &a), (&copies[1], &b)] {
        let copy = image::image_dimensions(copy).expect("copy");
        assert_eq!(copy, image::image_dimensions(input).expect("input"));
    }
}

#[test]
fn a_failed_annotated_copy_keeps_the_classification_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let photo = fixture("astronaut.png");
    let output =
        finish_within(emotion_pi_on_a_full_disk(&["classify", "--json", "--annotate", s(&out), s(&photo)]), LIMIT);
    let rows = json_lines(&output);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "ok", "the result was replaced: {}", rows[0]);
    assert_eq!(rows[0]["emotion"], "happy");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("cannot write annotated copy") && stderr.contains("astronaut.png"), "{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(files_under(&out), Vec::<PathBuf>::new(), "partial files left");
}

#[test]
fn png_screens_on_a_full_disk_leave_no_empty_or_partial_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let screens = dir.path().join("screens");
    let display = format!("png:{}", screens.display());
    let fixtures = root().join("tests/fixtures");
    let output = finish_within(
        emotion_pi_on_a_full_disk(&["run", "--source", s(&fixtures), "--serial", "none", "--display", &display]),
        LIMIT,
    );
    assert!(screens.is_dir(), "{}", text(&output.stderr));
    assert_eq!(files_under(&screens), Vec::<PathBuf>::new(), "{}", text(&output.stderr));
}

#[test]
fn eval_refuses_to_write_predictions_over_its_data_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data.csv");
    let row = vec!["128"; 2304].join(" ");
    let csv = format!("emotion,pixels,Usage\n3,{row},PublicTest\n");
    std::fs::write(&data, &csv).expect("write");
    let output = finish_within(emotion_pi(&["eval", s(&data), "--predictions", s(&data)]), LIMIT);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("--predictions {0} would overwrite the data set {0}", data.display())),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&data).expect("read"), csv);
}

/// A folder with one photo, a link to itself, a link to its parent and two links to
/// one other folder: finite, and each photo listed once.
fn folder_with_link_loops() -> (tempfile::TempDir, PathBuf) {
    let (dir, photos) = photo_folder();
    std::os::unix::fs::symlink(".", photos.join("self")).expect("link");
    std::os::unix::fs::symlink("..", photos.join("up")).expect("link");
    std::os::unix::fs::symlink(".", photos.join("again")).expect("link");
    (dir, photos)
}

#[test]
fn classify_walks_a_folder_with_link_loops_once() {
    let (_dir, photos) = folder_with_link_loops();
    let output = finish_within(emotion_pi(&["classify", "--json", s(&photos)]), LIMIT);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let rows = json_lines(&output);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["file"], s(&photos.join("astronaut.png")));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&format!("{}: the same folder as", photos.join("self").display())), "{stderr}");
}

#[test]
fn run_source_with_link_loops_plays_each_image_once() {
    let (_dir, photos) = folder_with_link_loops();
    let output = finish_within(emotion_pi(&["run", "--source", s(&photos), "--serial", "stdout"]), LIMIT);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let faces = json_lines(&output).iter().filter(|l| l["event"] == "new").count();
    assert_eq!(faces, 1, "{}", text(&output.stdout));
}

#[test]
fn classify_reports_a_fifo_in_a_folder_instead_of_waiting_on_it() {
    let (_dir, photos) = photo_folder();
    let fifo = photos.join("waiting.jpg");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let output = finish_within(emotion_pi(&["classify", "--json", s(&photos)]), LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let rows = json_lines(&output);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["status"], "ok");
    assert_eq!(rows[1]["file"], s(&fifo));
    assert_eq!(rows[1]["error"], "not a regular file or folder (FIFO); skipped");
}

#[test]
fn classify_of_an_endless_device_fails_fast() {
    let output = finish_within(emotion_pi(&["classify", "--json", "/dev/zero"]), LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let rows = json_lines(&output);
    assert_eq!(rows[0]["error"], "not a regular file or folder (character device); skipped", "{rows:?}");
}

#[test]
fn run_source_of_an_endless_device_fails_fast() {
    let output = finish_within(emotion_pi(&["run", "--source", "/dev/zero", "--serial", "none"]), LIMIT);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("/dev/zero: not a regular file or folder (character device)"), "{stderr}");
}

#[test]
fn check_config_refuses_an_endless_config_file() {
    let output = finish_within(emotion_pi(&["run", "--config", "/dev/zero", "--check-config"]), LIMIT);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot read config /dev/zero: larger than the 1048576-byte limit for config files"),
        "{stderr}"
    );
}

#[test]
fn check_config_refuses_raw_frame_sizes_the_format_cannot_have_or_memory_cannot_hold() {
    for (source, message) in [
        ("stdin:yuv420:641x480", "YU12 frames need an even width and height, not 641x480"),
        ("stdin:nv12:640x479", "NV12 frames need an even width and height, not 640x479"),
        ("stdin:yuyv:3x2", "YUYV frames need an even width, not 3"),
        ("stdin:yuv420:4294967295x2", "4294967295x2 frames are over the 50000000-pixel limit"),
        ("stdin:yuv420:100000x100000", "100000x100000 frames are over the 50000000-pixel limit"),
    ] {
        let output = finish_within(emotion_pi(&["run", "--source", source, "--check-config"]), LIMIT);
        assert_eq!(output.status.code(), Some(2), "{source}: {}", text(&output.stdout));
        let stderr = text(&output.stderr);
        // The value came from the flag, so the error names the flag.
        assert!(stderr.contains("--source") && stderr.contains(message), "{source}: {stderr}");
    }
    let fine = finish_within(emotion_pi(&["run", "--source", "stdin:yuv420:640x480", "--check-config"]), LIMIT);
    assert!(fine.status.success(), "{}", text(&fine.stderr));
}

#[test]
fn eval_rejects_a_truncated_jpeg_in_the_image_folder_layout_like_classify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let happy = dir.path().join("test/happy");
    std::fs::create_dir_all(&happy).expect("mkdir");
    let mut jpeg = std::fs::read(fixture("grace_hopper.jpg")).expect("fixture");
    jpeg.truncate(jpeg.len() / 2);
    let cut = happy.join("cut.jpg");
    std::fs::write(&cut, &jpeg).expect("write");
    let classify = finish_within(emotion_pi(&["classify", "--json", s(&cut)]), LIMIT);
    assert_eq!(classify.status.code(), Some(1), "classify accepted it: {}", text(&classify.stdout));
    let output = finish_within(emotion_pi(&["eval", s(dir.path())]), LIMIT);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("{}: unreadable image", cut.display())) && stderr.contains("truncated"),
        "{stderr}"
    );
}
