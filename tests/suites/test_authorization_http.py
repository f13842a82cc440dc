"""Issue 15 over HTTP: the real Inference server serves a Roboflow model id only to keys the API confirmed.

One server process for the module, started here rather than by the shared fixture: its environment points
``WORKFLOWS_YOLOV5_SEG_API_URL`` at the fake API of this module, gives it its own cache and short times-to-live
(confirmations 5 s, refusals 1 s), so that expiry is seen by waiting a few seconds. A second server, started with
``OFFLINE_MODE`` on and the same cache, stands for a new process on an air-gapped machine. Status codes: a missing,
unknown or revoked key 401; a key without access to the model 403; a key not confirmed while the API cannot be asked
403. After every refusal the server keeps serving.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from workflows_yolov5_seg import settings

from support.fake_roboflow_api import WEIGHTS_PATH, FakeModel, FakeRoboflowAPI, package_files_from, serve
from support.models import LETTERBOX_320_CONFIG, make_ring_model
from support.required import require_module
from support.server_fixture import ServerProcess, start_server, stop_server
from support.workflows import workflow

requests = require_module("requests", "requests (the inference extra)")
require_module("inference_sdk", "the Inference SDK (the inference extra)")

pytestmark = pytest.mark.server

MODEL_ID = "team-seg/2"
KEY_A = "rf_http_team_A_SECRET_1a2b"  # may read the model
KEY_B = "rf_http_team_B_SECRET_3c4d"  # a valid key of another workspace: 403
KEY_C = "rf_http_team_C_SECRET_5e6f"  # may read the model (used for the time-to-live and revocation)
KEY_D = "rf_http_team_D_SECRET_7a8b"  # may read the model (confirmed, then used while the API fails)
KEY_E = "rf_http_team_E_SECRET_9c0d"  # may read the model, never confirmed before the API fails
KEY_F = "rf_http_team_F_SECRET_1e2f"  # may read the model, never used before the offline server asks
UNKNOWN_KEY = "rf_http_unknown_SECRET_0000"
KEYS = (KEY_A, KEY_B, KEY_C, KEY_D, KEY_E, KEY_F, UNKNOWN_KEY)
CONFIRMATION_TTL_S = 5.0
REFUSAL_TTL_S = 1.0

WORKFLOW = workflow(parameters={"api_key": None}, step={"model": MODEL_ID})


def start_authorizing_server(workdir: Path, api: FakeRoboflowAPI, cache: Path, offline: bool = False) -> ServerProcess:
    """A server for Roboflow ids only (no model roots), authorising keys at ``api`` with the short times-to-live."""
    with pytest.MonkeyPatch.context() as environment:  # the server's environment, not this process's
        environment.setenv(settings.API_URL.name, api.base_url)
        environment.setenv(settings.CACHE_DIR.name, str(cache))
        environment.setenv(settings.KEY_CONFIRMATION_TTL.name, str(CONFIRMATION_TTL_S))
        environment.setenv(settings.KEY_REFUSAL_TTL.name, str(REFUSAL_TTL_S))
        environment.setenv(settings.API_MAX_TRIES.name, "1")
        environment.setenv(settings.RETRY_BACKOFF.name, "0")
        for setting in (settings.API_KEY, settings.OFFLINE_MODE, settings.AUTHORIZE_ROBOFLOW_KEYS):
            environment.delenv(setting.name, raising=False)
        if offline:
            environment.setenv(settings.OFFLINE_MODE.name, "true")
        try:
            return start_server(workdir, workdir / "server.log", model_roots=[])
        except RuntimeError as error:
            pytest.fail(f"the Inference server did not start: {error}", pytrace=False)


def stop_and_check_log(server: ServerProcess) -> None:
    stop_server(server)
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert not [key for key in KEYS if key in log], "an API key reached the server log"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, FakeRoboflowAPI]]:
    root = tmp_path_factory.mktemp("authorization_http")
    package = root / "package"
    package.mkdir()
    make_ring_model(package / "weights.onnx")
    (package / "class_names.txt").write_text("ring\nblob\nempty\n")
    (package / "inference_config.json").write_text(json.dumps(LETTERBOX_320_CONFIG))
    api = FakeRoboflowAPI(api_key="rf_http_unused", models={MODEL_ID: FakeModel(files=package_files_from(package))})
    for key in (KEY_A, KEY_C, KEY_D, KEY_E, KEY_F):
        api.grant(key, MODEL_ID)
    api.grant(KEY_B)
    with serve(api):
        server = start_authorizing_server(root, api, root / "cache")
        try:
            yield server, api
        finally:
            stop_and_check_log(server)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    ok, png = cv2.imencode(".png", np.random.default_rng(3).integers(0, 255, (320, 320, 3), dtype=np.uint8))
    assert ok
    return base64.b64encode(png.tobytes()).decode("ascii")


def run(server: ServerProcess, image: str, key: str | None) -> requests.Response:
    inputs = {"image": {"type": "base64", "value": image}}
    if key is not None:
        inputs["api_key"] = key
    response = requests.post(
        f"{server.url}/workflows/run", json={"specification": WORKFLOW, "inputs": inputs}, timeout=120
    )
    assert not [k for k in KEYS if k in response.text], "an API key reached a response"
    return response


def assert_served(response: requests.Response) -> None:
    assert response.status_code == 200, response.text
    assert len(response.json()["outputs"][0]["predictions"]["predictions"]) == 2


def assert_refused(server: ServerProcess, response: requests.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words in response.text, response.text
    server.assert_serving()


def test_a_key_without_access_and_no_key_are_refused_after_another_key_loaded_the_model(served, image) -> None:
    server, api = served
    assert_served(run(server, image, KEY_A))  # downloads and loads the model

    assert_refused(server, run(server, image, KEY_B), 403, "refused access to the model")
    assert_refused(server, run(server, image, UNKNOWN_KEY), 401, "refused the API key")
    assert_refused(server, run(server, image, None), 401, "needs an API key")

    assert_served(run(server, image, KEY_A))
    assert api.file_requests() == 3  # one download for everyone


def test_a_confirmation_is_one_request_per_time_to_live_and_a_revoked_key_is_refused_after_it(served, image) -> None:
    server, api = served
    started = time.monotonic()
    for _ in range(4):
        assert_served(run(server, image, KEY_C))
    assert time.monotonic() - started < CONFIRMATION_TTL_S, "too slow a machine for this time-to-live"
    assert api.key_requests(KEY_C) == 1

    time.sleep(CONFIRMATION_TTL_S + 0.5)
    assert_served(run(server, image, KEY_C))
    assert api.key_requests(KEY_C) == 2

    api.revoke(KEY_C)
    time.sleep(CONFIRMATION_TTL_S + 0.5)
    assert_refused(server, run(server, image, KEY_C), 401, "refused the API key")
    assert api.key_requests(KEY_C) == 3
    assert_served(run(server, image, KEY_A))


def test_while_the_api_fails_a_confirmed_key_works_and_an_unconfirmed_one_is_refused(served, image) -> None:
    server, api = served
    assert_served(run(server, image, KEY_D))  # confirmed, and recorded beside the package
    time.sleep(CONFIRMATION_TTL_S + 0.5)  # forgotten by the server's memory; the record on disk stays
    api.status_overrides[WEIGHTS_PATH] = [503] * 100  # the API fails from now on
    try:
        assert_served(run(server, image, KEY_D))
        for key in (KEY_E, KEY_B):  # E may read the model at Roboflow but was never confirmed here
            assert_refused(server, run(server, image, key), 403, "has not been confirmed for it before")
        assert_refused(server, run(server, image, None), 401, "needs an API key")
    finally:
        api.status_overrides.clear()
    assert api.key_requests(KEY_E) == 1


def test_a_new_offline_server_sharing_the_cache_serves_only_confirmed_keys(served, image, tmp_path: Path) -> None:
    server, api = served
    assert_served(run(server, image, KEY_A))  # KEY_A confirmed and recorded beside the package, by the first server
    requests_before = len(api.requests)

    offline = start_authorizing_server(tmp_path, api, Path(server.log_path).parent / "cache", offline=True)
    try:
        assert_served(run(offline, image, KEY_A))
        for key in (KEY_F, KEY_B):  # F may read the model at Roboflow but was never confirmed with this cache
            assert_refused(offline, run(offline, image, key), 403, "OFFLINE_MODE is on")
        assert_refused(offline, run(offline, image, None), 401, "needs an API key")
        assert_served(run(offline, image, KEY_A))
    finally:
        stop_and_check_log(offline)
    assert len(api.requests) == requests_before  # the offline server never asked the API


def test_the_server_cache_holds_no_key(served) -> None:
    server, _ = served
    for path in (Path(server.log_path).parent / "cache").rglob("*"):
        assert not [key for key in KEYS if key in path.name]
        if path.is_file():
            assert not [key for key in KEYS if key.encode() in path.read_bytes()]


def test_without_model_roots_the_server_refuses_every_local_path_alike(served, image, tmp_path: Path) -> None:
    """This server has no model roots: Roboflow ids work (above), local paths get one answer whether they exist."""
    server, _ = served
    existing = make_ring_model(tmp_path / "ring.onnx")
    answers = []
    for path in (str(existing), str(tmp_path / "missing.onnx"), "/etc/passwd"):
        definition = workflow(parameters={"api_key": None}, step={"model": path})
        inputs = {"image": {"type": "base64", "value": image}}
        response = requests.post(
            f"{server.url}/workflows/run", json={"specification": definition, "inputs": inputs}, timeout=120
        )
        assert response.status_code == 400, response.text
        assert "not allowed on this server" in response.text and "--model-root" in response.text
        answers.append(response.json()["message"].replace(path, "PATH"))
    assert answers[0] == answers[1] == answers[2]
    assert "root:" not in answers[2]
    server.assert_serving()
