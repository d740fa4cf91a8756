//! Bilinear sampling of a frame through an affine map, straight into a model's input buffer.
//!
//! Both models need "take this region of the frame, resize it, maybe rotate it,
//! normalise it": the detector a letterboxed 128×128 RGB view, the classifier an
//! upright 48×48 gray crop per face. One sampler does both and writes normalised
//! `f32` directly, so no intermediate resized image is allocated per frame or face.

/// Maps output coordinates to source coordinates: `src = m · (u, v, 1)`.
///
/// Coordinates are continuous with pixel `i` covering `[i, i + 1)`, so the
/// centre of output pixel `(u, v)` is `(u + 0.5, v + 0.5)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineMap {
    pub m: [[f32; 3]; 2],
}

impl AffineMap {
    /// Scale about the origin then translate: `src = (out - offset) / scale`.
    pub fn scale_translate(scale: f32, offset_x: f32, offset_y: f32) -> Self {
        Self { m: [[1.0 / scale, 0.0, -offset_x / scale], [0.0, 1.0 / scale, -offset_y / scale]] }
    }

    /// An `out_size`-square view of the source centred on `(cx, cy)`, `side` source pixels
    /// wide, rotated by `angle` radians (a source line at `angle` becomes horizontal).
    pub fn rotated_square(cx: f32, cy: f32, side: f32, angle: f32, out_size: u32) -> Self {
        let k = side / out_size as f32;
        let (sin, cos) = angle.sin_cos();
        let half = out_size as f32 / 2.0;
        // src = c + k · R(angle) · (out - half)
        let a = k * cos;
        let b = -k * sin;
        let d = k * sin;
        let e = k * cos;
        Self { m: [[a, b, cx - a * half - b * half], [d, e, cy - d * half - e * half]] }
    }

    /// The source point of output point `(u, v)`.
    pub fn apply(&self, u: f32, v: f32) -> (f32, f32) {
        let [[a, b, c], [d, e, f]] = self.m;
        (a * u + b * v + c, d * u + e * v + f)
    }

    /// The map the other way, from source to output points; `None` when it collapses the plane.
    pub fn inverse(&self) -> Option<Self> {
        let [[a, b, c], [d, e, f]] = self.m;
        let det = a * e - b * d;
        if det.abs() < f32::EPSILON {
            return None;
        }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Some(Self { m: [[ia, ib, -(ia * c + ib * f)], [id, ie, -(id * c + ie * f)]] })
    }
}

/// What output pixels whose centre maps outside the source become.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outside {
    /// A constant source value (before normalisation), e.g. 0 for black letterbox bars.
    Fill(f32),
    /// The nearest edge pixel, so a face crop near the border has no artificial bars.
    ClampToEdge,
}

/// An interleaved 8-bit image: `channels` values per pixel, rows packed.
#[derive(Debug, Clone, Copy)]
pub struct SourceImage<'a> {
    pub data: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub channels: usize,
}

/// `output = source_value * scale + offset`, applied to every channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    pub scale: f32,
    pub offset: f32,
}

