//! Working over files instead of a camera: `classify` images, `eval` labelled faces.

pub mod annotate;
pub mod classify_files;
pub mod eval;
pub mod fer;
pub mod files;
pub mod frames;
pub mod limits;
pub mod metrics;
pub mod outputs;
