//! Boxes and points in pixel coordinates of the original frame.

use serde::Serialize;

/// A point in pixels (x right, y down).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// An axis-aligned box: top-left corner and size, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BoundingBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl BoundingBox {
    /// Box from its centre and size.
    pub fn from_center(cx: f32, cy: f32, width: f32, height: f32) -> Self {
        Self { x: cx - width / 2.0, y: cy - height / 2.0, width, height }
    }

    pub fn center(&self) -> Point {
        Point { x: self.x + self.width / 2.0, y: self.y + self.height / 2.0 }
    }

    pub fn area(&self) -> f32 {
        self.width.max(0.0) * self.height.max(0.0)
    }

    /// Intersection over union; 0 for disjoint or empty boxes.
    pub fn iou(&self, other: &BoundingBox) -> f32 {
        let left = self.x.max(other.x);
        let top = self.y.max(other.y);
        let right = (self.x + self.width).min(other.x + other.width);
        let bottom = (self.y + self.height).min(other.y + other.height);
        let intersection = (right - left).max(0.0) * (bottom - top).max(0.0);
        let union = self.area() + other.area() - intersection;
        if union <= 0.0 {
            0.0
        } else {
            intersection / union
        }
    }

    /// `[x, y, w, h]` rounded to whole pixels, the form used in reports and logs.
    pub fn to_pixels(&self) -> [i32; 4] {
        [self.x.round() as i32, self.y.round() as i32, self.width.round() as i32, self.height.round() as i32]
    }
}

/// Area of a simple polygon (shoelace formula), whatever its winding.
pub fn polygon_area(polygon: &[Point]) -> f32 {
    let twice: f32 = polygon.iter().zip(polygon.iter().cycle().skip(1)).map(|(p, q)| p.x * q.y - q.x * p.y).sum();
    twice.abs() / 2.0
}

/// Intersection over union of two convex polygons (corners in order, either winding), for
/// rotated squares; 0 when either is empty.
pub fn convex_iou(a: &[Point], b: &[Point]) -> f32 {
    let intersection = polygon_area(&clip_convex(a, b));
    let union = polygon_area(a) + polygon_area(b) - intersection;
    if union <= 0.0 {
        0.0
    } else {
        intersection / union
    }
}

/// `subject` clipped to the convex polygon `clip` (Sutherland–Hodgman: cut by each edge in turn).
fn clip_convex(subject: &[Point], clip: &[Point]) -> Vec<Point> {
    // Which side is inside depends on the clip polygon's winding.
    let winding: f32 = clip.iter().zip(clip.iter().cycle().skip(1)).map(|(p, q)| p.x * q.y - q.x * p.y).sum();
    let side = |p: Point, from: Point, to: Point| {
        winding * ((to.x - from.x) * (p.y - from.y) - (to.y - from.y) * (p.x - from.x))
    };
    let mut output = subject.to_vec();
    for (&from, &to) in clip.iter().zip(clip.iter().cycle().skip(1)) {
        let input = std::mem::take(&mut output);
        for (&p, &q) in input.iter().zip(input.iter().cycle().skip(1)) {
            let (sp, sq) = (side(p, from, to), side(q, from, to));
            if sp >= 0.0 {
                output.push(p);
            }
            if (sp >= 0.0) != (sq >= 0.0) {
                let t = sp / (sp - sq);
                output.push(Point { x: p.x + (q.x - p.x) * t, y: p.y + (q.y - p.y) * t });
            }
        }
    }
    output
}

impl BoundingBox {
    /// The four corners, clockwise on screen (y down) from the top left.
    pub fn corners(&self) -> [Point; 4] {
        let (right, bottom) = (self.x + self.width, self.y + self.height);
        [
            Point { x: self.x, y: self.y },
            Point { x: right, y: self.y },
            Point { x: right, y: bottom },
            Point { x: self.x, y: bottom },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convex_iou_of_boxes_agrees_with_the_box_formula_and_handles_rotation() {
        let a = BoundingBox { x: 0.0, y: 0.0, width: 10.0, height: 10.0 };
        let b = BoundingBox { x: 5.0, y: 2.0, width: 10.0, height: 10.0 };
        assert!((convex_iou(&a.corners(), &b.corners()) - a.iou(&b)).abs() < 1e-6);
        let mut reversed = b.corners();
        reversed.reverse();
        assert!((convex_iou(&a.corners(), &reversed) - a.iou(&b)).abs() < 1e-6);
        // A unit square and the same square turned 45 degrees about its centre: the overlap is
        // a regular octagon of area 2(sqrt 2 - 1), each square has area 1.
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let diamond = [
            Point { x: 0.5, y: 0.5 - h },
            Point { x: 0.5 + h, y: 0.5 },
            Point { x: 0.5, y: 0.5 + h },
            Point { x: 0.5 - h, y: 0.5 },
        ];
        let unit = BoundingBox { x: 0.0, y: 0.0, width: 1.0, height: 1.0 }.corners();
        let octagon = 2.0 * (std::f32::consts::SQRT_2 - 1.0);
        assert!((convex_iou(&unit, &diamond) - octagon / (2.0 - octagon)).abs() < 1e-5);
        let far = BoundingBox { x: 20.0, y: 0.0, width: 1.0, height: 1.0 };
        assert_eq!(convex_iou(&unit, &far.corners()), 0.0);
    }

    #[test]
    fn iou_of_half_overlapping_boxes() {
        let a = BoundingBox { x: 0.0, y: 0.0, width: 10.0, height: 10.0 };
        let b = BoundingBox { x: 5.0, y: 0.0, width: 10.0, height: 10.0 };
        // overlap 50, union 150
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(a.iou(&BoundingBox { x: 20.0, y: 20.0, width: 1.0, height: 1.0 }), 0.0);
        assert_eq!(a.iou(&a), 1.0);
    }
}
