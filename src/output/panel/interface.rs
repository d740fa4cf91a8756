//! The SPI link to a panel controller: a data/command pin plus spidev writes no larger
//! than the kernel's transfer limit.
//!
//! Written here rather than using `mipidsi::interface::SpiInterface` because that one
//! borrows its buffer, while the display thread owns its panel for the whole run and
//! reopens it after an SPI error; and because the chunk size is a property of spidev
//! (`bufsiz`, 4096 bytes by default) that the tests check.

use embedded_hal::digital::OutputPin;
use embedded_hal::spi::SpiDevice;
use mipidsi::interface::{Interface, InterfaceKind};

/// spidev's default `bufsiz`: a longer write fails with EMSGSIZE.
pub const SPIDEV_CHUNK: usize = 4096;

/// A failed write or pin change.
#[derive(Debug)]
pub enum LinkError<S, P> {
    Spi(S),
    DataCommandPin(P),
}

/// 4-wire SPI (clock, data, chip select, data/command) to a MIPI DCS controller.
pub struct SpiLink<S, P> {
    spi: S,
    dc: P,
    chunk: Vec<u8>,
}

impl<S: SpiDevice, P: OutputPin> SpiLink<S, P> {
    /// A link writing at most `chunk` bytes per SPI transfer.
    pub fn new(spi: S, dc: P, chunk: usize) -> Self {
        Self { spi, dc, chunk: Vec::with_capacity(chunk.max(2)) }
    }

    fn flush(&mut self) -> Result<(), LinkError<S::Error, P::Error>> {
        if !self.chunk.is_empty() {
            self.spi.write(&self.chunk).map_err(LinkError::Spi)?;
            self.chunk.clear();
        }
        Ok(())
    }
}

impl<S: SpiDevice, P: OutputPin> Interface for SpiLink<S, P>
where
    S::Error: std::fmt::Debug,
    P::Error: std::fmt::Debug,
{
    type Word = u8;
    type Error = LinkError<S::Error, P::Error>;

    const KIND: InterfaceKind = InterfaceKind::Serial4Line;

    fn send_command(&mut self, command: u8, args: &[u8]) -> Result<(), Self::Error> {
        self.dc.set_low().map_err(LinkError::DataCommandPin)?;
        self.spi.write(&[command]).map_err(LinkError::Spi)?;
        self.dc.set_high().map_err(LinkError::DataCommandPin)?;
        for part in args.chunks(self.chunk.capacity()) {
            self.spi.write(part).map_err(LinkError::Spi)?;
        }
        Ok(())
    }

    fn send_pixels<const N: usize>(&mut self, pixels: impl IntoIterator<Item = [u8; N]>) -> Result<(), Self::Error> {
        // Whole pixels per transfer, so a chunk boundary never splits one.
        let per_chunk = (self.chunk.capacity() / N).max(1) * N;
        for pixel in pixels {
            if self.chunk.len() + N > per_chunk {
                self.flush()?;
            }
            self.chunk.extend_from_slice(&pixel);
        }
        self.flush()
    }

    fn send_repeated_pixel<const N: usize>(&mut self, pixel: [u8; N], count: u32) -> Result<(), Self::Error> {
        self.send_pixels(std::iter::repeat_n(pixel, count as usize))
    }
}
