#!/usr/bin/env python3
"""Independent reference implementation of MediaPipe BlazeFace face detection
(pre- and post-processing) used to produce golden values for the Rust
implementation in emotion-pi: the short-range model (below, N = 128) or, with
``--range long``, the long-range one (N = 256, the differences in RANGES).

Pipeline (all geometry in float64):

1. Letterbox the RGB image into a 128x128 canvas (see :func:`letterbox`),
   black padding; shrinking, each canvas pixel is the mean of the image area
   it covers (area resampling), enlarging, bilinear sampling with pixel-centre
   alignment.
2. Normalise RGB to [-1, 1] (``v / 127.5 - 1``); padding is black *before*
   normalisation, i.e. -1 after it.
3. Run ``models/blazeface/face_detection_front_128x128_barracuda.onnx``
   (input ``input:0`` NHWC 1x128x128x3 float32).
4. Concatenate outputs stride-8 first: scores = [Identity:0 (512),
   Identity_1:0 (384)], regressors = [Identity_2:0, Identity_3:0] (896x16).
5. Decode against the 896 SSD anchors of MediaPipe's SsdAnchorsCalculator
   configured for face_detection_short_range (see :func:`ssd_anchors`), the
   way TensorsToDetectionsCalculator does (see :func:`decode`).
6. Weighted non-max suppression (MediaPipe NonMaxSuppressionCalculator,
   algorithm WEIGHTED, IoU, threshold 0.3), see :func:`weighted_nms`.
7. Undo the letterbox to get original-image pixel coordinates.

Usage (from the repository root)::

    python tools/blazeface_reference.py --out tests/fixtures/blazeface_reference.json
    python tools/blazeface_reference.py --range long --out tests/fixtures/blazeface_long_reference.json

Optional ``--draw DIR`` writes PNGs with the final boxes/keypoints drawn, for
visual checking.

Dependencies: numpy, onnxruntime, Pillow.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = REPO_ROOT / "models" / "blazeface" / "face_detection_front_128x128_barracuda.onnx"
FIXTURES = REPO_ROOT / "tests" / "fixtures"

INPUT_SIZE = 128
MIN_SCORE_THRESH = 0.5
SCORE_CLIPPING_THRESH = 100.0
MIN_SUPPRESSION_THRESHOLD = 0.3
NUM_KEYPOINTS = 6
# Keypoint order of MediaPipe's face detector (confirmed visually on the
# fixtures: keypoint 0 lies on the image's left side = subject's right eye).
KEYPOINT_NAMES = [
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
]

# What differs between the two detectors: the file, the input side, MediaPipe's
# min_score_thresh and the anchors' min_scale and strides. The long-range values
# are those of MediaPipe's graphs/face_detection/face_detection_back_desktop_live.pbtxt.
RANGES = {
    "short": dict(model="face_detection_front_128x128_barracuda.onnx", size=128, min_score=0.5,
                  min_scale=0.1484375, strides=[8, 16, 16, 16]),
    "long": dict(model="face_detection_back_256x256_barracuda.onnx", size=256, min_score=0.65,
                 min_scale=0.15625, strides=[16, 32, 32, 32]),
}

# SsdAnchorsCalculatorOptions of face_detection_short_range (see use_range).
ANCHOR_OPTIONS = dict(
    num_layers=4,
    min_scale=0.1484375,
    max_scale=0.75,
    input_size_height=128,
    input_size_width=128,
    anchor_offset_x=0.5,
    anchor_offset_y=0.5,
    strides=[8, 16, 16, 16],
    aspect_ratios=[1.0],
    interpolated_scale_aspect_ratio=1.0,
    fixed_anchor_size=True,
)


# --------------------------------------------------------------------------
# Image loading / composite
# --------------------------------------------------------------------------

def load_rgb(path: Path) -> np.ndarray:
    """Load an image as an (H, W, 3) uint8 RGB array (Pillow decoder)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


