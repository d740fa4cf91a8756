//! Fixed-point BT.601 conversion of the uncompressed formats (YUYV, NV12,
//! I420, GREY).
//!
//! Every converter takes a buffer already checked to hold exactly the bytes
//! its format needs at `width`x`height`, with the subsampled dimensions even.
//! The gray plane comes straight from Y through a lookup table, never via RGB,
//! so it is the camera's own luma expanded to full range.

use image::{GrayImage, RgbImage};

use super::{frame_from_gray, YuvRange};
use crate::frame::Frame;

/// Fraction bits of the fixed-point weights: 16 keeps every intermediate
/// below 2^26, far inside `i32`, while the weights stay exact to 1/65536.
const FRAC_BITS: u32 = 16;
const ONE: i64 = 1 << FRAC_BITS;

// BT.601 luma weights in thousandths; green is what red and blue leave over.
const KR: i64 = 299;
const KB: i64 = 114;
const KG: i64 = 1000 - KR - KB;

/// Lookup tables and chroma weights for one [`YuvRange`], built at compile time.
struct Tables {
    /// Y code → its contribution to each of R, G and B in fixed point, with the
    /// final rounding offset already added.
    luma: [i32; 256],
    /// Y code → full-range luma for the gray plane.
    gray: [u8; 256],
    /// V weight in R.
    rv: i32,
    /// U weight in G (subtracted).
    gu: i32,
    /// V weight in G (subtracted).
    gv: i32,
    /// U weight in B.
    bu: i32,
}

static LIMITED: Tables = Tables::new(YuvRange::Limited);
static FULL: Tables = Tables::new(YuvRange::Full);

/// `num / den` rounded half up, for non-negative operands.
const fn div_round(num: i64, den: i64) -> i64 {
    (num + den / 2) / den
}

impl Tables {
    const fn new(range: YuvRange) -> Self {
        // Offset of Y black, and the Y and chroma scale factors as fractions:
        // limited range spreads 219 luma / 224 chroma steps over 255.
        let (y_black, y_num, y_den, c_num, c_den) = match range {
            YuvRange::Limited => (16, 255, 219, 255, 224),
            YuvRange::Full => (0, 1, 1, 1, 1),
        };
        let y_mul = div_round(y_num * ONE, y_den);
        let mut luma = [0i32; 256];
        let mut gray = [0u8; 256];
        let mut code = 0;
        while code < 256 {
            luma[code] = ((code as i64 - y_black) * y_mul + ONE / 2) as i32;
            // Rounded from the exact fraction, not from y_mul, so the gray
            // plane is the correctly rounded expansion for every code.
            let scaled = (code as i64 - y_black) * y_num;
            gray[code] = if scaled <= 0 {
                0
            } else {
                let g = div_round(scaled, y_den);
                if g > 255 {
                    255
                } else {
                    g as u8
                }
            };
            code += 1;
        }
        // Inverse of Pb = (B - Y) / (2 (1 - Kb)) and Pr = (R - Y) / (2 (1 - Kr)),
        // with G recovered from Y = Kr R + Kg G + Kb B.
        Self {
            luma,
            gray,
            rv: div_round(2 * (1000 - KR) * c_num * ONE, 1000 * c_den) as i32,
            gu: div_round(2 * (1000 - KB) * KB * c_num * ONE, 1000 * KG * c_den) as i32,
            gv: div_round(2 * (1000 - KR) * KR * c_num * ONE, 1000 * KG * c_den) as i32,
            bu: div_round(2 * (1000 - KB) * c_num * ONE, 1000 * c_den) as i32,
        }
    }

    fn for_range(range: YuvRange) -> &'static Self {
        match range {
            YuvRange::Limited => &LIMITED,
            YuvRange::Full => &FULL,
        }
    }

    /// Writes two horizontally adjacent RGB pixels (`out` is 6 bytes) that
    /// share one chroma sample.
    #[inline(always)]
    fn pixel_pair(&self, y0: u8, y1: u8, u: u8, v: u8, out: &mut [u8]) {
        let u = i32::from(u) - 128;
        let v = i32::from(v) - 128;
        // Chroma terms computed once per pair: they are the expensive part.
        let r = self.rv * v;
        let g = -(self.gu * u + self.gv * v);
        let b = self.bu * u;
        let l0 = self.luma[usize::from(y0)];
        let l1 = self.luma[usize::from(y1)];
        out[0] = to_u8(l0 + r);
        out[1] = to_u8(l0 + g);
        out[2] = to_u8(l0 + b);
        out[3] = to_u8(l1 + r);
        out[4] = to_u8(l1 + g);
        out[5] = to_u8(l1 + b);
    }

    /// Fills `rgb` from `[y0, y1, u, v]` groups, one per pixel pair in raster order.
    #[inline(always)]
    fn pairs_to_rgb(&self, groups: impl Iterator<Item = [u8; 4]>, rgb: &mut [u8]) {
        for ([y0, y1, u, v], out) in groups.zip(rgb.chunks_exact_mut(6)) {
            self.pixel_pair(y0, y1, u, v, out);
        }
    }

    /// Fills `gray` from a sequence of Y codes.
    #[inline(always)]
    fn luma_to_gray(&self, y: impl Iterator<Item = u8>, gray: &mut [u8]) {
        for (out, y) in gray.iter_mut().zip(y) {
            *out = self.gray[usize::from(y)];
        }
    }
}

