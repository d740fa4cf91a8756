//! MJPEG frames: one baseline JPEG per buffer, possibly without Huffman tables.
//!
//! Many UVC webcams omit the DHT segment and rely on the example tables of
//! ITU-T T.81 Annex K.3. The decoder only assumes those when the frame carries
//! an `AVI1` APP0 segment, which not every camera sends, so missing tables are
//! inserted here before decoding.

use std::io::Cursor;

use image::codecs::jpeg::JpegDecoder;
use image::{DynamicImage, ImageDecoder};

use super::{frame_from_gray, ConvertError};
use crate::frame::Frame;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DHT: u8 = 0xC4;

/// Decodes one MJPEG buffer, which must be a `width`x`height` image.
///
/// Bytes after the end-of-image marker (buffer padding) are ignored.
pub(super) fn decode(data: &[u8], width: u32, height: u32) -> Result<Frame, ConvertError> {
    let header = scan_header(data)?;
    // A frame cut short in USB transfer would otherwise decode "successfully"
    // with its missing part filled in gray.
    if !has_end_marker(&data[header.sos..]) {
        return Err(ConvertError::CorruptJpeg("no end-of-image marker (truncated frame)"));
    }
    let with_tables;
    let jpeg = if header.has_dht {
        data
    } else {
        with_tables = insert_default_tables(data, header.sos);
        &with_tables[..]
    };
    let decoder = JpegDecoder::new(Cursor::new(jpeg))?;
    let (found_width, found_height) = decoder.dimensions();
    if (found_width, found_height) != (width, height) {
        return Err(ConvertError::JpegSize { width, height, found_width, found_height });
    }
    Ok(match DynamicImage::from_decoder(decoder)? {
        DynamicImage::ImageLuma8(gray) => frame_from_gray(gray),
        colour => Frame::from_rgb(colour.into_rgb8()),
    })
}

/// Whether `data` is a JPEG with intact headers and an end-of-image marker after its
/// first scan; the `image` decoder fills a cut-off JPEG with gray instead of failing.
pub(crate) fn is_complete_jpeg(data: &[u8]) -> bool {
    scan_header(data).is_ok_and(|header| has_end_marker(&data[header.sos..]))
}

/// What the marker segments before the first scan say.
struct Header {
    /// Offset of the `FF DA` start-of-scan marker.
    sos: usize,
    /// Whether any Huffman table was defined before it.
    has_dht: bool,
}

/// Walks the marker segments from SOI up to the first SOS (T.81 B.2).
fn scan_header(data: &[u8]) -> Result<Header, ConvertError> {
    const TRUNCATED: ConvertError = ConvertError::CorruptJpeg("header runs past end of buffer");
    if !data.starts_with(&[0xFF, SOI]) {
        return Err(ConvertError::CorruptJpeg("no start-of-image marker"));
    }
    let mut pos = 2;
    let mut has_dht = false;
    loop {
        if data.get(pos) != Some(&0xFF) {
            return Err(match data.get(pos) {
                None => TRUNCATED,
                Some(_) => ConvertError::CorruptJpeg("expected a marker between segments"),
            });
        }
        // Any number of 0xFF fill bytes may precede a marker code (T.81 B.1.1.2).
        while data.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let marker_start = pos - 1;
        let &marker = data.get(pos).ok_or(TRUNCATED)?;
        pos += 1;
        match marker {
            SOS => return Ok(Header { sos: marker_start, has_dht }),
            EOI => return Err(ConvertError::CorruptJpeg("image ends before its first scan")),
            // TEM and RSTn stand alone, without a length field.
            0x01 | 0xD0..=0xD7 => {}
            _ => {
                let length = data.get(pos..pos + 2).ok_or(TRUNCATED)?;
                let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
                if length < 2 {
                    return Err(ConvertError::CorruptJpeg("segment length below 2"));
                }
                has_dht |= marker == DHT;
                pos += length;
            }
        }
    }
}

/// Whether `scan` (from SOS on) contains the EOI marker. Entropy-coded data
/// stuffs every 0xFF as `FF 00`, so `FF D9` there can only be the real marker.
fn has_end_marker(scan: &[u8]) -> bool {
    // Searched from the back: only buffer padding follows EOI.
    scan.windows(2).rev().any(|w| w == [0xFF, EOI])
}

/// `data` with [`DEFAULT_DHT`] inserted just before the start of scan at `sos`.
fn insert_default_tables(data: &[u8], sos: usize) -> Vec<u8> {
    let (header, scan) = data.split_at(sos);
    let mut out = Vec::with_capacity(data.len() + DEFAULT_DHT.len());
    out.extend_from_slice(header);
    out.extend_from_slice(&DEFAULT_DHT);
    out.extend_from_slice(scan);
    out
}

