//! One tracked face: its smoothed box, probabilities, label and counters.

use super::smooth::{argmax, ema_box, ema_in_place, hysteresis_label};
use super::{Observation, TrackerSettings};
use crate::classify::{mirror_average, ViewScores};
use crate::geometry::BoundingBox;

/// A face followed across frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    id: u64,
    smoothed_box: BoundingBox,
    /// Raw box of the latest matched detection, used for association: the smoothed box
    /// trails a moving face and would lose IoU with its next detection.
    last_detected_box: BoundingBox,
    probabilities: Vec<f32>,
    /// The scores of the latest matched detection, to pair the next one's with; `None`
    /// after a miss, when the face may have changed.
    last_scores: Option<ViewScores>,
    label: usize,
    age: u64,
    frames_since_seen: u64,
    missed_detections: u32,
}

impl Track {
    /// A track whose smoothed state is exactly its first observation.
    pub(super) fn new(id: u64, observation: &Observation) -> Self {
        let probabilities = observation.scores.combined();
        Self {
            id,
            smoothed_box: observation.bbox,
            last_detected_box: observation.bbox,
            label: argmax(&probabilities),
            probabilities,
            last_scores: Some(observation.scores.clone()),
            age: 1,
            frames_since_seen: 0,
            missed_detections: 0,
        }
    }

    /// Unique id, never reused within one tracker.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Moving average of the matched detection boxes.
    pub fn bbox(&self) -> BoundingBox {
        self.smoothed_box
    }

    /// Moving average of the class probabilities, indexed by class.
    pub fn probabilities(&self) -> &[f32] {
        &self.probabilities
    }

    /// Current class index, changed only with hysteresis (see [`TrackerSettings::label_margin`]).
    pub fn label(&self) -> usize {
        self.label
    }

    /// Smoothed probability of the current label.
    pub fn confidence(&self) -> f32 {
        self.probabilities[self.label]
    }

    /// Frames since the track started, counting the first and every frame after it,
    /// whether or not detection ran.
    pub fn age(&self) -> u64 {
        self.age
    }

    /// Frames, of either kind, since a detection was last matched to this track; 0 on a
    /// frame where it was matched.
    pub fn frames_since_seen(&self) -> u64 {
        self.frames_since_seen
    }

    /// Consecutive detection frames without a match; the track is dropped once this
    /// exceeds [`TrackerSettings::max_missed`].
    pub fn missed_detections(&self) -> u32 {
        self.missed_detections
    }

    pub(super) fn last_detected_box(&self) -> BoundingBox {
        self.last_detected_box
    }

    /// Advances the frame counters; called once per frame before any match or miss.
    pub(super) fn tick(&mut self) {
        self.age += 1;
        self.frames_since_seen += 1;
    }

    /// Folds a matched detection into the smoothed state. Returns `(old, new)` label if
    /// the label changed.
    pub(super) fn observe(&mut self, observation: &Observation, settings: &TrackerSettings) -> Option<(usize, usize)> {
        self.smoothed_box = ema_box(&self.smoothed_box, &observation.bbox, settings.box_alpha);
        self.last_detected_box = observation.bbox;
        let observed = paired(self.last_scores.as_ref(), &observation.scores);
        ema_in_place(&mut self.probabilities, &observed, settings.probability_alpha);
        self.last_scores = Some(observation.scores.clone());
        self.frames_since_seen = 0;
        self.missed_detections = 0;

        let old = self.label;
        self.label = hysteresis_label(&self.probabilities, old, settings.label_margin);
        (self.label != old).then_some((old, self.label))
    }

    /// Records a detection frame on which no detection matched this track.
    pub(super) fn miss(&mut self) {
        self.missed_detections += 1;
        self.last_scores = None;
    }
}

/// The probabilities a detection adds to its track: a face scored on one image (itself or
/// its mirror image) averaged with the other image's score from the track's previous
/// detection, when it had one; otherwise the detection's own.
fn paired(previous: Option<&ViewScores>, current: &ViewScores) -> Vec<f32> {
    match (current, previous) {
        (ViewScores::Face(face), Some(ViewScores::Mirror(mirror) | ViewScores::Both { mirror, .. }))
        | (ViewScores::Mirror(mirror), Some(ViewScores::Face(face) | ViewScores::Both { face, .. })) => {
            mirror_average(face, mirror)
        }
        _ => current.combined(),
    }
}
