//! Loading ONNX models with tract: one place for file errors and metadata access.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tract_onnx::data_resolver::FopenDataResolver;
use tract_onnx::pb;
use tract_onnx::prelude::*;

mod kernels;
mod planar;

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
    /// The model's first step turned its channels-last input channels-first and was taken
    /// out: it now takes channels-first input (see `take_channels_first_input`).
    pub input_made_channels_first: bool,
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
        let onnx = tract_onnx::onnx().with_ignore_value_info(true);
        let mut proto = onnx.proto_model_for_path(path).map_err(load_error)?;
        let mut input_made_channels_first = false;
        if let Some(graph) = proto.graph.as_mut() {
            fold_constant_dequantization(graph).map_err(load_error)?;
            input_made_channels_first = take_channels_first_input(graph);
        }
        let model = onnx.model_for_proto_model(&proto).map_err(load_error)?;
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
        Ok(Self { path: path.to_owned(), model, metadata, input_made_channels_first })
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
            .and_then(|mut m| {
                declutter(&mut m)?;
                Ok(m)
            })
            .map_err(load_error)?;
        if layout == ConvLayout::ChannelsLast {
            let transform = tract_onnx::tract_core::transform::get_transform("conv_nhwc")
                .map_err(load_error)?
                .ok_or_else(|| load_error(anyhow::anyhow!("this tract has no conv_nhwc transform")))?;
            typed.transform(&*transform).map_err(load_error)?;
            // Here ChangeAxes earns its cost: it cancels the transposes the transform put
            // around each convolution.
            typed.declutter().map_err(load_error)?;
        }
        planar::use_planar_ops(&mut typed).map_err(load_error)?;
        // Not `into_optimized`: it declutters again, a full round of passes that changes
        // nothing on a decluttered model and costs a good part of the load on a Pi.
        typed.optimize().map_err(load_error)?;
        typed.into_runnable().map_err(load_error)
    }
}

/// tract's declutter passes, without `ChangeAxes`. That pass moves axis changes (transposes,
/// reshapes) through the graph until they cancel; on the shipped models what it saves per
/// frame is small next to what it costs at load on a Pi (README, "Speed on a Pi"). The
/// channels-last transform still runs it, see `runnable`. If a tract release names the pass
/// differently, nothing is left out and the load is only slower; a test watches for that.
fn declutter(model: &mut TypedModel) -> TractResult<()> {
    declutter_passes().optimize(model)
}

fn declutter_passes() -> tract_onnx::tract_core::optim::Optimizer {
    let mut optimizer = tract_onnx::tract_core::optim::Optimizer::declutter();
    optimizer.passes.retain(|pass| !format!("{pass:?}").starts_with("ChangeAxes"));
    optimizer
}

/// Takes out a graph's first step when all it does is turn the only input from channels-last
/// (NHWC) to channels-first (NCHW), as in BlazeFace's converted ONNX, and declares the input
/// channels-first instead. The caller then writes its input channels-first, which costs it
/// no more than channels-last, and the model no longer moves every input value at run time.
/// Returns whether it did.
fn take_channels_first_input(graph: &mut pb::GraphProto) -> bool {
    const TO_CHANNELS_FIRST: [i64; 4] = [0, 3, 1, 2];
    let [input] = graph.input.as_slice() else { return false };
    let name = input.name.clone();
    let consumers: Vec<usize> =
        graph.node.iter().enumerate().filter(|(_, n)| n.input.contains(&name)).map(|(i, _)| i).collect();
    let [index] = consumers.as_slice() else { return false };
    let node = &graph.node[*index];
    let is_transpose = node.op_type == "Transpose"
        && node.attribute.iter().any(|a| a.name == "perm" && a.ints == TO_CHANNELS_FIRST)
        && node.input.len() == 1;
    let [transposed] = node.output.as_slice() else { return false };
    if !is_transpose || graph.output.iter().any(|o| &o.name == transposed) {
        return false;
    }
    let dims = graph.input[0]
        .r#type
        .as_mut()
        .and_then(|t| t.value.as_mut())
        .and_then(|pb::type_proto::Value::TensorType(tensor)| tensor.shape.as_mut())
        .map(|shape| &mut shape.dim);
    let Some(dims) = dims.filter(|d| d.len() == 4) else { return false };
    let transposed = transposed.clone();
    let [n, h, w, c] = [0, 1, 2, 3].map(|i| dims[i].clone());
    *dims = vec![n, c, h, w];
    graph.node.remove(*index);
    for input in graph.node.iter_mut().flat_map(|n| n.input.iter_mut()) {
        if *input == transposed {
            *input = name.clone();
        }
    }
    true
}

