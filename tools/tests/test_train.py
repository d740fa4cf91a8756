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
