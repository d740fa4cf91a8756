//! The emotion classifier on the shipped model: faces of one call and metadata.

use std::path::PathBuf;
use std::sync::OnceLock;

use emotion_pi::classify::TractClassifier;
use emotion_pi::kernel_choice::{product_kernels, product_shapes, KernelChoice};

fn classifier_with(kernels: KernelChoice) -> TractClassifier {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/emotion_mobilenet_int8.onnx");
    TractClassifier::load(&path, kernels).expect("shipped model loads")
}

/// The shipped model with kernels measured at load, loaded once for all tests: measuring
/// takes seconds here and minutes under qemu.
fn classifier() -> &'static TractClassifier {
    static MEASURED: OnceLock<TractClassifier> = OnceLock::new();
    MEASURED.get_or_init(|| classifier_with(KernelChoice::Measured))
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

#[test]
fn measured_kernels_run_each_product_on_its_chosen_kernel_with_the_same_results() {
    let measured = classifier();
    let report = measured.kernel_report().expect("kernels were measured").clone();
    let shapes = product_shapes(measured.plan());
    let kernels = product_kernels(measured.plan());
    // Matrix-vector products (n = 1, the final layer) stay with tract; every other one runs
    // the kernel measured fastest for its shape.
    let matrix_products: Vec<_> = shapes.iter().filter(|(_, shape)| shape.2 > 1).collect();
    assert!(matrix_products.len() >= 10, "{shapes:?}");
    assert_eq!(
        report.chosen.len(),
        matrix_products.iter().map(|(_, s)| *s).collect::<std::collections::BTreeSet<_>>().len()
    );
    for (node, shape) in matrix_products {
        assert_eq!(kernels[node], report.chosen[shape], "node {node}, shape {shape:?}");
    }
    match report.timings {
        Some(t) => assert!(report.candidates > 1 && t.runs >= 1 && t.chosen_us > 0.0 && t.tract_us > 0.0, "{report:?}"),
        None => assert_eq!(report.candidates, 1, "{report:?}"),
    }

    let tract = classifier_with(KernelChoice::Tract);
    assert!(tract.kernel_report().is_none());
    let len = measured.face_len();
    let faces: Vec<f32> =
        (0..3).flat_map(|f| (0..len).map(move |i| ((i * (f + 3)) % 89) as f32 / 35.0 - 1.2)).collect();
    let a = measured.classify_batch(&faces, 3).expect("measured kernels");
    let b = tract.classify_batch(&faces, 3).expect("tract's kernels");
    for (face, (x, y)) in a.iter().zip(&b).enumerate() {
        for (p, q) in x.probabilities.iter().zip(&y.probabilities) {
            assert!((p - q).abs() < 1e-5, "face {face}: {p} vs {q}");
        }
    }
}
