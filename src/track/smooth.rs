//! Exponential moving averages and the label hysteresis built on them.

use crate::geometry::BoundingBox;

/// One moving-average step: `alpha` is the weight of the new observation.
fn ema(previous: f32, observed: f32, alpha: f32) -> f32 {
    alpha * observed + (1.0 - alpha) * previous
}

/// Moves each smoothed value towards its observation; the slices have equal length.
pub(super) fn ema_in_place(smoothed: &mut [f32], observed: &[f32], alpha: f32) {
    for (s, &o) in smoothed.iter_mut().zip(observed) {
        *s = ema(*s, o, alpha);
    }
}

/// Moving average of a box, taking x, y, width and height separately.
pub(super) fn ema_box(smoothed: &BoundingBox, observed: &BoundingBox, alpha: f32) -> BoundingBox {
    BoundingBox {
        x: ema(smoothed.x, observed.x, alpha),
        y: ema(smoothed.y, observed.y, alpha),
        width: ema(smoothed.width, observed.width, alpha),
        height: ema(smoothed.height, observed.height, alpha),
    }
}

/// Index of the largest value; the lowest such index on ties, 0 for an empty slice.
pub(super) fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// The label to hold after this frame: the most probable class if it beats `current` by
/// more than `margin`, otherwise `current`.
///
/// Comparing against the current label rather than re-taking the argmax keeps two classes
/// with near-equal probability from flickering back and forth.
pub(super) fn hysteresis_label(probabilities: &[f32], current: usize, margin: f32) -> usize {
    let challenger = argmax(probabilities);
    if probabilities[challenger] > probabilities[current] + margin {
        challenger
    } else {
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_weights_the_new_observation_by_alpha() {
        let mut p = [1.0, 0.0];
        ema_in_place(&mut p, &[0.0, 1.0], 0.3);
        // 0.3·0 + 0.7·1 = 0.7, 0.3·1 + 0.7·0 = 0.3
        assert!((p[0] - 0.7).abs() < 1e-6 && (p[1] - 0.3).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn ema_box_averages_every_coordinate() {
        let old = BoundingBox { x: 0.0, y: 10.0, width: 20.0, height: 40.0 };
        let new = BoundingBox { x: 10.0, y: 30.0, width: 40.0, height: 40.0 };
        let smoothed = ema_box(&old, &new, 0.5);
        assert_eq!(smoothed, BoundingBox { x: 5.0, y: 20.0, width: 30.0, height: 40.0 });
        assert_eq!(ema_box(&old, &new, 1.0), new);
    }

    #[test]
    fn argmax_prefers_the_lowest_index_on_ties() {
        assert_eq!(argmax(&[0.2, 0.5, 0.3]), 1);
        assert_eq!(argmax(&[0.4, 0.4, 0.2]), 0);
        assert_eq!(argmax(&[0.1, 0.45, 0.45]), 1);
    }

    #[test]
    fn label_switches_only_beyond_the_margin() {
        // 0.54 vs 0.46: ahead by 0.08, within the 0.1 margin.
        assert_eq!(hysteresis_label(&[0.46, 0.54], 0, 0.1), 0);
        // 0.6 vs 0.4: ahead by 0.2.
        assert_eq!(hysteresis_label(&[0.4, 0.6], 0, 0.1), 1);
        // With no margin any lead switches.
        assert_eq!(hysteresis_label(&[0.49, 0.51], 0, 0.0), 1);
        // Of two classes ahead of the label, the most probable wins.
        assert_eq!(hysteresis_label(&[0.1, 0.35, 0.55], 0, 0.1), 2);
    }
}
