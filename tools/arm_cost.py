#!/usr/bin/env python3
"""What emotion-pi costs on a Raspberry Pi's cores, counted in aarch64 instructions.

Run through `tools/arm_cost.sh`, which builds the release binary for
aarch64-unknown-linux-gnu first. This script runs `emotion-pi bench` under the armcount
QEMU plugin (../shared/tools/armcount, see its README) once per CPU model, in a guest root
whose /proc/cpuinfo and /sys cache entries describe the board that CPU sits on, and
onnxruntime (its aarch64 wheel, one thread) on the same two models for comparison.

Per stage it prints the instructions, the NEON/FP share and an ESTIMATE of the time on the
board: instructions / (IPC x clock) at IPC 1.5 and 1.0. No Pi was measured; counts are exact
and repeatable, the times are not measurements.

Stages:
- model load: from opening the detector model to opening the bench image, found by matching
  the openat syscalls qemu's strace names with the plugin's openat markers;
- the bench's own stages (clock_gettime markers around each timed run, matched to the stage
  names of `bench --json`), of which the summary uses detector inference, the detector's
  whole frame (letterbox + inference + decode), the classifier per face and the frame, each
  for a still picture or a face new to the live loop and for a face it already tracks
  (`classify.mirror`: with the default `alternate` one pass instead of two).

`--check BASELINE` compares both frames (detect + classify one face, cortex-a72) with a
baseline written by `--write-baseline` and fails when either grew by more than 3%.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = "aarch64-unknown-linux-gnu"
BINARY = REPO / "target" / TARGET / "release" / "emotion-pi"
CACHE = REPO / "target" / "arm_cost"
DEFAULT_ARMCOUNT = REPO.parent / "shared" / "tools" / "armcount"
DETECTOR = "models/blazeface/face_detection_front_128x128_barracuda.onnx"
EMOTION = "models/emotion_mobilenet_int8.onnx"
BENCH_IMAGE = "tests/fixtures/grace_hopper.jpg"
# aarch64 syscall numbers the markers are taken at.
SYS_OPENAT, SYS_CLOCK_GETTIME, SYS_GETPPID = 56, 113, 173
# A gap between two timed runs of one bench stage is the loop's bookkeeping: a few hundred
# instructions; anything longer is work.
TINY_GAP = 400
# The frame may grow this much over the baseline before --check fails.
ALLOWED_GROWTH = 0.03
# The live loop's frame with one face it already tracks: the device's steady state, which
# the frame rate is estimated from; and the frame of a still picture or a new face.
FRAME = "detect+classify frame, tracked face"
STILL_FRAME = "detect+classify frame"
GATED = (FRAME, STILL_FRAME)


@dataclass(frozen=True)
class Board:
    """A CPU model of qemu and the Raspberry Pi it stands for."""

    cpu: str
    board: str
    clock_ghz: float
    # What the guest reads in /proc/cpuinfo and /sys; None: pi4_sysroot.sh's Pi 4 as it is.
    part: str | None = None
    variant: str = "0x0"
    revision: str = "0"
    features: str = ""
    # (level, type, size, shared by all cores)
    caches: tuple[tuple[int, str, str, bool], ...] = ()


# Clocks are the boards' stock maximum (Raspberry Pi product briefs); the features are what
# Linux lists for these cores, and the caches the boards' SoCs (Cortex-A53 and A76 Technical
# Reference Manual options as Broadcom configured them: BCM2710A1, BCM2712).
BOARDS = {
    "cortex-a72": Board("cortex-a72", "Raspberry Pi 4 (BCM2711)", 1.5),
    "cortex-a53": Board(
        "cortex-a53",
        "Raspberry Pi Zero 2 W / Pi 3 (BCM2710A1)",
        1.0,
        part="0xd03",
        revision="4",
        features="fp asimd evtstrm crc32 cpuid",
        caches=((1, "Data", "32K", False), (1, "Instruction", "32K", False), (2, "Unified", "512K", True)),
    ),
    "cortex-a76": Board(
        "cortex-a76",
        "Raspberry Pi 5 (BCM2712)",
        2.4,
        part="0xd0b",
        variant="0x4",
        revision="1",
        features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
        caches=(
            (1, "Data", "64K", False),
            (1, "Instruction", "64K", False),
            (2, "Unified", "512K", False),
            (3, "Unified", "2048K", True),
        ),
    ),
}
IPCS = (1.5, 1.0)


class CostError(Exception):
    """A run that did not give the counts this script needs; the message says which and why."""


def log(message: str) -> None:
    print(f"arm_cost: {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, **kwargs)
    if result.returncode != 0:
        stderr = result.stderr if isinstance(result.stderr, str) else ""
        raise CostError(f"{' '.join(map(str, cmd[:6]))} ... exited with {result.returncode}\n{stderr[-3000:]}")
    return result


# ---------------------------------------------------------------- guest roots


def pi4_root(armcount: Path, with_onnxruntime: bool) -> Path:
    """pi4_sysroot.sh's Raspberry Pi 4 root, built once into target/arm_cost."""
    root = CACHE / "cortex-a72"
    ready = root / ".arm_cost-ready"
    state = ready.read_text().strip() if ready.is_file() else ""
    if state == "onnxruntime" or (state == "plain" and not with_onnxruntime):
        return root
    log(f"building the Pi 4 guest root {root} (once; apt and pip downloads)")
    args = ["sh", str(armcount / "pi4_sysroot.sh"), str(root)] + (["--onnxruntime"] if with_onnxruntime else [])
    env = dict(os.environ)
    requirements = (REPO / "tools" / "requirements.txt").read_text()
    for name, var in (("onnxruntime", "ORT_VERSION"), ("numpy", "NUMPY_VERSION")):
        pinned = re.search(rf"^{name}==(\S+)", requirements, re.M)
        if pinned:
            env.setdefault(var, pinned.group(1))
    run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ready.write_text("onnxruntime\n" if with_onnxruntime else "plain\n")
    return root


