"""API keys for Roboflow model ids (issue 15): a cached model is served only to keys the API confirmed can read it.

Run for real against the local fake of Roboflow's API (``support.fake_roboflow_api``): key A may read the model, key
B is a valid key of another workspace (403), any other key is unknown (401). Time-to-live tests move a fake clock
(``authorization.now``) instead of sleeping. Over HTTP: ``tests/suites/test_authorization_http.py``; keys in logs,
errors and files: ``tests/suites/test_security.py``; the bad-input rows: ``tests/suites/test_bad_inputs.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from workflows_yolov5_seg import authorization, model_cache, roboflow, settings
from workflows_yolov5_seg.authorization import ConfirmedKeys, RememberedAnswers
from workflows_yolov5_seg.errors import (
    RoboflowAPIKeyMissingError,
    RoboflowKeyNotConfirmedError,
    RoboflowUnauthorizedError,
)
from workflows_yolov5_seg.model import YOLOv5SegModel
from workflows_yolov5_seg.model_cache import ModelCache, get_model
from workflows_yolov5_seg.model_source import resolve_model
from workflows_yolov5_seg.roboflow import download_model_package

from support.fake_roboflow_api import FakeModel, FakeRoboflowAPI, package_files_from, roboflow_environment, serve
from support.models import LETTERBOX_320_CONFIG

KEY_A = "rf_team_A_SECRET_a1b2c3d4"  # may read MODEL_ID
KEY_B = "rf_team_B_SECRET_e5f6a7b8"  # a valid key of another workspace: 403 for MODEL_ID
KEY_C = "rf_team_C_SECRET_c9d0e1f2"  # may read MODEL_ID too, never used before the test says so
UNKNOWN_KEY = "rf_unknown_SECRET_00000"  # 401
KEYS = (KEY_A, KEY_B, KEY_C, UNKNOWN_KEY)
MODEL_ID = "private-seg/4"
OTHER_MODEL_ID = "other-seg/1"
IMAGE = np.zeros((160, 320, 3), np.uint8)


@pytest.fixture(scope="module")
def package_files(two_box_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("package")
    shutil.copy(two_box_model, folder / "weights.onnx")
    (folder / "class_names.txt").write_text("circle\nrectangle\ntriangle\n")
    (folder / "inference_config.json").write_text(json.dumps(LETTERBOX_320_CONFIG))
    return package_files_from(folder)


@pytest.fixture
def api(package_files: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRoboflowAPI]:
    """The fake API with two models; A may read both, B neither; a fresh cache, process memory and model cache."""
    fake = FakeRoboflowAPI(
        api_key="rf_unused_key",
        models={MODEL_ID: FakeModel(files=dict(package_files)), OTHER_MODEL_ID: FakeModel(files=dict(package_files))},
    )
    fake.grant(KEY_A, MODEL_ID, OTHER_MODEL_ID)
    fake.grant(KEY_B)
    with serve(fake):
        roboflow_environment(monkeypatch, fake.base_url, tmp_path / "cache")
        monkeypatch.setenv(settings.API_TIMEOUT.name, "5")
        for setting in (
            settings.AUTHORIZE_ROBOFLOW_KEYS,
            settings.KEY_CONFIRMATION_TTL,
            settings.KEY_REFUSAL_TTL,
            settings.OFFLINE_CONFIRMATION_TTL,
        ):
            monkeypatch.delenv(setting.name, raising=False)
        monkeypatch.setattr(authorization, "ANSWERS", RememberedAnswers())
        monkeypatch.setattr(model_cache, "MODELS", ModelCache())
        yield fake


class Clock:
    """A wall clock that moves only when told."""

    def __init__(self) -> None:
        self.time = time.time()

    def __call__(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(authorization, "now", fake)
    return fake


def new_process_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new process remembers: nothing (the cache on disk stays)."""
    monkeypatch.setattr(authorization, "ANSWERS", RememberedAnswers())
    monkeypatch.setattr(model_cache, "MODELS", ModelCache())


