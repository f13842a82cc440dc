"""Benchmark: our pipeline against the raw ONNX Runtime forward pass and against the peers, in one run.

Run::

    python -m benchmarks.benchmark --out results.json            # full run (~15-25 min on 2 cores)
    python -m benchmarks.benchmark --quick --out quick.json      # smoke run on hand-built graphs
    python -m benchmarks.benchmark --cases 640-1280x720-30 --repeats 20

Per case (one model, one image or batch, one set of raw outputs) it measures, with the same inputs for everyone:

- ``forward``: the raw ONNX Runtime forward pass, ``model.backend.infer(tensor)`` (the floor);
- ``pre_process``: ``model.pre_process(images)``;
- ``post_process``: ``model.post_process(instances, protos, geometries, InferenceParameters(mask_decode_mode=m))``
  for ``m`` in accurate / tradeoff (``tradeoff_factor`` 0.5) / fast;
- ``pipeline``: ``model.infer(images)`` (pre + forward + post, accurate);
- ``block``: the block through the Workflows ``ExecutionEngine`` (one step, accurate);
- ``legacy``: inference-core 1.8's legacy post-processing (:func:`benchmarks.peers.legacy_post_process`)
  per decode mode, on the same raw outputs;
- ``inference-models``: ``YOLOv5ForInstanceSegmentationOnnx`` 0.39: ``post_process`` alone on the same raw outputs
  (dense masks at full resolution), and end to end (its own pre-processing, forward and post-processing).

Models. The forward passes are real YOLOv5n-seg networks: the bundled trained model at 320
(``workflows_yolov5_seg/assets/shapes-yolov5n-seg-320.onnx``,
``models/shapes-yolov5n-seg-320-dynamic.onnx``) when present, else an *untrained* YOLOv5n-seg export (same architecture,
random weights: same forward cost) made with ``--build-standins`` (needs a Python with ``yolov5``, ``torch`` and
``onnx``), else a hand-built constant graph (no real forward; marked ``constant-graph`` in the output).

Detections. To get exactly the wanted number of detections, ``synthetic`` cases inject chosen rows into the real
network: the ONNX graph's ``output0`` becomes ``output0_network * 0 + rows`` (the whole network still runs; the
benchmark checks that the injected graph's forward time equals the original's). The rows are ``K`` objects on a
grid inside the letterboxed image (objectness 0.7-0.9, class probability 0.92-0.99), two jittered duplicates per
object for NMS to remove, and low-objectness background rows for the rest of ``N`` (25200 at 640, 6300 at 320).
Mask coefficients are fitted (least squares) so that ``coef @ protos`` of the network's *real* prototypes draws an
ellipse in each box. Objects do not overlap, so every implementation keeps the same ``K`` detections. ``scene`` cases
use the trained model's real outputs on generated scenes (counts then differ between scorings; the comparison is
per detection and both counts are printed).

Timing: ``time.perf_counter`` around each call; ``--warmup`` calls first, then up to ``--repeats`` timed calls (at
least 3, stopping early once a measurement has used ``--budget`` seconds). Median and p90 (linear interpolation).

Memory, in separate calls after the timed ones (never mixed with timing):

- ``peak_tracemalloc``: ``tracemalloc`` peak during the call minus the traced size before it. numpy reports its
  buffers to tracemalloc, so this is exact for numpy (all of our pipeline); it does not see torch's or ONNX
  Runtime's allocations.
- ``peak_rss``: the process' RSS high-water mark during the call (``VmHWM`` after resetting it through
  ``/proc/self/clear_refs``, after ``malloc_trim``) minus the RSS before the call. Sees everything (torch, ORT) but is
  a lower bound where the allocator reuses memory it kept from earlier calls. Linux only (``None`` elsewhere).

"Peak memory added by post-processing" is these increases over the baseline before the call; it includes the
returned masks (``mask_bytes``, the bytes of the dense masks we return).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.provenance import DirtyTreeError, git_state, provenance, require_clean, write_report
from benchmarks.stats import RatioInterval, ratio_interval, verdict

REPOSITORY = Path(__file__).resolve().parents[1]
ASSETS = REPOSITORY / "workflows_yolov5_seg" / "assets"
MODEL_VARIANTS = REPOSITORY / "models"
TRAINED_320 = ASSETS / "shapes-yolov5n-seg-320.onnx"
BLOCK_TYPE = "workflows_yolov5_seg/yolov5_instance_segmentation@v1"
DEFAULT_STANDIN_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "workflows-yolov5-seg" / "bench"
MODES = ("accurate", "tradeoff", "fast")
TRADEOFF_FACTOR = 0.5
CONFIDENCE, IOU = 0.4, 0.3
STANDIN_NUM_CLASSES = 80


# ----------------------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One benchmark case: a model, images and the raw outputs every implementation gets.

    Attributes:
        name: unique id, e.g. ``640-1280x720-30``.
        network: the model's square input size.
        image_wh: ``(W, H)`` of each image.
        detections: objects injected (``synthetic``) or shapes drawn (``scene``).
        batch: images per call (a dynamic-batch model when > 1).
        source: ``synthetic`` (rows injected into a real network) or ``scene`` (the trained model's real outputs).
    """

    name: str
    network: int
    image_wh: tuple[int, int]
    detections: int
    batch: int = 1
    source: str = "synthetic"


SCENE_CASES = [
    Case("320-scene-1280x720-12shapes", 320, (1280, 720), 12, source="scene"),
    Case("320-scene-1280x720-40shapes", 320, (1280, 720), 40, source="scene"),
]


def default_cases(trained_320: bool) -> list[Case]:
    """The issue's cases; with the bundled trained 320 model, also its real outputs on generated scenes."""
    cases = [
        Case("640-1280x720-10", 640, (1280, 720), 10),
        Case("640-1280x720-30", 640, (1280, 720), 30),
        Case("640-1280x720-100", 640, (1280, 720), 100),
        Case("320-1280x720-10", 320, (1280, 720), 10),
        Case("320-1280x720-30", 320, (1280, 720), 30),
        Case("320-1280x720-100", 320, (1280, 720), 100),
        Case("640-4000x3000-150", 640, (4000, 3000), 150),
        Case("640-batch8-1280x720-30", 640, (1280, 720), 30, batch=8),
    ]
    return cases + (SCENE_CASES if trained_320 else [])


