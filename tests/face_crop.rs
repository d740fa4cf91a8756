//! The classifier's face crop from real photographs: a face reads the same whatever the
//! picture's resolution, because a face larger than the crop is averaged into it, not sampled.

mod common;

use common::{emotion_pi, root};
use image::imageops::{self, FilterType};

/// The emotion probabilities `classify --json` gives the first face of each picture in `dir`,
/// by file name.
fn probabilities(dir: &std::path::Path) -> Vec<(String, Vec<f64>)> {
    let text = emotion_pi(&["classify", "--json", dir.to_str().expect("UTF-8")]);
    let mut rows: Vec<(String, Vec<f64>)> = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON line"))
        .filter(|row| row["face"] == 0)
        .map(|row| {
            let name = row["file"].as_str().expect("file").rsplit('/').next().expect("name").to_owned();
            let probs = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
                .iter()
                .map(|class| row["probs"][class].as_f64().expect("probability"))
                .collect();
            (name, probs)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[test]
fn a_face_reads_the_same_at_half_and_twice_the_resolution() {
    // Grace Hopper's face is 200 px in the fixture, its crop 220 px into the model's 48: a
    // fifth of the size. Resized with filters that keep its detail honest (a tent filter
    // widened to the step when shrinking, Catmull-Rom when enlarging), it is 100 and 400 px.
    let picture = image::open(root().join("tests/fixtures/grace_hopper.jpg")).expect("fixture").to_rgb8();
    let (w, h) = picture.dimensions();
    let dir = tempfile::tempdir().expect("tempdir");
    picture.save(dir.path().join("b_as_taken.png")).expect("saved");
    imageops::resize(&picture, w / 2, h / 2, FilterType::Triangle).save(dir.path().join("a_half.png")).expect("saved");
    imageops::resize(&picture, w * 2, h * 2, FilterType::CatmullRom)
        .save(dir.path().join("c_twice.png"))
        .expect("saved");

    let rows = probabilities(dir.path());
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["a_half.png", "b_as_taken.png", "c_twice.png"], "one face in each");
    let as_taken = &rows[1].1;
    for (name, probs) in [&rows[0], &rows[2]] {
        let worst = probs.iter().zip(as_taken).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        // Sampled bilinearly (4 of the 21 pixels under each crop pixel of the picture as
        // taken), the half-size picture's neutral score was 0.10 under the one as taken's.
        assert!(worst < 0.02, "{name}: {probs:?} against {as_taken:?} as taken");
    }
}
