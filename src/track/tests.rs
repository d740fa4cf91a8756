//! Behaviour of the whole tracker over frame sequences. Expected values are derived by
//! hand in the comments, not read back from the code under test.

use super::*;

const SIZE: f32 = 100.0;

fn face(x: f32, y: f32, probabilities: &[f32]) -> Observation {
    Observation {
        bbox: BoundingBox { x, y, width: SIZE, height: SIZE },
        scores: ViewScores::Face(probabilities.to_vec()),
    }
}

fn tracker(num_classes: usize, settings: TrackerSettings) -> Tracker {
    Tracker::new(num_classes, settings).unwrap()
}

fn detect(tracker: &mut Tracker, faces: &[Observation]) -> Vec<TrackEvent> {
    tracker.update(Detections::Ran(faces)).unwrap()
}

fn skip(tracker: &mut Tracker) {
    assert_eq!(tracker.update(Detections::Skipped).unwrap(), vec![]);
}

fn track_by_id(tracker: &Tracker, id: u64) -> &Track {
    tracker.tracks().iter().find(|t| t.id() == id).unwrap()
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

#[test]
fn a_face_moving_a_few_pixels_per_frame_keeps_its_id() {
    let mut t = tracker(2, TrackerSettings::default());
    // Steps of (5, 2) px on a 100 px box: overlap 95·98 = 9310, union 10690, IoU 0.87.
    for i in 0..30 {
        let events = detect(&mut t, &[face(100.0 + 5.0 * i as f32, 50.0 + 2.0 * i as f32, &[0.8, 0.2])]);
        let expected = if i == 0 { vec![TrackEvent::New { id: 0, label: 0 }] } else { vec![] };
        assert_eq!(events, expected, "frame {i}");
        assert_eq!(t.tracks().len(), 1);
        assert_eq!(t.tracks()[0].id(), 0);
        assert_eq!(t.tracks()[0].age(), i + 1);
    }
}

#[test]
fn two_faces_far_apart_keep_separate_ids_while_moving() {
    let mut t = tracker(2, TrackerSettings::default());
    let a_at = |i: usize| face(20.0 + 6.0 * i as f32, 20.0 + 3.0 * i as f32, &[0.9, 0.1]);
    let b_at = |i: usize| face(400.0 - 6.0 * i as f32, 300.0 - 3.0 * i as f32, &[0.2, 0.8]);

    let events = detect(&mut t, &[a_at(0), b_at(0)]);
    assert_eq!(events, vec![TrackEvent::New { id: 0, label: 0 }, TrackEvent::New { id: 1, label: 1 }]);

    for i in 1..20 {
        // Detection order must not matter, so it alternates.
        let faces = if i % 2 == 0 { [a_at(i), b_at(i)] } else { [b_at(i), a_at(i)] };
        assert_eq!(detect(&mut t, &faces), vec![], "frame {i}");
        assert_eq!(t.tracks().len(), 2);
        // Over 20 frames A spans x 20..234 and B x 286..500, so they never overlap: each
        // track's box overlaps its own face only.
        let (a, b) = (track_by_id(&t, 0), track_by_id(&t, 1));
        assert!(a.bbox().iou(&a_at(i).bbox) > 0.5 && a.bbox().iou(&b_at(i).bbox) == 0.0);
        assert!(b.bbox().iou(&b_at(i).bbox) > 0.5 && b.bbox().iou(&a_at(i).bbox) == 0.0);
        assert_eq!((a.label(), b.label()), (0, 1));
    }
}

#[test]
fn box_follows_the_moving_average_and_holds_on_skipped_frames() {
    // box_alpha b = 0.5. For a box moving v px per frame the lag e_n = x_n - s_n obeys
    // e_n = (1-b)(e_{n-1} + v), e_0 = 0, so e_n = v(1-b)/b · (1 - (1-b)^n).
    // v = 4, n = 10: e = 4 · (1 - 1/1024) = 3.99609375, smoothed x = 40 - e = 36.00390625.
    let mut t = tracker(2, TrackerSettings::default());
    for i in 0..=10 {
        detect(&mut t, &[face(4.0 * i as f32, 50.0, &[0.5, 0.5])]);
    }
    let held = t.tracks()[0].bbox();
    assert!(close(held.x, 36.003_906), "{held:?}");
    assert_eq!((held.y, held.width, held.height), (50.0, SIZE, SIZE));

    for _ in 0..3 {
        skip(&mut t);
        assert_eq!(t.tracks()[0].bbox(), held);
        assert_eq!(t.tracks()[0].missed_detections(), 0);
    }
    assert_eq!(t.tracks()[0].frames_since_seen(), 3);

    // Next step: 0.5 · 44 + 0.5 · 36.00390625 = 40.001953125.
    detect(&mut t, &[face(44.0, 50.0, &[0.5, 0.5])]);
    assert!(close(t.tracks()[0].bbox().x, 40.001_953), "{:?}", t.tracks()[0].bbox());
    assert_eq!(t.tracks()[0].frames_since_seen(), 0);
}

#[test]
fn a_single_frame_spike_does_not_flip_the_label() {
    let mut t = tracker(2, TrackerSettings::default());
    let f = |p: &[f32]| [face(100.0, 100.0, p)];
    assert_eq!(detect(&mut t, &f(&[0.9, 0.1])), vec![TrackEvent::New { id: 0, label: 0 }]);

    // Even a certain class 1 for one frame: 0.3·0 + 0.7·0.9 = 0.63 vs 0.3·1 + 0.7·0.1 = 0.37.
    assert_eq!(detect(&mut t, &f(&[0.0, 1.0])), vec![]);
    let track = &t.tracks()[0];
    assert_eq!(track.label(), 0);
    assert!(close(track.confidence(), 0.63) && close(track.probabilities()[1], 0.37));

    for _ in 0..5 {
        assert_eq!(detect(&mut t, &f(&[0.9, 0.1])), vec![]);
    }
    assert_eq!(t.tracks()[0].label(), 0);
}

#[test]
fn a_sustained_change_flips_the_label_on_the_predicted_frame() {
    // First frame [0.9, 0.1], then [0.1, 0.9] every frame, alpha 0.3. After n sustained
    // frames p_n = q + (p_0 - q)·0.7^n per class, so the lead of class 1 over class 0 is
    // d_n = 0.8 - 1.6·0.7^n. The label flips on the first n with d_n > margin, i.e.
    // 0.7^n < (0.8 - margin)/1.6:
    //   margin 0.1: 0.7^n < 0.4375 → n > 2.318 → n = 3  (d_2 = 0.016, d_3 = 0.2512)
    //   margin 0.0: 0.7^n < 0.5    → n > 1.943 → n = 2  (d_1 = -0.32, d_2 = 0.016)
    for (margin, flip_frame) in [(0.1f32, 3usize), (0.0, 2)] {
        let closed_form = ((0.8 - margin as f64) / 1.6).ln() / 0.7f64.ln();
        assert_eq!(closed_form.floor() as usize + 1, flip_frame);

        let settings = TrackerSettings { label_margin: margin, ..TrackerSettings::default() };
        let mut t = tracker(2, settings);
        detect(&mut t, &[face(100.0, 100.0, &[0.9, 0.1])]);
        let mut flips = Vec::new();
        for n in 1..=10 {
            for event in detect(&mut t, &[face(100.0, 100.0, &[0.1, 0.9])]) {
                flips.push((n, event));
            }
            if n == flip_frame {
                // Confidence is now class 1's p_n = 0.9 - 0.8·0.7^n.
                let expected = 0.9 - 0.8 * 0.7f32.powi(n as i32);
                assert!(close(t.tracks()[0].confidence(), expected), "margin {margin}");
            }
        }
        assert_eq!(flips, vec![(flip_frame, TrackEvent::LabelChanged { id: 0, from: 0, to: 1 })], "margin {margin}");
    }
}

#[test]
fn a_track_is_lost_after_max_missed_plus_one_detection_frames_but_not_on_skipped_frames() {
    let mut t = tracker(2, TrackerSettings::default()); // max_missed 5
    let start = face(100.0, 100.0, &[0.6, 0.4]);
    detect(&mut t, std::slice::from_ref(&start));

    for missed in 1..=5 {
        for _ in 0..3 {
            skip(&mut t);
        }
        assert_eq!(detect(&mut t, &[]), vec![]);
        assert_eq!(t.tracks().len(), 1);
        assert_eq!(t.tracks()[0].missed_detections(), missed);
        assert_eq!(t.tracks()[0].bbox(), start.bbox);
    }
    // 1 + 5·(3 + 1) frames so far.
    assert_eq!(t.tracks()[0].age(), 21);
    assert_eq!(t.tracks()[0].frames_since_seen(), 20);

    for _ in 0..50 {
        skip(&mut t);
    }
    assert_eq!(t.tracks()[0].missed_detections(), 5);

    assert_eq!(detect(&mut t, &[]), vec![TrackEvent::Lost { id: 0 }]);
    assert!(t.tracks().is_empty());
}

#[test]
fn a_match_resets_the_missed_count() {
    let mut t = tracker(2, TrackerSettings::default());
    let f = [face(100.0, 100.0, &[0.6, 0.4])];
    detect(&mut t, &f);
    for _ in 0..5 {
        detect(&mut t, &[]);
    }
    assert_eq!(detect(&mut t, &f), vec![]);
    assert_eq!(t.tracks()[0].missed_detections(), 0);
    for _ in 0..5 {
        assert_eq!(detect(&mut t, &[]), vec![]);
    }
    assert_eq!(detect(&mut t, &[]), vec![TrackEvent::Lost { id: 0 }]);
}

#[test]
fn a_face_reappearing_after_loss_gets_a_new_id() {
    let mut t = tracker(2, TrackerSettings::default());
    let f = [face(100.0, 100.0, &[0.3, 0.7])];
    assert_eq!(detect(&mut t, &f), vec![TrackEvent::New { id: 0, label: 1 }]);
    for _ in 0..5 {
        detect(&mut t, &[]);
    }
    assert_eq!(detect(&mut t, &[]), vec![TrackEvent::Lost { id: 0 }]);
    assert_eq!(detect(&mut t, &f), vec![TrackEvent::New { id: 1, label: 1 }]);
    assert_eq!(t.tracks()[0].age(), 1);
}

#[test]
fn one_frame_can_report_a_label_change_a_loss_and_a_new_track_in_that_order() {
    // alpha 1, margin 0 and max_missed 0 make every effect take hold within one frame.
    let settings =
        TrackerSettings { max_missed: 0, probability_alpha: 1.0, label_margin: 0.0, ..TrackerSettings::default() };
    let mut t = tracker(3, settings);
    let events = detect(&mut t, &[face(0.0, 0.0, &[0.7, 0.2, 0.1]), face(300.0, 0.0, &[0.1, 0.1, 0.8])]);
    assert_eq!(events, vec![TrackEvent::New { id: 0, label: 0 }, TrackEvent::New { id: 1, label: 2 }]);

    // Face 0 now reads class 1, face 1 is gone, a third face appears elsewhere.
    let events = detect(&mut t, &[face(600.0, 0.0, &[0.1, 0.2, 0.7]), face(2.0, 0.0, &[0.2, 0.7, 0.1])]);
    assert_eq!(
        events,
        vec![
            TrackEvent::LabelChanged { id: 0, from: 0, to: 1 },
            TrackEvent::Lost { id: 1 },
            TrackEvent::New { id: 2, label: 2 },
        ]
    );
    let ids: Vec<u64> = t.tracks().iter().map(Track::id).collect();
    assert_eq!(ids, vec![0, 2]);
}

#[test]
fn bad_observations_are_rejected_without_touching_state() {
    let mut t = tracker(3, TrackerSettings::default());
    detect(&mut t, &[face(0.0, 0.0, &[0.2, 0.3, 0.5])]);
    let before = t.tracks().to_vec();

    let short = [face(0.0, 0.0, &[0.2, 0.3, 0.5]), face(200.0, 0.0, &[0.5, 0.5])];
    assert_eq!(t.update(Detections::Ran(&short)), Err(TrackError::ClassCount { index: 1, expected: 3, found: 2 }));
    let nan = [face(0.0, 0.0, &[0.2, f32::NAN, 0.5])];
    assert_eq!(t.update(Detections::Ran(&nan)), Err(TrackError::NonFinite { index: 0 }));
    let inf_box = [face(f32::INFINITY, 0.0, &[0.2, 0.3, 0.5])];
    assert_eq!(t.update(Detections::Ran(&inf_box)), Err(TrackError::NonFinite { index: 0 }));

    assert_eq!(t.tracks(), &before[..]);
}

#[test]
fn construction_rejects_zero_classes_and_bad_settings() {
    let err = Tracker::new(0, TrackerSettings::default()).unwrap_err();
    assert_eq!(err.setting, "num_classes");
    let bad = TrackerSettings { probability_alpha: 0.0, ..TrackerSettings::default() };
    assert_eq!(Tracker::new(2, bad).unwrap_err().setting, "probability_alpha");
}

/// The softmax of the mean log-probabilities of two scores: the mirror average written
/// from its definition.
fn mean_logit_softmax(a: &[f32], b: &[f32]) -> Vec<f32> {
    let logits: Vec<f64> = a.iter().zip(b).map(|(&p, &q)| (f64::from(p).ln() + f64::from(q).ln()) / 2.0).collect();
    let total: f64 = logits.iter().map(|l| l.exp()).sum();
    logits.iter().map(|l| (l.exp() / total) as f32).collect()
}

fn scored(x: f32, scores: ViewScores) -> Observation {
    Observation { bbox: BoundingBox { x, y: 0.0, width: SIZE, height: SIZE }, scores }
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert!(got.iter().zip(want).all(|(&g, &w)| close(g, w)), "{what}: {got:?} against {want:?}");
}

#[test]
fn a_face_scored_on_one_image_is_paired_with_the_other_image_of_its_previous_detection() {
    // No smoothing: the track's probabilities are what each detection adds.
    let settings = TrackerSettings { probability_alpha: 1.0, ..TrackerSettings::default() };
    let mut t = tracker(3, settings);
    let (f1, m1) = (vec![0.6, 0.3, 0.1], vec![0.2, 0.5, 0.3]);
    let (f2, m2, m3, f4) = (vec![0.7, 0.2, 0.1], vec![0.1, 0.8, 0.1], vec![0.3, 0.3, 0.4], vec![0.5, 0.4, 0.1]);
    detect(&mut t, &[scored(0.0, ViewScores::Both { face: f1.clone(), mirror: m1.clone() })]);
    assert_close(t.tracks()[0].probabilities(), &mean_logit_softmax(&f1, &m1), "both images");
    detect(&mut t, &[scored(2.0, ViewScores::Face(f2.clone()))]);
    assert_close(t.tracks()[0].probabilities(), &mean_logit_softmax(&f2, &m1), "face, with the mirror before");
    detect(&mut t, &[scored(4.0, ViewScores::Mirror(m2.clone()))]);
    assert_close(t.tracks()[0].probabilities(), &mean_logit_softmax(&f2, &m2), "mirror, with the face before");
    // The same image twice in a row has nothing to pair with.
    detect(&mut t, &[scored(6.0, ViewScores::Mirror(m3.clone()))]);
    assert_close(t.tracks()[0].probabilities(), &m3, "mirror after mirror");
    // Nor does a detection after a miss: the face may have changed meanwhile.
    detect(&mut t, &[]);
    detect(&mut t, &[scored(6.0, ViewScores::Face(f4.clone()))]);
    assert_eq!((t.tracks().len(), t.tracks()[0].id()), (1, 0));
    assert_close(t.tracks()[0].probabilities(), &f4, "face after a miss");
}

#[test]
fn a_still_face_scored_on_alternate_images_tracks_exactly_as_one_scored_on_both_each_frame() {
    let (face_scores, mirror_scores) = (vec![0.30, 0.25, 0.45], vec![0.50, 0.25, 0.25]);
    let both = || scored(10.0, ViewScores::Both { face: face_scores.clone(), mirror: mirror_scores.clone() });
    let (mut always, mut alternate) = (tracker(3, TrackerSettings::default()), tracker(3, TrackerSettings::default()));
    // Face alone says class 2, mirror alone class 0, their average class 0.
    let average = mean_logit_softmax(&face_scores, &mirror_scores);
    assert!(average[0] > average[2]);
    for frame in 0..8 {
        let alternating = match frame {
            0 => both(),
            odd if odd % 2 == 1 => scored(10.0, ViewScores::Face(face_scores.clone())),
            _ => scored(10.0, ViewScores::Mirror(mirror_scores.clone())),
        };
        detect(&mut always, &[both()]);
        detect(&mut alternate, &[alternating]);
        let (a, b) = (&always.tracks()[0], &alternate.tracks()[0]);
        assert_close(b.probabilities(), a.probabilities(), &format!("frame {frame}"));
        assert_close(b.probabilities(), &average, &format!("frame {frame}"));
        assert_eq!((a.label(), b.label()), (0, 0), "frame {frame}");
    }
}

#[test]
fn tracked_boxes_hold_detections_that_would_pair_with_a_track() {
    let mut t = tracker(2, TrackerSettings::default());
    assert!(!t.tracked_boxes().holds(&BoundingBox { x: 0.0, y: 0.0, width: SIZE, height: SIZE }));
    detect(&mut t, &[face(0.0, 0.0, &[0.5, 0.5])]);
    let boxes = t.tracked_boxes();
    // Shifted by 40 px: overlap 60·100 = 6000, union 14000, IoU 0.43 ≥ 0.3. By 60 px: 4000 /
    // 16000 = 0.25 < 0.3.
    assert!(boxes.holds(&BoundingBox { x: 40.0, y: 0.0, width: SIZE, height: SIZE }));
    assert!(!boxes.holds(&BoundingBox { x: 60.0, y: 0.0, width: SIZE, height: SIZE }));
}