# Composite test images. Each is a black (0,0,0) RGB canvas of `size`
# [W, H] onto which rectangles `src` = [x, y, w, h] of the fixture `file` are
# copied (no blending, no scaling) with their top-left corner at `dst` = [x, y].
COMPOSITES = {
    # Two 256x256 face crops side by side (512x256 canvas, letterbox scale
    # 0.25): yields two detections.
    "composite": dict(
        size=[512, 256],
        pastes=[
            dict(file="astronaut.png", src=[96, 0, 256, 256], dst=[0, 0]),
            dict(file="grace_hopper.jpg", src=[140, 114, 256, 256], dst=[256, 0]),
        ],
    ),
    # The full photos side by side (1024x600 canvas, letterbox scale 0.125).
    # The astronaut's face is only ~11.5 px wide after letterboxing and is
    # NOT detected (best score there ~0.27): yields one detection (Grace).
    "composite_full": dict(
        size=[1024, 600],
        pastes=[
            dict(file="astronaut.png", src=[0, 0, 512, 512], dst=[0, 0]),
            dict(file="grace_hopper.jpg", src=[0, 0, 512, 600], dst=[512, 0]),
        ],
    ),
}


def make_composite(spec: dict, images: dict) -> np.ndarray:
    """Build a composite deterministically from a :data:`COMPOSITES` spec;
    `images` maps file name -> (H, W, 3) uint8 array."""
    w, h = spec["size"]
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    for p in spec["pastes"]:
        sx, sy, sw, sh = p["src"]
        dx, dy = p["dst"]
        canvas[dy:dy + sh, dx:dx + sw] = images[p["file"]][sy:sy + sh, sx:sx + sw]
    return canvas


# --------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------

def letterbox_params(width: int, height: int, size: int = INPUT_SIZE):
    """Return (scale, pad_x, pad_y) for fitting W x H into size x size.

    scale = min(size/W, size/H); the content (W*scale, H*scale) is centred,
    pad_x = (size - W*scale)/2, pad_y = (size - H*scale)/2 (not rounded).
    """
    scale = min(size / width, size / height)
    pad_x = (size - width * scale) / 2.0
    pad_y = (size - height * scale) / 2.0
    return scale, pad_x, pad_y


def _axis_weights(n_out: int, n_src: int, scale: float, pad: float):
    """Per-axis bilinear sampling data for the letterbox.

    For output index u the centre maps to c = (u + 0.5 - pad)/scale in source
    units; the pixel is inside the content iff 0 <= c < n_src. The sample
    position is s = c - 0.5, neighbours i0 = floor(s), i1 = i0 + 1 (each
    clamped to [0, n_src-1]) with weights (1-f, f), f = s - floor(s).
    """
    u = np.arange(n_out, dtype=np.float64)
    c = (u + 0.5 - pad) / scale
    inside = (c >= 0.0) & (c < n_src)
    s = c - 0.5
    f0 = np.floor(s)
    frac = s - f0
    i0 = np.clip(f0, 0, n_src - 1).astype(np.int64)
    i1 = np.clip(f0 + 1, 0, n_src - 1).astype(np.int64)
    return inside, i0, i1, frac


def _axis_area_weights(n_out: int, n_src: int, scale: float, pad: float):
    """Per-axis area-resampling weights for a shrinking letterbox, as a matrix.

    Output index u covers the source interval [(u - pad)/scale, (u + 1 - pad)/scale),
    clipped to [0, n_src); row u of the (n_out, n_src) matrix holds each source
    pixel's overlap with it divided by the clipped length, so the rows sum to 1.
    A pixel is inside the content iff its centre (u + 0.5 - pad)/scale is.
    """
    u = np.arange(n_out, dtype=np.float64)[:, None]
    i = np.arange(n_src, dtype=np.float64)[None, :]
    low = np.clip((u - pad) / scale, 0.0, n_src)
    high = np.clip((u + 1.0 - pad) / scale, 0.0, n_src)
    overlap = np.clip(np.minimum(high, i + 1.0) - np.maximum(low, i), 0.0, None)
    total = overlap.sum(axis=1, keepdims=True)
    weights = np.divide(overlap, total, out=np.zeros_like(overlap), where=total > 0)
    centre = (u[:, 0] + 0.5 - pad) / scale
    inside = (centre >= 0.0) & (centre < n_src)
    return inside, weights


