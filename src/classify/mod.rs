//! Emotion classification of face crops with the int8 MobileNet run by tract.

mod align;
mod metadata;

pub use align::{crop_face_into, crop_map, CropOverrides, CropSettings, CROP_MARGIN_RANGE, CROP_OFFSET_RANGE};
pub use metadata::ClassifierMetadata;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::model::{ConvLayout, LoadedOnnx, ModelError};

/// Class probabilities for one face, in the model's class order.
#[derive(Debug, Clone, PartialEq)]
pub struct Emotion {
    pub probabilities: Vec<f32>,
}

impl Emotion {
    /// Index and probability of the most likely class.
    pub fn top(&self) -> (usize, f32) {
        self.probabilities.iter().copied().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, p)| {
            if p > best.1 {
                (i, p)
            } else {
                best
            }
        })
    }
}

/// The emotion model, optimised once at load for one face at a time, on the kernels
/// tract picks for the CPU.
///
/// A batch of faces runs face by face: channels-last, tract 0.23.9 optimises a
/// multi-image batch with extra layout moves and without the fused residual additions,
/// so one face at a time is the cheaper plan.
pub struct TractClassifier {
    plan: Arc<TypedRunnableModel>,
    metadata: ClassifierMetadata,
    path: PathBuf,
}

impl TractClassifier {
    /// Loads `path`, reading preprocessing and class names from its metadata.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let loaded = LoadedOnnx::read(path)?;
        let metadata = ClassifierMetadata::from_props(&loaded.metadata, path)?;
        let side = metadata.input_size as usize;
        let plan = loaded.runnable(&[1, 1, side, side], ConvLayout::ChannelsLast)?;
        let classifier = Self { plan, metadata, path: path.to_owned() };
        // One run at load time turns a class-count mismatch into a load error, not a per-face one.
        let probe = classifier.classify_batch(&vec![0.0; side * side], 1)?;
        if probe.len() != 1 || probe[0].probabilities.len() != classifier.metadata.class_names.len() {
            return Err(ModelError::Unsupported {
                path: path.to_owned(),
                reason: format!(
                    "output does not have {} classes as its metadata says",
                    classifier.metadata.class_names.len()
                ),
            });
        }
        Ok(classifier)
    }

    /// The optimised plan, for profiling.
    pub fn plan(&self) -> &Arc<TypedRunnableModel> {
        &self.plan
    }

    pub fn metadata(&self) -> &ClassifierMetadata {
        &self.metadata
    }

    /// Floats per face in the batch buffer (input side squared).
    pub fn face_len(&self) -> usize {
        (self.metadata.input_size * self.metadata.input_size) as usize
    }

    /// Classifies `count` normalised faces laid out back to back in `batch`.
    pub fn classify_batch(&self, batch: &[f32], count: usize) -> Result<Vec<Emotion>, ModelError> {
        let side = self.metadata.input_size as usize;
        let len = self.face_len();
        if batch.len() != count * len {
            return Err(self.unsupported(format!("{} values given for {count} faces of {len}", batch.len())));
        }
        let run_error = |cause: anyhow::Error| ModelError::Run { path: self.path.clone(), cause };
        let mut emotions = Vec::with_capacity(count);
        for face in batch.chunks_exact(len) {
            let input = Tensor::from_shape(&[1, 1, side, side], face).map_err(run_error)?;
            let outputs = self.plan.run(tvec!(input.into())).map_err(run_error)?;
            let view = outputs[0].try_as_plain_ram().map_err(run_error)?;
            let probabilities = view.as_slice::<f32>().map_err(run_error)?;
            if probabilities.is_empty() {
                return Err(self.unsupported("empty output".to_owned()));
            }
            emotions.push(Emotion { probabilities: probabilities.to_vec() });
        }
        Ok(emotions)
    }

    fn unsupported(&self, reason: String) -> ModelError {
        ModelError::Unsupported { path: self.path.clone(), reason }
    }

    /// Classifies already-cropped square grayscale faces (FER2013 style) of the model's input size.
    pub fn classify_gray_faces(&self, faces: &[&[u8]]) -> Result<Vec<Emotion>, ModelError> {
        let norm = self.metadata.normalize();
        let len = self.face_len();
        let mut batch = Vec::with_capacity(faces.len() * len);
        for face in faces {
            if face.len() != len {
                return Err(self.unsupported(format!("a face of {} pixels given to a model taking {len}", face.len())));
            }
            batch.extend(face.iter().map(|&p| p as f32 * norm.scale + norm.offset));
        }
        self.classify_batch(&batch, faces.len())
    }
}
