//! Detection and classification together: a frame in, faces with emotions out.

use std::path::{Path, PathBuf};

use crate::classify::{crop_face_into, ClassifierSettings, CropOverrides, CropSettings, Emotion, TractClassifier};
use crate::detect::{DetectorRange, DetectorSettings, Face, TractDetector};
use crate::frame::Frame;
use crate::model::ModelError;

/// File name of the shipped emotion model inside the models folder.
pub const EMOTION_MODEL: &str = "emotion_mobilenet_int8.onnx";

/// Where the two models are.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPaths {
    pub detector: PathBuf,
    pub classifier: PathBuf,
}

impl ModelPaths {
    /// The shipped models inside `dir`, with the face detector of `range`.
    pub fn in_dir(dir: &Path, range: DetectorRange) -> Self {
        Self { detector: dir.join(range.model_file()), classifier: dir.join(EMOTION_MODEL) }
    }

    /// The models folder to use when none is given: `$EMOTION_PI_MODELS`, then `models/` in the
    /// working directory (a source checkout), then `../share/emotion-pi/models` beside the
    /// executable, then `/usr/share/emotion-pi/models` (the Debian package).
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("EMOTION_PI_MODELS") {
            return PathBuf::from(dir);
        }
        let mut candidates = vec![PathBuf::from("models")];
        if let Some(bin_dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) {
            candidates.push(bin_dir.join("../share/emotion-pi/models"));
        }
        candidates.push(PathBuf::from("/usr/share/emotion-pi/models"));
        let fallback = candidates[candidates.len() - 1].clone();
        let shipped = DetectorRange::default().model_file();
        candidates.into_iter().find(|dir| dir.join(shipped).is_file()).unwrap_or(fallback)
    }
}

/// One face and its emotion.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceAnalysis {
    pub face: Face,
    pub emotion: Emotion,
}

/// Detector settings, what the user changed of the model's face crop, and how the
/// classifier scores faces.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AnalyzerSettings {
    pub detector: DetectorSettings,
    pub crop: CropOverrides,
    pub classifier: ClassifierSettings,
}

/// Both models, loaded and optimised once. Shareable across threads.
pub struct Analyzer {
    detector: TractDetector,
    classifier: TractClassifier,
    crop: CropSettings,
}

impl Analyzer {
    /// Loads both models; the crop is the emotion model's (its metadata) with the overrides applied.
    pub fn load(paths: &ModelPaths, settings: AnalyzerSettings) -> Result<Self, ModelError> {
        // Detector first: tools/arm_cost.sh tells the two loads apart by the order the files open.
        let detector = TractDetector::load(&paths.detector, settings.detector)?;
        let classifier = TractClassifier::load(&paths.classifier, settings.classifier)?;
        let crop = settings.crop.apply(classifier.metadata().crop);
        Ok(Self { detector, classifier, crop })
    }

    pub fn detector(&self) -> &TractDetector {
        &self.detector
    }

    pub fn classifier(&self) -> &TractClassifier {
        &self.classifier
    }

    /// The face crop in effect.
    pub fn crop(&self) -> CropSettings {
        self.crop
    }

    /// Faces in `frame` with their emotions, best detection first.
    pub fn analyze(&self, frame: &Frame) -> Result<Vec<FaceAnalysis>, ModelError> {
        let faces = self.detector.detect(&frame.rgb)?;
        self.classify_faces(frame, faces)
    }

    /// The normalised classifier input for `faces`, back to back.
    pub fn crop_batch(&self, frame: &Frame, faces: &[Face]) -> Vec<f32> {
        self.crop_batch_with(frame, faces, &self.crop)
    }

    /// [`Self::crop_batch`] with another crop geometry, for measuring geometries against each other.
    pub fn crop_batch_with(&self, frame: &Frame, faces: &[Face], crop: &CropSettings) -> Vec<f32> {
        let len = self.classifier.face_len();
        let side = self.classifier.metadata().input_size;
        let normalize = self.classifier.metadata().normalize();
        let mut batch = vec![0f32; faces.len() * len];
        for (face, out) in faces.iter().zip(batch.chunks_exact_mut(len)) {
            crop_face_into(&frame.gray, face, crop, side, normalize, out);
        }
        batch
    }

    /// Classifies already-detected faces of `frame` in one batch.
    pub fn classify_faces(&self, frame: &Frame, faces: Vec<Face>) -> Result<Vec<FaceAnalysis>, ModelError> {
        let batch = self.crop_batch(frame, &faces);
        let emotions = self.classifier.classify_batch(&batch, faces.len())?;
        Ok(faces.into_iter().zip(emotions).map(|(face, emotion)| FaceAnalysis { face, emotion }).collect())
    }
}
