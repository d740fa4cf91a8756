"""Export a trained checkpoint to ONNX with the preprocessing the runtime must apply.

The graph takes (N, 1, S, S) normalised grayscale faces and returns (N, 7)
class probabilities (softmax inside the graph). Everything the runtime needs to
prepare its input is written into the model's `metadata_props`, so the Rust
runtime reads it instead of duplicating constants:

- `emotion_pi.input_size`: S, the square input side in pixels
- `emotion_pi.color`: `gray` (ITU-R BT.601 luma of RGB input)
- `emotion_pi.pixel_scale`, `emotion_pi.mean`, `emotion_pi.std`: input = (pixel * scale - mean) / std
- `emotion_pi.class_names`: comma-separated class names in output order
- `emotion_pi.output`: `probabilities`
- `emotion_pi.test_time`: `mirror-average` when the graph averages each face with its mirror image, else `single`
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from torch import nn

from .data import CLASS_NAMES, IMAGE_SIDE
from .train import TrainConfig, load_checkpoint_model

METADATA_PREFIX = "emotion_pi."
OPSET = 13


class WithSoftmax(nn.Module):
    """Probabilities from the logits of `model`, for one face at a time.

    Averaging a face with its mirror image is the runtime's choice (`classify.mirror` on the
    device, `evaluate --mirror` here), not the graph's: a graph holding the network twice
    costs twice the load time on the device even when the mirror is not wanted.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def _architecture(config: TrainConfig) -> str:
    if config.arch == "teacher-cnn":
        return f"plain CNN teacher (model.TeacherCNN), width {config.width}"
    stages = "MobileNetV2 stages" if config.layout == "v2" else "fused early stages"
    return f"MobileNetV2-style, {stages}, width {config.width}, stride-{config.stem_stride} stem, last {config.last_channels} channels"


def metadata_for(config: TrainConfig, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The `metadata_props` entries describing preprocessing and outputs."""
    props = {
        "input_size": str(IMAGE_SIDE),
        "color": "gray",
        "pixel_scale": repr(1 / 255),
        "mean": repr(config.mean),
        "std": repr(config.std),
        "class_names": ",".join(CLASS_NAMES),
        "output": "probabilities",
        "architecture": _architecture(config),
    }
    props.update(extra or {})
    return {METADATA_PREFIX + k: v for k, v in props.items()}


def set_metadata(model: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace `metadata_props` keys in `props`, keeping any others."""
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(path: str | Path) -> dict[str, str]:
    """`metadata_props` of an exported model, without the `emotion_pi.` prefix."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key[len(METADATA_PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(METADATA_PREFIX)}


def export(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the float ONNX model for `checkpoint` to `out`."""
    model, config = load_checkpoint_model(checkpoint)
    wrapped = WithSoftmax(model).eval()
    dummy = torch.zeros(1, 1, IMAGE_SIDE, IMAGE_SIDE)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The TorchScript exporter folds BatchNorm into the convolutions in eval mode and
    # writes plain opset-13 operators that both tract and onnxruntime load.
    torch.onnx.export(
        wrapped,
        (dummy,),
        str(out),
        input_names=["face"],
        output_names=["probabilities"],
        dynamic_axes={"face": {0: "batch"}, "probabilities": {0: "batch"}},
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )
    onnx_model = onnx.load(str(out))
    set_metadata(onnx_model, metadata_for(config, {"precision": "float32", "test_time": "single"}))
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, str(out))
    return out
