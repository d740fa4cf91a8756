//! LEDs that show the main face's emotion: one LED per emotion, or one RGB LED in the
//! emotion's colour, brighter the more confident the classifier is. The mapping from
//! faces to pin levels is plain code over [`LedPins`], so it is tested with the
//! recording stand-in; `rppal_pins` drives the Pi's GPIO.

pub mod rppal_pins;

use std::collections::BTreeMap;

use crate::output::ui::emotion_rgb;
use crate::track::Track;

/// Duty cycles below this are not worth a PWM thread: the LED is simply off.
const OFF_BELOW: f64 = 0.02;

/// How the LEDs are wired.
#[derive(Debug, Clone, PartialEq)]
pub enum LedLayout {
    /// One LED per emotion: class index → GPIO line. Emotions without a pin have no LED.
    PerEmotion(BTreeMap<usize, u8>),
    /// One RGB LED: the red, green and blue GPIO lines; `common_anode` LEDs light when low.
    Rgb { pins: [u8; 3], common_anode: bool },
}

impl LedLayout {
    /// Every pin used, in a stable order.
    pub fn pins(&self) -> Vec<u8> {
        match self {
            LedLayout::PerEmotion(map) => map.values().copied().collect(),
            LedLayout::Rgb { pins, .. } => pins.to_vec(),
        }
    }

    /// Duty cycle (0 = off, 1 = fully on) of every pin for the main face's `label` and
    /// `confidence`, or all off without a face.
    pub fn levels(&self, main_face: Option<(usize, f32)>) -> Vec<(u8, f64)> {
        let brightness = |confidence: f32| f64::from(confidence.clamp(0.0, 1.0));
        match self {
            LedLayout::PerEmotion(map) => map
                .iter()
                .map(|(&class, &pin)| {
                    let level = match main_face {
                        Some((label, confidence)) if label == class => brightness(confidence),
                        _ => 0.0,
                    };
                    (pin, level)
                })
                .collect(),
            LedLayout::Rgb { pins, common_anode } => {
                let (r, g, b) = main_face.map_or((0, 0, 0), |(label, _)| emotion_rgb(label));
                let scale = main_face.map_or(0.0, |(_, confidence)| brightness(confidence));
                pins.iter()
                    .zip([r, g, b])
                    .map(|(&pin, channel)| {
                        let level = f64::from(channel) / 255.0 * scale;
                        (pin, if *common_anode { 1.0 - level } else { level })
                    })
                    .collect()
            }
        }
    }

    /// The level every pin has when the LEDs are dark.
    fn dark(&self) -> Vec<(u8, f64)> {
        self.levels(None)
    }
}

/// The face the LEDs show: the largest, i.e. the one nearest the camera.
pub fn main_face(tracks: &[Track]) -> Option<(usize, f32)> {
    tracks
        .iter()
        .max_by(|a, b| a.bbox().area().total_cmp(&b.bbox().area()))
        .map(|track| (track.label(), track.confidence()))
}

/// Why the LEDs cannot be driven.
#[derive(Debug, thiserror::Error)]
pub enum LedError {
    /// The GPIO peripheral cannot be opened: not a Raspberry Pi, or the user is not in
    /// group `gpio` (`emotion-pi doctor` says which).
    #[error("GPIO: {0} (is this a Raspberry Pi, and the user in group gpio?)")]
    Gpio(String),
    /// A pin cannot be claimed or set: in use by another program or driver, or not a GPIO.
    #[error("GPIO {pin}: {reason}")]
    Pin { pin: u8, reason: String },
}

/// GPIO outputs with PWM.
pub trait LedPins: Send {
    /// Sets `pin` to `duty` (0..=1): 0 and 1 are steady levels, anything between is PWM.
    fn set(&mut self, pin: u8, duty: f64) -> Result<(), LedError>;
}

/// The LEDs of the device: pin levels are only written when they change.
pub struct Leds {
    layout: LedLayout,
    pins: Box<dyn LedPins>,
    current: Vec<(u8, f64)>,
}

impl Leds {
    /// Takes `pins` and switches every LED off.
    pub fn new(layout: LedLayout, pins: Box<dyn LedPins>) -> Result<Self, LedError> {
        let mut leds = Self { current: Vec::new(), layout, pins };
        leds.apply(leds.layout.dark())?;
        Ok(leds)
    }

    /// Shows the main face of `tracks` (nothing when there is none).
    pub fn show(&mut self, tracks: &[Track]) -> Result<(), LedError> {
        self.apply(self.layout.levels(main_face(tracks)))
    }

    /// Switches every LED off (on exit).
    pub fn off(&mut self) -> Result<(), LedError> {
        self.apply(self.layout.dark())
    }

    fn apply(&mut self, levels: Vec<(u8, f64)>) -> Result<(), LedError> {
        let levels: Vec<(u8, f64)> = levels.into_iter().map(|(pin, duty)| (pin, quantise(duty))).collect();
        for (index, &(pin, duty)) in levels.iter().enumerate() {
            if self.current.get(index) != Some(&(pin, duty)) {
                self.pins.set(pin, duty)?;
            }
        }
        self.current = levels;
        Ok(())
    }
}

/// Levels in 1% steps, so confidence jitter does not rewrite the PWM every frame, with
/// very dim levels snapped to off and nearly full ones to on.
fn quantise(duty: f64) -> f64 {
    let duty = (duty.clamp(0.0, 1.0) * 100.0).round() / 100.0;
    if duty < OFF_BELOW {
        0.0
    } else if duty > 1.0 - OFF_BELOW {
        1.0
    } else {
        duty
    }
}

impl Drop for Leds {
    fn drop(&mut self) {
        if let Err(err) = self.off() {
            log::warn!("leds: cannot switch off: {err}");
        }
    }
}

#[cfg(test)]
mod tests;