QUICK_CASES = [
    Case("quick-320-480x270-3", 320, (480, 270), 3),
    Case("quick-320-batch2-480x270-3", 320, (480, 270), 3, batch=2),
]


# ------------------------------------------------------------------------------------------------- measurement


@dataclass
class Measurement:
    """One row of the results."""

    case: str
    stage: str  # forward, forward_injected, pre_process, post_process, pipeline, block, e2e, *_x{n}_single
    impl: str  # ours, onnxruntime, legacy, inference-models
    mode: str | None
    detections: int | None
    times_ms: list[float]
    median_ms: float
    p90_ms: float
    per_detection_ms: float | None = None
    vs_forward: float | None = None
    vs_ours: float | None = None
    vs_ours_basis: str | None = None
    peak_tracemalloc_bytes: int | None = None
    peak_rss_bytes: int | None = None
    mask_bytes: int | None = None
    note: str | None = None
    vs_forward_interval: dict | None = None  # RatioInterval.as_dict() of vs_forward (90 % bootstrap)
    vs_ours_interval: dict | None = None  # likewise for vs_ours


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def peak_memory(fn: Callable[..., Any], setup: Callable[[], tuple] | None) -> tuple[int | None, int | None, Any]:
    """``(peak tracemalloc bytes, peak RSS bytes, last output)`` added by one call each, over the baseline before."""
    args = setup() if setup else ()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    out = fn(*args)
    traced_peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    del out, args
    args = setup() if setup else ()
    gc.collect()
    rss_peak = None
    if _reset_rss_peak():
        before_kib = _proc_status_kib("VmRSS")
        out = fn(*args)
        after_kib = _proc_status_kib("VmHWM")
        if before_kib is not None and after_kib is not None:
            rss_peak = max(0, after_kib - before_kib) * 1024
    else:
        out = fn(*args)
    return traced_peak, rss_peak, out


# ------------------------------------------------------------------------------------------------ progress bar


class Progress:
    """tqdm when installed (imported lazily), else one printed line per step."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self._bar = None
        self._done, self._total, self._enabled = 0, total, enabled
        if not enabled:
            return
        try:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="measurement", file=sys.stderr, dynamic_ncols=True)
        except ImportError:
            self._bar = None

    def step(self, label: str) -> None:
        self._done += 1
        if not self._enabled:
            return
        if self._bar is not None:
            self._bar.set_description(label[:60])
            self._bar.update(1)
        else:
            print(f"[{self._done}/{self._total}] {label}", file=sys.stderr, flush=True)

    def status(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text[:60])
        elif self._enabled:
            print(text, file=sys.stderr, flush=True)

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        elif self._enabled:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# ---------------------------------------------------------------------------------------------------- models


STANDIN_SCRIPT = r"""
import os, sys
os.environ.setdefault("YOLO_OFFLINE", "1")
out_dir, nc, sizes, shim_dir = sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3].split(",")], sys.argv[4]
arch = sys.argv[5] if len(sys.argv) > 5 else "n"  # n: YOLOv5n-seg (static and batch-dynamic); s: YOLOv5s-seg (static)
if shim_dir:
    sys.path.insert(0, shim_dir)
    import torchvision_nms_shim  # noqa: F401  (CPU torchvision::nms for a CUDA torchvision wheel)
import warnings
from pathlib import Path
import onnx, torch, yolov5
from yolov5.models.yolo import Detect, SegmentationModel
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
torch.manual_seed(0)
cfg = Path(yolov5.__file__).parent / "models" / "segment" / f"yolov5{arch}-seg.yaml"
model = SegmentationModel(str(cfg), ch=3, nc=nc)
# He-normal weights keep activations near unit scale through the network; PyTorch's default init shrinks them to
# ~1e-9 by the last layers, which no trained network does and which leaves int8 calibration nothing to measure.
for m in model.modules():
    if isinstance(m, torch.nn.Conv2d):
        torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
model = model.fuse().eval()
names = {i: f"class{i}" for i in range(nc)}
for m in model.modules():
    if isinstance(m, Detect):
        m.inplace, m.dynamic, m.export = False, False, True
for size in sizes:
    for dynamic in (False, True) if arch == "n" else (False,):
        im = torch.zeros(1, 3, size, size)
        with torch.no_grad():
            model(im); model(im)
        path = Path(out_dir) / f"yolov5{arch}-seg-untrained-nc{nc}-{size}{'-dynamic' if dynamic else ''}.onnx"
        axes = {"images": {0: "batch"}, "output0": {0: "batch"}, "output1": {0: "batch"}} if dynamic else None
        torch.onnx.export(model, im, str(path), opset_version=17, do_constant_folding=True, input_names=["images"],
                          output_names=["output0", "output1"], dynamic_axes=axes, dynamo=False)
        proto = onnx.load(str(path))
        for key, value in {"stride": int(max(model.stride)), "names": names}.items():
            prop = proto.metadata_props.add()
            prop.key, prop.value = key, str(value)
        onnx.save(proto, str(path))
        print(path)
