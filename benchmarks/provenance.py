"""Where a recorded result came from: the code's git commit (and whether the tree was dirty), the model files'
sha256, the exact versions of the packages that shape the figures, and the machine.

Every results JSON of ``benchmarks/`` carries :func:`provenance` under ``"provenance"``. A figure measured on a
dirty tree is marked ``"dirty": true`` (``--require-clean`` makes the benchmark refuse to run instead).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from workflows_yolov5_seg.backends.engine_cache import file_sha256

REPOSITORY = Path(__file__).resolve().parents[1]
# The distributions whose versions change the measured figures.
DISTRIBUTIONS = ("inference-core", "inference-models", "onnxruntime", "onnxruntime-gpu", "numpy", "supervision", "onnx")


class DirtyTreeError(RuntimeError):
    """The checkout has uncommitted changes and a clean one was required."""


def git_state(repository: Path = REPOSITORY) -> dict:
    """``{"commit": full hash or None, "dirty": bool or None, "changed": [paths]}`` of the checkout.

    ``dirty`` counts modified, staged and untracked files (not ignored ones); ``None`` when git is unavailable.
    """

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(repository), *args], capture_output=True, text=True, timeout=20, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=normal")
    changed = [line[3:] for line in status.splitlines() if line.strip()] if status is not None else []
    return {
        "commit": commit.strip() if commit else None,
        "dirty": None if status is None else bool(changed),
        "changed": changed[:50],
    }


def require_clean(state: dict) -> None:
    """Raises :class:`DirtyTreeError` naming the changed files when the tree is dirty (or unknown)."""
    if state.get("dirty") is not False:
        shown = ", ".join(state.get("changed") or []) or "git unavailable"
        raise DirtyTreeError(
            f"The checkout is not clean ({shown}); commit or stash the changes, or run without --require-clean "
            "(the results are then marked dirty)."
        )


def model_hashes(paths: Iterable[Path]) -> dict[str, dict]:
    """``{path: {"sha256": ..., "bytes": ...}}`` of each existing model file (every file of a folder)."""
    hashes: dict[str, dict] = {}
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and str(file) not in hashes:
                hashes[str(file)] = {"sha256": file_sha256(file), "bytes": file.stat().st_size}
    return hashes


def package_versions(names: Iterable[str] = DISTRIBUTIONS) -> dict[str, str | None]:
    """Exact installed versions (``None``: not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """Exact versions of the distributions among ``names`` that are installed (the others left out)."""
    return {name: version for name, version in package_versions(names).items() if version is not None}


def cpu_description() -> dict:
    """Model name, logical CPUs and the instruction-set flags that decide int8 speed on x86."""
    model, flags = platform.processor() or "", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16")
    isa = {flag: flag in flags for flag in wanted} if flags else None
    return {
        "model": model,
        "int8": int8_features(isa),
        "logical_cpus": os.cpu_count(),
        "isa": isa,
    }


# The flags that decide which int8 kernels ONNX Runtime's CPU provider runs (docs/quantization.md, "CPU families").
INT8_FLAGS = ("avx2", "avx512_vnni", "avx_vnni", "amx_int8")


def int8_kernel_path(isa: dict[str, bool] | None) -> str | None:
    """ONNX Runtime's u8 x s8 convolution path on a CPU with these flags: ``vnni`` (AMX, AVX-512 VNNI or AVX-VNNI:
    exact int32 accumulation), ``avx2-saturating`` (``vpmaddubsw``: pairs of products added in int16 with
    saturation, AVX2 or AVX-512 without VNNI), ``none`` (no AVX2) or ``None`` (flags unknown)."""
    if isa is None:
        return None
    if isa.get("amx_int8") or isa.get("avx512_vnni") or isa.get("avx_vnni"):
        return "vnni"
    return "avx2-saturating" if isa.get("avx2") else "none"


def int8_features(isa: dict[str, bool] | None) -> dict | None:
    """``{"avx2": ..., "avx512_vnni": ..., "avx_vnni": ..., "amx_int8": ..., "kernel_path": ...}`` of
    :func:`cpu_description`'s flags, written beside the CPU's model name."""
    if isa is None:
        return None
    return {flag: bool(isa.get(flag)) for flag in INT8_FLAGS} | {"kernel_path": int8_kernel_path(isa)}


def provenance(model_files: Iterable[Path] = ()) -> dict:
    """Everything above, plus the date, Python, platform and load average at the time of the call."""
    return {
        "git": git_state(),
        "models": model_hashes(model_files),
        "versions": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_description(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_report(path: Path | None, report: dict) -> None:
    """Writes a results JSON (the parent folders too) and says where; nothing without a path."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
