"""The user documentation agrees with the records and the code: every figure listed in FIGURES is the figure of its
record in docs/results/, every command the README and CONTRIBUTING.md show parses (the package's own command line)
or answers ``--help`` (the lab modules), every relative link resolves, and nothing internal to the machines this
project is developed on (paths, issue numbers, notes outside the repository) reaches README.md or docs/.

To quote a new figure from a record: write it in the document, then add its row to FIGURES; the test fails when the
record changes and the document does not, or the other way round."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workflows_yolov5_seg.cli import build_parser

from support.paths import REPOSITORY

RESULTS = REPOSITORY / "docs" / "results"
USER_DOCUMENTS = [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]
DOCUMENTS_WITH_COMMANDS = [REPOSITORY / "README.md", REPOSITORY / "CONTRIBUTING.md"]


# --- figures quoted from the records --------------------------------------------------------------------------------
#
# (document, the quoted text with {} where the figure stands, record, path in the record, format).
# A path is "/"-separated keys; "[key=value,...]" picks the one list element whose fields have those values.
# The format is a format spec for a number (a trailing "×" is written after it), or "interval" (an estimate with its
# 90 % interval as the README writes it: "1.23× [1.10, 1.42]"; "interval.1": one decimal; "interval-x": an ASCII "x").

FAMILY_VAL = "results[model=models/{},split=test]/mask_map50_95"
FAMILY_EVAL = "results[model=models/{},split=test]/ours/mask_map50_95"
BLOCK_640 = "results[case=640-1280x720-30,stage=block,impl=ours,mode=accurate]"
PEER_4000 = "results[case=640-4000x3000-150,stage=post_process,impl=inference-models,mode=accurate]"
PEER_640 = "results[case=640-1280x720-10,stage=post_process,impl=inference-models,mode=accurate]"
FIGURES: list[tuple[str, str, str, str, str]] = [
    # the bundled model through `evaluate` (README, accuracy.md)
    ("README.md", "mAP50-95 {} (box 0.9276", "evaluate-test.json", "mask/mAP50-95", ".4f"),
    ("README.md", "mask mAP50 {},", "evaluate-test.json", "mask/mAP50", ".4f"),
    ("README.md", "(box {} /", "evaluate-test.json", "box/mAP50", ".4f"),
    ("README.md", "/ {}); its fp16", "evaluate-test.json", "box/mAP50-95", ".4f"),
    ("README.md", "| 0.641 (`segment/val.py`) / {} |", "evaluate-test.json", "mask/mAP50-95", ".4f"),
    ("docs/accuracy.md", "| **all** | **0.9276** | **{}** |", "evaluate-test.json", "box/mAP50-95", ".4f"),
    ("docs/accuracy.md", "| **0.9137** | **{}** |", "evaluate-test.json", "mask/mAP50-95", ".4f"),
    (
        "docs/accuracy.md",
        "| pycocotools | 0.6686 | 0.9137 | {} | 0.9276 |",
        "evaluate-test.json",
        "box/mAP50-95",
        ".4f",
    ),
    ("docs/quantization.md", "give the same model fp32 mask mAP50-95 {}", "evaluate-test.json", "mask/mAP50-95", ".4f"),
    ("docs/quantization.md", "and fp16 {},", "evaluate-test-fp16.json", "mask/mAP50-95", ".4f"),
    # int8 and fp16 against fp32 in one run (README, quantization.md)
    ("README.md", "({} against 0.6688", "benchmark-int8.json", "accuracy_320/int8/mask/mAP50-95", ".4f"),
    (
        "README.md",
        "against {} for fp32 evaluated in the same run",
        "benchmark-int8.json",
        "accuracy_320/fp32/mask/mAP50-95",
        ".4f",
    ),
    (
        "docs/quantization.md",
        "| fp32 | 0.9275 | 0.7123 | 0.9132 | {} |",
        "benchmark-int8.json",
        "accuracy_320/fp32/mask/mAP50-95",
        ".4f",
    ),
    (
        "docs/quantization.md",
        "| 0.9132 (+0.00) | {} (-0.09) |",
        "benchmark-int8.json",
        "accuracy_320/fp16/mask/mAP50-95",
        ".4f",
    ),
    (
        "docs/quantization.md",
        "| 0.9140 (+0.08) | {} (-0.33) |",
        "benchmark-int8.json",
        "accuracy_320/int8/mask/mAP50-95",
        ".4f",
    ),
    (
        "README.md",
        "| {} faster | ≥ 1.5×",
        "benchmark-int8.json",
        "speedups[case=int8-640-1280x720,stage=forward,precision=int8]/speedup",
        "interval",
    ),
    # parity with Ultralytics (YOLOv5)
    (
        "README.md",
        "same {} of 1229 detections",
        "parity-test.json",
        "same_tensors/agreement/predict/matched (same class, score within 1e-5)",
        "d",
    ),
    (
        "README.md",
        "| {} (`segment/val.py`)",
        "parity-test.json",
        "ultralytics_val/process_mask (published)/ultralytics_metric/mask_mAP50-95",
        ".3f",
    ),
    # yolo val and our evaluate of the family exports, test split (README; benchmarks.family_accuracy)
    ("README.md", "v8 320: {} / ", "ultralytics-val.json", FAMILY_VAL.format("shapes-yolov8n-seg-320.onnx"), ".4f"),
    (
        "README.md",
        "v8 320: 0.2678 / {}",
        "evaluate-family.json",
        FAMILY_EVAL.format("shapes-yolov8n-seg-320.onnx"),
        ".4f",
    ),
    (
        "README.md",
        "640 dynamic: {} / ",
        "ultralytics-val.json",
        FAMILY_VAL.format("shapes-yolov8n-seg-640-dynamic.onnx"),
        ".4f",
    ),
    (
        "README.md",
        "640 dynamic: 0.1868 / {}",
        "evaluate-family.json",
        FAMILY_EVAL.format("shapes-yolov8n-seg-640-dynamic.onnx"),
        ".4f",
    ),
    (
        "README.md",
        "v8 e2e: {} (in-graph confidence 0.25) / ",
        "ultralytics-val.json",
        FAMILY_VAL.format("shapes-yolov8n-seg-320-e2e.onnx"),
        ".4f",
    ),
    (
        "README.md",
        "v8 e2e: 0.1491 (in-graph confidence 0.25) / {}",
        "evaluate-family.json",
        FAMILY_EVAL.format("shapes-yolov8n-seg-320-e2e.onnx"),
        ".4f",
    ),
    ("README.md", "11 320: {} / ", "ultralytics-val.json", FAMILY_VAL.format("shapes-yolo11n-seg-320.onnx"), ".4f"),
    (
        "README.md",
        "11 320: 0.2352 / {}",
        "evaluate-family.json",
        FAMILY_EVAL.format("shapes-yolo11n-seg-320.onnx"),
        ".4f",
    ),
    (
        "README.md",
        "11 e2e: {} (in-graph confidence 0.25) / ",
        "ultralytics-val.json",
        FAMILY_VAL.format("shapes-yolo11n-seg-320-e2e.onnx"),
        ".4f",
    ),
    (
        "README.md",
        "11 e2e: 0.1382 (in-graph confidence 0.25) / {}",
        "evaluate-family.json",
        FAMILY_EVAL.format("shapes-yolo11n-seg-320-e2e.onnx"),
        ".4f",
    ),
    ("README.md", "26 320: {} / ", "ultralytics-val.json", FAMILY_VAL.format("shapes-yolo26n-seg-320.onnx"), ".4f"),
    (
        "README.md",
        "26 320: 0.2056 / {}",
        "evaluate-family.json",
        FAMILY_EVAL.format("shapes-yolo26n-seg-320.onnx"),
        ".4f",
    ),
    ("README.md", "26 e2e: {} / ", "ultralytics-val.json", FAMILY_VAL.format("shapes-yolo26n-seg-320-e2e.onnx"), ".4f"),
    (
        "README.md",
        "26 e2e: 0.1868 / {}",
        "evaluate-family.json",
        FAMILY_EVAL.format("shapes-yolo26n-seg-320-e2e.onnx"),
        ".4f",
    ),
    # speed (README, quantization.md)
    (
        "README.md",
        "block {} raw forward, post-processing",
        "benchmark.json",
        f"{BLOCK_640}/vs_forward",
        ".2f×",
    ),
    (
        "README.md",
        "| {} | ≤ 1.2×: borderline |",
        "benchmark.json",
        f"{BLOCK_640}/vs_forward_interval",
        "interval",
    ),
    (
        "docs/quantization.md",
        "costs {}x the raw ONNX Runtime forward",
        "benchmark.json",
        f"{BLOCK_640}/vs_forward",
        ".2f",
    ),
    (
        "README.md",
        "post-processing 10.0× to {}× faster",
        "benchmark.json",
        f"{PEER_4000}/vs_ours",
        ".1f",
    ),
    (
        "README.md",
        "post-processing {}× to 93.3× faster",
        "benchmark.json",
        f"{PEER_640}/vs_ours",
        ".1f",
    ),
    (
        "README.md",
        "| {} faster | ≥ 10×: met |\n| int8",
        "benchmark.json",
        f"{PEER_4000}/vs_ours_interval",
        "interval.1",
    ),
    (
        "README.md",
        "processing {} faster than Ultralytics' `predict`",
        "benchmark-family-ultralytics.json",
        "speedup_ultralytics_over_ours/estimate",
        ".2f×",
    ),
    (
        "README.md",
        "| {} faster | ≥ 10×: met |\n| YOLOv5",
        "benchmark-family-ultralytics.json",
        "speedup_ultralytics_over_ours",
        "interval",
    ),
    (
        "README.md",
        "`predict`; block {} raw forward",
        "benchmark-family-block.json",
        "block_over_forward/estimate",
        ".2f×",
    ),
    ("README.md", "| {} | ≤ 1.2×: not met |", "benchmark-family-block.json", "block_over_forward", "interval"),
    (
        "docs/benchmark.md",
        "on the same ONNX outputs | {} | met |",
        "benchmark-family-ultralytics.json",
        "speedup_ultralytics_over_ours",
        "interval-x",
    ),
    (
        "docs/benchmark.md",
        "≤ 1.2x the raw forward | {} (the",
        "benchmark-family-block.json",
        "block_over_forward",
        "interval-x",
    ),
]


def record_value(record: str, path: str) -> Any:
    value: Any = json.loads((RESULTS / record).read_text(encoding="utf-8"))
    for part in re.findall(r"[^/\[]+(?:\[[^\]]*\])?", path):
        key, _, selector = part.partition("[")
        if key:
            value = value[key]
        if selector:
            wanted = dict(pair.split("=", 1) for pair in selector.rstrip("]").split(","))
            matches = [item for item in value if all(str(item.get(k)) == v for k, v in wanted.items())]
            assert len(matches) == 1, f"{record}: {part} picks {len(matches)} elements"
            value = matches[0]
    return value


def written(value: Any, spec: str) -> str:
    if spec.startswith("interval"):
        times = "x" if "-x" in spec else "×"
        digits = int(spec.split(".")[1]) if "." in spec else 2
        return f"{value['estimate']:.{digits}f}{times} [{value['low']:.{digits}f}, {value['high']:.{digits}f}]"
    suffix = "×" if spec.endswith("×") else ""
    return format(value, spec.removesuffix("×")) + suffix


@pytest.mark.parametrize(
    ("document", "quoted", "record", "path", "spec"), FIGURES, ids=[f"{row[0]}:{row[1][:30]}" for row in FIGURES]
)
def test_a_quoted_figure_is_its_record(document: str, quoted: str, record: str, path: str, spec: str) -> None:
    text = (REPOSITORY / document).read_text(encoding="utf-8")
    expected = quoted.format(written(record_value(record, path), spec))
    if expected not in text:
        before, after = (re.escape(part) for part in quoted.split("{}"))
        found = re.findall(f"{before}(.{{1,40}}?){after}", text, flags=re.S)
        assert found, f"{document} no longer quotes {quoted!r}: update or drop its row in FIGURES"
        pytest.fail(f"{document} quotes {found} where docs/results/{record} ({path}) gives {expected!r}")


def test_every_record_a_figure_names_exists() -> None:
    assert {record for _, _, record, _, _ in FIGURES} <= {path.name for path in RESULTS.glob("*.json")}


# --- commands -------------------------------------------------------------------------------------------------------


def shown_commands(document: Path) -> list[tuple[str, bool]]:
    """Every command of the document's bash blocks (whole: True), and every inline `...` span that starts with a
    command (a mention, possibly without its required arguments: False)."""
    text = document.read_text(encoding="utf-8")
    lines = [
        (line, True) for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S) for line in block.splitlines()
    ]
    lines += [(span, False) for span in re.findall(r"`((?:workflows-yolov5-seg|python -m|python tools/) [^`]*)`", text)]
    commands = []
    for line, whole in lines:
        line = line.split(" #", 1)[0].strip()
        commands += [(part.strip(), whole) for part in line.split("&&") if part.strip()]
    return commands


def package_commands(whole_only: bool = False) -> list[tuple[str, list[str]]]:
    """(document, the words after ``workflows-yolov5-seg``) of every command line that runs this package's command."""
    found = []
    for document in DOCUMENTS_WITH_COMMANDS:
        for command, whole in shown_commands(document):
            words = shlex.split(command)
            for index, word in enumerate(words):
                if Path(word).name == "workflows-yolov5-seg" and index + 1 < len(words) and (whole or not whole_only):
                    found.append((document.name, words[index + 1 :]))
    return found


