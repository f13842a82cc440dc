"""Command line: ``workflows-yolov5-seg <command>`` (or ``python -m workflows_yolov5_seg.cli <command>``).

Commands:

- ``serve``: Roboflow Inference's HTTP server with this plugin (see :mod:`workflows_yolov5_seg.server`).
- ``generate``: writes ``blocks/*.json`` and ``manifest.json`` from the code (see :mod:`workflows_yolov5_seg.describe`).
- ``demo``: runs the demo workflow on the bundled scene and model (see :mod:`workflows_yolov5_seg.demo`).
- ``build-engine``: builds and caches a TensorRT engine ahead of serving (see :mod:`.backends.tensorrt`).

Each command is a pair: an ``add_<name>_command(subparsers)`` function that declares its parser and sets
``handler``, and the handler ``(args) -> int`` (the exit status). Heavy imports (Inference, the Workflows engine)
happen inside handlers, so ``--help`` is instant. To add a command, write both and append the adder to
:data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from workflows_yolov5_seg import __version__


def add_serve_command(subparsers: argparse._SubParsersAction) -> None:
    from workflows_yolov5_seg.server import DEFAULT_HOST, DEFAULT_PORT

    parser = subparsers.add_parser(
        "serve",
        help="start Roboflow Inference's HTTP server with this plugin loaded",
        description="Starts Roboflow Inference's HTTP server (the app of its CPU Docker image) under uvicorn, with "
        "WORKFLOWS_PLUGINS=workflows_yolov5_seg appended to any plugins already set. Inference settings are read "
        "from the environment as in the image.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for the static landing-page mounts Inference needs (default: "
        "$WORKFLOWS_YOLOV5_SEG_SERVER_DIR or ~/.cache/workflows-yolov5-seg/server)",
    )
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from workflows_yolov5_seg.server import serve

    if args.workers < 1:
        print("--workers must be >= 1", file=sys.stderr)
        return 2
    serve(host=args.host, port=args.port, workers=args.workers, workdir=args.workdir, log_level=args.log_level)
    return 0


def add_generate_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write blocks/<block>.json and manifest.json from the code",
        description="Writes the block descriptions (as POST /workflows/blocks/describe returns them) to blocks/ and "
        "the plugin manifest to manifest.json, deterministically.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="folder to write into (default: the project root holding pyproject.toml, else the current folder)",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the files are out of date")
    parser.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from workflows_yolov5_seg.describe import main as describe_main

    argv = ["--check"] if args.check else []
    if args.output is not None:
        argv += ["--output", str(args.output)]
    return describe_main(argv)


def add_demo_command(subparsers: argparse._SubParsersAction) -> None:
    from workflows_yolov5_seg.demo import add_arguments

    parser = subparsers.add_parser(
        "demo",
        help="segment the bundled scene with the bundled model through the Workflows engine",
        description="Runs a workflow (segmentation, mask and label visualisation) with the real Execution Engine and "
        "writes annotated.jpg and result.json.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from workflows_yolov5_seg.demo import run_from_arguments

    return run_from_arguments(args)


def add_build_engine_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-engine",
        help="build and cache a TensorRT engine for a model ahead of serving",
        description="Builds the TensorRT engine backend='trt' would build at first use, and caches it. Arguments "
        "after the command are those of python -m workflows_yolov5_seg.build_engine (--model, --precision, "
        "--batch, --device, --cache-dir, --workspace-mib, --force).",
        add_help=False,
    )
    parser.set_defaults(handler=run_build_engine, passes_arguments_through=True)


def run_build_engine(args: argparse.Namespace) -> int:
    from workflows_yolov5_seg.backends.tensorrt import build_engine_command

    return build_engine_command(args.arguments or ["--help"])


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_serve_command,
    add_generate_command,
    add_demo_command,
    add_build_engine_command,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workflows-yolov5-seg", description="YOLOv5 instance segmentation for Roboflow Workflows."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from workflows_yolov5_seg.errors import MissingDependencyError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "passes_arguments_through", False):
        args.arguments = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.handler(args) or 0)
    except MissingDependencyError as error:
        print(f"workflows-yolov5-seg {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
