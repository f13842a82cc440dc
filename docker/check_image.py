"""Build-time check of an Inference server image with the plugin installed (run by docker/Dockerfile*).

Fails the build, naming the cause, when:

- a requirement of ``workflows-yolov5-seg`` (numpy, supervision; the ``--extra`` ones too) is missing or outside its
  range in the image, since the plugin is installed without letting pip change the image's packages;
- ``WORKFLOWS_PLUGINS`` does not list ``workflows_yolov5_seg``;
- Inference's own ``/workflows/blocks/describe`` handler does not list the block (the plugin does not load);
- ``--provider P``: ONNX Runtime in the image was built without execution provider ``P``.

``--run`` then runs the demo workflow (the bundled model on the bundled scene) through the Execution Engine.

    python3 check_image.py [--extra onnx-cpu] [--provider CUDAExecutionProvider] [--run]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "workflows-yolov5-seg"
PLUGIN = "workflows_yolov5_seg"


def unmet_requirements(extras: list[str]) -> list[str]:
    from packaging.requirements import Requirement

    problems = []
    for text in metadata.requires(DISTRIBUTION) or []:
        requirement = Requirement(text)
        environments = [{"extra": extra} for extra in ["", *extras]]
        if requirement.marker is not None and not any(requirement.marker.evaluate(e) for e in environments):
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement.name} is not installed (needs {requirement.specifier or 'any'})")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{requirement.name} {installed} is outside {requirement.specifier}")
    return problems


def onnxruntime_problem(provider: str | None) -> str | None:
    try:
        import onnxruntime
    except ImportError as error:
        return f"onnxruntime does not import: {error}"
    if provider and provider not in onnxruntime.get_available_providers():
        return f"onnxruntime {onnxruntime.__version__} has no {provider} ({onnxruntime.get_available_providers()})"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", action="append", default=[], help="an extra whose requirements must hold too")
    parser.add_argument("--provider", help="an ONNX Runtime execution provider the image must have")
    parser.add_argument("--run", action="store_true", help="run the demo workflow")
    args = parser.parse_args(argv)

    problems = unmet_requirements(args.extra)
    problem = onnxruntime_problem(args.provider)
    if problem:
        problems.append(problem)
    plugins = [p.strip() for p in os.environ.get("WORKFLOWS_PLUGINS", "").split(",")]
    if PLUGIN not in plugins:
        problems.append(f"WORKFLOWS_PLUGINS={os.environ.get('WORKFLOWS_PLUGINS', '')!r} does not list {PLUGIN}")
    if problems:
        print("image check failed:\n- " + "\n- ".join(problems), file=sys.stderr)
        return 1

    from workflows_yolov5_seg.describe import plugin_block_descriptions

    blocks = sorted(plugin_block_descriptions())
    if not blocks:
        print(f"image check failed: Inference's describe handler lists no block from {PLUGIN}", file=sys.stderr)
        return 1
    print(f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)}: blocks {blocks}")
    if args.run:
        from workflows_yolov5_seg.demo import run_demo, summary

        # Building is not serving: the bundled demo model lies outside the model roots the image sets afterwards.
        os.environ["WORKFLOWS_YOLOV5_SEG_SERVING"] = "library"

        with tempfile.TemporaryDirectory() as folder:
            result = run_demo(Path(folder))
        print(f"demo workflow: {summary(result)}")
        if not result["predictions"]["predictions"]:
            print("image check failed: the demo workflow found nothing", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
