"""End to end on a tiny synthetic CSV: train, export, quantize, reload with onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from emotion_tools.__main__ import main
from emotion_tools.data import CLASS_NAMES, PUBLIC_TEST, load
from emotion_tools.evaluate import onnx_probabilities, report
from emotion_tools.export import read_metadata
from emotion_tools.train import load_checkpoint_model, normalise


@pytest.fixture
def trained(tiny_csv, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_csv), "--out", str(out), "--epochs", "2", "--batch-size", "16", "--seed", "3", "--width", "0.25"]) == 0
    return out


def test_train_writes_checkpoints_and_log(trained):
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert all(0.0 <= r["val_acc_ema"] <= 1.0 for r in log)
    assert (trained / "best.pt").exists() and (trained / "last.pt").exists()


def test_resume_continues_from_last_epoch(tiny_csv, tmp_path):
    out = tmp_path / "run"
    main(["train", "--data", str(tiny_csv), "--out", str(out), "--epochs", "3", "--batch-size", "16", "--max-steps", "5", "--width", "0.25"])
    main(["train", "--data", str(tiny_csv), "--out", str(out), "--resume"])
    epochs = [json.loads(line)["epoch"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    # 70 rows / 16 = 5 steps: the first call stops after epoch 1, the resumed one runs epochs 2 and 3.
    assert epochs == [1, 2, 3]


def test_export_quantize_and_reload(trained, tiny_csv, tmp_path):
    float_path = tmp_path / "model_f32.onnx"
    assert main(["export", "--checkpoint", str(trained / "best.pt"), "--out", str(float_path)]) == 0
    meta = read_metadata(float_path)
    assert meta["class_names"].split(",") == list(CLASS_NAMES)
    assert meta["input_size"] == "48"

    split = load(tiny_csv, (PUBLIC_TEST,))[PUBLIC_TEST]
    model, config = load_checkpoint_model(trained / "best.pt")
    with torch.no_grad():
        torch_probs = torch.softmax(model(normalise(torch.from_numpy(split.images), config.mean, config.std)), 1).numpy()
    onnx_probs = onnx_probabilities(str(float_path), split.images)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4)

    for form in ("qlinear-pointwise", "qlinear-all", "qdq"):
        int8_path = tmp_path / f"model_{form}.onnx"
        assert main(["quantize", "--model", str(float_path), "--data", str(tiny_csv), "--out", str(int8_path), "--form", form, "--calibration-count", "50"]) == 0
        graph_ops = {n.op_type for n in onnx.load(str(int8_path)).graph.node}
        assert ("QLinearConv" in graph_ops) == form.startswith("qlinear")
        # Only standard ONNX operators: tract does not implement the com.microsoft ones.
        assert all(n.domain in ("", "ai.onnx") for n in onnx.load(str(int8_path)).graph.node)
        assert read_metadata(int8_path)["mean"] == meta["mean"]
        int8_probs = onnx_probabilities(str(int8_path), split.images)
        assert np.abs(int8_probs - onnx_probs).max() < 0.1


def test_evaluate_json_matches_report(trained, tiny_csv, tmp_path, capsys):
    float_path = tmp_path / "model_f32.onnx"
    main(["export", "--checkpoint", str(trained / "best.pt"), "--out", str(float_path)])
    capsys.readouterr()
    assert main(["evaluate", "--model", str(float_path), "--data", str(tiny_csv), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[0])
    assert printed["n"] == 21
    assert sum(map(sum, printed["confusion"])) == 21


def test_report_metrics_by_hand():
    labels = np.array([0, 0, 1, 1, 2])
    predictions = np.array([0, 1, 1, 1, 0])
    result = report(labels, predictions, ("a", "b", "c"))
    assert result["accuracy"] == pytest.approx(3 / 5)
    # a: tp 1, predicted 2, actual 2 -> p .5 r .5 f1 .5; b: tp 2, predicted 3, actual 2 -> p 2/3 r 1 f1 .8; c: 0
    assert result["per_class"]["a"]["f1"] == pytest.approx(0.5)
    assert result["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert result["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert result["macro_f1"] == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert result["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
