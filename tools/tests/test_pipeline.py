"""End to end on a tiny synthetic CSV: train, export, quantize, reload with onnxruntime."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
from onnx import numpy_helper
import pytest
import torch

from emotion_tools.__main__ import main
from emotion_tools.data import CLASS_NAMES, PUBLIC_TEST, load
from emotion_tools.evaluate import onnx_probabilities, report
from emotion_tools.export import CALIBRATED_CROP, read_metadata
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


def test_resume_with_epochs_sets_a_new_length(tiny_csv, tmp_path, capsys):
    out = tmp_path / "run"
    first = ["--epochs", "3", "--warmup-epochs", "1", "--batch-size", "16", "--max-steps", "5", "--width", "0.25"]
    main(["train", "--data", str(tiny_csv), "--out", str(out)] + first)
    assert main(["train", "--data", str(tiny_csv), "--out", str(out), "--resume", "--epochs", "1"]) == 2
    assert "--epochs 1 but 1 epochs are already done" in capsys.readouterr().err
    main(["train", "--data", str(tiny_csv), "--out", str(out), "--resume", "--epochs", "2"])
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert torch.load(out / "last.pt", weights_only=False)["config"]["epochs"] == 2
    # 5 steps per epoch, 5 of warm-up: the last step (9) is 4/5 into the 5-step cosine of the
    # new length, where the 3-epoch run would have been 4/10 into its 10-step one.
    assert log[-1]["lr"] == pytest.approx(2e-3 * 0.5 * (1 + math.cos(math.pi * 4 / 5)))


def test_init_from_starts_with_the_checkpoint_weights_and_architecture(tiny_csv, tmp_path):
    first = tmp_path / "first_cycle"
    architecture = ["--width", "0.25", "--stem-stride", "2", "--layout", "fused"]
    assert main(["train", "--data", str(tiny_csv), "--out", str(first), "--epochs", "1", "--batch-size", "16"] + architecture) == 0
    out = tmp_path / "second_cycle"
    # No architecture options: they and the normalisation must come from the checkpoint.
    assert main(["train", "--data", str(tiny_csv), "--out", str(out), "--init-from", str(first / "best.pt"), "--max-steps", "0"]) == 0
    source = torch.load(first / "best.pt", weights_only=False)
    started = torch.load(out / "best.pt", weights_only=False)
    assert (started["config"]["width"], started["config"]["stem_stride"], started["config"]["layout"]) == (0.25, 2, "fused")
    assert (started["config"]["mean"], started["config"]["std"]) == (source["config"]["mean"], source["config"]["std"])
    for name, tensor in source["model"].items():
        assert torch.equal(started["model"][name], tensor), name


def test_export_quantize_and_reload(trained, tiny_csv, tmp_path):
    float_path = tmp_path / "model_f32.onnx"
    assert main(["export", "--checkpoint", str(trained / "best.pt"), "--out", str(float_path)]) == 0
    meta = read_metadata(float_path)
    assert meta["class_names"].split(",") == list(CLASS_NAMES)
    assert meta["input_size"] == "48"
    # Every export carries the calibrated crop, so the runtime cuts faces as they were measured.
    assert {k: v for k, v in meta.items() if k.startswith("crop_")} == CALIBRATED_CROP.metadata()

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
    assert "predictions" not in printed

    args = ["evaluate", "--model", str(float_path), "--data", str(tiny_csv), "--json", "--with-predictions"]
    assert main(args) == 0
    with_rows = json.loads(capsys.readouterr().out.splitlines()[0])
    assert len(with_rows["predictions"]) == 21
    # The predictions are the rows the confusion matrix counts: its column sums.
    columns = [sum(row[k] for row in with_rows["confusion"]) for k in range(len(CLASS_NAMES))]
    assert columns == [with_rows["predictions"].count(k) for k in range(len(CLASS_NAMES))]


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



def _op_count(graph: onnx.GraphProto, op_type: str) -> int:
    return sum(node.op_type == op_type for node in graph.node)


def _weighted_layers(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]


def _dequantized(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Output name -> value of each DequantizeLinear, computed with numpy from its constant inputs."""
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    dequantized = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear":
            quantized, scale = values[node.input[0]].astype(np.float32), values[node.input[1]]
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [-1 if d == axis else 1 for d in range(quantized.ndim)] if scale.ndim else []
            dequantized[node.output[0]] = quantized * scale.reshape(shape)
    return dequantized