/// One DHT segment holding the four Huffman tables of ITU-T T.81 Annex K.3
/// (Tables K.3–K.6). Each table is a class/id byte (high nibble 0 = DC,
/// 1 = AC; low nibble = table id), 16 counts of codes per bit length, then
/// the symbol values in code order.
#[rustfmt::skip]
const DEFAULT_DHT: [u8; 420] = [
    0xFF, DHT,
    0x01, 0xA2, // segment length 418: itself (2) + 4 * (1 + 16) + 12 + 12 + 162 + 162
    // Luminance DC (Table K.3)
    0x00,
    0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B,
    // Chrominance DC (Table K.4)
    0x01,
    0x00, 0x03, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B,
    // Luminance AC (Table K.5)
    0x10,
    0x00, 0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05, 0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7D,
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
    // Chrominance AC (Table K.6)
    0x11,
    0x00, 0x02, 0x01, 0x02, 0x04, 0x04, 0x03, 0x04, 0x07, 0x05, 0x04, 0x04, 0x00, 0x01, 0x02, 0x77,
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

#[cfg(test)]
mod tests {
    use image::codecs::jpeg::JpegEncoder;
    use image::{GrayImage, Rgb, RgbImage};

    use super::super::{to_frame, PixelFormat, YuvRange};
    use super::*;
    use crate::frame::luma_bt601;

    const W: u32 = 48;
    const H: u32 = 32;

    /// Smooth colour gradients: JPEG reproduces them closely, unlike hard edges.
    fn gradient() -> RgbImage {
        RgbImage::from_fn(W, H, |x, y| Rgb([(40 + x * 3) as u8, (60 + y * 4) as u8, (200 - x * 2 - y) as u8]))
    }

    fn encode_rgb(img: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 95).encode_image(img).unwrap();
        out
    }

    fn decode_ok(jpeg: &[u8]) -> Frame {
        to_frame(jpeg, PixelFormat::Mjpeg, W, H, YuvRange::Limited).unwrap()
    }

    /// Removes every DHT segment, parsing the markers independently of
    /// [`scan_header`]: after SOI, each segment is `FF xx` plus a length.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut pos = 2;
        loop {
            assert_eq!(jpeg[pos], 0xFF);
            let marker = jpeg[pos + 1];
            if marker == 0xDA {
                out.extend_from_slice(&jpeg[pos..]);
                return out;
            }
            let len = usize::from(jpeg[pos + 2]) << 8 | usize::from(jpeg[pos + 3]);
            if marker != 0xC4 {
                out.extend_from_slice(&jpeg[pos..pos + 2 + len]);
            }
            pos += 2 + len;
        }
    }

    #[test]
    fn colour_jpeg_decodes_within_jpeg_tolerance() {
        let img = gradient();
        let frame = decode_ok(&encode_rgb(&img));
        let mut total = 0u64;
        for (x, y, want) in img.enumerate_pixels() {
            let got = frame.rgb.get_pixel(x, y).0;
            for c in 0..3 {
                let diff = got[c].abs_diff(want.0[c]);
                assert!(diff <= 10, "({x},{y}) want {:?} got {got:?}", want.0);
                total += u64::from(diff);
            }
            assert_eq!(frame.gray.get_pixel(x, y).0[0], luma_bt601(got[0], got[1], got[2]));
        }
        let mean = total as f64 / f64::from(W * H * 3);
        assert!(mean < 2.0, "mean channel error {mean}");
    }

    #[test]
    fn gray_jpeg_keeps_decoded_luma() {
        let img = GrayImage::from_fn(W, H, |x, y| image::Luma([(20 + x * 2 + y * 3) as u8]));
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&img).unwrap();
        let frame = decode_ok(&jpeg);
        for (x, y, want) in img.enumerate_pixels() {
            let gray = frame.gray.get_pixel(x, y).0[0];
            assert!(gray.abs_diff(want.0[0]) <= 3, "({x},{y}) want {} got {gray}", want.0[0]);
            assert_eq!(frame.rgb.get_pixel(x, y).0, [gray; 3]);
        }
    }

    #[test]
    fn jpeg_without_huffman_tables_decodes_identically() {
        let jpeg = encode_rgb(&gradient());
        let stripped = strip_dht(&jpeg);
        assert!(stripped.len() < jpeg.len(), "encoder wrote no DHT to strip");
        assert!(!scan_header(&stripped).unwrap().has_dht);

        let want = decode_ok(&jpeg);
        let got = decode_ok(&stripped);
        assert_eq!(got.rgb, want.rgb);
        assert_eq!(got.gray, want.gray);
    }

    #[test]
    fn default_tables_are_well_formed() {
        let length = usize::from(DEFAULT_DHT[2]) << 8 | usize::from(DEFAULT_DHT[3]);
        assert_eq!(length + 2, DEFAULT_DHT.len());
        // Walk the four tables: each declares how many symbols follow its counts.
        let mut pos = 4;
        let mut classes = Vec::new();
        while pos < DEFAULT_DHT.len() {
            classes.push(DEFAULT_DHT[pos]);
            let counts = &DEFAULT_DHT[pos + 1..pos + 17];
            let symbols: usize = counts.iter().map(|&c| usize::from(c)).sum();
            pos += 17 + symbols;
        }
        assert_eq!(pos, DEFAULT_DHT.len());
        assert_eq!(classes, [0x00, 0x01, 0x10, 0x11]);
    }

    #[test]
    fn padding_after_end_marker_is_ignored() {
        let jpeg = encode_rgb(&gradient());
        let mut padded = jpeg.clone();
        padded.extend([0u8; 256]);
        assert_eq!(decode_ok(&padded).rgb, decode_ok(&jpeg).rgb);
    }

    #[test]
    fn truncated_or_garbage_jpeg_is_an_error() {
        let jpeg = encode_rgb(&gradient());
        let decode = |data: &[u8]| to_frame(data, PixelFormat::Mjpeg, W, H, YuvRange::Full);
        for cut in [jpeg.len() - 2, jpeg.len() / 2, 40, 3, 0] {
            assert!(matches!(decode(&jpeg[..cut]), Err(ConvertError::CorruptJpeg(_))), "cut at {cut}");
        }
        assert!(decode(b"definitely not a jpeg").is_err());
        let mut junk_after_soi = vec![0xFF, SOI];
        junk_after_soi.extend([0x12; 64]);
        assert!(decode(&junk_after_soi).is_err());
    }

    #[test]
    fn unexpected_size_is_an_error() {
        let jpeg = encode_rgb(&gradient());
        let result = to_frame(&jpeg, PixelFormat::Mjpeg, W * 2, H, YuvRange::Full);
        assert!(matches!(result, Err(ConvertError::JpegSize { found_width: W, found_height: H, .. })), "{result:?}");
    }
}
