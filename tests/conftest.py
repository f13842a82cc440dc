"""Session setup and the fixtures every test module may use (helpers and constants are in ``support/``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.ci_suites import MARKER, OPTION, SKIP_REASON, runs_ci_only
from support.models import make_two_box_model
from support.paths import TRAINED_MODEL
from support.required import in_ci

# The test process is a library user: local model paths open without model roots even after a test imports
# Inference's HTTP app. Served behaviour is tested with the setting set to "served" and with real server processes
# (``serve`` marks itself served, whatever it inherits).
os.environ["WORKFLOWS_YOLOV5_SEG_SERVING"] = "library"
# Inference checks for a newer release (a DNS lookup of api.github.com) when imported; tests reach only 127.0.0.1.
# Set here, so the servers and other processes the tests start inherit it.
os.environ["DISABLE_VERSION_CHECK"] = "True"
# The plugin must be registered before the Workflows engine is imported anywhere in the test session.
os.environ["WORKFLOWS_PLUGINS"] = ",".join(
    p for p in dict.fromkeys([*os.environ.get("WORKFLOWS_PLUGINS", "").split(","), "workflows_yolov5_seg"]) if p
)

# inference_server, ring_model, test_images. pytest takes pytest_plugins only from a conftest it loads at start-up:
# this one is, for every run under tests/.
pytest_plugins = ["support.server_fixture"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        OPTION,
        action="store_true",
        help="also run the CI-only tests (they install other environments; CI=true runs them anyway): "
        "tests/support/ci_suites.py",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """CI-only tests are skipped here, before any of their fixtures or installs, unless in CI or asked for."""
    if runs_ci_only(in_ci(), config.getoption(OPTION)):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if item.get_closest_marker(MARKER):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def two_box_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 320x320 dynamic-batch model that finds a 'rectangle' and a 'circle' whose masks fill their boxes."""
    return make_two_box_model(tmp_path_factory.mktemp("two_box") / "model.onnx")


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """The bundled trained YOLOv5n-seg (5 shape classes, 320x320)."""
    assert TRAINED_MODEL.is_file(), f"the bundled trained model is missing: {TRAINED_MODEL}"
    return TRAINED_MODEL