/// Fills `out` (`out_w × out_h × channels`, interleaved) by sampling `src` bilinearly at `map`.
///
/// Returns `false` without writing when `out` has the wrong length or the source is empty
/// or shorter than its stated size.
pub fn warp_into(
    src: SourceImage<'_>,
    map: &AffineMap,
    out: &mut [f32],
    out_w: u32,
    out_h: u32,
    outside: Outside,
    normalize: Normalize,
) -> bool {
    let c = src.channels;
    let (w, h) = (src.width as usize, src.height as usize);
    if out.len() != out_w as usize * out_h as usize * c || w == 0 || h == 0 || src.data.len() < w * h * c {
        return false;
    }
    let fill = match outside {
        Outside::Fill(v) => Some(v * normalize.scale + normalize.offset),
        Outside::ClampToEdge => None,
    };
    let (wf, hf) = (w as f32, h as f32);
    for v in 0..out_h as usize {
        for u in 0..out_w as usize {
            let (x, y) = map.apply(u as f32 + 0.5, v as f32 + 0.5);
            let dst = &mut out[(v * out_w as usize + u) * c..][..c];
            if let Some(fill) = fill {
                if !(0.0..wf).contains(&x) || !(0.0..hf).contains(&y) {
                    dst.fill(fill);
                    continue;
                }
            }
            // Index space: pixel centres at integers.
            let (sx, sy) = (x - 0.5, y - 0.5);
            let (x0f, y0f) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0f, sy - y0f);
            let clamp_x = |i: f32| (i.max(0.0) as usize).min(w - 1);
            let clamp_y = |i: f32| (i.max(0.0) as usize).min(h - 1);
            let (x0, x1, y0, y1) = (clamp_x(x0f), clamp_x(x0f + 1.0), clamp_y(y0f), clamp_y(y0f + 1.0));
            let row0 = y0 * w;
            let row1 = y1 * w;
            for (ch, slot) in dst.iter_mut().enumerate() {
                let p = |row: usize, col: usize| src.data[(row + col) * c + ch] as f32;
                let top = p(row0, x0) + (p(row0, x1) - p(row0, x0)) * fx;
                let bottom = p(row1, x0) + (p(row1, x1) - p(row1, x0)) * fx;
                *slot = (top + (bottom - top) * fy) * normalize.scale + normalize.offset;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: Normalize = Normalize { scale: 1.0, offset: 0.0 };

    fn gray(data: &[u8], width: u32, height: u32) -> SourceImage<'_> {
        SourceImage { data, width, height, channels: 1 }
    }

    #[test]
    fn identity_map_copies_pixels() {
        let data: Vec<u8> = (0..12).collect();
        let mut out = vec![0.0; 12];
        assert!(warp_into(
            gray(&data, 4, 3),
            &AffineMap::scale_translate(1.0, 0.0, 0.0),
            &mut out,
            4,
            3,
            Outside::Fill(0.0),
            IDENTITY
        ));
        assert_eq!(out, data.iter().map(|&v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn halving_averages_two_by_two_blocks() {
        // 4x2 source -> 2x1: each output pixel centre lands between four source pixels.
        let data = [0u8, 10, 20, 30, 40, 50, 60, 70];
        let mut out = vec![0.0; 2];
        warp_into(
            gray(&data, 4, 2),
            &AffineMap::scale_translate(0.5, 0.0, 0.0),
            &mut out,
            2,
            1,
            Outside::Fill(0.0),
            IDENTITY,
        );
        assert_eq!(out, vec![(0.0 + 10.0 + 40.0 + 50.0) / 4.0, (20.0 + 30.0 + 60.0 + 70.0) / 4.0]);
    }

    #[test]
    fn letterbox_bars_use_fill_and_normalisation() {
        let data = [200u8; 4];
        let mut out = vec![0.0; 4];
        // A 2-pixel-wide source shifted right by one output pixel in a 4-pixel row: bars on both sides.
        warp_into(
            gray(&data, 2, 2),
            &AffineMap::scale_translate(1.0, 1.0, 0.0),
            &mut out,
            4,
            1,
            Outside::Fill(0.0),
            Normalize { scale: 1.0 / 127.5, offset: -1.0 },
        );
        let expected = [-1.0, 200.0 / 127.5 - 1.0, 200.0 / 127.5 - 1.0, -1.0];
        for (o, e) in out.iter().zip(expected) {
            assert!((o - e).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn rotated_square_turns_a_tilted_line_horizontal() {
        // A bright diagonal from top-left to bottom-right (45 degrees, y down) in a 9x9 image.
        let mut data = vec![0u8; 81];
        for i in 0..9 {
            data[i * 9 + i] = 255;
        }
        let mut out = vec![0.0; 25];
        let map = AffineMap::rotated_square(4.5, 4.5, 5.0, std::f32::consts::FRAC_PI_4, 5);
        warp_into(gray(&data, 9, 9), &map, &mut out, 5, 5, Outside::ClampToEdge, IDENTITY);
        // The middle output row follows the diagonal: bright; the rows above and below are darker.
        let row = |r: usize| out[r * 5..r * 5 + 5].iter().sum::<f32>();
        assert!(row(2) > 2.0 * row(0) && row(2) > 2.0 * row(4), "{out:?}");
        assert!((out[12] - 255.0).abs() < 1e-3);
    }

    #[test]
    fn inverse_undoes_the_map() {
        let map = AffineMap::rotated_square(30.0, 20.0, 64.0, 0.3, 48);
        let inverse = map.inverse().expect("invertible");
        let (x, y) = map.apply(7.0, 41.0);
        let (u, v) = inverse.apply(x, y);
        assert!((u - 7.0).abs() < 1e-4 && (v - 41.0).abs() < 1e-4, "({u}, {v})");
        assert!(AffineMap { m: [[1.0, 2.0, 0.0], [2.0, 4.0, 0.0]] }.inverse().is_none());
    }

    #[test]
    fn clamp_to_edge_repeats_border() {
        let data = [10u8, 20];
        let mut out = vec![0.0; 4];
        warp_into(
            gray(&data, 2, 1),
            &AffineMap::scale_translate(1.0, 1.0, 0.0),
            &mut out,
            4,
            1,
            Outside::ClampToEdge,
            IDENTITY,
        );
        assert_eq!(out, vec![10.0, 10.0, 20.0, 20.0]);
    }

    #[test]
    fn wrong_buffer_size_is_refused() {
        let data = [0u8; 3];
        let mut out = vec![0.0; 4];
        assert!(!warp_into(
            gray(&data, 2, 2),
            &AffineMap::scale_translate(1.0, 0.0, 0.0),
            &mut out,
            2,
            2,
            Outside::ClampToEdge,
            IDENTITY
        ));
    }
}
