//! MediaPipe's weighted non-maximum suppression.

use super::Face;

/// Merges overlapping detections: the best remaining detection and every other one
/// overlapping it by more than `iou_threshold` become one face whose box and
/// keypoints are the score-weighted mean of the group and whose score is the best's.
///
/// Averaging (rather than dropping the weaker boxes as plain NMS does) steadies the
/// box from frame to frame, which the tracker and the crop alignment rely on.
pub fn weighted_nms(mut candidates: Vec<Face>, iou_threshold: f32) -> Vec<Face> {
    // Stable sort: equal scores keep anchor order, as in the reference implementation.
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut faces = Vec::new();
    while !candidates.is_empty() {
        let best = candidates.remove(0);
        let (overlapping, rest): (Vec<Face>, Vec<Face>) =
            candidates.into_iter().partition(|c| best.bbox.iou(&c.bbox) > iou_threshold);
        candidates = rest;
        let mut cluster = overlapping;
        cluster.push(best.clone());
        let total: f32 = cluster.iter().map(|c| c.score).sum();
        let mut merged = best.clone();
        let weighted = |f: &dyn Fn(&Face) -> f32| cluster.iter().map(|c| f(c) * c.score).sum::<f32>() / total;
        merged.bbox.x = weighted(&|c| c.bbox.x);
        merged.bbox.y = weighted(&|c| c.bbox.y);
        merged.bbox.width = weighted(&|c| c.bbox.width);
        merged.bbox.height = weighted(&|c| c.bbox.height);
        for (k, point) in merged.keypoints.iter_mut().enumerate() {
            point.x = weighted(&|c| c.keypoints[k].x);
            point.y = weighted(&|c| c.keypoints[k].y);
        }
        faces.push(merged);
    }
    faces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{BoundingBox, Point};

    fn face(x: f32, score: f32) -> Face {
        Face { bbox: BoundingBox { x, y: 0.0, width: 10.0, height: 10.0 }, score, keypoints: [Point { x, y: 1.0 }; 6] }
    }

    #[test]
    fn overlapping_boxes_merge_by_score_weight() {
        // Boxes at x=0 (score .9) and x=2 (score .6) overlap with IoU 8/12 > .3; x=50 is separate.
        let faces = weighted_nms(vec![face(2.0, 0.6), face(50.0, 0.7), face(0.0, 0.9)], 0.3);
        assert_eq!(faces.len(), 2);
        assert_eq!(faces[0].score, 0.9);
        let expected_x = (0.0 * 0.9 + 2.0 * 0.6) / 1.5;
        assert!((faces[0].bbox.x - expected_x).abs() < 1e-6);
        assert!((faces[0].keypoints[3].x - expected_x).abs() < 1e-6);
        assert_eq!(faces[1].bbox.x, 50.0);
        assert_eq!(faces[1].score, 0.7);
    }

    #[test]
    fn overlap_at_threshold_is_not_merged() {
        // x=5: intersection 50, union 150, IoU 1/3; with threshold 1/3 it stays separate.
        let faces = weighted_nms(vec![face(0.0, 0.9), face(5.0, 0.8)], 1.0 / 3.0);
        assert_eq!(faces.len(), 2);
    }
}