def board_root(board: Board, armcount: Path, with_onnxruntime: bool) -> Path:
    """The guest root for `board`: the Pi 4 root's libraries with this board's cpuinfo and caches."""
    base = pi4_root(armcount, with_onnxruntime)
    if board.part is None:
        return base
    root = CACHE / board.cpu
    ready = root / ".arm_cost-ready"
    base_state = (base / ".arm_cost-ready").read_text()
    if ready.is_file() and ready.read_text() == base_state:
        return root
    if root.exists():
        shutil.rmtree(root)
    # Hard links: the libraries are the same files, only proc/ and sys/ differ.
    run(["cp", "-al", str(base), str(root)])
    shutil.rmtree(root / "proc")
    shutil.rmtree(root / "sys")
    describe_board(board, root)
    ready.write_text(base_state)
    return root


def describe_board(board: Board, root: Path) -> None:
    """Writes /proc/cpuinfo and /sys/devices/system/cpu of a 4-core `board` under `root`."""
    (root / "proc").mkdir(parents=True)
    entries = []
    for cpu in range(4):
        entries.append(
            f"processor\t: {cpu}\nBogoMIPS\t: 108.00\nFeatures\t: {board.features}\nCPU implementer\t: 0x41\n"
            f"CPU architecture: 8\nCPU variant\t: {board.variant}\nCPU part\t: {board.part}\nCPU revision\t: {board.revision}\n"
        )
    (root / "proc" / "cpuinfo").write_text("\n".join(entries) + f"\nModel\t\t: {board.board}\n")
    sysfs = root / "sys" / "devices" / "system" / "cpu"
    sysfs.mkdir(parents=True)
    for name in ("possible", "present", "online"):
        (sysfs / name).write_text("0-3\n")
    for cpu in range(4):
        core = sysfs / f"cpu{cpu}"
        (core / "topology").mkdir(parents=True)
        (core / "topology" / "core_id").write_text(f"{cpu}\n")
        (core / "topology" / "physical_package_id").write_text("0\n")
        (core / "topology" / "core_siblings_list").write_text("0-3\n")
        (core / "topology" / "thread_siblings_list").write_text(f"{cpu}\n")
        (core / "cpufreq").mkdir()
        (core / "cpufreq" / "cpuinfo_max_freq").write_text(f"{int(board.clock_ghz * 1e6)}\n")
        for index, (level, kind, size, shared) in enumerate(board.caches):
            entry = core / "cache" / f"index{index}"
            entry.mkdir(parents=True)
            for name, value in (
                ("level", level),
                ("type", kind),
                ("size", size),
                ("shared_cpu_list", "0-3" if shared else cpu),
                ("coherency_line_size", 64),
            ):
                (entry / name).write_text(f"{value}\n")
        # The host's further cache entries must not show through qemu's -L: a directory
        # named "level" reads as an error (as pi4_sysroot.sh does).
        (core / "cache" / f"index{len(board.caches)}" / "level").mkdir(parents=True)


