#!/usr/bin/env bash
# Turn a training checkpoint into the shipped model files in models/:
#   emotion_mobilenet_f32.onnx (reference, not shipped in packages),
#   emotion_mobilenet_int8.onnx (what the device runs),
#   emotion_mobilenet_int8.publictest.json (onnxruntime's PublicTest report and per-row predictions
#   with each face averaged with its mirror image, the device's default `classify.mirror`,
#   which `cargo test` checks tract against).
# Usage: tools/ship.sh CHECKPOINT FER2013_CSV [FORM]   (run with the tools venv's python on PATH)
#   e.g. tools/ship.sh best.pt fer2013.csv.gz int8-weights
set -euo pipefail
checkpoint=${1:?checkpoint (best.pt)}
data=${2:?FER2013 CSV(.gz) or image-folder root}
form=${3:-int8-weights}
here=$(cd "$(dirname "$0")" && pwd)
models="../models"
cd "$here"
python -m emotion_tools export --checkpoint "$checkpoint" --out "$models/emotion_mobilenet_f32.onnx"
python -m emotion_tools quantize --model "$models/emotion_mobilenet_f32.onnx" --data "$data" \
  --out "$models/emotion_mobilenet_int8.onnx" --form "$form"
python -m emotion_tools evaluate --model "$models/emotion_mobilenet_int8.onnx" --data "$data" --usage PublicTest --json \
  --mirror --with-predictions | head -n 1 > "$models/emotion_mobilenet_int8.publictest.json"
python -m emotion_tools evaluate --model "$models/emotion_mobilenet_f32.onnx" --model "$models/emotion_mobilenet_int8.onnx" \
  --data "$data" --usage PublicTest --mirror
