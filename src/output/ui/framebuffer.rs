//! An in-memory Rgb565 screen, so the display UI can be rendered to PNG by the
//! simulator and the tests without hardware.

use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use image::{Rgb, RgbImage};

/// A `width` x `height` Rgb565 draw target, row-major; pixels outside it are ignored,
/// as on a real display.
pub struct Framebuffer {
    width: u32,
    height: u32,
    pixels: Vec<Rgb565>,
}

impl Framebuffer {
    /// An all-black screen.
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height, pixels: vec![Rgb565::BLACK; width as usize * height as usize] }
    }

    /// The colour at (`x`, `y`), or `None` outside the screen.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb565> {
        (x < self.width && y < self.height).then(|| self.pixels[self.index(x, y)])
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// All pixels, row by row.
    pub fn pixels(&self) -> &[Rgb565] {
        &self.pixels
    }

    /// The screen as 8-bit RGB. Channels are widened by bit replication so that full
    /// intensity stays 255 and black stays 0, like a panel displays them.
    pub fn to_rgb_image(&self) -> RgbImage {
        let mut image = RgbImage::new(self.width, self.height);
        for (out, color) in image.pixels_mut().zip(&self.pixels) {
            let (r, g, b) = (color.r(), color.g(), color.b());
            *out = Rgb([(r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)]);
        }
        image
    }

    fn index(&self, x: u32, y: u32) -> usize {
        y as usize * self.width as usize + x as usize
    }
}

impl OriginDimensions for Framebuffer {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Framebuffer {
    type Color = Rgb565;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(point, color) in pixels {
            if let (Ok(x), Ok(y)) = (u32::try_from(point.x), u32::try_from(point.y)) {
                if x < self.width && y < self.height {
                    let index = self.index(x, y);
                    self.pixels[index] = color;
                }
            }
        }
        Ok(())
    }

    // Row-wise copies: the camera preview arrives through here every frame, and going
    // through `draw_iter` would bounds-check every pixel.
    fn fill_contiguous<I>(&mut self, area: &Rectangle, colors: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Self::Color>,
    {
        if self.bounding_box().intersection(area) != *area {
            return self.draw_iter(area.points().zip(colors).map(|(point, color)| Pixel(point, color)));
        }
        let mut colors = colors.into_iter();
        let (x, width) = (area.top_left.x as u32, area.size.width as usize);
        for y in area.rows() {
            let start = self.index(x, y as u32);
            for (pixel, color) in self.pixels[start..start + width].iter_mut().zip(&mut colors) {
                *pixel = color;
            }
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: Self::Color) -> Result<(), Self::Error> {
        let area = self.bounding_box().intersection(area);
        let (x, width) = (area.top_left.x as u32, area.size.width as usize);
        for y in area.rows() {
            let start = self.index(x, y as u32);
            self.pixels[start..start + width].fill(color);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_clip_to_the_screen_and_expand_to_888_by_bit_replication() {
        let mut screen = Framebuffer::new(4, 3);
        let colors = [Rgb565::RED, Rgb565::GREEN, Rgb565::BLUE, Rgb565::WHITE];
        // Half off the left edge: only the right column of each row may land.
        let area = Rectangle::new(Point::new(-1, 1), Size::new(2, 2));
        screen.fill_contiguous(&area, colors).expect("infallible");
        screen
            .fill_solid(&Rectangle::new(Point::new(3, 0), Size::new(5, 1)), Rgb565::new(0b10000, 0b100000, 0b00001))
            .expect("infallible");
        assert_eq!(screen.pixel(0, 1), Some(Rgb565::GREEN));
        assert_eq!(screen.pixel(0, 2), Some(Rgb565::WHITE));
        assert_eq!(screen.pixel(1, 1), Some(Rgb565::BLACK));
        assert_eq!(screen.pixel(4, 0), None);
        let image = screen.to_rgb_image();
        assert_eq!(*image.get_pixel(0, 2), Rgb([255, 255, 255]));
        assert_eq!(*image.get_pixel(0, 1), Rgb([0, 255, 0]));
        assert_eq!(*image.get_pixel(3, 0), Rgb([0b1000_0100, 0b1000_0010, 0b0000_1000]));
        assert_eq!(*image.get_pixel(2, 2), Rgb([0, 0, 0]));
    }
}