"""


def standin_path(folder: Path, size: int, dynamic: bool, arch: str = "n") -> Path:
    return folder / f"yolov5{arch}-seg-untrained-nc{STANDIN_NUM_CLASSES}-{size}{'-dynamic' if dynamic else ''}.onnx"


def build_standins(python: str, folder: Path, sizes: Sequence[int] = (320, 640), arch: str = "n") -> None:
    """Exports untrained YOLOv5-seg networks with another Python that has yolov5: ``arch`` ``n`` (YOLOv5n-seg,
    static and batch-dynamic) or ``s`` (YOLOv5s-seg, static; the int8 rows' 640 network)."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = Path(__file__).resolve().parent.parent / "training"
    shim_dir = str(shim) if (shim / "torchvision_nms_shim.py").is_file() else ""
    probe = "import torch, torchvision; torch.ops.torchvision.nms"  # the shim only for a torchvision without its ops
    if subprocess.run([python, "-c", probe], capture_output=True).returncode == 0:
        shim_dir = ""
    script = folder / "export_standins.py"
    script.write_text(STANDIN_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [
            "nice",
            "-n",
            "19",
            python,
            str(script),
            str(folder),
            str(STANDIN_NUM_CLASSES),
            ",".join(map(str, sizes)),
            shim_dir,
            arch,
        ],
        check=True,
        env=env,
    )


@dataclass
class ModelFiles:
    static: Path
    dynamic: Path
    kind: str  # trained, untrained-standin, constant-graph


def resolve_model_files(size: int, args: argparse.Namespace, workdir: Path, rng: np.random.Generator) -> ModelFiles:
    explicit = getattr(args, f"model_{size}", None)
    if explicit:
        static = Path(explicit)
        dynamic = static.with_name(static.stem + "-dynamic.onnx")
        return ModelFiles(static, dynamic if dynamic.is_file() else static, "given")
    if not args.quick:
        trained = ASSETS / f"shapes-yolov5n-seg-{size}.onnx"
        trained_dynamic = MODEL_VARIANTS / f"shapes-yolov5n-seg-{size}-dynamic.onnx"
        if trained.is_file() and trained_dynamic.is_file():
            return ModelFiles(trained, trained_dynamic, "trained")
        if standin_path(args.standin_dir, size, False).is_file():
            return ModelFiles(
                standin_path(args.standin_dir, size, False),
                standin_path(args.standin_dir, size, True),
                "untrained-standin",
            )
    static = constant_graph(workdir / f"constant-{size}.onnx", size, rng, batch=1)
    dynamic = constant_graph(workdir / f"constant-{size}-dynamic.onnx", size, rng, batch=None)
    return ModelFiles(static, dynamic, "constant-graph")


def num_rows(size: int) -> int:
    return 3 * sum((size // stride) ** 2 for stride in (8, 16, 32))


def smooth_protos(rng: np.random.Generator, mh: int, mw: int) -> np.ndarray:
    """Stand-in prototypes: a constant plane and 31 smooth random fields."""
    import cv2

    fields = [np.ones((mh, mw), np.float32)]
    for _ in range(31):
        coarse = rng.normal(0, 1, (8, 8)).astype(np.float32)
        fields.append(cv2.resize(coarse, (mw, mh), interpolation=cv2.INTER_CUBIC))
    return np.stack(fields)


def constant_graph(path: Path, size: int, rng: np.random.Generator, batch: int | None, nc: int = 5) -> Path:
    """A graph with YOLOv5-seg's signature returning fixed background rows and smooth prototypes (no real network)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rows = background_rows(rng, num_rows(size), nc, size)
    protos = smooth_protos(rng, size // 4, size // 4)
    dim = batch if batch is not None else "batch"
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [dim, 3, size, size])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["zeros4"]),
        helper.make_node("Reshape", ["zeros4", "shape3"], ["zeros3"]),
        helper.make_node("Add", ["zeros3", "rows"], ["output0"]),
        helper.make_node("Add", ["zeros4", "protos"], ["output1"]),
    ]
    inits = [
        numpy_helper.from_array(np.zeros((1,), np.float32), "zero"),
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape3"),
        numpy_helper.from_array(rows[None], "rows"),
        numpy_helper.from_array(protos[None], "protos"),
    ]
    outputs = [
        helper.make_tensor_value_info("output0", TensorProto.FLOAT, [dim, *rows.shape]),
        helper.make_tensor_value_info("output1", TensorProto.FLOAT, [dim, *protos.shape]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "constant_seg", [image], outputs, inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    helper.set_model_props(model, {"stride": "32", "names": str({i: f"class{i}" for i in range(nc)})})
    onnx.save(model, str(path))
    return path


def inject_rows(source: Path, rows: np.ndarray, target: Path) -> Path:
    """Copies ``source`` with ``output0 = output0_network * 0 + rows``: the network still runs, the rows are chosen."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    name = next(o.name for o in graph.output if len(o.type.tensor_type.shape.dim) == 3)
    renamed = name + "_network"
    for node in graph.node:
        for index, output in enumerate(node.output):
            if output == name:
                node.output[index] = renamed
    graph.node.extend(
        [
            helper.make_node("Mul", [renamed, "bench_zero"], [renamed + "_zeroed"]),
            helper.make_node("Add", [renamed + "_zeroed", "bench_rows"], [name]),
        ]
    )
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.zeros((1,), np.float32), "bench_zero"),
            numpy_helper.from_array(rows[None].astype(np.float32), "bench_rows"),
        ]
    )
    onnx.save(model, str(target))
    return target


# ------------------------------------------------------------------------------------------- synthetic outputs


def background_rows(rng: np.random.Generator, n: int, nc: int, size: int) -> np.ndarray:
    """Rows no implementation keeps: objectness below 0.05 (YOLOv5's typical background)."""
    rows = np.empty((n, 5 + nc + 32), np.float32)
    rows[:, 0:2] = rng.uniform(0, size, (n, 2))
    rows[:, 2:4] = rng.uniform(4, size / 4, (n, 2))
    rows[:, 4] = rng.uniform(0, 0.05, n)
    rows[:, 5 : 5 + nc] = rng.uniform(0, 0.3, (n, nc))
    rows[:, 5 + nc :] = rng.normal(0, 1, (n, 32))
    return rows


def fit_coefficients(protos: np.ndarray, box: Sequence[float], proto_stride: float) -> np.ndarray:
    """Least-squares coefficients whose ``coef @ protos`` is +4 inside the ellipse inscribed in ``box``, -4 around."""
    _, mh, mw = protos.shape
    x1, y1, x2, y2 = box
    c0, c1 = max(0, int(x1 / proto_stride) - 2), min(mw, int(math.ceil(x2 / proto_stride)) + 2)
    r0, r1 = max(0, int(y1 / proto_stride) - 2), min(mh, int(math.ceil(y2 / proto_stride)) + 2)
    ys, xs = np.mgrid[r0:r1, c0:c1]
    cx, cy = (
        ((xs + 0.5) * proto_stride - (x1 + x2) / 2) / ((x2 - x1) / 2),
        ((ys + 0.5) * proto_stride - (y1 + y2) / 2) / ((y2 - y1) / 2),
    )
    target = np.where(cx**2 + cy**2 <= 0.8, 4.0, -4.0).ravel()
    design = protos[:, r0:r1, c0:c1].reshape(32, -1).T.astype(np.float64)
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    return coefficients.astype(np.float32)


