"""Training: PublicTest-selected checkpoints, resumable, deterministic per seed.

Augmentation runs batched on tensors (one affine warp, flip, brightness and
contrast jitter, random erasing) rather than per image in DataLoader workers:
with two CPU cores, worker processes would take cores from the model.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from .data import CLASS_NAMES, PUBLIC_TEST, TRAINING, load
from .model import EmotionMobileNet, TeacherCNN


@dataclass
class TrainConfig:
    """Everything that defines a run; stored in each checkpoint so `--resume` continues the same run."""

    epochs: int = 50
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 3
    label_smoothing: float = 0.1
    ema_decay: float = 0.999
    #: "mobilenet" (the shipped network) or "teacher-cnn" (a plain CNN to distil from, see model.py).
    arch: str = "mobilenet"
    width: float = 1.0
    last_channels: int = 640
    dropout: float = 0.2
    #: 1: stem and first block at full 48x48 resolution; 2: halve in the stem (faster in tract, see model.py).
    stem_stride: int = 1
    #: "v2" (MobileNetV2 stages) or "fused" (fused early stages, ending on 6x6 maps; see model.py).
    layout: str = "v2"
    seed: int = 13
    #: Checkpoint whose weights start the run (a second cosine cycle after a finished run); empty: random.
    init_from: str = ""
    #: Checkpoints whose averaged predictions on each augmented batch are distilled into the model.
    teachers: list[str] = field(default_factory=list)
    #: Share of the distillation term in the loss when there are teachers (the rest is cross-entropy).
    distill_weight: float = 0.7
    #: Softmax temperature of the distillation term.
    distill_temperature: float = 2.0
    #: Teachers answer for each face averaged with its mirror image, as `ensemble --mirror` scores them.
    teacher_mirror: bool = False
    #: Normalisation applied after scaling pixels to 0..1: (x - mean) / std. Set from the training data.
    mean: float = 0.0
    std: float = 1.0
    #: Crop placement drawn per face as the device's crops vary (see `DEVICE_CROP_JITTER`), in place
    #: of the fixed rotation/scale/shift ranges; empty: those ranges.
    crop_jitter: dict[str, float] = field(default_factory=dict)


ARCHITECTURES = ("mobilenet", "teacher-cnn")


def build_model(config: TrainConfig) -> torch.nn.Module:
    """The network `config` describes, with freshly initialised weights."""
    if config.arch == "teacher-cnn":
        return TeacherCNN(len(CLASS_NAMES), config.width, config.dropout)
    if config.arch != "mobilenet":
        raise ValueError(f"unknown architecture {config.arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    return EmotionMobileNet(len(CLASS_NAMES), config.width, config.last_channels, config.dropout, config.stem_stride, config.layout)


def normalise(images_u8: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W), the model's exact input preprocessing."""
    return ((images_u8.float() / 255.0 - mean) / std).unsqueeze(1)


def load_teacher(path: str | Path, config: TrainConfig) -> torch.nn.Module:
    """The network of a checkpoint (see `load_checkpoint_model`), laid out for training batches.

    Its input normalisation must match `config`'s, since it sees the same batches.
    """
    model, stored = load_checkpoint_model(path)
    if (stored.mean, stored.std) != (config.mean, config.std):
        raise ValueError(f"{path}: normalisation {stored.mean}/{stored.std} differs from the run's {config.mean}/{config.std}")
    return model.to(memory_format=torch.channels_last)


def distillation_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence from the teachers' softened probabilities, scaled by T^2 (Hinton et al. 2015)."""
    log_probs = F.log_softmax(logits / temperature, dim=1)
    return F.kl_div(log_probs, teacher_probs, reduction="batchmean") * temperature**2


@torch.no_grad()
def teacher_probabilities(teachers: list[torch.nn.Module], x: torch.Tensor, temperature: float, mirror: bool = False) -> torch.Tensor:
    """Mean of the teachers' softmax(logits / T) on one batch; with `mirror`, of their mirror-averaged logits."""
    logits = [mirror_averaged_logits(t, x) if mirror else t(x) for t in teachers]
    return torch.stack([torch.softmax(z / temperature, dim=1) for z in logits]).mean(0)