def _with_weights_of(float_model: onnx.ModelProto, int8_model: onnx.ModelProto) -> onnx.ModelProto:
    """`float_model` with each layer's weight replaced by the dequantized int8 weight of the same layer."""
    dequantized = _dequantized(int8_model)
    replaced = onnx.ModelProto()
    replaced.CopyFrom(float_model)
    weights = {t.name: t for t in replaced.graph.initializer}
    for float_layer, int8_layer in zip(_weighted_layers(replaced), _weighted_layers(int8_model), strict=True):
        name = float_layer.input[1]
        weights[name].CopyFrom(numpy_helper.from_array(dequantized[int8_layer.input[1]], name))
    return replaced


def test_int8_weights_form_is_the_float_graph_on_int8_weights(trained, tiny_csv, tmp_path):
    float_path = tmp_path / "model_f32.onnx"
    int8_path = tmp_path / "model_int8.onnx"
    assert main(["export", "--checkpoint", str(trained / "best.pt"), "--out", str(float_path)]) == 0
    # No --form: int8-weights is the default.
    assert main(["quantize", "--model", str(float_path), "--data", str(tiny_csv), "--out", str(int8_path), "--calibration-count", "50"]) == 0
    float_model, int8_model = onnx.load(str(float_path)), onnx.load(str(int8_path))
    graph = int8_model.graph

    initializers = {t.name: t for t in graph.initializer}
    dequantize = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    assert _op_count(graph, "QuantizeLinear") == 0
    assert all(initializers[n.input[0]].data_type == onnx.TensorProto.INT8 for n in dequantize.values())
    layers = _weighted_layers(int8_model)
    assert len(layers) == len(dequantize) and all(n.input[1] in dequantize for n in layers)
    # No float copy of a weight: float tensors are per-channel scales, biases and Clip bounds.
    assert all(len(t.dims) <= 1 for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    assert _op_count(graph, "Clip") == _op_count(float_model.graph, "Clip") > 0
    assert all(n.domain in ("", "ai.onnx") for n in graph.node)
    assert list(int8_model.opset_import) == list(float_model.opset_import)
    metadata, float_metadata = read_metadata(int8_path), read_metadata(float_path)
    assert metadata.pop("precision").startswith("int8 (int8-weights") and float_metadata.pop("precision") == "float32"
    assert metadata == float_metadata

    images = load(tiny_csv, (PUBLIC_TEST,))[PUBLIC_TEST].images
    int8_probs = onnx_probabilities(str(int8_path), images)
    reference_path = tmp_path / "model_f32_int8_weights.onnx"
    onnx.save(_with_weights_of(float_model, int8_model), str(reference_path))
    # The same function as the float graph on the rounded weights: only float32 evaluation order
    # differs (about 1e-8 here); a lost ReLU6 clamp moves this model's probabilities by about 7e-3.
    np.testing.assert_allclose(int8_probs, onnx_probabilities(str(reference_path), images), atol=1e-6)
    # Against the float weights: per-channel rounding moves each weight by at most 1/254 of its
    # channel's largest, about 4e-5 in probability for this barely trained net; 1e-3 keeps a 25x
    # margin and still fails a graph that lost its clamps.
    np.testing.assert_allclose(int8_probs, onnx_probabilities(str(float_path), images), atol=1e-3)


def test_distilled_fused_stride_2_run_records_its_teacher_and_exports(trained, tiny_csv, tmp_path):
    from emotion_tools.train import TrainConfig, load_teacher

    out = tmp_path / "student"
    teacher = str(trained / "last.pt")
    args = ["train", "--data", str(tiny_csv), "--out", str(out), "--epochs", "1", "--batch-size", "16", "--width", "0.25"]
    options = ["--stem-stride", "2", "--layout", "fused", "--teacher", teacher, "--distill-weight", "0.5", "--teacher-mirror"]
    assert main(args + options) == 0
    config = torch.load(out / "last.pt", weights_only=False)["config"]
    recorded = (config["teachers"], config["distill_weight"], config["stem_stride"], config["layout"], config["teacher_mirror"])
    assert recorded == ([teacher], 0.5, 2, "fused", True)

    # A last.pt teacher is its averaged weights.
    state = torch.load(trained / "last.pt", weights_only=False)
    loaded = load_teacher(teacher, TrainConfig(**state["config"]))
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, state["ema"]["module." + name]), name
    with pytest.raises(ValueError, match="normalisation"):
        load_teacher(teacher, TrainConfig(width=0.25, mean=0.1, std=0.2))

    float_path = tmp_path / "student.onnx"
    assert main(["export", "--checkpoint", str(out / "best.pt"), "--out", str(float_path)]) == 0
    assert "fused early stages, width 0.25, stride-2 stem" in read_metadata(float_path)["architecture"]
    split = load(tiny_csv, (PUBLIC_TEST,))[PUBLIC_TEST]
    model, config = load_checkpoint_model(out / "best.pt")
    with torch.no_grad():
        torch_probs = torch.softmax(model(normalise(torch.from_numpy(split.images), config.mean, config.std)), 1).numpy()
    np.testing.assert_allclose(onnx_probabilities(str(float_path), split.images), torch_probs, atol=1e-4)