/// Replaces every `DequantizeLinear` of constant int8 or uint8 weights by the float weights
/// it computes, `(x - zero_point) * scale` per the ONNX definition, in the order tract's own
/// expansion computes them, so the model is the same to the last bit. tract evaluates such
/// constant subgraphs while it analyses the model, through its generic broadcasting
/// arithmetic, at hundreds of instructions per weight: most of the emotion model's load.
fn fold_constant_dequantization(graph: &mut pb::GraphProto) -> anyhow::Result<()> {
    let initializers: HashMap<String, usize> =
        graph.initializer.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    let mut folded = Vec::new();
    for (index, node) in graph.node.iter().enumerate() {
        if node.op_type != "DequantizeLinear" || !(node.domain.is_empty() || node.domain == "ai.onnx") {
            continue;
        }
        let constant_inputs: Option<Vec<&pb::TensorProto>> =
            node.input.iter().map(|name| initializers.get(name).map(|&i| &graph.initializer[i])).collect();
        let (Some(inputs), [output]) = (constant_inputs, node.output.as_slice()) else { continue };
        let blocked = node.attribute.iter().any(|a| a.name == "block_size" && a.i != 0);
        let axis = node.attribute.iter().find(|a| a.name == "axis").map_or(1, |a| a.i);
        if blocked || !(2..=3).contains(&inputs.len()) {
            continue;
        }
        let load = |t: &pb::TensorProto| {
            tract_onnx::tensor::load_tensor(&FopenDataResolver, t, None)
                .with_context(|| format!("initializer {} of {}", t.name, node.name))
        };
        let weights = load(inputs[0])?;
        let scale = load(inputs[1])?;
        let zero_point = inputs.get(2).map(|t| load(t)).transpose()?;
        let Some(values) = dequantize(&weights, &scale, zero_point.as_ref(), axis)? else { continue };
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        folded.push((
            index,
            pb::TensorProto {
                name: output.clone(),
                dims: inputs[0].dims.clone(),
                data_type: pb::tensor_proto::DataType::Float as i32,
                raw_data: bytes,
                ..Default::default()
            },
        ));
    }
    for (index, tensor) in folded.into_iter().rev() {
        graph.node.remove(index);
        graph.initializer.push(tensor);
    }
    // The int8 weights, scales and zero points nothing reads any more.
    let used: HashSet<&String> =
        graph.node.iter().flat_map(|n| &n.input).chain(graph.output.iter().map(|o| &o.name)).collect();
    let unused: Vec<usize> =
        graph.initializer.iter().enumerate().filter(|(_, t)| !used.contains(&t.name)).map(|(i, _)| i).collect();
    for index in unused.into_iter().rev() {
        graph.initializer.remove(index);
    }
    Ok(())
}

