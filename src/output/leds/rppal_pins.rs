//! The Pi's GPIO through `rppal`: steady levels for fully on or off, rppal's software
//! PWM for brightness in between.

use std::collections::BTreeMap;

use rppal::gpio::{Gpio, OutputPin};

use crate::output::leds::{LedError, LedPins};

/// PWM frequency for LED brightness: well above flicker fusion, cheap for software PWM.
const PWM_HZ: f64 = 200.0;

/// The GPIO lines of the LEDs, claimed at start.
pub struct RppalPins {
    pins: BTreeMap<u8, OutputPin>,
}

impl RppalPins {
    /// Claims `pins` as outputs, low; the error names the pin that could not be taken.
    pub fn open(pins: &[u8]) -> Result<Self, LedError> {
        let gpio = Gpio::new().map_err(|err| LedError::Gpio(err.to_string()))?;
        let mut claimed = BTreeMap::new();
        for &pin in pins {
            let output = gpio.get(pin).map_err(|err| pin_error(pin, &err))?.into_output_low();
            claimed.insert(pin, output);
        }
        Ok(Self { pins: claimed })
    }
}

impl LedPins for RppalPins {
    fn set(&mut self, pin: u8, duty: f64) -> Result<(), LedError> {
        let output =
            self.pins.get_mut(&pin).ok_or_else(|| LedError::Pin { pin, reason: "not claimed at start".to_owned() })?;
        if duty <= 0.0 || duty >= 1.0 {
            output.clear_pwm().map_err(|err| pin_error(pin, &err))?;
            if duty <= 0.0 {
                output.set_low();
            } else {
                output.set_high();
            }
            Ok(())
        } else {
            output.set_pwm_frequency(PWM_HZ, duty).map_err(|err| pin_error(pin, &err))
        }
    }
}

fn pin_error(pin: u8, err: &rppal::gpio::Error) -> LedError {
    LedError::Pin { pin, reason: err.to_string() }
}