def synthetic_rows(
    rng: np.random.Generator,
    size: int,
    nc: int,
    count: int,
    region_xyxy: tuple[float, float, float, float],
    protos: np.ndarray,
) -> np.ndarray:
    """``num_rows(size)`` rows with ``count`` well-separated objects inside ``region`` (network pixels), each with two
    jittered duplicates (IoU ~0.8, lower scores), and background rows; coefficients fitted to ``protos``."""
    rows = background_rows(rng, num_rows(size), nc, size)
    x0, y0, x1, y1 = region_xyxy
    width, height = x1 - x0, y1 - y0
    cols = max(1, math.ceil(math.sqrt(count * width / height)))
    grid_rows = math.ceil(count / cols)
    cell_w, cell_h = width / cols, height / grid_rows
    cells = rng.permutation(cols * grid_rows)[:count]
    stride = size / protos.shape[2]
    index = 0
    for cell in cells:
        gx, gy = cell % cols, cell // cols
        w, h = cell_w * rng.uniform(0.5, 0.8), cell_h * rng.uniform(0.5, 0.8)
        cx, cy = x0 + (gx + 0.5) * cell_w, y0 + (gy + 0.5) * cell_h
        coefficients = fit_coefficients(protos, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), stride)
        cls = int(rng.integers(nc))
        # class probability above objectness: inference-models takes argmax over [obj, cls..] as the class id, and a
        # near tie would give duplicates different ids (kept by its per-class NMS)
        obj, prob = rng.uniform(0.7, 0.9), rng.uniform(0.92, 0.99)
        for duplicate in range(3):
            shift = 0.0 if duplicate == 0 else 0.05 * (1 if duplicate == 1 else -1)
            row = rows[index]
            row[:4] = (cx + shift * w, cy + shift * h, w, h)
            row[4] = obj * (1.0 if duplicate == 0 else 0.9)
            row[5 : 5 + nc] = rng.uniform(0, 0.2, nc)
            row[5 + cls] = prob
            row[5 + nc :] = coefficients
            index += 1
    return rows[rng.permutation(len(rows))]


def make_images(case: Case, seed: int) -> list[np.ndarray]:
    """Generated shapes scenes (drawn at <= 1280x720 and resized up: drawing at 12 MP takes minutes)."""
    import cv2

    from tools.synthetic_shapes import generate_scene

    width, height = case.image_wh
    scale = min(1.0, 1280 / width, 720 / height)
    draw_wh = (max(32, round(width * scale)), max(32, round(height * scale)))
    shapes = case.detections if case.source == "scene" else min(case.detections, 20)
    images = []
    for index in range(case.batch):
        image, _ = generate_scene(seed + index, draw_wh, num_shapes=shapes)
        if draw_wh != (width, height):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        images.append(image)
    return images


# ------------------------------------------------------------------------------------------------------ engine


WORKFLOW = {
    "version": "1.0",
    "inputs": [{"type": "WorkflowImage", "name": "image"}, {"type": "WorkflowParameter", "name": "model"}],
    "steps": [
        {"type": BLOCK_TYPE, "name": "seg", "images": "$inputs.image", "model": "$inputs.model", "backend": "onnx"}
    ],
    "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.seg.predictions"}],
}


def make_engine(definition: dict | None = None) -> Any:  # noqa: ANN401 - ExecutionEngine
    """The Execution Engine with the plugin, compiled for ``definition`` (default: :data:`WORKFLOW`)."""
    plugins = [p for p in os.environ.get("WORKFLOWS_PLUGINS", "").split(",") if p]
    if "workflows_yolov5_seg" not in plugins:
        os.environ["WORKFLOWS_PLUGINS"] = ",".join([*plugins, "workflows_yolov5_seg"])
    from roboflow_workflows.execution_engine.core import ExecutionEngine

    return ExecutionEngine.init(
        workflow_definition=definition or WORKFLOW,
        init_parameters={"workflows_core.model_manager": None, "workflows_core.api_key": None},
    )


# ---------------------------------------------------------------------------------------------------- running


@dataclass
class Context:
    args: argparse.Namespace
    workdir: Path
    progress: Progress
    models: dict[int, ModelFiles] = field(default_factory=dict)
    engine: Any = None
    peers_legacy: bool = False
    peers_im: bool = False
    results: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def stages_of(case: Case, ctx: Context) -> int:
    """How many measurements a case makes (for the progress bar)."""
    count = 2 + (1 if case.source == "synthetic" else 0) + len(MODES) + 1 + (1 if compact_supported() else 0)
    count += 1 if ctx.engine is not None else 0
    count += len(MODES) if ctx.peers_legacy else 0
    count += 2 if ctx.peers_im else 0
    if case.batch > 1:
        count += 2 + (1 if ctx.engine is not None else 0)
    return count


@dataclass
class Stage:
    """One thing to measure in a case."""

    stage: str
    impl: str
    mode: str | None
    fn: Callable[..., Any]
    setup: Callable[[], tuple] | None = None
    count: Callable[[Any], int] | None = None
    mask_bytes: Callable[[Any], int] | None = None
    memory: bool = True
    times: list[float] = field(default_factory=list)
    spent_s: float = 0.0


