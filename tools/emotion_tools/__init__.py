"""Model pipeline for emotion-pi: train, export (ONNX), quantize (int8), evaluate."""
