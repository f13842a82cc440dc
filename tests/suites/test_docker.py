"""The Docker files agree with each other and with the code: the Inference version they build on is a tested one, what
they copy is in the build context, compose and nginx name the same service and ports, and the build-time check fails
for the right reasons. (No image is built here: there is no Docker engine; see docs/serving.md, "Docker".)"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.describe import INFERENCE_VERSIONS_TESTED

from support.paths import REPOSITORY
from support.required import require_module

DOCKER = REPOSITORY / "docker"
DOCKERFILES = {"cpu": DOCKER / "Dockerfile", "gpu": DOCKER / "Dockerfile.gpu"}


def require(module: str, reason: str) -> ModuleType:
    """The module; a missing one skips the tests locally and fails them in CI (``CI=true``: support.required)."""
    return require_module(module, reason.removeprefix("needs "))


def instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


@pytest.fixture(scope="module")
def compose() -> dict:
    yaml = require("yaml", "needs PyYAML (comes with the inference extra)")
    return yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_dockerfile_builds_on_a_tested_inference_image_and_enables_the_plugin(flavour: str) -> None:
    steps = instructions(DOCKERFILES[flavour])
    args = dict(a.split("=", 1) for kind, a in steps if kind == "ARG" and "=" in a)
    assert args["INFERENCE_VERSION"] in INFERENCE_VERSIONS_TESTED
    bases = [a for kind, a in steps if kind == "FROM"]
    assert bases[-1] == f"roboflow/roboflow-inference-server-{flavour}:${{INFERENCE_VERSION}}", "the final stage"
    environment = " ".join(a for kind, a in steps if kind == "ENV")
    assert f"WORKFLOWS_PLUGINS=${{WORKFLOWS_PLUGINS:+${{WORKFLOWS_PLUGINS}},}}{settings.PLUGIN_MODULE}" in environment
    assert f"{settings.MODEL_ROOTS.name}=/models" in environment
    runs = " ".join(a for kind, a in steps if kind == "RUN")
    assert "[inference]" not in runs and "--constraint /tmp/image-pins.txt" in runs, "never replace image packages"
    assert "check_image.py" in runs
    assert any(kind == "HEALTHCHECK" and "/readiness" in a for kind, a in steps)


def test_build_context_holds_what_the_dockerfiles_copy() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (REPOSITORY / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    ]
    for path in DOCKERFILES.values():
        for kind, arguments in instructions(path):
            if kind != "COPY" or arguments.startswith("--from"):
                continue
            *sources, _ = arguments.split()
            for source in sources:
                assert (REPOSITORY / source).exists(), f"{path.name}: {source}"
                assert source.rstrip("/") in allowed, f"{path.name} copies {source}, which .dockerignore leaves out"


def test_compose_builds_the_cpu_image_at_the_same_version_behind_nginx(compose: dict) -> None:
    inference, balancer = compose["services"]["inference"], compose["services"]["lb"]
    cpu_args = dict(a.split("=", 1) for kind, a in instructions(DOCKERFILES["cpu"]) if kind == "ARG" and "=" in a)
    assert inference["build"]["args"]["INFERENCE_VERSION"] == cpu_args["INFERENCE_VERSION"]
    assert (DOCKER / inference["build"]["context"] / inference["build"]["dockerfile"]).resolve() == DOCKERFILES["cpu"]
    assert "/readiness" in " ".join(inference["healthcheck"]["test"])
    assert any(volume.endswith(":/models:ro") for volume in inference["volumes"])
    assert "cache:/cache" in inference["volumes"] and "cache" in compose["volumes"]
    assert balancer["depends_on"]["inference"]["condition"] == "service_healthy"
    nginx = (DOCKER / "nginx.conf").read_text(encoding="utf-8")
    assert re.search(r"server inference:9001\b", nginx), "the upstream is the compose service on the image's port"
    assert re.search(r"listen 9001;", nginx) and balancer["ports"][0].endswith(":9001")
    assert re.search(r"client_max_body_size (\d+)m;", nginx), "images travel in the body: raise nginx's 1 MB limit"


def test_image_check_names_what_is_wrong(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_image", DOCKER / "check_image.py")
    assert spec is not None and spec.loader is not None
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.unmet_requirements([]) == [], "this environment meets the plugin's requirements"
    monkeypatch.setenv("WORKFLOWS_PLUGINS", "other_plugin")
    assert check.main(["--provider", "NoSuchExecutionProvider"]) == 1
    error = capsys.readouterr().err
    assert "does not list workflows_yolov5_seg" in error and "has no NoSuchExecutionProvider" in error
