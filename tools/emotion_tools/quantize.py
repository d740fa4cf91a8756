"""Static int8 quantization of the exported float model with onnxruntime's quantizer.

Calibration uses training images only. Weights are int8 per output channel,
activations uint8 per tensor. The `--form` chooses the graph layout, because
tract executes the layouts very differently (see MODEL_CARD.md for numbers):

- `int8-weights` (the default): the `qdq` graph with only the weight
  DequantizeLinear nodes kept; activations are float. tract folds the constant
  weight dequantization at load, so it runs the float graph at float speed while
  the file stores int8 weights.
- `qlinear-pointwise`: 1x1 convolutions and the classifier become `QLinearConv`
  (QOperator format); depthwise 3x3 convolutions and residual adds stay float.
  Only standard ONNX operators, so tract loads it.
- `qlinear-all`: every convolution becomes `QLinearConv`.
- `qdq`: QuantizeLinear/DequantizeLinear pairs around float operators.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from .data import TRAINING, load
from .export import read_metadata, set_metadata, METADATA_PREFIX

FORMS = ("int8-weights", "qlinear-pointwise", "qlinear-all", "qdq")


class _Calibration(CalibrationDataReader):
    def __init__(self, batches: list[np.ndarray], input_name: str):
        self._batches = iter(batches)
        self._input_name = input_name

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {self._input_name: batch}


def calibration_batches(data_path: str, metadata: dict[str, str], count: int, seed: int, batch_size: int = 64) -> list[np.ndarray]:
    """`count` random training faces, preprocessed exactly as the runtime does."""
    images = load(data_path, (TRAINING,))[TRAINING].images
    rng = np.random.default_rng(seed)
    chosen = images[rng.permutation(len(images))[: min(count, len(images))]]
    scale, mean, std = (float(metadata[k]) for k in ("pixel_scale", "mean", "std"))
    x = ((chosen.astype(np.float32) * scale - mean) / std)[:, None, :, :].astype(np.float32)
    return [x[i : i + batch_size] for i in range(0, len(x), batch_size)]


def _depthwise_conv_names(model: onnx.ModelProto) -> list[str]:
    names = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if group > 1:
            names.append(node.name)
    return names


def _static_options(form: str) -> dict:
    """The `quantize_static` arguments that differ between forms."""
    if form == "int8-weights":
        return {
            "quant_format": QuantFormat.QDQ,
            # Gemm is safe here: only its weight DequantizeLinear survives, no QGemm is written.
            "op_types_to_quantize": ["Conv", "Clip", "MatMul", "Gemm"],
            # Activations end up float, so a float bias is exact and smaller than int32 values with a
            # scale and zero point per channel; with no int32 bias, weight scales need no widening for it.
            "extra_options": {"QuantizeBias": False, "QDQDisableWeightAdjustForInt32Bias": True},
        }
    return {
        "quant_format": QuantFormat.QDQ if form == "qdq" else QuantFormat.QOperator,
        # Clip (ReLU6) is listed so the quantizer folds it into the QLinearConv output range;
        # Gemm is not: its QOperator form is com.microsoft QGemm, which tract lacks.
        "op_types_to_quantize": ["Conv", "Clip", "MatMul"],
    }


def _precision(form: str, calibration_count: int) -> str:
    if form == "int8-weights":
        return "int8 (int8-weights, per-channel weights dequantized at load, float32 activations)"
    return f"int8 ({form}, per-channel weights, calibrated on {calibration_count} training images)"


def quantize(float_model: str | Path, data_path: str, out: str | Path, form: str = "int8-weights", calibration_count: int = 1000, seed: int = 0) -> Path:
    """Write the int8 model for `float_model` to `out` and return its path."""
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of {', '.join(FORMS)}")
    metadata = read_metadata(float_model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_model), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        input_name = model.graph.input[0].name
        exclude = _depthwise_conv_names(model) if form == "qlinear-pointwise" else []
        reader = _Calibration(calibration_batches(data_path, metadata, calibration_count, seed), input_name)
        quantize_static(
            str(prepared),
            str(out),
            reader,
            nodes_to_exclude=exclude,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            **_static_options(form),
        )
    quantized = onnx.load(str(out))
    if form == "int8-weights":
        keep_only_weight_quantization(quantized, onnx.load(str(float_model)))
    props = {METADATA_PREFIX + k: v for k, v in metadata.items()}
    props[METADATA_PREFIX + "precision"] = _precision(form, calibration_count)
    set_metadata(quantized, props)
    onnx.save(quantized, str(out))
    return out


def keep_only_weight_quantization(qdq: onnx.ModelProto, reference: onnx.ModelProto) -> None:
    """Rewrite the QDQ model `qdq` in place into `reference`'s float graph reading int8-stored weights.

    Activation QuantizeLinear/DequantizeLinear pairs are bypassed, the Clips the quantizer
    folded into activation ranges are put back where `reference` (the float model) has
    them, and what costs bytes without changing outputs is dropped: zero zero-points,
    unused initializers, value_info, long names and opset imports `reference` lacks.
    """
    graph = qdq.graph
    _bypass_activation_quantization(graph)
    _restore_clips(graph, reference.graph)
    _drop_zero_zero_points(graph)
    _drop_unused_initializers(graph)
    del graph.value_info[:]
    _shorten_names(graph)
    _replace(qdq.opset_import, list(reference.opset_import))
    onnx.checker.check_model(qdq)


def _replace(field, items: list) -> None:
    """Set a repeated protobuf field to `items` (which may be its own elements)."""
    del field[:]
    field.extend(items)


def _bypass_activation_quantization(graph: onnx.GraphProto) -> None:
    """Wire the readers of each QuantizeLinear -> DequantizeLinear pair to the float tensor and drop the pair.

    Weights are stored quantized and only dequantized, so every QuantizeLinear is an activation's.
    """
    float_of_quantized = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    float_of = {
        n.output[0]: float_of_quantized[n.input[0]]
        for n in graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in float_of_quantized
    }
    kept = [n for n in graph.node if n.op_type != "QuantizeLinear" and n.output[0] not in float_of]
    for node in kept:
        node.input[:] = [float_of.get(name, name) for name in node.input]
    _replace(graph.node, kept)


def _restore_clips(graph: onnx.GraphProto, reference: onnx.GraphProto) -> None:
    """Put back each Clip of `reference` whose input producer, matched by node name, lost it in `graph`.

    The quantizer drops a Clip when the activation range it quantizes to already clamps
    the same way; with activations back in float the clamp has to be explicit again.
    """
    producer_of = {name: node for node in reference.node for name in node.output}
    nodes_by_name = {node.name: node for node in graph.node if node.name}
    for clip in (n for n in reference.node if n.op_type == "Clip"):
        reference_source = producer_of.get(clip.input[0])
        source = nodes_by_name.get(reference_source.name) if reference_source is not None else None
        if source is None:
            raise ValueError(f"no node in the quantized graph matches the producer of Clip {clip.name!r}'s input")
        index = list(reference_source.output).index(clip.input[0])
        output = source.output[index]
        if any(n.op_type == "Clip" and n.input[0] == output for n in graph.node):
            continue
        bounds = [_add_constant(graph, _constant(reference, name)) if name else "" for name in clip.input[1:]]
        unclipped = output + "_unclipped"
        source.output[index] = unclipped
        position = list(graph.node).index(source) + 1
        graph.node.insert(position, onnx.helper.make_node("Clip", [unclipped, *bounds], [output]))


def _constant(graph: onnx.GraphProto, name: str) -> np.ndarray:
    """Value of the initializer or `Constant` node output called `name`."""
    for tensor in graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            value = next((a for a in node.attribute if a.name == "value"), None)
            if value is not None:
                return numpy_helper.to_array(value.t)
    raise ValueError(f"{name!r} is not a constant tensor of the float model")


def _add_constant(graph: onnx.GraphProto, value: np.ndarray) -> str:
    """Name of an initializer holding `value`; equal values share one initializer."""
    name = f"const_{value.dtype}_{value.tobytes().hex()}"
    if all(t.name != name for t in graph.initializer):
        graph.initializer.append(numpy_helper.from_array(value, name))
    return name


def _drop_zero_zero_points(graph: onnx.GraphProto) -> None:
    """Drop all-zero DequantizeLinear zero points: an absent zero point is 0 of the input's type."""
    initializers = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3 or node.input[2] not in initializers:
            continue
        if not numpy_helper.to_array(initializers[node.input[2]]).any():
            del node.input[2]


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input} | {v.name for v in graph.output}
    _replace(graph.initializer, [t for t in graph.initializer if t.name in used])


def _shorten_names(graph: onnx.GraphProto) -> None:
    """Give tensors short generated names and clear node names (tract names a node after its output).

    Graph inputs and outputs keep their names: they are the model's interface.
    """
    interface = {v.name for v in (*graph.input, *graph.output)}
    short: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in interface:
            return name
        return short.setdefault(name, f"t{len(short)}")

    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for node in graph.node:
        node.name = ""
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
