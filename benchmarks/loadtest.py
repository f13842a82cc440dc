"""Load test of the real Inference HTTP server with this plugin (issue 8).

``python -m benchmarks.loadtest`` starts ``workflows-yolov5-seg serve`` on 127.0.0.1 (or targets a running
server with ``--url``, which must be a loopback address), then:

1. sends each of a few distinct images once, serially: these answers are the reference, and the model is loaded;
2. sends ``--requests`` workflow requests (default 1000) at ``--concurrency`` (default 16) from a bounded job list
   (it stops by itself, and at ``--max-wall-s`` at the latest), interleaving one malformed request every
   ``--malformed-every`` good ones: bad base64, an image over the pixel limit, a body that is not JSON, an invalid
   workflow definition, an unknown block parameter;
3. checks that every serial answer has detections (the scenes all hold objects), that no request got a 5xx, that
   every good answer is complete (image size, every prediction with box, class, confidence and polygon) and equal to
   the serial answer for its image (ids and timings aside), and that every malformed request got a 4xx;
4. reports p50 / p90 / p99 latency, throughput, answers by status and kind, and the server's resident memory (VmRSS
   from ``/proc/<pid>/status``; needs the server's PID: known when started here, else ``--server-pid``) when ready,
   after the serial pass, every ``--rss-every`` requests during the load (``[requests done, seconds, KiB]``) and after
   it, with the growth after ``--warmup-requests`` (default 1000): the median RSS over the last ``--rss-window``
   requests over the median over the first window after the warm-up; with ``--max-rss-growth`` that growth is one of
   the checks (a soak: ``--requests 5000 --max-rss-growth 0.10``);
5. writes everything as JSON (``--out``) with what it ran on: the git commit, the model's SHA-256, package versions,
   and the load average before and after (throughput and latency are only comparable on a quiet machine: the report
   says ``"quiet_machine": false`` when the 1- or 5-minute load average exceeded ``QUIET_LOAD_AVERAGE`` at the
   start: the 5-minute one shows other jobs that paused just before the run).

Exit status 0 when every check passed, 1 otherwise, 2 when the server could not be started.

The model is ``--model`` (a YOLOv5-seg ``.onnx`` or package folder), by default the bundled trained model
``assets/shapes-yolov5n-seg-320.onnx``. Images are synthetic shape scenes (:mod:`tools.synthetic_shapes`), sent as PNG
so the server decodes exactly the pixels of the serial pass.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.provenance import installed_versions
from workflows_yolov5_seg.backends.engine_cache import file_sha256

BLOCK_TYPE = "workflows_yolov5_seg/yolov5_instance_segmentation@v1"
ASSETS = Path(__file__).resolve().parents[1] / "workflows_yolov5_seg" / "assets"
DEFAULT_MODEL = ASSETS / "shapes-yolov5n-seg-320.onnx"
MAX_IMAGE_PIXELS_ENV = "WORKFLOWS_YOLOV5_SEG_MAX_IMAGE_PIXELS"
DEFAULT_SERVER_PIXEL_LIMIT = 4_000_000  # set on a server started here, so an oversized request stays small
VOLATILE_KEYS = frozenset({"detection_id", "inference_id", "parent_id", "root_parent_id", "time"})
MALFORMED_KINDS = ("bad_base64", "image_over_pixel_limit", "body_not_json", "invalid_workflow", "unknown_parameter")
# Sizes (width, height) of the distinct images.
IMAGE_SIZES = ((640, 480), (320, 320), (480, 640), (800, 450), (256, 192), (500, 500))
QUIET_LOAD_AVERAGE = 1.5  # 1- or 5-minute load average above which timings are not comparable
VERSIONED_PACKAGES = (
    "workflows-yolov5-seg", "inference-core", "inference-sdk", "onnxruntime", "numpy", "supervision",
    "opencv-python", "opencv-python-headless", "fastapi", "uvicorn",
)  # fmt: skip
REPOSITORY = Path(__file__).resolve().parents[1]
ALLOCATOR_VARIABLES = ("GLIBC_TUNABLES", "WORKFLOWS_YOLOV5_SEG_MMAP_THRESHOLD")

WORKFLOW: dict[str, Any] = {
    "version": "1.0",
    "inputs": [
        {"type": "WorkflowImage", "name": "image"},
        {"type": "WorkflowParameter", "name": "model"},
        {"type": "WorkflowParameter", "name": "confidence", "default_value": 0.4},
    ],
    "steps": [
        {
            "type": BLOCK_TYPE,
            "name": "seg",
            "images": "$inputs.image",
            "model": "$inputs.model",
            "confidence": "$inputs.confidence",
        }
    ],
    "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.seg.predictions"}],
}


# --- the server ---------------------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    pid: int | None
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None:
            return ""
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def http_get(url: str, timeout: float = 5.0) -> int:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def start_server(workdir: Path, pixel_limit: int, model_root: Path, timeout_s: float = 300.0) -> Server:
    """Starts ``workflows-yolov5-seg serve --model-root MODEL_ROOT`` on 127.0.0.1 and a free port; waits for
    ``/readiness``."""
    port = free_port()
    log_path = workdir / "server.log"
    environment = {**os.environ, MAX_IMAGE_PIXELS_ENV: str(pixel_limit), "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "-m", "workflows_yolov5_seg.cli", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workdir", str(workdir), "--log-level", "warning",
        "--model-root", str(model_root),
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment, stdin=subprocess.DEVNULL
        )
    server = Server(f"http://127.0.0.1:{port}", process.pid, process, log_path)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}:\n{server.log_tail()}")
            try:
                if http_get(f"{server.url}/readiness", timeout=2) == 200:
                    return server
            except OSError:
                pass
            time.sleep(0.5)
    except BaseException:  # interrupted (Ctrl-C) while waiting: do not leave the server behind
        stop_server(server)
        raise
    stop_server(server)
    raise RuntimeError(f"the server was not ready after {timeout_s:.0f} s:\n{server.log_tail()}")


def stop_server(server: Server, grace_s: float = 20.0) -> None:
    """Stops a server started here, by its PID (terminate, then kill)."""
    process = server.process
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace_s)


def resident_memory_kib(pid: int | None) -> dict[str, int] | None:
    """``VmRSS`` and ``VmHWM`` (peak) of a process, in KiB, from ``/proc/<pid>/status`` (Linux)."""
    if pid is None:
        return None
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0])
    return values or None


# --- requests -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    index: int
    kind: str  # "good" or one of MALFORMED_KINDS
    image: int  # index of the image for good requests


@dataclass
class Outcome:
    job: Job
    status: int  # 0: no HTTP answer
    latency_s: float
    problem: str | None = None


def encode_png(image: Any) -> str:
    import cv2

    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    return base64.b64encode(buffer.tobytes()).decode("ascii")


def make_images(count: int, seed: int = 8) -> list[tuple[int, int, str]]:
    """``count`` distinct scenes as ``(width, height, base64 PNG)``."""
    from tools.synthetic_shapes import generate_scene

    images = []
    for index in range(count):
        width, height = IMAGE_SIZES[index % len(IMAGE_SIZES)]
        image, _ = generate_scene(seed * 1000 + index, size=(width, height))
        images.append((width, height, encode_png(image)))
    return images


def oversized_png(pixel_limit: int) -> str:
    """A flat image just over ``pixel_limit`` pixels (PNG keeps it small on the wire)."""
    import numpy as np

    width = 2000
    height = pixel_limit // width + 1
    return encode_png(np.full((height, width, 3), 90, np.uint8))


def good_body(image_b64: str, model: str) -> bytes:
    return json.dumps(
        {"specification": WORKFLOW, "inputs": {"image": {"type": "base64", "value": image_b64}, "model": model}}
    ).encode()


def malformed_bodies(model: str, small_image_b64: str, oversized_b64: str) -> dict[str, bytes]:
    image = {"type": "base64", "value": small_image_b64}
    invalid_workflow = {**WORKFLOW, "steps": [{**WORKFLOW["steps"][0], "images": "$inputs.no_such_input"}]}
    unknown_parameter = {**WORKFLOW, "steps": [{**WORKFLOW["steps"][0], "confidence_treshold": 0.5}]}
    return {
        "bad_base64": json.dumps(
            {
                "specification": WORKFLOW,
                "inputs": {"image": {"type": "base64", "value": "@@not base64!"}, "model": model},
            }
        ).encode(),
        "image_over_pixel_limit": good_body(oversized_b64, model),
        "body_not_json": b'{"specification": {"version": "1.0", "steps": [',
        "invalid_workflow": json.dumps(
            {"specification": invalid_workflow, "inputs": {"image": image, "model": model}}
        ).encode(),
        "unknown_parameter": json.dumps(
            {"specification": unknown_parameter, "inputs": {"image": image, "model": model}}
        ).encode(),
    }


class Client:
    """One keep-alive connection per thread."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.timeout_s = parts.hostname, parts.port, timeout_s
        self.local = threading.local()

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in range(2):  # a kept-alive connection the server closed is reopened once
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
                self.local.connection = connection
            try:
                connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                self.local.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def without_volatile(value: Any) -> Any:
    """``value`` without the per-run random ids (detection / inference / parent ids) and timings."""
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


