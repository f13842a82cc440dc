"""Generates ``blocks/<block type>.json``, ``manifest.json`` and ``docs/settings.md`` from the code.

``blocks/<block type>.json`` (``/`` in the type written as ``--``) holds the block's entry exactly as Inference's
``POST /workflows/blocks/describe`` returns it: computed with the same handler the server calls and serialised
as FastAPI serialises the response (JSON mode, by alias). ``manifest.json`` holds the plugin's identity, with the
model generations, package architectures and output layouts the block runs. Both are
deterministic: sorted keys, two-space indent, a final newline, no timestamps. ``docs/settings.md`` is the table
of :mod:`workflows_yolov5_seg.settings`.

Regenerate with ``workflows-yolov5-seg generate``; ``--check`` writes nothing and exits 1 when the files on disk
differ. Needs the ``inference`` extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workflows_yolov5_seg import __version__, settings
from workflows_yolov5_seg.package_layout import INFERENCE_MODELS_SEGMENTATION_ARCHITECTURES

DISTRIBUTION = "workflows-yolov5-seg"
BLOCKS_DIR = "blocks"
MANIFEST_FILE = "manifest.json"
SETTINGS_FILE = "docs/settings.md"
REGENERATE_COMMAND = "workflows-yolov5-seg generate"
MANIFEST_SCHEMA_VERSION = 1

# Inference releases the plugin (server, Execution Engine, describe output) has been tested with, oldest first: the
# newest runs the whole test suite, the oldest tests/suites/test_inference_versions.py. They are the bounds of the
# `inference` extra in pyproject.toml. Update after testing a new release, then regenerate.
INFERENCE_VERSIONS_TESTED = ("1.0.0", "1.8.3")
# The release blocks/*.json are generated with: they embed Inference's kind documentation, which changes between
# releases, so they match a fresh generation on this release only.
DESCRIPTIONS_GENERATED_WITH = INFERENCE_VERSIONS_TESTED[-1]

# Backends the block's `backend` parameter offers and the extras (pyproject optional-dependencies) that install them.
BACKENDS: dict[str, dict[str, Any]] = {
    "onnx": {
        "runtime": "ONNX Runtime",
        "devices": ["cpu", "cuda[:N]", "tensorrt[:N]"],
        "extras": {"onnx-cpu": "CPU (onnxruntime)", "onnx-gpu": "NVIDIA GPU (onnxruntime-gpu)"},
    },
    "trt": {
        "runtime": "TensorRT",
        "devices": ["cuda[:N]"],
        "extras": {"trt": "NVIDIA GPU (tensorrt, cuda-python)"},
    },
}
DEFAULT_BACKEND = "auto"
# The segmentation generations the block runs (every one as a raw export; the ultralytics package's also end-to-end).
GENERATIONS = ["YOLOv5", "YOLOv8", "YOLOv9", "YOLO11", "YOLO12", "YOLO26"]
AUTO_BACKEND_ORDER = ["trt", "onnx (cuda)", "onnx (cpu)"]


def block_file_name(block_type: str) -> str:
    """``owner/block@v1`` -> ``owner--block@v1.json`` (``/`` written as ``--``, as Inference's routes spell it)."""
    return block_type.replace("/", "--") + ".json"


def describe_response() -> dict[str, Any]:
    """The whole ``POST /workflows/blocks/describe`` response body (no dynamic blocks), as JSON-ready data."""
    settings.register_plugin()
    try:
        from inference.core.interfaces.http.handlers.workflows import handle_describe_workflows_blocks_request
    except ImportError as error:
        from workflows_yolov5_seg.errors import MissingDependencyError

        raise MissingDependencyError(
            "inference-core", "inference", "Generating the block descriptions (workflows-yolov5-seg generate)"
        ) from error

    result = handle_describe_workflows_blocks_request()
    return json.loads(result.model_dump_json(by_alias=True))


def plugin_block_descriptions(response: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """This plugin's entries of the describe response, by block type."""
    response = describe_response() if response is None else response
    return {
        block["manifest_type_identifier"]: block
        for block in response["blocks"]
        if block["block_source"] == settings.PLUGIN_MODULE
    }


def build_manifest(descriptions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The plugin manifest, from the blocks' describe entries and this module's constants."""
    from workflows_yolov5_seg.layouts import LAYOUTS  # numpy and supervision: only when generating

    blocks = []
    for block_type in sorted(descriptions):
        description = descriptions[block_type]
        schema = description["block_schema"]
        blocks.append(
            {
                "type": block_type,
                "aliases": description["manifest_type_identifier_aliases"],
                "name": schema.get("name"),
                "version": schema.get("version"),
                "block_type": schema.get("block_type"),
                "license": schema.get("license"),
                "short_description": schema.get("short_description"),
                "class": description["fully_qualified_block_class_name"],
                "execution_engine_compatibility": description["execution_engine_compatibility"],
                "inputs": sorted(name for name in schema["properties"] if name not in ("type", "name")),
                "required_inputs": sorted(name for name in schema.get("required", []) if name not in ("type", "name")),
                "outputs": {
                    output["name"]: [kind["name"] for kind in output["kind"]]
                    for output in description["outputs_manifest"]
                },
                "description_file": f"{BLOCKS_DIR}/{block_file_name(block_type)}",
            }
        )
    compatibilities = sorted(
        {b["execution_engine_compatibility"] for b in blocks if b["execution_engine_compatibility"]}
    )
    backend_extras = {
        extra: f"{name} backend: {what}" for name, spec in BACKENDS.items() for extra, what in spec["extras"].items()
    }
    return {
        "manifest_schema_version": MANIFEST_SCHEMA_VERSION,
        "distribution": DISTRIBUTION,
        "module": settings.PLUGIN_MODULE,
        "version": __version__,
        "plugin": {
            "env": {"WORKFLOWS_PLUGINS": settings.PLUGIN_MODULE},
            "entry_point": f"{settings.PLUGIN_MODULE}.load_blocks",
        },
        "blocks": blocks,
        "execution_engine_compatibility": compatibilities[0] if len(compatibilities) == 1 else compatibilities,
        "backends": {
            "default": DEFAULT_BACKEND,
            "auto_order": AUTO_BACKEND_ORDER,
            "available": BACKENDS,
        },
        "extras": {
            "inference": "the Workflows engine and HTTP server (inference-core[http], inference-sdk)",
            **backend_extras,
        },
        "models": {
            "generations": GENERATIONS,
            # model_architecture / modelArchitecture of inference-models packages and Roboflow model ids
            "architectures": list(INFERENCE_MODELS_SEGMENTATION_ARCHITECTURES),
            "output_layouts": {layout.name: layout.shape_text for layout in LAYOUTS.values()},
        },
        "inference_versions_tested": list(INFERENCE_VERSIONS_TESTED),
        "console_script": DISTRIBUTION,
    }


def dumps(data: Any) -> str:
    """The files' one JSON format: sorted keys, two-space indent, UTF-8 kept, final newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate_files(response: dict[str, Any] | None = None) -> dict[str, str]:
    """Relative path -> content of every generated file."""
    descriptions = plugin_block_descriptions(response)
    if not descriptions:
        raise RuntimeError(
            f"The describe response lists no block from '{settings.PLUGIN_MODULE}'; is the plugin importable "
            "(pip install -e '.[inference]')?"
        )
    files = {f"{BLOCKS_DIR}/{block_file_name(t)}": dumps(d) for t, d in sorted(descriptions.items())}
    files[MANIFEST_FILE] = dumps(build_manifest(descriptions))
    files[SETTINGS_FILE] = settings_markdown()
    return files


def settings_markdown() -> str:
    """``docs/settings.md``: every setting of :mod:`workflows_yolov5_seg.settings`, one table per section."""
    lines = [
        "# Settings",
        "",
        "Every environment variable the package reads, generated from `workflows_yolov5_seg/settings.py` by",
        "`workflows-yolov5-seg generate` (a test fails when this file drifts). Values are read when used; an empty",
        "value counts as unset; a value that does not parse raises `InvalidSettingError` naming the variable.",
    ]
    for section in dict.fromkeys(setting.section for setting in settings.SETTINGS):
        lines += ["", f"## {section}", "", "| variable | default | meaning |", "|---|---|---|"]
        lines += [
            f"| `{setting.name}` | {setting.documented_default()} | {setting.meaning} |"
            for setting in settings.SETTINGS
            if setting.section == section
        ]
    return "\n".join(lines) + "\n"


def project_root() -> Path:
    """The source checkout holding this package (its ``pyproject.toml``), else the current folder."""
    candidate = Path(__file__).resolve().parent.parent
    return candidate if (candidate / "pyproject.toml").is_file() else Path.cwd()


def stale_files(root: Path, files: dict[str, str]) -> list[str]:
    """Generated paths whose file under ``root`` is missing or differs, plus stray ``blocks/*.json``."""
    stale = [
        path
        for path, content in files.items()
        if not (root / path).is_file() or (root / path).read_text(encoding="utf-8") != content
    ]
    blocks_dir = root / BLOCKS_DIR
    if blocks_dir.is_dir():
        stale += [
            f"{BLOCKS_DIR}/{p.name} (no longer generated)"
            for p in sorted(blocks_dir.glob("*.json"))
            if f"{BLOCKS_DIR}/{p.name}" not in files
        ]
    return stale


def write_files(root: Path, files: dict[str, str]) -> list[str]:
    """Writes ``files`` under ``root``, removes stray ``blocks/*.json``; returns what changed."""
    changed = stale_files(root, files)
    blocks_dir = root / BLOCKS_DIR
    if blocks_dir.is_dir():
        for path in blocks_dir.glob("*.json"):
            if f"{BLOCKS_DIR}/{path.name}" not in files:
                path.unlink()
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_text(encoding="utf-8") != content:
            target.write_text(content, encoding="utf-8")
    return changed