# ---------------------------------------------------------------- counting runs


def armcount_cmd(armcount: Path, board: Board, root: Path, marks: Path, markers: list[int], out: Path) -> list[str]:
    return [
        "sh", str(armcount / "armcount.sh"), "--mode", "cb", "--cpu", board.cpu, "--sysroot", str(root),
        "--markers", ":".join(map(str, markers)), str(marks), "--out", str(out), "--quiet", "--",
    ]


def read_counts(path: Path) -> dict[str, int]:
    counts = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "armcount" and parts[2].isdigit():
            counts[parts[1]] = int(parts[2])
    return counts


def read_markers(path: Path) -> list[tuple[int, int, int, int]]:
    """Marker lines as (thread, syscall, insns, simd_fp_dp), in the order they were written."""
    rows = []
    for line in path.read_text().splitlines():
        seq, thread, syscall, insns, simd, *_ = (int(v) for v in line.split())
        rows.append((seq, thread, syscall, insns, simd))
    rows.sort()
    return [row[1:] for row in rows]


def timed_runs(marks: list[tuple[int, int, int, int]], thread: int, iterations: int) -> list[list[tuple[int, int]]]:
    """The bench's stages, oldest first: for each, its timed runs as (insns, simd_fp) pairs.

    Each timed run is the interval between two clock_gettime markers of the main thread, and
    consecutive runs of one stage are only a few hundred instructions apart. Scanning back
    from the end, a stage is `iterations` such intervals in a row.
    """
    points = [(insns, simd) for t, syscall, insns, simd in marks if t == thread and syscall == SYS_CLOCK_GETTIME]
    stages = []
    end = len(points)
    span = 2 * iterations
    while end - span >= 0:
        start = end - span
        runs = [(points[start + 2 * k + 1][0] - points[start + 2 * k][0],
                 points[start + 2 * k + 1][1] - points[start + 2 * k][1]) for k in range(iterations)]
        gaps = [points[start + 2 * k + 2][0] - points[start + 2 * k + 1][0] for k in range(iterations - 1)]
        if all(r[0] > TINY_GAP for r in runs) and all(g <= TINY_GAP for g in gaps):
            stages.append(runs)
            end = start
        else:
            end -= 1
    stages.reverse()
    return stages


OPENAT_LINE = re.compile(r'^\d+ openat\([^,]*,"([^"]*)"')