PREDICTION_KEYS = ("x", "y", "width", "height", "confidence", "class", "class_id", "points")


def completeness_problem(answer: Any, width: int, height: int) -> str | None:
    """Why a good answer is incomplete, or ``None``."""
    try:
        outputs = answer["outputs"]
        predictions = outputs[0]["predictions"]
        if predictions["image"] != {"width": width, "height": height}:
            return f"image size {predictions['image']} instead of {width}x{height}"
        for prediction in predictions["predictions"]:
            missing = [key for key in PREDICTION_KEYS if key not in prediction]
            if missing:
                return f"a prediction lacks {missing}"
            if not prediction["points"]:
                return "a prediction has no polygon"
    except (KeyError, IndexError, TypeError) as error:
        return f"malformed answer ({type(error).__name__}: {error})"
    return None


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


# --- the test -------------------------------------------------------------------------------------------------------


@dataclass
class Settings:
    requests: int = 1000
    concurrency: int = 16
    malformed_every: int = 20
    images: int = 6
    max_wall_s: float = 900.0
    rss_every: int = 100
    warmup_requests: int = 1000
    rss_window: int = 1000
    max_rss_growth: float | None = None
    request_timeout_s: float = 120.0
    pixel_limit: int = DEFAULT_SERVER_PIXEL_LIMIT
    model: str = str(DEFAULT_MODEL)
    url: str | None = None
    server_pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # called with the number of requests done at every RSS sample (benchmarks.memory_probe asks the server then)
    on_sample: Any = None


