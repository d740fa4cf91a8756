//! Where results go: pictures (annotated files; the display later), LEDs and the serial log.

pub mod display;
pub mod emotion_log;
pub mod image_canvas;
pub mod leds;
pub mod line_sink;
pub mod panel;
pub mod serial;
pub mod ui;
