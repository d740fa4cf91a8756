"""Time onnxruntime (one thread) on the shipped models and compare with `emotion-pi bench`.

Runs both in the same invocation so the numbers share the machine's current load:

    python tools/bench_onnxruntime.py [--binary target/release/emotion-pi] [--iterations 100]
        [--emotion-model models/emotion_mobilenet_int8.onnx]

Prints median milliseconds per inference for onnxruntime, tract's figures from
`emotion-pi bench --json`, and tract/onnxruntime ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]


def median_ms(session: ort.InferenceSession, feed: dict, iterations: int) -> float:
    session.run(None, feed)
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples))


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if not any(node.op_type == "QuantizeLinear" for node in onnx.load(str(path)).graph.node):
        # Weights-only int8 (DequantizeLinear on constants): by default onnxruntime keeps the
        # DequantizeLinear nodes and runs them on every call (1.9 ms vs 0.5 ms here); this
        # option folds them into float constants at load, as tract does.
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(ROOT / "target/release/emotion-pi"))
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--emotion-model", default=str(ROOT / "models/emotion_mobilenet_int8.onnx"))
    parser.add_argument("--detector-model", default=str(ROOT / "models/blazeface/face_detection_front_128x128_barracuda.onnx"))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    detector = session(Path(args.detector_model))
    classifier = session(Path(args.emotion_model))
    side = classifier.get_inputs()[0].shape[2]
    ort_detect = median_ms(detector, {detector.get_inputs()[0].name: rng.uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)}, args.iterations)
    ort_classify = median_ms(classifier, {classifier.get_inputs()[0].name: rng.normal(0, 1, (1, 1, side, side)).astype(np.float32)}, args.iterations)

    tract = json.loads(
        subprocess.run(
            [args.binary, "bench", "--json", "--iterations", str(args.iterations), "--emotion-model", args.emotion_model,
             "--detector-model", args.detector_model],
            check=True, capture_output=True, text=True, cwd=ROOT,
        ).stdout
    )
    stages = {s["stage"]: s["median_ms"] for s in tract["stages"]}
    rows = [
        ("detector inference (1x128x128x3)", stages["detect: inference"], ort_detect),
        ("emotion classification (1 face)", stages["classify (per face)"], ort_classify),
    ]
    print(f"{'model':<36}{'tract ms':>10}{'ort ms':>10}{'tract/ort':>11}")
    for name, t, o in rows:
        print(f"{name:<36}{t:>10.3f}{o:>10.3f}{t / o:>11.2f}")
    print(f"\ntract detect+classify frame ({tract['frame'][0]}x{tract['frame'][1]}): {stages['detect+classify frame']:.3f} ms")
    print(f"emotion model: {tract['classifier']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
