//! LED mapping through the recording stand-in, with faces from the real tracker.

use std::collections::BTreeMap;

use super::*;
use crate::classify::ViewScores;
use crate::geometry::BoundingBox;
use crate::track::{Detections, Observation, Tracker, TrackerSettings};

/// A stand-in that records every pin write.
#[derive(Clone, Default)]
struct RecordingPins {
    writes: std::sync::Arc<std::sync::Mutex<Vec<(u8, f64)>>>,
}

impl RecordingPins {
    /// All writes so far, in order.
    fn writes(&self) -> Vec<(u8, f64)> {
        self.writes.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// The last level written to each pin.
    fn state(&self) -> BTreeMap<u8, f64> {
        self.writes().into_iter().collect()
    }
}

impl LedPins for RecordingPins {
    fn set(&mut self, pin: u8, duty: f64) -> Result<(), LedError> {
        self.writes.lock().unwrap().push((pin, duty));
        Ok(())
    }
}

const HAPPY: usize = 3;
const SAD: usize = 4;

/// Tracks for faces given as (x, size, class, probability of that class); the rest of
/// each face's probability is spread evenly. First sightings are taken as they are.
fn tracks(faces: &[(f32, f32, usize, f32)]) -> Vec<Track> {
    let mut tracker = Tracker::new(7, TrackerSettings::default()).unwrap();
    let observations: Vec<Observation> = faces
        .iter()
        .map(|&(x, size, class, p)| {
            let mut probabilities = vec![(1.0 - p) / 6.0; 7];
            probabilities[class] = p;
            Observation {
                bbox: BoundingBox { x, y: 10.0, width: size, height: size },
                scores: ViewScores::Face(probabilities),
            }
        })
        .collect();
    tracker.update(Detections::Ran(&observations)).unwrap();
    tracker.tracks().to_vec()
}

fn per_emotion() -> LedLayout {
    LedLayout::PerEmotion(BTreeMap::from([(HAPPY, 19), (SAD, 26), (0, 5)]))
}

#[test]
fn all_leds_start_off_and_the_main_faces_emotion_lights_by_confidence() {
    let pins = RecordingPins::default();
    let mut leds = Leds::new(per_emotion(), Box::new(pins.clone())).unwrap();
    assert_eq!(pins.state(), BTreeMap::from([(5, 0.0), (19, 0.0), (26, 0.0)]));
    // The larger (nearer) face is sad at 0.7; the small happy face behind it is ignored.
    leds.show(&tracks(&[(0.0, 40.0, HAPPY, 0.9), (100.0, 120.0, SAD, 0.7)])).unwrap();
    assert_eq!(pins.state(), BTreeMap::from([(5, 0.0), (19, 0.0), (26, 0.7)]));
}

#[test]
fn unchanged_levels_are_not_rewritten_and_no_face_turns_everything_off() {
    let pins = RecordingPins::default();
    let mut leds = Leds::new(per_emotion(), Box::new(pins.clone())).unwrap();
    let happy = tracks(&[(0.0, 80.0, HAPPY, 0.904)]);
    leds.show(&happy).unwrap();
    let writes = pins.writes().len();
    // 0.904 and 0.9 round to the same 1% step.
    leds.show(&tracks(&[(0.0, 80.0, HAPPY, 0.9)])).unwrap();
    assert_eq!(pins.writes().len(), writes, "{:?}", pins.writes());
    leds.show(&[]).unwrap();
    assert_eq!(pins.state()[&19], 0.0);
}

#[test]
fn an_rgb_led_takes_the_emotion_colour_scaled_by_confidence() {
    let pins = RecordingPins::default();
    let layout = LedLayout::Rgb { pins: [17, 27, 22], common_anode: false };
    let mut leds = Leds::new(layout, Box::new(pins.clone())).unwrap();
    leds.show(&tracks(&[(0.0, 80.0, SAD, 0.5)])).unwrap();
    // Sad is (40, 110, 240) on screen: at half confidence 20/255, 55/255, 120/255.
    assert_eq!(pins.state(), BTreeMap::from([(17, 0.08), (27, 0.22), (22, 0.47)]));
}

#[test]
fn a_common_anode_rgb_led_is_dark_when_its_pins_are_high() {
    let pins = RecordingPins::default();
    let layout = LedLayout::Rgb { pins: [17, 27, 22], common_anode: true };
    let mut leds = Leds::new(layout, Box::new(pins.clone())).unwrap();
    assert_eq!(pins.state(), BTreeMap::from([(17, 1.0), (22, 1.0), (27, 1.0)]));
    leds.show(&tracks(&[(0.0, 80.0, HAPPY, 1.0)])).unwrap();
    // Happy is (250, 210, 0): red on 98% of the time (pin high 2%), blue off (pin high).
    assert_eq!(pins.state(), BTreeMap::from([(17, 0.02), (27, 0.18), (22, 1.0)]));
}

#[test]
fn dropping_the_leds_switches_them_off() {
    let pins = RecordingPins::default();
    {
        let mut leds = Leds::new(per_emotion(), Box::new(pins.clone())).unwrap();
        leds.show(&tracks(&[(0.0, 80.0, HAPPY, 1.0)])).unwrap();
        assert_eq!(pins.state()[&19], 1.0);
    }
    assert!(pins.state().values().all(|&level| level == 0.0), "{:?}", pins.state());
}