/// Fixed point to a clamped 8-bit channel; the rounding offset is already in.
#[inline(always)]
fn to_u8(v: i32) -> u8 {
    let x = v >> FRAC_BITS;
    // Branch-free clamp: `clamp` compiles to branches that mispredict on
    // noisy or saturated chroma and cost more than the whole conversion.
    let x = x & !(x >> 31); // negative → 0
    (x | ((255 - x) >> 31)) as u8 // above 255 → all ones → 255
}

/// YUYV: `Y0 U Y1 V` per horizontal pixel pair.
pub(super) fn yuyv(data: &[u8], width: u32, height: u32, range: YuvRange) -> Frame {
    let t = Tables::for_range(range);
    let mut rgb = RgbImage::new(width, height);
    let mut gray = GrayImage::new(width, height);
    // Rows are contiguous and the width even, so the whole buffer is one run of pairs.
    t.pairs_to_rgb(data.chunks_exact(4).map(|s| [s[0], s[2], s[1], s[3]]), &mut rgb);
    t.luma_to_gray(data.iter().step_by(2).copied(), &mut gray);
    Frame { rgb, gray }
}

/// NV12: Y plane, then a half-height plane of `U V` pairs, each pair covering 2x2 pixels.
pub(super) fn nv12(data: &[u8], width: u32, height: u32, range: YuvRange) -> Frame {
    let w = width as usize;
    let (y_plane, uv_plane) = data.split_at(w * height as usize);
    // An interleaved chroma row is as many bytes wide as a luma row. Two strided
    // iterators let the compiler keep U and V in registers where `chunks_exact(2)`
    // builds a slice per pair.
    planar_420(y_plane, width, height, range, |row| {
        let uv = &uv_plane[row * w..][..w];
        uv.iter().copied().step_by(2).zip(uv[1..].iter().copied().step_by(2))
    })
}

/// I420: Y plane, then quarter-size U and V planes.
pub(super) fn i420(data: &[u8], width: u32, height: u32, range: YuvRange) -> Frame {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w / 2, h / 2);
    let (y_plane, chroma) = data.split_at(w * h);
    let (u_plane, v_plane) = chroma.split_at(cw * ch);
    planar_420(y_plane, width, height, range, |row| {
        let u = &u_plane[row * cw..][..cw];
        let v = &v_plane[row * cw..][..cw];
        u.iter().copied().zip(v.iter().copied())
    })
}

/// Shared 4:2:0 loop: `chroma_row(r)` yields the `(u, v)` samples of chroma
/// row `r`, which serves luma rows `2r` and `2r + 1`.
#[inline(always)]
fn planar_420<I: Iterator<Item = (u8, u8)>>(
    y_plane: &[u8],
    width: u32,
    height: u32,
    range: YuvRange,
    chroma_row: impl Fn(usize) -> I,
) -> Frame {
    let t = Tables::for_range(range);
    let w = width as usize;
    let mut rgb = RgbImage::new(width, height);
    let mut gray = GrayImage::new(width, height);
    for (row, (y_row, rgb_row)) in y_plane.chunks_exact(w).zip(rgb.chunks_exact_mut(3 * w)).enumerate() {
        let groups = y_row.chunks_exact(2).zip(chroma_row(row / 2)).map(|(y, (u, v))| [y[0], y[1], u, v]);
        t.pairs_to_rgb(groups, rgb_row);
    }
    t.luma_to_gray(y_plane.iter().copied(), &mut gray);
    Frame { rgb, gray }
}

/// GREY: luma only; the colour image repeats it in all three channels.
pub(super) fn grey(data: &[u8], width: u32, height: u32, range: YuvRange) -> Frame {
    let t = Tables::for_range(range);
    let mut gray = GrayImage::new(width, height);
    t.luma_to_gray(data.iter().copied(), &mut gray);
    frame_from_gray(gray)
}

#[cfg(test)]
mod tests {
    use super::super::{to_frame, PixelFormat};
    use super::*;