def letterbox(rgb: np.ndarray, size: int = INPUT_SIZE):
    """Letterbox an (H, W, 3) uint8 image to (size, size, 3) float64 in [0,255].

    Shrinking (scale < 1): area resampling, see :func:`_axis_area_weights`. Enlarging:
    bilinear sampling in float64 at sx = (u+0.5-pad_x)/scale - 0.5,
    sy = (v+0.5-pad_y)/scale - 0.5, neighbours clamped to the image edge.
    Output pixels whose centre falls outside the content area are black (0).
    Returns (image, scale, pad_x, pad_y).
    """
    h, w = rgb.shape[:2]
    scale, pad_x, pad_y = letterbox_params(w, h, size)
    if scale < 1.0:
        in_x, wx = _axis_area_weights(size, w, scale, pad_x)
        in_y, wy = _axis_area_weights(size, h, scale, pad_y)
        out = np.einsum("vy,yxc,ux->vuc", wy, rgb.astype(np.float64), wx)
        mask = (in_y[:, None] & in_x[None, :])[:, :, None]
        return np.where(mask, out, 0.0), scale, pad_x, pad_y
    in_x, x0, x1, fx = _axis_weights(size, w, scale, pad_x)
    in_y, y0, y1, fy = _axis_weights(size, h, scale, pad_y)
    src = rgb.astype(np.float64)
    fx_ = fx[None, :, None]
    fy_ = fy[:, None, None]
    top = src[y0][:, x0] * (1.0 - fx_) + src[y0][:, x1] * fx_
    bot = src[y1][:, x0] * (1.0 - fx_) + src[y1][:, x1] * fx_
    out = top * (1.0 - fy_) + bot * fy_
    mask = (in_y[:, None] & in_x[None, :])[:, :, None]
    out = np.where(mask, out, 0.0)
    return out, scale, pad_x, pad_y


def normalise(img255: np.ndarray, mode: str) -> np.ndarray:
    """Map [0,255] values to the model range: 'minus1_1' -> v/127.5 - 1,
    'zero_1' -> v/255."""
    if mode == "minus1_1":
        return img255 / 127.5 - 1.0
    if mode == "zero_1":
        return img255 / 255.0
    raise ValueError(mode)


# --------------------------------------------------------------------------
# Anchors
# --------------------------------------------------------------------------

def _calculate_scale(min_scale, max_scale, stride_index, num_strides):
    if num_strides == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * stride_index / (num_strides - 1.0)


def ssd_anchors(opts=ANCHOR_OPTIONS) -> np.ndarray:
    """SSD anchors as MediaPipe's SsdAnchorsCalculator generates them.

    Consecutive layers with the same stride share one feature map; for each
    such layer there is one anchor per aspect ratio plus (if
    interpolated_scale_aspect_ratio > 0) one interpolated anchor. For the
    short-range face model this gives 2 anchors per cell on the 16x16
    (stride 8) map and 6 per cell on the 8x8 (stride 16) map: 512 + 384 = 896.
    Iteration order: feature map, then row y, then column x, then anchor.
    Centres are ((x + 0.5)/fm_w, (y + 0.5)/fm_h); with fixed_anchor_size the
    width and height are 1, so only the centres are returned, shape (896, 2).
    """
    strides = opts["strides"]
    n = opts["num_layers"]
    anchors = []
    layer = 0
    while layer < n:
        n_per_cell = 0
        last = layer
        while last < n and strides[last] == strides[layer]:
            # one anchor per aspect ratio (scale values irrelevant here since
            # fixed_anchor_size forces w = h = 1) ...
            n_per_cell += len(opts["aspect_ratios"])
            # ... plus the interpolated-scale anchor.
            if opts["interpolated_scale_aspect_ratio"] > 0.0:
                n_per_cell += 1
            last += 1
        stride = strides[layer]
        fm_h = int(math.ceil(opts["input_size_height"] / stride))
        fm_w = int(math.ceil(opts["input_size_width"] / stride))
        for y in range(fm_h):
            for x in range(fm_w):
                cx = (x + opts["anchor_offset_x"]) / fm_w
                cy = (y + opts["anchor_offset_y"]) / fm_h
                for _ in range(n_per_cell):
                    anchors.append((cx, cy))
        layer = last
    assert opts["fixed_anchor_size"]
    return np.array(anchors, dtype=np.float64)


