//! emotion-pi: camera frames in, faces with emotions out.
//!
//! The modules follow the pipeline: [`capture`] → [`detect`] → [`classify`] →
//! [`track`] → [`output`], with [`analyze`] joining detection and classification,
//! [`live`] running them on a camera, [`bulk`] over files and [`service`] under
//! systemd. [`worker`] is the thread shape the capture and output workers share.
//!
//! This crate holds what the device needs. Its workbench lives apart: `crates/lab`
//! (live-loop benchmark, soak with fault injection, per-node profiles, SPI traffic) and
//! `crates/doubles` (recording stand-ins for the panel bus).
//!
//! Outside tests the library may not `unwrap`, `expect` or `panic!`: every failure on
//! an input, device or I/O path is an error the caller reports (`.ci/run` runs clippy
//! with these lints as errors).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

// The pipeline, in order.
pub mod capture;
pub mod classify;
pub mod detect;
pub mod output;
pub mod track;

// Running it: on the camera, over files, as a service.
pub mod analyze;
pub mod bulk;
pub mod live;
pub mod service;

// Set-up and the commands a device owner runs.
pub mod bench;
pub mod cli;
pub mod config;
pub mod doctor;

// Shared pieces.
pub mod frame;
pub mod fs_safety;
pub mod geometry;
pub mod model;
pub mod report;
pub mod resample;
pub mod worker;
