"""Command line: `python -m emotion_tools {train,export,set-crop,quantize,evaluate,ensemble} ...` (run from tools/)."""

from __future__ import annotations

import argparse
import sys

from .data import DataError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emotion_tools", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train_cmd = commands.add_parser("train", help="train on Usage=Training, select on PublicTest")
    train_cmd.add_argument("--data", required=True, help="FER2013 CSV(.gz) or image-folder root")
    train_cmd.add_argument("--out", required=True, help="checkpoint folder (last.pt, best.pt, train_log.jsonl)")
    train_cmd.add_argument("--epochs", type=int, help="total epochs; with --resume, a new length for the stored run")
    train_cmd.add_argument("--batch-size", type=int)
    train_cmd.add_argument("--arch", choices=("mobilenet", "teacher-cnn"), help="teacher-cnn: a plain CNN to distil from, not shipped")
    train_cmd.add_argument("--width", type=float)
    train_cmd.add_argument("--stem-stride", type=int, choices=(1, 2), help="2 halves the resolution in the stem (faster)")
    train_cmd.add_argument(
        "--layout", choices=("v2", "fused"), help="mobilenet stages: v2 (default) or fused early stages ending on 6x6 maps"
    )
    train_cmd.add_argument("--seed", type=int)
    train_cmd.add_argument("--lr", type=float, help="peak learning rate of the cosine schedule")
    train_cmd.add_argument("--warmup-epochs", type=int)
    train_cmd.add_argument("--init-from", help="start from this checkpoint's weights (last.pt or best.pt) with a new schedule")
    train_cmd.add_argument(
        "--teacher", dest="teachers", action="append", help="distil from this checkpoint (repeat for an ensemble; best.pt or last.pt)"
    )
    train_cmd.add_argument("--distill-weight", type=float, help="share of the distillation term in the loss (default 0.7)")
    train_cmd.add_argument("--distill-temperature", type=float, help="softmax temperature of the distillation term (default 2)")
    train_cmd.add_argument(
        "--teacher-mirror", action="store_true", default=None, help="teachers average each face with its mirror image (slower)"
    )
    train_cmd.add_argument(
        "--crop-jitter",
        action="store_true",
        default=None,
        help="place each training crop as the device's crops vary around a face (DEVICE_CROP_JITTER in train.py), over a flat background",
    )
    train_cmd.add_argument("--resume", action="store_true", help="continue from OUT/last.pt with its stored settings")
    train_cmd.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (smoke tests)")
    train_cmd.add_argument("--threads", type=int, default=2)

    export_cmd = commands.add_parser("export", help="checkpoint -> float ONNX with preprocessing metadata")
    export_cmd.add_argument("--checkpoint", required=True)
    export_cmd.add_argument("--out", required=True)

    _crop_options(export_cmd)

    set_crop_cmd = commands.add_parser(
        "set-crop", help="copy an exported model with new crop metadata (emotion_pi.crop_*); weights unchanged"
    )
    set_crop_cmd.add_argument("--model", required=True, help="ONNX model from `export` or `quantize`")
    set_crop_cmd.add_argument("--out", required=True, help="where the copy goes; may be --model itself (replaced atomically)")
    _crop_options(set_crop_cmd)

    quantize_cmd = commands.add_parser("quantize", help="float ONNX -> int8 ONNX, calibrated on training images")
    quantize_cmd.add_argument("--model", required=True, help="float ONNX from `export`")
    quantize_cmd.add_argument("--data", required=True, help="FER2013 CSV(.gz) or image-folder root (Training is used)")
    quantize_cmd.add_argument("--out", required=True)
    quantize_cmd.add_argument("--form", default="int8-weights", choices=("int8-weights", "qlinear-pointwise", "qlinear-all", "qdq"))
    quantize_cmd.add_argument("--calibration-count", type=int, default=1000)

    evaluate_cmd = commands.add_parser("evaluate", help="accuracy report of ONNX model(s) with onnxruntime")
    evaluate_cmd.add_argument("--model", required=True, action="append", help="repeat to compare models (top-1 agreement)")
    evaluate_cmd.add_argument("--data", required=True)
    evaluate_cmd.add_argument("--usage", default="PublicTest", choices=("Training", "PublicTest", "PrivateTest"))
    evaluate_cmd.add_argument("--json", action="store_true", help="one JSON object per model")
    evaluate_cmd.add_argument(
        "--mirror", action="store_true", help="score each face averaged with its mirror image, as the device does by default"
    )
    evaluate_cmd.add_argument(
        "--with-predictions", action="store_true", help="with --json: add each row's predicted class index, in data order"
    )

    ensemble_cmd = commands.add_parser("ensemble", help="accuracy of checkpoints alone and averaged (choosing teachers)")
    ensemble_cmd.add_argument("--checkpoint", required=True, action="append", help="best.pt or last.pt; repeat")
    ensemble_cmd.add_argument("--data", required=True)
    ensemble_cmd.add_argument("--usage", default="PublicTest", choices=("Training", "PublicTest", "PrivateTest"))
    ensemble_cmd.add_argument("--mirror", action="store_true", help="average each face with its mirror image too")

    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            from .train import TrainConfig, train

            config = TrainConfig()
            for field in (
                "epochs",
                "batch_size",
                "arch",
                "width",
                "stem_stride",
                "layout",
                "seed",
                "lr",
                "warmup_epochs",
                "init_from",
                "teachers",
                "distill_weight",
                "distill_temperature",
                "teacher_mirror",
            ):
                if getattr(args, field) is not None:
                    setattr(config, field, getattr(args, field))
            if args.crop_jitter:
                from .train import DEVICE_CROP_JITTER

                config.crop_jitter = dict(DEVICE_CROP_JITTER)
            best = train(
                args.data,
                args.out,
                config,
                resume=args.resume,
                max_steps=args.max_steps,
                threads=args.threads,
                resume_epochs=args.epochs if args.resume else None,
            )
            print(f"best checkpoint: {best}")
        elif args.command == "export":
            from .export import export

            print(f"wrote {export(args.checkpoint, args.out, _crop(args))}")
        elif args.command == "set-crop":
            from .export import set_crop

            print(f"wrote {set_crop(args.model, args.out, _crop(args))}")
        elif args.command == "quantize":
            from .quantize import quantize

            print(f"wrote {quantize(args.model, args.data, args.out, args.form, args.calibration_count)}")
        elif args.command == "evaluate":
            return _evaluate(args)
        elif args.command == "ensemble":
            _ensemble(args)
    except (DataError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _crop_options(command: argparse.ArgumentParser) -> None:
    from .export import CALIBRATED_CROP

    group = command.add_argument_group("face crop stored in the metadata (defaults: the calibrated crop)")
    group.add_argument("--crop-margin", type=float, default=CALIBRATED_CROP.margin, help="extra side over the box's larger side, -0.5..2")
    group.add_argument(
        "--crop-offset-y", type=float, default=CALIBRATED_CROP.offset_y, help="crop centre moved towards the chin, in box sides, -0.5..0.5"
    )
    group.add_argument(
        "--crop-upright",
        choices=("true", "false"),
        default="true" if CALIBRATED_CROP.upright else "false",
        help="turn the crop so the eyes are level",
    )


def _crop(args: argparse.Namespace):
    from .export import CropGeometry

    return CropGeometry(margin=args.crop_margin, offset_y=args.crop_offset_y, upright=args.crop_upright == "true")


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from .evaluate import evaluate_onnx, format_report

    predictions = []
    for model in args.model:
        result, probs = evaluate_onnx(model, args.data, args.usage, args.mirror)
        predictions.append(probs.argmax(1))
        if args.json:
            extra = {"predictions": probs.argmax(1).tolist()} if args.with_predictions else {}
            print(json.dumps({"model": model, "usage": args.usage, "mirror": args.mirror, **result, **extra}))
        else:
            mirrored = ", each face averaged with its mirror image" if args.mirror else ""
            print(f"== {model} on {args.usage}{mirrored}\n{format_report(result)}\n")
    for model, other in zip(args.model[1:], predictions[1:]):
        agreement = float((other == predictions[0]).mean()) if len(other) else 0.0
        line = {"agreement_top1": agreement, "reference": args.model[0], "model": model}
        print(json.dumps(line) if args.json else f"top-1 agreement of {model} with {args.model[0]}: {100 * agreement:.2f}%")
    return 0


def _ensemble(args: argparse.Namespace) -> None:
    from .ensemble import score
    from .evaluate import format_report

    result = score(args.checkpoint, args.data, args.usage, args.mirror)
    mirrored = ", mirror-averaged" if args.mirror else ""
    for path, accuracy in result["models"].items():
        print(f"{path}: {100 * accuracy:.2f}% on {args.usage}{mirrored}")
    for pair in result["agreement"]:
        print(f"top-1 agreement of {pair['a']} and {pair['b']}: {100 * pair['top1']:.2f}%")
    print(f"== averaged probabilities of {len(args.checkpoint)} checkpoint(s){mirrored}\n{format_report(result['average'])}")


if __name__ == "__main__":
    sys.exit(main())