# --------------------------------------------------------------------------
# Model + decoding
# --------------------------------------------------------------------------

class BlazeFace:
    """Thin onnxruntime wrapper returning concatenated (896,) raw scores and
    (896, 16) raw regressors, stride-8 outputs first."""

    def __init__(self, model_path: Path = MODEL_PATH):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])

    def __call__(self, tensor_hwc: np.ndarray):
        x = tensor_hwc.astype(np.float32)[None]
        s8, s16, r8, r16 = self.sess.run(
            ["Identity:0", "Identity_1:0", "Identity_2:0", "Identity_3:0"], {"input:0": x})
        scores = np.concatenate([s8[0, :, 0], s16[0, :, 0]]).astype(np.float64)
        regs = np.concatenate([r8[0], r16[0]], axis=0).astype(np.float64)
        return scores, regs


def sigmoid_scores(raw: np.ndarray) -> np.ndarray:
    """score = sigmoid(clip(raw, -100, 100))."""
    r = np.clip(raw, -SCORE_CLIPPING_THRESH, SCORE_CLIPPING_THRESH)
    return 1.0 / (1.0 + np.exp(-r))


def decode(regs: np.ndarray, anchors: np.ndarray):
    """Decode raw regressors like TensorsToDetectionsCalculator.

    Options: x/y/w/h_scale = 128, reverse_output_order (values are x_center,
    y_center, w, h), box_coord_offset 0, keypoint_coord_offset 4,
    6 keypoints of (x, y), anchor w = h = 1 (fixed_anchor_size).

    Returns boxes (N, 4) as normalised [xmin, ymin, w, h] in letterboxed
    input space and keypoints (N, 6, 2) normalised [x, y].
    """
    s = float(INPUT_SIZE)
    ax = anchors[:, 0]
    ay = anchors[:, 1]
    xc = regs[:, 0] / s + ax
    yc = regs[:, 1] / s + ay
    w = regs[:, 2] / s
    h = regs[:, 3] / s
    boxes = np.stack([xc - w / 2.0, yc - h / 2.0, w, h], axis=1)
    kp = regs[:, 4:4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2)
    kp = kp / s + anchors[:, None, :]
    return boxes, kp


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [xmin, ymin, w, h] boxes (0 when the
    boxes do not intersect or the union is non-positive)."""
    ax1, ay1 = a[0] + a[2], a[1] + a[3]
    bx1, by1 = b[0] + b[2], b[1] + b[3]
    iw = min(ax1, bx1) - max(a[0], b[0])
    ih = min(ay1, by1) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    if union <= 0:
        return 0.0
    return inter / union


def weighted_nms(scores, boxes, kps, threshold=MIN_SUPPRESSION_THRESHOLD):
    """MediaPipe WEIGHTED non-max suppression.

    Candidates are sorted by score (descending; ties keep anchor order, stable
    sort). Repeatedly: take the best remaining candidate, collect every
    remaining candidate (itself included) with IoU > threshold to it, output
    the score-weighted mean of their boxes ([xmin, ymin, w, h]) and keypoints
    with the best candidate's score, and drop the whole cluster.

    Returns list of dicts with 'score', 'box' (normalised), 'keypoints',
    'anchor' (index of the best candidate) and 'cluster' (anchor indices).
    """
    order = list(np.argsort(-scores, kind="stable"))
    out = []
    while order:
        best = order[0]
        cluster, rest = [], []
        for idx in order:
            if iou(boxes[best], boxes[idx]) > threshold:
                cluster.append(idx)
            else:
                rest.append(idx)
        wts = scores[cluster]
        tot = wts.sum()
        box = (boxes[cluster] * wts[:, None]).sum(axis=0) / tot
        kp = (kps[cluster] * wts[:, None, None]).sum(axis=0) / tot
        out.append(dict(score=float(scores[best]), box=box, keypoints=kp,
                        anchor=int(best), cluster=[int(i) for i in cluster]))
        order = rest
    return out


def unletterbox_x(xn, scale, pad_x):
    return (xn * INPUT_SIZE - pad_x) / scale


def unletterbox_y(yn, scale, pad_y):
    return (yn * INPUT_SIZE - pad_y) / scale


# --------------------------------------------------------------------------
# Full pipeline
# --------------------------------------------------------------------------

def use_range(name: str) -> None:
    """Switch the module's settings to the detector `name` of RANGES."""
    global MODEL_PATH, INPUT_SIZE, MIN_SCORE_THRESH, ANCHOR_OPTIONS
    r = RANGES[name]
    MODEL_PATH = REPO_ROOT / "models" / "blazeface" / r["model"]
    INPUT_SIZE = r["size"]
    MIN_SCORE_THRESH = r["min_score"]
    ANCHOR_OPTIONS = dict(ANCHOR_OPTIONS, input_size_height=r["size"], input_size_width=r["size"],
                          min_scale=r["min_scale"], strides=r["strides"])


