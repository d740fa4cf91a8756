//! Camera capture: getting frames off the sensor and into [`crate::frame::Frame`].

pub mod convert;