def build_jobs(settings: Settings) -> list[Job]:
    jobs, kinds = [], itertools.cycle(MALFORMED_KINDS)
    for index in range(settings.requests):
        jobs.append(Job(len(jobs), "good", index % settings.images))
        if settings.malformed_every and (index + 1) % settings.malformed_every == 0:
            jobs.append(Job(len(jobs), next(kinds), -1))
    return jobs


def run_load_test(settings: Settings, log: Any = print) -> dict[str, Any]:
    """Runs the whole test; returns the report (``report["ok"]`` tells whether every check passed)."""
    if settings.url is not None and not is_loopback(settings.url):
        raise ValueError(f"--url must be a loopback address (127.0.0.1 / localhost), got {settings.url}")
    if not Path(settings.model).exists():
        raise FileNotFoundError(
            f"model '{settings.model}' does not exist; pass --model with a YOLOv5-seg .onnx file or package folder"
        )
    model = str(Path(settings.model).resolve())
    provenance = run_provenance(model)
    server: Server | None = None
    workdir = Path(tempfile.mkdtemp(prefix="workflows-yolov5-seg-loadtest-"))
    try:
        if settings.url is None:
            log(f"starting the server (pixel limit {settings.pixel_limit}) ...")
            started = time.monotonic()
            server = start_server(workdir, settings.pixel_limit, Path(model).parent)
            log(f"server ready at {server.url} (pid {server.pid}) in {time.monotonic() - started:.1f} s")
            url, pid = server.url, server.pid
        else:
            url, pid = settings.url.rstrip("/"), settings.server_pid
        report = _run(settings, url, pid, model, log)
    finally:
        if server is not None:
            stop_server(server)
    load_after = _load_average()
    provenance["load_average_after"] = load_after
    report["provenance"] = provenance
    report["quiet_machine"] = is_quiet(provenance["load_average_before"])
    return report


