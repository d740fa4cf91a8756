//! emotion-pi: camera frames in, faces with emotions out.
//!
//! The modules follow the pipeline: [`capture`] → [`detect`] → [`classify`] →
//! [`track`] → [`output`], with [`analyze`] joining detection and classification,
//! [`live`] running them on a camera and [`bulk`] over files.

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
pub mod geometry;
pub mod live;
pub mod model;
pub mod output;
pub mod resample;
pub mod service;
pub mod threads;
pub mod track;
