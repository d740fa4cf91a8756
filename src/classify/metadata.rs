//! The classifier's preprocessing contract, read from the ONNX `metadata_props`.
//!
//! `tools/emotion_tools/export.py` writes these keys, so the runtime never
//! duplicates the training normalisation as constants.

use std::collections::HashMap;
use std::path::Path;

use super::align::{CropSettings, CROP_MARGIN_RANGE, CROP_OFFSET_RANGE};
use crate::model::ModelError;

const PREFIX: &str = "emotion_pi.";

/// Input size, normalisation and class names of an emotion model.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierMetadata {
    /// Side of the square grayscale input, in pixels.
    pub input_size: u32,
    /// Model input = (pixel × `pixel_scale` − `mean`) / `std`, pixel 0..255.
    pub pixel_scale: f32,
    pub mean: f32,
    pub std: f32,
    /// Output order.
    pub class_names: Vec<String>,
    /// How the weights are stored (`float32`, `int8 (...)`), for reports.
    pub precision: String,
    /// How the graph scores a face, for reports: `single`, or `mirror-average` (the logits of
    /// the face and of its mirror image averaged: twice the compute per face).
    pub test_time: String,
    /// The face crop that reproduces the framing of the training faces (`crop_margin`,
    /// `crop_offset_y`, `crop_upright`); each key a model lacks keeps [`CropSettings::default`].
    pub crop: CropSettings,
}