def run_stages(ctx: Context, case: Case, stages: list[Stage]) -> None:
    """Times the stages interleaved (one call of each per round, in a shuffled order), so that a change of machine
    load hits every stage alike and ratios within a case stay meaningful; then measures memory, stage after stage."""
    args = ctx.args
    for stage in stages:
        started = time.perf_counter()
        for index in range(args.warmup):
            stage.fn(*(stage.setup() if stage.setup else ()))
            if index == 0 and time.perf_counter() - started > args.budget / 4:
                break  # a slow call: one warm-up is enough
    gc.collect()
    order_rng = np.random.default_rng(args.seed)
    for round_index in range(args.repeats):
        pending = [
            s
            for s in stages
            if len(s.times) < args.repeats and (len(s.times) < min(3, args.repeats) or s.spent_s < args.budget)
        ]
        if not pending:
            break
        ctx.progress.status(f"{case.name}: round {round_index + 1}/{args.repeats}")
        # a new order every round: a stage that always ran right after a heavy one would be slowed systematically
        for position in order_rng.permutation(len(pending)):
            stage = pending[position]
            call_args = stage.setup() if stage.setup else ()
            t0 = time.perf_counter()
            out = stage.fn(*call_args)
            elapsed = time.perf_counter() - t0
            stage.times.append(elapsed * 1000.0)
            stage.spent_s += elapsed
            del out, call_args
    for stage in stages:
        traced = rss = None
        if stage.memory and not args.no_memory:
            traced, rss, out = peak_memory(stage.fn, stage.setup)
        else:
            out = stage.fn(*(stage.setup() if stage.setup else ()))
        detections = stage.count(out) if stage.count else None
        result = Measurement(
            case=case.name,
            stage=stage.stage,
            impl=stage.impl,
            mode=stage.mode,
            detections=detections,
            times_ms=[round(t, 4) for t in stage.times],
            median_ms=percentile(stage.times, 50),
            p90_ms=percentile(stage.times, 90),
            peak_tracemalloc_bytes=traced,
            peak_rss_bytes=rss,
            mask_bytes=stage.mask_bytes(out) if stage.mask_bytes else None,
        )
        del out
        if detections:
            result.per_detection_ms = result.median_ms / detections
        ctx.results.append(result)
        ctx.progress.step(f"{case.name} {stage.stage}{':' + stage.mode if stage.mode else ''}")


def compact_supported() -> bool:
    """Whether this version of the pipeline can return ``CompactMask`` masks (``InferenceParameters.compact_masks``)."""
    from workflows_yolov5_seg.model import InferenceParameters

    return "compact_masks" in getattr(InferenceParameters, "__dataclass_fields__", {})


def ours_count(out: list) -> int:
    return sum(len(d) for d in out)


def ours_mask_bytes(out: list) -> int:
    return sum(int(d.mask.nbytes) for d in out if isinstance(d.mask, np.ndarray))


def block_count(out: list) -> int:
    return sum(len(r["predictions"]) for r in out)


def block_mask_bytes(out: list) -> int:
    return ours_mask_bytes([r["predictions"] for r in out])


def im_count(out: list) -> int:
    return sum(len(d.xyxy) for d in out)


def im_mask_bytes(out: list) -> int:
    return sum(int(d.mask.numel() * d.mask.element_size()) for d in out)


def run_case(case: Case, ctx: Context, rng: np.random.Generator) -> None:
    from benchmarks import peers
    from workflows_yolov5_seg.model import InferenceParameters, YOLOv5SegModel

    files = ctx.models[case.network]
    source_model = files.dynamic if case.batch > 1 else files.static
    images = make_images(case, seed=1000 + len(ctx.results))
    base = YOLOv5SegModel.from_pretrained(source_model, backend="onnx", device="cpu")
    batch = base.pre_process(images)
    instances, protos = base.forward(batch.tensor)
    geometry = batch.geometries[0]
    if case.source == "synthetic":
        (pl, pt, pr, pb), (net_h, net_w) = geometry.pad_ltrb, geometry.network_hw
        region = (pl + 2.0, pt + 2.0, net_w - pr - 2.0, net_h - pb - 2.0)
        rows = synthetic_rows(rng, case.network, len(base.class_names), case.detections, region, protos[0])
        model_path = inject_rows(source_model, rows, ctx.workdir / f"{case.name}.onnx")
        model = YOLOv5SegModel.from_pretrained(model_path, backend="onnx", device="cpu")
        instances, protos = model.forward(batch.tensor)
    else:
        model_path, model = source_model, base
    tensor = batch.tensor
    hws = [g.original_hw for g in batch.geometries]
    network_hw = geometry.network_hw
    accurate = InferenceParameters(confidence=CONFIDENCE, iou_threshold=IOU)

    stages = [Stage("forward", "onnxruntime", None, lambda: base.backend.infer(tensor), memory=False)]
    if case.source == "synthetic":
        stages.append(Stage("forward_injected", "onnxruntime", None, lambda: model.backend.infer(tensor), memory=False))
    stages.append(Stage("pre_process", "ours", None, lambda: model.pre_process(images)))
    for mode in MODES:
        parameters = InferenceParameters(
            confidence=CONFIDENCE, iou_threshold=IOU, mask_decode_mode=mode, tradeoff_factor=TRADEOFF_FACTOR
        )
        stages.append(
            Stage(
                "post_process",
                "ours",
                mode,
                lambda p=parameters: model.post_process(instances, protos, batch.geometries, p),
                count=ours_count,
                mask_bytes=ours_mask_bytes,
            )
        )
    if compact_supported():
        compact = InferenceParameters(confidence=CONFIDENCE, iou_threshold=IOU, compact_masks=True)
        stages.append(
            Stage(
                "post_process",
                "ours",
                "accurate+compact",
                lambda: model.post_process(instances, protos, batch.geometries, compact),
                count=ours_count,
            )
        )
    stages.append(
        Stage(
            "pipeline",
            "ours",
            "accurate",
            lambda: model.infer(images, accurate),
            count=ours_count,
            mask_bytes=ours_mask_bytes,
        )
    )
    if ctx.engine is not None:
        block_images = images if case.batch > 1 else images[0]
        stages.append(
            Stage(
                "block",
                "ours",
                "accurate",
                lambda: ctx.engine.run(runtime_parameters={"image": block_images, "model": str(model_path)}),
                count=block_count,
                mask_bytes=block_mask_bytes,
            )
        )
    if ctx.peers_legacy:
        for mode in MODES:
            stages.append(
                Stage(
                    "post_process",
                    "legacy",
                    mode,
                    lambda m=mode: peers.legacy_post_process(
                        instances.copy(), protos, hws, network_hw, m, TRADEOFF_FACTOR, CONFIDENCE, IOU
                    ),
                    count=lambda out: sum(len(r.predictions) for r in out),
                )
            )
    im_model = None
    if ctx.peers_im:
        folder = peers.build_inference_models_package(
            model_path,
            model.class_names,
            network_hw,
            ctx.workdir / f"im-{case.name}",
            static_batch_size=None if case.batch > 1 else 1,
        )
        im_model = peers.load_inference_models(folder)
        _, metadata = peers.inference_models_pre_process(im_model, images)
        stages.append(
            Stage(
                "post_process",
                "inference-models",
                "accurate",
                lambda: peers.inference_models_post_process(im_model, instances, protos, metadata, CONFIDENCE, IOU),
                count=im_count,
                mask_bytes=im_mask_bytes,
            )
        )
        stages.append(
            Stage(
                "e2e",
                "inference-models",
                "accurate",
                lambda: peers.inference_models_infer(im_model, images, CONFIDENCE, IOU),
                count=im_count,
            )
        )
    if case.batch > 1:
        singles = [base.pre_process([image]).tensor for image in images]
        stages.append(
            Stage(
                f"forward_x{case.batch}_single",
                "onnxruntime",
                None,
                lambda: [base.backend.infer(t) for t in singles],
                memory=False,
            )
        )
        stages.append(
            Stage(
                f"pipeline_x{case.batch}_single",
                "ours",
                "accurate",
                lambda: [model.infer([image], accurate) for image in images],
                count=lambda out: sum(ours_count(o) for o in out),
                memory=False,
            )
        )
        if ctx.engine is not None:
            stages.append(
                Stage(
                    f"block_x{case.batch}_single",
                    "ours",
                    "accurate",
                    lambda: [ctx.engine.run(runtime_parameters={"image": i, "model": str(model_path)}) for i in images],
                    count=lambda out: sum(block_count(o) for o in out),
                    memory=False,
                )
            )
    run_stages(ctx, case, stages)
    del stages
    model.close()
    if model is not base:
        base.close()


