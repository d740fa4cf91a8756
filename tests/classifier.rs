//! The emotion classifier on the shipped model: faces of one call and metadata.

use std::path::PathBuf;
use std::sync::OnceLock;

use emotion_pi::classify::{ClassifierSettings, TractClassifier};

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

#[test]
fn wrong_buffer_length_is_an_error_not_a_panic() {
    let c = classifier();
    assert!(c.classify_batch(&[0.0; 10], 1).is_err());
    assert!(c.classify_batch(&[], 0).expect("empty batch").is_empty());
}
