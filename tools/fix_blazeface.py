"""Make the BlazeFace ONNX loadable by tract without changing what it computes.

The converted model has `ConstantOfShape` nodes without a `value` attribute. The
ONNX spec defines the default as a float32 zero, but tract 0.23 (tract-onnx
`ops/array/mod.rs`, `constant_of_shape`) defaults to a float64 zero, which then
fails type inference at the following `Concat`. Writing the default out
explicitly gives the same graph under both readings.

Usage: python tools/fix_blazeface.py SOURCE.onnx OUT.onnx
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
from onnx import numpy_helper


def make_default_explicit(model: onnx.ModelProto) -> int:
    """Give every attribute-less ConstantOfShape an explicit float32 zero; returns how many."""
    changed = 0
    for node in model.graph.node:
        if node.op_type == "ConstantOfShape" and not any(a.name == "value" for a in node.attribute):
            node.attribute.append(onnx.helper.make_attribute("value", numpy_helper.from_array(np.zeros(1, np.float32))))
            changed += 1
    return changed


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    model = onnx.load(argv[0])
    count = make_default_explicit(model)
    onnx.checker.check_model(model)
    onnx.save(model, argv[1])
    print(f"{argv[1]}: {count} ConstantOfShape nodes given an explicit float32 zero")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
