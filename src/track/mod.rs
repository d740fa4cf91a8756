//! Following faces from frame to frame.
//!
//! Each frame the live loop hands the [`Tracker`] either the faces it detected and
//! classified or the news that detection was skipped (it may run only every Nth frame).
//! Detections are paired with tracks by box overlap (`associate`); each track smooths its
//! box and class probabilities and changes its label only with hysteresis (`smooth`), so
//! the display and serial log do not flicker with single-frame classifier noise.

mod associate;
mod settings;
mod smooth;
mod state;

pub use settings::{SettingsError, TrackerSettings};
pub use state::Track;

use crate::classify::ViewScores;
use crate::geometry::BoundingBox;
use associate::greedy_iou_matches;
use thiserror::Error;

/// One detected face with its classifier output.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub bbox: BoundingBox,
    /// Class probabilities, one per class in the classifier's class order, of each image the
    /// face was scored on. A track pairs a face scored on one image with its previous
    /// detection's score on the other (`classify.mirror = "alternate"`).
    pub scores: ViewScores,
}

/// What the tracker learns about one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Detections<'a> {
    /// Detection ran and found these faces (possibly none).
    Ran(&'a [Observation]),
    /// Detection did not run; tracks hold their state and are not counted as missed.
    Skipped,
}

/// A change worth logging, produced by [`Tracker::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackEvent {
    /// A detection matched no track and started this one.
    New { id: u64, label: usize },
    /// A track's label moved from one class to another.
    LabelChanged { id: u64, from: usize, to: usize },
    /// A track went unmatched for too long and was removed.
    Lost { id: u64 },
}

/// An observation the tracker cannot use; the frame is rejected as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrackError {
    #[error("observation {index} has {found} class probabilities, expected {expected}")]
    ClassCount { index: usize, expected: usize, found: usize },
    // A NaN would stay in the moving averages for good, so it is refused at the door.
    #[error("observation {index} contains a non-finite box coordinate or probability")]
    NonFinite { index: usize },
}

/// The tracks' last detected boxes at one moment ([`Tracker::tracked_boxes`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackedBoxes {
    boxes: Vec<BoundingBox>,
    min_iou: f32,
}

impl TrackedBoxes {
    /// Whether a detection at `bbox` overlaps a track enough to be paired with it.
    pub fn holds(&self, bbox: &BoundingBox) -> bool {
        self.boxes.iter().any(|tracked| tracked.iou(bbox) >= self.min_iou)
    }
}

/// Keeps the set of tracked faces up to date, one frame at a time.
#[derive(Debug, Clone)]
pub struct Tracker {
    settings: TrackerSettings,
    num_classes: usize,
    /// In increasing id order: new tracks are appended and removal preserves order.
    tracks: Vec<Track>,
    next_id: u64,
}

impl Tracker {
    /// A tracker for a classifier with `num_classes` classes (at least 1).
    pub fn new(num_classes: usize, settings: TrackerSettings) -> Result<Self, SettingsError> {
        settings.validate()?;
        if num_classes == 0 {
            return Err(SettingsError { setting: "num_classes", value: num_classes.to_string(), allowed: "[1, ∞)" });
        }
        Ok(Self { settings, num_classes, tracks: Vec::new(), next_id: 0 })
    }

    /// Current tracks, oldest first.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Where the tracks' faces were last detected, to tell later detections of them from
    /// new faces before the tracker sees those detections.
    pub fn tracked_boxes(&self) -> TrackedBoxes {
        TrackedBoxes {
            boxes: self.tracks.iter().map(Track::last_detected_box).collect(),
            min_iou: self.settings.min_iou,
        }
    }

    /// Advances one frame.
    ///
    /// Events come in this order: label changes of matched tracks, then lost tracks (each
    /// by increasing id), then new tracks in the order of their detections. A rejected
    /// frame leaves the tracker untouched.
    pub fn update(&mut self, detections: Detections<'_>) -> Result<Vec<TrackEvent>, TrackError> {
        let observations = match detections {
            Detections::Ran(observations) => observations,
            Detections::Skipped => {
                self.tracks.iter_mut().for_each(Track::tick);
                return Ok(Vec::new());
            }
        };
        self.check(observations)?;
        self.tracks.iter_mut().for_each(Track::tick);

        let track_boxes: Vec<BoundingBox> = self.tracks.iter().map(Track::last_detected_box).collect();
        let detection_boxes: Vec<BoundingBox> = observations.iter().map(|o| o.bbox).collect();
        let mut match_of_track = vec![None; self.tracks.len()];
        let mut detection_matched = vec![false; observations.len()];
        for (t, d) in greedy_iou_matches(&track_boxes, &detection_boxes, self.settings.min_iou) {
            match_of_track[t] = Some(d);
            detection_matched[d] = true;
        }

        let mut events = Vec::new();
        for (track, matched) in self.tracks.iter_mut().zip(match_of_track) {
            match matched {
                Some(d) => {
                    if let Some((from, to)) = track.observe(&observations[d], &self.settings) {
                        events.push(TrackEvent::LabelChanged { id: track.id(), from, to });
                    }
                }
                None => track.miss(),
            }
        }

        let max_missed = self.settings.max_missed;
        self.tracks.retain(|track| {
            let keep = track.missed_detections() <= max_missed;
            if !keep {
                events.push(TrackEvent::Lost { id: track.id() });
            }
            keep
        });

        for (observation, _) in observations.iter().zip(detection_matched).filter(|(_, matched)| !matched) {
            let track = Track::new(self.next_id, observation);
            self.next_id += 1;
            events.push(TrackEvent::New { id: track.id(), label: track.label() });
            self.tracks.push(track);
        }
        Ok(events)
    }

    /// Rejects observations with the wrong number of classes or non-finite values.
    fn check(&self, observations: &[Observation]) -> Result<(), TrackError> {
        for (index, observation) in observations.iter().enumerate() {
            let lists = observation.scores.lists();
            if let Some(found) = lists.iter().map(|list| list.len()).find(|&found| found != self.num_classes) {
                return Err(TrackError::ClassCount { index, expected: self.num_classes, found });
            }
            let b = observation.bbox;
            let finite = [b.x, b.y, b.width, b.height].iter().chain(lists.into_iter().flatten()).all(|v| v.is_finite());
            if !finite {
                return Err(TrackError::NonFinite { index });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