def load_cost(marks, thread: int, strace: str, detector: str, classifier: str, image: str) -> dict[str, tuple[int, int]]:
    """Instructions from opening each model to opening the next file of interest.

    qemu's strace names the file of every openat; the plugin marks the same calls in the
    same order, so the k-th strace openat is the k-th openat marker.
    """
    paths = [m.group(1) for m in map(OPENAT_LINE.match, strace.splitlines()) if m]
    opens = [(insns, simd) for t, syscall, insns, simd in marks if t == thread and syscall == SYS_OPENAT]
    if len(paths) != len(opens):
        raise CostError(f"strace shows {len(paths)} openat calls of the main thread but the plugin marked {len(opens)}")

    def first(path: str, after: int = -1) -> int:
        for i, p in enumerate(paths):
            if i > after and p.endswith(path):
                return i
        raise CostError(f"the bench never opened {path} (openat calls: {len(paths)})")

    det = first(detector)
    cls = first(classifier, det)
    img = first(image, cls)

    def between(a: int, b: int) -> tuple[int, int]:
        return opens[b][0] - opens[a][0], opens[b][1] - opens[a][1]

    return {"detector": between(det, cls), "classifier": between(cls, img), "both": between(det, img)}


def count_tract(binary: Path, armcount: Path, board: Board, root: Path, iterations: int,
                detector: str, classifier: str, work: Path, mirror: str | None = None) -> dict:
    """Counts `emotion-pi bench` on `board`: load and every bench stage, per run; with
    `mirror`, that `classify.mirror` mode instead of the default (`--mirror`)."""
    marks, out = work / f"{board.cpu}.marks", work / f"{board.cpu}.counts"
    cmd = armcount_cmd(armcount, board, root, marks, [SYS_OPENAT, SYS_CLOCK_GETTIME], out) + [
        str(binary), "bench", "--json", "--iterations", str(iterations),
        "--detector-model", detector, "--emotion-model", classifier, "--image", BENCH_IMAGE,
    ] + ([] if mirror is None else ["--mirror", mirror])
    env = dict(os.environ, QEMU_STRACE="1")
    env.pop("RUST_LOG", None)
    log(f"{board.cpu}: emotion-pi bench --iterations {iterations} under the counter")
    result = run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    report = json.loads(result.stdout)
    rows = read_markers(marks)
    thread = rows[0][0]
    names = [s["stage"] for s in report["stages"]]
    found = timed_runs(rows, thread, iterations)
    if len(found) < len(names):
        raise CostError(f"{board.cpu}: found {len(found)} timed stages in the markers, the bench reports {len(names)}")
    stages = {}
    for name, runs in zip(names, found[len(found) - len(names):]):
        stages[name] = {
            "insns": int(statistics.median(r[0] for r in runs)),
            "simd_fp": int(statistics.median(r[1] for r in runs)),
            "spread": max(r[0] for r in runs) - min(r[0] for r in runs),
        }
    loads = load_cost(rows, thread, result.stderr, detector, classifier, BENCH_IMAGE)
    counts = read_counts(out)
    return {
        "classifier": report.get("classifier"),
        "graph_runs_per_face": report.get("graph_runs_per_face", 1),
        "graph_runs_per_tracked_face": report.get("graph_runs_per_tracked_face", 1),
        "kernels": report.get("kernels", {}),
        "faces": report.get("faces"),
        "threads": counts.get("threads"),
        "total_insns": counts.get("insns"),
        "load": {k: {"insns": v[0], "simd_fp": v[1]} for k, v in loads.items()},
        "bench_stages": stages,
    }


def count_onnxruntime(armcount: Path, board: Board, root: Path, model: str, iterations: int, work: Path) -> dict:
    """Counts onnxruntime's session creation and one run of `model` (median of `iterations`)."""
    marks, out = work / f"ort-{board.cpu}-{Path(model).stem}.marks", work / "ort.counts"
    cmd = armcount_cmd(armcount, board, root, marks, [SYS_GETPPID], out) + [
        str(root / "usr" / "bin" / "python3.11"), str(armcount / "ort_count.py"), model, str(iterations),
    ]
    env = dict(os.environ, QEMU_SET_ENV="PYTHONPATH=/site,OPENBLAS_NUM_THREADS=1,PYTHONHASHSEED=0")
    log(f"{board.cpu}: onnxruntime on {model} under the counter")
    run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    rows = read_markers(marks)
    points = [(insns, simd) for _, syscall, insns, simd in rows if syscall == SYS_GETPPID]
    if len(points) != 2 * (iterations + 2):
        raise CostError(f"ort_count.py on {model}: {len(points)} markers, expected {2 * (iterations + 2)}")
    pairs = [(points[2 * i + 1][0] - points[2 * i][0], points[2 * i + 1][1] - points[2 * i][1]) for i in range(iterations + 2)]
    runs = pairs[2:]
    return {
        "load": {"insns": pairs[0][0], "simd_fp": pairs[0][1]},
        "run": {"insns": int(statistics.median(r[0] for r in runs)), "simd_fp": int(statistics.median(r[1] for r in runs))},
    }


