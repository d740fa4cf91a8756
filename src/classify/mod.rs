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

/// How the classifier scores each face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassifierSettings {
    /// Score each face together with its mirror image (the softmax of the two passes' mean
    /// logits): about 1.5 points more accurate on FER2013 for twice the classifier's work
    /// per face (the model card and the README have the figures).
    pub mirror: bool,
}

impl Default for ClassifierSettings {
    fn default() -> Self {
        Self { mirror: true }
    }
}

/// The graph's own `test_time` when it already averages each face with its mirror image
/// (models exported by earlier tools): the runtime then does not mirror again.
const MIRRORED_GRAPH: &str = "mirror-average";

/// The emotion model, optimised once at load for one face at a time, on the kernels
/// tract picks for the CPU.
///
/// A batch of faces runs face by face: channels-last, tract 0.23.9 optimises a
/// multi-image batch with extra layout moves and without the fused residual additions,
/// so one face at a time is the cheaper plan.
pub struct TractClassifier {
    plan: Arc<TypedRunnableModel>,
    metadata: ClassifierMetadata,
    /// Whether this runtime runs each face's mirror image too.
    mirror: bool,
    path: PathBuf,
}

impl TractClassifier {
    /// Loads `path`, reading preprocessing and class names from its metadata.
    pub fn load(path: &Path, settings: ClassifierSettings) -> Result<Self, ModelError> {
        let loaded = LoadedOnnx::read(path)?;
        let metadata = ClassifierMetadata::from_props(&loaded.metadata, path)?;
        let side = metadata.input_size as usize;
        let plan = loaded.runnable(&[1, 1, side, side], ConvLayout::ChannelsLast)?;
        let mirror = settings.mirror && metadata.test_time != MIRRORED_GRAPH;
        let classifier = Self { plan, metadata, mirror, path: path.to_owned() };
        // One run at load time turns a class-count mismatch into a load error, not a per-face one.
        let probe = classifier.run_face(&vec![0.0; side * side])?;
        if probe.len() != classifier.metadata.class_names.len() {
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

    /// How each face is scored, for reports: `mirror-average` (with its mirror image, by the
    /// graph or by this runtime) or `single`.
    pub fn scoring(&self) -> &'static str {
        if self.mirror || self.metadata.test_time == MIRRORED_GRAPH {
            MIRRORED_GRAPH
        } else {
            "single"
        }
    }

    /// How many times the graph runs per face: 2 when this runtime adds the mirror image.
    pub fn graph_runs_per_face(&self) -> usize {
        if self.mirror {
            2
        } else {
            1
        }
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
        let mut emotions = Vec::with_capacity(count);
        let mut mirrored = vec![0f32; if self.mirror { len } else { 0 }];
        for face in batch.chunks_exact(len) {
            let mut probabilities = self.run_face(face)?;
            if self.mirror {
                for (row, flipped) in face.chunks_exact(side).zip(mirrored.chunks_exact_mut(side)) {
                    flipped.copy_from_slice(row);
                    flipped.reverse();
                }
                let of_mirror = self.run_face(&mirrored)?;
                if of_mirror.len() != probabilities.len() {
                    return Err(self.unsupported("the mirror image gave a different number of classes".to_owned()));
                }
                mean_logit_probabilities(&mut probabilities, &of_mirror);
            }
            emotions.push(Emotion { probabilities });
        }
        Ok(emotions)
    }

    /// The model's probabilities for one normalised face.
    fn run_face(&self, face: &[f32]) -> Result<Vec<f32>, ModelError> {
        let side = self.metadata.input_size as usize;
        let run_error = |cause: anyhow::Error| ModelError::Run { path: self.path.clone(), cause };
        let input = Tensor::from_shape(&[1, 1, side, side], face).map_err(run_error)?;
        let outputs = self.plan.run(tvec!(input.into())).map_err(run_error)?;
        let view = outputs[0].try_as_plain_ram().map_err(run_error)?;
        let probabilities = view.as_slice::<f32>().map_err(run_error)?;
        if probabilities.is_empty() {
            return Err(self.unsupported("empty output".to_owned()));
        }
        Ok(probabilities.to_vec())
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

/// Turns `probabilities` into the softmax of the mean of its logits and `other`'s, given only
/// the two softmaxes: softmax((a + b) / 2) is proportional to sqrt(softmax(a) * softmax(b)).
/// `tools/` (`evaluate --mirror`) averages the same way.
fn mean_logit_probabilities(probabilities: &mut [f32], other: &[f32]) {
    let geometric: Vec<f64> =
        probabilities.iter().zip(other).map(|(&p, &q)| (f64::from(p) * f64::from(q)).sqrt()).collect();
    let total: f64 = geometric.iter().sum();
    if total > 0.0 {
        for (p, g) in probabilities.iter_mut().zip(geometric) {
            *p = (g / total) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn softmax(logits: &[f64]) -> Vec<f64> {
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        exps.iter().map(|e| e / total).collect()
    }

    #[test]
    fn mirror_average_is_the_softmax_of_the_mean_logits() {
        let a = [2.0, -1.0, 0.5, 3.0, -4.0, 0.0, 1.0];
        let b = [-0.5, 1.5, 0.0, 2.0, -2.0, 4.0, -1.0];
        let mean: Vec<f64> = a.iter().zip(&b).map(|(x, y)| (x + y) / 2.0).collect();
        let expected = softmax(&mean);
        let mut probabilities: Vec<f32> = softmax(&a).iter().map(|&p| p as f32).collect();
        let other: Vec<f32> = softmax(&b).iter().map(|&p| p as f32).collect();
        mean_logit_probabilities(&mut probabilities, &other);
        for (got, want) in probabilities.iter().zip(&expected) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{probabilities:?} vs {expected:?}");
        }
    }
}
