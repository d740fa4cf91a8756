"""MobileNetV2-style classifier sized for 48x48 grayscale faces.

Why 48x48: FER2013 faces are stored at 48x48, so a larger input only
interpolates the same information while multiplying compute (measured here:
a width-1.0 MobileNetV2 trains 9x slower at 64 px than width 0.5 at 48 px).
To keep enough spatial detail the network downsamples 16x in all, not
MobileNetV2's 32x, ending on 3x3 feature maps. Where the first 2x happens is
`stem_stride`: 1 runs the stem and the first block at 48x48 and halves in the
second stage; 2 halves in the stem and keeps the second stage at 24x24. The
stride-2 stem needs 13% fewer multiply-accumulates but ran 1.4x faster
in tract, whose kernels are slowest on exactly those full-resolution layers (a
1-channel 3x3 convolution and a 16-channel 1x1 one); see models/MODEL_CARD.md.

`FUSED_STAGES` is a second layout for the same budget of parameters: its early
stages are fused inverted residuals (EfficientNetV2's Fused-MBConv, Tan & Le
2021: a full 3x3 convolution expands, a 1x1 one projects) instead of depthwise
ones, and it downsamples 8x, ending on 6x6 maps. Why: the depthwise models fit
FER2013 poorly, not just generalise poorly (the best stride-2 student,
`fer_mnv2_s2_kd2`, is right on 72% of the un-augmented Training rows and 66% of
PublicTest; the plain CNN teacher on 76% and 67%), and the early
layers are where depthwise convolutions have too few weights to learn with.
The fused layout spends the parameters the same way (most sit in the last
stage) but does 2.5x the multiply-accumulates, and still trains no slower in
PyTorch on CPU (0.81 s per step of 128 faces here, against 0.91 s for the
stride-2 v2 layout), which runs full convolutions far more efficiently than
depthwise ones.

Only Conv, BatchNorm (folded at export), ReLU6 (Clip), Add, global average
pooling and one Linear layer are used: operators tract optimises well.
"""

from __future__ import annotations

import torch
from torch import nn

#: (block, expansion, output channels at width 1.0, repeats, first stride).
#: MobileNetV2's stages with two repeats each and without the final 320-channel
#: stage: measured here over 150 steps from scratch, this wider, shallower net
#: reached loss 1.56 / 36% PublicTest where MobileNetV2 at width 0.5 (17 blocks,
#: 8-channel early layers) was still at 1.75 / 28%, with 0.88 M parameters.
STAGES = (
    ("inverted", 1, 16, 1, 1),
    ("inverted", 6, 24, 2, 2),
    ("inverted", 6, 32, 2, 2),
    ("inverted", 6, 64, 2, 2),
    ("inverted", 6, 96, 2, 1),
    ("inverted", 6, 160, 2, 2),
)

#: Fused early stages, then depthwise ones ending on 6x6 maps (see the module doc).
#: 0.87 M parameters and 74 M multiply-accumulates with a stride-2 stem.
FUSED_STAGES = (
    ("fused", 3, 32, 1, 2),
    ("fused", 4, 48, 1, 2),
    ("fused", 4, 48, 1, 1),
    ("inverted", 6, 64, 2, 1),
    ("inverted", 6, 96, 2, 2),
    ("inverted", 6, 128, 2, 1),
)

#: Layout names accepted by `EmotionMobileNet` (and `train --layout`).
LAYOUTS = {"v2": STAGES, "fused": FUSED_STAGES}


def _round_channels(channels: float, divisor: int = 8) -> int:
    """Round to a multiple of `divisor` without dropping more than 10% (MobileNet rule)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return rounded


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU6(inplace=True),
    )


class _Residual(nn.Module):
    """`layers` applied to the input, added to it when the shapes match (stride 1, same channels)."""

    def __init__(self, layers: list[nn.Module], c_in: int, c_out: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(*layers)
        self.use_skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_skip else out


class InvertedResidual(_Residual):
    """Expand (1x1) -> depthwise 3x3 -> linear project (1x1), with a skip when shapes match."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int):
        hidden = c_in * expansion
        expand = [_conv_bn_relu(c_in, hidden, 1, 1)] if expansion != 1 else []
        depthwise_project = [
            _conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        super().__init__(expand + depthwise_project, c_in, c_out, stride)


class FusedInvertedResidual(_Residual):
    """Expand with a full 3x3 convolution -> linear project (1x1), with a skip when shapes match."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int):
        hidden = c_in * expansion
        layers = [_conv_bn_relu(c_in, hidden, 3, stride), nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        super().__init__(layers, c_in, c_out, stride)


BLOCKS = {"inverted": InvertedResidual, "fused": FusedInvertedResidual}


class EmotionMobileNet(nn.Module):
    """Grayscale face (N, 1, S, S), normalised -> logits (N, num_classes)."""

    def __init__(
        self,
        num_classes: int = 7,
        width: float = 1.0,
        last_channels: int = 640,
        dropout: float = 0.2,
        stem_stride: int = 1,
        layout: str = "v2",
    ):
        super().__init__()
        if stem_stride not in (1, 2):
            raise ValueError(f"stem stride must be 1 or 2, not {stem_stride}")
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        c_in = _round_channels(32 * width)
        layers: list[nn.Module] = [_conv_bn_relu(1, c_in, 3, stem_stride)]
        # The first stage that halves the resolution stops halving when the stem has.
        moved = stem_stride == 2
        for block, expansion, channels, repeats, stride in LAYOUTS[layout]:
            if moved and stride == 2:
                stride, moved = 1, False
            c_out = _round_channels(channels * width)
            for i in range(repeats):
                layers.append(BLOCKS[block](c_in, c_out, stride if i == 0 else 1, expansion))
                c_in = c_out
        layers.append(_conv_bn_relu(c_in, last_channels, 1, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(last_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


class TeacherCNN(nn.Module):
    """Plain VGG-style network, a teacher to distil `EmotionMobileNet` from; too big to ship.

    Four stages of two 3x3 convolutions (BatchNorm, ReLU) and a 2x2 max-pool, at
    32, 64, 128 and 256 channels times `width`, then global average pooling and one
    Linear layer. Why this teacher: the MobileNet teachers, wider or trained longer,
    all stopped near 66% on PublicTest and made the same mistakes, so averaging them
    taught the student nothing new. Plain convolutions fit FER2013 faster (over 150
    steps from scratch a 6-layer plain net led the depthwise nets, see
    models/MODEL_CARD.md), give a differently built second opinion, and run
    efficiently in PyTorch on CPU: at width 1.5 (2.6 M parameters) one training step
    on 128 faces took 0.68 s here, against 1.5 s for the width-2 MobileNet.
    """

    def __init__(self, num_classes: int = 7, width: float = 1.0, dropout: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for base in (32, 64, 128, 256):
            c_out = _round_channels(base * width)
            for _ in range(2):
                layers += [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c_in = c_out
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


def count_macs(model: nn.Module, side: int) -> int:
    """Multiply-accumulates of one forward pass at `side`x`side`, counted over Conv and Linear layers."""
    macs = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal macs
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        macs += output.numel() * per_output

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal macs
        macs += output.numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, side, side))
    model.train(was_training)
    for h in handles:
        h.remove()
    return macs
