"""The README's way in, walked as a new user with their own export would, on the bundled model: the package is
installed (this environment is the install the README's step 1 gives), the two environment variables of step 2 as
the README writes them, the model in a model root (step 3), the real server started with ``workflows-yolov5-seg
serve``, then the README's workflow JSON and its ``inference-sdk`` snippet, both taken from README.md and run
unchanged except for the places this test must choose: the model root (``/models`` there, a temporary folder here),
the server's address (a free port) and the export (the bundled model, copied to the name the README uses).

One server start (30-60 s on a small CPU machine)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from workflows_yolov5_seg.cli import build_parser

from support.paths import ASSETS, DEMO_IMAGE, REPOSITORY, TRAINED_MODEL
from support.required import require_module
from support.server_fixture import read_image, run_in_process, start_server, stop_server

require_module("inference_sdk", "the Inference SDK (the inference extra)")

SECTION = "## Add it to your Inference server"
README_API_URL = "http://localhost:9001"
BUNDLED_CLASSES = {"circle", "rectangle", "triangle", "star", "ring"}


def readme_section() -> str:
    return (REPOSITORY / "README.md").read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]


def code_blocks(text: str, language: str) -> list[str]:
    """The fenced blocks of one language, their indentation (inside a numbered step) removed."""
    blocks = []
    for indent, body in re.findall(rf"^( *)```{language}\n(.*?)^ *```", text, flags=re.S | re.M):
        blocks.append("\n".join(line.removeprefix(indent) for line in body.splitlines()) + "\n")
    return blocks


def the_readme_steps() -> dict[str, Any]:
    """What the section tells the user to do, read from it."""
    section = readme_section()
    bash = "".join(code_blocks(section, "bash"))
    (workflow_text,) = code_blocks(section, "json")
    (snippet,) = code_blocks(section, "python")
    exports = dict(re.findall(r"^export (\w+)=(\S+)", bash, flags=re.M))
    (serve_line,) = [line for line in bash.splitlines() if line.startswith("workflows-yolov5-seg serve")]
    return {"exports": exports, "serve": serve_line.split(" #")[0].split()[1:], "workflow": workflow_text,
            "snippet": snippet, "bash": bash}  # fmt: skip


def test_step_1_installs_with_a_runtime_and_without_the_cpu_runtime_beside_inference_gpu() -> None:
    bash = the_readme_steps()["bash"]
    installs = re.findall(r"^pip install (\S+)\s+#(.*)$", bash, flags=re.M)
    assert any("[onnx-cpu]" in target for target, _ in installs), installs
    assert any("inference-gpu" in comment and "onnx-cpu" not in target for target, comment in installs), installs


def test_step_2_names_the_two_variables_the_package_reads() -> None:
    from workflows_yolov5_seg import settings

    exports = the_readme_steps()["exports"]
    assert set(exports) == {"WORKFLOWS_PLUGINS", settings.MODEL_ROOTS.name}
    assert exports["WORKFLOWS_PLUGINS"] == "workflows_yolov5_seg"


def test_step_3_the_workflow_names_a_model_in_the_root_and_serve_names_the_same_root() -> None:
    steps = the_readme_steps()
    root = steps["exports"]["WORKFLOWS_YOLOV5_SEG_MODEL_ROOTS"]
    model = json.loads(steps["workflow"])["steps"][0]["model"]
    assert Path(model).parent == Path(root), (model, root)
    args = build_parser().parse_args(steps["serve"])
    assert args.command == "serve" and [str(path) for path in args.model_roots] == [root]


@pytest.mark.server
def test_the_readme_walk_through_answers_the_sdk_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = the_readme_steps()
    readme_root = steps["exports"]["WORKFLOWS_YOLOV5_SEG_MODEL_ROOTS"]
    # Step 3: the user's export in the model root, under the name the README's workflow uses.
    root = tmp_path / "models"
    readme_model = Path(json.loads(steps["workflow"])["steps"][0]["model"])
    model = root / readme_model.relative_to(readme_root)
    model.parent.mkdir(parents=True)
    shutil.copyfile(TRAINED_MODEL, model)
    shutil.copyfile(ASSETS / "class_names.txt", model.parent / "class_names.txt")
    # The README's workflow, saved as it says; an image of the user's.
    user = tmp_path / "user"
    user.mkdir()
    workflow_text = steps["workflow"].replace(f'"{readme_model}"', json.dumps(str(model)))
    (user / "workflow.json").write_text(workflow_text, encoding="utf-8")
    shutil.copyfile(DEMO_IMAGE, user / "image.jpg")
    # Step 2: the two variables, as the README writes them but for the root's place; then `serve`.
    for name, value in steps["exports"].items():
        monkeypatch.setenv(name, str(root) if value == readme_root else value)
    (tmp_path / "server").mkdir()
    server = start_server(tmp_path / "server", tmp_path / "server.log", model_roots=[])
    try:
        # The README's sdk call, from the folder the user saved the workflow in.
        monkeypatch.chdir(user)
        namespace: dict[str, Any] = {}
        exec(compile(steps["snippet"].replace(README_API_URL, server.url), "README.md", "exec"), namespace)  # noqa: S102
        printed = capsys.readouterr().out
        served = namespace["result"][0]["predictions"]["predictions"]
        # A model outside the root is refused, which is why step 2 names the root.
        outside = json.loads(workflow_text)
        outside["steps"][0]["model"] = str(TRAINED_MODEL)
        refusal = None
        try:
            namespace["client"].run_workflow(specification=outside, images={"image": "image.jpg"})
        except Exception as error:  # noqa: BLE001 - the SDK's HTTP error, whatever its class in this release
            refusal = error
    finally:
        stop_server(server)
    assert served, f"no detections served\n{server.log_tail()}"
    assert {prediction["class"] for prediction in served} <= BUNDLED_CLASSES
    assert printed.strip() == repr([prediction["class"] for prediction in served])
    local = run_in_process(json.loads(workflow_text), {"image": read_image(user / "image.jpg")})[0]
    assert [p["class"] for p in served] == [p["class"] for p in local["predictions"]["predictions"]]
    assert refusal is not None and getattr(refusal, "status_code", None) == 400, refusal
