//! Resampling a frame through an affine map, straight into a model's input buffer.
//!
//! Both models need "take this region of the frame, resize it, maybe rotate it,
//! normalise it": the detector a letterboxed 128×128 RGB view, the classifier a
//! 48×48 gray crop per face. [`resample_into`] does both, as an area mean where the
//! region shrinks unturned and bilinearly otherwise, and writes normalised `f32`
//! directly, so no intermediate resized image is allocated per frame or face.

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

impl Outside {
    /// The value written, already normalised, for pixels off the source; `None` when the
    /// edge pixel stands in.
    fn normalised_fill(self, normalize: Normalize) -> Option<f32> {
        match self {
            Outside::Fill(v) => Some(v * normalize.scale + normalize.offset),
            Outside::ClampToEdge => None,
        }
    }
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

/// [`warp_into`] into an [`Output`], interleaved or planar.
pub fn warp_into_output(
    src: SourceImage<'_>,
    map: &AffineMap,
    output: Output<'_>,
    outside: Outside,
    normalize: Normalize,
) -> bool {
    warp(src, map, output.into_target(outside, normalize))
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
    sample(src, map, target, [warp_channels::<1>, warp_channels::<3>])
}

/// A resampler for one channel count.
type Sampler = fn(SourceImage<'_>, &AffineMap, Target<'_>);

/// Runs the gray or the RGB one of `samplers` when `src` fits `target`; `false` when it does
/// not or has another channel count.
fn sample(src: SourceImage<'_>, map: &AffineMap, target: Target<'_>, [gray, rgb]: [Sampler; 2]) -> bool {
    if !fits(src, &target) {
        return false;
    }
    let sampler = match src.channels {
        1 => gray,
        3 => rgb,
        _ => return false,
    };
    sampler(src, map, target);
    true
}

/// [`warp`] for `C` channels, so that the per-pixel work is unrolled for gray and RGB.
fn warp_channels<const C: usize>(src: SourceImage<'_>, map: &AffineMap, target: Target<'_>) {
    let (w, h) = (src.width as usize, src.height as usize);
    let Target { out, width, height, planar, outside, normalize } = target;
    let fill = outside.normalised_fill(normalize);
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

/// The buffer a resampler fills: `width × height` pixels, channels interleaved per pixel
/// or, when `planar`, one plane per channel (as a channels-first model takes its input).
pub struct Output<'a> {
    /// `width × height × channels` values.
    pub buffer: &'a mut [f32],
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// One plane per channel instead of the channels of each pixel together.
    pub planar: bool,
}

impl<'a> Output<'a> {
    fn into_target(self, outside: Outside, normalize: Normalize) -> Target<'a> {
        let Output { buffer, width, height, planar } = self;
        Target { out: buffer, width: width as usize, height: height as usize, planar, outside, normalize }
    }
}

/// Fills `output` from `src` through `map`, the way both models want their input made:
/// where the map shrinks the source without rotating it, each output pixel is the mean of
/// the source pixels under it ([`area_into`]); where it enlarges, bilinear
/// ([`warp_into_output`]), which then reads every source pixel; where it shrinks and turns
/// (a crop levelled by the eyes), the mean of bilinear samples spread over each output pixel.
pub fn resample_into(
    src: SourceImage<'_>,
    map: &AffineMap,
    output: Output<'_>,
    outside: Outside,
    normalize: Normalize,
) -> bool {
    let [[a, _, _], [_, e, _]] = map.m;
    if scales_and_shifts_only(map) && (a > 1.0 || e > 1.0) {
        area_into(src, map, output, outside, normalize)
    } else if sub_samples(map) > 1 {
        let target = output.into_target(outside, normalize);
        sample(src, map, target, [supersample_channels::<1>, supersample_channels::<3>])
    } else {
        warp_into_output(src, map, output, outside, normalize)
    }
}

/// Most bilinear samples a turned, shrinking map takes across each output pixel (so at most
/// its square per pixel): a face far larger than the crop is then read at 16 × 16 points a
/// crop pixel, not every pixel, which bounds the work whatever the picture's size.
const MAX_SUB_SAMPLES: usize = 16;