#: Where the device's crop lands on a face's FER2013 square (`emotion-pi eval --frames --seed 2
#: --json`, `geometries[0].crop_in_square`, shipped model and crop, 2,016 faces found; see
#: tools/checkpoints/README.md, `fer_mnv2_fused_jitter`): crop side over square side, the crop
#: centre's offset in square sides (y down), and its turn in degrees. Scale and offsets are drawn
#: normal with these means and deviations; the turn uniform within +-`rotation_max` (the frames'
#: tilt is uniform, and real heads roll as FER2013's faces already do).
DEVICE_CROP_JITTER = {
    "scale_mean": 0.905,
    "scale_std": 0.150,
    # Measured +0.002: none, as mirroring makes it either way anyway.
    "offset_x_mean": 0.0,
    "offset_x_std": 0.058,
    "offset_y_mean": 0.074,
    "offset_y_std": 0.058,
    "rotation_max": 15.0,
}
#: Draws beyond this many deviations from the mean are clipped: a detector box that far off is
#: a different face or none.
JITTER_CLIP_STD = 2.5


def crop_theta(scale: torch.Tensor, offset_x: torch.Tensor, offset_y: torch.Tensor, degrees: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """`F.affine_grid` matrices (N, 2, 3) that cut from each face the square the arguments place.

    The crop is `scale` face sides wide, its centre `offset_x`/`offset_y` face sides from the
    face's centre (y down) and its horizontal axis turned `degrees` clockwise as seen; `flip`
    (-1 or 1) mirrors the crop left to right. In the grid's coordinates (-1..1 across the face,
    `align_corners=False`) the crop point q lands on the face point offset * 2 + scale * R q.
    """
    angle = degrees * math.pi / 180
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    return torch.stack(
        [
            torch.stack([cos * flip, -sin, 2 * offset_x], 1),
            torch.stack([sin * flip, cos, 2 * offset_y], 1),
        ],
        1,
    )


def draw_device_crops(n: int, generator: torch.Generator, jitter: dict[str, float]) -> tuple[torch.Tensor, ...]:
    """`n` crops drawn from `jitter` (laid out as `DEVICE_CROP_JITTER`): scale, offset x, offset y, degrees."""

    def normal(name: str) -> torch.Tensor:
        draw = torch.randn(n, generator=generator).clamp(-JITTER_CLIP_STD, JITTER_CLIP_STD)
        return jitter[f"{name}_mean"] + jitter[f"{name}_std"] * draw

    turn = (torch.rand(n, generator=generator) * 2 - 1) * jitter["rotation_max"]
    return normal("scale"), normal("offset_x"), normal("offset_y"), turn


def warp_onto_background(batch: torch.Tensor, theta: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """`batch` (N, 1, H, W) resampled through `theta`, showing `background` (N, 1, H, W) where the
    crop leaves the face.

    The device's crop around a face in a frame sees the scene beside the face, not the face's
    reflection; the bilinear weights blend the two at the face's edge.
    """
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    inside = F.grid_sample(torch.ones_like(batch), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    face = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return face + (1 - inside) * background


def augment(batch: torch.Tensor, generator: torch.Generator, crop_jitter: dict[str, float] | None = None) -> torch.Tensor:
    """Random flip, placement, light jitter and erasing.

    Placement: without `crop_jitter`, rotation (+-12 deg), scale (0.9-1.1), shift (+-10%),
    with the face reflected at its edges; with it, a crop drawn as the device's vary (see
    `DEVICE_CROP_JITTER`) over a random flat background level and fine noise. `batch` is
    (N, 1, H, W) in 0..1 before normalisation.
    """
    n = batch.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    if crop_jitter:
        theta = crop_theta(*draw_device_crops(n, generator, crop_jitter), flip)
        # A flat level with camera grain (up to +-0.025) stands for the scene: which scene does not
        # matter to the face, only that it is not more face.
        grain = (torch.rand(batch.shape, generator=generator) - 0.5) * 0.05
        background = uniform(0, 1).view(n, 1, 1, 1) + grain
        out = warp_onto_background(batch, theta, background).clamp(0, 1)
    else:
        angle = uniform(-12, 12) * math.pi / 180
        scale = uniform(0.9, 1.1)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [
                torch.stack([cos * flip, -sin, uniform(-0.2, 0.2)], 1),
                torch.stack([sin * flip, cos, uniform(-0.2, 0.2)], 1),
            ],
            1,
        )
        grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
        out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    contrast = uniform(0.7, 1.3).view(n, 1, 1, 1)
    brightness = uniform(-0.15, 0.15).view(n, 1, 1, 1)
    mean = out.mean(dim=(2, 3), keepdim=True)
    out = ((out - mean) * contrast + mean + brightness).clamp(0, 1)

    _, _, h, w = out.shape
    area = uniform(0.02, 0.2) * h * w
    aspect = torch.exp(uniform(math.log(0.3), math.log(3.3)))
    eh = torch.sqrt(area * aspect).clamp(1, h)
    ew = torch.sqrt(area / aspect).clamp(1, w)
    top = torch.rand(n, generator=generator) * (h - eh)
    left = torch.rand(n, generator=generator) * (w - ew)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + ew).view(n, 1, 1))
    )
    erase = (torch.rand(n, generator=generator) < 0.5).view(n, 1, 1) & inside
    noise = torch.rand(out.shape, generator=generator)
    return torch.where(erase.unsqueeze(1), noise, out)


