//! Copies of input images with each face's box and emotion drawn on.

use embedded_graphics::mono_font::{ascii::FONT_10X20, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};
use image::RgbImage;

use crate::analyze::FaceAnalysis;
use crate::output::image_canvas::ImageCanvas;

/// Draws a box and "emotion 87%" above it for every face.
pub fn annotate(image: &mut RgbImage, faces: &[FaceAnalysis], class_names: &[String]) {
    let stroke = (image.width().max(image.height()) / 200).max(2);
    let mut canvas = ImageCanvas { image };
    let label_style = MonoTextStyle::new(&FONT_10X20, Rgb888::BLACK);
    for analysis in faces {
        let [x, y, w, h] = analysis.face.bbox.to_pixels();
        let area = Rectangle::new(Point::new(x, y), Size::new(w.max(1) as u32, h.max(1) as u32));
        // Infallible target: drawing cannot fail.
        let _ = area.into_styled(PrimitiveStyle::with_stroke(Rgb888::GREEN, stroke)).draw(&mut canvas);
        let (class, probability) = analysis.emotion.top();
        let label =
            format!("{} {:.0}%", class_names.get(class).map(String::as_str).unwrap_or("?"), probability * 100.0);
        let label_top = (y - 22).max(0);
        let backdrop = Rectangle::new(Point::new(x, label_top), Size::new(label.len() as u32 * 10 + 4, 22));
        let _ = backdrop.into_styled(PrimitiveStyle::with_fill(Rgb888::GREEN)).draw(&mut canvas);
        let _ =
            Text::with_baseline(&label, Point::new(x + 2, label_top + 1), label_style, Baseline::Top).draw(&mut canvas);
    }
}