    /// Float BT.601 RGB → (Y, U, V) codes, unrounded: the textbook equations,
    /// independent of the fixed-point decoder.
    fn yuv_float([r, g, b]: [u8; 3], range: YuvRange) -> [f64; 3] {
        let (r, g, b) = (r as f64 / 255.0, g as f64 / 255.0, b as f64 / 255.0);
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        let pb = (b - y) / 1.772;
        let pr = (r - y) / 1.402;
        match range {
            YuvRange::Limited => [16.0 + 219.0 * y, 128.0 + 224.0 * pb, 128.0 + 224.0 * pr],
            YuvRange::Full => [255.0 * y, 128.0 + 255.0 * pb, 128.0 + 255.0 * pr],
        }
    }

    /// Float BT.601 (Y, U, V) codes → RGB, unrounded.
    fn rgb_float([y, u, v]: [u8; 3], range: YuvRange) -> [f64; 3] {
        let (y, pb, pr) = match range {
            YuvRange::Limited => ((y as f64 - 16.0) / 219.0, (u as f64 - 128.0) / 224.0, (v as f64 - 128.0) / 224.0),
            YuvRange::Full => (y as f64 / 255.0, (u as f64 - 128.0) / 255.0, (v as f64 - 128.0) / 255.0),
        };
        let r = y + 1.402 * pr;
        let b = y + 1.772 * pb;
        let g = (y - 0.299 * r - 0.114 * b) / 0.587;
        [r * 255.0, g * 255.0, b * 255.0]
    }

    fn code(v: f64) -> u8 {
        v.round().clamp(0.0, 255.0) as u8
    }

    fn full_range_luma([r, g, b]: [u8; 3]) -> f64 {
        0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64
    }

