//! Loading ONNX models with tract: one place for file errors and metadata access.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use tract_onnx::prelude::*;

/// A model that could not be used; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file is missing, unreadable, not ONNX, or uses operators tract lacks: check the path
    /// (`--models`, `--emotion-model`) or re-export the model with `tools/`.
    #[error("cannot load model {path}: {cause:#}")]
    Load { path: PathBuf, cause: anyhow::Error },
    /// The model loaded but its inputs, outputs or metadata are not what this program expects.
    #[error("model {path} is not usable by emotion-pi: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    /// Running the model failed (should not happen with a validated model and input).
    #[error("inference with {path} failed: {cause:#}")]
    Run { path: PathBuf, cause: anyhow::Error },
}

/// A parsed ONNX model before its input shape is fixed, with its `metadata_props`.
pub struct LoadedOnnx {
    pub path: PathBuf,
    pub model: InferenceModel,
    pub metadata: HashMap<String, String>,
}

impl LoadedOnnx {
    /// Parses `path`; `metadata` holds the ONNX `metadata_props` entries.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let load_error = |cause: anyhow::Error| ModelError::Load { path: path.to_owned(), cause };
        if !path.is_file() {
            return Err(load_error(anyhow::anyhow!("no such file")));
        }
        // Intermediate shape annotations are ignored: onnxruntime's quantizer writes them with a
        // symbolic batch that would clash with the concrete input shapes given at load.
        let model = tract_onnx::onnx().with_ignore_value_info(true).model_for_path(path).map_err(load_error)?;
        let prefix = "onnx.metadata_props.";
        let metadata = model
            .properties
            .iter()
            .filter_map(|(key, value)| {
                let name = key.strip_prefix(prefix)?;
                let text = value.try_as_plain_ram().ok()?.to_scalar::<String>().ok()?;
                Some((name.to_owned(), text.clone()))
            })
            .collect();
        Ok(Self { path: path.to_owned(), model, metadata })
    }

    /// Fixes the first input to the concrete `shape` and optimises the model for repeated runs;
    /// this is where tract picks its kernels for the CPU it runs on.
    ///
    /// Shapes are concrete on purpose: with a symbolic batch dimension tract 0.23 cannot
    /// specialise the convolutions and runs the emotion model several times slower.
    pub fn runnable(&self, shape: &[usize], layout: ConvLayout) -> Result<Arc<TypedRunnableModel>, ModelError> {
        let load_error = |cause: anyhow::Error| ModelError::Load { path: self.path.clone(), cause };
        let mut typed = self
            .model
            .clone()
            .with_input_fact(0, f32::fact(shape).into())
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .map_err(load_error)?;
        if layout == ConvLayout::ChannelsLast {
            let transform = tract_onnx::tract_core::transform::get_transform("conv_nhwc")
                .map_err(load_error)?
                .ok_or_else(|| load_error(anyhow::anyhow!("this tract has no conv_nhwc transform")))?;
            typed.transform(&*transform).map_err(load_error)?;
        }
        typed.into_optimized().and_then(|m| m.into_runnable()).map_err(load_error)
    }
}

/// The memory layout tract runs a model's convolutions in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvLayout {
    /// As the ONNX file has them (NCHW).
    AsExported,
    /// Channels last (tract's `conv_nhwc` transform). Depthwise convolutions then run over
    /// contiguous channels: tract 0.23.9's NCHW depthwise kernel vectorises only stride-1
    /// rows in runs of 8 and goes scalar on the 24-, 12- and 6-wide rows of the emotion
    /// MobileNet, while the channels-last loop vectorises (a NEON kernel on aarch64).
    /// BlazeFace's wide early maps do not gain from it, so the detector stays as exported;
    /// `emotion-pi bench` shows the cost of each model.
    ChannelsLast,
}