def is_quiet(load_average: Sequence[float]) -> bool:
    """Whether the 1- and 5-minute load averages are at most ``QUIET_LOAD_AVERAGE`` (timings are comparable)."""
    return all(value <= QUIET_LOAD_AVERAGE for value in load_average[:2])


def _load_average() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return [float("nan")] * 3


def _git(*arguments: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *arguments], cwd=REPOSITORY, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def run_provenance(model: str) -> dict[str, Any]:
    """What the run ran on: git commit (and whether the tree had changes), the model's SHA-256, package versions, the
    load average before the run, and the memory allocator settings the server inherits."""
    path = Path(model)
    weights = path if path.is_file() else next(iter(sorted(path.glob("*.onnx"))), None)
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_tree_modified": None if status is None else bool(status),
        "model_file": None if weights is None else weights.name,
        "model_sha256": None if weights is None else file_sha256(weights),
        "versions": installed_versions(VERSIONED_PACKAGES),
        "load_average_before": _load_average(),
        # what the server inherits about its memory allocator (glibc's variables; serve's mmap threshold setting)
        "allocator_environment": {
            k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_") or k in ALLOCATOR_VARIABLES
        },
    }


def _run(settings: Settings, url: str, pid: int | None, model: str, log: Any) -> dict[str, Any]:
    client = Client(url, settings.request_timeout_s)
    images = make_images(settings.images)
    bodies = [good_body(b64, model) for _, _, b64 in images]
    bad = malformed_bodies(model, images[0][2], oversized_png(settings.pixel_limit))
    memory = {"ready": resident_memory_kib(pid)}

    # 1. serial reference answers (this also loads the model)
    reference = []
    serial_latencies = []
    for index, body in enumerate(bodies):
        started = time.perf_counter()
        status, raw = client.post("/workflows/run", body)
        serial_latencies.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"the serial request for image {index} got {status}: {raw[:500]!r}")
        answer = json.loads(raw)
        problem = completeness_problem(answer, images[index][0], images[index][1])
        if problem:
            raise RuntimeError(f"the serial answer for image {index} is incomplete: {problem}")
        reference.append(without_volatile(answer["outputs"]))
    memory["after_serial"] = resident_memory_kib(pid)
    serial_detections = [len(r[0]["predictions"]["predictions"]) for r in reference]
    log(f"serial reference: {len(images)} images, {serial_detections} detections")

    # 2. the load
    jobs = build_jobs(settings)
    queue = iter(jobs)
    queue_lock = threading.Lock()
    outcomes: list[Outcome] = []
    outcomes_lock = threading.Lock()
    started = time.monotonic()
    deadline = started + settings.max_wall_s
    stopped_by_cap = threading.Event()
    interrupted = threading.Event()
    rss_samples: list[list[float]] = []  # [requests done, seconds since the load began, VmRSS KiB]

    def worker() -> None:
        while not interrupted.is_set():
            if time.monotonic() > deadline:
                stopped_by_cap.set()
                return
            with queue_lock:
                job = next(queue, None)
            if job is None:
                return
            body = bodies[job.image] if job.kind == "good" else bad[job.kind]
            began = time.perf_counter()
            try:
                status, raw = client.post("/workflows/run", body)
            except (OSError, http.client.HTTPException) as error:
                outcome = Outcome(job, 0, time.perf_counter() - began, f"no answer: {type(error).__name__}: {error}")
            else:
                outcome = Outcome(job, status, time.perf_counter() - began)
                outcome.problem = judge(job, status, raw)
            with outcomes_lock:
                outcomes.append(outcome)
                done = len(outcomes)
            if settings.rss_every and done % settings.rss_every == 0:
                rss = resident_memory_kib(pid)
                if rss:
                    with outcomes_lock:
                        rss_samples.append([done, round(time.monotonic() - started, 1), rss["VmRSS"]])
                if settings.on_sample is not None:
                    settings.on_sample(done)
                if done % 200 == 0:
                    log(
                        f"  {done} / {len(jobs)} requests"
                        + (f", server RSS {rss['VmRSS'] / 1024:.0f} MiB" if rss else "")
                    )

    def judge(job: Job, status: int, raw: bytes) -> str | None:
        if job.kind != "good":
            return None if 400 <= status < 500 else f"{job.kind} got {status} instead of a 4xx: {raw[:300]!r}"
        if status != 200:
            return f"got {status}: {raw[:300]!r}"
        try:
            answer = json.loads(raw)
        except ValueError:
            return "the answer is not JSON"
        width, height, _ = images[job.image]
        problem = completeness_problem(answer, width, height)
        if problem:
            return f"incomplete: {problem}"
        if without_volatile(answer["outputs"]) != reference[job.image]:
            return f"differs from the serial answer for image {job.image}"
        return None

    with ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="load") as pool:
        try:
            for future in [pool.submit(worker) for _ in range(settings.concurrency)]:
                future.result()
        except BaseException:  # Ctrl-C: the workers stop after their request in flight, not after the job list
            interrupted.set()
            raise
    wall_s = time.monotonic() - started
    memory["after_load"] = resident_memory_kib(pid)

    # 3. the report
    good = [o for o in outcomes if o.job.kind == "good"]
    malformed = [o for o in outcomes if o.job.kind != "good"]
    latencies_ms = [o.latency_s * 1000 for o in good if o.status == 200]
    failures = [o for o in outcomes if o.problem]
    status_counts = Counter(str(o.status) for o in outcomes)
    by_kind: dict[str, Counter] = {}
    for outcome in malformed:
        by_kind.setdefault(outcome.job.kind, Counter())[str(outcome.status)] += 1
    server_errors = sum(1 for o in outcomes if o.status >= 500)
    growth = None
    if memory.get("after_serial") and memory.get("after_load"):
        growth = memory["after_load"]["VmRSS"] / memory["after_serial"]["VmRSS"] - 1
    rss_samples.sort()
    after_warmup = _rss_after(rss_samples, settings.warmup_requests, memory.get("after_load"), settings.rss_window)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "server": {"url": url, "pid": pid, "started_here": settings.url is None, "pixel_limit": settings.pixel_limit},
        "model": model,
        "settings": {
            "requests": settings.requests,
            "concurrency": settings.concurrency,
            "malformed_every": settings.malformed_every,
            "images": [f"{w}x{h}" for w, h, _ in images],
            "max_wall_s": settings.max_wall_s,
            "rss_every": settings.rss_every,
            "warmup_requests": settings.warmup_requests,
            "rss_window": settings.rss_window,
            "max_rss_growth": settings.max_rss_growth,
            **settings.extra,
        },
        "sent": {"good": len(good), "malformed": len(malformed), "planned": len(jobs)},
        "stopped_by_wall_cap": stopped_by_cap.is_set() and len(outcomes) < len(jobs),
        "wall_s": round(wall_s, 3),
        "throughput_rps": round(len(good) / wall_s, 2) if wall_s else None,
        "latency_ms": {
            "p50": round(percentile(latencies_ms, 50), 1),
            "p90": round(percentile(latencies_ms, 90), 1),
            "p99": round(percentile(latencies_ms, 99), 1),
            "max": round(max(latencies_ms), 1) if latencies_ms else None,
            "mean": round(statistics.fmean(latencies_ms), 1) if latencies_ms else None,
            "serial_mean": round(statistics.fmean(serial_latencies) * 1000, 1),
        },
        "status_counts": dict(sorted(status_counts.items())),
        "server_errors_5xx": server_errors,
        "good_ok": sum(1 for o in good if o.problem is None),
        "good_mismatches": sum(1 for o in good if o.problem and "differs" in o.problem),
        "good_incomplete": sum(1 for o in good if o.problem and o.problem.startswith("incomplete")),
        "malformed_by_kind": {kind: dict(counts) for kind, counts in sorted(by_kind.items())},
        "malformed_not_4xx": sum(1 for o in malformed if o.problem),
        "server_rss_kib": memory,
        "server_rss_growth_during_load": None if growth is None else round(growth, 4),
        # [requests done (good and malformed), seconds since the load began, VmRSS KiB], every rss_every requests
        "server_rss_kib_during_load": rss_samples,
        # after the first quarter of the load: pools, arenas and caches have grown to the concurrency by then
        "server_rss_growth_after_first_quarter": _growth_after(rss_samples, len(jobs) // 4, memory.get("after_load")),
        "server_rss_after_warmup": after_warmup,
        # every scene has objects: an image the model finds nothing in would make "equal to the serial answer" empty
        "serial_detections": serial_detections,
        "failures": [f"#{o.job.index} {o.job.kind}: {o.problem}" for o in failures[:20]],
    }
    empty = [index for index, count in enumerate(serial_detections) if count == 0]
    if empty:
        report["failures"].insert(
            0, f"no detections in the serial answers for images {empty}: equal answers under load would prove nothing"
        )
    rss_within_limit = settings.max_rss_growth is None or (
        after_warmup is not None and after_warmup["growth"] <= settings.max_rss_growth
    )
    report["rss_within_limit"] = None if settings.max_rss_growth is None else rss_within_limit
    report["ok"] = (
        not failures
        and not empty
        and not report["stopped_by_wall_cap"]
        and len(outcomes) == len(jobs)
        and server_errors == 0
        and rss_within_limit
    )
    return report


