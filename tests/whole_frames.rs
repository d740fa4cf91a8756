//! `eval --frames` and the crop geometry on the shipped models, with faces from the bundled
//! public-domain portraits (never FER2013 pixels).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use emotion_pi::analyze::{Analyzer, AnalyzerSettings, ModelPaths};
use emotion_pi::bulk::frames::{run_frame, run_moving_face, Background, FrameSpec, Placement};
use emotion_pi::classify::{crop_map, ClassifierSettings, CropSettings, TractClassifier};
use emotion_pi::detect::DetectorRange;
use emotion_pi::frame::Frame;
use emotion_pi::geometry::{convex_iou, BoundingBox, Point};
use emotion_pi::resample::{warp_into, Normalize, Outside, SourceImage};
use prost::Message;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn analyzer() -> &'static Analyzer {
    static SHIPPED: OnceLock<Analyzer> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        Analyzer::load(&ModelPaths::in_dir(&root().join("models"), DetectorRange::Short), AnalyzerSettings::default())
            .expect("models")
    })
}

/// The portrait's face cut out square with `crop` around its detected box, `side` pixels wide,
/// upright: a face framed the way the model's crop frames faces.
fn portrait_face(name: &str, crop: &CropSettings, side: u32) -> Vec<u8> {
    let frame = Frame::from_rgb(image::open(root().join("tests/fixtures").join(name)).expect("fixture").to_rgb8());
    let faces = analyzer().detector().detect(&frame.rgb).expect("detect");
    assert_eq!(faces.len(), 1, "{name}");
    let gray = SourceImage { data: frame.gray.as_raw(), width: frame.width(), height: frame.height(), channels: 1 };
    let mut values = vec![0f32; (side * side) as usize];
    let identity = Normalize { scale: 1.0, offset: 0.0 };
    assert!(warp_into(gray, &crop_map(&faces[0], crop, side), &mut values, side, side, Outside::ClampToEdge, identity));
    values.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect()
}

#[test]
fn a_face_placed_at_a_known_square_is_found_and_cropped_back_onto_it() {
    let crop = analyzer().crop();
    let face = portrait_face("astronaut.png", &crop, 96);
    for (center, side, degrees) in [((420.0, 250.0), 150.0, 12.0), ((170.0, 150.0), 140.0, -8.0)] {
        let spec = FrameSpec {
            placement: Placement { center: Point { x: center.0, y: center.1 }, side, angle: f32::to_radians(degrees) },
            contrast: 1.0,
            brightness: 0.0,
            background: Background::Blotches { cell: 40, seed: 9 },
            noise: 4.0,
            noise_seed: 2,
        };
        let outcome = run_frame(analyzer(), &face, 96, &spec, &[crop]).expect("pipeline");
        assert_eq!(outcome.detections, 1, "{spec:?}");
        let found = outcome.found.expect("the placed face is found");
        let (predicted, crop_iou, seen) = found.per_geometry[0];
        // The square was cut with the model's own crop geometry, so the crop of the placed face
        // must land back on it (detection is the same face at another size, place and tilt), as
        // well as a crop of that geometry can: exactly when it turns with the eyes, else as well
        // as an untilted square on the tilted one.
        let best = if crop.upright {
            1.0
        } else {
            let p = spec.placement;
            let untilted = BoundingBox::from_center(p.center.x, p.center.y, p.side, p.side);
            convex_iou(&untilted.corners(), &p.corners())
        };
        assert!(crop_iou >= best - 0.1, "crop IoU {crop_iou}, best {best}, for {spec:?}");
        // The same framing again: about the square's size and place; turned back by the tilt
        // exactly when the crop keeps the frame's axes.
        assert!((0.9..=1.1).contains(&seen.scale), "{seen:?}");
        assert!(seen.offset_x.abs() < 0.05 && seen.offset_y.abs() < 0.05, "{seen:?}");
        let turn = if crop.upright { 0.0 } else { -degrees };
        assert!((seen.rotation_degrees - turn).abs() < if crop.upright { 3.0 } else { 1e-3 }, "{seen:?}");
        assert_eq!(analyzer().classifier().metadata().class_names[predicted], "happy");
    }
}