/// How many bilinear samples across (and down) each output pixel of `map` it takes for every
/// source pixel under it to count: the source pixels one output pixel spans, rounded up.
fn sub_samples(map: &AffineMap) -> usize {
    let [[a, b, _], [d, e, _]] = map.m;
    let span = a.hypot(d).max(b.hypot(e));
    // Spans a hair over a whole number come from rounding, not from the picture.
    let n = (span - 1e-3).ceil();
    if n.is_finite() && n > 1.0 {
        (n as usize).min(MAX_SUB_SAMPLES)
    } else {
        1
    }
}

/// A turned map that shrinks (a crop levelled by the eyes of a large face): each output pixel
/// is the mean of n × n bilinear samples spread evenly over the square it covers
/// ([`sub_samples`]), so that, as the area mean does for unturned maps, the source pixels under
/// it count, not the 4 nearest its centre. Which pixels are `outside` is decided by their
/// centres, as in [`warp_into`].
fn supersample_channels<const C: usize>(src: SourceImage<'_>, map: &AffineMap, target: Target<'_>) {
    let (w, h) = (src.width as usize, src.height as usize);
    let Target { out, width, height, planar, outside, normalize } = target;
    let fill = outside.normalised_fill(normalize);
    let n = sub_samples(map);
    let offsets: Vec<f32> = (0..n).map(|i| (i as f32 + 0.5) / n as f32).collect();
    let share = 1.0 / (n * n) as f32;
    let plane = width * height;
    for v in 0..height {
        for u in 0..width {
            let (cx, cy) = map.apply(u as f32 + 0.5, v as f32 + 0.5);
            let inside = fill.is_none() || (Tap::at(cx, w).inside && Tap::at(cy, h).inside);
            let mut sums = [0f32; C];
            for &dv in &offsets {
                for &du in &offsets {
                    let (x, y) = map.apply(u as f32 + du, v as f32 + dv);
                    let add = |ch: usize, value: f32| sums[ch] += value * share;
                    write_sample::<C>(src.data, w, Tap::at(x, w), Tap::at(y, h), inside, fill, normalize, add);
                }
            }
            store_pixel(out, v * width + u, plane, planar, sums);
        }
    }
}

/// Fills `output` with the mean of the source area each output pixel covers under `map`, which
/// may only scale and shift: what a shrinking letterbox or face crop needs. Bilinear sampling
/// reads 4 source pixels per output pixel whatever the scale, so at a fifth of the size it
/// skips most of the picture and what it reads aliases (noise, fine texture); the mean reads
/// them all.
/// Which output pixels are `outside` is decided by their centres, as in [`warp_into`]; a
/// pixel at the border averages the part of its area that lies on the source.
///
/// Returns `false` without writing when the buffer has the wrong length, the source is empty,
/// shorter than its stated size or neither gray nor RGB, or the map rotates or flips.
pub fn area_into(
    src: SourceImage<'_>,
    map: &AffineMap,
    output: Output<'_>,
    outside: Outside,
    normalize: Normalize,
) -> bool {
    if !scales_and_shifts_only(map) {
        return false;
    }
    sample(src, map, output.into_target(outside, normalize), [area_channels::<1>, area_channels::<3>])
}

/// Writes the `C` channel values of output pixel `pixel`: together, or one into each of the
/// `plane`-long channel planes when `planar`.
#[inline(always)]
fn store_pixel<const C: usize>(out: &mut [f32], pixel: usize, plane: usize, planar: bool, values: [f32; C]) {
    if planar {
        for (ch, value) in values.into_iter().enumerate() {
            out[ch * plane + pixel] = value;
        }
    } else {
        out[pixel * C..][..C].copy_from_slice(&values);
    }
}

/// Whether `map` neither rotates nor flips: each output pixel covers an upright rectangle.
fn scales_and_shifts_only(map: &AffineMap) -> bool {
    let [[a, b, _], [d, e, _]] = map.m;
    b == 0.0 && d == 0.0 && a > 0.0 && e > 0.0
}

/// Whether `src` is a usable image and `target` holds exactly its channels.
fn fits(src: SourceImage<'_>, target: &Target<'_>) -> bool {
    let c = src.channels;
    let (w, h) = (src.width as usize, src.height as usize);
    target.out.len() == target.width * target.height * c && w > 0 && h > 0 && src.data.len() >= w * h * c
}

/// Source rows [`area_channels`] adds up as 16-bit integers before weighting them: 257
/// levels of 255 would overflow; further rows are weighted one by one.
const MAX_WHOLE_ROWS: usize = 256;