def lab_modules() -> list[str]:
    modules = set()
    for document in DOCUMENTS_WITH_COMMANDS:
        text = document.read_text(encoding="utf-8")
        modules |= set(re.findall(r"python -m\s+((?:benchmarks|tools)\.\w+)", text))
        modules |= {f"tools.{name}" for name in re.findall(r"python\s+tools/(\w+)\.py", text)}
    return sorted(modules)


def test_the_readme_shows_the_commands_it_promises() -> None:
    shown = {words[0] for document, words in package_commands() if document == "README.md"}
    assert {"demo", "serve"} <= shown, shown


@pytest.mark.parametrize(
    ("document", "words"), package_commands(whole_only=True), ids=[" ".join(w)[:50] for _, w in package_commands(True)]
)
def test_a_shown_package_command_parses(document: str, words: list[str]) -> None:
    """The whole command line as shown (its options and values), parsed by the real command line without running."""
    placeholders = {"X": "model.onnx", "M": "model.onnx", "DATASET": "data", "IMAGE": "image.jpg"}
    args = build_parser().parse_args([placeholders.get(word, word) for word in words])
    assert args.command == words[0]


@pytest.mark.parametrize("command", sorted({words[0] for _, words in package_commands()}))
def test_a_shown_package_command_answers_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert f"workflows-yolov5-seg {command}" in capsys.readouterr().out