/// A copy of the shipped emotion model without the `emotion_pi.crop_*` metadata.
fn model_without_crop_keys(dir: &Path) -> PathBuf {
    let bytes = std::fs::read(root().join("models/emotion_mobilenet_int8.onnx")).expect("model");
    let mut model = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).expect("ONNX protobuf");
    let before = model.metadata_props.len();
    model.metadata_props.retain(|entry| !entry.key.starts_with("emotion_pi.crop_"));
    assert_eq!(before - model.metadata_props.len(), 3, "the shipped model carries three crop keys");
    let path = dir.join("without_crop.onnx");
    std::fs::write(&path, model.encode_to_vec()).expect("write");
    path
}

#[test]
fn a_model_without_crop_metadata_crops_as_before_and_config_overrides_the_margin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = model_without_crop_keys(dir.path());
    let classifier = TractClassifier::load(&old, ClassifierSettings::default()).expect("loads");
    assert_eq!(classifier.metadata().crop, CropSettings { margin: 0.1, offset_y: 0.0, upright: true });
    let paths = ModelPaths { classifier: old, ..ModelPaths::in_dir(&root().join("models"), DetectorRange::Short) };
    let settings = AnalyzerSettings {
        crop: emotion_pi::classify::CropOverrides { margin: Some(0.3), ..Default::default() },
        ..AnalyzerSettings::default()
    };
    assert_eq!(Analyzer::load(&paths, settings).expect("loads").crop().margin, 0.3);
    // The shipped model's own crop, with only the margin replaced.
    let shipped = Analyzer::load(&ModelPaths::in_dir(&root().join("models"), DetectorRange::Short), settings)
        .expect("loads")
        .crop();
    assert_eq!(shipped, CropSettings { margin: 0.3, ..analyzer().crop() });
}

