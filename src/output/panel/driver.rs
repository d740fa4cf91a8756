//! The panel controllers (through `mipidsi`) behind one object-safe trait, so the display
//! thread does not care which controller is wired or whether the bus is real.

use embedded_graphics::pixelcolor::Rgb565;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::spi::SpiDevice;
use mipidsi::interface::Interface;
use mipidsi::models::{ILI9341Rgb565, Model, ST7789};
use mipidsi::options::{ColorInversion, ColorOrder, Orientation, Rotation};
use mipidsi::Builder;

use crate::output::panel::interface::SpiLink;
use crate::output::panel::PanelError;

/// The supported controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// 240×240 and 240×320 IPS modules (Adafruit, Waveshare, Pimoroni).
    St7789,
    /// 240×320 TFT modules.
    Ili9341,
}

/// How the panel is mounted and what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanelGeometry {
    pub controller: Controller,
    /// Visible size after rotation.
    pub width: u16,
    pub height: u16,
    /// Clockwise degrees: 0, 90, 180 or 270.
    pub rotation: u16,
    /// Most ST7789 IPS modules show inverted colours unless inversion is on.
    pub invert: bool,
    /// Blue and red swapped on the panel (BGR subpixels).
    pub bgr: bool,
    /// Where the visible area starts in the controller's memory (240×240 ST7789 modules).
    pub offset_x: u16,
    pub offset_y: u16,
}

/// A panel ready for pixels.
pub trait PanelDriver: Send {
    /// Writes `pixels` (row-major) into the rectangle from (`x`, `y`), `width`×`height`.
    fn write_area(&mut self, x: u16, y: u16, width: u16, height: u16, pixels: &[Rgb565]) -> Result<(), PanelError>;
}

struct MipidsiPanel<D> {
    display: D,
}

impl<DI, M, RST> PanelDriver for MipidsiPanel<mipidsi::Display<DI, M, RST>>
where
    DI: Interface<Word = u8> + Send,
    DI::Error: std::fmt::Debug,
    M: Model<ColorFormat = Rgb565> + Send,
    RST: OutputPin + Send,
{
    fn write_area(&mut self, x: u16, y: u16, width: u16, height: u16, pixels: &[Rgb565]) -> Result<(), PanelError> {
        if width == 0 || height == 0 {
            return Ok(());
        }
        // mipidsi takes inclusive end coordinates.
        self.display
            .set_pixels(x, y, x + width - 1, y + height - 1, pixels.iter().copied())
            .map_err(|err| PanelError::Write(format!("{err:?}")))
    }
}

fn orientation(rotation: u16) -> Result<Orientation, PanelError> {
    let rotation = match rotation {
        0 => Rotation::Deg0,
        90 => Rotation::Deg90,
        180 => Rotation::Deg180,
        270 => Rotation::Deg270,
        other => return Err(PanelError::Rotation(other)),
    };
    Ok(Orientation::new().rotate(rotation))
}

/// Resets (when `reset` is wired) and initialises the panel over `spi` + `dc`.
pub fn init_panel<S, P, R>(
    geometry: &PanelGeometry,
    spi: S,
    dc: P,
    reset: Option<R>,
    chunk: usize,
    delay: &mut impl DelayNs,
) -> Result<Box<dyn PanelDriver>, PanelError>
where
    S: SpiDevice + Send + 'static,
    S::Error: std::fmt::Debug + Send,
    P: OutputPin + Send + 'static,
    P::Error: std::fmt::Debug + Send,
    R: OutputPin + Send + 'static,
{
    let link = SpiLink::new(spi, dc, chunk);
    match geometry.controller {
        Controller::St7789 => build(ST7789, link, geometry, reset, delay),
        Controller::Ili9341 => build(ILI9341Rgb565, link, geometry, reset, delay),
    }
}

fn build<M, DI, R>(
    model: M,
    link: DI,
    geometry: &PanelGeometry,
    reset: Option<R>,
    delay: &mut impl DelayNs,
) -> Result<Box<dyn PanelDriver>, PanelError>
where
    M: Model<ColorFormat = Rgb565> + Send + 'static,
    DI: Interface<Word = u8> + Send + 'static,
    DI::Error: std::fmt::Debug,
    R: OutputPin + Send + 'static,
{
    // The controller's memory is portrait; mipidsi rotates the visible size back.
    let (native_w, native_h) = match geometry.rotation {
        90 | 270 => (geometry.height, geometry.width),
        _ => (geometry.width, geometry.height),
    };
    let builder = Builder::new(model, link)
        .display_size(native_w, native_h)
        .display_offset(geometry.offset_x, geometry.offset_y)
        .orientation(orientation(geometry.rotation)?)
        .invert_colors(if geometry.invert { ColorInversion::Inverted } else { ColorInversion::Normal })
        .color_order(if geometry.bgr { ColorOrder::Bgr } else { ColorOrder::Rgb });
    let failed = |err: &dyn std::fmt::Debug| PanelError::Init(format!("{err:?}"));
    match reset {
        Some(pin) => {
            let display = builder.reset_pin(pin).init(delay).map_err(|e| failed(&e))?;
            Ok(Box::new(MipidsiPanel { display }))
        }
        None => {
            let display = builder.init(delay).map_err(|e| failed(&e))?;
            Ok(Box::new(MipidsiPanel { display }))
        }
    }
}
