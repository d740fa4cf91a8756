//! Sends a panel only what changed since the last screen: the screen is compared in
//! bands of rows, and each run of changed bands goes out as one rectangle narrowed to
//! the columns that changed. The camera preview changes every frame, but the bars,
//! labels and status often do not, and SPI time is what limits a panel's frame rate.

use std::ops::Range;

use embedded_graphics::pixelcolor::Rgb565;

use crate::output::panel::driver::PanelDriver;
use crate::output::panel::PanelError;
use crate::output::ui::Framebuffer;

/// Rows compared together: small enough to skip unchanged text lines, large enough
/// that the address-window commands (11 bytes per rectangle) stay negligible.
pub const BAND_ROWS: usize = 8;

/// What one [`PanelWriter::push`] sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pushed {
    pub rectangles: usize,
    pub pixels: usize,
}

/// A panel and what it shows now.
pub struct PanelWriter {
    driver: Box<dyn PanelDriver>,
    shown: Option<Vec<Rgb565>>,
}

impl PanelWriter {
    /// A writer for a freshly initialised panel: the first push sends the whole screen.
    pub fn new(driver: Box<dyn PanelDriver>) -> Self {
        Self { driver, shown: None }
    }

    /// Brings the panel up to `screen`. After an error the panel's content is unknown,
    /// so the next push sends everything.
    pub fn push(&mut self, screen: &Framebuffer) -> Result<Pushed, PanelError> {
        let (width, pixels) = (screen.width() as usize, screen.pixels());
        let mut pushed = Pushed::default();
        let mut buffer = Vec::new();
        for (rows, columns) in changed_rectangles(self.shown.as_deref(), pixels, width) {
            buffer.clear();
            for row in rows.clone() {
                buffer.extend_from_slice(&pixels[row * width + columns.start..row * width + columns.end]);
            }
            let written = self.driver.write_area(
                columns.start as u16,
                rows.start as u16,
                columns.len() as u16,
                rows.len() as u16,
                &buffer,
            );
            if let Err(err) = written {
                self.shown = None;
                return Err(err);
            }
            pushed.rectangles += 1;
            pushed.pixels += buffer.len();
        }
        match &mut self.shown {
            Some(shown) => shown.copy_from_slice(pixels),
            None => self.shown = Some(pixels.to_vec()),
        }
        Ok(pushed)
    }
}

/// The rectangles (rows, columns) where `current` differs from `previous`; everything
/// when there is no previous screen.
fn changed_rectangles(
    previous: Option<&[Rgb565]>,
    current: &[Rgb565],
    width: usize,
) -> Vec<(Range<usize>, Range<usize>)> {
    let height = current.len().checked_div(width).unwrap_or(0);
    let Some(previous) = previous.filter(|p| p.len() == current.len()) else {
        return if height > 0 { vec![(0..height, 0..width)] } else { Vec::new() };
    };
    let mut rectangles: Vec<(Range<usize>, Range<usize>)> = Vec::new();
    for band_start in (0..height).step_by(BAND_ROWS) {
        let rows = band_start..(band_start + BAND_ROWS).min(height);
        let mut columns: Option<Range<usize>> = None;
        for row in rows.clone() {
            let line = row * width..(row + 1) * width;
            let (old, new) = (&previous[line.clone()], &current[line]);
            let Some(first) = old.iter().zip(new).position(|(a, b)| a != b) else { continue };
            let last = width - old.iter().zip(new).rev().position(|(a, b)| a != b).unwrap_or(0);
            columns = Some(columns.map_or(first..last, |c| c.start.min(first)..c.end.max(last)));
        }
        let Some(columns) = columns else { continue };
        match rectangles.last_mut() {
            Some((last_rows, last_columns)) if last_rows.end == rows.start => {
                last_rows.end = rows.end;
                *last_columns = last_columns.start.min(columns.start)..last_columns.end.max(columns.end);
            }
            _ => rectangles.push((rows, columns)),
        }
    }
    rectangles
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::prelude::*;

    fn screen(width: usize, height: usize, changed: &[(usize, usize)]) -> Vec<Rgb565> {
        let mut pixels = vec![Rgb565::BLACK; width * height];
        for &(x, y) in changed {
            pixels[y * width + x] = Rgb565::WHITE;
        }
        pixels
    }

    #[test]
    fn the_first_screen_is_sent_whole() {
        assert_eq!(changed_rectangles(None, &screen(10, 20, &[]), 10), vec![(0..20, 0..10)]);
    }

    #[test]
    fn an_unchanged_screen_sends_nothing() {
        let same = screen(10, 20, &[(3, 3)]);
        assert_eq!(changed_rectangles(Some(&same), &same, 10), vec![]);
    }

    #[test]
    fn changes_are_sent_as_band_aligned_rows_narrowed_to_changed_columns() {
        let before = screen(40, 32, &[]);
        // Two changes in adjacent bands (rows 0-7 and 8-15) merge; one in band 24-31 stays apart.
        let after = screen(40, 32, &[(5, 6), (12, 9), (30, 25)]);
        assert_eq!(changed_rectangles(Some(&before), &after, 40), vec![(0..16, 5..13), (24..32, 30..31)]);
    }

    #[test]
    fn a_short_last_band_is_clipped_to_the_screen() {
        let before = screen(4, 10, &[]);
        let after = screen(4, 10, &[(0, 9)]);
        assert_eq!(changed_rectangles(Some(&before), &after, 4), vec![(8..10, 0..1)]);
    }
}