fn emotion_pi(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_emotion-pi"))
        .args(args)
        .current_dir(root())
        .env_remove("EMOTION_PI_MODELS")
        .output()
        .expect("runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An image-folder data set: the astronaut (happy) three times and Grace Hopper (neutral)
/// twice, as 48x48 faces framed by the shipped crop.
fn portrait_data_set(dir: &Path) {
    let crop = analyzer().crop();
    for (name, class, copies) in [("astronaut.png", "happy", 3), ("grace_hopper.jpg", "neutral", 2)] {
        let folder = dir.join("test").join(class);
        std::fs::create_dir_all(&folder).expect("mkdir");
        let face = image::GrayImage::from_raw(48, 48, portrait_face(name, &crop, 48)).expect("48x48");
        for copy in 0..copies {
            face.save(folder.join(format!("{copy}.png"))).expect("save");
        }
    }
}

#[test]
fn eval_frames_reports_the_same_for_a_seed_and_sweeps_geometries_on_the_same_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    portrait_data_set(dir.path());
    let data = dir.path().to_str().expect("utf-8");
    let (code, first, stderr) = emotion_pi(&["eval", data, "--frames", "--seed", "5", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (_, again, _) = emotion_pi(&["eval", data, "--frames", "--seed", "5", "--json"]);
    assert_eq!(first, again, "the same seed gives the same report");
    let report: Value = serde_json::from_str(first.trim()).expect("one JSON object");
    let d = &report["detections"];
    let frames = d["none"].as_u64().unwrap() + d["one"].as_u64().unwrap() + d["several"].as_u64().unwrap();
    assert_eq!(frames, 5);
    assert_eq!(report["crops"]["n"], 5);
    let geometries = report["geometries"].as_array().expect("geometries");
    assert_eq!(geometries.len(), 1);
    let all = &geometries[0]["all_faces"];
    assert_eq!(all["n"], 5, "a face not found still counts");
    let missed: u64 = all["missed"].as_array().expect("missed").iter().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(missed, 5 - d["found"].as_u64().unwrap());
    assert_eq!(geometries[0]["found_faces"]["n"], d["found"]);
    assert_eq!(report["refine"], false);

    // `--refine` detects each found face again: the same frames, other boxes.
    let (code, refined, stderr) = emotion_pi(&["eval", data, "--frames", "--seed", "5", "--json", "--refine"]);
    assert_eq!(code, Some(0), "{stderr}");
    let refined: Value = serde_json::from_str(refined.trim()).expect("one JSON object");
    assert_eq!(refined["refine"], true);
    assert_eq!(refined["crops"], report["crops"], "the same faces");
    assert!(refined["detections"]["found"].as_u64().unwrap() > 0);
    assert_ne!(refined["detections"]["mean_box_iou"], d["mean_box_iou"], "refining changed no box");

    let (code, sweep, stderr) = emotion_pi(&[
        "eval",
        data,
        "--frames",
        "--seed",
        "5",
        "--json",
        "--sweep-margin",
        "0,0.4",
        "--sweep-upright",
        "true,false",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let sweep: Value = serde_json::from_str(sweep.trim()).expect("one JSON object");
    assert_eq!(sweep["detections"], report["detections"], "the same frames and detections");
    let crops: Vec<(f64, bool)> = sweep["geometries"]
        .as_array()
        .expect("geometries")
        .iter()
        .map(|g| (g["crop"]["margin"].as_f64().unwrap(), g["crop"]["upright"].as_bool().unwrap()))
        .collect();
    assert_eq!(crops, [(0.0, true), (0.4, true), (0.0, false), (0.4, false)]);
    // A larger square around the same box overlaps the placed square differently.
    let ious: Vec<f64> =
        sweep["geometries"].as_array().unwrap().iter().map(|g| g["mean_crop_iou"].as_f64().unwrap()).collect();
    assert_ne!(ious[0], ious[1]);
}

#[test]
fn frames_and_predictions_do_not_go_together() {
    let (code, _, stderr) = emotion_pi(&["eval", "x.csv", "--frames", "--predictions", "p.csv"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--predictions") && stderr.contains("--frames"), "{stderr}");
}

#[test]
fn a_face_that_did_not_move_pairs_into_what_both_images_give_and_a_moved_one_is_still_read() {
    let crop = analyzer().crop();
    let face = portrait_face("astronaut.png", &crop, 96);
    let first = FrameSpec {
        placement: Placement { center: Point { x: 300.0, y: 220.0 }, side: 160.0, angle: 0.05 },
        contrast: 1.0,
        brightness: 0.0,
        background: Background::Gradient { from: [40.0, 60.0, 80.0], to: [200.0, 190.0, 150.0], angle: 0.7 },
        noise: 3.0,
        noise_seed: 11,
    };
    let happy = analyzer().classifier().metadata().class_names.iter().position(|n| n == "happy").expect("happy");
    // The same frame twice: the pairing has exactly both images of one crop to average, which
    // the face alone is not.
    let still = run_moving_face(analyzer(), &face, 96, &first, &first).expect("pipeline").expect("found twice");
    assert_eq!(still.paired, still.both);
    assert_ne!(still.alone, still.both);
    // Moved by a frame's motion, with new grain: found in both frames, the pair now mixes two
    // crops, and all three still read happy.
    let second = FrameSpec {
        placement: Placement { center: Point { x: 307.0, y: 214.0 }, side: 164.0, angle: 0.02 },
        noise_seed: 12,
        ..first
    };
    let moved = run_moving_face(analyzer(), &face, 96, &first, &second).expect("pipeline").expect("found twice");
    assert_ne!(moved.paired, moved.both);
    for emotion in [&still.both, &moved.both, &moved.paired, &moved.alone] {
        assert_eq!(emotion.top().0, happy, "{emotion:?}");
    }
    // A frame without the face has nothing to pair.
    let elsewhere = FrameSpec { placement: Placement { side: 0.0, ..first.placement }, ..first };
    assert_eq!(run_moving_face(analyzer(), &face, 96, &first, &elsewhere).expect("pipeline"), None);
}
