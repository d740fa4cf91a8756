//! The classifier's face crop from real photographs: a face reads the same whatever the
//! picture's resolution, because a face larger than the crop is averaged into it, not sampled.

mod common;

use common::{emotion_pi, root};
use emotion_pi::analyze::{Analyzer, AnalyzerSettings, ModelPaths};
use emotion_pi::classify::{CropOverrides, CropSettings};
use emotion_pi::detect::DetectorRange;
use emotion_pi::frame::Frame;
use image::imageops::{self, FilterType};
use image::RgbImage;

/// Grace Hopper's portrait at half, its own and twice its size. Her face is 200 px in the
/// fixture, its crop 220 px into the model's 48: a fifth of the size. Resized with filters
/// that keep its detail honest (a tent filter widened to the step when shrinking,
/// Catmull-Rom when enlarging), it is 100 and 400 px.
fn grace_hopper_at_three_sizes() -> [RgbImage; 3] {
    let picture = image::open(root().join("tests/fixtures/grace_hopper.jpg")).expect("fixture").to_rgb8();
    let (w, h) = picture.dimensions();
    let half = imageops::resize(&picture, w / 2, h / 2, FilterType::Triangle);
    let twice = imageops::resize(&picture, w * 2, h * 2, FilterType::CatmullRom);
    [half, picture, twice]
}

/// Checks that the class probabilities of the half- and double-size pictures (`sizes[0]`,
/// `sizes[2]`) are within `tolerance` of the picture as taken (`sizes[1]`).
fn assert_the_same_at_every_size(sizes: &[Vec<f64>], tolerance: f64) {
    for (name, probs) in [("half", &sizes[0]), ("twice", &sizes[2])] {
        let worst = probs.iter().zip(&sizes[1]).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < tolerance, "{name}: {probs:?} against {:?} as taken", sizes[1]);
    }
}

#[test]
fn a_face_reads_the_same_at_half_and_twice_the_resolution() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, picture) in ["a_half.png", "b_as_taken.png", "c_twice.png"].iter().zip(grace_hopper_at_three_sizes()) {
        picture.save(dir.path().join(name)).expect("saved");
    }
    let text = emotion_pi(&["classify", "--json", dir.path().to_str().expect("UTF-8")]);
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
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["a_half.png", "b_as_taken.png", "c_twice.png"], "one face in each");
    // Sampled bilinearly (4 of the 21 pixels under each crop pixel of the picture as
    // taken), the half-size picture's neutral score was 0.10 under the one as taken's.
    let sizes: Vec<Vec<f64>> = rows.into_iter().map(|(_, probs)| probs).collect();
    assert_the_same_at_every_size(&sizes, 0.02);
}

#[test]
fn a_crop_levelled_by_the_eyes_reads_the_same_at_every_size_too() {
    // Levelling turns the crop, which the area mean cannot do; it averages bilinear samples
    // spread over each crop pixel instead.
    let levelled = CropSettings { margin: 0.1, offset_y: 0.0, upright: true };
    let settings = AnalyzerSettings { crop: CropOverrides::all(levelled), ..AnalyzerSettings::default() };
    let analyzer = Analyzer::load(&ModelPaths::in_dir(&root().join("models"), DetectorRange::Short), settings)
        .expect("shipped models load");
    let sizes: Vec<Vec<f64>> = grace_hopper_at_three_sizes()
        .into_iter()
        .map(|picture| {
            let faces = analyzer.analyze(&Frame::from_rgb(picture)).expect("analysed");
            assert_eq!(faces.len(), 1, "{faces:?}");
            faces[0].emotion.probabilities.iter().map(|&p| f64::from(p)).collect()
        })
        .collect();
    assert_the_same_at_every_size(&sizes, 0.02);
}
