"""The command line: ``workflows-yolov5-seg <command>`` (or ``python -m workflows_yolov5_seg.cli <command>``).

Every user-facing command is declared here and nowhere else; each one's handler calls a library function of the
module named in its help. Heavy imports (Inference, ONNX Runtime, TensorRT) happen inside handlers, so ``--help`` is
instant. Lab commands (benchmark, load test, dataset generator, parity) run from their folders in a checkout.

A handler returns the exit status; a :class:`~workflows_yolov5_seg.errors.YOLOv5SegError` is printed on one line
and exits 1, bad arguments exit 2 (argparse).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from workflows_yolov5_seg import __version__
from workflows_yolov5_seg.server import DEFAULT_HOST, DEFAULT_PORT


class Command(NamedTuple):
    """One subcommand: its name, one-line help, ``--help`` description, arguments and handler."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for the static landing-page mounts Inference needs (default: WORKFLOWS_YOLOV5_SEG_SERVER_DIR, "
        "else <cache root>/server)",
    )
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument(
        "--model-root",
        dest="model_roots",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder local model paths may come from (repeatable; added to WORKFLOWS_YOLOV5_SEG_MODEL_ROOTS). "
        "Without any, the server refuses local model paths; Roboflow model ids always work.",
    )


def run_serve(args: argparse.Namespace) -> int:
    from workflows_yolov5_seg.server import serve

    if args.workers < 1:
        print("workflows-yolov5-seg serve: --workers must be >= 1", file=sys.stderr)
        return 2
    serve(
        host=args.host,
        port=args.port,
        workers=args.workers,
        workdir=args.workdir,
        log_level=args.log_level,
        model_roots=args.model_roots,
    )
    return 0


def demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (default: demo-output)")
    parser.add_argument("--image", type=Path, default=None, help="an image instead of the bundled scene")
    parser.add_argument("--model", default=None, help="a model instead of the bundled one")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="the bundled model's int8 variant (a third of the size; its speed: docs/quantization.md)",
    )


def run_demo(args: argparse.Namespace) -> int:
    from workflows_yolov5_seg.demo import run_demo as run
    from workflows_yolov5_seg.demo import summary

    result = run(args.out, args.image, args.model, int8=args.int8)
    print(f"Found {summary(result)}. Wrote {args.out / 'annotated.jpg'} and {args.out / 'result.json'}.")
    return 0


def generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="folder to write into (default: the project root holding pyproject.toml, else the current folder)",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the files are out of date")


def run_generate(args: argparse.Namespace) -> int:
    from workflows_yolov5_seg import describe

    root = args.output if args.output is not None else describe.project_root()
    files = describe.generate_files()
    if args.check:
        stale = describe.stale_files(root, files)
        if stale:
            print(
                f"Out of date under {root}: {', '.join(stale)}. Regenerate: {describe.REGENERATE_COMMAND}",
                file=sys.stderr,
            )
            return 1
        print(f"Up to date: {', '.join(sorted(files))}")
        return 0
    changed = describe.write_files(root, files)
    print(f"Wrote {', '.join(sorted(files))} under {root} ({len(changed)} changed)")
    return 0


def build_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="an .onnx file, a model package folder or a Roboflow model id")
    parser.add_argument("--precision", choices=("auto", "fp16", "fp32"), default="auto", help="default: auto")
    parser.add_argument(
        "--batch",
        default=None,
        help="batch profile 'MIN,OPT,MAX' (e.g. 1,4,8) or 'N' for a static batch (default 1,4,8; a static-batch ONNX "
        "keeps its batch)",
    )
    parser.add_argument("--device", default="cuda:0", help="CUDA device (default cuda:0)")
    parser.add_argument("--cache-dir", default=None, help="engine cache folder (default: the cache root)")
    parser.add_argument("--workspace-mib", type=int, default=None, help="cap on TensorRT's build scratch memory")
    parser.add_argument("--force", action="store_true", help="rebuild even if the engine is cached")


def run_build_engine(args: argparse.Namespace) -> int:
    from workflows_yolov5_seg.backends.tensorrt import prebuild_engine

    if not logging.getLogger().handlers:  # an engine build takes minutes: show its progress lines
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    built = prebuild_engine(
        args.model,
        precision=args.precision,
        batch=args.batch,
        device=args.device,
        cache_dir=args.cache_dir,
        workspace_bytes=None if args.workspace_mib is None else args.workspace_mib * 2**20,
        force=args.force,
    )
    key = built.key
    state = "already cached" if built.from_cache else f"built in {built.seconds:.1f} s"
    print(
        f"{built.path}\n  {state}; {key.precision}, batch {key.batch}, {key.input_hw[1]}x{key.input_hw[0]}, "
        f"{built.gpu.name} (sm_{key.compute_capability[0]}{key.compute_capability[1]}), TensorRT {key.trt_version}"
    )
    return 0


def evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    from workflows_yolov5_seg.masks import MASK_DECODE_MODES

    parser.add_argument("--model", required=True, help=".onnx file, model package folder or Roboflow id")
    parser.add_argument("--data", required=True, type=Path, help="dataset root (COCO or YOLO-seg layout)")
    parser.add_argument("--split", default="test", help="default: test")
    parser.add_argument("--layout", choices=("auto", "coco", "yolo"), default="auto")
    parser.add_argument("--confidence", type=float, default=0.001, help="default: 0.001")
    parser.add_argument(
        "--iou", type=float, default=None, help="default: the generation's val setting (YOLOv5 0.6, later 0.7)"
    )
    parser.add_argument("--max-detections", type=int, default=300, help="default: 300")
    parser.add_argument("--single-label", action="store_true", help="best class per anchor only (predict's scoring)")
    parser.add_argument("--mask-decode-mode", choices=MASK_DECODE_MODES, default="accurate")
    parser.add_argument("--tradeoff-factor", type=float, default=0.0)
    parser.add_argument("--backend", choices=("auto", "onnx", "trt"), default="auto")
    parser.add_argument("--device", default=None, help="cpu, cuda[:N] (default: the best available)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    parser.add_argument("--out", type=Path, default=None, help="write the metrics as JSON here")


def run_evaluate(args: argparse.Namespace) -> int:
    from workflows_yolov5_seg.evaluate import evaluate, format_table, load_dataset
    from workflows_yolov5_seg.model import InferenceParameters, YOLOSegModel

    model = YOLOSegModel.from_pretrained(args.model, backend=args.backend, device=args.device)
    parameters = InferenceParameters(
        confidence=args.confidence,
        iou_threshold=model.layout.val_iou_threshold if args.iou is None else args.iou,
        max_detections=args.max_detections,
        multi_label=not args.single_label,
        mask_decode_mode=args.mask_decode_mode,
        tradeoff_factor=args.tradeoff_factor,
    )
    metrics = evaluate(model, load_dataset(args.data, args.split, args.layout), parameters, args.limit)
    metrics["settings"] = {
        "model": args.model,
        "data": str(args.data),
        "split": args.split,
        "confidence": parameters.confidence,
        "iou_threshold": parameters.iou_threshold,
        "max_detections": parameters.max_detections,
        "multi_label": parameters.multi_label,
        "mask_decode_mode": parameters.mask_decode_mode,
        "backend": model.backend.info.as_dict(),
    }
    print(format_table(metrics))
    if args.out is not None:
        args.out.write_text(json.dumps(metrics, indent=2))
        print(f"Wrote {args.out}")
    return 0


def quantize_arguments(parser: argparse.ArgumentParser) -> None:
    from workflows_yolov5_seg.quantize import (
        CALIBRATION_METHODS,
        DEFAULT_CALIBRATION_METHOD,
        DEFAULT_KEEP_FLOAT,
        DEFAULT_MAX_CALIBRATION_IMAGES,
        FLOAT_PARTS,
    )

    parser.add_argument("--model", required=True, help="float32 .onnx file, model package folder or Roboflow id")
    parser.add_argument(
        "--calibration",
        required=True,
        type=Path,
        help="folder of calibration images like those the model will see (e.g. training images; not the ones you "
        "evaluate on)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output .onnx (bare .onnx input) or folder (folder input); default NAME-int8.onnx / NAME-int8 beside "
        "the input",
    )
    parser.add_argument(
        "--keep-float",
        default=",".join(DEFAULT_KEEP_FLOAT),
        help=f"comma-separated parts left in float, of {', '.join(FLOAT_PARTS)}, or 'none' (default: "
        f"{','.join(DEFAULT_KEEP_FLOAT) or 'none'})",
    )
    parser.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default=DEFAULT_CALIBRATION_METHOD)
    parser.add_argument(
        "--max-images",
        type=int,
        default=DEFAULT_MAX_CALIBRATION_IMAGES,
        help=f"calibration images used, the first in name order (default {DEFAULT_MAX_CALIBRATION_IMAGES})",
    )
    parser.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor, not per channel")
    parser.add_argument("--reduce-range", action="store_true", help="7-bit weights (CPUs without VNNI)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")


