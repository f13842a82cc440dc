"""A local stand-in for Roboflow's model API and file hosting, on 127.0.0.1 in a thread.

It answers ``GET /models/v1/external/weights?modelId=...`` as inference-models expects
(``inference_models/weights_providers/roboflow.py``) and serves the package files under ``/files/...``. Tests
script failures per path: a status code, an echo of the key in the body, or a truncated body (a Content-Length
larger than what is sent).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from workflows_yolov5_seg import settings

WEIGHTS_PATH = "/models/v1/external/weights"


@dataclass
class FakeModel:
    """One model the fake API knows: its files and how it describes them."""

    files: dict[str, bytes]
    architecture: str = "yolov5"
    task_type: str = "instance-segmentation"
    package_id: str = "pkgonnx01"
    extra_packages: list[dict[str, Any]] = field(default_factory=list)
    wrong_md5_for: set[str] = field(default_factory=set)


@dataclass
class FakeRoboflowAPI:
    """State and script of the fake server.

    Attributes:
        api_key: the key accepted for every model but the ``forbidden`` ones (other keys: ``keys``, else 401).
        models: model id -> model.
        forbidden: model ids the key may not access (403).
        status_overrides: path prefix -> list of statuses to answer, one per request (popped), before serving.
        truncate: file handle -> number of requests whose body is cut in half (Content-Length stays full).
        requests: every request as ``(path, query, headers)``.
    """

    api_key: str
    models: dict[str, FakeModel] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)
    status_overrides: dict[str, list[int]] = field(default_factory=dict)
    echo_key_in_errors: bool = False
    truncate: dict[str, int] = field(default_factory=dict)
    page_size: int | None = None
    requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)
    base_url: str = ""
    # Further keys (issue 15): key -> the model ids it may read (403 for any other); `revoke` makes it a 401.
    keys: dict[str, set[str]] = field(default_factory=dict)

    def metadata_requests(self) -> int:
        return sum(1 for path, _, _ in self.requests if path == WEIGHTS_PATH)

    def file_requests(self) -> int:
        return sum(1 for path, _, _ in self.requests if path.startswith("/files/"))

    # --- several keys (issue 15) ---------------------------------------------------------------------------------

    def grant(self, key: str, *model_ids: str) -> None:
        """Lets ``key`` read ``model_ids`` (a known key reading nothing when none are given)."""
        self.keys.setdefault(key, set()).update(model_ids)

    def revoke(self, key: str) -> None:
        """The key no longer exists: 401 from now on."""
        self.keys.pop(key, None)

    def key_requests(self, key: str) -> int:
        """Metadata requests made with ``key``."""
        header = f"Bearer {key}"
        return sum(
            1 for path, _, headers in self.requests if path == WEIGHTS_PATH and headers.get("Authorization") == header
        )

    def refusal(self, authorization: str | None, model_id: str) -> tuple[int, str] | None:
        """How the API refuses the key in ``authorization`` for ``model_id``, or ``None`` when it may read it."""
        if authorization == f"Bearer {self.api_key}":
            return (403, "Forbidden") if model_id in self.forbidden else None
        key = (authorization or "").removeprefix("Bearer ")
        if key not in self.keys:
            return 401, "Unauthorized: invalid API key"
        return None if model_id in self.keys[key] else (403, "Forbidden")

    # ---------------------------------------------------------------------------------------------------------------

    def package(self, model_id: str, model: FakeModel) -> dict[str, Any]:
        files = []
        for handle, content in model.files.items():
            digest = hashlib.md5(content).hexdigest()
            if handle in model.wrong_md5_for:
                digest = "0" * 32
            url = f"{self.base_url}/files/{urllib.parse.quote(model_id, safe='')}/{handle}?X-Goog-Signature=s1gn3d"
            files.append({"fileHandle": handle, "downloadUrl": url, "md5Hash": digest})
        return {
            "type": "external-model-package-v1",
            "packageId": model.package_id,
            "packageManifest": {
                "type": "onnx-model-package-v1",
                "backendType": "onnx",
                "dynamicBatchSize": True,
                "quantization": "fp32",
                "opset": 17,
            },
            "packageFiles": files,
            "trustedSource": True,
        }


def _handler(api: FakeRoboflowAPI) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json", length: int | None = None):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            if length is not None:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            if length is not None:
                self.close_connection = True

        def _error(self, status: int, message: str) -> None:
            if api.echo_key_in_errors:
                message = f"{message} (key received: {self.headers.get('Authorization', '')})"
            self._send(status, json.dumps({"error": {"message": message}}).encode())

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parsed = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parsed.query)
            api.requests.append((parsed.path, query, dict(self.headers.items())))
            for prefix, statuses in api.status_overrides.items():
                if parsed.path.startswith(prefix) and statuses:
                    self._error(statuses.pop(0), "scripted failure")
                    return
            if parsed.path == WEIGHTS_PATH:
                self._weights(query)
            elif parsed.path.startswith("/files/"):
                self._file(parsed.path)
            else:
                self._error(404, "endpoint not found")

        def _weights(self, query: dict[str, list[str]]) -> None:
            model_id = query.get("modelId", [""])[0]
            refusal = api.refusal(self.headers.get("Authorization"), model_id)
            if refusal is not None:
                self._error(*refusal)
                return
            if model_id not in api.models:
                self._error(404, f"Model {model_id} not found")
                return
            model = api.models[model_id]
            packages = [*model.extra_packages, api.package(model_id, model)]
            start = int(query.get("startAfter", ["0"])[0])
            size = api.page_size or len(packages)
            page = packages[start : start + size]
            next_page = str(start + size) if start + size < len(packages) else None
            body = {
                "modelMetadata": {
                    "type": "external-model-metadata-v1",
                    "modelId": model_id,
                    "modelArchitecture": model.architecture,
                    "taskType": model.task_type,
                    "modelPackages": page,
                    "nextPage": next_page,
                }
            }
            self._send(200, json.dumps(body).encode())

        def _file(self, path: str) -> None:
            _, _, quoted_id, handle = path.split("/", 3)
            model = api.models.get(urllib.parse.unquote(quoted_id))
            if model is None or handle not in model.files:
                self._error(404, "no such file")
                return
            content = model.files[handle]
            if api.truncate.get(handle, 0) > 0:
                api.truncate[handle] -= 1
                self._send(200, content[: len(content) // 2], "application/octet-stream", length=len(content))
                return
            self._send(200, content, "application/octet-stream")

    return Handler


@contextmanager
def serve(api: FakeRoboflowAPI) -> Iterator[FakeRoboflowAPI]:
    """Runs the fake API on a free port of 127.0.0.1 and sets ``api.base_url``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    api.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def package_files_from(folder: Path) -> dict[str, bytes]:
    """The files of a local package folder, as the fake API serves them."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def roboflow_environment(monkeypatch: pytest.MonkeyPatch, api_url: str, cache_dir: Path) -> None:
    """The package's Roboflow settings for a test: the API at ``api_url``, ``cache_dir`` as the cache root, no wait
    between retries, and no API key or offline mode from the caller's environment."""
    monkeypatch.setenv(settings.API_URL.name, api_url)
    monkeypatch.setenv(settings.CACHE_DIR.name, str(cache_dir))
    monkeypatch.setenv(settings.RETRY_BACKOFF.name, "0")
    monkeypatch.delenv(settings.API_KEY.name, raising=False)
    monkeypatch.delenv(settings.OFFLINE_MODE.name, raising=False)
