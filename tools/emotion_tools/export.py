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
- `emotion_pi.test_time`: `single` (models from earlier tools say `mirror-average` when the graph itself averages each face with its mirror image)
- `emotion_pi.crop_margin`, `emotion_pi.crop_offset_y`, `emotion_pi.crop_upright`: where the runtime cuts
  the face out of a frame relative to the detector's box (`CropGeometry`), so the crop frames a face
  as FER2013 does

`set_crop` rewrites only the crop keys of an exported model (`python -m emotion_tools set-crop`).
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from .data import CLASS_NAMES, IMAGE_SIDE
from .train import TrainConfig, load_checkpoint_model

METADATA_PREFIX = "emotion_pi."
OPSET = 13


@dataclass(frozen=True)
class CropGeometry:
    """The runtime's face crop: a square of side `box side x (1 + margin)` around the detector box's centre,
    moved `offset_y` box sides towards the chin, turned so the eyes are level when `upright`."""

    margin: float
    offset_y: float
    upright: bool

    def __post_init__(self) -> None:
        # The ranges the runtime accepts (CROP_MARGIN_RANGE, CROP_OFFSET_RANGE in src/classify/align.rs).
        if not -0.5 <= self.margin <= 2.0:
            raise ValueError(f"crop margin {self.margin} is outside -0.5..2")
        if not -0.5 <= self.offset_y <= 0.5:
            raise ValueError(f"crop offset {self.offset_y} is outside -0.5..0.5")

    def metadata(self) -> dict[str, str]:
        """The `metadata_props` entries, without the `emotion_pi.` prefix."""
        return {
            "crop_margin": repr(float(self.margin)),
            "crop_offset_y": repr(float(self.offset_y)),
            "crop_upright": "true" if self.upright else "false",
        }


# The crop that matches FER2013's framing on BlazeFace short range, chosen on PublicTest whole
# frames (`emotion-pi eval --frames --sweep-...`; the command and table are in models/MODEL_CARD.md,
# "Whole frames"). It belongs to the data's framing and the detector, not to one set of weights,
# so every export writes it.
CALIBRATED_CROP = CropGeometry(margin=0.1, offset_y=0.0, upright=False)


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


def set_crop(model_path: str | Path, out: str | Path, crop: CropGeometry) -> Path:
    """Copy `model_path` to `out` with the crop keys of `crop`; graph, weights and other metadata unchanged.

    The copy is written under a temporary name beside `out` and renamed over it once complete, so `out`
    may be `model_path` itself and an interrupted run leaves either file whole.
    """
    model = onnx.load(str(model_path), load_external_data=False)
    set_metadata(model, {METADATA_PREFIX + k: v for k, v in crop.metadata().items()})
    out = Path(out)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(model.SerializeToString())
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file private; the copy keeps the permissions of the file it stands for.
        os.chmod(temporary, stat.S_IMODE(os.stat(out if out.exists() else model_path).st_mode))
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return out


def export(checkpoint: str | Path, out: str | Path, crop: CropGeometry = CALIBRATED_CROP) -> Path:
    """Write the float ONNX model for `checkpoint` to `out`, with the crop geometry `crop`."""
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
    set_metadata(onnx_model, metadata_for(config, {"precision": "float32", "test_time": "single", **crop.metadata()}))
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, str(out))
    return out
