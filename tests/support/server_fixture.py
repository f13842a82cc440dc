"""The real Inference HTTP server as a test fixture, plus the images, fixtures and helpers the serving tests share.

``inference_server`` starts ``python -m workflows_yolov5_seg.cli serve`` (what the console script runs) with this
interpreter on 127.0.0.1 and a free port, once per test session, waits until ``/readiness`` answers, and stops the
process by its PID (terminate, then kill) at the end. The server's output goes to a temporary log file whose tail is
printed when the server does not start, and at the end of the session when a test failed while it ran.

The root ``tests/conftest.py`` registers this module's fixtures (``pytest_plugins``) for every test module.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

# The load test compares served answers the same way; its list of the engine's per-run ids is the one definition of
# what may differ between two runs of a workflow (the load test is in this checkout, tested in tests/lab/).
from benchmarks.loadtest import without_volatile

from support.models import make_ring_model
from support.paths import ASSETS, EXAMPLES, REPOSITORY
from support.workflows import init_engine

SERVER_START_TIMEOUT_S = float(os.environ.get("WORKFLOWS_YOLOV5_SEG_TEST_SERVER_TIMEOUT", "300"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            return f"(cannot read {self.log_path}: {error})"
        return "\n".join(text.splitlines()[-lines:])

    def client(self) -> Any:
        from inference_sdk import InferenceConfiguration, InferenceHTTPClient

        client = InferenceHTTPClient(api_url=self.url, api_key=None)
        client.configure(InferenceConfiguration(api_key_transport="header"))
        return client

    def assert_serving(self) -> None:
        """The server still answers (after an error)."""
        import requests

        response = requests.get(f"{self.url}/readiness", timeout=10)
        assert response.status_code == 200, f"server stopped serving: {response.status_code}\n{self.log_tail()}"
        assert self.process.poll() is None, f"server process exited with {self.process.returncode}\n{self.log_tail()}"


def start_server(
    workdir: Path, log_path: Path, model_roots: list[Path], timeout_s: float = SERVER_START_TIMEOUT_S
) -> ServerProcess:
    """Starts the server and waits until it is ready; raises with the log tail when it does not get there.

    Served, local model paths must lie under ``model_roots`` (``serve --model-root``).
    """
    import requests

    port = free_port()
    command = [
        sys.executable, "-m", "workflows_yolov5_seg.cli", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workdir", str(workdir), "--log-level", "info",
    ]  # fmt: skip
    for root in model_roots:
        command += ["--model-root", str(root)]
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    log = open(log_path, "wb")  # noqa: SIM115 - closed when the process ends
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(workdir), stdin=subprocess.DEVNULL
    )
    log.close()
    server = ServerProcess(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it was ready:\n{server.log_tail()}")
        try:
            if requests.get(f"{server.url}/readiness", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"the server was not ready after {timeout_s:.0f} s:\n{server.log_tail()}")


def stop_server(server: ServerProcess, grace_s: float = 20.0) -> None:
    """Terminates the server process by PID, then kills it if it does not exit in ``grace_s``."""
    if server.process.poll() is not None:
        return
    server.process.terminate()
    try:
        server.process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=grace_s)


@pytest.fixture(scope="session")
def inference_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    """The real Inference HTTP server with the plugin, shared by the session."""
    workdir = tmp_path_factory.mktemp("server")
    failed_before = request.session.testsfailed
    try:
        # The tests' models live in the session's temporary folders and the repository's model folders.
        roots = [tmp_path_factory.getbasetemp(), ASSETS, REPOSITORY / "models"]
        server = start_server(workdir, workdir / "server.log", roots)
    except RuntimeError as error:
        pytest.fail(f"the Inference server did not start: {error}", pytrace=False)
    yield server
    stop_server(server)
    if request.session.testsfailed > failed_before:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("-", f"Inference server log (tail of {server.log_path})")
            reporter.write_line(server.log_tail(200))


# --- models and images ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ring_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ring_model(tmp_path_factory.mktemp("ring_model") / "ring.onnx")


@pytest.fixture(scope="session")
def test_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Lossless (PNG) test images of different sizes, so the server decodes exactly the pixels the in-process
    engine gets (the SDK would JPEG-encode a numpy array)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(4)
    images = {"square": (320, 320), "wide": (240, 400), "tall": (427, 300)}
    paths = {}
    for name, (height, width) in images.items():
        image = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
        paths[name] = folder / f"{name}.png"
        cv2.imwrite(str(paths[name]), image)
    return paths


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image


# --- running and comparing ----------------------------------------------------------------------------------------


def run_in_process(
    definition: dict, runtime_parameters: dict[str, Any], serialize_results: bool = True
) -> list[dict[str, Any]]:
    """Runs a workflow through the in-process ExecutionEngine, as the server would (results serialised)."""
    engine = init_engine(definition, max_concurrent_steps=2)
    result = engine.run(runtime_parameters=runtime_parameters, serialize_results=serialize_results)
    return json.loads(json.dumps(result, default=str)) if serialize_results else result


def assert_same_predictions(served: dict[str, Any], local: dict[str, Any]) -> None:
    """Same boxes, classes, confidences (to float32 precision), polygons / RLE masks and image sizes."""
    served, local = without_volatile(served), without_volatile(local)
    assert served["image"] == local["image"]
    assert len(served["predictions"]) == len(local["predictions"])
    for ours, theirs in zip(served["predictions"], local["predictions"], strict=True):
        ours, theirs = copy.deepcopy(ours), copy.deepcopy(theirs)
        assert ours.pop("confidence") == pytest.approx(theirs.pop("confidence"), abs=1e-6)
        assert ours == theirs


def decode_image(serialized: dict[str, Any] | str) -> np.ndarray:
    """A serialised image: the engine's ``{"type": "base64", "value": ...}`` or the SDK's bare base64 string."""
    value = serialized["value"] if isinstance(serialized, dict) else serialized
    return cv2.imdecode(np.frombuffer(base64.b64decode(value), np.uint8), cv2.IMREAD_COLOR)


DEDUCTED_IMAGE = "<deducted_image>"  # what Inference's CLI writes into results.json in place of an image output


def assert_same_outputs(served: Any, local: Any, where: str = "result") -> None:  # noqa: ANN401
    """A served output equals the in-process one: detections by ``assert_same_predictions``; images (JPEG
    re-encodings on both sides) by size, or the CLI's placeholder; everything else exactly."""
    if isinstance(local, dict) and "predictions" in local and "image" in local:
        assert_same_predictions(served, local)
    elif isinstance(local, dict) and local.get("type") == "base64":
        if served != DEDUCTED_IMAGE:
            assert decode_image(served).shape == decode_image(local).shape, where
    elif isinstance(local, dict):
        assert set(served) == set(local), where
        for key in local:
            assert_same_outputs(served[key], local[key], f"{where}.{key}")
    elif isinstance(local, list):
        assert len(served) == len(local), where
        for index, (ours, theirs) in enumerate(zip(served, local, strict=True)):
            assert_same_outputs(ours, theirs, f"{where}[{index}]")
    else:
        assert served == local, where


def load_example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
