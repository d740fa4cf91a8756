//! emotion-pi: camera frames in, faces with emotions out.
//!
//! The modules follow the pipeline: [`capture`] → [`detect`] → [`classify`] →
//! [`track`] → [`output`], with [`analyze`] joining detection and classification,
//! [`live`] running them on a camera and [`bulk`] over files.
//!
//! Outside tests the library may not `unwrap`, `expect` or `panic!`: every failure on
//! an input, device or I/O path is an error the caller reports (`.ci/run` runs clippy
//! with these lints as errors).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod analyze;
pub mod bench;
pub mod bulk;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod config;
pub mod detect;
pub mod doctor;
pub mod frame;
pub mod fs_safety;
pub mod geometry;
pub mod kernel_choice;
pub mod kernels;
pub mod live;
pub mod model;
pub mod output;
pub mod profile;
pub mod resample;
pub mod service;
pub mod threads;
pub mod track;