def add_ratios(results: list[Measurement]) -> None:
    """``vs_forward`` (ours / raw forward) and ``vs_ours`` (peer / ours, per detection when counts differ), each with
    its 90 % bootstrap interval (rounds resampled in pairs: the stages of a case are timed interleaved)."""
    by_case: dict[str, list[Measurement]] = {}
    for r in results:
        by_case.setdefault(r.case, []).append(r)
    for rows in by_case.values():
        forward = next((r for r in rows if r.stage == "forward"), None)
        ours_post = {r.mode: r for r in rows if r.stage == "post_process" and r.impl == "ours"}
        pipeline = next((r for r in rows if r.stage == "pipeline"), None)
        for r in rows:
            if forward is not None and r.impl in ("ours", "onnxruntime") and r is not forward:
                r.vs_forward = r.median_ms / forward.median_ms
                r.vs_forward_interval = ratio_interval(r.times_ms, forward.times_ms).as_dict()
            reference = None
            if r.impl in ("legacy", "inference-models"):
                reference = ours_post.get(r.mode) if r.stage == "post_process" else pipeline
            if reference is None or not r.detections or not reference.detections:
                continue  # no detections: nothing to compare per detection
            interval = ratio_interval(r.times_ms, reference.times_ms)
            if r.detections == reference.detections:
                r.vs_ours, r.vs_ours_basis = r.median_ms / reference.median_ms, "same detections"
                r.vs_ours_interval = interval.as_dict()
            else:
                r.vs_ours = (r.median_ms / r.detections) / (reference.median_ms / reference.detections)
                r.vs_ours_basis = f"per detection ({r.detections} vs our {reference.detections})"
                scale = reference.detections / r.detections
                r.vs_ours_interval = interval.as_dict() | {
                    "estimate": interval.estimate * scale,
                    "low": interval.low * scale,
                    "high": interval.high * scale,
                }


# ---------------------------------------------------------------------------------------------------- targets


def find(results: list[Measurement], case: str, stage: str, impl: str, mode: str | None = None) -> Measurement | None:
    for r in results:
        if r.case == case and r.stage == stage and r.impl == impl and (mode is None or r.mode == mode):
            return r
    return None


VERDICT_ORDER = ("not met", "borderline", "met")


def worst_verdict(verdicts: Sequence[str]) -> str:
    return min(verdicts, key=VERDICT_ORDER.index)


def interval_of(row: Measurement, which: str) -> RatioInterval | None:
    value = getattr(row, f"{which}_interval")
    return RatioInterval(**value) if value else None


