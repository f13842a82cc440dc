"""Every environment variable the package reads, declared once with its default and meaning.

Values are read when used, not at import, so a process (or a test) may change them at any time. A value that does not
parse raises :class:`~workflows_yolov5_seg.errors.InvalidSettingError` naming the variable; an empty value counts as
unset. ``docs/settings.md`` lists them, generated from :data:`SETTINGS` by ``workflows-yolov5-seg generate``.

Usage::

    from workflows_yolov5_seg import settings

    settings.MAX_LOADED_MODELS.get()      # 8 unless WORKFLOWS_YOLOV5_SEG_MAX_LOADED_MODELS is set
    settings.cache_root() / "roboflow"    # the Roboflow download cache
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from workflows_yolov5_seg.errors import InvalidSettingError

T = TypeVar("T")

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
CACHE_FOLDER_NAME = "workflows-yolov5-seg"
PLUGIN_MODULE = "workflows_yolov5_seg"  # what WORKFLOWS_PLUGINS names


def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")


def parse_positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected an integer >= 1")
    return value


def parse_non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("expected an integer >= 0")
    return value


def parse_non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses NaN
        raise ValueError("expected a number >= 0")
    return value


def parse_choice(*choices: str) -> Callable[[str], str]:
    """A parser accepting one of ``choices`` (case-insensitive)."""

    def parse(text: str) -> str:
        word = text.strip().lower()
        if word not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return word

    return parse


def parse_path(text: str) -> Path:
    return Path(text).expanduser()


def parse_path_list(text: str) -> tuple[Path, ...]:
    """``os.pathsep``-separated folders, absolute and normalised (``..`` removed; symbolic links kept)."""
    return tuple(
        Path(os.path.normpath(Path(part).expanduser().absolute())) for part in text.split(os.pathsep) if part.strip()
    )


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable.

    Attributes:
        name: the variable.
        default: the value when it is unset or empty (``None``: see ``default_text``).
        meaning: one sentence for the docs table.
        parse: text -> value; raises ``ValueError`` on a bad value.
        section: heading of the docs table this setting is listed under.
        default_text: how the docs show the default, when ``default`` alone does not say it.
    """

    name: str
    default: T
    meaning: str
    parse: Callable[[str], T]
    section: str
    default_text: str | None = None

    def raw(self) -> str | None:
        """The variable's text, or ``None`` when unset or blank."""
        value = os.environ.get(self.name)
        return value if value is not None and value.strip() else None

    def get(self) -> T:
        """The parsed value, or the default when unset.

        Raises:
            InvalidSettingError: the value does not parse.
        """
        raw = self.raw()
        if raw is None:
            return self.default
        try:
            return self.parse(raw.strip())
        except ValueError as error:
            detail = str(error) if str(error).startswith("expected") else f"not a valid value ({error})"
            raise InvalidSettingError(
                f"Environment variable {self.name}={raw!r} is {detail}. Fix it or unset it (default: "
                f"{self.documented_default()}). It sets: {self.meaning}"
            ) from None

    def documented_default(self) -> str:
        if self.default_text is not None:
            return self.default_text
        if isinstance(self.default, bool):
            return "false" if not self.default else "true"
        return str(self.default)


# Sections of docs/settings.md.
FILES_SECTION = "Caches and model files"
LIMITS_SECTION = "Limits"
BACKENDS_SECTION = "Backends"
ROBOFLOW_SECTION = "Roboflow model ids"
SERVING_SECTION = "Serving"

