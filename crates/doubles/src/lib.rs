//! Test doubles for emotion-pi's SPI panel: a recording SPI device and pins, used by the
//! device crate's tests and the lab's traffic benchmark. Every write is kept with the
//! level of the data/command pin at that moment, so what a controller would receive can be
//! decoded and checked without hardware.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use embedded_hal::digital::{ErrorType as PinErrorType, OutputPin};
use embedded_hal::spi::{ErrorKind, ErrorType, Operation, SpiDevice};

/// One SPI write and whether DC was high (data) or low (command) during it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub data: bool,
    pub bytes: Vec<u8>,
}

/// A command byte and the data written after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub code: u8,
    pub data: Vec<u8>,
    /// The size of each SPI write that carried `data`.
    pub transfers: Vec<usize>,
}

#[derive(Default)]
struct Wire {
    dc_high: bool,
    writes: Vec<Write>,
    bytes: usize,
    keep: bool,
    failing: bool,
    reset_levels: Vec<bool>,
}

/// The shared wire behind a [`FakeSpi`] and its pins.
#[derive(Clone, Default)]
pub struct FakeBus {
    wire: Arc<Mutex<Wire>>,
}

impl FakeBus {
    /// A bus that keeps every write (`keep_writes`, tests) or only counts bytes (bench).
    pub fn new(keep_writes: bool) -> Self {
        let bus = Self::default();
        bus.lock().keep = keep_writes;
        bus
    }

    fn lock(&self) -> MutexGuard<'_, Wire> {
        self.wire.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn spi(&self) -> FakeSpi {
        FakeSpi { bus: self.clone() }
    }

    pub fn dc_pin(&self) -> FakePin {
        FakePin { bus: self.clone(), role: PinRole::DataCommand }
    }

    pub fn reset_pin(&self) -> FakePin {
        FakePin { bus: self.clone(), role: PinRole::Reset }
    }

    /// Makes every SPI write fail (a panel unplugged or a bus error) until cleared.
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }

    /// Bytes written since the last [`FakeBus::take_byte_count`].
    pub fn take_byte_count(&self) -> usize {
        std::mem::take(&mut self.lock().bytes)
    }

    /// Levels the reset pin was set to, in order.
    pub fn reset_levels(&self) -> Vec<bool> {
        self.lock().reset_levels.clone()
    }

    /// The writes so far decoded as commands with their data; clears them.
    pub fn take_commands(&self) -> Vec<Command> {
        let writes = std::mem::take(&mut self.lock().writes);
        let mut commands: Vec<Command> = Vec::new();
        for write in writes {
            match (write.data, commands.last_mut()) {
                (false, _) => commands.extend(write.bytes.iter().map(|&code| Command {
                    code,
                    data: Vec::new(),
                    transfers: Vec::new(),
                })),
                (true, Some(command)) => {
                    if !write.bytes.is_empty() {
                        command.transfers.push(write.bytes.len());
                    }
                    command.data.extend(write.bytes);
                }
                (true, None) => {}
            }
        }
        commands
    }
}

/// The recording SPI device.
pub struct FakeSpi {
    bus: FakeBus,
}

impl ErrorType for FakeSpi {
    type Error = ErrorKind;
}

impl SpiDevice for FakeSpi {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Self::Error> {
        let mut wire = self.bus.lock();
        if wire.failing {
            return Err(ErrorKind::Other);
        }
        for operation in operations {
            if let Operation::Write(bytes) = operation {
                wire.bytes += bytes.len();
                if wire.keep {
                    let data = wire.dc_high;
                    wire.writes.push(Write { data, bytes: bytes.to_vec() });
                }
            }
        }
        Ok(())
    }
}

enum PinRole {
    DataCommand,
    Reset,
}

/// The recording data/command or reset pin.
pub struct FakePin {
    bus: FakeBus,
    role: PinRole,
}

impl FakePin {
    fn set(&mut self, high: bool) {
        let mut wire = self.bus.lock();
        match self.role {
            PinRole::DataCommand => wire.dc_high = high,
            PinRole::Reset => wire.reset_levels.push(high),
        }
    }
}

impl PinErrorType for FakePin {
    type Error = Infallible;
}

impl OutputPin for FakePin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.set(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.set(true);
        Ok(())
    }
}

/// A delay that returns at once (the controller timings do not matter to the fakes).
pub struct NoDelay;

impl embedded_hal::delay::DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}