def test_plain_cnn_teacher_trains_and_teaches_a_mobilenet_student(tiny_csv, tmp_path):
    from emotion_tools.model import EmotionMobileNet, TeacherCNN

    teacher_dir, student_dir = tmp_path / "teacher", tmp_path / "student"
    common = ["--data", str(tiny_csv), "--epochs", "1", "--batch-size", "16", "--width", "0.25"]
    assert main(["train", "--out", str(teacher_dir), "--arch", "teacher-cnn"] + common) == 0
    teacher, teacher_config = load_checkpoint_model(teacher_dir / "best.pt")
    assert isinstance(teacher, TeacherCNN) and teacher_config.arch == "teacher-cnn"

    teacher_path = str(teacher_dir / "best.pt")
    assert main(["train", "--out", str(student_dir), "--teacher", teacher_path, "--stem-stride", "2"] + common) == 0
    student, student_config = load_checkpoint_model(student_dir / "best.pt")
    assert isinstance(student, EmotionMobileNet)
    assert (student_config.arch, student_config.teachers) == ("mobilenet", [teacher_path])

    # The teacher exports too (to score it with onnxruntime), described as what it is.
    float_path = tmp_path / "teacher.onnx"
    assert main(["export", "--checkpoint", teacher_path, "--out", str(float_path)]) == 0
    assert read_metadata(float_path)["architecture"].startswith("plain CNN teacher")
    split = load(tiny_csv, (PUBLIC_TEST,))[PUBLIC_TEST]
    with torch.no_grad():
        torch_probs = torch.softmax(teacher(normalise(torch.from_numpy(split.images), teacher_config.mean, teacher_config.std)), 1).numpy()
    np.testing.assert_allclose(onnx_probabilities(str(float_path), split.images), torch_probs, atol=1e-4)


def _face_dependent_random_checkpoint(path, images: np.ndarray, seed: int, arch: str = "mobilenet"):
    """A checkpoint of random weights whose answers depend on the face.

    Barely trained fixture models answer nearly the same for every face. Here the BatchNorm
    statistics are set from one batch of `images` (so activations keep their scale) and the
    classifier is scaled up from its 0.01 initialisation.
    """
    from dataclasses import asdict

    from emotion_tools.train import TrainConfig, build_model

    torch.manual_seed(seed)
    config = TrainConfig(arch=arch, width=0.25, mean=0.3, std=0.2)
    model = build_model(config)
    model.classifier.weight.data.normal_(0, 0.05)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    with torch.no_grad():
        model.train()(normalise(torch.from_numpy(images), config.mean, config.std))
    torch.save({"config": asdict(config), "epoch": 0, "model": model.state_dict()}, path)
    return path


