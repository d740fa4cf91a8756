//! The emotion log's JSON-lines schema (version 1), written to the serial port, stdout or a file.
//!
//! Every line is one JSON object with `"v": 1`, an RFC 3339 UTC `time` with milliseconds and
//! an `event`:
//!
//! - `new`, `change`, `heartbeat`, `lost` (one face): `track` (id, unique for the run),
//!   `emotion` (class name), `confidence` (smoothed probability of `emotion`), `probs`
//!   (class name → smoothed probability), `box` (`[x, y, w, h]` in frame pixels), `frame`
//!   (`[width, height]`); `change` adds `from` (the previous emotion).
//! - `status` (the device): `status` (`running`, `no face`, `no camera`, `stream stalled`, `stopped`),
//!   `faces`, `fps`, and counters since start: `frames` processed, `dropped` camera frames
//!   the loop had no time for, `corrupt` frames skipped, `camera_failures`, `log_dropped`
//!   lines this log could not take.
//!
//! Lines for faces are written when a track starts, changes label or is lost, and for
//! every current track at each heartbeat, together with one `status` line.

use std::time::SystemTime;

use serde::Serialize;

use crate::track::Track;

/// Schema version written as `v`.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a face line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaceEvent {
    New,
    Change,
    Heartbeat,
    Lost,
}

/// The device's state as reported in `status` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeviceStatus {
    /// Frames flow and at least one face is tracked.
    #[serde(rename = "running")]
    Running,
    /// Frames flow without a face.
    #[serde(rename = "no face")]
    NoFace,
    /// The source cannot be opened (unplugged, missing); it is retried with backoff.
    #[serde(rename = "no camera")]
    NoCamera,
    /// The source is open but has sent no frame for a while (a stalled stream or camera).
    #[serde(rename = "stream stalled")]
    Stalled,
    /// The run ended.
    #[serde(rename = "stopped")]
    Stopped,
}

impl DeviceStatus {
    /// The status as the log writes it, e.g. `no camera`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::NoFace => "no face",
            Self::NoCamera => "no camera",
            Self::Stalled => "stream stalled",
            Self::Stopped => "stopped",
        }
    }
}

#[derive(Serialize)]
struct FaceLine<'a> {
    v: u32,
    time: String,
    event: FaceEvent,
    track: u64,
    emotion: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    confidence: f64,
    probs: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "box")]
    bbox: [i32; 4],
    frame: [u32; 2],
}

/// Counters reported in `status` lines.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct StatusCounters {
    pub faces: usize,
    pub fps: f64,
    pub frames: u64,
    pub dropped: u64,
    pub corrupt: u64,
    pub camera_failures: u64,
    pub log_dropped: u64,
}

#[derive(Serialize)]
struct StatusLine {
    v: u32,
    time: String,
    event: &'static str,
    status: DeviceStatus,
    #[serde(flatten)]
    counters: StatusCounters,
}

/// Formats log lines with the classifier's class names.
#[derive(Debug, Clone)]
pub struct EmotionLog {
    class_names: Vec<String>,
}

impl EmotionLog {
    pub fn new(class_names: Vec<String>) -> Self {
        Self { class_names }
    }

    /// One face line for `track`; `from` is the previous label of a `change`.
    pub fn face_line(
        &self,
        event: FaceEvent,
        track: &Track,
        from: Option<usize>,
        frame_size: (u32, u32),
        time: SystemTime,
    ) -> String {
        let name = |class: usize| self.class_names.get(class).map(String::as_str).unwrap_or("?");
        let probs = self
            .class_names
            .iter()
            .zip(track.probabilities())
            .map(|(name, &p)| (name.clone(), serde_json::Value::from(round4(p))))
            .collect();
        let line = FaceLine {
            v: SCHEMA_VERSION,
            time: timestamp(time),
            event,
            track: track.id(),
            emotion: name(track.label()),
            from: from.map(name),
            confidence: round4(track.confidence()),
            probs,
            bbox: track.bbox().to_pixels(),
            frame: [frame_size.0, frame_size.1],
        };
        to_json(&line)
    }

    /// One `status` line.
    pub fn status_line(&self, status: DeviceStatus, counters: StatusCounters, time: SystemTime) -> String {
        let counters = StatusCounters { fps: (counters.fps * 10.0).round() / 10.0, ..counters };
        to_json(&StatusLine { v: SCHEMA_VERSION, time: timestamp(time), event: "status", status, counters })
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising these plain structs of numbers and strings cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

fn round4(v: f32) -> f64 {
    (f64::from(v) * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::ViewScores;
    use crate::geometry::BoundingBox;
    use crate::track::{Detections, Observation, Tracker, TrackerSettings};
    use std::time::{Duration, UNIX_EPOCH};

    fn names() -> Vec<String> {
        ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"].map(String::from).to_vec()
    }

    #[test]
    fn face_line_has_the_documented_fields() {
        let mut tracker = Tracker::new(7, TrackerSettings::default()).unwrap();
        let probabilities = vec![0.05, 0.0, 0.05, 0.7, 0.1, 0.05, 0.05];
        let bbox = BoundingBox { x: 10.4, y: 20.6, width: 100.0, height: 120.2 };
        tracker.update(Detections::Ran(&[Observation { bbox, scores: ViewScores::Face(probabilities) }])).unwrap();
        let log = EmotionLog::new(names());
        // 2026-12-02T16:00:00.250Z
        let time = UNIX_EPOCH + Duration::from_millis(1_796_227_200_250);
        let line = log.face_line(FaceEvent::Change, &tracker.tracks()[0], Some(6), (640, 480), time);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["v"], 1);
        assert_eq!(value["time"], "2026-12-02T16:00:00.250Z");
        assert_eq!(value["event"], "change");
        assert_eq!(value["track"], 0);
        assert_eq!(value["emotion"], "happy");
        assert_eq!(value["from"], "neutral");
        assert_eq!(value["confidence"], 0.7);
        assert_eq!(value["probs"]["sad"], 0.1);
        assert_eq!(value["probs"].as_object().unwrap().len(), 7);
        assert_eq!(value["box"], serde_json::json!([10, 21, 100, 120]));
        assert_eq!(value["frame"], serde_json::json!([640, 480]));
        let plain = log.face_line(FaceEvent::New, &tracker.tracks()[0], None, (640, 480), time);
        assert!(!plain.contains("\"from\""), "{plain}");
    }

    #[test]
    fn status_names_are_the_ones_the_log_writes() {
        use DeviceStatus::*;
        for status in [Running, NoFace, NoCamera, Stalled, Stopped] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    #[test]
    fn status_line_flattens_counters() {
        let log = EmotionLog::new(names());
        let counters = StatusCounters {
            faces: 2,
            fps: 29.96,
            frames: 100,
            dropped: 3,
            corrupt: 1,
            camera_failures: 0,
            log_dropped: 4,
        };
        let line = log.status_line(DeviceStatus::NoCamera, counters, UNIX_EPOCH);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["event"], "status");
        assert_eq!(value["status"], "no camera");
        assert_eq!(value["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!((value["faces"].as_u64(), value["fps"].as_f64()), (Some(2), Some(30.0)));
        assert_eq!((value["dropped"].as_u64(), value["log_dropped"].as_u64()), (Some(3), Some(4)));
    }
}
