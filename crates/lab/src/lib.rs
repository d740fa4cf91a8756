//! emotion-pi's workbench: measurements a developer runs on the device's library, kept
//! out of the firmware binary.
//!
//! - [`live`]: the whole live loop on a looped image folder (sustained FPS, latency, memory).
//! - [`soak`]: the device for hours with camera, display and serial faults injected.
//! - [`profile`]: each model's optimised plan timed node by node.
//! - [`panel`]: the SPI bytes each screen size costs.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod cli;
pub mod live;
pub mod panel;
pub mod profile;
pub mod soak;