def _growth_after(samples: list[list[float]], done: int, last: dict[str, int] | None) -> float | None:
    """RSS growth from the first sample taken after ``done`` requests to the end of the load."""
    start = next((sample[-1] for sample in samples if sample[0] >= done), None)
    if start is None or not last:
        return None
    return round(last["VmRSS"] / start - 1, 4)


def _rss_after(
    samples: list[list[float]], done: int, last: dict[str, int] | None, window: int = 1000
) -> dict[str, Any] | None:
    """RSS growth after the warm-up (the first ``done`` requests).

    Under concurrent load the RSS of one sample depends on what the requests in flight hold at that moment (memory
    freed by a request goes back to the system), so single samples vary by more than 10 %. ``growth`` compares the
    median of the samples in the first ``window`` requests after the warm-up with the median of those in the last
    ``window`` requests; a leak moves both the medians and the highest sample. Also reported: the single samples at
    both ends (``point_growth``) and the highest sample after the warm-up over the first window's median.
    """
    after = [sample for sample in samples if sample[0] >= done]
    if len(after) < 2 or not last:
        return None
    first_done, last_done = after[0][0], after[-1][0]
    first = [sample[-1] for sample in after if sample[0] < first_done + window]
    final = [sample[-1] for sample in after if sample[0] > last_done - window]
    first_median, final_median = statistics.median(first), statistics.median(final)
    highest = max(sample[-1] for sample in after)
    return {
        "requests": int(first_done),
        "end_requests": int(last_done),
        "window_requests": window,
        "windows_overlap": last_done - window < first_done + window,
        "first_window_median_kib": int(first_median),
        "last_window_median_kib": int(final_median),
        "growth": round(final_median / first_median - 1, 4),
        "kib": int(after[0][-1]),
        "end_kib": last["VmRSS"],
        "point_growth": round(last["VmRSS"] / after[0][-1] - 1, 4),
        "max_kib": int(highest),
        "max_growth": round(highest / first_median - 1, 4),
    }


