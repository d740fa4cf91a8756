"""Training helpers: EMA warm-up and the learning-rate schedule, against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from emotion_tools.train import TrainConfig, ema_update, lr_at


def test_ema_decay_ramps_up_from_first_update():
    update = ema_update(0.999)
    averaged, current = torch.tensor([1.0]), torch.tensor([0.0])
    # n = 0: decay (1 + 0) / (10 + 0) = 0.1, so the new value gets weight 0.9.
    assert update(averaged, current, torch.tensor(0)).item() == pytest.approx(0.1)
    # n = 990: (991 / 1000) = 0.991 < 0.999.
    assert update(averaged, current, torch.tensor(990)).item() == pytest.approx(0.991)
    # Late in training the configured decay applies.
    assert update(averaged, current, torch.tensor(10**6)).item() == pytest.approx(0.999)


def test_lr_warms_up_linearly_then_follows_cosine_to_zero():
    config = TrainConfig(epochs=10, warmup_epochs=2, lr=1e-3)
    steps = 5
    assert lr_at(0, steps, config) == pytest.approx(1e-3 / 10)
    assert lr_at(9, steps, config) == pytest.approx(1e-3)
    # Halfway through the 40 cosine steps: lr * 0.5 * (1 + cos(pi / 2)).
    assert lr_at(10 + 20, steps, config) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert lr_at(50, steps, config) == pytest.approx(0.0, abs=1e-12)


def test_distillation_loss_is_temperature_scaled_kl_from_the_teacher():
    from emotion_tools.train import distillation_loss

    student = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    teacher = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 0.0]])
    t = 4.0
    # By hand: T^2 * mean over rows of sum_j p_j (log p_j - log q_j), p = softmax(teacher / T), q = softmax(student / T).
    expected = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        p = [math.exp(v / t) / sum(math.exp(w / t) for w in t_row) for v in t_row]
        q = [math.exp(v / t) / sum(math.exp(w / t) for w in s_row) for v in s_row]
        expected += sum(pj * (math.log(pj) - math.log(qj)) for pj, qj in zip(p, q))
    expected *= t * t / len(student)
    assert distillation_loss(student, torch.softmax(teacher / t, 1), t).item() == pytest.approx(expected, rel=1e-5)
    assert distillation_loss(teacher, torch.softmax(teacher / t, 1), t).item() == pytest.approx(0.0, abs=1e-6)


def test_teacher_probabilities_average_teachers_and_optionally_mirror_images():
    from emotion_tools.train import teacher_probabilities

    # Two "teachers" on 1x2-pixel faces whose answers change when the face is mirrored.
    def left_heavy(x):
        return torch.stack([x[:, 0, 0, 0], 2 * x[:, 0, 0, 1], torch.zeros(len(x))], 1)

    def right_negative(x):
        return torch.stack([torch.zeros(len(x)), x[:, 0, 0, 0], -x[:, 0, 0, 1]], 1)

    def softmax(row, t):
        exps = [math.exp(v / t) for v in row]
        return [e / sum(exps) for e in exps]

    face = torch.tensor([[[[1.0, 3.0]]]])
    t = 2.0
    # Face [1, 3] gives logits [1, 6, 0] and [0, 1, -3]; its mirror [3, 1] gives [3, 2, 0] and [0, 3, -1].
    plain = [(a + b) / 2 for a, b in zip(softmax([1, 6, 0], t), softmax([0, 1, -3], t))]
    mirrored = [(a + b) / 2 for a, b in zip(softmax([2, 4, 0], t), softmax([0, 2, -2], t))]
    teachers = [left_heavy, right_negative]
    assert teacher_probabilities(teachers, face, t)[0].tolist() == pytest.approx(plain, rel=1e-6)
    assert teacher_probabilities(teachers, face, t, mirror=True)[0].tolist() == pytest.approx(mirrored, rel=1e-6)


def test_stem_stride_moves_the_first_halving_and_keeps_the_output_grid():
    from emotion_tools.model import EmotionMobileNet

    x = torch.zeros(1, 1, 48, 48)
    full, halved = EmotionMobileNet(stem_stride=1).eval(), EmotionMobileNet(stem_stride=2).eval()
    assert full.features[0][0].stride == (1, 1) and halved.features[0][0].stride == (2, 2)
    # Block 1 is the (1, 16) stage, block 2 the first (6, 24) block: it halves only after a stride-1 stem.
    assert full.features[2].block[1][0].stride == (2, 2) and halved.features[2].block[1][0].stride == (1, 1)
    with torch.no_grad():
        assert full.features[:2](x).shape[-1] == 48 and halved.features[:2](x).shape[-1] == 24
        assert full.features(x).shape == halved.features(x).shape == (1, 640, 3, 3)
    assert sum(p.numel() for p in full.parameters()) == sum(p.numel() for p in halved.parameters())
    with pytest.raises(ValueError, match="stem stride"):
        EmotionMobileNet(stem_stride=4)


def test_fused_layout_convolves_fully_early_and_ends_on_6x6_maps():
    from emotion_tools.model import EmotionMobileNet, FusedInvertedResidual, InvertedResidual

    net = EmotionMobileNet(stem_stride=2, layout="fused").eval()
    blocks = list(net.features[1:-1])
    assert [type(b) for b in blocks] == [FusedInvertedResidual] * 3 + [InvertedResidual] * 6
    # Fused blocks expand with an ungrouped 3x3 convolution; the later ones stay depthwise.
    assert all(b.block[0][0].kernel_size == (3, 3) and b.block[0][0].groups == 1 for b in blocks[:3])
    assert all(b.block[1][0].groups == b.block[1][0].in_channels for b in blocks[3:])
    assert [b.use_skip for b in blocks] == [True, False, True, False, True, False, True, False, True]
    with torch.no_grad():
        assert net.features(torch.zeros(1, 1, 48, 48)).shape == (1, 640, 6, 6)

    # Parameters by hand: convolutions have no bias, each BatchNorm adds 2 per channel.
    def conv_bn(c_in, c_out, kernel=1, groups=1):
        return kernel * kernel * c_in // groups * c_out + 2 * c_out

    def fused(c_in, c_out, e):
        return conv_bn(c_in, c_in * e, 3) + conv_bn(c_in * e, c_out)

    def inverted(c_in, c_out):
        h = 6 * c_in
        return conv_bn(c_in, h) + conv_bn(h, h, 3, h) + conv_bn(h, c_out)

    expected = (
        conv_bn(1, 32, 3)
        + fused(32, 32, 3) + fused(32, 48, 4) + fused(48, 48, 4)
        + inverted(48, 64) + inverted(64, 64) + inverted(64, 96) + inverted(96, 96) + inverted(96, 128) + inverted(128, 128)
        + conv_bn(128, 640)
        + 640 * 7 + 7
    )  # fmt: skip
    assert sum(p.numel() for p in net.parameters()) == expected < 1_000_000
    with pytest.raises(ValueError, match="layout"):
        EmotionMobileNet(layout="v3")


def test_teacher_cnn_layers_and_parameter_count():
    from emotion_tools.model import TeacherCNN

    net = TeacherCNN(width=1.5).eval()
    # Width 1.5: 48, 96, 192, 384 channels, two 3x3 convolutions per stage.
    widths = [1, 48, 48, 96, 96, 192, 192, 384, 384]
    convs = sum(9 * c_in * c_out + 2 * c_out for c_in, c_out in zip(widths, widths[1:]))
    assert sum(p.numel() for p in net.parameters()) == convs + 384 * 7 + 7
    with torch.no_grad():
        # Four 2x2 max-pools: 48 -> 3.
        assert net.features(torch.zeros(2, 1, 48, 48)).shape == (2, 384, 3, 3)
        assert net(torch.zeros(2, 1, 48, 48)).shape == (2, 7)


def test_unknown_architecture_is_named():
    from emotion_tools.train import build_model

    with pytest.raises(ValueError, match="'resnet'"):
        build_model(TrainConfig(arch="resnet"))


def _bright_block(rows: slice, cols: slice) -> torch.Tensor:
    face = torch.zeros(1, 1, 48, 48)
    face[0, 0, rows, cols] = 1.0
    return face


def _place(face: torch.Tensor, scale: float, offset_x: float, offset_y: float, degrees: float, flip: float = 1.0, level: float = 0.0) -> torch.Tensor:
    from emotion_tools.train import crop_theta, warp_onto_background

    def one(v: float) -> torch.Tensor:
        return torch.tensor([v])

    theta = crop_theta(one(scale), one(offset_x), one(offset_y), one(degrees), one(flip))
    return warp_onto_background(face, theta, torch.full_like(face, level))[0, 0]


def test_a_device_crop_lands_a_known_pattern_where_the_affine_map_says():
    # Block over pixels x 10..14, y 30..34 (centre 12, 32). The crop of half the face's side,
    # centred a quarter side left of and below the face's centre, covers x 0..24 and y 24..48 at
    # twice the size: the block's centre lands on (12 - 0) * 2, (32 - 24) * 2 = (24, 16).
    out = _place(_bright_block(slice(30, 34), slice(10, 14)), 0.5, -0.25, 0.25, 0.0)
    ys, xs = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(48) + 0.5, indexing="ij")
    mass = out.sum()
    assert mass.item() == pytest.approx(16 * 4, rel=0.02)
    assert ((xs * out).sum() / mass).item() == pytest.approx(24.0, abs=0.05)
    assert ((ys * out).sum() / mass).item() == pytest.approx(16.0, abs=0.05)

    # Turned 90 degrees clockwise as seen, same size: crop point q (from the centre) shows face
    # point R q, R = [[0, -1], [1, 0]], so face pixel (x, y) shows at crop (y, 47 - x): the block
    # at crop x 30..34, y 34..38, pixel for pixel.
    turned = _place(_bright_block(slice(30, 34), slice(10, 14)), 1.0, 0.0, 0.0, 90.0)
    expected = torch.zeros(48, 48)
    expected[34:38, 30:34] = 1.0
    assert torch.allclose(turned, expected, atol=1e-4)

    # Mirrored, same size and place: the face flipped left to right.
    face = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(_place(face, 1.0, 0.0, 0.0, 0.0, flip=-1.0), torch.flip(face[0, 0], dims=[1]), atol=1e-5)


def test_a_crop_larger_than_the_face_shows_the_background_around_it():
    # Twice the face's side: the face fills the middle half (x, y 12..36), the rest is the level.
    out = _place(torch.ones(1, 1, 48, 48), 2.0, 0.0, 0.0, 0.0, level=0.3)
    assert torch.allclose(out[12:36, 12:36], torch.ones(24, 24), atol=1e-5)
    outside = torch.ones(48, 48, dtype=torch.bool)
    outside[12:36, 12:36] = False
    assert torch.allclose(out[outside], torch.full((48 * 48 - 24 * 24,), 0.3), atol=1e-5)


def test_device_crops_are_drawn_with_the_configured_spread_and_clipped():
    from emotion_tools.train import DEVICE_CROP_JITTER, JITTER_CLIP_STD, augment, draw_device_crops

    jitter = DEVICE_CROP_JITTER
    scale, offset_x, offset_y, turn = draw_device_crops(40_000, torch.Generator().manual_seed(1), jitter)
    # A standard normal clipped at +-2.5 keeps a deviation of 0.989.
    for values, name in ((scale, "scale"), (offset_x, "offset_x"), (offset_y, "offset_y")):
        mean, std = jitter[f"{name}_mean"], jitter[f"{name}_std"]
        assert values.mean().item() == pytest.approx(mean, abs=0.02 * std)
        assert values.std().item() == pytest.approx(0.989 * std, rel=0.02)
        assert values.min().item() >= mean - JITTER_CLIP_STD * std - 1e-6
        assert values.max().item() <= mean + JITTER_CLIP_STD * std + 1e-6
    # Uniform in +-max: deviation max / sqrt(3).
    assert turn.abs().max().item() <= jitter["rotation_max"]
    assert turn.std().item() == pytest.approx(jitter["rotation_max"] / math.sqrt(3), rel=0.02)
    batch = torch.rand(8, 1, 48, 48, generator=torch.Generator().manual_seed(2))
    out = augment(batch, torch.Generator().manual_seed(3), jitter)
    assert out.shape == batch.shape and 0.0 <= out.min().item() and out.max().item() <= 1.0
