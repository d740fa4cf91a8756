//! Pairing existing tracks with this frame's detections.

use crate::geometry::BoundingBox;

/// Pairs `(track index, detection index)` chosen greedily, highest IoU first, among pairs
/// whose IoU is at least `min_iou`. Each track and each detection is used at most once.
///
/// Greedy rather than optimal (Hungarian) assignment: with the few, mostly separated faces
/// a camera sees the two agree, and greedy never gives up a clearly overlapping pair to
/// make two weaker ones.
pub(super) fn greedy_iou_matches(
    tracks: &[BoundingBox],
    detections: &[BoundingBox],
    min_iou: f32,
) -> Vec<(usize, usize)> {
    let mut candidates: Vec<(f32, usize, usize)> = Vec::new();
    for (t, track) in tracks.iter().enumerate() {
        for (d, detection) in detections.iter().enumerate() {
            let iou = track.iou(detection);
            if iou >= min_iou {
                candidates.push((iou, t, d));
            }
        }
    }
    // The sort is stable, so equal IoUs keep index order and ties resolve the same way
    // on every run.
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));

    let mut track_taken = vec![false; tracks.len()];
    let mut detection_taken = vec![false; detections.len()];
    let mut matches = Vec::new();
    for (_, t, d) in candidates {
        if !track_taken[t] && !detection_taken[d] {
            track_taken[t] = true;
            detection_taken[d] = true;
            matches.push((t, d));
        }
    }
    matches
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 10-pixel-high box spanning `left..right` horizontally, so IoUs reduce to 1-D
    /// interval overlap / union.
    fn span(left: f32, right: f32) -> BoundingBox {
        BoundingBox { x: left, y: 0.0, width: right - left, height: 10.0 }
    }

    #[test]
    fn best_pair_is_taken_first_even_if_an_earlier_track_wanted_it() {
        let tracks = [span(0.0, 10.0), span(4.0, 14.0)];
        let detections = [span(3.0, 13.0), span(-3.0, 7.0)];
        // t0-d0: overlap 3..10 = 7, union 13 → 0.538
        // t1-d0: overlap 4..13 = 9, union 11 → 0.818  (best, taken first)
        // t0-d1: overlap 0..7  = 7, union 13 → 0.538
        // t1-d1: overlap 4..7  = 3, union 17 → 0.176  (below 0.3)
        // Track-order greedy would give t0 → d0 and leave t1 unmatched.
        let matches = greedy_iou_matches(&tracks, &detections, 0.3);
        assert_eq!(matches, vec![(1, 0), (0, 1)]);
    }

    #[test]
    fn pairs_below_min_iou_are_not_matched() {
        let track = [span(0.0, 10.0)];
        // overlap 4, union 16 → 0.25
        assert!(greedy_iou_matches(&track, &[span(6.0, 16.0)], 0.3).is_empty());
        // overlap 5, union 15 → 0.333
        assert_eq!(greedy_iou_matches(&track, &[span(5.0, 15.0)], 0.3), vec![(0, 0)]);
    }

    #[test]
    fn empty_inputs_give_no_matches() {
        assert!(greedy_iou_matches(&[], &[span(0.0, 1.0)], 0.3).is_empty());
        assert!(greedy_iou_matches(&[span(0.0, 1.0)], &[], 0.3).is_empty());
    }
}
