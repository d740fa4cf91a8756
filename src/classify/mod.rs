//! Emotion classification of face crops with the int8 MobileNet run by tract.

mod align;
mod metadata;

pub use align::{crop_face_into, crop_map, CropOverrides, CropSettings, CROP_MARGIN_RANGE, CROP_OFFSET_RANGE};
pub use metadata::ClassifierMetadata;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
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

/// When the classifier also scores a face's mirror image (`classify.mirror`): averaging the
/// two is about 1.5 points more accurate on FER2013 than the face alone, for a second pass
/// of the model (the model card and the README have the figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(try_from = "MirrorValue")]
pub enum Mirror {
    /// Never: one pass per face.
    Off,
    /// Every face in every picture: two passes per face.
    Always,
    /// As `always` for still pictures and for faces new to the live loop; a face the live
    /// loop already tracks gets one pass per frame, alternately on the face and on its
    /// mirror image, and the tracker averages each with the other image's pass from the
    /// face's detection before. A face that holds still gets exactly the `always` result.
    #[default]
    Alternate,
}

impl Mirror {
    /// The images to score a face on. `tracked_turn` is, for a face the live loop already
    /// tracks, the frame's place among the frames detection runs on; `None` for a still
    /// picture or a new face.
    pub fn views(self, tracked_turn: Option<u64>) -> Views {
        match (self, tracked_turn) {
            (Self::Off, _) => Views::Face,
            (Self::Alternate, Some(turn)) if turn % 2 == 0 => Views::Face,
            (Self::Alternate, Some(_)) => Views::Mirror,
            (Self::Always | Self::Alternate, _) => Views::Both,
        }
    }
}

impl std::fmt::Display for Mirror {
    /// The mode as `classify.mirror` and `--mirror` spell it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::Always => "always",
            Self::Alternate => "alternate",
        })
    }
}

/// How `classify.mirror` may be written: a mode's name, or the flag it was before the
/// modes existed (`true` = `always`, `false` = `off`), so older config files still load.
#[derive(Deserialize)]
#[serde(untagged)]
enum MirrorValue {
    Flag(bool),
    Name(String),
}

impl TryFrom<MirrorValue> for Mirror {
    type Error = String;

    fn try_from(value: MirrorValue) -> Result<Self, Self::Error> {
        match value {
            MirrorValue::Flag(true) => Ok(Self::Always),
            MirrorValue::Flag(false) => Ok(Self::Off),
            MirrorValue::Name(name) => <Self as clap::ValueEnum>::from_str(&name, false).map_err(|_| {
                format!("`{name}` is not a mirror mode: off, always or alternate (true = always, false = off)")
            }),
        }
    }
}

/// How the classifier scores each face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassifierSettings {
    /// When each face is also scored on its mirror image.
    pub mirror: Mirror,
}

/// Which images of a face one classification scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Views {
    Face,
    Mirror,
    Both,
}

impl Views {
    /// How many times the graph runs to score them.
    pub fn passes(self) -> usize {
        match self {
            Self::Face | Self::Mirror => 1,
            Self::Both => 2,
        }
    }
}

/// A face's class probabilities from each image it was scored on.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewScores {
    Face(Vec<f32>),
    Mirror(Vec<f32>),
    Both { face: Vec<f32>, mirror: Vec<f32> },
}

impl ViewScores {
    /// The face's probabilities: the two images averaged ([`mirror_average`]) when both
    /// were scored, else the one image's.
    pub fn combined(&self) -> Vec<f32> {
        match self {
            Self::Face(scores) | Self::Mirror(scores) => scores.clone(),
            Self::Both { face, mirror } => mirror_average(face, mirror),
        }
    }

    /// Every probability list held, for checks.
    pub fn lists(&self) -> Vec<&[f32]> {
        match self {
            Self::Face(scores) | Self::Mirror(scores) => vec![scores],
            Self::Both { face, mirror } => vec![face, mirror],
        }
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
    /// When this runtime scores faces' mirror images; `Off` for a graph that averages them itself.
    mirror: Mirror,
    path: PathBuf,
}

impl TractClassifier {
    /// Loads `path`, reading preprocessing and class names from its metadata.
    pub fn load(path: &Path, settings: ClassifierSettings) -> Result<Self, ModelError> {
        let loaded = LoadedOnnx::read(path)?;
        let metadata = ClassifierMetadata::from_props(&loaded.metadata, path)?;
        let side = metadata.input_size as usize;
        let plan = loaded.runnable(&[1, 1, side, side], ConvLayout::ChannelsLast)?;
        let mirror = if metadata.test_time == MIRRORED_GRAPH { Mirror::Off } else { settings.mirror };
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

    /// When this runtime scores faces' mirror images.
    pub fn mirror(&self) -> Mirror {
        self.mirror
    }

    /// How each face of a still picture is scored, for reports: `mirror-average` (with its
    /// mirror image, by the graph or by this runtime) or `single`.
    pub fn scoring(&self) -> &'static str {
        if self.still_views() == Views::Both || self.metadata.test_time == MIRRORED_GRAPH {
            MIRRORED_GRAPH
        } else {
            "single"
        }
    }

    /// How many times the graph runs per face of a still picture: 2 when this runtime adds
    /// the mirror image.
    pub fn graph_runs_per_face(&self) -> usize {
        self.still_views().passes()
    }

    /// The images of a face in a still picture (or new to the live loop) that are scored.
    pub fn still_views(&self) -> Views {
        self.mirror.views(None)
    }

