//! The picture on the device's display: camera preview with a box and label per face,
//! probability bars for the main face, frame rate and status.
//!
//! Drawn onto any `embedded-graphics` Rgb565 target, so the same code drives the SPI panel
//! and the PNG renders in the simulator and tests ([`Framebuffer`]).

mod framebuffer;
mod layout;

pub use framebuffer::Framebuffer;

use embedded_graphics::draw_target::DrawTargetExt;
use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X10};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyleBuilder, Rectangle, StrokeAlignment};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use image::RgbImage;

use crate::analyze::FaceAnalysis;
use crate::geometry::BoundingBox;
use layout::{BarLayout, Layout, PreviewMapping, MARGIN};

/// One tracked face as the UI shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct UiFace {
    /// Where the face is, in pixels of the frame.
    pub bbox: BoundingBox,
    /// Index of the emotion shown (into `UiState::class_names`).
    pub label: usize,
    /// Probability of `label`, 0..=1.
    pub confidence: f32,
    /// Probability per class, in `class_names` order.
    pub probabilities: Vec<f32>,
}

impl From<&FaceAnalysis> for UiFace {
    /// A face straight from the models, untracked (benchmarks, annotated stills).
    fn from(analysis: &FaceAnalysis) -> Self {
        let (label, confidence) = analysis.emotion.top();
        Self { bbox: analysis.face.bbox, label, confidence, probabilities: analysis.emotion.probabilities.clone() }
    }
}

/// What the pipeline is doing, shown as text when it is not simply running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiStatus {
    /// Faces are being tracked: no status text, the main face's emotion instead.
    Running,
    /// The camera works but nobody is in view.
    NoFace,
    /// No frames are arriving.
    NoCamera,
}

/// Everything one UI frame shows.
#[derive(Debug, Clone, Copy)]
pub struct UiState<'a> {
    /// The camera picture; `None` leaves the preview blank.
    pub frame: Option<&'a RgbImage>,
    /// Tracked faces, in frame pixels; the largest one gets the bars.
    pub faces: &'a [UiFace],
    /// Names of the classifier's classes, in output order.
    pub class_names: &'a [String],
    /// Frames per second of the pipeline.
    pub fps: f64,
    pub status: UiStatus,
}

const BACKGROUND: Rgb565 = Rgb565::BLACK;
const TEXT: Rgb565 = Rgb565::WHITE;
/// The unfilled part of a bar, so that a zero probability still shows where its bar is.
const TRACK: Rgb565 = Rgb565::new(5, 10, 5);
const BOX_STROKE: u32 = 2;
const LABEL_FONT: &MonoFont<'static> = &FONT_6X10;
const STATUS_FONT: &MonoFont<'static> = &FONT_10X20;
const FPS_FONT: &MonoFont<'static> = &FONT_6X10;

/// The colour of class `class` in 8-bit RGB, shared by the screen and an RGB LED. The
/// palette follows the FER2013 order (angry, disgust, fear, happy, sad, surprise,
/// neutral) so each emotion gets a colour people associate with it; models with more
/// classes reuse the palette.
pub fn emotion_rgb(class: usize) -> (u8, u8, u8) {
    const PALETTE: [(u8, u8, u8); 7] = [
        (230, 40, 40),   // angry: red
        (60, 170, 60),   // disgust: green
        (160, 80, 220),  // fear: purple
        (250, 210, 0),   // happy: yellow
        (40, 110, 240),  // sad: blue
        (255, 140, 0),   // surprise: orange
        (170, 170, 170), // neutral: grey
    ];
    PALETTE[class % PALETTE.len()]
}

/// [`emotion_rgb`] for the screen: face boxes, labels and bars.
pub fn emotion_color(class: usize) -> Rgb565 {
    let (r, g, b) = emotion_rgb(class);
    Rgb565::new(r >> 3, g >> 2, b >> 3)
}

/// Draws the whole UI for `state`, covering every pixel of `target` so nothing from the
/// previous frame survives.
pub fn draw_ui<D: DrawTarget<Color = Rgb565>>(target: &mut D, state: &UiState) -> Result<(), D::Error> {
    let screen = target.bounding_box();
    let layout = Layout::for_screen(screen.size);
    let layout = Layout {
        preview: layout.preview.translate(screen.top_left),
        info: layout.info.translate(screen.top_left),
        bars: layout.bars.translate(screen.top_left),
    };
    // The largest box is the nearest person, the one the bars are about.
    let main_face = state.faces.iter().max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()));

    draw_preview(target, &layout.preview, state)?;
    draw_info(target, &layout.info, state, main_face)?;
    draw_bars(target, &layout.bars, state.class_names, main_face)
}