CACHE_DIR = Setting(
    "WORKFLOWS_YOLOV5_SEG_CACHE_DIR",
    None,
    "Root of every cache: Roboflow downloads (`roboflow/`), TensorRT engines (`trt/`), ONNX Runtime TensorRT "
    "provider engines (`ort-trt/`), the server folder (`server/`). Created owner-only.",
    parse_path,
    FILES_SECTION,
    "`$MODEL_CACHE_DIR/workflows-yolov5-seg` when Inference's `MODEL_CACHE_DIR` is set, else "
    "`$XDG_CACHE_HOME/workflows-yolov5-seg`, else `~/.cache/workflows-yolov5-seg`",
)
MODEL_ROOTS = Setting(
    "WORKFLOWS_YOLOV5_SEG_MODEL_ROOTS",
    None,
    "Folders (separated by `os.pathsep`: `:` on Linux and macOS, `;` on Windows) that local model paths must "
    "resolve into, `..` and symbolic links included; other paths are refused. `serve --model-root DIR` adds to it.",
    parse_path_list,
    FILES_SECTION,
    "unset: any path in library use; no local path when served (see `WORKFLOWS_YOLOV5_SEG_SERVING`)",
)
SERVING = Setting(
    "WORKFLOWS_YOLOV5_SEG_SERVING",
    "auto",
    "Whether requests come from other people, which confines local model paths to the model roots (none set: local "
    "paths refused): `served`, `library`, or `auto` = served when Inference's HTTP API is loaded in the process (its "
    "server image, `workflows-yolov5-seg serve`).",
    parse_choice("auto", "served", "library"),
    FILES_SECTION,
)
MAX_MODEL_FILE_BYTES = Setting(
    "WORKFLOWS_YOLOV5_SEG_MAX_MODEL_FILE_BYTES",
    2 * 1024**3,
    "Largest weights or engine file read; larger ones are refused before reading (configs and class names: 16 MiB).",
    parse_positive_int,
    FILES_SECTION,
    "2147483648 (2 GiB)",
)
MAX_LOADED_MODELS = Setting(
    "WORKFLOWS_YOLOV5_SEG_MAX_LOADED_MODELS",
    8,
    "Models kept loaded per process (least recently used dropped first).",
    parse_positive_int,
    LIMITS_SECTION,
)
MAX_IMAGE_PIXELS = Setting(
    "WORKFLOWS_YOLOV5_SEG_MAX_IMAGE_PIXELS",
    100_000_000,
    "Largest input image (width x height) accepted; larger ones are refused with `InvalidImageError`.",
    parse_positive_int,
    LIMITS_SECTION,
)
MAX_MASK_BYTES = Setting(
    "WORKFLOWS_YOLOV5_SEG_MAX_MASK_BYTES",
    2 * 1024**3,
    "Most memory one call may use for dense masks; above it the call is refused (use `mask_storage: compact`).",
    parse_positive_int,
    LIMITS_SECTION,
    "2147483648 (2 GiB)",
)
ORT_THREADS = Setting(
    "WORKFLOWS_YOLOV5_SEG_ORT_THREADS",
    0,
    "ONNX Runtime intra-op threads per model (0: ONNX Runtime's choice, one per core).",
    parse_non_negative_int,
    BACKENDS_SECTION,
)
ORT_GRAPH_OPTIMIZATION = Setting(
    "WORKFLOWS_YOLOV5_SEG_ORT_GRAPH_OPTIMIZATION",
    "all",
    "ONNX Runtime graph optimisation level: `disable`, `basic`, `extended` or `all` (layout optimisations; fuses "
    "the int8 QDQ kernels and SiLU). See docs/quantization.md for the measurements.",
    parse_choice("disable", "basic", "extended", "all"),
    BACKENDS_SECTION,
)
ORT_EXECUTION_MODE = Setting(
    "WORKFLOWS_YOLOV5_SEG_ORT_EXECUTION_MODE",
    "sequential",
    "ONNX Runtime execution mode: `sequential` (one operator at a time, each using the intra-op threads) or "
    "`parallel` (independent branches at once on the inter-op threads).",
    parse_choice("sequential", "parallel"),
    BACKENDS_SECTION,
)
ORT_INTER_OP_THREADS = Setting(
    "WORKFLOWS_YOLOV5_SEG_ORT_INTER_OP_THREADS",
    0,
    "ONNX Runtime inter-op threads per model, used only in `parallel` execution mode (0: ONNX Runtime's choice).",
    parse_non_negative_int,
    BACKENDS_SECTION,
)
ORT_MEMORY_ARENA = Setting(
    "WORKFLOWS_YOLOV5_SEG_ORT_MEMORY_ARENA",
    True,
    "Keep ONNX Runtime's CPU memory arena and memory-pattern planning (buffers reused between calls); `false` "
    "returns memory to the system after each call, at some speed.",
    parse_bool,
    BACKENDS_SECTION,
)
ORT_SPINNING = Setting(
    "WORKFLOWS_YOLOV5_SEG_ORT_SPINNING",
    False,
    "Let ONNX Runtime's threads spin (busy-wait) between operators, as ONNX Runtime does by default. Off here: on "
    "a 2-core machine shared with other work, spinning threads made the forward pass 1.4-2.3x slower; on idle "
    "cores `true` is 7-19 % faster (docs/quantization.md).",
    parse_bool,
    BACKENDS_SECTION,
)
ALLOW_ENGINE_HOST_CODE = Setting(
    "WORKFLOWS_YOLOV5_SEG_ALLOW_ENGINE_HOST_CODE",
    False,
    "Let a model package's own TensorRT `engine.plan` that carries host code (lean / version-compatible engines) "
    "load; only for packages you trust.",
    parse_bool,
    BACKENDS_SECTION,
)
API_KEY = Setting(
    "ROBOFLOW_API_KEY",
    None,
    "Roboflow API key for `project/version` model ids when the block's `api_key` is not set.",
    str,
    ROBOFLOW_SECTION,
    "unset",
)
API_URL = Setting(
    "WORKFLOWS_YOLOV5_SEG_API_URL",
    None,
    "Roboflow API base URL.",
    str,
    ROBOFLOW_SECTION,
    "`ROBOFLOW_API_HOST`, else by `ROBOFLOW_REGION` (`us` / `eu`) and `ROBOFLOW_ENVIRONMENT` (`prod` / staging): "
    "`https://api.roboflow.com` by default",
)
ROBOFLOW_API_HOST = Setting(
    "ROBOFLOW_API_HOST", None, "inference-models' name for the API base URL.", str, ROBOFLOW_SECTION, "unset"
)
ROBOFLOW_REGION = Setting(
    "ROBOFLOW_REGION", "us", "API region when no URL is set: `us` or `eu`.", str, ROBOFLOW_SECTION
)
ROBOFLOW_ENVIRONMENT = Setting(
    "ROBOFLOW_ENVIRONMENT", "prod", "API environment when no URL is set: `prod` or staging.", str, ROBOFLOW_SECTION
)
API_TIMEOUT = Setting(
    "WORKFLOWS_YOLOV5_SEG_API_TIMEOUT",
    30.0,
    "Seconds before an API or download request times out.",
    parse_non_negative_float,
    ROBOFLOW_SECTION,
)
API_MAX_TRIES = Setting(
    "WORKFLOWS_YOLOV5_SEG_API_MAX_TRIES",
    3,
    "Tries per request (connection failures, 408/429/5xx).",
    parse_positive_int,
    ROBOFLOW_SECTION,
)
RETRY_BACKOFF = Setting(
    "WORKFLOWS_YOLOV5_SEG_RETRY_BACKOFF",
    1.0,
    "Seconds before the first retry; doubled for each further one.",
    parse_non_negative_float,
    ROBOFLOW_SECTION,
)
LOCK_TIMEOUT = Setting(
    "WORKFLOWS_YOLOV5_SEG_LOCK_TIMEOUT",
    900.0,
    "Seconds to wait for another process downloading the same model.",
    parse_non_negative_float,
    ROBOFLOW_SECTION,
)
DISABLE_PROGRESS = Setting(
    "WORKFLOWS_YOLOV5_SEG_DISABLE_PROGRESS", False, "Hide the download progress bar.", parse_bool, ROBOFLOW_SECTION
)
OFFLINE_MODE = Setting(
    "OFFLINE_MODE",
    False,
    "Never use the network (Inference's variable): only cached models load, and only for keys confirmed before "
    "(see `WORKFLOWS_YOLOV5_SEG_OFFLINE_CONFIRMATION_TTL`).",
    parse_bool,
    ROBOFLOW_SECTION,
)
AUTHORIZE_ROBOFLOW_KEYS = Setting(
    "WORKFLOWS_YOLOV5_SEG_AUTHORIZE_ROBOFLOW_KEYS",
    True,
    "Serve a `project/version` model only to API keys the Roboflow API confirmed can read it (one metadata request "
    "per key and model per `WORKFLOWS_YOLOV5_SEG_KEY_CONFIRMATION_TTL`), cached or not. `false` (single-user "
    "processes only): a cached model is served to any caller, with or without a key.",
    parse_bool,
    ROBOFLOW_SECTION,
)
KEY_CONFIRMATION_TTL = Setting(
    "WORKFLOWS_YOLOV5_SEG_KEY_CONFIRMATION_TTL",
    3600.0,
    "Seconds a key's confirmed access to a model is trusted before the API is asked again (also the longest a key "
    "revoked at Roboflow keeps working); 0 asks at every request.",
    parse_non_negative_float,
    ROBOFLOW_SECTION,
)
KEY_REFUSAL_TTL = Setting(
    "WORKFLOWS_YOLOV5_SEG_KEY_REFUSAL_TTL",
    60.0,
    "Seconds a refusal of a key for a model (401, 403, 404) is remembered and answered without asking the API "
    "again; 0 remembers none.",
    parse_non_negative_float,
    ROBOFLOW_SECTION,
)
OFFLINE_CONFIRMATION_TTL = Setting(
    "WORKFLOWS_YOLOV5_SEG_OFFLINE_CONFIRMATION_TTL",
    604800.0,
    "Seconds after its last confirmation that a key may still use a cached model while the API cannot be asked "
    "(`OFFLINE_MODE`, or the API unreachable); 0: never offline.",
    parse_non_negative_float,
    ROBOFLOW_SECTION,
    "604800 (7 days)",
)
SERVER_DIR = Setting(
    "WORKFLOWS_YOLOV5_SEG_SERVER_DIR",
    None,
    "Folder of the static landing-page mounts `workflows-yolov5-seg serve` creates for Inference's app.",
    parse_path,
    SERVING_SECTION,
    "`<cache root>/server`",
)
MMAP_THRESHOLD = Setting(
    "WORKFLOWS_YOLOV5_SEG_MMAP_THRESHOLD",
    256 * 1024,
    "`serve` only, on glibc: memory blocks of at least this many bytes are mapped and given back to the system when "
    "freed. Without it glibc raises its threshold as blocks are freed (up to 32 MiB) and keeps freed images, masks "
    "and tensors in its heaps: the server's RSS grew by ~1 GiB under concurrent requests. 0 keeps glibc's dynamic "
    "threshold; ignored when `MALLOC_MMAP_THRESHOLD_` is set. Workers inherit it as `MALLOC_MMAP_THRESHOLD_`.",
    parse_non_negative_int,
    SERVING_SECTION,
    "262144 (256 KiB)",
)
WORKFLOWS_PLUGINS = Setting(
    "WORKFLOWS_PLUGINS",
    None,
    "Inference's plugin list (comma-separated modules); `serve` and `demo` append `workflows_yolov5_seg`.",
    str,
    SERVING_SECTION,
    "unset",
)