/// `(x - zero_point) * scale` with the scale and zero point per tensor or per slice along
/// `axis`; `None` for a type or layout left to tract.
fn dequantize(x: &Tensor, scale: &Tensor, zero_point: Option<&Tensor>, axis: i64) -> anyhow::Result<Option<Vec<f32>>> {
    let as_f32 = |t: &Tensor| -> anyhow::Result<Option<Vec<f32>>> {
        let plain = t.try_as_plain_ram()?;
        Ok(match t.datum_type() {
            DatumType::I8 => Some(plain.as_slice::<i8>()?.iter().map(|&v| f32::from(v)).collect()),
            DatumType::U8 => Some(plain.as_slice::<u8>()?.iter().map(|&v| f32::from(v)).collect()),
            _ => None,
        })
    };
    let Some(values) = as_f32(x)? else { return Ok(None) };
    if scale.datum_type() != DatumType::F32 {
        return Ok(None);
    }
    let scales = scale.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    let zero_points = match zero_point {
        Some(zp) if zp.datum_type() != x.datum_type() => return Ok(None),
        Some(zp) => match as_f32(zp)? {
            Some(zp) => zp,
            None => return Ok(None),
        },
        None => vec![0.0],
    };
    let shape = x.shape();
    let axis = if axis < 0 { axis + shape.len() as i64 } else { axis };
    let per_slice = scales.len() > 1 || zero_points.len() > 1;
    let (channels, inner) = match usize::try_from(axis).ok().filter(|&a| a < shape.len()) {
        Some(a) if per_slice => (shape[a], shape[a + 1..].iter().product::<usize>()),
        _ if per_slice => return Ok(None),
        _ => (1, values.len()),
    };
    let param =
        |params: &[f32], channel: usize| if params.len() == 1 { Some(params[0]) } else { params.get(channel).copied() };
    if (scales.len() != 1 && scales.len() != channels) || (zero_points.len() != 1 && zero_points.len() != channels) {
        return Ok(None);
    }
    let mut out = values;
    for (slice, channel) in out.chunks_mut(inner.max(1)).zip((0..channels.max(1)).cycle()) {
        let (Some(s), Some(z)) = (param(&scales, channel), param(&zero_points, channel)) else { return Ok(None) };
        for v in slice {
            *v = (*v - z) * s;
        }
    }
    Ok(Some(out))
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
    /// BlazeFace stays as exported: its wide maps run faster in this crate's planar ops
    /// (`planar.rs`) than channels-last; `emotion-pi bench` shows the cost of each model.
    ChannelsLast,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declutter_leaves_out_change_axes_and_nothing_else() {
        let all = tract_onnx::tract_core::optim::Optimizer::declutter().passes;
        let ours = declutter_passes().passes;
        let names = |passes: &[Box<dyn tract_onnx::tract_core::optim::TypedPass>]| {
            passes.iter().map(|pass| format!("{pass:?}")).collect::<Vec<_>>()
        };
        let dropped: Vec<String> = names(&all).into_iter().filter(|name| !names(&ours).contains(name)).collect();
        assert_eq!(ours.len() + 1, all.len(), "{:?}", names(&ours));
        assert!(dropped.len() == 1 && dropped[0].starts_with("ChangeAxes"), "{dropped:?}");
    }

    #[test]
    fn dequantize_per_output_channel_and_per_tensor() {
        // Two output channels of 2x1 weights, int8, each with its own scale and zero point.
        let x = Tensor::from_shape(&[2, 2, 1], &[-128i8, 127, 3, -3]).unwrap();
        let scale = Tensor::from_shape(&[2], &[0.5f32, 0.25]).unwrap();
        let zero_point = Tensor::from_shape(&[2], &[-1i8, 2]).unwrap();
        let values = dequantize(&x, &scale, Some(&zero_point), 0).unwrap().unwrap();
        assert_eq!(values, vec![(-128.0 + 1.0) * 0.5, (127.0 + 1.0) * 0.5, (3.0 - 2.0) * 0.25, (-3.0 - 2.0) * 0.25]);

        let x = Tensor::from_shape(&[3], &[0u8, 128, 255]).unwrap();
        let scale = Tensor::from_shape(&[], &[0.1f32]).unwrap();
        let zero_point = Tensor::from_shape(&[], &[128u8]).unwrap();
        let values = dequantize(&x, &scale, Some(&zero_point), 1).unwrap().unwrap();
        assert_eq!(values, vec![-128.0 * 0.1f32, 0.0, 127.0 * 0.1f32]);
        assert_eq!(dequantize(&x, &scale, None, 1).unwrap().unwrap(), vec![0.0, 128.0 * 0.1f32, 255.0 * 0.1f32]);
    }

    #[test]
    fn dequantize_leaves_what_it_does_not_know_to_tract() {
        let x = Tensor::from_shape(&[2, 2], &[1i8, 2, 3, 4]).unwrap();
        // Three scales for two channels, a zero point of another type, float weights.
        let three = Tensor::from_shape(&[3], &[1f32, 2.0, 3.0]).unwrap();
        assert_eq!(dequantize(&x, &three, None, 0).unwrap(), None);
        let one = Tensor::from_shape(&[], &[1f32]).unwrap();
        let unsigned = Tensor::from_shape(&[], &[0u8]).unwrap();
        assert_eq!(dequantize(&x, &one, Some(&unsigned), 0).unwrap(), None);
        let floats = Tensor::from_shape(&[2], &[1f32, 2.0]).unwrap();
        assert_eq!(dequantize(&floats, &one, None, 0).unwrap(), None);
    }

    /// A graph `input [1,4,5,3] → Transpose(perm) → Relu → output`, the input declared with
    /// the given dims.
    fn transposing_graph(perm: &[i64]) -> pb::GraphProto {
        let dim = |v: i64| pb::tensor_shape_proto::Dimension {
            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)),
            ..Default::default()
        };
        let tensor = pb::type_proto::Tensor {
            elem_type: 1,
            shape: Some(pb::TensorShapeProto { dim: [1, 4, 5, 3].map(dim).to_vec() }),
        };
        let value = |name: &str| pb::ValueInfoProto {
            name: name.to_owned(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(tensor.clone())),
                ..Default::default()
            }),
            ..Default::default()
        };
        let node = |op: &str, input: &str, output: &str| pb::NodeProto {
            op_type: op.to_owned(),
            input: vec![input.to_owned()],
            output: vec![output.to_owned()],
            ..Default::default()
        };
        let mut transpose = node("Transpose", "input", "nchw");
        transpose.attribute.push(pb::AttributeProto {
            name: "perm".to_owned(),
            ints: perm.to_vec(),
            ..Default::default()
        });
        pb::GraphProto {
            node: vec![transpose, node("Relu", "nchw", "output")],
            input: vec![value("input")],
            output: vec![value("output")],
            ..Default::default()
        }
    }

    fn input_dims(graph: &pb::GraphProto) -> Vec<i64> {
        let Some(pb::type_proto::Value::TensorType(tensor)) = graph.input[0].r#type.as_ref().unwrap().value.as_ref()
        else {
            panic!("not a tensor")
        };
        tensor
            .shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| match d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => v,
                _ => -1,
            })
            .collect()
    }

    #[test]
    fn a_leading_channels_first_transpose_is_taken_out_and_the_input_turned() {
        let mut graph = transposing_graph(&[0, 3, 1, 2]);
        assert!(take_channels_first_input(&mut graph));
        assert_eq!(graph.node.len(), 1);
        assert_eq!(
            (graph.node[0].op_type.as_str(), graph.node[0].input.as_slice()),
            ("Relu", &["input".to_owned()][..])
        );
        assert_eq!(input_dims(&graph), vec![1, 3, 4, 5]);
    }

    #[test]
    fn other_first_steps_stay() {
        let mut other_perm = transposing_graph(&[0, 2, 3, 1]);
        assert!(!take_channels_first_input(&mut other_perm));
        assert_eq!((other_perm.node.len(), input_dims(&other_perm)), (2, vec![1, 4, 5, 3]));
        // The input also read by a second node: it must keep its layout.
        let mut shared = transposing_graph(&[0, 3, 1, 2]);
        shared.node.push(pb::NodeProto {
            op_type: "Relu".to_owned(),
            input: vec!["input".to_owned()],
            output: vec!["second".to_owned()],
            ..Default::default()
        });
        assert!(!take_channels_first_input(&mut shared));
        assert_eq!(shared.node.len(), 3);
    }

    #[test]
    fn blazeface_takes_its_input_channels_first_once_loaded() {
        for model in ["face_detection_front_128x128_barracuda.onnx", "face_detection_back_256x256_barracuda.onnx"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/blazeface").join(model);
            let loaded = LoadedOnnx::read(&path).unwrap();
            assert!(loaded.input_made_channels_first, "{model}");
            let shape = loaded.model.input_fact(0).unwrap().shape.as_concrete_finite().unwrap().unwrap();
            assert_eq!((shape[1], shape[2], shape[3]), (3, shape[3], shape[2]), "{model}: {shape:?}");
        }
    }
}
