"""ONNX Runtime session settings on the hot path: the measurements behind the defaults of
``workflows_yolov5_seg.backends.onnx.default_session_options`` (``docs/quantization.md``, "Session settings").

Run from the repository root::

    python -m benchmarks.session_settings --int8-320 M320-int8.onnx \\
        --model-640 ~/.cache/workflows-yolov5-seg/bench/yolov5s-seg-untrained-nc80-640.onnx --int8-640 M640-int8.onnx \\
        --out docs/results/session-settings.json

For each model (the bundled float32 model at 320 and its int8 variant; optionally a 640 YOLOv5s-seg stand-in and its
int8 variant) it times the raw forward pass (the backend's ``infer``) under each configuration of
:data:`CONFIGURATIONS`, interleaved (one call of every configuration per round, shuffled every round), and reports
each configuration's time relative to the defaults with a 90 % bootstrap interval (:mod:`benchmarks.stats`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.provenance import provenance, write_report
from benchmarks.stats import ratio_interval

REPOSITORY = Path(__file__).resolve().parents[1]
TRAINED_320 = REPOSITORY / "workflows_yolov5_seg" / "assets" / "shapes-yolov5n-seg-320.onnx"
INT8_320 = REPOSITORY / "workflows_yolov5_seg" / "assets" / "shapes-yolov5n-seg-320-int8.onnx"

# name -> keyword arguments of default_session_options (the rest from the settings' defaults: all optimisations,
# sequential, ONNX Runtime's thread count, arena on, spinning off)
CONFIGURATIONS: dict[str, dict] = {
    "default": {},
    "optimization basic": {"graph_optimization": "basic"},
    "optimization extended": {"graph_optimization": "extended"},
    "intra-op threads 1": {"intra_op_threads": 1},
    "parallel, inter-op threads 2": {"execution_mode": "parallel", "inter_op_threads": 2},
    "memory arena off": {"memory_arena": False},
    "spinning on": {"spinning": True},
}


def session(path: Path, options: dict):  # noqa: ANN201 - onnxruntime.InferenceSession
    import onnxruntime

    from workflows_yolov5_seg.backends.onnx import default_session_options

    options = dict(options)
    threads = options.pop("intra_op_threads", None)
    return onnxruntime.InferenceSession(
        str(path),
        sess_options=default_session_options(onnxruntime, threads, **options),
        providers=["CPUExecutionProvider"],
    )


def time_configurations(path: Path, tensor: np.ndarray, repeats: int, warmup: int, seed: int) -> dict[str, list[float]]:
    sessions = {name: session(path, options) for name, options in CONFIGURATIONS.items()}
    feed = {next(iter(sessions.values())).get_inputs()[0].name: tensor}
    for item in sessions.values():
        for _ in range(warmup):
            item.run(None, feed)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    names = list(sessions)
    order = np.random.default_rng(seed)
    for _ in range(repeats):
        for index in order.permutation(len(names)):
            started = time.perf_counter()
            sessions[names[index]].run(None, feed)
            times[names[index]].append((time.perf_counter() - started) * 1000.0)
    return times


def network_tensor(path: Path, image: np.ndarray) -> np.ndarray:
    from workflows_yolov5_seg.model_package import load_model_package
    from workflows_yolov5_seg.preprocessing import preprocess_images

    package = load_model_package(path)
    assert package.signature is not None
    tensor, _ = preprocess_images([image], package.preprocessing, package.signature.input_hw)
    return tensor


def main(argv: Sequence[str] | None = None) -> int:
    import cv2

    parser = argparse.ArgumentParser(prog="python -m benchmarks.session_settings", description=__doc__.split("\n")[0])
    parser.add_argument("--model-320", type=Path, default=TRAINED_320)
    parser.add_argument("--int8-320", type=Path, default=INT8_320)
    parser.add_argument("--model-640", type=Path, default=None)
    parser.add_argument("--int8-640", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    image = cv2.imread(str(REPOSITORY / "workflows_yolov5_seg" / "assets" / "demo-scene.jpg"))
    models = {
        "fp32 320": args.model_320,
        "int8 320": args.int8_320,
        "fp32 640": args.model_640,
        "int8 640": args.int8_640,
    }
    models = {name: path for name, path in models.items() if path is not None and Path(path).is_file()}
    results: dict[str, dict] = {}
    lines = ["| model | " + " | ".join(CONFIGURATIONS) + " |", "|---|" + "---|" * len(CONFIGURATIONS)]
    for name, path in models.items():
        print(f"timing {name} ({path}) ...", file=sys.stderr, flush=True)
        times = time_configurations(path, network_tensor(path, image), args.repeats, args.warmup, args.seed)
        rows = {}
        cells = []
        for configuration, sample in times.items():
            relative = ratio_interval(sample, times["default"])
            rows[configuration] = {
                "median_ms": round(float(np.median(sample)), 2),
                "vs_default": relative.as_dict(),
                "times_ms": [round(t, 3) for t in sample],
            }
            cells.append(
                f"{np.median(sample):.1f} ms"
                + (
                    ""
                    if configuration == "default"
                    else f" ({relative.estimate:.2f}x [{relative.low:.2f}, {relative.high:.2f}])"
                )
            )
        results[name] = {"path": str(path), "configurations": rows}
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    report = {
        "command": "python -m benchmarks.session_settings " + " ".join(sys.argv[1:] if argv is None else argv),
        "provenance": provenance([Path(p) for p in models.values()]),
        "configurations": CONFIGURATIONS,
        "settings": {"repeats": args.repeats, "warmup": args.warmup, "image": "assets/demo-scene.jpg"},
        "results": results,
    }
    print("\n".join(lines))
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