SETTINGS: tuple[Setting, ...] = (
    CACHE_DIR,
    MODEL_ROOTS,
    SERVING,
    MAX_MODEL_FILE_BYTES,
    MAX_LOADED_MODELS,
    MAX_IMAGE_PIXELS,
    MAX_MASK_BYTES,
    ORT_THREADS,
    ORT_GRAPH_OPTIMIZATION,
    ORT_EXECUTION_MODE,
    ORT_INTER_OP_THREADS,
    ORT_MEMORY_ARENA,
    ORT_SPINNING,
    ALLOW_ENGINE_HOST_CODE,
    API_KEY,
    API_URL,
    ROBOFLOW_API_HOST,
    ROBOFLOW_REGION,
    ROBOFLOW_ENVIRONMENT,
    API_TIMEOUT,
    API_MAX_TRIES,
    RETRY_BACKOFF,
    LOCK_TIMEOUT,
    DISABLE_PROGRESS,
    OFFLINE_MODE,
    AUTHORIZE_ROBOFLOW_KEYS,
    KEY_CONFIRMATION_TTL,
    KEY_REFUSAL_TTL,
    OFFLINE_CONFIRMATION_TTL,
    SERVER_DIR,
    MMAP_THRESHOLD,
    WORKFLOWS_PLUGINS,
)