@pytest.mark.parametrize("module", lab_modules())
def test_a_shown_lab_module_answers_help(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=REPOSITORY, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout


def test_the_install_commands_name_real_extras() -> None:
    pyproject = (REPOSITORY / "pyproject.toml").read_text(encoding="utf-8")
    section = pyproject.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^([\w-]+) = \[", section, flags=re.M))
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    named = {extra for group in re.findall(r"workflows-yolov5-seg\[([\w,-]+)\]", readme) for extra in group.split(",")}
    named |= set(re.findall(r"^\| `([\w-]+)` \|", readme.split("## Install options", 1)[1], flags=re.M))
    assert named and named <= extras, named - extras
    assert extras <= named, f"extras the README's table does not list: {extras - named}"


# --- links and nothing internal -------------------------------------------------------------------------------------


def test_every_relative_link_resolves() -> None:
    broken = []
    for document in [*USER_DOCUMENTS, REPOSITORY / "CONTRIBUTING.md"]:
        text = document.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (document.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{document.relative_to(REPOSITORY)}: {target}")
    assert not broken, broken


INTERNAL = {
    "a developer-machine path": r"(?<![\w.])/work/",
    "an issue number": r"\bissues? #?\d+",
    "notes outside the repository": r"shared/reference|inference notes",
}


@pytest.mark.parametrize("document", USER_DOCUMENTS, ids=lambda path: path.name)
def test_nothing_internal_in_user_documents(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    found = [
        f"{what}: line {text.count(chr(10), 0, match.start()) + 1}: {match.group(0)!r}"
        for what, pattern in INTERNAL.items()
        for match in re.finditer(pattern, text, flags=re.I)
    ]
    assert not found, f"{document.relative_to(REPOSITORY)} holds {found}"


@pytest.mark.parametrize(("text", "internal"), [
    ("cd /work/main", True),
    ("see issue 21", True),
    ("(issues 8 and 13)", True),
    ("shared/reference/x.md", True),
    ("the project's inference notes", True),
    ("/workflows/run", False),        # an endpoint, not a path on a machine
    ("../ul-venv/bin/python", False),
    ("a known issue with", False),
])  # fmt: skip
def test_the_internal_patterns(text: str, internal: bool) -> None:
    assert any(re.search(pattern, text, flags=re.I) for pattern in INTERNAL.values()) is internal
