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
/// Returns `false` without writing when `out` has the wrong length, the source is empty or
/// shorter than its stated size, or it is neither gray (1 channel) nor RGB (3).
pub fn warp_into(
    src: SourceImage<'_>,
    map: &AffineMap,
    out: &mut [f32],
    out_w: u32,
    out_h: u32,
    outside: Outside,
    normalize: Normalize,
) -> bool {
    let target = Target { out, width: out_w as usize, height: out_h as usize, planar: false, outside, normalize };
    warp(src, map, target)
}

/// [`warp_into`] writing one plane per channel (`channels × out_h × out_w`), as a
/// channels-first model takes its input.
pub fn warp_into_planes(
    src: SourceImage<'_>,
    map: &AffineMap,
    out: &mut [f32],
    out_w: u32,
    out_h: u32,
    outside: Outside,
    normalize: Normalize,
) -> bool {
    let target = Target { out, width: out_w as usize, height: out_h as usize, planar: true, outside, normalize };
    warp(src, map, target)
}

/// Where a warp writes, and how.
struct Target<'a> {
    out: &'a mut [f32],
    width: usize,
    height: usize,
    /// One plane per channel rather than channels interleaved per pixel.
    planar: bool,
    outside: Outside,
    normalize: Normalize,
}

fn warp(src: SourceImage<'_>, map: &AffineMap, target: Target<'_>) -> bool {
    let c = src.channels;
    let (w, h) = (src.width as usize, src.height as usize);
    if target.out.len() != target.width * target.height * c || w == 0 || h == 0 || src.data.len() < w * h * c {
        return false;
    }
    match c {
        1 => warp_channels::<1>(src, map, target),
        3 => warp_channels::<3>(src, map, target),
        _ => return false,
    }
    true
}

/// [`warp`] for `C` channels, so that the per-pixel work is unrolled for gray and RGB.
fn warp_channels<const C: usize>(src: SourceImage<'_>, map: &AffineMap, target: Target<'_>) {
    let (w, h) = (src.width as usize, src.height as usize);
    let Target { out, width, height, planar, outside, normalize } = target;
    let fill = match outside {
        Outside::Fill(v) => Some(v * normalize.scale + normalize.offset),
        Outside::ClampToEdge => None,
    };
    let plane = width * height;
    let mut sample = |u: usize, v: usize, x: Tap, y: Tap| {
        let pixel = v * width + u;
        let inside = fill.is_none() || (x.inside && y.inside);
        if planar {
            let put = |ch: usize, value: f32| out[ch * plane + pixel] = value;
            write_sample::<C>(src.data, w, x, y, inside, fill, normalize, put);
        } else {
            let dst = &mut out[pixel * C..][..C];
            write_sample::<C>(src.data, w, x, y, inside, fill, normalize, |ch, value| dst[ch] = value);
        }
    };
    let [[a, b, tx], [d, e, ty]] = map.m;
    if b == 0.0 && d == 0.0 {
        // Scale and shift only (the letterbox, an unrotated face crop): each output column
        // samples the same source columns on every row, so they are found once. The
        // coordinates are the ones `map.apply` gives, bit for bit.
        let columns: Vec<Tap> = (0..width).map(|u| Tap::at(a * (u as f32 + 0.5) + tx, w)).collect();
        for v in 0..height {
            let y = Tap::at(e * (v as f32 + 0.5) + ty, h);
            for (u, &x) in columns.iter().enumerate() {
                sample(u, v, x, y);
            }
        }
    } else {
        for v in 0..height {
            for u in 0..width {
                let (x, y) = map.apply(u as f32 + 0.5, v as f32 + 0.5);
                sample(u, v, Tap::at(x, w), Tap::at(y, h));
            }
        }
    }
}

/// Where a sample point falls along one axis of the source: the pixels either side of it
/// (clamped to the edge) and the weight of the second.
#[derive(Debug, Clone, Copy)]
struct Tap {
    /// Whether the point lies on the source at all (`Outside::Fill` applies when not).
    inside: bool,
    first: usize,
    second: usize,
    weight: f32,
}

impl Tap {
    /// The tap at continuous coordinate `at` on an axis of `len` pixels (pixel `i` covers
    /// `[i, i + 1)`).
    fn at(at: f32, len: usize) -> Self {
        // Index space: pixel centres at integers.
        let index = at - 0.5;
        let below = index.floor();
        let clamp = |i: f32| (i.max(0.0) as usize).min(len - 1);
        Self {
            inside: (0.0..len as f32).contains(&at),
            first: clamp(below),
            second: clamp(below + 1.0),
            weight: index - below,
        }
    }
}