def cache_root() -> Path:
    """The root of every cache (see :data:`CACHE_DIR`)."""
    explicit = CACHE_DIR.get()
    if explicit is not None:
        return explicit
    inference_cache = os.environ.get("MODEL_CACHE_DIR")
    if inference_cache:
        return Path(inference_cache).expanduser() / CACHE_FOLDER_NAME
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / CACHE_FOLDER_NAME


# Imported by Inference's HTTP app (its server images and ``workflows-yolov5-seg serve``), not by library use.
INFERENCE_HTTP_MODULE = "inference.core.interfaces.http.http_api"


def is_served() -> bool:
    """Whether this process serves requests from others (see :data:`SERVING`): then local model paths must resolve
    into :data:`MODEL_ROOTS`, and with no roots they are refused."""
    mode = SERVING.get()
    return mode == "served" or (mode == "auto" and INFERENCE_HTTP_MODULE in sys.modules)


def server_dir() -> Path:
    """Where ``serve`` keeps the landing-page folders (see :data:`SERVER_DIR`)."""
    return SERVER_DIR.get() or cache_root() / "server"


def with_plugin(plugins: str | None, plugin: str) -> str:
    """A ``WORKFLOWS_PLUGINS`` value with ``plugin`` appended: others kept in order, empties and repeats dropped."""
    names = list(dict.fromkeys(name.strip() for name in (plugins or "").split(",") if name.strip()))
    if plugin not in names:
        names.append(plugin)
    return ",".join(names)


def register_plugin(plugin: str = PLUGIN_MODULE) -> str:
    """Adds ``plugin`` to ``WORKFLOWS_PLUGINS`` in this process and returns the new value.

    Must run before Inference is imported: ``inference.core.env`` reads the variable on import.
    """
    os.environ[WORKFLOWS_PLUGINS.name] = with_plugin(WORKFLOWS_PLUGINS.raw(), plugin)
    return os.environ[WORKFLOWS_PLUGINS.name]