impl ClassifierMetadata {
    /// Reads and validates the `emotion_pi.*` entries; an error names the missing or bad key.
    pub fn from_props(props: &HashMap<String, String>, path: &Path) -> Result<Self, ModelError> {
        let unsupported = |reason: String| ModelError::Unsupported { path: path.to_owned(), reason };
        let get = |key: &str| {
            props.get(&format!("{PREFIX}{key}")).ok_or_else(|| {
                unsupported(format!(
                    "metadata key {PREFIX}{key} missing; export the model with tools/ (python -m emotion_tools export)"
                ))
            })
        };
        let number = |key: &str| -> Result<f32, ModelError> {
            let text = get(key)?;
            text.trim()
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| unsupported(format!("metadata {PREFIX}{key} = {text:?} is not a number")))
        };
        let input_size = get("input_size")?
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&s| (8..=1024).contains(&s))
            .ok_or_else(|| unsupported(format!("metadata {PREFIX}input_size is not a size in 8..=1024")))?;
        let color = get("color")?;
        if color != "gray" {
            return Err(unsupported(format!("metadata {PREFIX}color = {color:?}; only gray models are supported")));
        }
        let output = get("output")?;
        if output != "probabilities" {
            return Err(unsupported(format!("metadata {PREFIX}output = {output:?}; expected probabilities")));
        }
        let std = number("std")?;
        if std <= 0.0 {
            return Err(unsupported(format!("metadata {PREFIX}std must be positive")));
        }
        let class_names: Vec<String> = get("class_names")?.split(',').map(|s| s.trim().to_owned()).collect();
        if class_names.len() < 2 || class_names.iter().any(String::is_empty) {
            return Err(unsupported(format!("metadata {PREFIX}class_names needs two or more non-empty names")));
        }
        let default_crop = CropSettings::default();
        let optional_number = |key: &str, range: std::ops::RangeInclusive<f32>, default: f32| match props
            .get(&format!("{PREFIX}{key}"))
        {
            None => Ok(default),
            Some(_) => number(key).and_then(|v| {
                if range.contains(&v) {
                    Ok(v)
                } else {
                    Err(unsupported(format!(
                        "metadata {PREFIX}{key} = {v} is outside {}..{}",
                        range.start(),
                        range.end()
                    )))
                }
            }),
        };
        let upright = match props.get(&format!("{PREFIX}crop_upright")).map(|v| v.trim()) {
            None => default_crop.upright,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(unsupported(format!("metadata {PREFIX}crop_upright = {other:?}; expected true or false")))
            }
        };
        let crop = CropSettings {
            margin: optional_number("crop_margin", CROP_MARGIN_RANGE, default_crop.margin)?,
            offset_y: optional_number("crop_offset_y", CROP_OFFSET_RANGE, default_crop.offset_y)?,
            upright,
        };
        Ok(Self {
            crop,
            input_size,
            pixel_scale: number("pixel_scale")?,
            mean: number("mean")?,
            std,
            class_names,
            precision: props.get(&format!("{PREFIX}precision")).cloned().unwrap_or_else(|| "unknown".into()),
            test_time: props.get(&format!("{PREFIX}test_time")).cloned().unwrap_or_else(|| "single".into()),
        })
    }

    /// The per-pixel affine normalisation as `value × scale + offset`.
    pub fn normalize(&self) -> crate::resample::Normalize {
        crate::resample::Normalize { scale: self.pixel_scale / self.std, offset: -self.mean / self.std }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string())).collect()
    }

    fn complete() -> Vec<(&'static str, &'static str)> {
        vec![
            ("input_size", "48"),
            ("color", "gray"),
            ("output", "probabilities"),
            ("pixel_scale", "0.00392156862745098"),
            ("mean", "0.5"),
            ("std", "0.25"),
            ("class_names", "angry,happy"),
        ]
    }

    #[test]
    fn reads_complete_metadata() {
        let meta = ClassifierMetadata::from_props(&props(&complete()), Path::new("m.onnx")).expect("valid");
        assert_eq!(meta.input_size, 48);
        assert_eq!(meta.class_names, vec!["angry", "happy"]);
        // Models exported before the key existed score each face once.
        assert_eq!(meta.test_time, "single");
        let mut pairs = complete();
        pairs.push(("test_time", "mirror-average"));
        let mirrored = ClassifierMetadata::from_props(&props(&pairs), Path::new("m.onnx")).expect("valid");
        assert_eq!(mirrored.test_time, "mirror-average");
        let n = meta.normalize();
        // pixel 255 -> (1.0 - 0.5) / 0.25 = 2
        assert!((255.0 * n.scale + n.offset - 2.0).abs() < 1e-5);
    }

    #[test]
    fn missing_and_bad_keys_are_named() {
        let mut pairs = complete();
        pairs.retain(|(k, _)| *k != "mean");
        let err = ClassifierMetadata::from_props(&props(&pairs), Path::new("m.onnx")).unwrap_err().to_string();
        assert!(err.contains("m.onnx") && err.contains("emotion_pi.mean missing"), "{err}");

        let mut pairs = complete();
        pairs[5] = ("std", "zero");
        let err = ClassifierMetadata::from_props(&props(&pairs), Path::new("m.onnx")).unwrap_err().to_string();
        assert!(err.contains("emotion_pi.std = \"zero\" is not a number"), "{err}");
    }

    #[test]
    fn crop_geometry_is_read_and_a_model_without_it_crops_as_before() {
        let before = ClassifierMetadata::from_props(&props(&complete()), Path::new("m.onnx")).expect("valid");
        assert_eq!(before.crop, CropSettings { margin: 0.1, offset_y: 0.0, upright: true });
        let mut pairs = complete();
        pairs.extend([("crop_margin", "0.25"), ("crop_offset_y", "-0.05"), ("crop_upright", "false")]);
        let calibrated = ClassifierMetadata::from_props(&props(&pairs), Path::new("m.onnx")).expect("valid");
        assert_eq!(calibrated.crop, CropSettings { margin: 0.25, offset_y: -0.05, upright: false });

        for (key, value, message) in [
            ("crop_margin", "3", "emotion_pi.crop_margin = 3 is outside -0.5..2"),
            ("crop_offset_y", "down", "emotion_pi.crop_offset_y = \"down\" is not a number"),
            ("crop_upright", "yes", "emotion_pi.crop_upright = \"yes\"; expected true or false"),
        ] {
            let mut pairs = complete();
            pairs.push((key, value));
            let err = ClassifierMetadata::from_props(&props(&pairs), Path::new("m.onnx")).unwrap_err().to_string();
            assert!(err.contains("m.onnx") && err.contains(message), "{err}");
        }
    }
}