/// [`area_into`] for `C` channels: each output row is first the weighted sum of the source
/// rows it covers, then each pixel the weighted sum of that row's columns it covers.
fn area_channels<const C: usize>(src: SourceImage<'_>, map: &AffineMap, target: Target<'_>) {
    let (w, h) = (src.width as usize, src.height as usize);
    let Target { out, width, height, planar, outside, normalize } = target;
    let fill = outside.normalised_fill(normalize);
    let [[a, _, tx], [_, e, ty]] = map.m;
    let columns: Vec<Footprint> = (0..width).map(|u| Footprint::of(u, a, tx, w)).collect();
    let plane = width * height;
    let mut store = |u: usize, v: usize, values: [f32; C]| store_pixel(out, v * width + u, plane, planar, values);
    // Only the source columns some output pixel covers are added up: a face crop covers a
    // small part of each row of the frame.
    let span = match (columns.first(), columns.last()) {
        (Some(first), Some(last)) => first.first * C..(last.first + last.count) * C,
        _ => 0..0,
    };
    let mut row = vec![0f32; w * C];
    let mut levels = vec![0u16; w * C];
    for v in 0..height {
        let rows = Footprint::of(v, e, ty, h);
        if let (false, Some(fill)) = (rows.inside, fill) {
            (0..width).for_each(|u| store(u, v, [fill; C]));
            continue;
        }
        // Rows the footprint covers whole share one weight: they are added up as integers and
        // weighted once; only a partly covered first or last row is weighted on its own.
        let summed = |k: usize| rows.weight(k) == rows.whole && k < MAX_WHOLE_ROWS;
        let source_row = |k: usize| &src.data[(rows.first + k) * w * C..][span.clone()];
        let whole_rows = (0..rows.count).filter(|&k| summed(k)).count();
        let (row, levels) = (&mut row[span.clone()], &mut levels[span.clone()]);
        if whole_rows > 0 {
            levels.fill(0);
            for k in (0..rows.count).filter(|&k| summed(k)) {
                for (level, &p) in levels.iter_mut().zip(source_row(k)) {
                    *level += u16::from(p);
                }
            }
            for (sum, &level) in row.iter_mut().zip(levels.iter()) {
                *sum = rows.whole * f32::from(level);
            }
        } else {
            row.fill(0.0);
        }
        for k in (0..rows.count).filter(|&k| !summed(k)) {
            let weight = rows.weight(k);
            for (sum, &p) in row.iter_mut().zip(source_row(k)) {
                *sum += weight * f32::from(p);
            }
        }
        for (u, cols) in columns.iter().enumerate() {
            let values = match fill {
                Some(fill) if !cols.inside => [fill; C],
                _ => {
                    let pixels = &row[cols.first * C - span.start..][..cols.count * C];
                    let (mut edges, mut wholes) = ([0f32; C], [0f32; C]);
                    for (k, pixel) in pixels.chunks_exact(C).enumerate() {
                        let weight = cols.weight(k);
                        if weight == cols.whole {
                            wholes.iter_mut().zip(pixel).for_each(|(sum, &p)| *sum += p);
                        } else {
                            edges.iter_mut().zip(pixel).for_each(|(sum, &p)| *sum += weight * p);
                        }
                    }
                    std::array::from_fn(|ch| (edges[ch] + cols.whole * wholes[ch]) * normalize.scale + normalize.offset)
                }
            };
            store(u, v, values);
        }
    }
}

/// The source pixels output pixel `index` covers along one axis of `len` pixels, where the
/// map takes output coordinate `t` to source coordinate `step · t + shift`: `count` pixels
/// from `first`, each weighted by its share of the covered length (the shares sum to 1).
/// Only the first and the last can be covered in part; the ones between weigh `whole`.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    /// Whether the pixel's centre lies on the source (`Outside::Fill` applies when not).
    inside: bool,
    first: usize,
    count: usize,
    first_weight: f32,
    last_weight: f32,
    whole: f32,
}

