#!/usr/bin/env bash
# What emotion-pi costs on a Raspberry Pi, counted in aarch64 instructions (see tools/arm_cost.py).
#
#   tools/arm_cost.sh [--no-build] [arm_cost.py options]
#
# Builds the release binary for aarch64-unknown-linux-gnu (unless --no-build), then counts
# `emotion-pi bench` under ../shared/tools/armcount on qemu's cortex-a72 (Raspberry Pi 4),
# cortex-a53 (Pi Zero 2 W, Pi 3) and cortex-a76 (Pi 5), with onnxruntime on the same models
# for comparison. Pi times in the output are estimates from the counts, never measurements.
#
#   tools/arm_cost.sh                     # table: tract vs onnxruntime per stage, three CPUs
#   tools/arm_cost.sh --json              # the same as one JSON object
#   tools/arm_cost.sh --check tools/arm_cost.baseline.json
#                                         # cortex-a72 only; fails if a frame grew > 3%
#   tools/arm_cost.sh --write-baseline tools/arm_cost.baseline.json
#
# Needs qemu-user (Debian 12's 7.2), gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, the
# Rust target aarch64-unknown-linux-gnu, and root once to add dpkg's arm64 architecture
# for the guest root (cached in target/arm_cost/).
set -euo pipefail
cd "$(dirname "$0")/.."
build=yes
args=()
for arg in "$@"; do
  if [ "$arg" = --no-build ]; then build=no; else args+=("$arg"); fi
done
if [ "$build" = yes ]; then
  cargo build --release --target aarch64-unknown-linux-gnu >&2
fi
exec python3 tools/arm_cost.py "${args[@]}"
