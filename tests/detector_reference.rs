//! BlazeFace decoding against golden values from an independent Python reference
//! (`tools/blazeface_reference.py`, onnxruntime + numpy), stored in
//! `tests/fixtures/blazeface_reference.json` (short range) and
//! `tests/fixtures/blazeface_long_reference.json` (`--range long`).

use std::path::{Path, PathBuf};

use emotion_pi::detect::{anchor_centers, AnchorOptions, DetectorRange, DetectorSettings, Face, TractDetector};
use image::RgbImage;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const RANGES: [DetectorRange; 2] = [DetectorRange::Short, DetectorRange::Long];

fn reference_of(range: DetectorRange) -> Value {
    let name = match range {
        DetectorRange::Short => "blazeface_reference.json",
        DetectorRange::Long => "blazeface_long_reference.json",
    };
    let text = std::fs::read_to_string(root().join("tests/fixtures").join(name)).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn reference() -> Value {
    reference_of(DetectorRange::Short)
}

fn detector_of(range: DetectorRange) -> TractDetector {
    TractDetector::load(&root().join("models").join(range.model_file()), DetectorSettings::default())
        .expect("detector loads")
}

fn detector() -> TractDetector {
    detector_of(DetectorRange::Short)
}

fn load_rgb(name: &str) -> RgbImage {
    image::open(root().join("tests/fixtures").join(name)).expect("fixture image").to_rgb8()
}

/// Rebuilds a composite case exactly as the reference describes it.
fn composite(spec: &Value) -> RgbImage {
    let size = &spec["size"];
    let mut canvas = RgbImage::new(size[0].as_u64().unwrap() as u32, size[1].as_u64().unwrap() as u32);
    for paste in spec["pastes"].as_array().unwrap() {
        let source = load_rgb(paste["file"].as_str().unwrap());
        let v = |key: &str, i: usize| paste[key][i].as_u64().unwrap() as u32;
        for y in 0..v("src", 3) {
            for x in 0..v("src", 2) {
                canvas.put_pixel(v("dst", 0) + x, v("dst", 1) + y, *source.get_pixel(v("src", 0) + x, v("src", 1) + y));
            }
        }
    }
    canvas
}

fn case_image(reference: &Value, case: &Value) -> RgbImage {
    let name = case["name"].as_str().unwrap();
    match reference["composites"]["specs"].get(name) {
        Some(spec) => composite(spec),
        None => load_rgb(case["files"][0].as_str().unwrap()),
    }
}

fn f(v: &Value) -> f32 {
    v.as_f64().unwrap() as f32
}

#[test]
fn anchors_match_reference() {
    for range in RANGES {
        let expected = reference_of(range)["anchors"]["centers"].as_array().unwrap().clone();
        let anchors = anchor_centers(&range.anchor_options());
        assert_eq!((anchors.len(), expected.len()), (896, 896));
        for (i, ((x, y), e)) in anchors.iter().zip(&expected).enumerate() {
            assert!((x - f(&e[0])).abs() < 1e-6 && (y - f(&e[1])).abs() < 1e-6, "{range:?} {i}: ({x}, {y}) vs {e}");
        }
    }
}

#[test]
fn letterbox_matches_reference_pixels() {
    for range in RANGES {
        letterbox_matches(&reference_of(range), &detector_of(range));
    }
}

fn letterbox_matches(reference: &Value, detector: &TractDetector) {
    let side = detector.input_size() as usize;
    for case in reference["cases"].as_array().unwrap() {
        let image = case_image(reference, case);
        let (tensor, letterbox) = detector.preprocess(&image).expect("preprocess");
        assert!((letterbox.scale - f(&case["scale"])).abs() < 1e-5);
        assert!(
            (letterbox.pad_x - f(&case["pad_x"])).abs() < 1e-4 && (letterbox.pad_y - f(&case["pad_y"])).abs() < 1e-4
        );
        let values = tensor.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        // In the model's layout: channels-first once the load took its leading transpose out.
        let channels_first = match tensor.shape() {
            [1, 3, h, w] if *h == side && *w == side => true,
            [1, h, w, 3] if *h == side && *w == side => false,
            other => panic!("input tensor of shape {other:?}"),
        };
        let at = |u: usize, v: usize, c: usize| {
            if channels_first {
                values[(c * side + v) * side + u]
            } else {
                values[(v * side + u) * 3 + c]
            }
        };
        // JPEG decoders may differ by a few levels; the PNG is exact.
        let tolerance =
            if case["files"][0].as_str().unwrap().ends_with(".png") && case["files"].as_array().unwrap().len() == 1 {
                0.01
            } else {
                6.0
            };
        for pixel in case["letterbox_check"]["pixels"].as_array().unwrap() {
            let (u, v) = (pixel["u"].as_u64().unwrap() as usize, pixel["v"].as_u64().unwrap() as usize);
            for c in 0..3 {
                let ours = (at(u, v, c) + 1.0) * 127.5;
                let theirs = f(&pixel["rgb"][c]);
                assert!(
                    (ours - theirs).abs() <= tolerance,
                    "{} ({u},{v}) channel {c}: {ours} vs {theirs}",
                    case["name"]
                );
            }
        }
    }
}

fn assert_face_matches(name: &str, face: &Face, expected: &Value) {
    let b = &expected["box_px"];
    let ours = [face.bbox.x, face.bbox.y, face.bbox.width, face.bbox.height];
    for (i, o) in ours.iter().enumerate() {
        assert!((o - f(&b[i])).abs() < 2.0, "{name}: box {ours:?} vs {b}");
    }
    assert!((face.score - f(&expected["score"])).abs() < 0.02, "{name}: score {} vs {}", face.score, expected["score"]);
    for (k, point) in face.keypoints.iter().enumerate() {
        let e = &expected["keypoints_px"][k];
        assert!(
            (point.x - f(&e[0])).abs() < 3.0 && (point.y - f(&e[1])).abs() < 3.0,
            "{name}: keypoint {k} {point:?} vs {e}"
        );
    }
}

#[test]
fn detections_match_reference() {
    for range in RANGES {
        detections_match(&reference_of(range), &detector_of(range));
    }
}

fn detections_match(reference: &Value, detector: &TractDetector) {
    for case in reference["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let faces = detector.detect(&case_image(reference, case)).expect("detect");
        let expected = case["detections"].as_array().unwrap();
        assert_eq!(faces.len(), expected.len(), "{name}: {faces:?}");
        // Match by nearest centre: order of equal-score faces is not part of the contract.
        for e in expected {
            let (ex, ey) =
                (f(&e["box_px"][0]) + f(&e["box_px"][2]) / 2.0, f(&e["box_px"][1]) + f(&e["box_px"][3]) / 2.0);
            let face = faces
                .iter()
                .min_by(|a, b| {
                    let d = |f: &&Face| (f.bbox.center().x - ex).powi(2) + (f.bbox.center().y - ey).powi(2);
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            assert_face_matches(name, face, e);
        }
    }
}

#[test]
fn decode_of_raw_reference_outputs_is_exact() {
    // Feeding the reference's own best anchor through decode must reproduce its box to float precision:
    // zero regressors except the best anchor's, whose values are recovered from its decoded box.
    let reference = reference();
    let detector = detector();
    let case = &reference["cases"][1];
    let top = &case["top5_raw"][0];
    let anchor = top["anchor"].as_u64().unwrap() as usize;
    let (ax, ay) = anchor_centers(&AnchorOptions::blazeface_short_range())[anchor];
    let mut scores = vec![-50.0f32; 896];
    scores[anchor] = f(&top["raw_logit"]);
    let mut regressors = vec![0f32; 896 * 16];
    let bn = &top["box_norm"];
    let (w, h) = (f(&bn[2]), f(&bn[3]));
    let (cx, cy) = (f(&bn[0]) + w / 2.0, f(&bn[1]) + h / 2.0);
    let r = &mut regressors[anchor * 16..anchor * 16 + 16];
    r[0] = (cx - ax) * 128.0;
    r[1] = (cy - ay) * 128.0;
    r[2] = w * 128.0;
    r[3] = h * 128.0;
    for k in 0..6 {
        r[4 + 2 * k] = (f(&top["keypoints_norm"][k][0]) - ax) * 128.0;
        r[5 + 2 * k] = (f(&top["keypoints_norm"][k][1]) - ay) * 128.0;
    }
    let letterbox = emotion_pi::detect::Letterbox::fit(512, 512, 128);
    let faces = detector.decode(&scores, &regressors, &letterbox);
    assert_eq!(faces.len(), 1);
    assert!((faces[0].score - f(&top["score"])).abs() < 1e-5);
    // astronaut.png: scale 0.25, no padding, so pixels = normalised * 512.
    assert!((faces[0].bbox.x - f(&bn[0]) * 512.0).abs() < 1e-3);
    assert!((faces[0].bbox.width - w * 512.0).abs() < 1e-3);
}

#[test]
fn missing_model_error_names_the_file() {
    let err = TractDetector::load(Path::new("/nonexistent/blazeface.onnx"), DetectorSettings::default())
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("/nonexistent/blazeface.onnx"), "{err}");
}

#[test]
fn the_transpose_taken_out_at_load_leaves_the_outputs_unchanged_bit_for_bit() {
    use emotion_pi::model::{ConvLayout, LoadedOnnx};
    use tract_onnx::prelude::*;

    for range in RANGES {
        let path = root().join("models").join(range.model_file());
        let taken_out = LoadedOnnx::read(&path).expect("loads");
        assert!(taken_out.input_made_channels_first);
        let as_exported = LoadedOnnx {
            path: path.clone(),
            model: tract_onnx::onnx().with_ignore_value_info(true).model_for_path(&path).expect("parses"),
            metadata: taken_out.metadata.clone(),
            input_made_channels_first: false,
        };
        let side = range.anchor_options().input_width as usize;
        // Varied values in every channel, channels-last, and the same values channels-first.
        let value = |y: usize, x: usize, c: usize| ((y * 31 + x * 7 + c * 101) % 255) as f32 / 127.5 - 1.0;
        let mut nhwc = Vec::with_capacity(side * side * 3);
        let mut nchw = vec![0f32; side * side * 3];
        for y in 0..side {
            for x in 0..side {
                for c in 0..3 {
                    nhwc.push(value(y, x, c));
                    nchw[c * side * side + y * side + x] = value(y, x, c);
                }
            }
        }
        let run = |loaded: &LoadedOnnx, shape: [usize; 4], data: &[f32]| -> Vec<Vec<u32>> {
            let plan = loaded.runnable(&shape, ConvLayout::AsExported).expect("optimises");
            let input = Tensor::from_shape(&shape, data).expect("input");
            let outputs = plan.run(tvec!(input.into())).expect("runs");
            outputs
                .iter()
                .map(|o| {
                    let view = o.try_as_plain_ram().expect("in memory");
                    view.as_slice::<f32>().expect("f32 output").iter().map(|v| v.to_bits()).collect()
                })
                .collect()
        };
        let expected = run(&as_exported, [1, side, side, 3], &nhwc);
        assert_eq!(expected.len(), 4);
        assert_eq!(run(&taken_out, [1, 3, side, side], &nchw), expected, "{range:?}");
    }
}
