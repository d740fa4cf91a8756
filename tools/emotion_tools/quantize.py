"""Static int8 quantization of the exported float model with onnxruntime's quantizer.

Calibration uses training images only. Weights are int8 per output channel,
activations uint8 per tensor. The `--form` chooses the graph layout, because
tract executes the layouts very differently (see MODEL_CARD.md for numbers):

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

FORMS = ("qlinear-pointwise", "qlinear-all", "qdq")


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


def quantize(float_model: str | Path, data_path: str, out: str | Path, form: str = "qlinear-pointwise", calibration_count: int = 1000, seed: int = 0) -> Path:
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
            quant_format=QuantFormat.QDQ if form == "qdq" else QuantFormat.QOperator,
            # Clip (ReLU6) is listed so the quantizer folds it into the QLinearConv output range;
            # Gemm is not: its QOperator form is com.microsoft QGemm, which tract lacks.
            op_types_to_quantize=["Conv", "Clip", "MatMul"],
            nodes_to_exclude=exclude,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    quantized = onnx.load(str(out))
    props = {METADATA_PREFIX + k: v for k, v in metadata.items()}
    props[METADATA_PREFIX + "precision"] = f"int8 ({form}, per-channel weights, calibrated on {calibration_count} training images)"
    set_metadata(quantized, props)
    onnx.save(quantized, str(out))
    return out