def run_quantize(args: argparse.Namespace) -> int:
    from workflows_yolov5_seg.quantize import QuantizationOptions, quantize_model

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    keep = () if args.keep_float.strip().lower() == "none" else tuple(p.strip() for p in args.keep_float.split(","))
    options = QuantizationOptions(
        keep_float=tuple(part for part in keep if part),
        calibration_method=args.calibration_method,
        max_images=args.max_images,
        per_channel=not args.per_tensor,
        reduce_range=args.reduce_range,
    )
    result = quantize_model(args.model, args.calibration, args.out, options, overwrite=args.force)
    kept = ", ".join(f"{part} ({len(names)} nodes)" for part, names in result.float_nodes.items()) or "nothing"
    operators = ", ".join(f"{count} {op}" for op, count in result.quantized_operators.items())
    print(
        f"Wrote {result.output} in {result.seconds:.0f} s: {result.output_bytes / 1e6:.1f} MB (float32: "
        f"{result.source_bytes / 1e6:.1f} MB), calibrated on {result.calibration_images} images.\n"
        f"  int8: {operators}\n  kept in float: {kept}"
    )
    return 0


COMMANDS: tuple[Command, ...] = (
    Command(
        "serve",
        "start Roboflow Inference's HTTP server with this plugin loaded",
        "Starts Roboflow Inference's HTTP server (the app of its CPU Docker image) under uvicorn, with "
        "WORKFLOWS_PLUGINS=workflows_yolov5_seg appended to any plugins already set. Inference settings are read "
        "from the environment as in the image.",
        serve_arguments,
        run_serve,
    ),
    Command(
        "demo",
        "segment the bundled scene with the bundled model through the Workflows engine",
        "Runs a workflow (segmentation, mask and label visualisation) with the real Execution Engine and "
        "writes annotated.jpg and result.json (workflows_yolov5_seg.demo).",
        demo_arguments,
        run_demo,
    ),
    Command(
        "generate",
        "write blocks/<block>.json, manifest.json and docs/settings.md from the code",
        "Writes the block descriptions (as POST /workflows/blocks/describe returns them) to blocks/, the "
        "plugin manifest to manifest.json and the settings table to docs/settings.md, deterministically "
        "(workflows_yolov5_seg.describe).",
        generate_arguments,
        run_generate,
    ),
    Command(
        "build-engine",
        "build and cache a TensorRT engine for a model ahead of serving",
        "Builds the TensorRT engine backend='trt' would build at first use, and caches it "
        "(workflows_yolov5_seg.backends.tensorrt.prebuild_engine). Run it on the machine (GPU model and TensorRT "
        "version) that will serve, with the same cache folder.",
        build_engine_arguments,
        run_build_engine,
    ),
    Command(
        "evaluate",
        "COCO box and mask mAP of a model on a dataset, through this package's pipeline",
        "Runs the pipeline on a COCO (annotations/instances_SPLIT.json + images/SPLIT/) or YOLO-seg "
        "(images/SPLIT/, labels/SPLIT/) dataset and scores it with pycocotools (workflows_yolov5_seg.evaluate; "
        "pip install 'workflows-yolov5-seg[evaluate]'). Defaults match the generation's own validation: confidence "
        "0.001, IoU 0.6 (YOLOv5's segment/val.py) or 0.7 (yolo val, YOLOv8 and later), 300 detections, multi-label "
        "scoring. An end-to-end export with NMS in the graph "
        "(nms=True) already dropped detections below its export confidence (0.25 unless exported with another conf): "
        "a lower --confidence cannot bring them back; a warning and the report's in_graph_confidence say so.",
        evaluate_arguments,
        run_evaluate,
    ),
    Command(
        "quantize",
        "write a calibrated int8 (QDQ) copy of a model for faster CPU inference",
        "Quantizes a float32 YOLOv5-seg ONNX (bare or a model folder) to int8 with ONNX Runtime's static "
        "quantization (QDQ format, per-channel weights), calibrating activations on a folder of images "
        "pre-processed exactly as at inference; the Detect head (its convolutions and the decoding of output0) stays "
        "in float by default "
        "(workflows_yolov5_seg.quantize; pip install 'workflows-yolov5-seg[quantize]'). The result loads from "
        "every model source like the original. Measurements: docs/quantization.md.",
        quantize_arguments,
        run_quantize,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workflows-yolov5-seg",
        description="YOLO instance segmentation for Roboflow Workflows: YOLOv5, YOLOv8, YOLOv9, YOLO11, YOLO12 and "
        "YOLO26-seg exports (raw or end-to-end), from an .onnx file, a model package folder or a Roboflow model id.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command_parser = subparsers.add_parser(command.name, help=command.help, description=command.description)
        command.add_arguments(command_parser)
        command_parser.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from workflows_yolov5_seg.errors import YOLOv5SegError

    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except YOLOv5SegError as error:
        print(f"workflows-yolov5-seg {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