def detect(model: BlazeFace, rgb: np.ndarray, anchors: np.ndarray, norm="minus1_1"):
    """Run the whole pipeline on an (H, W, 3) uint8 RGB image."""
    lb, scale, pad_x, pad_y = letterbox(rgb, INPUT_SIZE)
    tensor = normalise(lb, norm)
    raw_scores, regs = model(tensor)
    scores = sigmoid_scores(raw_scores)
    boxes, kps = decode(regs, anchors)
    keep = np.nonzero(scores >= MIN_SCORE_THRESH)[0]
    dets = weighted_nms(scores[keep], boxes[keep], kps[keep])
    for d in dets:  # map cluster/anchor indices back to the 896-anchor indexing
        d["anchor"] = int(keep[d["anchor"]])
        d["cluster"] = [int(keep[i]) for i in d["cluster"]]
    return dict(letterboxed=lb, tensor=tensor, scale=scale, pad_x=pad_x, pad_y=pad_y,
                raw_scores=raw_scores, scores=scores, boxes=boxes, kps=kps, dets=dets)


def r6(x):
    """Round floats (recursively) to 6 decimals for the JSON."""
    if isinstance(x, np.ndarray):
        return r6(x.tolist())
    if isinstance(x, dict):
        return {k: r6(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [r6(v) for v in x]
    if isinstance(x, (float, np.floating)):
        v = round(float(x), 6)
        return 0.0 if v == 0 else v
    return x


def case_record(name, files, rgb, res, top_k=5):
    """JSON record for one test case."""
    h, w = rgb.shape[:2]
    scale, px, py = res["scale"], res["pad_x"], res["pad_y"]
    scores = res["scores"]
    top = np.argsort(-scores, kind="stable")[:top_k]
    lb = res["letterboxed"]
    t = res["tensor"]
    dets = []
    for d in res["dets"]:
        b = d["box"]
        x0 = unletterbox_x(b[0], scale, px)
        y0 = unletterbox_y(b[1], scale, py)
        x1 = unletterbox_x(b[0] + b[2], scale, px)
        y1 = unletterbox_y(b[1] + b[3], scale, py)
        kp_px = [[unletterbox_x(k[0], scale, px), unletterbox_y(k[1], scale, py)]
                 for k in d["keypoints"]]
        dets.append(dict(
            score=d["score"],
            box_px=[x0, y0, x1 - x0, y1 - y0],
            keypoints_px=kp_px,
            box_norm=b,
            keypoints_norm=d["keypoints"],
            best_anchor=d["anchor"],
            cluster_size=len(d["cluster"]),
        ))
    return r6(dict(
        name=name,
        files=files,
        image_size=[w, h],
        scale=scale,
        pad_x=px,
        pad_y=py,
        letterbox_check=dict(
            note="letterboxed RGB in [0,255] before normalisation, float64; "
                 "pixel index [v][u][c] with v = row, u = column",
            sum_0_255=float(lb.sum()),
            mean_rgb_0_255=lb.reshape(-1, 3).mean(axis=0),
            pixels=[dict(u=u, v=v, rgb=lb[v, u]) for (u, v) in
                    [(0, 0), (64, 64), (10, 40), (100, 90), (127, 127), (63, 30)]],
            tensor_sum_normalised=float(t.sum()),
        ),
        num_above_threshold=int((scores >= MIN_SCORE_THRESH).sum()),
        top5_raw=[dict(anchor=int(i), raw_logit=float(res["raw_scores"][i]),
                       score=float(scores[i]), box_norm=res["boxes"][i],
                       keypoints_norm=res["kps"][i]) for i in top],
        detections=dets,
    ))


def draw(rgb, dets, path):
    """Save a PNG with boxes (green) and keypoints (0 red, 1 blue, others
    yellow) drawn on it, for visual inspection."""
    from PIL import ImageDraw
    im = Image.fromarray(rgb)
    dr = ImageDraw.Draw(im)
    colors = [(255, 0, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255), (255, 128, 0)]
    for d in dets:
        x, y, w, h = d["box_px"]
        dr.rectangle([x, y, x + w, y + h], outline=(0, 255, 0), width=3)
        for i, (kx, ky) in enumerate(d["keypoints_px"]):
            dr.ellipse([kx - 5, ky - 5, kx + 5, ky + 5], fill=colors[i])
            dr.text((kx + 6, ky - 6), str(i), fill=colors[i])
    im.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output JSON path")
    ap.add_argument("--draw", type=Path, default=None,
                    help="directory for annotated PNGs (visual check)")
    ap.add_argument("--range", choices=sorted(RANGES), default="short",
                    help="which detector (default short)")
    args = ap.parse_args()
    use_range(args.range)
    n = INPUT_SIZE

    model = BlazeFace(MODEL_PATH)
    anchors = ssd_anchors(ANCHOR_OPTIONS)
    assert anchors.shape == (896, 2)

    images = {f: load_rgb(FIXTURES / f) for f in ("grace_hopper.jpg", "astronaut.png")}
    cases = [
        ("grace_hopper", ["grace_hopper.jpg"], images["grace_hopper.jpg"]),
        ("astronaut", ["astronaut.png"], images["astronaut.png"]),
    ]
    for cname, spec in COMPOSITES.items():
        cases.append((cname, [p["file"] for p in spec["pastes"]], make_composite(spec, images)))

    # Empirical normalisation check: max detection score per photo.
    norm_check = {}
    for mode in ("minus1_1", "zero_1"):
        norm_check[mode] = {name: float(detect(model, rgb, anchors, mode)["scores"].max())
                            for name, _, rgb in cases[:2]}
        print(f"normalisation {mode}: max scores {norm_check[mode]}")

    records = []
    for name, files, rgb in cases:
        res = detect(model, rgb, anchors, "minus1_1")
        rec = case_record(name, files, rgb, res)
        rec["decoded_rgb_sum"] = {"note": "sum of all uint8 RGB values of the "
                                          "decoded (or composited) image, to detect decoder differences",
                                          "value": int(rgb.astype(np.int64).sum())}
        records.append(rec)
        print(f"{name}: {len(rec['detections'])} detection(s)")
        for d in rec["detections"]:
            print(f"   score {d['score']:.6f} box_px {d['box_px']}")
        if args.draw:
            args.draw.mkdir(parents=True, exist_ok=True)
            draw(rgb, rec["detections"], args.draw / f"blazeface_{name}.png")

    doc = dict(
        description=f"Golden values for MediaPipe BlazeFace {args.range}-range face detection "
                    f"({MODEL_PATH.name}), produced by "
                    "tools/blazeface_reference.py" + ("" if args.range == "short" else f" --range {args.range}")
                    + ". Floats rounded to 6 decimals.",
        model=f"models/blazeface/{MODEL_PATH.name}",
        image_decoding="Pillow (libjpeg for the JPEG), converted to 8-bit RGB",
        preprocessing=dict(
            input=f"input:0, NHWC 1x{n}x{n}x3 float32, RGB",
            letterbox=f"scale = min({n}/W, {n}/H); pad_x = ({n} - W*scale)/2, "
                      f"pad_y = ({n} - H*scale)/2 (floats, unrounded). Shrinking (scale < 1), "
                      "output pixel (u, v) is the mean (float64) of the source area "
                      "[(u-pad_x)/scale, (u+1-pad_x)/scale) x [(v-pad_y)/scale, (v+1-pad_y)/scale) "
                      "clipped to the image, each pixel weighted by its overlap; enlarging, it "
                      "samples the source bilinearly at sx = (u+0.5-pad_x)/scale - 0.5, "
                      "sy = (v+0.5-pad_y)/scale - 0.5, neighbours clamped to the image. If "
                      "(u+0.5-pad_x)/scale is outside [0, W) or (v+0.5-pad_y)/scale outside [0, H) "
                      "the pixel is black (0,0,0).",
            normalisation="v / 127.5 - 1 (RGB in [-1, 1]); padding black before "
                          "normalisation (-1 after)",
            normalisation_check_max_scores=r6(norm_check),
        ),
        outputs=dict(
            order=f"scores = concat(Identity:0 (512, stride {ANCHOR_OPTIONS['strides'][0]}), "
                  f"Identity_1:0 (384, stride {ANCHOR_OPTIONS['strides'][1]})); "
                  "regressors = concat(Identity_2:0, Identity_3:0) -> 896 x 16, same order as anchors",
        ),
        anchors=dict(
            options=ANCHOR_OPTIONS,
            note="896 anchors [cx, cy] normalised 0..1, w = h = 1 (fixed_anchor_size). "
                 f"Stride {ANCHOR_OPTIONS['strides'][0]}: 16x16 cells x 2, stride {ANCHOR_OPTIONS['strides'][1]}: "
                 "8x8 cells x 6; order row y, column x, "
                 "anchor; cx = (x+0.5)/fm_w, cy = (y+0.5)/fm_h.",
            centers=r6(anchors),
        ),
        decoding=dict(
            score=f"sigmoid(clip(raw, -100, 100)), keep score >= {MIN_SCORE_THRESH}",
            box=f"x_c = r[0]/{n} + a.cx, y_c = r[1]/{n} + a.cy, w = r[2]/{n}, h = r[3]/{n}; "
                "box_norm = [x_c - w/2, y_c - h/2, w, h] in letterboxed 0..1 space",
            keypoints=f"kp_i = (r[4+2i]/{n} + a.cx, r[5+2i]/{n} + a.cy), i = 0..5",
            keypoint_order=KEYPOINT_NAMES,
            keypoint_order_note="subject's right eye (image left) first; confirmed visually",
        ),
        nms=dict(
            algorithm="WEIGHTED",
            overlap="IoU on [xmin, ymin, w, h]",
            min_suppression_threshold=MIN_SUPPRESSION_THRESHOLD,
            description="sort by score desc (stable); take best remaining; cluster = remaining "
                        "with IoU > 0.3 to it (itself included); box and keypoints = "
                        "score-weighted mean over cluster; score = best's score; remove cluster; repeat",
        ),
        unletterbox=f"x_px = (x_norm*{n} - pad_x)/scale, y_px = (y_norm*{n} - pad_y)/scale; "
                    "box_px = [x, y, w, h] from transformed corners",
        composites=dict(
            description="Each composite case: an RGB canvas of size [W, H] filled with (0,0,0); "
                        "for each paste, the source rectangle src = [x, y, w, h] of the decoded "
                        "fixture is copied unscaled with its top-left corner at dst = [x, y] "
                        "(plain overwrite, in list order).",
            specs=COMPOSITES,
        ),
        cases=records,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=1)
    # Put innermost lists of numbers on one line to keep the file compact.
    text = re.sub(r"\[\s+([-0-9.eE,\s]+?)\s+\]",
                  lambda m: "[" + re.sub(r"\s+", "", m.group(1)).replace(",", ", ") + "]", text)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