# ---------------------------------------------------------------- summary


def summary(tract: dict, ort: dict | None) -> list[dict]:
    """The headline stages, each with onnxruntime's counterpart where it has one: onnxruntime's
    emotion run counted as many times per face as tract runs the graph (face and mirror image)."""
    bench = tract["bench_stages"]
    def ort_runs(passes: int) -> dict | None:
        return ort and {key: value * passes for key, value in ort["emotion"]["run"].items()}

    ort_face, ort_tracked = ort_runs(tract.get("graph_runs_per_face", 1)), ort_runs(tract.get("graph_runs_per_tracked_face", 1))

    def stage(name: str) -> dict:
        if name not in bench:
            raise CostError(f"the bench has no stage {name!r}; its stages: {', '.join(bench)}")
        return bench[name]

    detector_frame = [stage(n) for n in ("detect: letterbox", "detect: inference", "detect: decode+nms")]

    def total(parts: list[dict]) -> dict:
        return {"insns": sum(p["insns"] for p in parts), "simd_fp": sum(p["simd_fp"] for p in parts)}

    rows = [
        ("model load (both models)", tract["load"]["both"], ort and total([ort["detector"]["load"], ort["emotion"]["load"]])),
        ("  detector load", tract["load"]["detector"], ort and ort["detector"]["load"]),
        ("  emotion model load", tract["load"]["classifier"], ort and ort["emotion"]["load"]),
        ("detector inference per frame", stage("detect: inference"), ort and ort["detector"]["run"]),
        ("detector per frame (letterbox+inference+decode)", total(detector_frame), None),
        ("detector refine per face (detect.refine)", stage("detect: refine (per face)"), None),
        ("classifier per face", stage("classify (per face)"), ort_face),
        (STILL_FRAME, stage("detect+classify frame"), ort and total([ort["detector"]["run"], ort_face])),
        ("classifier per tracked face", stage("classify (tracked face)"), ort_tracked),
        (FRAME, stage("detect+classify frame (tracked face)"), ort and total([ort["detector"]["run"], ort_tracked])),
    ]
    return [{"stage": name, "tract": dict(t), "onnxruntime": o and dict(o)} for name, t, o in rows]


def estimate_ms(insns: int, board: Board, ipc: float) -> float:
    return insns / (ipc * board.clock_ghz * 1e9) * 1e3