    /// Encodes `img` in `format`, averaging chroma over each subsampling block
    /// (2x1 for YUYV, 2x2 for NV12/I420) as a camera's ISP would.
    fn encode(img: &RgbImage, format: PixelFormat, range: YuvRange) -> Vec<u8> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let yuv: Vec<[f64; 3]> = img.pixels().map(|p| yuv_float(p.0, range)).collect();
        let block_chroma = |bx: usize, by: usize, bh: usize| {
            let mut sum = [0.0; 2];
            for y in by * bh..(by + 1) * bh {
                for x in 2 * bx..2 * bx + 2 {
                    sum[0] += yuv[y * w + x][1];
                    sum[1] += yuv[y * w + x][2];
                }
            }
            let n = (2 * bh) as f64;
            [code(sum[0] / n), code(sum[1] / n)]
        };
        let luma = |x: usize, y: usize| code(yuv[y * w + x][0]);
        let mut out = Vec::new();
        match format {
            PixelFormat::Yuyv => {
                for y in 0..h {
                    for bx in 0..w / 2 {
                        let [u, v] = block_chroma(bx, y, 1);
                        out.extend([luma(2 * bx, y), u, luma(2 * bx + 1, y), v]);
                    }
                }
            }
            PixelFormat::Nv12 | PixelFormat::I420 => {
                out.extend((0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| luma(x, y)));
                let blocks: Vec<[u8; 2]> = (0..h / 2)
                    .flat_map(|by| (0..w / 2).map(move |bx| (bx, by)))
                    .map(|(bx, by)| block_chroma(bx, by, 2))
                    .collect();
                if format == PixelFormat::Nv12 {
                    out.extend(blocks.iter().flatten());
                } else {
                    out.extend(blocks.iter().map(|c| c[0]));
                    out.extend(blocks.iter().map(|c| c[1]));
                }
            }
            _ => unreachable!("test encoder covers the chroma formats only"),
        }
        out
    }

    const COLOURS: [[u8; 3]; 8] = [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 255],
        [0, 0, 0],
        [224, 172, 150], // light skin
        [141, 85, 36],   // dark skin
        [90, 160, 200],
    ];

    /// 8x4 image of uniform 2x2 blocks, so no format's subsampling loses colour
    /// and a misplaced chroma sample shows up as a wrong block colour.
    fn block_image() -> RgbImage {
        RgbImage::from_fn(8, 4, |x, y| image::Rgb(COLOURS[(y / 2 * 4 + x / 2) as usize]))
    }

    #[test]
    fn known_colours_decode_within_tolerance() {
        let img = block_image();
        for format in [PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::I420] {
            for range in [YuvRange::Limited, YuvRange::Full] {
                let data = encode(&img, format, range);
                let frame = to_frame(&data, format, 8, 4, range).unwrap();
                for (x, y, want) in img.enumerate_pixels() {
                    let got = frame.rgb.get_pixel(x, y).0;
                    for c in 0..3 {
                        let diff = (i32::from(got[c]) - i32::from(want.0[c])).abs();
                        assert!(diff <= 2, "{format} {range:?} ({x},{y}) want {:?} got {got:?}", want.0);
                    }
                    let luma = full_range_luma(want.0);
                    let gray = f64::from(frame.gray.get_pixel(x, y).0[0]);
                    // Full range stores luma itself; limited range rounds it to
                    // a coarser code first, costing up to one step after expansion.
                    let tolerance = if range == YuvRange::Full { 0.5 } else { 1.0 };
                    assert!((gray - luma.round()).abs() <= tolerance, "{format} {range:?} gray {gray} want {luma}");
                }
            }
        }
    }

    #[test]
    fn limited_range_gray_expands_every_code() {
        let codes: Vec<u8> = (0..=255).collect();
        let frame = to_frame(&codes, PixelFormat::Grey, 256, 1, YuvRange::Limited).unwrap();
        for (y, &gray) in codes.iter().zip(frame.gray.as_raw()) {
            let want = ((f64::from(*y) - 16.0) * 255.0 / 219.0).round().clamp(0.0, 255.0) as u8;
            assert_eq!(gray, want, "Y={y}");
        }
        assert_eq!(frame.gray.as_raw()[16], 0);
        assert_eq!(frame.gray.as_raw()[235], 255);
        for (px, &gray) in frame.rgb.pixels().zip(frame.gray.as_raw()) {
            assert_eq!(px.0, [gray; 3]);
        }

        let full = to_frame(&codes, PixelFormat::Grey, 256, 1, YuvRange::Full).unwrap();
        assert_eq!(full.gray.as_raw(), &codes);
    }

    /// Expected RGB of one (Y, U, V) sample, rounded from the float equations.
    fn expected_rgb(yuv: [u8; 3], range: YuvRange) -> [u8; 3] {
        rgb_float(yuv, range).map(code)
    }

    fn assert_close(got: [u8; 3], want: [u8; 3], what: &str) {
        for c in 0..3 {
            assert!(got[c].abs_diff(want[c]) <= 1, "{what}: got {got:?} want {want:?}");
        }
    }

    #[test]
    fn nv12_and_i420_share_chroma_over_2x2_blocks() {
        // 4x4 frame, Y flat at 120; only the top-left chroma sample is tinted.
        let (y, tint, neutral) = (120u8, (90u8, 200u8), (128u8, 128u8));
        let tinted = expected_rgb([y, tint.0, tint.1], YuvRange::Limited);
        let plain = expected_rgb([y, neutral.0, neutral.1], YuvRange::Limited);
        assert_ne!(tinted, plain);

        let luma = [y; 16];
        let mut nv12 = luma.to_vec();
        nv12.extend([tint.0, tint.1, 128, 128, 128, 128, 128, 128]);
        let mut i420 = luma.to_vec();
        i420.extend([tint.0, 128, 128, 128, tint.1, 128, 128, 128]);

        for (format, data) in [(PixelFormat::Nv12, nv12), (PixelFormat::I420, i420)] {
            let frame = to_frame(&data, format, 4, 4, YuvRange::Limited).unwrap();
            for (x, yy, px) in frame.rgb.enumerate_pixels() {
                let want = if x < 2 && yy < 2 { tinted } else { plain };
                assert_close(px.0, want, &format!("{format} ({x},{yy})"));
            }
        }
    }

    #[test]
    fn yuyv_shares_chroma_over_horizontal_pairs_only() {
        // 4x2 frame, Y flat; only the first pair of the first row is tinted.
        let (y, tint) = (120u8, (90u8, 200u8));
        let tinted = expected_rgb([y, tint.0, tint.1], YuvRange::Limited);
        let plain = expected_rgb([y, 128, 128], YuvRange::Limited);
        let data = [
            y, tint.0, y, tint.1, y, 128, y, 128, // row 0
            y, 128, y, 128, y, 128, y, 128, // row 1
        ];
        let frame = to_frame(&data, PixelFormat::Yuyv, 4, 2, YuvRange::Limited).unwrap();
        for (x, yy, px) in frame.rgb.enumerate_pixels() {
            let want = if x < 2 && yy == 0 { tinted } else { plain };
            assert_close(px.0, want, &format!("({x},{yy})"));
        }
    }

    #[test]
    fn out_of_gamut_codes_clamp() {
        // Full-range Y=255 with maximal V drives R far above 255 and G below 0.
        let frame = to_frame(&[255, 128, 255, 255], PixelFormat::Yuyv, 2, 1, YuvRange::Full).unwrap();
        let want = expected_rgb([255, 128, 255], YuvRange::Full);
        assert_eq!(want[0], 255);
        assert_close(frame.rgb.get_pixel(0, 0).0, want, "clamped");
    }
}
