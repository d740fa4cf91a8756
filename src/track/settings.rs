//! Tuning knobs of the tracker and their allowed ranges.

use thiserror::Error;

/// How the tracker associates, smooths and labels faces.
///
/// Every field has a documented default (see [`TrackerSettings::default`]); call
/// [`TrackerSettings::validate`] (or [`Tracker::new`](super::Tracker::new), which does)
/// before use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerSettings {
    /// Minimum IoU between a track's last detected box and a detection for them to be
    /// paired. Default 0.3. Allowed: (0, 1].
    pub min_iou: f32,
    /// A track is removed once it has gone unmatched on more than this many consecutive
    /// frames where detection ran. Default 5. Any value; 0 drops a track at its first miss.
    pub max_missed: u32,
    /// Weight of the new observation in the moving average of class probabilities.
    /// Default 0.3. Allowed: (0, 1]; 1 disables smoothing.
    pub probability_alpha: f32,
    /// Weight of the new observation in the moving average of the box. Default 0.5.
    /// Allowed: (0, 1]; 1 disables smoothing.
    pub box_alpha: f32,
    /// How far another class's smoothed probability must exceed the current label's
    /// before the label switches to it. Default 0.1. Allowed: [0, 1).
    pub label_margin: f32,
}

impl Default for TrackerSettings {
    /// `min_iou` 0.3, `max_missed` 5, `probability_alpha` 0.3, `box_alpha` 0.5,
    /// `label_margin` 0.1.
    fn default() -> Self {
        Self {
            min_iou: 0.3,
            max_missed: 5,
            probability_alpha: 0.3,
            // At 0.5 a steadily moving box lags by one frame's motion while frame-to-frame
            // detector jitter is cut to a third of its variance; heavier smoothing makes the
            // drawn box visibly trail a moving head.
            box_alpha: 0.5,
            label_margin: 0.1,
        }
    }
}

/// A setting outside its allowed range.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("tracker setting `{setting}` is {value}; allowed: {allowed}")]
pub struct SettingsError {
    /// Name of the offending setting, as spelled in [`TrackerSettings`].
    pub setting: &'static str,
    /// The rejected value, formatted.
    pub value: String,
    /// The allowed range, in interval notation.
    pub allowed: &'static str,
}

impl TrackerSettings {
    /// Checks every setting against its allowed range, reporting the first one outside it.
    pub fn validate(&self) -> Result<(), SettingsError> {
        // NaN fails every `contains`, so it is rejected along with out-of-range values.
        check_positive_fraction("min_iou", self.min_iou)?;
        check_positive_fraction("probability_alpha", self.probability_alpha)?;
        check_positive_fraction("box_alpha", self.box_alpha)?;
        // Probabilities lie in [0, 1], so a margin of 1 or more could never be exceeded
        // and the first label would stick forever.
        if !(0.0..1.0).contains(&self.label_margin) {
            return Err(SettingsError {
                setting: "label_margin",
                value: self.label_margin.to_string(),
                allowed: "[0, 1)",
            });
        }
        Ok(())
    }
}

/// Accepts values in (0, 1], the range shared by both weights and the IoU threshold.
fn check_positive_fraction(setting: &'static str, value: f32) -> Result<(), SettingsError> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(SettingsError { setting, value: value.to_string(), allowed: "(0, 1]" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_values_and_valid() {
        let s = TrackerSettings::default();
        assert_eq!(s.min_iou, 0.3);
        assert_eq!(s.max_missed, 5);
        assert_eq!(s.probability_alpha, 0.3);
        assert_eq!(s.box_alpha, 0.5);
        assert_eq!(s.label_margin, 0.1);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn out_of_range_values_name_their_setting() {
        let base = TrackerSettings::default();
        let cases: Vec<(TrackerSettings, &str)> = vec![
            (TrackerSettings { min_iou: 0.0, ..base }, "min_iou"),
            (TrackerSettings { min_iou: 1.01, ..base }, "min_iou"),
            (TrackerSettings { probability_alpha: 0.0, ..base }, "probability_alpha"),
            (TrackerSettings { probability_alpha: f32::NAN, ..base }, "probability_alpha"),
            (TrackerSettings { box_alpha: -0.5, ..base }, "box_alpha"),
            (TrackerSettings { box_alpha: 2.0, ..base }, "box_alpha"),
            (TrackerSettings { label_margin: -0.01, ..base }, "label_margin"),
            (TrackerSettings { label_margin: 1.0, ..base }, "label_margin"),
            (TrackerSettings { label_margin: f32::INFINITY, ..base }, "label_margin"),
        ];
        for (settings, name) in cases {
            let err = settings.validate().expect_err(name);
            assert_eq!(err.setting, name);
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn range_ends_that_are_allowed_pass() {
        let s =
            TrackerSettings { min_iou: 1.0, max_missed: 0, probability_alpha: 1.0, box_alpha: 1.0, label_margin: 0.0 };
        assert_eq!(s.validate(), Ok(()));
    }
}
