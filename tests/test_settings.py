"""The environment variables: each one's default, its parsing, the error naming a bad value's variable, the cache
root's precedence and the plugin list."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.errors import InvalidSettingError

from support.paths import CACHE_ROOT_CASES


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """None of the settings' variables set (nor the ones the cache root falls back on)."""
    for setting in settings.SETTINGS:
        monkeypatch.delenv(setting.name, raising=False)
    for name in ("MODEL_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_every_setting_is_declared_once_in_settings() -> None:
    declared = [value for value in vars(settings).values() if isinstance(value, settings.Setting)]
    assert set(declared) == set(settings.SETTINGS)
    names = [setting.name for setting in settings.SETTINGS]
    assert len(names) == len(set(names))
    for setting in settings.SETTINGS:
        assert setting.meaning.endswith(".") and setting.section and setting.documented_default()


@pytest.mark.parametrize("setting", settings.SETTINGS, ids=lambda setting: setting.name)
def test_unset_or_blank_gives_the_default(clean_environment: pytest.MonkeyPatch, setting: settings.Setting) -> None:
    assert setting.raw() is None and setting.get() == setting.default
    clean_environment.setenv(setting.name, "  ")
    assert setting.raw() is None and setting.get() == setting.default


@pytest.mark.parametrize(
    "setting", [s for s in settings.SETTINGS if s.default is not None], ids=lambda setting: setting.name
)
def test_every_default_written_out_parses_back(
    clean_environment: pytest.MonkeyPatch, setting: settings.Setting
) -> None:
    text = str(setting.default).lower() if isinstance(setting.default, bool) else str(setting.default)
    clean_environment.setenv(setting.name, f" {text} ")
    assert setting.get() == setting.default


@pytest.mark.parametrize(
    ("setting", "text", "expected"),
    [
        (settings.MAX_LOADED_MODELS, "3", 3),
        (settings.ORT_THREADS, "0", 0),
        (settings.API_TIMEOUT, "2.5", 2.5),
        (settings.RETRY_BACKOFF, "0", 0.0),
        (settings.ALLOW_ENGINE_HOST_CODE, "Yes", True),
        (settings.OFFLINE_MODE, "on", True),
        (settings.DISABLE_PROGRESS, "off", False),
        (settings.API_URL, "http://127.0.0.1:1", "http://127.0.0.1:1"),
        (settings.SERVING, " Served ", "served"),
        (settings.MAX_MODEL_FILE_BYTES, "1024", 1024),
    ],
)
def test_values_parse(monkeypatch: pytest.MonkeyPatch, setting: settings.Setting, text: str, expected: object) -> None:
    monkeypatch.setenv(setting.name, text)
    assert setting.get() == expected


@pytest.mark.parametrize(
    ("setting", "text", "says"),
    [
        (settings.MAX_LOADED_MODELS, "0", "expected an integer >= 1"),
        (settings.MAX_LOADED_MODELS, "eight", "not a valid value"),
        (settings.MAX_IMAGE_PIXELS, "-5", "expected an integer >= 1"),
        (settings.MAX_MASK_BYTES, "2 GiB", "not a valid value"),
        (settings.ORT_THREADS, "-1", "expected an integer >= 0"),
        (settings.API_TIMEOUT, "nan", "expected a number >= 0"),
        (settings.LOCK_TIMEOUT, "-1", "expected a number >= 0"),
        (settings.API_MAX_TRIES, "1.5", "not a valid value"),
        (settings.ALLOW_ENGINE_HOST_CODE, "maybe", "expected one of 1, true, yes, on, 0, false, no, off"),
        (settings.OFFLINE_MODE, "2", "expected one of"),
        (settings.SERVING, "public", "expected one of auto, served, library"),
        (settings.MAX_MODEL_FILE_BYTES, "0", "expected an integer >= 1"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_the_default(
    monkeypatch: pytest.MonkeyPatch, setting: settings.Setting, text: str, says: str
) -> None:
    monkeypatch.setenv(setting.name, text)
    with pytest.raises(InvalidSettingError) as caught:
        setting.get()
    message = str(caught.value)
    assert f"Environment variable {setting.name}={text!r} is" in message and says in message
    assert f"(default: {setting.documented_default()})" in message and setting.meaning in message


def test_documented_defaults() -> None:
    assert settings.ALLOW_ENGINE_HOST_CODE.documented_default() == "false"
    assert settings.MAX_LOADED_MODELS.documented_default() == "8"
    assert settings.MAX_MASK_BYTES.documented_default() == "2147483648 (2 GiB)"


def test_parsers() -> None:
    assert [settings.parse_bool(word) for word in (" TRUE ", "1", "no", "Off")] == [True, True, False, False]
    assert settings.parse_path("~/models") == Path.home() / "models"
    assert settings.parse_non_negative_float("0") == 0.0 and math.isinf(settings.parse_non_negative_float("inf"))
    paths = settings.parse_path_list(os.pathsep.join(["/a/b/../c", " ", "~/d", ""]))
    assert paths == (Path("/a/c"), Path(os.path.normpath(Path.home() / "d")))


@pytest.mark.parametrize(("env", "expected"), CACHE_ROOT_CASES)
def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name in ("WORKFLOWS_YOLOV5_SEG_CACHE_DIR", "MODEL_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert settings.cache_root() == Path(expected)


def test_server_dir(clean_environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_environment.setenv(settings.CACHE_DIR.name, str(tmp_path / "cache"))
    assert settings.server_dir() == tmp_path / "cache" / "server"
    clean_environment.setenv(settings.SERVER_DIR.name, str(tmp_path / "elsewhere"))
    assert settings.server_dir() == tmp_path / "elsewhere"


def test_plugin_is_appended_to_existing_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.with_plugin(None, "workflows_yolov5_seg") == "workflows_yolov5_seg"
    assert settings.with_plugin("", "workflows_yolov5_seg") == "workflows_yolov5_seg"
    assert settings.with_plugin("other_plugin", "workflows_yolov5_seg") == "other_plugin,workflows_yolov5_seg"
    assert settings.with_plugin("a,,workflows_yolov5_seg, b", "workflows_yolov5_seg") == "a,workflows_yolov5_seg,b"
    monkeypatch.setenv("WORKFLOWS_PLUGINS", "neighbour_plugin")
    settings.register_plugin()
    assert os.environ["WORKFLOWS_PLUGINS"] == "neighbour_plugin,workflows_yolov5_seg"


@pytest.mark.parametrize(
    ("mode", "http_app_loaded", "served"),
    [
        ("library", True, False),
        ("served", False, True),
        ("auto", False, False),
        ("auto", True, True),
    ],
)
def test_is_served(monkeypatch: pytest.MonkeyPatch, mode: str, http_app_loaded: bool, served: bool) -> None:
    monkeypatch.setenv(settings.SERVING.name, mode)
    if http_app_loaded:
        http_app = sys.modules.get(settings.INFERENCE_HTTP_MODULE) or types.ModuleType(settings.INFERENCE_HTTP_MODULE)
        monkeypatch.setitem(sys.modules, settings.INFERENCE_HTTP_MODULE, http_app)
    else:
        monkeypatch.delitem(sys.modules, settings.INFERENCE_HTTP_MODULE, raising=False)
    assert settings.is_served() is served


def test_inference_http_app_in_the_process_makes_it_served() -> None:
    """What Inference's server image does (its app imports the HTTP API, then the plugin is loaded): with the
    setting at its default, the process counts as served; a plain Python process does not."""
    script = (
        "import sys\n"
        "from workflows_yolov5_seg import settings\n"
        "before = settings.is_served()\n"
        f"import {settings.INFERENCE_HTTP_MODULE}\n"
        "print(before, settings.is_served())\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != settings.SERVING.name}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=environment
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["False", "True"]
