//! SPI TFT panels (ST7789, ILI9341) through `mipidsi`: the controller behind a trait,
//! the SPI link with spidev-sized transfers, changed-region updates, and opening the
//! real spidev and GPIO lines on Linux.

pub mod bands;
pub mod driver;
pub mod fake_bus;
pub mod interface;
pub mod linux;

#[cfg(test)]
mod tests;
