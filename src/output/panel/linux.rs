//! Opening a wired panel on Linux: spidev for the bus, GPIO character-device lines for
//! data/command, reset and backlight.

use std::path::PathBuf;

use embedded_hal::digital::OutputPin;
use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
use linux_embedded_hal::{CdevPin, Delay, SpidevDevice};

use crate::output::panel::bands::PanelWriter;
use crate::output::panel::driver::{init_panel, PanelGeometry};
use crate::output::panel::interface::SPIDEV_CHUNK;
use crate::output::panel::PanelError;

/// Where the panel is wired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelWiring {
    /// `/dev/spidevB.C`: bus B, chip select C.
    pub spi: PathBuf,
    pub clock_hz: u32,
    /// `/dev/gpiochipN` holding the lines below (GPIO numbers on the Pi header).
    pub gpio_chip: PathBuf,
    pub dc_line: u32,
    pub reset_line: Option<u32>,
    pub backlight_line: Option<u32>,
}

/// An open panel and its backlight, which is switched off when this is dropped.
pub struct OpenPanel {
    pub writer: PanelWriter,
    backlight: Option<CdevPin>,
}

impl OpenPanel {
    /// A panel whose backlight is not switched by this program.
    pub fn without_backlight(writer: PanelWriter) -> Self {
        Self { writer, backlight: None }
    }
}

impl Drop for OpenPanel {
    fn drop(&mut self) {
        if let Some(pin) = &mut self.backlight {
            if let Err(err) = pin.set_low() {
                log::warn!("display: cannot switch the backlight off: {err}");
            }
        }
    }
}

/// Opens the bus and lines in `wiring` and initialises the panel; errors name the device.
pub fn open_panel(wiring: &PanelWiring, geometry: &PanelGeometry) -> Result<OpenPanel, PanelError> {
    let spi_error = |reason: String| PanelError::Spi { device: wiring.spi.clone(), reason };
    let mut spi = SpidevDevice::open(&wiring.spi).map_err(|err| spi_error(err.to_string()))?;
    let options =
        SpidevOptions::new().bits_per_word(8).max_speed_hz(wiring.clock_hz).mode(SpiModeFlags::SPI_MODE_0).build();
    spi.configure(&options).map_err(|err| spi_error(format!("cannot set {} Hz mode 0: {err}", wiring.clock_hz)))?;

    let gpio_error = |line: u32, role: &'static str, reason: String| PanelError::Gpio {
        chip: wiring.gpio_chip.clone(),
        line,
        role,
        reason,
    };
    let mut chip =
        Chip::new(&wiring.gpio_chip).map_err(|err| gpio_error(wiring.dc_line, "display dc", err.to_string()))?;
    let mut output = |line: u32, initial: u8, role: &'static str| -> Result<CdevPin, PanelError> {
        let handle = chip
            .get_line(line)
            .and_then(|l| l.request(LineRequestFlags::OUTPUT, initial, &format!("emotion-pi {role}")))
            .map_err(|err| gpio_error(line, role, err.to_string()))?;
        CdevPin::new(handle).map_err(|err| gpio_error(line, role, err.to_string()))
    };
    let dc = output(wiring.dc_line, 0, "display dc")?;
    let reset = wiring.reset_line.map(|line| output(line, 1, "display reset")).transpose()?;
    let backlight = wiring.backlight_line.map(|line| output(line, 1, "display backlight")).transpose()?;
    let driver =
        init_panel(geometry, spi, dc, reset, SPIDEV_CHUNK, &mut Delay).map_err(|err| spi_error(err.to_string()))?;
    Ok(OpenPanel { writer: PanelWriter::new(driver), backlight })
}