impl Footprint {
    fn of(index: usize, step: f32, shift: f32, len: usize) -> Self {
        let at = |t: f32| step * t + shift;
        let (start, centre, end) = (at(index as f32), at(index as f32 + 0.5), at(index as f32 + 1.0));
        let inside = (0.0..len as f32).contains(&centre);
        let (low, high) = (start.clamp(0.0, len as f32), end.clamp(0.0, len as f32));
        if high <= low {
            // Nothing of the source under it; the nearest edge pixel stands in (ClampToEdge).
            let edge = if centre < 0.0 { 0 } else { len - 1 };
            return Self { inside, first: edge, count: 1, first_weight: 1.0, last_weight: 1.0, whole: 1.0 };
        }
        let first = low.floor() as usize;
        let last = (high.ceil() as usize).min(len) - 1;
        let length = high - low;
        let share = |i: usize| (high.min(i as f32 + 1.0) - low.max(i as f32)).max(0.0) / length;
        Self {
            inside,
            first,
            count: last - first + 1,
            first_weight: share(first),
            last_weight: share(last),
            whole: 1.0 / length,
        }
    }

    /// The weight of the `k`-th pixel covered.
    fn weight(&self, k: usize) -> f32 {
        if k == 0 {
            self.first_weight
        } else if k + 1 == self.count {
            self.last_weight
        } else {
            self.whole
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
        let output = Output { buffer: &mut planes, width: ow as u32, height: oh as u32, planar: true };
        assert!(warp_into_output(src, &map, output, fill, IDENTITY));
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

    /// Mean of channel `ch` over the source rectangle `[x0, x1) × [y0, y1)` clipped to the
    /// image, each pixel weighted by the area it shares with the rectangle: the definition.
    #[allow(clippy::too_many_arguments)]
    fn area_by_hand(
        data: &[u8],
        width: usize,
        height: usize,
        channels: usize,
        x: (f32, f32),
        y: (f32, f32),
        ch: usize,
    ) -> f32 {
        let overlap = |low: f32, high: f32, i: usize| (high.min(i as f32 + 1.0) - low.max(i as f32)).max(0.0);
        let (mut sum, mut area) = (0.0f64, 0.0f64);
        for row in 0..height {
            for col in 0..width {
                let shared = f64::from(overlap(x.0, x.1, col) * overlap(y.0, y.1, row));
                sum += shared * f64::from(data[(row * width + col) * channels + ch]);
                area += shared;
            }
        }
        (sum / area) as f32
    }

    #[test]
    fn halving_by_area_averages_two_by_two_blocks() {
        let data = [0u8, 10, 20, 30, 40, 50, 60, 70, 1, 2, 3, 4, 5, 6, 7, 8];
        let mut out = vec![0.0; 4];
        let output = Output { buffer: &mut out, width: 2, height: 2, planar: false };
        assert!(area_into(
            gray(&data, 4, 4),
            &AffineMap::scale_translate(0.5, 0.0, 0.0),
            output,
            Outside::Fill(0.0),
            IDENTITY
        ));
        assert_eq!(out, vec![25.0, 45.0, 3.5, 5.5]);
    }

    #[test]
    fn area_mean_of_a_fractional_footprint_matches_the_definition_in_both_layouts() {
        let (w, h) = (23usize, 17usize);
        let data: Vec<u8> = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
        let src = SourceImage { data: &data, width: w as u32, height: h as u32, channels: 3 };
        // 0.3 output pixels per source pixel (footprints 3.33 source pixels wide, cut at
        // fractions), shifted: bars on the left and at the bottom, and pixels at the border
        // whose centre is on the source but whose footprint is not all on it.
        let (scale, pad_x, pad_y) = (0.3, 1.2, -0.4);
        let map = AffineMap::scale_translate(scale, pad_x, pad_y);
        let (ow, oh) = (9usize, 5usize);
        let fill = Outside::Fill(9.0);
        let mut pixels = vec![0.0; ow * oh * 3];
        let mut planes = vec![0.0; ow * oh * 3];
        let output = Output { buffer: &mut pixels, width: ow as u32, height: oh as u32, planar: false };
        assert!(area_into(src, &map, output, fill, IDENTITY));
        let output = Output { buffer: &mut planes, width: ow as u32, height: oh as u32, planar: true };
        assert!(area_into(src, &map, output, fill, IDENTITY));
        let source = |t: f32, pad: f32| (t - pad) / scale;
        let (mut bars, mut cut) = (0, 0);
        for v in 0..oh {
            for u in 0..ow {
                let (x, y) = (
                    (source(u as f32, pad_x), source(u as f32 + 1.0, pad_x)),
                    (source(v as f32, pad_y), source(v as f32 + 1.0, pad_y)),
                );
                let (cx, cy) = (source(u as f32 + 0.5, pad_x), source(v as f32 + 0.5, pad_y));
                let on_source = (0.0..w as f32).contains(&cx) && (0.0..h as f32).contains(&cy);
                bars += usize::from(!on_source);
                cut += usize::from(on_source && (x.0 < 0.0 || y.1 > h as f32));
                for ch in 0..3 {
                    let expected = if on_source { area_by_hand(&data, w, h, 3, x, y, ch) } else { 9.0 };
                    let (pixel, plane) = (pixels[(v * ow + u) * 3 + ch], planes[ch * ow * oh + v * ow + u]);
                    assert!((pixel - expected).abs() < 1e-3, "({u}, {v}) channel {ch}: {pixel} against {expected}");
                    assert_eq!(pixel, plane, "({u}, {v}) channel {ch}");
                }
            }
        }
        assert!(bars > 0 && cut > 0, "{bars} bars, {cut} pixels cut by the border");
    }

    #[test]
    fn area_mean_over_more_rows_than_sixteen_bits_can_sum() {
        // 600 rows of 255 into one pixel: summed as u16 in one go they would overflow.
        let (w, h) = (2usize, 600usize);
        let data: Vec<u8> = (0..w * h).map(|i| if i % 2 == 0 { 255 } else { (i % 7) as u8 }).collect();
        let mut out = vec![0.0; 2];
        let output = Output { buffer: &mut out, width: 2, height: 1, planar: false };
        assert!(area_into(
            gray(&data, w as u32, h as u32),
            &AffineMap { m: [[1.0, 0.0, 0.0], [0.0, 600.0, 0.0]] },
            output,
            Outside::Fill(0.0),
            IDENTITY
        ));
        let column = |c: usize| (0..h).map(|r| f64::from(data[r * w + c])).sum::<f64>() / h as f64;
        for (c, value) in out.iter().enumerate() {
            assert!((f64::from(*value) - column(c)).abs() < 1e-2, "column {c}: {value} against {}", column(c));
        }
    }

    #[test]
    fn a_turned_map_that_shrinks_averages_the_pixels_each_output_pixel_covers() {
        // A quarter turn at 10 source pixels an output pixel: each output pixel covers a 10x10
        // block of the source exactly, so it must be that block's mean (by hand below).
        let side = 60usize;
        let data: Vec<u8> = (0..side * side).map(|i| ((i * 7919) % 251) as u8).collect();
        let map = AffineMap::rotated_square(30.0, 30.0, 60.0, std::f32::consts::FRAC_PI_2, 6);
        let mut out = vec![0.0; 36];
        let output = Output { buffer: &mut out, width: 6, height: 6, planar: false };
        assert!(resample_into(gray(&data, 60, 60), &map, output, Outside::ClampToEdge, IDENTITY));
        for v in 0..6 {
            for u in 0..6 {
                // src = centre + 10 · R(90°) · (out - 3): x = 30 - 10 (v' - 3), y = 30 + 10 (u' - 3).
                let (x0, y0) = (60 - 10 * (v + 1), 10 * u);
                let block: u32 = (y0..y0 + 10)
                    .flat_map(|y| (x0..x0 + 10).map(move |x| (x, y)))
                    .map(|(x, y)| u32::from(data[y * side + x]))
                    .sum();
                let mean = block as f32 / 100.0;
                let value = out[v * 6 + u];
                assert!((value - mean).abs() < 0.05, "({u}, {v}): {value} against {mean}");
            }
        }
        // The mean of many pixels is far from any single tap's: bilinear at the centres differs.
        let mut taps = vec![0.0; 36];
        let output = Output { buffer: &mut taps, width: 6, height: 6, planar: false };
        assert!(warp_into_output(gray(&data, 60, 60), &map, output, Outside::ClampToEdge, IDENTITY));
        assert!(taps.iter().zip(&out).any(|(t, m)| (t - m).abs() > 10.0), "{taps:?} {out:?}");
    }

    #[test]
    fn area_mean_refuses_maps_that_rotate_or_flip() {
        let data = [0u8; 16];
        let mut out = vec![0.0; 4];
        for map in
            [AffineMap::rotated_square(2.0, 2.0, 4.0, 0.3, 2), AffineMap { m: [[-2.0, 0.0, 4.0], [0.0, 2.0, 0.0]] }]
        {
            let output = Output { buffer: &mut out, width: 2, height: 2, planar: false };
            assert!(!area_into(gray(&data, 4, 4), &map, output, Outside::ClampToEdge, IDENTITY));
        }
    }
}
