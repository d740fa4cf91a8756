//! SPI TFT panels (ST7789, ILI9341) through `mipidsi`: the controller behind a trait,
//! the SPI link with spidev-sized transfers, changed-region updates, and opening the
//! real spidev and GPIO lines on Linux.

pub mod bands;
pub mod driver;
pub mod interface;
pub mod linux;

use std::path::PathBuf;

/// Why a panel cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    /// The spidev device cannot be opened or set up: check `display.spi`, that SPI is
    /// enabled (`dtparam=spi=on`) and that the user is in group `spi` (`emotion-pi doctor`).
    #[error("{device}: {reason}")]
    Spi { device: PathBuf, reason: String },
    /// A GPIO line for the panel cannot be claimed: check the pin numbers and group `gpio`.
    #[error("{chip} line {line} ({role}): {reason}")]
    Gpio { chip: PathBuf, line: u32, role: &'static str, reason: String },
    /// `display.rotation` is not a quarter turn (the config checks this before start).
    #[error("rotation {0} is not 0, 90, 180 or 270")]
    Rotation(u16),
    /// The controller did not take its initialisation sequence (wiring, wrong controller).
    #[error("panel initialisation failed: {0}")]
    Init(String),
    /// Sending pixels failed (the bus went away); the display reopens the panel.
    #[error("writing pixels failed: {0}")]
    Write(String),
}

#[cfg(test)]
mod tests;