def keys_file(model_id: str = MODEL_ID) -> Path:
    package = roboflow.package_dir(model_id)
    return package.with_name(f"{package.name}.keys.json")


# --- two keys, one process ------------------------------------------------------------------------------------------


def test_a_key_without_access_is_refused_after_another_key_loaded_the_model(api) -> None:
    model = get_model(MODEL_ID, "onnx", KEY_A)
    assert len(model(IMAGE)[0]) == 2

    with pytest.raises(RoboflowUnauthorizedError, match="refused access to the model") as caught:
        get_model(MODEL_ID, "onnx", KEY_B)
    assert caught.value.status == 403
    with pytest.raises(RoboflowUnauthorizedError, match="refused the API key") as caught:
        get_model(MODEL_ID, "onnx", UNKNOWN_KEY)
    assert caught.value.status == 401
    with pytest.raises(RoboflowAPIKeyMissingError, match="needs an API key"):
        get_model(MODEL_ID, "onnx", None)
    for load in (
        lambda: YOLOv5SegModel.from_pretrained(MODEL_ID, backend="onnx", api_key=KEY_B),
        lambda: resolve_model(MODEL_ID, api_key=KEY_B),
        lambda: download_model_package(MODEL_ID, api_key=KEY_B),
    ):
        with pytest.raises(RoboflowUnauthorizedError):
            load()

    assert get_model(MODEL_ID, "onnx", KEY_A) is model
    assert model_cache.MODELS.loads == 1
    assert api.file_requests() == 3  # one download


def test_a_second_authorised_key_shares_the_download_and_the_loaded_model(api) -> None:
    api.grant(KEY_C, MODEL_ID)
    model = get_model(MODEL_ID, "onnx", KEY_A)
    files = api.file_requests()

    assert get_model(MODEL_ID, "onnx", KEY_C) is model
    assert api.key_requests(KEY_C) == 1  # one metadata request confirmed it
    assert api.file_requests() == files  # no second download
    assert model_cache.MODELS.loads == 1


