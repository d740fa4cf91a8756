"""Accuracy reports for ONNX models run with onnxruntime (and for training checkpoints).

The report layout matches `emotion-pi eval --json`: `n`, `accuracy`, `macro_f1`,
`per_class` (precision, recall, f1, support per class name) and `confusion`
(rows = true class, columns = predicted class).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from .data import CLASS_NAMES, load
from .export import read_metadata


def preprocess(images_u8: np.ndarray, metadata: dict[str, str]) -> np.ndarray:
    """uint8 (N, S, S) faces -> the model input (N, 1, S, S) float32, from the model's metadata."""
    scale, mean, std = (float(metadata[k]) for k in ("pixel_scale", "mean", "std"))
    return ((images_u8.astype(np.float32) * scale - mean) / std)[:, None, :, :].astype(np.float32)


def mirror_average(probs: np.ndarray, mirrored_probs: np.ndarray) -> np.ndarray:
    """The softmax of the mean logits of each face and its mirror image, from the two softmaxes.

    softmax((a + b) / 2) is proportional to sqrt(softmax(a) * softmax(b)): the normalised
    geometric mean, which the device computes the same way (`classify.mirror`).
    """
    geometric = np.sqrt(probs.astype(np.float64) * mirrored_probs.astype(np.float64))
    return (geometric / geometric.sum(axis=1, keepdims=True)).astype(np.float32)


def onnx_probabilities(
    model_path: str, images_u8: np.ndarray, batch_size: int = 256, threads: int = 1, mirror: bool = False
) -> np.ndarray:
    """Class probabilities (N, K) from onnxruntime; with `mirror`, each face averaged with its mirror image."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    metadata = read_metadata(model_path)
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        out = [session.run(None, {name: x[i : i + batch_size]})[0] for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(CLASS_NAMES)), np.float32)

    x = preprocess(images_u8, metadata)
    probs = run(x)
    if mirror and metadata.get("test_time") != "mirror-average":
        probs = mirror_average(probs, run(np.ascontiguousarray(x[:, :, :, ::-1])))
    return probs


def report(labels: np.ndarray, predictions: np.ndarray, class_names=CLASS_NAMES) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""
    k = len(class_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    per_class, f1s = {}, []
    for i, name in enumerate(class_names):
        tp = confusion[i, i]
        predicted, actual = confusion[:, i].sum(), confusion[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(actual)}
        f1s.append(f1)
    n = int(len(labels))
    return {
        "n": n,
        "accuracy": float((labels == predictions).mean()) if n else 0.0,
        "macro_f1": float(np.mean(f1s)),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def evaluate_onnx(model_path: str, data_path: str, usage: str, mirror: bool = False) -> tuple[dict, np.ndarray]:
    """Report for `model_path` on one usage of the data, and its probabilities."""
    split = load(data_path, (usage,))[usage]
    probs = onnx_probabilities(model_path, split.images, mirror=mirror)
    return report(split.labels, probs.argmax(1)), probs


def format_report(result: dict) -> str:
    """Human-readable report: accuracy, macro-F1, per-class table, confusion matrix."""
    names = list(result["per_class"])
    lines = [f"n = {result['n']}", f"accuracy = {100 * result['accuracy']:.2f}%", f"macro-F1 = {result['macro_f1']:.4f}", ""]
    lines.append(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for name in names:
        c = result["per_class"][name]
        lines.append(f"{name:<10}{c['precision']:>10.3f}{c['recall']:>10.3f}{c['f1']:>10.3f}{c['support']:>9}")
    lines += ["", "confusion (rows true, columns predicted)", " " * 10 + "".join(f"{n[:8]:>9}" for n in names)]
    for name, row in zip(names, result["confusion"]):
        lines.append(f"{name:<10}" + "".join(f"{v:>9}" for v in row))
    return "\n".join(lines)
