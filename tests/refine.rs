//! Refined detection (`detect.refine`, `--refine`): each face detected again in a window
//! twice its size, which the model sees the way it sees a face that fills a selfie.

mod common;

use common::{emotion_pi, root};
use emotion_pi::detect::{DetectorRange, DetectorSettings, Face, Letterbox, TractDetector};
use emotion_pi::geometry::BoundingBox;
use image::{imageops, Rgb, RgbImage};

fn load(refine: bool) -> TractDetector {
    let path = root().join("models").join(DetectorRange::Short.model_file());
    TractDetector::load(&path, DetectorSettings { refine, ..DetectorSettings::default() }).expect("detector loads")
}

#[test]
fn a_window_maps_its_corners_onto_the_square_it_shows() {
    let window = Letterbox::window(300.0, 140.0, 200.0, 128);
    let (top_left, bottom_right) = (window.to_frame(0.0, 0.0), window.to_frame(1.0, 1.0));
    assert!((top_left.x - 300.0).abs() < 1e-3 && (top_left.y - 140.0).abs() < 1e-3, "{top_left:?}");
    assert!((bottom_right.x - 500.0).abs() < 1e-3 && (bottom_right.y - 340.0).abs() < 1e-3, "{bottom_right:?}");
    // The input's centre is the square's.
    let centre = window.to_frame(0.5, 0.5);
    assert!((centre.x - 400.0).abs() < 1e-3 && (centre.y - 240.0).abs() < 1e-3, "{centre:?}");
}

/// The astronaut picture (512x512) resized by `scale` and pasted with its top-left corner at
/// `at` on a gray 640x480 frame.
fn astronaut_in_frame(scale: f32, at: (f32, f32)) -> RgbImage {
    let picture = image::open(root().join("tests/fixtures/astronaut.png")).expect("fixture").to_rgb8();
    let side = (picture.width() as f32 * scale).round() as u32;
    let small = imageops::resize(&picture, side, side, imageops::FilterType::Triangle);
    let mut frame = RgbImage::from_pixel(640, 480, Rgb([128, 128, 128]));
    imageops::overlay(&mut frame, &small, at.0 as i64, at.1 as i64);
    frame
}

fn shifted(b: BoundingBox, scale: f32, at: (f32, f32)) -> BoundingBox {
    BoundingBox { x: b.x * scale + at.0, y: b.y * scale + at.1, width: b.width * scale, height: b.height * scale }
}

#[test]
fn a_small_face_gets_the_box_the_model_gives_it_up_close() {
    // Up close: the astronaut picture as it is, its 94 px face a fifth of the 512 px picture
    // that the model sees at 128 px, so the face is 24 px to it; then the same picture cut to
    // a 188 px square around that face, where it is 64 px, as in a refine window.
    let picture = image::open(root().join("tests/fixtures/astronaut.png")).expect("fixture").to_rgb8();
    let plain = load(false);
    let first = plain.detect(&picture).expect("detect")[0].bbox;
    let side = first.width.max(first.height) * 2.0;
    let centre = first.center();
    let (x0, y0) = ((centre.x - side / 2.0).round(), (centre.y - side / 2.0).round());
    let cut = imageops::crop_imm(&picture, x0 as u32, y0 as u32, side.round() as u32, side.round() as u32).to_image();
    let close = plain.detect(&cut).expect("detect")[0].bbox;
    let close = BoundingBox { x: close.x + x0, y: close.y + y0, ..close };

    // In a 640x480 frame at 1.4 times its size the face is 132 px, 26 px to the whole-frame view.
    let (scale, at) = (1.4, (60.0, -20.0));
    let frame = astronaut_in_frame(scale, at);
    let expected = shifted(close, scale, at);
    let coarse: Vec<Face> = plain.detect(&frame).expect("detect");
    let refined = load(true).detect(&frame).expect("detect");
    assert_eq!((coarse.len(), refined.len()), (1, 1), "{coarse:?} {refined:?}");
    let (before, after) = (coarse[0].bbox.iou(&expected), refined[0].bbox.iou(&expected));
    assert!(after >= 0.9, "refined {:?} against {expected:?}: IoU {after}", refined[0].bbox);
    assert!(after > before, "refining moved the box away: IoU {before} -> {after}");
    // The refined face is the one detector.refine gives the coarse one.
    assert_eq!(plain.refine(&frame, coarse[0].clone()).expect("refine"), refined[0]);
}

#[test]
fn a_window_without_that_face_leaves_the_box_as_it_was() {
    let frame = astronaut_in_frame(0.6, (250.0, 90.0));
    // A box over the plain gray part of the frame: its window shows no face.
    let elsewhere = Face {
        bbox: BoundingBox { x: 20.0, y: 300.0, width: 60.0, height: 60.0 },
        score: 0.7,
        keypoints: [emotion_pi::geometry::Point { x: 50.0, y: 330.0 }; 6],
    };
    assert_eq!(load(true).refine(&frame, elsewhere.clone()).expect("refine"), elsewhere);
    // Boxes with no area, or none a window can be made of, stay as they are.
    for (width, height) in [(0.0, 0.0), (-5.0, 40.0), (40.0, 0.5), (f32::NAN, 40.0), (f32::INFINITY, 40.0)] {
        let odd = Face { bbox: BoundingBox { x: 300.0, y: 200.0, width, height }, ..elsewhere.clone() };
        let kept = load(true).refine(&frame, odd.clone()).expect("refine");
        assert_eq!(format!("{kept:?}"), format!("{odd:?}"), "{width}x{height}");
    }
}

/// The `box` of the first JSON line of `text` that has one.
fn first_box(text: &str) -> Vec<i64> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|v| v["box"].as_array().map(|b| b.iter().map(|x| x.as_i64().expect("whole pixels")).collect()))
        .unwrap_or_else(|| panic!("no box in {text}"))
}

#[test]
fn the_live_loop_and_classify_refine_the_same_way_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(root().join("tests/fixtures/astronaut.png"), dir.path().join("astronaut.png")).expect("copy");
    let folder = dir.path().to_str().expect("UTF-8");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--source", folder, "--serial", "stdout", "--display", "none"];
        args.extend_from_slice(extra);
        first_box(&emotion_pi(&args))
    };
    let still = |extra: &[&str]| {
        let mut args = vec!["classify", "--json", folder];
        args.extend_from_slice(extra);
        first_box(&emotion_pi(&args))
    };
    let (coarse, refined) = (run(&[]), run(&["--refine"]));
    assert_ne!(coarse, refined);
    assert_eq!(still(&[]), coarse);
    assert_eq!(still(&["--refine"]), refined);
    // The config key does what the flag does.
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[detect]\nrefine = true\n").expect("config written");
    assert_eq!(run(&["--config", config.to_str().expect("UTF-8")]), refined);
}
