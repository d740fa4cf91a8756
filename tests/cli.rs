//! The real binary on the bundled photos and on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn emotion_pi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emotion-pi"))
        .args(args)
        .current_dir(root())
        .env_remove("EMOTION_PI_MODELS")
        .output()
        .expect("binary runs")
}

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

fn fixture(name: &str) -> String {
    root().join("tests/fixtures").join(name).display().to_string()
}

#[test]
fn one_face_per_portrait_and_the_astronaut_smiles() {
    let output = emotion_pi(&["classify", "--json", &fixture("astronaut.png"), &fixture("grace_hopper.jpg")]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rows = json_lines(&output);
    assert_eq!(rows.len(), 2, "{rows:?}");
    // Face boxes as located by hand in the photos (face from brow to chin), to within 15 px.
    for (row, expected) in rows.iter().zip([[179, 81, 93, 93], [170, 144, 197, 197]]) {
        assert_eq!(row["status"], "ok");
        assert_eq!(row["face"], 0);
        let bbox: Vec<i64> = row["box"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        for (got, want) in bbox.iter().zip(expected) {
            assert!((got - want).abs() <= 15, "{} box {bbox:?} vs {expected:?}", row["file"]);
        }
        let probs = row["probs"].as_object().unwrap();
        assert_eq!(probs.len(), 7);
        let total: f64 = probs.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-3);
        let best = probs.iter().max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap())).unwrap();
        assert_eq!(row["emotion"], best.0.as_str());
        assert_eq!(row["confidence"], *best.1);
    }
    assert_eq!(rows[0]["emotion"], "happy", "{}", rows[0]);
}

#[test]
fn csv_has_header_and_reports_files_without_faces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blank = dir.path().join("blank.png");
    image::RgbImage::from_pixel(200, 150, image::Rgb([90, 90, 90])).save(&blank).expect("save");
    let output = emotion_pi(&["classify", blank.to_str().unwrap()]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "file,status,face,x,y,w,h,emotion,confidence,angry,disgust,fear,happy,sad,surprise,neutral");
    assert_eq!(lines[1], format!("{},no_face", blank.display()));
    assert_eq!(lines.len(), 2);
}

#[test]
fn corrupt_and_missing_files_are_reported_and_skipped_with_exit_code_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corrupt = dir.path().join("corrupt.jpg");
    let mut bytes = std::fs::read(root().join("tests/fixtures/grace_hopper.jpg")).expect("fixture");
    bytes.truncate(600);
    std::fs::write(&corrupt, &bytes).expect("write");
    let missing = dir.path().join("missing.png");
    let output = emotion_pi(&[
        "classify",
        "--json",
        corrupt.to_str().unwrap(),
        &fixture("astronaut.png"),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let rows = json_lines(&output);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["status"], "error");
    assert!(rows[0]["error"].as_str().unwrap().contains("cannot read image"), "{}", rows[0]);
    assert_eq!(rows[1]["status"], "ok");
    assert_eq!(rows[2]["error"], "no such file or folder");
    assert!(String::from_utf8_lossy(&output.stderr).contains("2 of 3 files could not be classified"));
}

#[test]
fn annotate_writes_marked_copies_mirroring_folders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("annotated");
    let output = emotion_pi(&[
        "classify",
        "--annotate",
        out.to_str().unwrap(),
        &root().join("tests/fixtures").display().to_string(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let annotated = image::open(out.join("astronaut.png")).expect("annotated copy").to_rgb8();
    let original = image::open(root().join("tests/fixtures/astronaut.png")).expect("original").to_rgb8();
    assert_eq!(annotated.dimensions(), original.dimensions());
    // The box outline is pure green where the face box's left edge runs (x≈179, mid-height).
    let green = (170..190).any(|x| annotated.get_pixel(x, 130).0 == [0, 255, 0]);
    assert!(green, "no box drawn at the face");
    assert!(Path::new(&out.join("grace_hopper.jpg")).exists());
}

#[test]
fn missing_model_is_a_clear_error() {
    let output = emotion_pi(&["classify", "--emotion-model", "/nonexistent/model.onnx", &fixture("astronaut.png")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot load model /nonexistent/model.onnx: no such file"), "{stderr}");
}

#[test]
fn bad_flag_values_name_the_flag() {
    let output = emotion_pi(&["classify", "--min-face-score", "1.5", &fixture("astronaut.png")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--min-face-score") && stderr.contains("outside 0..1"), "{stderr}");
}

#[test]
fn doctor_loads_the_models_and_names_a_missing_camera_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[source]\nuri = \"/dev/video-missing\"\n[serial]\nport = \"/dev/ttyUSB-missing\"\n")
        .unwrap();
    let output = emotion_pi(&["doctor", "--config", config.to_str().unwrap()]);
    let text = String::from_utf8(output.stdout).unwrap();
    let models = text.lines().find(|l| l.contains("] models:")).unwrap_or_else(|| panic!("{text}"));
    assert!(models.starts_with("[  ok   ]") && models.contains("loaded and optimised in"), "{text}");
    let camera = text.lines().position(|l| l.contains("source /dev/video-missing")).unwrap_or_else(|| panic!("{text}"));
    assert!(text.lines().nth(camera).unwrap().starts_with("[PROBLEM]"), "{text}");
    assert!(text.lines().nth(camera + 1).unwrap().trim_start().starts_with("fix: set source.uri"), "{text}");
    assert!(text.contains("log port /dev/ttyUSB-missing"), "{text}");
    // Problems make the exit code 1, so scripts (tools/deploy.sh) can tell.
    assert_eq!(output.status.code(), Some(1), "{text}");
}

#[test]
fn bench_runs_on_an_installed_device_from_any_folder_with_its_built_in_picture() {
    // An installed device has no checkout: the picture is built in and the models are found
    // through $EMOTION_PI_MODELS here (the package's /usr/share path on a Pi).
    let elsewhere = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_emotion-pi"))
        .args(["bench", "--iterations", "2", "--json"])
        .current_dir(elsewhere.path())
        .env("EMOTION_PI_MODELS", root().join("models"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["image"], "built-in portrait (grace_hopper.jpg)");
    assert_eq!(report["faces"], 1, "Grace Hopper's portrait has one face: {report}");
    assert_eq!(report["iterations"], 2);
    let stages: Vec<&str> = report["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    for stage in ["decode image file", "detect: inference", "classify (per face)", "detect+classify frame"] {
        assert!(stages.contains(&stage), "{stages:?}");
    }
    // Both models name the matrix-product kernels tract picked, each running at least one product.
    let kernels = report["kernels"].as_object().unwrap();
    let models: Vec<&String> = kernels.keys().collect();
    assert_eq!(models, ["emotion_mobilenet_int8.onnx", "face_detection_front_128x128_barracuda.onnx"]);
    for (model, picks) in kernels {
        let products: u64 = picks.as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
        assert!(products >= 2, "{model}: {picks}");
    }
    assert!(std::fs::read_dir(elsewhere.path()).unwrap().next().is_none(), "bench wrote into the working folder");
}