def evaluate_targets(results: list[Measurement], cases: Sequence[Case]) -> list[dict]:
    """The issue's targets with the numbers. A timing target's verdict comes from its ratio's 90 % bootstrap
    interval (:func:`benchmarks.stats.verdict`): ``met`` only when the whole interval meets it, ``borderline`` when
    the interval straddles it, ``not met`` when none of it meets it; over several cases, the worst case decides.
    ``met`` is ``True`` only for a ``met`` verdict (``None``: not measured)."""
    targets = []

    def add(name: str, result: str | None, measured: str) -> None:
        met = None if result is None else result == "met"
        targets.append({"target": name, "verdict": result or "not measured", "met": met, "measured": measured})

    def peer_target(name: str, rows: list[tuple[str, Measurement]], missing: str) -> None:
        if not rows:
            add(name, None, missing)
            return
        judged = []
        for case_name, row in rows:
            interval = interval_of(row, "vs_ours")
            assert interval is not None
            judged.append((case_name, interval, verdict(interval, 10.0, "at_least")))
        worst = min(judged, key=lambda item: item[1].estimate)
        add(
            name,
            worst_verdict([v for _, _, v in judged]),
            f"min over cases {worst[1].text('.1f')} ({worst[0]}); "
            + ", ".join(f"{n}: {i.estimate:.1f}x [{i.low:.1f}, {i.high:.1f}]" for n, i, _ in judged),
        )

    full_res = [c for c in cases if c.batch == 1]
    peer_target(
        ">= 10x faster than inference-models (accurate dense masks, post-processing on the same outputs)",
        [
            (c.name, r)
            for c in full_res
            if (r := find(results, c.name, "post_process", "inference-models")) and r.vs_ours_interval
        ],
        "inference-models not run",
    )
    peer_target(
        ">= 10x faster per detection than inference-core legacy accurate (whose masks are at the network's "
        "resolution, ours at the image's)",
        [
            (c.name, r)
            for c in full_res
            if (r := find(results, c.name, "post_process", "legacy", "accurate")) and r.vs_ours_interval
        ],
        "legacy not run",
    )
    block = find(results, "640-1280x720-30", "block", "ours")
    forward = find(results, "640-1280x720-30", "forward", "onnxruntime")
    if block and forward:
        interval = ratio_interval(block.times_ms, forward.times_ms)
        injected = find(results, "640-1280x720-30", "forward_injected", "onnxruntime")
        add(
            "block via ExecutionEngine <= 1.2x raw forward (640 input, 1280x720, ~30 detections)",
            verdict(interval, 1.2, "at_most"),
            f"{block.median_ms:.1f} ms / {forward.median_ms:.1f} ms = {interval.text()} ({block.detections} "
            "detections)"
            + (
                f"; against the forward of the graph with the injected rows that the block runs: "
                f"{ratio_interval(block.times_ms, injected.times_ms).text()}"
                if injected
                else ""
            ),
        )
    else:
        add("block via ExecutionEngine <= 1.2x raw forward (640, 1280x720, ~30)", None, "case or engine not run")
    big = find(results, "640-4000x3000-150", "post_process", "ours", "accurate")
    if big and big.mask_bytes and big.peak_tracemalloc_bytes is not None:
        ratio = big.peak_tracemalloc_bytes / big.mask_bytes
        rss = f", RSS peak added {big.peak_rss_bytes / 1e6:.0f} MB" if big.peak_rss_bytes is not None else ""
        add(
            "4000x3000 ~150 detections: peak memory added by post-processing <= 1.2x dense mask bytes",
            "met" if ratio <= 1.2 else "not met",  # deterministic (numpy allocations): no interval
            f"tracemalloc peak {big.peak_tracemalloc_bytes / 1e6:.0f} MB / masks {big.mask_bytes / 1e6:.0f} MB = "
            f"{ratio:.2f}x{rss} ({big.detections} detections)",
        )
        im_big = find(results, "640-4000x3000-150", "post_process", "inference-models")
        if im_big and im_big.peak_rss_bytes is not None:
            targets[-1]["measured"] += f"; inference-models RSS peak added {im_big.peak_rss_bytes / 1e6:.0f} MB"
    else:
        add("4000x3000 ~150: peak memory <= 1.2x dense mask bytes", None, "case or memory measurement not run")
    compact = find(results, "640-4000x3000-150", "post_process", "ours", "accurate+compact")
    if compact and compact.peak_tracemalloc_bytes is not None:
        add(
            "4000x3000 ~150 detections: peak memory added by post-processing <= 50 MB with compact masks",
            "met" if compact.peak_tracemalloc_bytes <= 50e6 else "not met",
            f"tracemalloc peak {compact.peak_tracemalloc_bytes / 1e6:.1f} MB"
            + (f", RSS peak added {compact.peak_rss_bytes / 1e6:.1f} MB" if compact.peak_rss_bytes is not None else "")
            + f", {compact.median_ms:.0f} ms ({compact.detections} detections)",
        )
    else:
        add(
            "4000x3000 ~150: <= 50 MB with compact masks",
            None,
            "case or memory measurement not run"
            if compact_supported()
            else "not measured: this version of the pipeline has no compact mask output",
        )
    batch_case = next((c for c in cases if c.batch > 1), None)
    if batch_case is not None:
        for stage in ("block", "pipeline", "forward"):
            batched = find(results, batch_case.name, stage, "ours" if stage != "forward" else "onnxruntime")
            single = find(
                results,
                batch_case.name,
                f"{stage}_x{batch_case.batch}_single",
                "ours" if stage != "forward" else "onnxruntime",
            )
            if batched and single:
                interval = ratio_interval(single.times_ms, batched.times_ms)
                add(
                    f"batch of {batch_case.batch} (dynamic-batch model): throughput >= 1.3x {batch_case.batch} single "
                    f"calls [{stage}]",
                    verdict(interval, 1.3, "at_least"),
                    f"{batch_case.batch} single calls {single.median_ms:.1f} ms / one batch {batched.median_ms:.1f} ms "
                    f"= {interval.text()}",
                )
    return targets


# ----------------------------------------------------------------------------------------------------- output


