//! The emotion classifier on the shipped model: faces of one call and metadata.

use std::path::PathBuf;
use std::sync::OnceLock;

use emotion_pi::classify::{mirror_average, ClassifierSettings, Mirror, TractClassifier, ViewScores, Views};

/// The shipped model, loaded once for all tests: under qemu a load takes many seconds.
fn classifier() -> &'static TractClassifier {
    static SHIPPED: OnceLock<TractClassifier> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/emotion_mobilenet_int8.onnx");
        TractClassifier::load(&path, ClassifierSettings::default()).expect("shipped model loads")
    })
}

#[test]
fn metadata_describes_fer_classes_and_input() {
    let c = classifier();
    let meta = c.metadata();
    assert_eq!(meta.class_names, ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]);
    assert_eq!(meta.input_size, 48);
    assert!(meta.precision.starts_with("int8"), "{}", meta.precision);
}

#[test]
fn batch_of_three_equals_faces_one_by_one() {
    let c = classifier();
    let len = c.face_len();
    // Three different faces, gradients of different slopes normalised like real input; few,
    // as each face takes 16 s under qemu in CI.
    let faces: Vec<f32> =
        (0..3).flat_map(|f| (0..len).map(move |i| ((i * (f + 1)) % 97) as f32 / 40.0 - 1.2)).collect();
    let together = c.classify_batch(&faces, 3).expect("batch");
    assert_eq!(together.len(), 3);
    for (i, emotion) in together.iter().enumerate() {
        let alone = c.classify_batch(&faces[i * len..(i + 1) * len], 1).expect("single");
        for (a, b) in emotion.probabilities.iter().zip(&alone[0].probabilities) {
            assert!((a - b).abs() < 1e-5, "face {i}: {a} vs {b}");
        }
        let total: f32 = emotion.probabilities.iter().sum();
        assert!((total - 1.0).abs() < 1e-4);
    }
}

/// A normalised test face whose left and right halves differ, so its mirror image scores
/// differently.
fn lopsided_face(len: usize, side: usize) -> Vec<f32> {
    (0..len).map(|i| ((i % side) * (i / side + 3) % 89) as f32 / 35.0 - 1.1).collect()
}

#[test]
fn a_face_scored_on_both_images_is_the_two_single_scores_and_the_mirror_is_the_flipped_face() {
    let c = classifier();
    let (len, side) = (c.face_len(), c.metadata().input_size as usize);
    let face = lopsided_face(len, side);
    let flipped: Vec<f32> = face.chunks_exact(side).flat_map(|row| row.iter().rev().copied()).collect();
    let scores = c.classify_views(&[face.as_slice(), &flipped].concat(), &[Views::Both, Views::Face]).expect("scores");
    let ViewScores::Both { face: of_face, mirror: of_mirror } = &scores[0] else { panic!("{scores:?}") };
    assert_eq!(scores[1], ViewScores::Face(of_mirror.clone()), "the mirror pass is the pass on the flipped face");
    let singles = c.classify_views(&[face.as_slice(), &face].concat(), &[Views::Face, Views::Mirror]).expect("scores");
    assert_eq!(singles, [ViewScores::Face(of_face.clone()), ViewScores::Mirror(of_mirror.clone())]);
    assert_ne!(of_face, of_mirror, "the test face must not be symmetric");
    // A still picture is scored on both images unless the mirror is off.
    let still = c.classify_batch(&face, 1).expect("still");
    assert_eq!(c.mirror(), Mirror::Alternate);
    assert_eq!(still[0].probabilities, mirror_average(of_face, of_mirror));
}

#[test]
fn wrong_buffer_length_is_an_error_not_a_panic() {
    let c = classifier();
    assert!(c.classify_batch(&[0.0; 10], 1).is_err());
    assert!(c.classify_batch(&[], 0).expect("empty batch").is_empty());
}

#[test]
fn weights_dequantized_at_parse_give_the_same_outputs_bit_for_bit_as_tracts_own_dequantization() {
    use emotion_pi::model::{ConvLayout, LoadedOnnx};
    use tract_onnx::prelude::*;

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/emotion_mobilenet_int8.onnx");
    let folded = LoadedOnnx::read(&path).unwrap();
    let as_exported = LoadedOnnx {
        path: path.clone(),
        model: tract_onnx::onnx().with_ignore_value_info(true).model_for_path(&path).unwrap(),
        metadata: folded.metadata.clone(),
        input_made_channels_first: false,
    };
    let count_dequantize =
        |loaded: &LoadedOnnx| loaded.model.nodes.iter().filter(|n| n.op.name() == "DequantizeLinear").count();
    assert_eq!(count_dequantize(&folded), 0);
    assert!(count_dequantize(&as_exported) > 20, "the shipped model stores its weights as int8");
    let shape = [1, 1, 48, 48];
    // A face-like ramp with texture, so every channel sees varied input.
    let face: Vec<f32> =
        (0..48 * 48).map(|i| ((i % 48) as f32 * 0.05 - 1.2) + ((i / 48) as f32 * 0.37).sin()).collect();
    let run = |loaded: &LoadedOnnx| -> Vec<u32> {
        let plan = loaded.runnable(&shape, ConvLayout::ChannelsLast).unwrap();
        let input = Tensor::from_shape(&shape, &face).unwrap();
        let outputs = plan.run(tvec!(input.into())).unwrap();
        outputs[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().iter().map(|p| p.to_bits()).collect()
    };
    let (ours, tracts) = (run(&folded), run(&as_exported));
    assert_eq!(ours.len(), 7);
    assert_eq!(ours, tracts);
}
