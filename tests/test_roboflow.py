"""Roboflow model-id downloads, run for real against a local fake of the API on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workflows_yolov5_seg import roboflow, settings
from workflows_yolov5_seg.errors import (
    DownloadIntegrityError,
    NotYOLOSegModelError,
    NotYOLOv5SegModelError,
    RoboflowAPIError,
    RoboflowAPIKeyMissingError,
    RoboflowConnectionError,
    RoboflowModelNotFoundError,
    RoboflowUnauthorizedError,
)
from workflows_yolov5_seg.roboflow import MANIFEST_FILE, download_model_package

from support.fake_roboflow_api import FakeModel, FakeRoboflowAPI, roboflow_environment, serve
from support.paths import CACHE_ROOT_CASES

fcntl = pytest.importorskip("fcntl", reason="POSIX file locks")

API_KEY = "rf_SECRET_k3y_0123456789"
MODEL_ID = "shapes-seg/3"
FILES = {
    "weights.onnx": bytes(range(256)) * 64,
    "class_names.txt": b"circle\nrectangle\ntriangle\n",
    "inference_config.json": b'{"network_input": {}}',
}


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRoboflowAPI]:
    """The fake API with one model, wired in through the environment; a fresh cache folder."""
    fake = FakeRoboflowAPI(api_key=API_KEY, models={MODEL_ID: FakeModel(files=dict(FILES))})
    with serve(fake):
        roboflow_environment(monkeypatch, fake.base_url, tmp_path / "cache")
        monkeypatch.setenv(settings.API_TIMEOUT.name, "5")
        yield fake


def cache_dir(tmp_path: Path) -> Path:
    """The downloads folder under the test's cache root (``WORKFLOWS_YOLOV5_SEG_CACHE_DIR``)."""
    return tmp_path / "cache" / "roboflow"


def leftovers(tmp_path: Path) -> list[str]:
    """Files and folders in the cache other than lock files."""
    root = cache_dir(tmp_path)
    return (
        sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.endswith(".lock"))
        if root.exists()
        else []
    )


def test_download_writes_a_verified_package_and_sends_the_key_only_to_the_api(api, tmp_path) -> None:
    folder = download_model_package(MODEL_ID, api_key=API_KEY)

    assert folder == cache_dir(tmp_path) / "shapes-seg" / "3"
    for handle, content in FILES.items():
        assert (folder / handle).read_bytes() == content
    model_config = json.loads((folder / "model_config.json").read_text())
    assert model_config["model_architecture"] == "yolov5"
    assert model_config["task_type"] == "instance-segmentation"
    assert model_config["backend_type"] == "onnx"
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["package_id"] == "pkgonnx01"
    assert manifest["files"]["weights.onnx"] == {
        "size": len(FILES["weights.onnx"]),
        "md5": hashlib.md5(FILES["weights.onnx"]).hexdigest(),
    }
    metadata_requests = [r for r in api.requests if r[0] == roboflow.WEIGHTS_ENDPOINT]
    assert len(metadata_requests) == 1
    path, query, headers = metadata_requests[0]
    assert query == {"modelId": [MODEL_ID]}
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    file_requests = [r for r in api.requests if r[0].startswith("/files/")]
    assert len(file_requests) == len(FILES)
    assert all("Authorization" not in headers for _, _, headers in file_requests)
    assert all(API_KEY not in json.dumps(query) for _, query, _ in api.requests)
    package_files = (f"shapes-seg/3/{h}" for h in [*FILES, "model_config.json", MANIFEST_FILE])
    # shapes-seg/3.keys.json: the downloading key, confirmed, as a salted hash (tests/test_authorization.py)
    assert leftovers(tmp_path) == sorted(["shapes-seg", "shapes-seg/3", "shapes-seg/3.keys.json", *package_files])


def test_key_comes_from_the_environment(api, monkeypatch) -> None:
    monkeypatch.setenv("ROBOFLOW_API_KEY", API_KEY)
    assert (download_model_package(MODEL_ID) / "weights.onnx").is_file()