@pytest.mark.parametrize("mirror", [False, True])
def test_ensemble_scores_checkpoints_alone_and_averaged(tiny_csv, tmp_path, capsys, mirror):
    # Expected values from the exported graphs run by onnxruntime, not from the checkpoint code path.
    split = load(tiny_csv, (PUBLIC_TEST,))[PUBLIC_TEST]
    paths = [
        str(_face_dependent_random_checkpoint(tmp_path / "mobilenet.pt", split.images, seed=5)),
        str(_face_dependent_random_checkpoint(tmp_path / "cnn.pt", split.images, seed=6, arch="teacher-cnn")),
    ]
    probs = []
    for i, path in enumerate(paths):
        onnx_path = tmp_path / f"model{i}.onnx"
        assert main(["export", "--checkpoint", path, "--out", str(onnx_path)]) == 0
        probs.append(onnx_probabilities(str(onnx_path), split.images, mirror=mirror))
    averaged = (probs[0] + probs[1]) / 2
    capsys.readouterr()

    assert main(["ensemble", "--data", str(tiny_csv)] + [a for p in paths for a in ("--checkpoint", p)] + (["--mirror"] if mirror else [])) == 0
    out = capsys.readouterr().out
    for path, p in zip(paths, probs):
        assert f"{path}: {100 * (p.argmax(1) == split.labels).mean():.2f}% on PublicTest" in out
    agreement = (probs[0].argmax(1) == probs[1].argmax(1)).mean()
    assert f"top-1 agreement of {paths[0]} and {paths[1]}: {100 * agreement:.2f}%" in out
    assert f"accuracy = {100 * (averaged.argmax(1) == split.labels).mean():.2f}%" in out
    assert ("mirror-averaged" in out) == mirror

    from emotion_tools.ensemble import score

    assert score(paths, str(tiny_csv), PUBLIC_TEST, mirror)["average"] == report(split.labels, averaged.argmax(1))


def test_ensemble_names_a_missing_checkpoint(tiny_csv, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "best.pt"
    assert main(["ensemble", "--data", str(tiny_csv), "--checkpoint", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_evaluate_mirror_matches_flip_scoring_and_survives_quantization(tiny_csv, tmp_path, capsys):
    from emotion_tools.train import predict_logits

    # The two-epoch fixture model answers nearly the same for every face, which would hide a
    # mirror that was ignored.
    split = load(tiny_csv, (PUBLIC_TEST,))[PUBLIC_TEST]
    checkpoint = _face_dependent_random_checkpoint(tmp_path / "random.pt", split.images, seed=5)
    config = load_checkpoint_model(checkpoint)[1]

    float_path = tmp_path / "single.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(float_path)]) == 0
    assert read_metadata(float_path)["test_time"] == "single"
    model, _ = load_checkpoint_model(checkpoint)
    x = normalise(torch.from_numpy(split.images), config.mean, config.std)
    # The softmax of the mean logits, computed by torch from the checkpoint: the geometric mean
    # of the two onnxruntime softmaxes must equal it.
    expected = torch.softmax(predict_logits(model, x, flip=True), 1).numpy()
    mirrored = onnx_probabilities(str(float_path), split.images, mirror=True)
    np.testing.assert_allclose(mirrored, expected, atol=1e-4)
    single = onnx_probabilities(str(float_path), split.images)
    np.testing.assert_allclose(single, torch.softmax(predict_logits(model, x), 1).numpy(), atol=1e-4)
    assert np.abs(mirrored - single).max() > 1e-3

    int8_path = tmp_path / "int8.onnx"
    assert main(["quantize", "--model", str(float_path), "--data", str(tiny_csv), "--out", str(int8_path), "--calibration-count", "50"]) == 0
    assert np.abs(onnx_probabilities(str(int8_path), split.images, mirror=True) - mirrored).max() < 0.1

    capsys.readouterr()
    assert main(["evaluate", "--model", str(int8_path), "--data", str(tiny_csv), "--json", "--mirror", "--with-predictions"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    int8_mirrored = onnx_probabilities(str(int8_path), split.images, mirror=True)
    assert line["mirror"] is True
    assert line["predictions"] == int8_mirrored.argmax(1).tolist()