def test_concurrent_first_requests_with_a_key_ask_the_api_once(api) -> None:
    api.grant(KEY_C, MODEL_ID)
    model = get_model(MODEL_ID, "onnx", KEY_A)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def request(key: str) -> None:
        barrier.wait()
        try:
            results.append(get_model(MODEL_ID, "onnx", key))
        except Exception as error:  # noqa: BLE001 - checked below
            results.append(error)

    threads = [threading.Thread(target=request, args=(KEY_C if i % 2 else KEY_B,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(result is model for result in results) == 4
    assert sum(isinstance(result, RoboflowUnauthorizedError) for result in results) == 4
    assert api.key_requests(KEY_C) == 1
    assert api.key_requests(KEY_B) == 1


def test_malformed_keys_are_refused_for_a_cached_model_without_a_request(api) -> None:
    download_model_package(MODEL_ID, api_key=KEY_A)
    count = len(api.requests)
    for bad_key in ("rf key with spaces", "rf_key\r\nX-Injected: 1", "rf_kéy"):
        with pytest.raises(RoboflowUnauthorizedError, match="cannot have") as caught:
            get_model(MODEL_ID, "onnx", bad_key)
        assert bad_key.strip() not in str(caught.value)
    assert len(api.requests) == count


def test_local_paths_need_no_key(api, two_box_model: Path) -> None:
    assert len(get_model(str(two_box_model), "onnx", None)(IMAGE)[0]) == 2
    assert api.requests == []


# --- a new process sharing the cache --------------------------------------------------------------------------------

CHILD = """
import json, sys
from workflows_yolov5_seg.roboflow import download_model_package
for key in json.loads(sys.stdin.read()):
    try:
        download_model_package(sys.argv[1], api_key=key)
        print(json.dumps(["ok", None]))
    except Exception as error:
        print(json.dumps([type(error).__name__, getattr(error, "status", None)]))
"""


def run_child(api: FakeRoboflowAPI, tmp_path: Path, keys: list[str | None], **environment: str) -> list[list]:
    """Asks for MODEL_ID with each key in a new Python process sharing the cache; the answers, in order.

    ``-S``: no site hooks (this machine's site imports torch at start-up); keys travel on stdin, not argv.
    """
    repository = Path(roboflow.__file__).resolve().parent.parent
    child_environment = {
        **os.environ,
        "PYTHONPATH": str(repository),
        settings.API_URL.name: api.base_url,
        settings.CACHE_DIR.name: str(tmp_path / "cache"),
        **environment,
    }
    child_environment.pop(settings.API_KEY.name, None)
    done = subprocess.run(
        [sys.executable, "-S", "-c", CHILD, MODEL_ID],
        input=json.dumps(keys),
        env=child_environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not any(key in done.stdout + done.stderr for key in KEYS)
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_new_process_sharing_the_cache_refuses_other_keys_and_trusts_the_confirmed_one(api, tmp_path) -> None:
    download_model_package(MODEL_ID, api_key=KEY_A)
    files = api.file_requests()

    answers = run_child(api, tmp_path, [KEY_B, UNKNOWN_KEY, None, KEY_A])

    assert answers == [
        ["RoboflowUnauthorizedError", 403],
        ["RoboflowUnauthorizedError", 401],
        ["RoboflowAPIKeyMissingError", None],
        ["ok", None],
    ]
    assert api.key_requests(KEY_A) == 1  # the new process trusted the confirmation recorded beside the package
    assert api.file_requests() == files


def test_a_new_process_offline_serves_only_the_confirmed_key(api, tmp_path) -> None:
    api.grant(KEY_C, MODEL_ID)
    download_model_package(MODEL_ID, api_key=KEY_A)
    count = len(api.requests)

    answers = run_child(api, tmp_path, [KEY_A, KEY_C, KEY_B, None], **{settings.OFFLINE_MODE.name: "1"})

    assert answers == [
        ["ok", None],
        ["RoboflowKeyNotConfirmedError", None],
        ["RoboflowKeyNotConfirmedError", None],
        ["RoboflowAPIKeyMissingError", None],
    ]
    assert len(api.requests) == count


# --- remembered answers ---------------------------------------------------------------------------------------------


def test_a_confirmation_is_one_request_per_time_to_live_and_a_revoked_key_is_refused_after_it(
    api, clock: Clock, monkeypatch
) -> None:
    monkeypatch.setenv(settings.KEY_CONFIRMATION_TTL.name, "100")
    model = get_model(MODEL_ID, "onnx", KEY_A)
    for _ in range(20):
        assert get_model(MODEL_ID, "onnx", KEY_A) is model
    assert api.key_requests(KEY_A) == 1

    clock.advance(101)
    for _ in range(5):
        get_model(MODEL_ID, "onnx", KEY_A)
    assert api.key_requests(KEY_A) == 2

    api.revoke(KEY_A)
    clock.advance(99)
    get_model(MODEL_ID, "onnx", KEY_A)  # still inside the time-to-live: revocations take up to that long
    assert api.key_requests(KEY_A) == 2
    clock.advance(2)
    with pytest.raises(RoboflowUnauthorizedError, match=r"refused the API key \(401\)"):
        get_model(MODEL_ID, "onnx", KEY_A)
    assert api.key_requests(KEY_A) == 3
    assert ConfirmedKeys(keys_file()).confirmed_at(KEY_A) is None  # no longer trusted offline either


def test_a_refusal_is_remembered_for_its_shorter_time_to_live(api, clock: Clock, monkeypatch) -> None:
    monkeypatch.setenv(settings.KEY_REFUSAL_TTL.name, "10")
    get_model(MODEL_ID, "onnx", KEY_A)
    for _ in range(5):
        with pytest.raises(RoboflowUnauthorizedError, match="refused access to the model") as caught:
            get_model(MODEL_ID, "onnx", KEY_B)
        assert caught.value.status == 403
    assert api.key_requests(KEY_B) == 1
    assert "remembered for 10 s" in str(caught.value)

    api.grant(KEY_B, MODEL_ID)  # access granted at Roboflow: it works once the refusal is forgotten
    clock.advance(11)
    get_model(MODEL_ID, "onnx", KEY_B)
    assert api.key_requests(KEY_B) == 2


def test_a_refused_download_is_remembered_too(api) -> None:
    for _ in range(3):
        with pytest.raises(RoboflowUnauthorizedError):
            download_model_package(MODEL_ID, api_key=KEY_B)
    assert api.key_requests(KEY_B) == 1
    assert not roboflow.package_dir(MODEL_ID).exists()


def test_a_time_to_live_of_zero_asks_at_every_request(api, monkeypatch) -> None:
    monkeypatch.setenv(settings.KEY_CONFIRMATION_TTL.name, "0")
    monkeypatch.setenv(settings.KEY_REFUSAL_TTL.name, "0")
    get_model(MODEL_ID, "onnx", KEY_A)
    before = api.key_requests(KEY_A)
    for _ in range(3):
        get_model(MODEL_ID, "onnx", KEY_A)
        with pytest.raises(RoboflowUnauthorizedError):
            get_model(MODEL_ID, "onnx", KEY_B)
    assert api.key_requests(KEY_A) == before + 3
    assert api.key_requests(KEY_B) == 3


def test_answers_in_memory_are_bounded_and_expired_ones_go_first(clock: Clock) -> None:
    answers = RememberedAnswers(capacity=3)
    scope = ("http://api", "/cache/p/1")
    answers.put(scope, "k-expiring", authorization._Answer(expires_at=clock() + 1))
    for index in range(3):
        answers.put(scope, f"k{index}", authorization._Answer(expires_at=clock() + 100))
    clock.advance(2)
    answers.put(scope, "k3", authorization._Answer(expires_at=clock() + 100))
    assert len(answers) == 3
    assert answers.get(scope, "k0") is None  # the least recently stored live answer went
    assert all(answers.get(scope, f"k{index}") is not None for index in (1, 2, 3))


# --- offline --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["offline-mode", "api-unreachable"])
def test_offline_a_confirmed_key_works_and_an_unconfirmed_one_is_refused(api, monkeypatch, how: str) -> None:
    api.grant(KEY_C, MODEL_ID)
    download_model_package(MODEL_ID, api_key=KEY_A)
    count = len(api.requests)
    new_process_memory(monkeypatch)
    if how == "offline-mode":
        monkeypatch.setenv(settings.OFFLINE_MODE.name, "1")
        reason = settings.OFFLINE_MODE.name
    else:
        monkeypatch.setenv(settings.API_URL.name, "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv(settings.API_MAX_TRIES.name, "1")
        monkeypatch.setenv(settings.KEY_CONFIRMATION_TTL.name, "0")  # so that the API is asked, and fails
        reason = "could not be asked: Could not reach http://127.0.0.1:9"

    assert len(get_model(MODEL_ID, "onnx", KEY_A)(IMAGE)[0]) == 2
    for key in (KEY_C, KEY_B):  # C may read the model, but was never confirmed here
        with pytest.raises(RoboflowKeyNotConfirmedError, match="has not been confirmed for it before") as caught:
            get_model(MODEL_ID, "onnx", key)
        assert reason in str(caught.value)
        assert settings.OFFLINE_CONFIRMATION_TTL.name in str(caught.value)
    with pytest.raises(RoboflowAPIKeyMissingError):
        get_model(MODEL_ID, "onnx", None)
    assert len(api.requests) == count


def test_an_offline_confirmation_lasts_its_time_to_live(api, clock: Clock, monkeypatch) -> None:
    monkeypatch.setenv(settings.KEY_CONFIRMATION_TTL.name, "10")
    monkeypatch.setenv(settings.OFFLINE_CONFIRMATION_TTL.name, "1000")
    download_model_package(MODEL_ID, api_key=KEY_A)
    monkeypatch.setenv(settings.OFFLINE_MODE.name, "1")

    clock.advance(999)
    download_model_package(MODEL_ID, api_key=KEY_A)
    clock.advance(2)
    with pytest.raises(RoboflowKeyNotConfirmedError, match=r"since 1001 s \(longer than 1000 s\)"):
        download_model_package(MODEL_ID, api_key=KEY_A)

    monkeypatch.delenv(settings.OFFLINE_MODE.name)  # back online: confirmed again, and recorded afresh
    download_model_package(MODEL_ID, api_key=KEY_A)
    assert ConfirmedKeys(keys_file()).confirmed_at(KEY_A) == clock()


# --- the confirmed keys on disk -------------------------------------------------------------------------------------


def test_the_confirmed_keys_file_holds_salted_hashes_only_owner_only(api, tmp_path) -> None:
    api.grant(KEY_C, MODEL_ID)
    download_model_package(MODEL_ID, api_key=KEY_A)
    download_model_package(MODEL_ID, api_key=KEY_C)
    download_model_package(OTHER_MODEL_ID, api_key=KEY_A)

    path = keys_file()
    content = json.loads(path.read_text())
    assert content["format"] == "workflows-yolov5-seg/confirmed-keys@1"
    assert content["hash"] == "hmac-sha256"
    assert len(bytes.fromhex(content["salt"])) == 32
    assert len(content["confirmed"]) == 2
    assert all(len(bytes.fromhex(digest)) == 32 for digest in content["confirmed"])
    other = json.loads(keys_file(OTHER_MODEL_ID).read_text())
    assert other["salt"] != content["salt"]  # the same key hashes differently per model
    assert not set(other["confirmed"]) & set(content["confirmed"])

    for file in (tmp_path / "cache").rglob("*"):
        assert stat.S_IMODE(file.stat().st_mode) == (0o700 if file.is_dir() else 0o600), file
        assert not any(key in file.name for key in KEYS)
    for key in (KEY_A, KEY_C):
        forms = [
            key,
            key.encode().hex(),
            base64.b64encode(key.encode()).decode(),
            hashlib.sha256(key.encode()).hexdigest(),
            hashlib.md5(key.encode()).hexdigest(),
        ]
        for file in (tmp_path / "cache").rglob("*.json"):
            text = file.read_text()
            assert not any(form in text for form in forms), (file, key)


def test_a_corrupt_keys_file_counts_as_empty_and_is_rewritten(api, monkeypatch, caplog) -> None:
    download_model_package(MODEL_ID, api_key=KEY_A)
    keys_file().write_text("{not json")
    new_process_memory(monkeypatch)

    download_model_package(MODEL_ID, api_key=KEY_A)

    assert api.key_requests(KEY_A) == 2  # confirmed again
    assert ConfirmedKeys(keys_file()).confirmed_at(KEY_A) is not None
    assert "Ignoring the confirmed-keys file" in caplog.text


def test_a_record_dated_in_the_future_is_not_trusted(api, monkeypatch) -> None:
    download_model_package(MODEL_ID, api_key=KEY_A)
    ConfirmedKeys(keys_file()).record(KEY_A, time.time() + 86400)
    new_process_memory(monkeypatch)
    monkeypatch.setenv(settings.OFFLINE_MODE.name, "1")
    with pytest.raises(RoboflowKeyNotConfirmedError):
        download_model_package(MODEL_ID, api_key=KEY_A)


# --- opting out -----------------------------------------------------------------------------------------------------


def test_a_single_user_process_can_opt_out(api, monkeypatch) -> None:
    monkeypatch.setenv(settings.AUTHORIZE_ROBOFLOW_KEYS.name, "false")
    model = get_model(MODEL_ID, "onnx", KEY_A)
    count = len(api.requests)

    assert get_model(MODEL_ID, "onnx", None) is model
    assert get_model(MODEL_ID, "onnx", KEY_B) is model
    assert download_model_package(MODEL_ID) == roboflow.package_dir(MODEL_ID)
    assert len(api.requests) == count
    assert not keys_file().exists()