def print_table(results: dict) -> None:
    print("emotion-pi: aarch64 instructions per stage, counted with armcount under qemu-aarch64 (exact, repeatable)")
    print("Times are ESTIMATES from the counts, not measurements: instructions / (IPC x the board's clock).")
    print(f"Frame: {BENCH_IMAGE} framed at 640x480, one face. onnxruntime: its aarch64 wheel, one thread,")
    print("inference only (its 'frame' is detector + classifier runs; tract's includes letterbox, decode, crop);")
    print("its classifier runs as often per face as tract's (twice with the mirror image, classify.mirror).")
    print("'tracked face': a face the live loop already follows (one pass with classify.mirror = alternate).")
    for cpu, entry in results["cpus"].items():
        board = BOARDS[cpu]
        tract = entry["tract"]
        print()
        print(f"== {cpu}: {board.board}, estimates at {board.clock_ghz} GHz")
        header = f"{'stage':<50}{'M insns':>10}{'M NEON/FP':>11}"
        header += "".join(f"{'est ms IPC ' + str(ipc):>16}" for ipc in IPCS)
        header += f"{'ort M insns':>13}{'tract/ort':>11}"
        print(header)
        for row in entry["summary"]:
            t, o = row["tract"], row["onnxruntime"]
            line = f"{row['stage']:<50}{t['insns'] / 1e6:>10.1f}{t['simd_fp'] / 1e6:>11.1f}"
            line += "".join(f"{estimate_ms(t['insns'], board, ipc):>16.1f}" for ipc in IPCS)
            if o:
                line += f"{o['insns'] / 1e6:>13.1f}{t['insns'] / o['insns']:>11.2f}"
            print(line)
        frame = next(r for r in entry["summary"] if r["stage"] == FRAME)["tract"]["insns"]
        fps = [1e3 / estimate_ms(frame, board, ipc) for ipc in IPCS]
        print(f"estimated one-core frame rate: {fps[0]:.0f} FPS at IPC 1.5, {fps[1]:.0f} FPS at IPC 1.0 (ESTIMATE)")
        if tract.get("kernels"):
            for model, picks in tract["kernels"].items():
                print(f"tract kernels, {model}: " + ", ".join(f"{k} x{n}" for k, n in picks.items()))


# ---------------------------------------------------------------- baseline


def sha256(path: str) -> str:
    return hashlib.sha256((REPO / path).read_bytes()).hexdigest()


def baseline_of(results: dict) -> dict:
    entry = results["cpus"]["cortex-a72"]
    return {
        "what": "aarch64 instructions of emotion-pi bench under qemu-aarch64 -cpu cortex-a72 (tools/arm_cost.sh); "
        "--check fails when either frame grows more than 3% over its count in stages",
        "cpu": "cortex-a72",
        "models": {p: sha256(p) for p in (results["detector"], results["classifier"])},
        "stages": {r["stage"].strip(): r["tract"]["insns"] for r in entry["summary"]},
    }


