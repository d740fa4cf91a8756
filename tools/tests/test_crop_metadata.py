"""`set-crop`: the crop keys written into an exported model, everything else left as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from emotion_tools.__main__ import main
from emotion_tools.export import CALIBRATED_CROP, METADATA_PREFIX, CropGeometry, read_metadata, set_metadata


def small_model(path: Path) -> Path:
    """A one-node graph with a weight and the metadata an exported model has before the crop keys existed."""
    weight = numpy_helper.from_array(np.random.default_rng(5).standard_normal((1, 1, 4, 4)).astype(np.float32), "weight")
    graph = helper.make_graph(
        [helper.make_node("Add", ["face", "weight"], ["probabilities"])],
        "small",
        [helper.make_tensor_value_info("face", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 1, 4, 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    set_metadata(model, {METADATA_PREFIX + "mean": "0.5", METADATA_PREFIX + "class_names": "a,b", "other.key": "kept"})
    onnx.save(model, str(path))
    path.chmod(0o644)
    return path


def test_set_crop_writes_the_keys_and_keeps_graph_weights_and_other_metadata(tmp_path):
    source = small_model(tmp_path / "model.onnx")
    before = source.read_bytes()
    out = tmp_path / "calibrated.onnx"
    args = ["set-crop", "--model", str(source), "--out", str(out)]
    assert main(args + ["--crop-margin", "0.25", "--crop-offset-y", "-0.05", "--crop-upright", "false"]) == 0
    assert source.read_bytes() == before
    metadata = read_metadata(out)
    assert (metadata["crop_margin"], metadata["crop_offset_y"], metadata["crop_upright"]) == ("0.25", "-0.05", "false")
    assert metadata["mean"] == "0.5" and metadata["class_names"] == "a,b"
    original, copied = onnx.load(str(source)), onnx.load(str(out))
    assert {p.key: p.value for p in copied.metadata_props}["other.key"] == "kept"
    assert copied.graph.SerializeToString() == original.graph.SerializeToString()
    assert copied.graph.initializer[0].raw_data == original.graph.initializer[0].raw_data
    assert out.stat().st_mode & 0o777 == 0o644


def test_set_crop_in_place_replaces_the_file_whole_and_defaults_to_the_calibrated_crop(tmp_path):
    model = small_model(tmp_path / "model.onnx")
    weights = onnx.load(str(model)).graph.initializer[0].raw_data
    assert main(["set-crop", "--model", str(model), "--out", str(model)]) == 0
    assert {k: v for k, v in read_metadata(model).items() if k.startswith("crop_")} == CALIBRATED_CROP.metadata()
    assert onnx.load(str(model)).graph.initializer[0].raw_data == weights
    # Run again with other values: the keys are replaced, not repeated.
    assert main(["set-crop", "--model", str(model), "--out", str(model), "--crop-margin", "0.3"]) == 0
    keys = [p.key for p in onnx.load(str(model)).metadata_props]
    assert keys.count(METADATA_PREFIX + "crop_margin") == 1 and read_metadata(model)["crop_margin"] == "0.3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_a_crop_the_runtime_would_refuse_is_refused_here(tmp_path, capsys):
    model = small_model(tmp_path / "model.onnx")
    assert main(["set-crop", "--model", str(model), "--out", str(tmp_path / "out.onnx"), "--crop-margin", "3"]) == 2
    assert "crop margin 3.0 is outside -0.5..2" in capsys.readouterr().err
    assert not (tmp_path / "out.onnx").exists()
    with pytest.raises(ValueError, match="offset"):
        CropGeometry(margin=0.1, offset_y=0.7, upright=True)