def fmt(value: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "" if value is None else f"{value:{spec}}{suffix}"


def interval_text(interval: dict | None, spec: str) -> str:
    """`` [low, high]`` of a ratio's 90 % interval (empty without one)."""
    return "" if not interval else f" [{interval['low']:{spec}}, {interval['high']:{spec}}]"


def table(results: list[Measurement]) -> str:
    header = (
        "| case | stage | impl | mode | dets | median ms | p90 ms | ms/det | x forward [90 %] | peer / ours [90 %] | "
        "tracemalloc peak MB | RSS peak MB | mask MB |"
    )
    lines = [header, "|" + "---|" * 13]
    for r in results:
        lines.append(
            "| "
            + " | ".join(
                [
                    r.case,
                    r.stage,
                    r.impl,
                    r.mode or "",
                    "" if r.detections is None else str(r.detections),
                    fmt(r.median_ms, ".2f"),
                    fmt(r.p90_ms, ".2f"),
                    fmt(r.per_detection_ms, ".3f"),
                    fmt(r.vs_forward, ".2f", "x") + interval_text(r.vs_forward_interval, ".2f"),
                    fmt(r.vs_ours, ".1f", "x")
                    + interval_text(r.vs_ours_interval, ".1f")
                    + (" (per det)" if r.vs_ours_basis and "per" in r.vs_ours_basis else ""),
                    fmt(None if r.peak_tracemalloc_bytes is None else r.peak_tracemalloc_bytes / 1e6, ".1f"),
                    fmt(None if r.peak_rss_bytes is None else r.peak_rss_bytes / 1e6, ".1f"),
                    fmt(None if r.mask_bytes is None else r.mask_bytes / 1e6, ".1f"),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def targets_text(targets: list[dict]) -> str:
    return "\n".join(f"- [{t['verdict'].upper()}] {t['target']}: {t['measured']}" for t in targets)


def machine_info() -> dict:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in ("numpy", "onnxruntime", "supervision", "inference", "inference_models", "torch", "cv2"):
        with contextlib.suppress(Exception):
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
    commit = None
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    return {
        "cpu": cpu,
        "git": commit or None,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# ------------------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.benchmark",
        description="Benchmark the YOLOv5-seg pipeline against the raw forward pass and the peers, in one run.",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny cases on hand-built graphs, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per measurement (default 10; quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 2; quick 1)")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds after which a measurement stops early")
    parser.add_argument("--cases", default=None, help="comma-separated case names (default: all)")
    parser.add_argument("--list-cases", action="store_true", help="print the case names and exit")
    parser.add_argument("--no-peers", action="store_true", help="skip inference-core legacy and inference-models")
    parser.add_argument("--no-legacy", action="store_true", help="skip inference-core's legacy post-processing")
    parser.add_argument("--no-inference-models", action="store_true", help="skip inference-models")
    parser.add_argument("--no-engine", action="store_true", help="skip the block through the ExecutionEngine")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak memory measurements")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--model-320",
        default=None,
        help="a 320-input YOLOv5-seg .onnx (NAME-dynamic.onnx beside it is used for batches)",
    )
    parser.add_argument("--model-640", default=None, help="a 640-input YOLOv5-seg .onnx (likewise)")
    parser.add_argument(
        "--standin-dir",
        type=Path,
        default=DEFAULT_STANDIN_DIR,
        help="where untrained YOLOv5n-seg stand-ins are (and --build-standins writes them)",
    )
    parser.add_argument(
        "--build-standins",
        action="store_true",
        help="export untrained YOLOv5n-seg stand-ins at 320 and 640 first (see --yolov5-python)",
    )
    parser.add_argument(
        "--yolov5-python", default=sys.executable, help="a Python with yolov5, torch and onnx, for --build-standins"
    )
    parser.add_argument(
        "--standin-arch",
        choices=("n", "s"),
        default="n",
        help="--build-standins: n = YOLOv5n-seg at 320 and 640 (static and batch-dynamic), s = YOLOv5s-seg at 640 "
        "(the --int8 rows' 640 network)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="only the int8 rows: forward and block, int8 vs fp32 at 320 and 640, and test-split accuracy of fp32, "
        "fp16 and int8 (benchmarks/int8.py)",
    )
    parser.add_argument("--int8-repeats", type=int, default=30, help="--int8: timed rounds (default 30, no budget)")
    parser.add_argument(
        "--int8-data",
        type=Path,
        default=None,
        help="--int8: dataset root (train images for calibration, test split); default: generated once under "
        "--standin-dir",
    )
    parser.add_argument("--no-eval", action="store_true", help="--int8: skip the accuracy evaluation")
    parser.add_argument(
        "--require-clean", action="store_true", help="refuse to run on a checkout with uncommitted changes"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 10
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.no_peers:
        args.no_legacy = args.no_inference_models = True
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = QUICK_CASES if args.quick else default_cases(TRAINED_320.is_file())
    if args.build_standins:
        sizes = (320, 640) if args.standin_arch == "n" else (640,)
        build_standins(args.yolov5_python, args.standin_dir, sizes, args.standin_arch)
    if args.int8:
        from benchmarks import int8

        return int8.run(args, list(sys.argv[1:] if argv is None else argv))
    if args.require_clean:
        try:
            require_clean(git_state())
        except DirtyTreeError as error:
            print(error, file=sys.stderr)
            return 2
    if args.list_cases:
        print("\n".join(c.name for c in cases))
        return 0
    if args.cases:
        known = {c.name: c for c in [*default_cases(True), *QUICK_CASES]}
        wanted = [name.strip() for name in args.cases.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            print(f"unknown cases {unknown}; known: {', '.join(known)}", file=sys.stderr)
            return 2
        cases = [known[name] for name in wanted]

    from benchmarks import peers

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="yolov5seg-bench-") as tmp:
        ctx = Context(args=args, workdir=Path(tmp), progress=Progress(0, enabled=False))
        for size in sorted({c.network for c in cases}):
            ctx.models[size] = resolve_model_files(size, args, ctx.workdir, rng)
        ctx.peers_legacy = not args.no_legacy and peers.legacy_available()
        ctx.peers_im = not args.no_inference_models and peers.inference_models_available()
        if not args.no_legacy and not ctx.peers_legacy:
            ctx.notes.append("inference-core legacy post-processing not importable: skipped")
        if not args.no_inference_models and not ctx.peers_im:
            ctx.notes.append("inference-models not importable: skipped")
        if not args.no_engine:
            try:
                ctx.engine = make_engine()
            except ImportError as error:
                ctx.notes.append(f"Workflows ExecutionEngine not importable ({error}): block not measured")
        total = sum(stages_of(c, ctx) for c in cases)
        ctx.progress = Progress(total, enabled=not args.no_progress)
        for size, files in ctx.models.items():
            ctx.notes.append(f"{size}-input model: {files.kind} ({files.static.name}, {files.dynamic.name})")
            if files.kind == "constant-graph":
                ctx.notes.append(f"{size}-input forward is a constant graph, not a network: its times are no floor")
        for case in cases:
            run_case(case, ctx, rng)
        ctx.progress.close()
        add_ratios(ctx.results)
        targets = evaluate_targets(ctx.results, cases)
        record = provenance([path for files in ctx.models.values() for path in (files.static, files.dynamic)])
    report = {
        "machine": machine_info(),
        "provenance": record,
        "command": "python -m benchmarks.benchmark " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {
            "repeats": args.repeats,
            "warmup": args.warmup,
            "budget_s": args.budget,
            "confidence": CONFIDENCE,
            "iou_threshold": IOU,
            "tradeoff_factor": TRADEOFF_FACTOR,
            "seed": args.seed,
        },
        "models": {
            str(k): {"static": str(v.static), "dynamic": str(v.dynamic), "kind": v.kind} for k, v in ctx.models.items()
        },
        "cases": [asdict(c) for c in cases],
        "notes": ctx.notes,
        "results": [asdict(r) for r in ctx.results],
        "targets": targets,
    }
    print(table(ctx.results))
    print()
    print("Targets:")
    print(targets_text(targets))
    for note in ctx.notes:
        print(f"note: {note}")
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