fn draw_preview<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    area: &Rectangle,
    state: &UiState,
) -> Result<(), D::Error> {
    // An empty image has nothing to scale, so it shows as no frame.
    let Some(frame) = state.frame.filter(|frame| frame.width() > 0 && frame.height() > 0) else {
        return target.fill_solid(area, BACKGROUND);
    };
    let mapping = PreviewMapping::fit(Size::new(frame.width(), frame.height()), area);
    fill_letterbox(target, area, &mapping.picture)?;
    draw_scaled(target, frame, &mapping.picture)?;

    // Boxes near the edge must not spill into the info strip or the bars.
    let mut preview = target.clipped(area);
    for face in state.faces {
        draw_face(&mut preview, &mapping, area, face, state.class_names)?;
    }
    Ok(())
}

/// Paints the parts of `area` that `picture` leaves uncovered, rather than clearing all
/// of it, so an SPI panel is sent each preview pixel once.
fn fill_letterbox<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    area: &Rectangle,
    picture: &Rectangle,
) -> Result<(), D::Error> {
    let (outer, inner) = (area.top_left, picture.top_left);
    let above = (inner.y - outer.y) as u32;
    let before = (inner.x - outer.x) as u32;
    let below = area.size.height - above - picture.size.height;
    let after = area.size.width - before - picture.size.width;
    target.fill_solid(&Rectangle::new(outer, Size::new(area.size.width, above)), BACKGROUND)?;
    target.fill_solid(
        &Rectangle::new(Point::new(outer.x, inner.y + picture.size.height as i32), Size::new(area.size.width, below)),
        BACKGROUND,
    )?;
    target.fill_solid(
        &Rectangle::new(Point::new(outer.x, inner.y), Size::new(before, picture.size.height)),
        BACKGROUND,
    )?;
    target.fill_solid(
        &Rectangle::new(
            Point::new(inner.x + picture.size.width as i32, inner.y),
            Size::new(after, picture.size.height),
        ),
        BACKGROUND,
    )
}

/// Nearest-neighbour scaling of `frame` onto `picture`, streamed row by row into one
/// `fill_contiguous` so displays can burst-write it.
fn draw_scaled<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    frame: &RgbImage,
    picture: &Rectangle,
) -> Result<(), D::Error> {
    let (fw, fh) = (frame.width() as usize, frame.height() as usize);
    let (pw, ph) = (picture.size.width as usize, picture.size.height as usize);
    // Sample at destination pixel centres, so the picture is not shifted by half a source
    // pixel towards the top-left.
    let columns: Vec<usize> = (0..pw).map(|x| (2 * x + 1) * fw / (2 * pw)).collect();
    let data = frame.as_raw();
    let colors = (0..ph).flat_map(|y| {
        let row = &data[(2 * y + 1) * fh / (2 * ph) * fw * 3..];
        columns.iter().map(move |&x| {
            let p = &row[x * 3..x * 3 + 3];
            Rgb565::new(p[0] >> 3, p[1] >> 2, p[2] >> 3)
        })
    });
    target.fill_contiguous(picture, colors)
}

fn draw_face<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    mapping: &PreviewMapping,
    preview: &Rectangle,
    face: &UiFace,
    class_names: &[String],
) -> Result<(), D::Error> {
    let color = emotion_color(face.label);
    let rect = mapping.map_box(&face.bbox);
    // Inside alignment keeps the outline exactly on the mapped rectangle.
    let style = PrimitiveStyleBuilder::new()
        .stroke_color(color)
        .stroke_width(BOX_STROKE)
        .stroke_alignment(StrokeAlignment::Inside)
        .build();
    rect.into_styled(style).draw(target)?;

    let text = format!("{} {:.0}%", class_name(class_names, face.label), face.confidence * 100.0);
    let char_size = LABEL_FONT.character_size;
    let label_size = Size::new(text.len() as u32 * char_size.width + 2 * MARGIN, char_size.height + 2);
    // Above the box when there is room, else just inside its top edge; shifted left rather
    // than cut off at the right of the preview.
    let y = if rect.top_left.y - label_size.height as i32 >= preview.top_left.y {
        rect.top_left.y - label_size.height as i32
    } else {
        rect.top_left.y
    };
    let max_x = preview.top_left.x + preview.size.width as i32 - label_size.width as i32;
    let x = rect.top_left.x.min(max_x).max(preview.top_left.x);
    let backdrop = Rectangle::new(Point::new(x, y), label_size);
    target.fill_solid(&backdrop, color)?;
    let style = MonoTextStyle::new(LABEL_FONT, readable_on(color));
    Text::with_baseline(&text, Point::new(x + MARGIN as i32, y + 1), style, Baseline::Top).draw(target)?;
    Ok(())
}