/// Hands `put` the normalised bilinear sample at taps `x`, `y` of `data` (`width` pixels of
/// `C` channels per row), channel by channel, or `fill` in every channel when the point is
/// not `inside`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn write_sample<const C: usize>(
    data: &[u8],
    width: usize,
    x: Tap,
    y: Tap,
    inside: bool,
    fill: Option<f32>,
    normalize: Normalize,
    mut put: impl FnMut(usize, f32),
) {
    if let (false, Some(fill)) = (inside, fill) {
        (0..C).for_each(|ch| put(ch, fill));
        return;
    }
    let pixel = |row: usize, col: usize| {
        let at = (row * width + col) * C;
        &data[at..at + C]
    };
    let (top_left, top_right) = (pixel(y.first, x.first), pixel(y.first, x.second));
    let (bottom_left, bottom_right) = (pixel(y.second, x.first), pixel(y.second, x.second));
    for ch in 0..C {
        let (tl, tr) = (f32::from(top_left[ch]), f32::from(top_right[ch]));
        let (bl, br) = (f32::from(bottom_left[ch]), f32::from(bottom_right[ch]));
        let top = tl + (tr - tl) * x.weight;
        let bottom = bl + (br - bl) * x.weight;
        put(ch, (top + (bottom - top) * y.weight) * normalize.scale + normalize.offset);
    }
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

    /// Bilinear value at source point `(x, y)` (pixel centres at `i + 0.5`), clamped to the
    /// edge, written out from the definition.
    fn by_hand(data: &[u8], width: usize, height: usize, channels: usize, x: f32, y: f32, ch: usize) -> f32 {
        let (sx, sy) = (x - 0.5, y - 0.5);
        let (fx, fy) = (sx - sx.floor(), sy - sy.floor());
        let at = |col: f32, row: f32| {
            let col = (col.max(0.0) as usize).min(width - 1);
            let row = (row.max(0.0) as usize).min(height - 1);
            data[(row * width + col) * channels + ch] as f32
        };
        let (x0, y0) = (sx.floor(), sy.floor());
        let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
        let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    #[test]
    fn scaled_and_shifted_rgb_matches_the_definition_in_both_layouts() {
        let (w, h) = (7usize, 5usize);
        let data: Vec<u8> = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
        let src = SourceImage { data: &data, width: w as u32, height: h as u32, channels: 3 };
        // 0.7 output pixels per source pixel, shifted: bars on the left and at the bottom.
        let map = AffineMap::scale_translate(0.7, 1.3, -0.4);
        let (ow, oh) = (6usize, 4usize);
        let fill = Outside::Fill(9.0);
        let mut pixels = vec![0.0; ow * oh * 3];
        let mut planes = vec![0.0; ow * oh * 3];
        assert!(warp_into(src, &map, &mut pixels, ow as u32, oh as u32, fill, IDENTITY));
        assert!(warp_into_planes(src, &map, &mut planes, ow as u32, oh as u32, fill, IDENTITY));
        let mut bars = 0;
        for v in 0..oh {
            for u in 0..ow {
                let (x, y) = ((u as f32 + 0.5 - 1.3) / 0.7, (v as f32 + 0.5 + 0.4) / 0.7);
                let on_source = (0.0..w as f32).contains(&x) && (0.0..h as f32).contains(&y);
                bars += usize::from(!on_source);
                for ch in 0..3 {
                    let expected = if on_source { by_hand(&data, w, h, 3, x, y, ch) } else { 9.0 };
                    let (pixel, plane) = (pixels[(v * ow + u) * 3 + ch], planes[ch * ow * oh + v * ow + u]);
                    assert!((pixel - expected).abs() < 1e-3, "({u}, {v}) channel {ch}: {pixel} against {expected}");
                    assert_eq!(pixel, plane, "({u}, {v}) channel {ch}");
                }
            }
        }
        assert!(bars > 0 && bars < ow * oh, "{bars} of the output pixels are bars");
    }

    #[test]
    fn images_of_other_channel_counts_are_refused() {
        let data = [0u8; 8];
        let mut out = vec![0.0; 8];
        let two = SourceImage { data: &data, width: 2, height: 2, channels: 2 };
        let map = AffineMap::scale_translate(1.0, 0.0, 0.0);
        assert!(!warp_into(two, &map, &mut out, 2, 2, Outside::ClampToEdge, IDENTITY));
    }
}
