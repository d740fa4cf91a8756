//! `emotion-pi eval`: accuracy of the emotion model on labelled, pre-cropped faces.

use rayon::prelude::*;

use super::fer::{LabelledFace, FER_CLASSES, FER_SIDE};
use super::metrics::{AccuracyReport, Confusion};
use crate::classify::TractClassifier;
use crate::model::ModelError;

const BATCH: usize = 64;

/// The report and what the model predicted for each face.
pub struct Evaluation {
    pub report: AccuracyReport,
    /// Predicted class index (the model's order) per face, in input order.
    pub predictions: Vec<usize>,
}

/// FER label index -> model output index, by name, so a model with another class order
/// still scores right; an error when the model lacks a FER2013 class or takes another size.
pub fn fer_to_model(classifier: &TractClassifier) -> Result<Vec<usize>, ModelError> {
    let names = &classifier.metadata().class_names;
    let to_model: Vec<usize> = FER_CLASSES
        .iter()
        .map(|fer| {
            names.iter().position(|n| n == fer).ok_or_else(|| ModelError::Unsupported {
                path: "emotion model".into(),
                reason: format!("its classes {names:?} lack FER2013's {fer:?}"),
            })
        })
        .collect::<Result<_, _>>()?;
    if classifier.metadata().input_size != FER_SIDE {
        return Err(ModelError::Unsupported {
            path: "emotion model".into(),
            reason: format!("input is {0}x{0}; FER2013 faces are 48x48", classifier.metadata().input_size),
        });
    }
    Ok(to_model)
}

/// Classifies every face and compares with its label; class names follow the model.
pub fn evaluate(
    classifier: &TractClassifier,
    faces: &[LabelledFace],
    progress: &indicatif::ProgressBar,
) -> Result<Evaluation, ModelError> {
    let names = &classifier.metadata().class_names;
    let to_model = fer_to_model(classifier)?;
    progress.set_length(faces.len() as u64);
    let predictions: Vec<Vec<usize>> = faces
        .par_chunks(BATCH)
        .map(|chunk| {
            let pixels: Vec<&[u8]> = chunk.iter().map(|f| f.pixels.as_slice()).collect();
            let emotions = classifier.classify_gray_faces(&pixels)?;
            progress.inc(chunk.len() as u64);
            Ok(emotions.iter().map(|e| e.top().0).collect())
        })
        .collect::<Result<_, ModelError>>()?;
    progress.finish_and_clear();
    let predictions: Vec<usize> = predictions.into_iter().flatten().collect();
    let mut confusion = Confusion::new(names.len());
    for (face, &predicted) in faces.iter().zip(&predictions) {
        confusion.add(to_model[face.label], predicted);
    }
    Ok(Evaluation { report: confusion.report(names), predictions })
}
