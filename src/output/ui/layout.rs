//! Where each part of the UI goes for a given screen size.

use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X10, FONT_9X15};
use embedded_graphics::mono_font::MonoFont;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;

use crate::geometry::BoundingBox;

/// Height of the strip under the preview in landscape: one FONT_10X20 line for the main
/// face's emotion or the status, and one FONT_6X10 line for the frame rate.
const LANDSCAPE_INFO_HEIGHT: u32 = 40;
/// In portrait the frame rate shares the FONT_10X20 line, so every spare row goes to the bars.
const PORTRAIT_INFO_HEIGHT: u32 = 22;
/// Below this the bar column cannot fit "surprise" in FONT_9X15 plus margins.
const MIN_BAR_COLUMN_WIDTH: u32 = 80;
/// Space between a panel's edge and its contents.
pub const MARGIN: u32 = 2;
/// Shorter bars are hard to tell apart from the track.
const MIN_BAR_HEIGHT: u32 = 6;
/// Taller bars only take rows a larger font could use.
const MAX_BAR_HEIGHT: u32 = 14;
/// Rows in a stacked entry that are neither text nor bar: one between name and bar, two
/// before the next name.
const STACK_SPACING: u32 = 3;
/// Between a name and its bar when side by side, so the last letter does not read as
/// part of the bar.
const NAME_GAP: u32 = 6;

/// The screen split into its three areas, which together cover it exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    /// Where the camera picture goes (letterboxed inside).
    pub preview: Rectangle,
    /// Main face's emotion or status text, and the frame rate.
    pub info: Rectangle,
    /// One probability bar per class.
    pub bars: Rectangle,
}

impl Layout {
    /// Portrait screens stack preview, info and bars; landscape and square ones put the
    /// bars in a column on the right, because a camera picture is wider than tall and a
    /// square screen would otherwise leave only a sliver under it.
    pub fn for_screen(screen: Size) -> Self {
        let Size { width, height } = screen;
        if height > width {
            // 4:3 is the camera's shape, so this preview wastes no rows on letterboxing.
            let preview_height = (width * 3 / 4).min(height);
            let info_height = PORTRAIT_INFO_HEIGHT.min(height - preview_height);
            Self {
                preview: Rectangle::new(Point::zero(), Size::new(width, preview_height)),
                info: Rectangle::new(Point::new(0, preview_height as i32), Size::new(width, info_height)),
                bars: Rectangle::new(
                    Point::new(0, (preview_height + info_height) as i32),
                    Size::new(width, height - preview_height - info_height),
                ),
            }
        } else {
            let column = (width / 4).max(MIN_BAR_COLUMN_WIDTH).min(width / 2);
            let left = width - column;
            let info_height = LANDSCAPE_INFO_HEIGHT.min(height / 2);
            let preview_height = height - info_height;
            Self {
                preview: Rectangle::new(Point::zero(), Size::new(left, preview_height)),
                info: Rectangle::new(Point::new(0, preview_height as i32), Size::new(left, info_height)),
                bars: Rectangle::new(Point::new(left as i32, 0), Size::new(column, height)),
            }
        }
    }
}

/// How the frame sits inside the preview area: scaled to fit, centred, aspect kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreviewMapping {
    /// Frame size in pixels.
    pub frame: Size,
    /// The screen rectangle the whole frame is drawn into.
    pub picture: Rectangle,
}

impl PreviewMapping {
    /// Fits a `frame`-sized picture into `area`.
    pub fn fit(frame: Size, area: &Rectangle) -> Self {
        let (fw, fh) = (u64::from(frame.width.max(1)), u64::from(frame.height.max(1)));
        let (aw, ah) = (u64::from(area.size.width), u64::from(area.size.height));
        // Compare aspect ratios by cross-multiplying to stay in exact integers.
        let (pw, ph) = if aw * fh <= ah * fw { (aw, (fh * aw + fw / 2) / fw) } else { ((fw * ah + fh / 2) / fh, ah) };
        let size = Size::new(pw as u32, ph as u32);
        let offset = Point::new(((aw - pw) / 2) as i32, ((ah - ph) / 2) as i32);
        Self { frame, picture: Rectangle::new(area.top_left + offset, size) }
    }

    /// A box in frame pixels as a screen rectangle. Edges are rounded separately so that
    /// boxes touching in the frame still touch on screen.
    pub fn map_box(&self, bbox: &BoundingBox) -> Rectangle {
        let sx = self.picture.size.width as f32 / self.frame.width.max(1) as f32;
        let sy = self.picture.size.height as f32 / self.frame.height.max(1) as f32;
        let left = (bbox.x * sx).round() as i32;
        let top = (bbox.y * sy).round() as i32;
        let right = ((bbox.x + bbox.width) * sx).round() as i32;
        let bottom = ((bbox.y + bbox.height) * sy).round() as i32;
        Rectangle::new(
            self.picture.top_left + Point::new(left, top),
            Size::new((right - left).max(1) as u32, (bottom - top).max(1) as u32),
        )
    }
}