def test_cached_model_loads_offline_with_the_key_that_downloaded_it(api, tmp_path, monkeypatch) -> None:
    """Other keys and no key are refused offline: tests/test_authorization.py."""
    download_model_package(MODEL_ID, api_key=API_KEY)
    count = len(api.requests)
    monkeypatch.setenv(settings.API_URL.name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv(settings.OFFLINE_MODE.name, "true")

    folder = download_model_package(MODEL_ID, api_key=API_KEY)

    assert (folder / "weights.onnx").read_bytes() == FILES["weights.onnx"]
    assert len(api.requests) == count


def test_incomplete_cache_is_downloaded_again(api, tmp_path) -> None:
    folder = download_model_package(MODEL_ID, api_key=API_KEY)
    (folder / "weights.onnx").write_bytes(b"truncated")

    download_model_package(MODEL_ID, api_key=API_KEY)

    assert (folder / "weights.onnx").read_bytes() == FILES["weights.onnx"]
    assert api.metadata_requests() == 2


def test_concurrent_first_calls_download_once(api) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(download_model_package(MODEL_ID, api_key=API_KEY))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert len(set(results)) == 1
    assert api.metadata_requests() == 1
    assert api.file_requests() == len(FILES)


def test_waits_for_the_file_lock_of_another_process(api, tmp_path) -> None:
    """Another holder of the flock (another process) downloads; this call waits and then uses its result."""
    target = roboflow.package_dir(MODEL_ID)
    target.parent.mkdir(parents=True)
    lock_path = target.with_name(f"{target.name}.lock")
    result: list[Path] = []
    with open(lock_path, "a+b") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        thread = threading.Thread(target=lambda: result.append(download_model_package(MODEL_ID, api_key=API_KEY)))
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive() and api.requests == []
        # The "other process" completes its download, then releases the lock.
        finished = download_model_package(MODEL_ID, api_key=API_KEY, cache_dir=tmp_path / "elsewhere")
        import shutil

        shutil.copytree(finished, target)
        keys_file = f"{target.name}.keys.json"  # the key it confirmed, as the other process records it
        shutil.copy(finished.with_name(keys_file), target.with_name(keys_file))
        fcntl.flock(other.fileno(), fcntl.LOCK_UN)
    thread.join(timeout=10)
    assert result == [target]
    assert api.metadata_requests() == 1  # only the "other process" asked the API


def test_missing_key_is_a_clear_error_without_any_request(api) -> None:
    with pytest.raises(RoboflowAPIKeyMissingError, match="api_key.*ROBOFLOW_API_KEY"):
        download_model_package(MODEL_ID)
    assert api.requests == []


@pytest.mark.parametrize(
    ("setup", "model_id", "error_type", "status", "message"),
    [
        ("wrong_key", MODEL_ID, RoboflowUnauthorizedError, 401, "refused the API key"),
        ("forbidden", MODEL_ID, RoboflowUnauthorizedError, 403, "refused access"),
        ("none", "unknown-project/1", RoboflowModelNotFoundError, 404, "does not know the model"),
        ("status_500", MODEL_ID, RoboflowAPIError, 500, "answered 500"),
        ("status_502_always", MODEL_ID, RoboflowAPIError, 502, "answered 502"),
        ("file_404", MODEL_ID, RoboflowAPIError, 404, "file host answered 404 while downloading weights.onnx"),
        ("file_403", MODEL_ID, RoboflowAPIError, 403, "file host answered 403 while downloading weights.onnx"),
    ],
)
def test_api_failures_raise_typed_errors(api, tmp_path, setup, model_id, error_type, status, message) -> None:
    key = API_KEY
    if setup == "wrong_key":
        key = "another-key"
    elif setup == "forbidden":
        api.forbidden.add(MODEL_ID)
    elif setup == "status_500":
        api.status_overrides[roboflow.WEIGHTS_ENDPOINT] = [500]
    elif setup == "status_502_always":
        api.status_overrides[roboflow.WEIGHTS_ENDPOINT] = [502] * 10
    elif setup in ("file_404", "file_403"):
        api.status_overrides["/files/"] = [int(setup[-3:])]

    with pytest.raises(error_type, match=message) as caught:
        download_model_package(model_id, api_key=key)

    assert caught.value.status == status
    assert leftovers(tmp_path) in ([], ["shapes-seg"], ["unknown-project"])


def test_retryable_status_is_retried(api) -> None:
    api.status_overrides[roboflow.WEIGHTS_ENDPOINT] = [503, 429]
    assert (download_model_package(MODEL_ID, api_key=API_KEY) / "weights.onnx").is_file()
    assert api.metadata_requests() == 3


def test_connection_refused_is_a_connection_error(api, tmp_path, monkeypatch) -> None:
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(settings.API_URL.name, f"http://127.0.0.1:{port}")

    with pytest.raises(RoboflowConnectionError, match=f"Could not reach http://127.0.0.1:{port}") as caught:
        download_model_package(MODEL_ID, api_key=API_KEY)

    assert isinstance(caught.value, ConnectionError)
    assert leftovers(tmp_path) in ([], ["shapes-seg"])


def test_interrupted_download_is_retried(api, tmp_path, caplog) -> None:
    api.truncate["weights.onnx"] = 1
    with caplog.at_level(logging.WARNING, logger="workflows_yolov5_seg.roboflow"):
        folder = download_model_package(MODEL_ID, api_key=API_KEY)
    assert (folder / "weights.onnx").read_bytes() == FILES["weights.onnx"]
    assert "interrupted after" in caplog.text


def test_interrupted_download_leaves_nothing_and_a_later_call_succeeds(api, tmp_path) -> None:
    api.truncate["weights.onnx"] = 100

    with pytest.raises(DownloadIntegrityError, match=r"interrupted after \d+ of 16384 bytes"):
        download_model_package(MODEL_ID, api_key=API_KEY)

    assert leftovers(tmp_path) == ["shapes-seg"]  # no package, no half-written file, no staging folder
    api.truncate.clear()
    folder = download_model_package(MODEL_ID, api_key=API_KEY)
    assert (folder / "weights.onnx").read_bytes() == FILES["weights.onnx"]


def test_checksum_mismatch_is_detected(api, tmp_path) -> None:
    api.models[MODEL_ID].wrong_md5_for.add("class_names.txt")
    with pytest.raises(DownloadIntegrityError, match="Checksum of class_names.txt"):
        download_model_package(MODEL_ID, api_key=API_KEY)
    assert leftovers(tmp_path) == ["shapes-seg"]


@pytest.mark.parametrize(
    "architecture",
    [
        "yolov5",  # inference-models' instance segmentation registry keys (models_registry.py) ...
        "yolov8",
        "yolov11",
        "yolo26",
        "yolov5s-seg",  # ... and Inference's model types of them
        "yolov8n-seg",
    ],
)
def test_the_family_architectures_are_downloaded_and_recorded(api, architecture: str) -> None:
    api.models[MODEL_ID].architecture = architecture
    folder = download_model_package(MODEL_ID, api_key=API_KEY)
    config = json.loads((folder / "model_config.json").read_text())
    assert config["model_architecture"] == architecture  # read back as the package's architecture
    assert config["task_type"] == "instance-segmentation"


@pytest.mark.parametrize(
    ("architecture", "task_type"),
    [
        ("rfdetr", "instance-segmentation"),
        ("yolov7", "instance-segmentation"),  # inference-models has it, but its outputs are not this family's
        ("yolov9", "instance-segmentation"),  # not an inference-models segmentation architecture
        ("yolov8", "object-detection"),
        ("yolo26", "keypoint-detection"),
        ("yolov8n-pose", "instance-segmentation"),
        ("", "instance-segmentation"),
    ],
)
def test_other_architectures_are_refused(api, tmp_path, architecture: str, task_type: str) -> None:
    api.models[MODEL_ID].architecture = architecture
    api.models[MODEL_ID].task_type = task_type
    with pytest.raises(NotYOLOSegModelError, match=f"is a {architecture or 'unknown'} {task_type} model") as caught:
        download_model_package(MODEL_ID, api_key=API_KEY)
    assert "'yolov5', 'yolov8', 'yolov11', 'yolo26'" in str(caught.value)
    assert isinstance(caught.value, NotYOLOv5SegModelError)  # the old name catches it too
    assert leftovers(tmp_path) == ["shapes-seg"]  # nothing downloaded


def test_packages_of_every_page_are_considered_and_onnx_fp32_is_chosen(api) -> None:
    trt = {
        "type": "external-model-package-v1",
        "packageId": "trtpkg",
        "packageManifest": {"type": "trt-model-package-v1", "backendType": "trt", "quantization": "fp16"},
        "packageFiles": [],
    }
    fp16 = json.loads(json.dumps(api.package(MODEL_ID, api.models[MODEL_ID])))
    fp16["packageId"], fp16["packageManifest"]["quantization"] = "onnxfp16", "fp16"
    api.models[MODEL_ID].extra_packages = [trt, fp16, {"type": "future-package-v9"}]
    api.page_size = 1

    folder = download_model_package(MODEL_ID, api_key=API_KEY)

    assert json.loads((folder / MANIFEST_FILE).read_text())["package_id"] == "pkgonnx01"
    assert api.metadata_requests() == 4
    assert [q.get("startAfter") for p, q, _ in api.requests if p == roboflow.WEIGHTS_ENDPOINT] == [
        None,
        ["1"],
        ["2"],
        ["3"],
    ]


def test_unsafe_file_names_are_refused(api, tmp_path) -> None:
    api.models[MODEL_ID].files["../escape.txt"] = b"x"
    with pytest.raises(RoboflowAPIError, match="unsafe file name"):
        download_model_package(MODEL_ID, api_key=API_KEY)
    assert not (cache_dir(tmp_path) / "escape.txt").exists()


def test_offline_mode_refuses_to_download(api, monkeypatch) -> None:
    monkeypatch.setenv(settings.OFFLINE_MODE.name, "1")
    with pytest.raises(RoboflowConnectionError, match="not cached"):
        download_model_package(MODEL_ID, api_key=API_KEY)
    assert api.requests == []


# --- the download cache: private and atomic --------------------------------------------------------------------------


def test_download_cache_is_owner_only(api, tmp_path: Path) -> None:
    folder = roboflow.download_model_package(MODEL_ID, api_key=API_KEY)
    cache = tmp_path / "cache"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    for path in [cache, *cache.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} has mode {oct(mode)}"
    assert {p.name for p in folder.iterdir()} >= {"weights.onnx", "class_names.txt", roboflow.MANIFEST_FILE}


def test_download_cache_appears_in_one_rename(api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While files are downloading, the package folder does not exist; it appears complete, in one rename."""
    target = roboflow.package_dir(MODEL_ID)
    seen = []
    download = roboflow._Client.download

    def watching(self, url, destination, md5, label):  # noqa: ANN001, ANN202
        seen.append((label, target.exists(), stat.S_IMODE(destination.parent.stat().st_mode)))
        return download(self, url, destination, md5, label)

    renames = []
    replace = os.replace

    def recording(source, destination):  # noqa: ANN001, ANN202
        renames.append((Path(source), Path(destination)))
        return replace(source, destination)

    monkeypatch.setattr(roboflow._Client, "download", watching)
    monkeypatch.setattr(roboflow.os, "replace", recording)
    roboflow.download_model_package(MODEL_ID, api_key=API_KEY)
    assert seen and all(not exists for _, exists, _ in seen), seen
    assert all(mode == 0o700 for _, _, mode in seen), "the staging folder must be owner-only while files arrive"
    renames = [(s, d) for s, d in renames if d != target.with_name(f"{target.name}.keys.json")]  # confirmed keys
    assert renames == [(renames[0][0], target)] and ".partial-" in renames[0][0].name


def test_an_interrupted_download_leaves_no_package(api, tmp_path: Path) -> None:
    api.truncate["weights.onnx"] = 10  # every try is cut short
    with pytest.raises(roboflow.DownloadIntegrityError):
        roboflow.download_model_package(MODEL_ID, api_key=API_KEY)
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if not p.name.endswith(".lock") and p.is_file()]
    assert leftovers == []
    assert not roboflow.package_dir(MODEL_ID).exists()


# --- where things are ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "expected"), CACHE_ROOT_CASES)
def test_cache_location(monkeypatch, env, expected) -> None:
    """Downloads live under the cache root (its precedence: tests/test_settings.py)."""
    for name in ("WORKFLOWS_YOLOV5_SEG_CACHE_DIR", "MODEL_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert roboflow.package_dir("proj/12") == Path(expected) / "roboflow" / "proj" / "12"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"WORKFLOWS_YOLOV5_SEG_API_URL": "http://127.0.0.1:1/", "ROBOFLOW_API_HOST": "https://b"},
            "http://127.0.0.1:1",
        ),
        ({"ROBOFLOW_API_HOST": "https://api.roboflow.eu"}, "https://api.roboflow.eu"),
        ({}, "https://api.roboflow.com"),
        ({"ROBOFLOW_REGION": "eu"}, "https://api.roboflow.eu"),
        ({"ROBOFLOW_ENVIRONMENT": "staging"}, "https://api.roboflow.one"),
    ],
)
def test_api_url(monkeypatch, env, expected) -> None:
    for name in ("WORKFLOWS_YOLOV5_SEG_API_URL", "ROBOFLOW_API_HOST", "ROBOFLOW_REGION", "ROBOFLOW_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert roboflow.api_url() == expected


def _texts_of(error: BaseException) -> str:
    texts = []
    while error is not None:
        texts += [str(error), repr(error), *map(str, error.args)]
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


def test_the_api_key_never_leaks(api, tmp_path, caplog, capfd, monkeypatch) -> None:
    """Logs (all levels), stdout/stderr, exception texts and chains, outputs and cache files never hold the key."""
    api.echo_key_in_errors = True
    api.truncate["weights.onnx"] = 1
    monkeypatch.setenv(settings.KEY_REFUSAL_TTL.name, "0")  # the 403 below is not remembered
    failures = []
    with caplog.at_level(logging.DEBUG):
        api.status_overrides[roboflow.WEIGHTS_ENDPOINT] = [500]
        with pytest.raises(RoboflowAPIError) as caught:
            download_model_package(MODEL_ID, api_key=API_KEY)
        failures.append(caught.value)
        api.forbidden.add(MODEL_ID)
        with pytest.raises(RoboflowUnauthorizedError) as caught:
            download_model_package(MODEL_ID, api_key=API_KEY)
        failures.append(caught.value)
        api.forbidden.clear()
        folder = download_model_package(MODEL_ID, api_key=API_KEY)

    captured = capfd.readouterr()
    assert "***" in _texts_of(failures[0])  # the echoed key was redacted, not just absent
    assert "interrupted after" in caplog.text  # the retried interruption was logged
    for text in [caplog.text, captured.out, captured.err, *map(_texts_of, failures), str(folder)]:
        assert API_KEY not in text
    for path in cache_dir(tmp_path).rglob("*"):
        assert API_KEY not in str(path)
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes()


def test_concurrent_processes_download_once(api, tmp_path) -> None:
    """Three real processes ask for the same model at the same moment: the API is asked once.

    The children run with ``-S`` (no site hooks: this machine's site imports torch at start-up) and find the package
    through ``PYTHONPATH``; they wait at a file barrier so that they ask together.
    """
    import os
    import subprocess
    import sys

    repo = Path(roboflow.__file__).resolve().parent.parent
    barrier = tmp_path / "go"
    script = (
        "import sys, time, pathlib\n"
        "from workflows_yolov5_seg.roboflow import download_model_package\n"
        "pathlib.Path(sys.argv[1]).touch()\n"
        f"while not pathlib.Path({str(barrier)!r}).exists(): time.sleep(0.005)\n"
        f"print(download_model_package({MODEL_ID!r}))\n"
    )
    environment = {**os.environ, "ROBOFLOW_API_KEY": API_KEY, "PYTHONPATH": str(repo)}
    ready = [tmp_path / f"ready-{index}" for index in range(3)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-S", "-c", script, str(flag)],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for flag in ready
    ]
    deadline = time.time() + 60
    while not all(flag.exists() for flag in ready) and time.time() < deadline:
        if any(process.poll() is not None for process in processes):
            break
        time.sleep(0.01)
    barrier.touch()
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0] * 3, outputs
    assert {out.decode().strip() for out, _ in outputs} == {str(roboflow.package_dir(MODEL_ID))}
    assert api.metadata_requests() == 1
    assert api.file_requests() == len(FILES)
    assert all(API_KEY.encode() not in out + err for out, err in outputs)


@pytest.mark.parametrize("bad_key", ["rf key with spaces", "rf_key\r\nX-Injected: 1", "rf_kéy"])
def test_malformed_keys_are_refused_without_echoing_them(api, bad_key: str) -> None:
    with pytest.raises(RoboflowUnauthorizedError, match="cannot have") as caught:
        download_model_package(MODEL_ID, api_key=bad_key)
    assert bad_key.strip() not in _texts_of(caught.value)
    assert api.requests == []


def test_surrounding_whitespace_of_a_key_is_ignored(api) -> None:
    assert (download_model_package(MODEL_ID, api_key=f"  {API_KEY}\n") / "weights.onnx").is_file()