def check(results: dict, baseline_path: Path) -> int:
    baseline = json.loads(baseline_path.read_text())
    now = baseline_of(results)
    for stage, before in baseline["stages"].items():
        after = now["stages"].get(stage)
        if after is not None:
            print(f"{stage:<50}{before / 1e6:>10.2f} M -> {after / 1e6:>8.2f} M  ({(after / before - 1) * 100:+.2f}%)")
    changed = [p for p, digest in baseline["models"].items() if now["models"].get(p) != digest]
    if changed:
        print(f"note: model files differ from the baseline's: {', '.join(changed)}")
    failed = 0
    for frame in GATED:
        before, after = baseline["stages"].get(frame), now["stages"][frame]
        if before is None:
            print(f"FAIL: the baseline has no {frame!r}; rewrite it: tools/arm_cost.sh --write-baseline {baseline_path}")
            failed = 1
            continue
        growth = after / before - 1
        if growth > ALLOWED_GROWTH:
            print(
                f"FAIL: {frame} takes {after:,} instructions, {growth * 100:+.2f}% over the baseline's {before:,} "
                f"(allowed +{ALLOWED_GROWTH:.0%}). If the growth is wanted, rewrite the baseline in the same change: "
                f"tools/arm_cost.sh --write-baseline {baseline_path}"
            )
            failed = 1
        else:
            print(f"OK: {frame} takes {after:,} instructions ({growth * 100:+.2f}% against the baseline, "
                  f"at most +{ALLOWED_GROWTH:.0%} allowed)")
    return failed


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="append", choices=sorted(BOARDS),
                        help="CPU model to count on (repeat; default: cortex-a72, cortex-a53 and cortex-a76)")
    parser.add_argument("--iterations", type=int, default=3, help="timed runs per stage (median; at least 2)")
    parser.add_argument("--mirror", choices=("off", "always", "alternate"),
                        help="count the device with this classify.mirror mode instead of the default")
    parser.add_argument("--no-ort", action="store_true", help="skip onnxruntime")
    parser.add_argument("--ort-all-cpus", action="store_true", help="count onnxruntime on every CPU (default: cortex-a72 only)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--roots", action="store_true",
                        help="only build the guest roots of the CPUs (no onnxruntime) and print 'CPU ROOT' lines, "
                        "for running programs with qemu-aarch64 -cpu CPU -L ROOT")
    parser.add_argument("--detector-model", default=DETECTOR)
    parser.add_argument("--emotion-model", default=EMOTION)
    parser.add_argument("--check", metavar="BASELINE", type=Path,
                        help="cortex-a72 only, no onnxruntime: fail if the frame grew more than 3%% over BASELINE")
    parser.add_argument("--write-baseline", metavar="BASELINE", type=Path, help="write the cortex-a72 counts to BASELINE")
    parser.add_argument("--armcount", type=Path, default=Path(os.environ.get("ARMCOUNT_DIR", DEFAULT_ARMCOUNT)),
                        help="the armcount tool folder (default ../shared/tools/armcount beside the checkout)")
    args = parser.parse_args(argv)
    if args.iterations < 2:
        parser.error("--iterations must be at least 2 (consecutive timed runs tell the stages apart)")
    cpus = args.cpu or ["cortex-a72", "cortex-a53", "cortex-a76"]
    with_ort = not args.no_ort
    if args.mirror and (args.check or args.write_baseline):
        parser.error("the baseline counts the shipped default settings: --mirror cannot check or write it")
    if args.check or args.write_baseline:
        cpus = ["cortex-a72"] if args.check else sorted(set(cpus) | {"cortex-a72"}, key=list(BOARDS).index)
        with_ort = with_ort and not args.check
    if args.roots:
        for cpu in cpus:
            print(cpu, board_root(BOARDS[cpu], args.armcount, with_onnxruntime=False))
        return 0
    if not BINARY.is_file():
        raise CostError(f"{BINARY} is missing: build it with cargo build --release --target {TARGET}")
    if not (args.armcount / "armcount.sh").is_file():
        raise CostError(f"{args.armcount}: no armcount.sh there (pass --armcount DIR or set ARMCOUNT_DIR)")
    for model in (args.detector_model, args.emotion_model):
        if not (REPO / model).is_file():
            raise CostError(f"{model}: no such model file (paths are relative to {REPO})")
    results = {"detector": args.detector_model, "classifier": args.emotion_model, "iterations": args.iterations, "cpus": {}}
    with tempfile.TemporaryDirectory(prefix="arm_cost.") as tmp:
        work = Path(tmp)
        for cpu in cpus:
            board = BOARDS[cpu]
            ort_here = with_ort and (cpu == "cortex-a72" or args.ort_all_cpus)
            root = board_root(board, args.armcount, with_ort)
            tract = count_tract(BINARY, args.armcount, board, root, args.iterations,
                                args.detector_model, args.emotion_model, work, mirror=args.mirror)
            ort = None
            if ort_here:
                ort = {
                    "detector": count_onnxruntime(args.armcount, board, root, args.detector_model, args.iterations, work),
                    "emotion": count_onnxruntime(args.armcount, board, root, args.emotion_model, args.iterations, work),
                }
            entry = {"board": board.board, "clock_ghz": board.clock_ghz, "tract": tract, "onnxruntime": ort,
                     "summary": summary(tract, ort)}
            for row in entry["summary"]:
                row["tract"]["est_ms"] = {f"ipc_{ipc}": round(estimate_ms(row["tract"]["insns"], board, ipc), 2) for ipc in IPCS}
            results["cpus"][cpu] = entry
    if args.write_baseline:
        args.write_baseline.write_text(json.dumps(baseline_of(results), indent=2) + "\n")
        log(f"wrote {args.write_baseline}")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    if args.check:
        print()
        return check(results, args.check)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CostError as error:
        print(f"arm_cost: {error}", file=sys.stderr)
        sys.exit(1)