def summary(report: dict[str, Any]) -> str:
    latency = report["latency_ms"]
    memory = report["server_rss_kib"]

    def mib(entry: dict[str, int] | None) -> str:
        return f"{entry['VmRSS'] / 1024:.0f} MiB" if entry else "n/a"

    lines = [
        f"{'PASS' if report['ok'] else 'FAIL'}: {report['sent']['good']} workflow requests + "
        f"{report['sent']['malformed']} malformed at concurrency {report['settings']['concurrency']} in "
        f"{report['wall_s']:.1f} s ({report['throughput_rps']} req/s)",
        f"latency ms: p50 {latency['p50']}, p90 {latency['p90']}, p99 {latency['p99']}, max {latency['max']} "
        f"(serial mean {latency['serial_mean']})",
        f"statuses: {report['status_counts']}; 5xx: {report['server_errors_5xx']}; good answers equal to serial: "
        f"{report['good_ok']} / {report['sent']['good']}",
        f"malformed by kind: {report['malformed_by_kind']}",
        f"server RSS: ready {mib(memory.get('ready'))}, after serial {mib(memory.get('after_serial'))}, after load "
        f"{mib(memory.get('after_load'))} (growth {report['server_rss_growth_during_load']}; after the first quarter "
        f"{report['server_rss_growth_after_first_quarter']})",
    ]
    warm = report.get("server_rss_after_warmup")
    if warm:
        lines.append(
            f"server RSS after the warm-up: median {warm['first_window_median_kib'] / 1024:.0f} MiB over requests "
            f"{warm['requests']}-{warm['requests'] + warm['window_requests']}, "
            f"{warm['last_window_median_kib'] / 1024:.0f} MiB over the last {warm['window_requests']} (growth "
            f"{warm['growth']:+.1%}); single samples {warm['kib'] / 1024:.0f} -> {warm['end_kib'] / 1024:.0f} MiB "
            f"({warm['point_growth']:+.1%}); highest {warm['max_kib'] / 1024:.0f} MiB ({warm['max_growth']:+.1%})"
            + ("" if report.get("rss_within_limit") is None else f"; within the limit: {report['rss_within_limit']}")
        )
    provenance = report.get("provenance")
    if provenance:
        lines.append(
            f"load average before {provenance['load_average_before']}, after {provenance['load_average_after']}"
            + ("" if report.get("quiet_machine") else " (not a quiet machine: timings are not comparable)")
        )
    lines += [f"  {failure[:160]}" for failure in report["failures"][:6]]
    if len(report["failures"]) > 6:
        lines.append(f"  ... ({len(report['failures'])} listed in the report)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.loadtest",
        description="Load test of the Inference server with the workflows-yolov5-seg plugin, on 127.0.0.1.",
    )
    parser.add_argument("--url", help="a running server on 127.0.0.1 (default: start one here)")
    parser.add_argument("--server-pid", type=int, help="PID of the server given with --url, for its memory figures")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="YOLOv5-seg .onnx or package folder")
    parser.add_argument("--requests", type=int, default=1000, help="good workflow requests (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument(
        "--malformed-every", type=int, default=20, help="one malformed request after every N good ones (0: none)"
    )
    parser.add_argument("--images", type=int, default=6, help="distinct images (default 6)")
    parser.add_argument("--max-wall-s", type=float, default=900.0, help="stop sending after this (default 900)")
    parser.add_argument(
        "--rss-every", type=int, default=100, help="sample the server's RSS every N requests (default 100; 0: never)"
    )
    parser.add_argument(
        "--warmup-requests",
        type=int,
        default=1000,
        help="RSS growth is measured after this many requests (default 1000)",
    )
    parser.add_argument(
        "--rss-window",
        type=int,
        default=1000,
        help="RSS growth compares the median RSS of the first and the last N requests after the warm-up (default 1000)",
    )
    parser.add_argument(
        "--max-rss-growth",
        type=float,
        help="fail when the RSS (window medians, see --rss-window) grows more than this fraction after the warm-up "
        "(e.g. 0.10); default: not checked",
    )
    parser.add_argument(
        "--pixel-limit",
        type=int,
        default=DEFAULT_SERVER_PIXEL_LIMIT,
        help=f"{MAX_IMAGE_PIXELS_ENV} of the server (set on a server started here; with --url give the server's)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("loadtest.json"), help="the JSON report (default ./loadtest.json)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.requests < 1 or arguments.concurrency < 1 or arguments.images < 1:
        print("error: --requests, --concurrency and --images must be >= 1", file=sys.stderr)
        return 2
    settings = Settings(
        requests=arguments.requests,
        concurrency=arguments.concurrency,
        malformed_every=arguments.malformed_every,
        images=arguments.images,
        max_wall_s=arguments.max_wall_s,
        rss_every=arguments.rss_every,
        warmup_requests=arguments.warmup_requests,
        rss_window=arguments.rss_window,
        max_rss_growth=arguments.max_rss_growth,
        pixel_limit=arguments.pixel_limit,
        model=arguments.model,
        url=arguments.url,
        server_pid=arguments.server_pid,
    )
    try:
        report = run_load_test(settings, log=lambda message: print(message, flush=True))
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    arguments.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(summary(report))
    print(f"report: {arguments.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
