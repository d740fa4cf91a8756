//! An `embedded-graphics` draw target backed by an in-memory RGB image.
//!
//! The same drawing code then serves annotated copies of files and PNG renders of
//! the display UI, with no hardware.

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use image::{Rgb, RgbImage};

/// Draws into `image`; pixels outside it are ignored, as on a real display.
pub struct ImageCanvas<'a> {
    pub image: &'a mut RgbImage,
}

impl OriginDimensions for ImageCanvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.image.width(), self.image.height())
    }
}

impl DrawTarget for ImageCanvas<'_> {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let (w, h) = (self.image.width() as i32, self.image.height() as i32);
        for Pixel(point, color) in pixels {
            if (0..w).contains(&point.x) && (0..h).contains(&point.y) {
                self.image.put_pixel(point.x as u32, point.y as u32, Rgb([color.r(), color.g(), color.b()]));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};

    #[test]
    fn rectangle_outline_lands_on_expected_pixels_and_clips() {
        let mut image = RgbImage::new(6, 4);
        let mut canvas = ImageCanvas { image: &mut image };
        Rectangle::new(Point::new(1, 1), Size::new(3, 2))
            .into_styled(PrimitiveStyle::with_stroke(Rgb888::RED, 1))
            .draw(&mut canvas)
            .expect("infallible");
        Rectangle::new(Point::new(4, 2), Size::new(10, 10))
            .into_styled(PrimitiveStyle::with_fill(Rgb888::BLUE))
            .draw(&mut canvas)
            .expect("infallible");
        let red = Rgb([255, 0, 0]);
        let blue = Rgb([0, 0, 255]);
        for (x, y) in [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)] {
            assert_eq!(*image.get_pixel(x, y), red, "({x},{y})");
        }
        assert_eq!(*image.get_pixel(5, 3), blue);
        assert_eq!(*image.get_pixel(0, 0), Rgb([0, 0, 0]));
    }
}