fn draw_info<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    area: &Rectangle,
    state: &UiState,
    main_face: Option<&UiFace>,
) -> Result<(), D::Error> {
    target.fill_solid(area, BACKGROUND)?;
    let mut info = target.clipped(area);
    let headline = match state.status {
        UiStatus::NoCamera => Some(("no camera".to_owned(), TEXT)),
        UiStatus::NoFace => Some(("no face".to_owned(), TEXT)),
        UiStatus::Running => main_face.map(|face| {
            let text = format!("{} {:.0}%", class_name(state.class_names, face.label), face.confidence * 100.0);
            (text, emotion_color(face.label))
        }),
    };
    if let Some((text, color)) = headline {
        let position = area.top_left + Point::new(MARGIN as i32, 1);
        Text::with_baseline(&text, position, MonoTextStyle::new(STATUS_FONT, color), Baseline::Top).draw(&mut info)?;
    }
    let fps = format!("{:.1} fps", state.fps);
    let style = TextStyleBuilder::new().alignment(Alignment::Right).baseline(Baseline::Bottom).build();
    let corner = area.top_left + Point::new(area.size.width as i32 - MARGIN as i32, area.size.height as i32 - 1);
    Text::with_text_style(&fps, corner, MonoTextStyle::new(FPS_FONT, TEXT), style).draw(&mut info)?;
    Ok(())
}

fn draw_bars<D: DrawTarget<Color = Rgb565>>(
    target: &mut D,
    area: &Rectangle,
    class_names: &[String],
    main_face: Option<&UiFace>,
) -> Result<(), D::Error> {
    target.fill_solid(area, BACKGROUND)?;
    let longest = class_names.iter().map(|name| name.chars().count()).max().unwrap_or(0);
    let bars = BarLayout::for_area(area, class_names.len(), longest);
    let mut panel = target.clipped(area);
    let name_style = MonoTextStyle::new(bars.font, TEXT);
    for (class, name) in class_names.iter().enumerate() {
        Text::with_baseline(name, bars.name_position(class, area), name_style, Baseline::Top).draw(&mut panel)?;
        let track = bars.track(class);
        let probability = main_face.and_then(|face| face.probabilities.get(class)).copied().unwrap_or(0.0);
        let filled = bar_length(probability, track.size.width);
        panel
            .fill_solid(&Rectangle::new(track.top_left, Size::new(filled, track.size.height)), emotion_color(class))?;
        panel.fill_solid(
            &Rectangle::new(
                track.top_left + Point::new(filled as i32, 0),
                Size::new(track.size.width - filled, track.size.height),
            ),
            TRACK,
        )?;
    }
    Ok(())
}

/// Pixels of a `width`-long bar filled at `probability`; out-of-range or NaN values (a
/// misbehaving model) are clamped rather than drawn past the track.
fn bar_length(probability: f32, width: u32) -> u32 {
    let p = if probability.is_nan() { 0.0 } else { probability.clamp(0.0, 1.0) };
    (p * width as f32).round() as u32
}

fn class_name(class_names: &[String], class: usize) -> &str {
    class_names.get(class).map_or("?", String::as_str)
}

/// Black or white, whichever stands out on `background`.
fn readable_on(background: Rgb565) -> Rgb565 {
    let (r, g, b) = (u32::from(background.r()) << 3, u32::from(background.g()) << 2, u32::from(background.b()) << 3);
    if 299 * r + 587 * g + 114 * b > 128_000 {
        Rgb565::BLACK
    } else {
        Rgb565::WHITE
    }
}

#[cfg(test)]
mod tests;