    /// Floats per face in the batch buffer (input side squared).
    pub fn face_len(&self) -> usize {
        (self.metadata.input_size * self.metadata.input_size) as usize
    }

    /// Classifies `count` normalised faces laid out back to back in `batch`, each scored as
    /// a still picture's ([`Self::still_views`]).
    pub fn classify_batch(&self, batch: &[f32], count: usize) -> Result<Vec<Emotion>, ModelError> {
        let scores = self.classify_views(batch, &vec![self.still_views(); count])?;
        Ok(scores.iter().map(|scores| Emotion { probabilities: scores.combined() }).collect())
    }

    /// Scores the normalised faces laid out back to back in `batch`, one per entry of
    /// `views`, each on the images its entry names.
    pub fn classify_views(&self, batch: &[f32], views: &[Views]) -> Result<Vec<ViewScores>, ModelError> {
        let side = self.metadata.input_size as usize;
        let len = self.face_len();
        if batch.len() != views.len() * len {
            return Err(self.unsupported(format!("{} values given for {} faces of {len}", batch.len(), views.len())));
        }
        // Allocated on the first mirror image: a frame of tracked faces may have none.
        let mut mirrored = Vec::new();
        let mut run_mirrored = |face: &[f32]| {
            mirrored.resize(len, 0.0);
            for (row, flipped) in face.chunks_exact(side).zip(mirrored.chunks_exact_mut(side)) {
                flipped.copy_from_slice(row);
                flipped.reverse();
            }
            self.run_face(&mirrored)
        };
        let mut scores = Vec::with_capacity(views.len());
        for (face, &view) in batch.chunks_exact(len).zip(views) {
            scores.push(match view {
                Views::Face => ViewScores::Face(self.run_face(face)?),
                Views::Mirror => ViewScores::Mirror(run_mirrored(face)?),
                Views::Both => {
                    let face_scores = self.run_face(face)?;
                    let mirror = run_mirrored(face)?;
                    if mirror.len() != face_scores.len() {
                        return Err(self.unsupported("the mirror image gave a different number of classes".to_owned()));
                    }
                    ViewScores::Both { face: face_scores, mirror }
                }
            });
        }
        Ok(scores)
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

/// The softmax of the mean logits of a face and its mirror image, given only the two
/// softmaxes: softmax((a + b) / 2) is proportional to sqrt(softmax(a) * softmax(b)).
/// `tools/` (`evaluate --mirror`) averages the same way.
pub fn mirror_average(face: &[f32], mirror: &[f32]) -> Vec<f32> {
    let geometric: Vec<f64> = face.iter().zip(mirror).map(|(&p, &q)| (f64::from(p) * f64::from(q)).sqrt()).collect();
    let total: f64 = geometric.iter().sum();
    if total > 0.0 {
        geometric.iter().map(|g| (g / total) as f32).collect()
    } else {
        face.to_vec()
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
    fn each_mirror_mode_picks_the_images_of_stills_new_and_tracked_faces() {
        // (mode, still picture or new face, tracked face on turns 0, 1, 2)
        let table = [
            (Mirror::Off, Views::Face, [Views::Face, Views::Face, Views::Face]),
            (Mirror::Always, Views::Both, [Views::Both, Views::Both, Views::Both]),
            (Mirror::Alternate, Views::Both, [Views::Face, Views::Mirror, Views::Face]),
        ];
        for (mode, still, tracked) in table {
            assert_eq!(mode.views(None), still, "{mode}");
            for (turn, views) in tracked.into_iter().enumerate() {
                assert_eq!(mode.views(Some(turn as u64)), views, "{mode}, turn {turn}");
            }
        }
        assert_eq!((Views::Face.passes(), Views::Mirror.passes(), Views::Both.passes()), (1, 1, 2));
    }

    #[test]
    fn scores_of_both_images_combine_to_their_mirror_average() {
        let (face, mirror) = (vec![0.7, 0.2, 0.1], vec![0.1, 0.6, 0.3]);
        // Normalised geometric means: sqrt(.07) = .2646, sqrt(.12) = .3464, sqrt(.03) = .1732.
        let total = 0.07f32.sqrt() + 0.12f32.sqrt() + 0.03f32.sqrt();
        let expected = [0.07f32.sqrt() / total, 0.12f32.sqrt() / total, 0.03f32.sqrt() / total];
        let combined = ViewScores::Both { face: face.clone(), mirror: mirror.clone() }.combined();
        for (got, want) in combined.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{combined:?}");
        }
        assert_eq!(ViewScores::Face(face.clone()).combined(), face);
        assert_eq!(ViewScores::Mirror(mirror.clone()).combined(), mirror);
    }

    #[test]
    fn mirror_average_is_the_softmax_of_the_mean_logits() {
        let a = [2.0, -1.0, 0.5, 3.0, -4.0, 0.0, 1.0];
        let b = [-0.5, 1.5, 0.0, 2.0, -2.0, 4.0, -1.0];
        let mean: Vec<f64> = a.iter().zip(&b).map(|(x, y)| (x + y) / 2.0).collect();
        let expected = softmax(&mean);
        let face: Vec<f32> = softmax(&a).iter().map(|&p| p as f32).collect();
        let mirror: Vec<f32> = softmax(&b).iter().map(|&p| p as f32).collect();
        let probabilities = mirror_average(&face, &mirror);
        for (got, want) in probabilities.iter().zip(&expected) {
            assert!((f64::from(*got) - want).abs() < 1e-6, "{probabilities:?} vs {expected:?}");
        }
    }
}