/// How the probability bars are laid out inside the bar area.
#[derive(Debug, Clone, Copy)]
pub struct BarLayout {
    pub font: &'static MonoFont<'static>,
    /// Name above the bar (narrow column) rather than to its left.
    pub stacked: bool,
    /// Vertical pitch of the rows.
    pub row_height: u32,
    /// Top of the first row; rows are centred in the area.
    pub top: i32,
    /// Left edge of every bar.
    pub bar_left: i32,
    /// Length of a bar at probability 1.
    pub bar_width: u32,
    pub bar_height: u32,
}

impl BarLayout {
    /// The largest font whose names and rows fit decides the layout: bigger letters are
    /// what makes the bars readable from across a room.
    pub fn for_area(area: &Rectangle, classes: usize, longest_name: usize) -> Self {
        let rows = classes.max(1) as u32;
        let row_height = area.size.height / rows;
        let inner_width = area.size.width.saturating_sub(2 * MARGIN);
        let names_width = |font: &MonoFont| longest_name as u32 * font.character_size.width;
        let fits_stacked = |font: &MonoFont| {
            names_width(font) <= inner_width
                && row_height >= font.character_size.height + STACK_SPACING + MIN_BAR_HEIGHT
        };
        // Side by side, the names may take at most half the width, or the bars get too short
        // to compare.
        let fits_inline =
            |font: &MonoFont| names_width(font) * 2 <= inner_width && row_height > font.character_size.height;
        let (font, stacked) = [&FONT_10X20, &FONT_9X15, &FONT_6X10]
            .into_iter()
            .find_map(|font| {
                if fits_inline(font) {
                    Some((font, false))
                } else if fits_stacked(font) {
                    Some((font, true))
                } else {
                    None
                }
            })
            .unwrap_or((&FONT_6X10, false));
        let font_height = font.character_size.height;
        let top = area.top_left.y + ((area.size.height - rows * row_height) / 2) as i32;
        let left = area.top_left.x + MARGIN as i32;
        if stacked {
            Self {
                font,
                stacked,
                row_height,
                top,
                bar_left: left,
                bar_width: inner_width,
                bar_height: (row_height - font_height - STACK_SPACING).min(MAX_BAR_HEIGHT),
            }
        } else {
            let names = names_width(font) + NAME_GAP;
            Self {
                font,
                stacked,
                row_height,
                top,
                bar_left: left + names as i32,
                bar_width: inner_width.saturating_sub(names),
                bar_height: font_height.saturating_sub(3).clamp(1, MAX_BAR_HEIGHT).min(row_height),
            }
        }
    }

    /// Top-left of class `row`'s name.
    pub fn name_position(&self, row: usize, area: &Rectangle) -> Point {
        let y = self.top + (row as u32 * self.row_height) as i32;
        if self.stacked {
            Point::new(area.top_left.x + MARGIN as i32, y)
        } else {
            let centred = self.row_height.saturating_sub(self.font.character_size.height) / 2;
            Point::new(area.top_left.x + MARGIN as i32, y + centred as i32)
        }
    }

    /// The full-length (probability 1) bar of class `row`.
    pub fn track(&self, row: usize) -> Rectangle {
        let row_top = self.top + (row as u32 * self.row_height) as i32;
        let y = if self.stacked {
            row_top + self.font.character_size.height as i32 + 1
        } else {
            row_top + ((self.row_height - self.bar_height) / 2) as i32
        };
        Rectangle::new(Point::new(self.bar_left, y), Size::new(self.bar_width, self.bar_height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_tile_the_screen_in_every_orientation() {
        for (w, h) in [(240, 240), (240, 320), (320, 240)] {
            let layout = Layout::for_screen(Size::new(w, h));
            let area: u32 =
                [layout.preview, layout.info, layout.bars].iter().map(|r| r.size.width * r.size.height).sum();
            assert_eq!(area, w * h, "{w}x{h}");
            for (i, a) in [layout.preview, layout.info, layout.bars].iter().enumerate() {
                for b in [layout.preview, layout.info, layout.bars].iter().skip(i + 1) {
                    assert!(a.intersection(b).is_zero_sized(), "{w}x{h}: {a:?} overlaps {b:?}");
                }
            }
        }
    }

    #[test]
    fn frame_is_letterboxed_and_boxes_map_by_hand_computed_scale() {
        // 320x240 screen: preview is 240x200. A 640x480 frame scales by 0.375 to 240x180,
        // centred 10 rows down.
        let layout = Layout::for_screen(Size::new(320, 240));
        assert_eq!(layout.preview, Rectangle::new(Point::zero(), Size::new(240, 200)));
        let mapping = PreviewMapping::fit(Size::new(640, 480), &layout.preview);
        assert_eq!(mapping.picture, Rectangle::new(Point::new(0, 10), Size::new(240, 180)));
        let face = BoundingBox { x: 160.0, y: 120.0, width: 320.0, height: 240.0 };
        assert_eq!(mapping.map_box(&face), Rectangle::new(Point::new(60, 55), Size::new(120, 90)));
        // A square frame is limited by height instead: 200x200, 20 columns in.
        let square = PreviewMapping::fit(Size::new(512, 512), &layout.preview);
        assert_eq!(square.picture, Rectangle::new(Point::new(20, 0), Size::new(200, 200)));
    }
}