def ema_update(decay: float):
    """Exponential moving average whose decay ramps up as min(decay, (1 + n) / (10 + n)).

    With a fixed 0.999 the average keeps 0.999^n of the random initialisation, and
    the BatchNorm variances (initially 1, soon ~0.05) stay inflated for thousands of
    steps; the error compounds through the layers and the averaged model predicted a
    single class for the first 9 epochs of a run here.
    """

    def update(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        return averaged * d + current * (1 - d)

    return update


def lr_at(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Linear warm-up then cosine decay to zero."""
    warmup = config.warmup_epochs * steps_per_epoch
    total = config.epochs * steps_per_epoch
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def mirror_averaged_logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean of the logits of the faces and of their mirror images (test-time flip)."""
    return (model(x) + model(torch.flip(x, dims=[3]))) / 2


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 512, flip: bool = False) -> torch.Tensor:
    """Logits for normalised images (N, 1, H, W); with `flip`, averaged with the mirrored image."""
    model.eval()
    chunks = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        chunks.append(mirror_averaged_logits(model, x) if flip else model(x))
    return torch.cat(chunks) if chunks else torch.zeros(0, len(CLASS_NAMES))


def train(
    data_path: str,
    out_dir: str,
    config: TrainConfig,
    resume: bool = False,
    max_steps: int | None = None,
    threads: int | None = None,
    log=print,
    resume_epochs: int | None = None,
) -> Path:
    """Train (or resume) and return the path of the best checkpoint by PublicTest accuracy.

    A resumed run keeps its stored settings except `resume_epochs`, which sets a new total
    length: the cosine decay is stretched or shortened from the current step on.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    last_path, best_path, log_path = out / "last.pt", out / "best.pt", out / "train_log.jsonl"

    state = None
    if resume and last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        config = TrainConfig(**state["config"])
        if resume_epochs is not None:
            if resume_epochs <= state["epoch"] + 1:
                raise ValueError(f"{last_path}: --epochs {resume_epochs} but {state['epoch'] + 1} epochs are already done")
            config.epochs = resume_epochs
        log(f"resuming {last_path} at epoch {state['epoch'] + 2}/{config.epochs}")

    splits = load(data_path, (TRAINING, PUBLIC_TEST))
    train_split, val_split = splits[TRAINING], splits[PUBLIC_TEST]
    if len(train_split) == 0:
        raise ValueError(f"{data_path}: no Training rows")
    initial = None
    if state is None and config.init_from:
        initial = torch.load(config.init_from, map_location="cpu", weights_only=False)
        # Same architecture and normalisation as the run the weights came from.
        for name in ("arch", "width", "last_channels", "stem_stride", "layout", "mean", "std"):
            setattr(config, name, initial["config"].get(name, getattr(TrainConfig(), name)))
        log(f"starting from the weights of {config.init_from} (epoch {initial['epoch'] + 1})")
    elif state is None:
        pixels = train_split.images.astype(np.float64) / 255.0
        config.mean, config.std = round(float(pixels.mean()), 4), round(float(pixels.std()), 4)
    teachers = [load_teacher(path, config) for path in config.teachers]
    if teachers:
        log(
            f"distilling from {len(teachers)} teacher(s), weight {config.distill_weight}, "
            f"temperature {config.distill_temperature}, mirrored {config.teacher_mirror}"
        )

    torch.manual_seed(config.seed)
    # channels_last doubles CPU training throughput for depthwise convolutions (330 vs 157 images/s here,
    # MobileNetV2 width 0.5).
    model = build_model(config).to(memory_format=torch.channels_last)
    if initial is not None:
        model.load_state_dict(initial["model"])
    ema = AveragedModel(model, avg_fn=ema_update(config.ema_decay), use_buffers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_epoch, best_acc = 0, -1.0
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best_acc = state["epoch"] + 1, state["best_acc"]

    train_x = torch.from_numpy(train_split.images).float().unsqueeze(1) / 255.0
    train_y = torch.from_numpy(train_split.labels)
    val_x = normalise(torch.from_numpy(val_split.images), config.mean, config.std).contiguous(memory_format=torch.channels_last)
    val_y = torch.from_numpy(val_split.labels)
    steps_per_epoch = math.ceil(len(train_y) / config.batch_size)
    step = start_epoch * steps_per_epoch
    log(
        f"train {len(train_y)} / PublicTest {len(val_y)} images, {steps_per_epoch} steps per epoch, "
        f"mean {config.mean} std {config.std}, {sum(p.numel() for p in model.parameters())} parameters"
    )

    for epoch in range(start_epoch, config.epochs):
        started = time.time()
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        order = torch.randperm(len(train_y), generator=generator)
        model.train()
        loss_sum, seen = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            if max_steps is not None and step >= max_steps:
                break
            idx = order[start : start + config.batch_size]
            x = ((augment(train_x[idx], generator, config.crop_jitter) - config.mean) / config.std).contiguous(memory_format=torch.channels_last)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, steps_per_epoch, config)
            logits = model(x)
            loss = F.cross_entropy(logits, train_y[idx], label_smoothing=config.label_smoothing)
            if teachers:
                soft = teacher_probabilities(teachers, x, config.distill_temperature, config.teacher_mirror)
                kd = distillation_loss(logits, soft, config.distill_temperature)
                loss = (1 - config.distill_weight) * loss + config.distill_weight * kd
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.update_parameters(model)
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
            step += 1

        record = {"epoch": epoch + 1, "train_loss": round(loss_sum / max(1, seen), 4), "lr": lr_at(step - 1, steps_per_epoch, config)}
        if len(val_y):
            for name, net in (("model", model), ("ema", ema.module)):
                logits = predict_logits(net, val_x)
                record[f"val_acc_{name}"] = round(float((logits.argmax(1) == val_y).float().mean()), 4)
            record["val_acc_ema_flip"] = round(float((predict_logits(ema.module, val_x, flip=True).argmax(1) == val_y).float().mean()), 4)
        record["seconds"] = round(time.time() - started, 1)
        # Select on PublicTest with whichever weights score higher, the averaged or the raw ones.
        selected = "ema" if record.get("val_acc_ema", 0.0) >= record.get("val_acc_model", 0.0) else "model"
        score = record.get(f"val_acc_{selected}", 0.0)
        checkpoint = {
            "config": asdict(config),
            "epoch": epoch,
            "best_acc": max(best_acc, score),
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "class_names": list(CLASS_NAMES),
        }
        if score > best_acc or not best_path.exists():
            best_acc = score
            weights = ema.module.state_dict() if selected == "ema" else model.state_dict()
            torch.save({"config": asdict(config), "epoch": epoch, "val_acc": score, "weights": selected, "model": weights, "class_names": list(CLASS_NAMES)}, best_path)
            record["best"] = selected
        torch.save(checkpoint, last_path.with_suffix(".tmp"))
        last_path.with_suffix(".tmp").replace(last_path)
        with open(log_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        log(json.dumps(record))
        if max_steps is not None and step >= max_steps:
            break
    return best_path


def load_checkpoint_model(path: str | Path) -> tuple[torch.nn.Module, TrainConfig]:
    """The model (in eval mode) and its config from a checkpoint.

    A `best.pt` holds the weights selected on PublicTest; a `last.pt` holds the raw and the
    averaged weights, and the averaged ones are taken.
    """
    state = torch.load(path, map_location="cpu", weights_only=False)
    config = TrainConfig(**state["config"])
    model = build_model(config)
    if "ema" in state:
        prefix = "module."
        model.load_state_dict({k[len(prefix) :]: v for k, v in state["ema"].items() if k.startswith(prefix)})
    else:
        model.load_state_dict(state["model"])
    model.eval()
    return model, config
