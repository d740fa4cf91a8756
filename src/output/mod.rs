//! Where results go: pictures (annotated files; the display later), LEDs and the serial log.

pub mod image_canvas;
