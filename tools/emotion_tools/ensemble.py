"""Score training checkpoints alone and averaged, to choose the teachers of a distillation run.

A student learns from its teachers' averaged probabilities (`train.teacher_probabilities`),
so what matters is how accurate that average is, which depends on how differently the
teachers err as much as on each one's accuracy.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import load
from .evaluate import report
from .train import load_checkpoint_model, normalise, predict_logits


def checkpoint_probabilities(path: str, images_u8: np.ndarray, mirror: bool) -> np.ndarray:
    """Softmax probabilities (N, K) of a checkpoint's network; with `mirror`, of face and mirror image averaged."""
    model, config = load_checkpoint_model(path)
    x = normalise(torch.from_numpy(images_u8), config.mean, config.std)
    return torch.softmax(predict_logits(model, x, flip=mirror), dim=1).numpy()


def score(paths: list[str], data_path: str, usage: str, mirror: bool) -> dict:
    """Accuracy of each checkpoint and of their averaged probabilities, and pairwise top-1 agreement."""
    split = load(data_path, (usage,))[usage]
    probs = [checkpoint_probabilities(path, split.images, mirror) for path in paths]
    tops = [p.argmax(1) for p in probs]
    return {
        "usage": usage,
        "mirror": mirror,
        "models": {path: report(split.labels, top)["accuracy"] for path, top in zip(paths, tops)},
        "agreement": [
            {"a": paths[i], "b": paths[j], "top1": float((tops[i] == tops[j]).mean())}
            for i in range(len(paths))
            for j in range(i + 1, len(paths))
        ],
        "average": report(split.labels, np.mean(probs, axis=0).argmax(1)),
    }
