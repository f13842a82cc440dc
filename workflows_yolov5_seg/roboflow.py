"""Roboflow model ids (``project/version``) -> a local inference-models package folder, downloaded once.

The model is resolved the way inference-models 0.39 does it (``inference_models/weights_providers/roboflow.py``,
``get_one_page_of_model_metadata`` and ``parse_onnx_model_package``)::

    GET {api}/models/v1/external/weights?modelId=<project/version>[&startAfter=<nextPage>]
    Authorization: Bearer <api key>

    200 {"modelMetadata": {"type": "external-model-metadata-v1", "modelId": ..., "modelArchitecture": "yolov8",
         "taskType": "instance-segmentation", "nextPage": null,
         "modelPackages": [{"type": "external-model-package-v1", "packageId": ...,
                            "packageManifest": {"type": "onnx-model-package-v1", "backendType": "onnx",
                                                "quantization": "fp32", "dynamicBatchSize": true, ...},
                            "packageFiles": [{"fileHandle": "weights.onnx", "downloadUrl": ..., "md5Hash": ...}]}]}}

``modelArchitecture`` is what inference-models looks up in its registry; of its instance segmentation entries this
block runs ``yolov5``, ``yolov8``, ``yolov11`` and ``yolo26`` (also with a size and ``-seg``, as Inference's model
types, e.g. ``yolov8n-seg``); it is written into the package's ``model_config.json`` (``model_architecture``), from
which the output layout follows (:mod:`workflows_yolov5_seg.layouts`).

The API key travels only in the ``Authorization`` header of that request, never in a URL, a file name, a log line
or an error message. Package files are fetched from their (signed) ``downloadUrl`` without the key, checked
against ``Content-Length`` and ``md5Hash``, written into a temporary folder and moved into the cache in one
``rename``, under an exclusive file lock so that concurrent processes and threads download a model once. A cached
model is handed out only for an API key the API confirmed can read it (:mod:`workflows_yolov5_seg.authorization`):
one metadata request per key and model per ``WORKFLOWS_YOLOV5_SEG_KEY_CONFIRMATION_TTL``, never a second download.

Packages are cached as ``<cache root>/roboflow/<project>/<version>/``
(:func:`workflows_yolov5_seg.settings.cache_root`). The API URL, key, time-outs, retries and offline mode are
settings of :mod:`workflows_yolov5_seg.settings` (section "Roboflow model ids").
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows_yolov5_seg import __version__, authorization, settings
from workflows_yolov5_seg.authorization import ModelAccess
from workflows_yolov5_seg.errors import (
    CacheNotWritableError,
    DownloadIntegrityError,
    InvalidModelPackageError,
    NotYOLOSegModelError,
    RoboflowAPIError,
    RoboflowAPIKeyMissingError,
    RoboflowConnectionError,
    RoboflowModelNotFoundError,
    RoboflowUnauthorizedError,
)
from workflows_yolov5_seg.package_layout import (
    CLASS_NAMES_FILE,
    INFERENCE_CONFIG_FILE,
    INFERENCE_MODELS_SEGMENTATION_ARCHITECTURES,
    MODEL_CONFIG_FILE,
    PACKAGE_WEIGHTS_FILE,
    family_architecture,
)
from workflows_yolov5_seg.private_files import DIR_MODE, FILE_MODE, ensure_private_dir

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.roboflow.com"
WEIGHTS_ENDPOINT = "/models/v1/external/weights"
MAX_METADATA_PAGES = 10  # as inference-models
RETRY_STATUS_CODES = frozenset({408, 429, 502, 503, 504})  # inference-models' IDEMPOTENT_API_REQUEST_CODES_TO_RETRY
REQUIRED_PACKAGE_FILES = (PACKAGE_WEIGHTS_FILE, CLASS_NAMES_FILE, INFERENCE_CONFIG_FILE)
MANIFEST_FILE = ".workflows-yolov5-seg.json"
QUANTIZATION_PREFERENCE = ("fp32", "fp16", "unknown")
CHUNK_SIZE = 1 << 20
MODEL_ID_PATTERN = re.compile(r"^(?P<project>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<version>[0-9]+)$")
FILE_HANDLE_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
PACKAGE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
API_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,512}")  # printable ASCII, no spaces

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


# inference-models' region / environment matrix (configuration.py), used when no URL is set.
REGIONAL_API_URLS = {
    ("us", "prod"): "https://api.roboflow.com",
    ("us", "staging"): "https://api.roboflow.one",
    ("eu", "prod"): "https://api.roboflow.eu",
    ("eu", "staging"): "https://api.roboflow-eu.one",
}


def api_url() -> str:
    """The API base URL, without a trailing slash.

    ``WORKFLOWS_YOLOV5_SEG_API_URL``, else ``ROBOFLOW_API_HOST``, else inference-models' choice from
    ``ROBOFLOW_REGION`` (``us`` / ``eu``) and ``ROBOFLOW_ENVIRONMENT`` (``prod`` or staging).
    """
    url = settings.API_URL.get() or settings.ROBOFLOW_API_HOST.get()
    if not url:
        region = settings.ROBOFLOW_REGION.get().strip().lower()
        environment = "prod" if settings.ROBOFLOW_ENVIRONMENT.get().strip().lower() == "prod" else "staging"
        url = REGIONAL_API_URLS.get((region, environment), DEFAULT_API_URL)
    return url.rstrip("/")


def downloads_root() -> Path:
    """Where downloaded packages live: ``<cache root>/roboflow``."""
    return settings.cache_root() / "roboflow"


def package_dir(model_id: str, root: Path | None = None) -> Path:
    """The cache folder of ``project/version``: ``<root>/<project>/<version>`` (keyed by the id, never the key)."""
    match = MODEL_ID_PATTERN.match(model_id)
    if match is None:
        raise InvalidModelPackageError(
            f"'{model_id}' is not a Roboflow model id; use 'project/version', e.g. 'my-project/3'."
        )
    return (root or downloads_root()) / match["project"] / match["version"]


def safe_url(url: str) -> str:
    """``url`` without its query string and credentials (signed URLs carry tokens)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass
class _Redactor:
    """Removes the API key from any text that leaves this module."""

    secret: str | None

    def __call__(self, text: str) -> str:
        if self.secret:
            text = text.replace(self.secret, "***")
            quoted = urllib.parse.quote(self.secret, safe="")
            if quoted != self.secret:
                text = text.replace(quoted, "***")
        return text


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    """The cache manifest if ``folder`` is a complete, intact cached package, else ``None``.

    Every file must have the size recorded at download time and, where the API gave one, the same MD5: a cached
    file that was truncated or altered afterwards (disk error, a stray edit) is detected and downloaded again.
    """
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        files = manifest["files"]
        for handle, entry in files.items():
            path = folder / handle
            if path.stat().st_size != entry["size"]:
                logger.warning("Cached file %s has another size than downloaded; downloading it again.", path)
                return None
            md5 = entry.get("md5")
            if isinstance(md5, str) and _file_md5(path) != md5.lower():
                logger.warning("Cached file %s is corrupted (checksum differs); downloading it again.", path)
                return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _ensure_writable_cache(folder: Path, model_id: str) -> None:
    """Creates ``folder`` (owner-only) and checks it can be written, else raises a clear error."""
    try:
        ensure_private_dir(folder)
        probe = folder / f".write-test-{uuid.uuid4().hex}"
        probe.touch(mode=FILE_MODE)
        probe.unlink()
    except OSError as error:
        raise CacheNotWritableError(
            f"Cannot write the model cache folder '{folder}' to download '{model_id}' ({error.strerror or error}). "
            f"Make it writable, or set {settings.CACHE_DIR.name} to a writable folder."
        ) from None


@contextlib.contextmanager
def _exclusive(lock_path: Path, model_id: str) -> Iterator[None]:
    """Holds an exclusive lock for ``model_id``: a thread lock plus ``fcntl.flock`` on ``lock_path``."""
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(str(lock_path), threading.Lock())
    timeout = settings.LOCK_TIMEOUT.get()
    if not thread_lock.acquire(timeout=timeout):
        raise RoboflowAPIError(f"Timed out after {timeout:.0f} s waiting for another download of '{model_id}'.")
    try:
        try:
            import fcntl
        except ImportError:  # not POSIX: the thread lock still serialises this process
            yield
            return
        ensure_private_dir(lock_path.parent)
        with os.fdopen(os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE), "a+b") as handle:
            deadline = time.monotonic() + timeout
            waiting_logged = False
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waiting_logged:
                        logger.info("Waiting for another process that is downloading '%s'.", model_id)
                        waiting_logged = True
                    if time.monotonic() > deadline:
                        raise RoboflowAPIError(
                            f"Timed out after {timeout:.0f} s waiting for another process downloading '{model_id}' "
                            f"(lock {lock_path}); raise {settings.LOCK_TIMEOUT.name} or retry."
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        thread_lock.release()


class _Client:
    """HTTP calls with retries, typed errors and redaction."""

    def __init__(self, api_key: str | None, model_id: str) -> None:
        self.api_key = api_key
        self.model_id = model_id
        self.redact = _Redactor(api_key)
        self.timeout = settings.API_TIMEOUT.get()
        self.max_tries = settings.API_MAX_TRIES.get()
        self.backoff = settings.RETRY_BACKOFF.get()
        self.user_agent = f"workflows-yolov5-seg/{__version__}"

    def _sleep_before_retry(self, attempt: int, reason: str, url: str) -> None:
        delay = self.backoff * (2**attempt)
        logger.warning(
            "%s (%s); retrying in %.1f s (try %d of %d).",
            self.redact(reason),
            safe_url(url),
            delay,
            attempt + 2,
            self.max_tries,
        )
        time.sleep(delay)

    def _http_error(self, error: urllib.error.HTTPError, url: str, what: str) -> RoboflowAPIError:
        status = error.code
        try:
            body = error.read(2000).decode("utf-8", "replace").strip()
        except Exception:  # noqa: BLE001 - the body is only a hint
            body = ""
        body = self.redact(body)[:300]
        where = safe_url(url)
        if status in (401, 403, 404) and what.startswith("downloading"):  # signed links carry no API key
            return RoboflowAPIError(
                f"The file host answered {status} while {what} '{self.model_id}' ({where}); the download link may "
                "have expired: retry.",
                status,
            )
        if status in (401, 403):
            reason = "refused the API key" if status == 401 else "refused access to the model with this API key"
            return RoboflowUnauthorizedError(
                f"Roboflow API {reason} ({status}) while {what} '{self.model_id}'. Check the key (block 'api_key' "
                f"or {settings.API_KEY.name}) and that its workspace can access the model.",
                status,
            )
        if status == 404:
            return RoboflowModelNotFoundError(
                f"Roboflow API does not know the model '{self.model_id}' (404 from {where}). Check the id "
                "('project/version') and that the API key's workspace owns it; if you meant a local path, it does "
                "not exist.",
                status,
            )
        if status in (402, 423):
            meaning = "needs credits (402)" if status == 402 else "usage is paused for this workspace (423)"
            return RoboflowUnauthorizedError(
                f"Roboflow API refused the request while {what} '{self.model_id}': {meaning}.", status
            )
        detail = f": {body}" if body else ""
        return RoboflowAPIError(
            f"Roboflow answered {status} while {what} '{self.model_id}' ({where}){detail}. Retry later; if it "
            "persists, contact Roboflow support.",
            status,
        )

    def _connection_error(self, error: BaseException, url: str, what: str) -> RoboflowConnectionError:
        reason = getattr(error, "reason", None) or error
        return RoboflowConnectionError(
            self.redact(
                f"Could not reach {safe_url(url)} while {what} '{self.model_id}' ({reason}) after {self.max_tries} "
                f"tries. Check the network (or {settings.API_URL.name}); models downloaded before load offline from "
                f"{downloads_root()}."
            )
        )

    def get_json(self, url: str, what: str) -> dict[str, Any]:
        """GETs ``url`` with the API key header and returns the decoded JSON object."""
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.max_tries):
            last = attempt == self.max_tries - 1
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=self.timeout) as r:
                    payload = r.read()
                break
            except urllib.error.HTTPError as error:
                if error.code in RETRY_STATUS_CODES and not last:
                    self._sleep_before_retry(attempt, f"Roboflow answered {error.code}", url)
                    continue
                raise self._http_error(error, url, what) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                if not last:
                    self._sleep_before_retry(attempt, f"Connection failed: {getattr(error, 'reason', error)}", url)
                    continue
                raise self._connection_error(error, url, what) from None
        try:
            decoded = json.loads(payload)
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            raise RoboflowAPIError(
                f"Roboflow API sent an answer that is not a JSON object while {what} '{self.model_id}' "
                f"({safe_url(url)}); retry later or contact Roboflow support."
            )
        return decoded

    def download(self, url: str, target: Path, md5: str | None, label: str) -> int:
        """Streams ``url`` into ``target`` (no API key), verifying length and MD5; returns the size."""
        headers = {"User-Agent": self.user_agent}
        for attempt in range(self.max_tries):
            last = attempt == self.max_tries - 1
            try:
                return self._download_once(url, headers, target, md5, label)
            except urllib.error.HTTPError as error:
                if error.code in RETRY_STATUS_CODES and not last:
                    self._sleep_before_retry(attempt, f"File host answered {error.code}", url)
                    continue
                raise self._http_error(error, url, f"downloading {label} of") from None
            except DownloadIntegrityError as error:
                target.unlink(missing_ok=True)
                if not last:
                    self._sleep_before_retry(attempt, str(error), url)
                    continue
                raise
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                target.unlink(missing_ok=True)
                if not last:
                    self._sleep_before_retry(attempt, f"Download failed: {getattr(error, 'reason', error)}", url)
                    continue
                raise self._connection_error(error, url, f"downloading {label} of") from None
        raise AssertionError("unreachable")

    def _download_once(self, url: str, headers: dict[str, str], target: Path, md5: str | None, label: str) -> int:
        digest = hashlib.md5()
        received = 0
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=self.timeout) as response:
            length_header = response.headers.get("Content-Length")
            expected = int(length_header) if length_header and length_header.isdigit() else None
            with _progress(label, expected) as advance, open(target, "wb") as file:
                while True:
                    try:
                        chunk = response.read(CHUNK_SIZE)
                    except http.client.IncompleteRead as error:
                        received += len(error.partial)
                        raise DownloadIntegrityError(
                            f"Download of {label} for '{self.model_id}' was interrupted after {received} of "
                            f"{expected} bytes."
                        ) from None
                    if not chunk:
                        break
                    file.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    advance(len(chunk))
                file.flush()
                os.fsync(file.fileno())
        if expected is not None and received != expected:
            raise DownloadIntegrityError(
                f"Download of {label} for '{self.model_id}' was interrupted after {received} of {expected} bytes."
            )
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise DownloadIntegrityError(
                f"Checksum of {label} for '{self.model_id}' is {digest.hexdigest()}, expected {md5.lower()}; the "
                "download is corrupted."
            )
        return received


@contextlib.contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A tqdm progress bar on a terminal (tqdm is optional); otherwise log lines."""
    disabled = settings.DISABLE_PROGRESS.get()
    bar = None
    if not disabled:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, disable=None, leave=False)
        except ImportError:
            bar = None
    logger.info("Downloading %s (%s bytes).", label, total if total is not None else "unknown")
    try:
        yield (bar.update if bar is not None else (lambda _size: None))
    finally:
        if bar is not None:
            bar.close()


def _metadata_url(base: str, model_id: str, start_after: str | None) -> str:
    query = {"modelId": model_id}
    if start_after:
        query["startAfter"] = start_after
    return f"{base}{WEIGHTS_ENDPOINT}?{urllib.parse.urlencode(query)}"


def fetch_model_metadata(model_id: str, client: _Client, base: str) -> dict[str, Any]:
    """The ``modelMetadata`` of ``model_id`` with the packages of every page (at most 10, as inference-models)."""
    packages: list[Any] = []
    start_after = None
    metadata: dict[str, Any] = {}
    for _ in range(MAX_METADATA_PAGES):
        answer = client.get_json(_metadata_url(base, model_id, start_after), "resolving")
        metadata = answer.get("modelMetadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("modelPackages"), list):
            raise RoboflowAPIError(
                f"Roboflow API's answer for '{model_id}' has no 'modelMetadata.modelPackages'; retry later or contact "
                "Roboflow support."
            )
        packages.extend(metadata["modelPackages"])
        start_after = metadata.get("nextPage")
        if not start_after:
            break
    return {**metadata, "modelPackages": packages}


def _quantization_rank(package: dict[str, Any]) -> int:
    quantization = str(package["packageManifest"].get("quantization", "unknown")).lower()
    return QUANTIZATION_PREFERENCE.index(quantization) if quantization in QUANTIZATION_PREFERENCE else 99


def check_architecture(metadata: dict[str, Any], model_id: str) -> str:
    """The model's ``modelArchitecture``, checked to be one of this block's instance segmentation architectures.

    Raises:
        NotYOLOSegModelError: another architecture or task, named with what the block runs.
    """
    architecture = str(metadata.get("modelArchitecture") or "")
    task = metadata.get("taskType")
    family = family_architecture(architecture)
    if family not in INFERENCE_MODELS_SEGMENTATION_ARCHITECTURES or task not in (None, "instance-segmentation"):
        raise NotYOLOSegModelError(
            f"Roboflow model '{model_id}' is a {architecture or 'unknown'} {task or ''} model; this block runs "
            "instance-segmentation models of the architectures "
            f"{', '.join(repr(name) for name in INFERENCE_MODELS_SEGMENTATION_ARCHITECTURES)} (YOLOv5, YOLOv8, "
            "YOLO11, YOLO26 -seg)."
        )
    return architecture


def select_onnx_package(metadata: dict[str, Any], model_id: str) -> dict[str, Any]:
    """Checks the model is a YOLO instance segmentation model (:func:`check_architecture`) and picks its best ONNX
    package.

    Preference: fp32, then fp16, then others; a dynamic batch before a static one; then the API's order.
    """
    check_architecture(metadata, model_id)
    candidates = [
        package
        for package in metadata["modelPackages"]
        if isinstance(package, dict)
        and package.get("type") == "external-model-package-v1"
        and isinstance(package.get("packageManifest"), dict)
        and package["packageManifest"].get("type") == "onnx-model-package-v1"
        and isinstance(package.get("packageFiles"), list)
    ]
    if not candidates:
        kinds = sorted(
            {
                str((p.get("packageManifest") or {}).get("type"))
                for p in metadata["modelPackages"]
                if isinstance(p, dict)
            }
        )
        raise RoboflowAPIError(
            f"Roboflow offers no ONNX package for '{model_id}' (packages: {', '.join(kinds) or 'none'}); this block "
            "needs 'onnx-model-package-v1'."
        )
    order = {id(package): index for index, package in enumerate(candidates)}
    return min(
        candidates,
        key=lambda p: (_quantization_rank(p), not p["packageManifest"].get("dynamicBatchSize", False), order[id(p)]),
    )


def _package_files(package: dict[str, Any], model_id: str) -> list[tuple[str, str, str | None]]:
    files = []
    for entry in package["packageFiles"]:
        handle = entry.get("fileHandle") if isinstance(entry, dict) else None
        url = entry.get("downloadUrl") if isinstance(entry, dict) else None
        md5 = entry.get("md5Hash") if isinstance(entry, dict) else None
        if not isinstance(handle, str) or not FILE_HANDLE_PATTERN.match(handle) or ".." in handle.split("/"):
            raise RoboflowAPIError(
                f"Roboflow listed an unsafe file name {handle!r} for '{model_id}'; not downloading it."
            )
        if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise RoboflowAPIError(f"Roboflow listed no usable download URL for {handle} of '{model_id}'.")
        if md5 is not None and not (isinstance(md5, str) and re.fullmatch(r"[0-9a-fA-F]{32}", md5)):
            md5 = None
        if handle in (MODEL_CONFIG_FILE, MANIFEST_FILE):
            continue  # written here, from the API's metadata
        files.append((handle, url, md5))
    missing = sorted(set(REQUIRED_PACKAGE_FILES) - {handle for handle, _, _ in files})
    if missing:
        raise RoboflowAPIError(f"Roboflow's ONNX package for '{model_id}' lacks {', '.join(missing)}.")
    return files


def download_model_package(
    model_id: str,
    api_key: str | None = None,
    *,
    cache_dir: Path | None = None,
    force: bool = False,
) -> Path:
    """Returns the local package folder of a Roboflow model id, downloading it once, for a key that may read it.

    With :data:`~workflows_yolov5_seg.settings.AUTHORIZE_ROBOFLOW_KEYS` on (the default) a cached package is returned
    only to a key the Roboflow API confirmed can read the model (:mod:`workflows_yolov5_seg.authorization`): the
    download confirms the key that made it; any other key is confirmed with one metadata request, remembered for
    ``WORKFLOWS_YOLOV5_SEG_KEY_CONFIRMATION_TTL``. The files are never downloaded again for another key.

    Args:
        model_id: ``project/version``.
        api_key: Roboflow API key; defaults to ``ROBOFLOW_API_KEY``. With authorisation off, not needed for a
            cached model.
        cache_dir: downloads folder; defaults to :func:`downloads_root`.
        force: download again even when cached.

    Returns:
        The folder, in inference-models' layout (``weights.onnx``, ``class_names.txt``, ``inference_config.json``,
        ``model_config.json``).

    Raises:
        RoboflowAPIKeyMissingError: no key (with authorisation on, even for a cached model).
        RoboflowUnauthorizedError: 401 / 403 (also 402, 423), now or remembered; a malformed key.
        RoboflowKeyNotConfirmedError: a cached model, the API cannot be asked (``OFFLINE_MODE``, unreachable) and
            the key was not confirmed for it recently enough.
        RoboflowModelNotFoundError: 404.
        RoboflowConnectionError: the network is unreachable and the model is not cached.
        DownloadIntegrityError: a file stayed truncated or corrupted after the retries.
        RoboflowAPIError: any other API failure.
    """
    target = package_dir(model_id, cache_dir)
    key = _clean_key(api_key)
    access = ModelAccess(model_id, target, api_url()) if authorization.enabled() else None
    with _redacted(key):
        if access is not None:
            key = _checked_key(model_id, key)
        cached = not force and _read_manifest(target) is not None
        if not cached and _download_once(model_id, key, target, access, force):
            return target
        logger.debug("Using the cached package of '%s' at %s.", model_id, target)
        if access is not None:
            access.authorize(key, lambda: _confirm_key(model_id, _Client(key, model_id), api_url()))
        return target


def authorize(model_id: str, api_key: str | None = None, *, cache_dir: Path | None = None) -> None:
    """Checks that ``api_key`` (else ``ROBOFLOW_API_KEY``) may read ``model_id``, before a shared model is used.

    Cheap when this process remembers the answer (no file or network access); otherwise the same as
    :func:`download_model_package` (which confirms the key, or downloads the model with it). Does nothing when
    :data:`~workflows_yolov5_seg.settings.AUTHORIZE_ROBOFLOW_KEYS` is off.

    Raises:
        RoboflowAPIError: as :func:`download_model_package`.
    """
    if not authorization.enabled():
        return
    key = _clean_key(api_key)
    with _redacted(key):
        key = _checked_key(model_id, key)
        if not ModelAccess(model_id, package_dir(model_id, cache_dir), api_url()).remembered(key):
            download_model_package(model_id, key, cache_dir=cache_dir)


@contextlib.contextmanager
def _redacted(key: str | None) -> Iterator[None]:
    """Defence in depth: no :class:`RoboflowAPIError` message that leaves this module may carry the key."""
    try:
        yield
    except RoboflowAPIError as error:
        safe = _Redactor(key)(str(error))
        if safe != str(error):
            error.args = (safe,)
        raise


def _clean_key(api_key: str | None) -> str | None:
    """The key given, else ``ROBOFLOW_API_KEY``, without surrounding whitespace (secrets read from files often end
    with a newline); ``None`` when there is none."""
    raw_key = api_key if api_key else settings.API_KEY.get()
    return (raw_key.strip() or None) if raw_key else None


def _checked_key(model_id: str, key: str | None) -> str:
    """``key``, if there is one and it can be an API key; raises otherwise (without echoing it)."""
    if not key:
        raise RoboflowAPIKeyMissingError(
            f"Loading the Roboflow model '{model_id}' needs an API key: set the block's 'api_key' (e.g. "
            f"'$inputs.api_key') or the {settings.API_KEY.name} environment variable."
        )
    if not API_KEY_PATTERN.fullmatch(key):  # never let http.client echo a malformed key in its error
        raise RoboflowUnauthorizedError(
            f"The API key given for '{model_id}' contains characters an API key cannot have (spaces, "
            f"control or non-ASCII characters); check the block's 'api_key' or {settings.API_KEY.name}."
        )
    return key


def _download_once(model_id: str, key: str | None, target: Path, access: ModelAccess | None, force: bool) -> bool:
    """Downloads the package under the model's lock unless another process or thread finished it meanwhile.

    Returns:
        ``True`` when this call downloaded it (the download's metadata request confirmed ``key``), ``False`` when
        it was found complete (the key still has to be authorised).
    """
    offline = settings.OFFLINE_MODE.get()
    if not offline:
        _ensure_writable_cache(target.parent, model_id)
    with _exclusive(target.with_name(f"{target.name}.lock"), model_id):
        if not force and _read_manifest(target) is not None:  # another process finished meanwhile
            return False
        if offline:
            raise RoboflowConnectionError(
                f"'{model_id}' is not cached in {target.parent.parent} and {settings.OFFLINE_MODE.name} is on; "
                "download it once with network access."
            )
        key = _checked_key(model_id, key)
        if access is None:
            _download_into_cache(model_id, _Client(key, model_id), target)
        else:
            access.remembered(key)  # a remembered refusal is answered without asking the API again
            access.ask(key, lambda: _download_into_cache(model_id, _Client(key, model_id), target))
        return True


def _confirm_key(model_id: str, client: _Client, base: str) -> None:
    """The cheapest call the API authorises for the model: the first page of its metadata, with the key."""
    answer = client.get_json(_metadata_url(base, model_id, None), "confirming the API key's access to")
    if not isinstance(answer.get("modelMetadata"), dict):
        raise RoboflowAPIError(
            f"Roboflow API's answer for '{model_id}' has no 'modelMetadata'; retry later or contact Roboflow support."
        )


def _download_into_cache(model_id: str, client: _Client, target: Path) -> None:
    base = api_url()
    metadata = fetch_model_metadata(model_id, client, base)
    package = select_onnx_package(metadata, model_id)
    package_id = str(package.get("packageId", ""))
    if not PACKAGE_ID_PATTERN.match(package_id):
        package_id = "unknown"
    files = _package_files(package, model_id)
    _ensure_writable_cache(target.parent, model_id)
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex}"
    staging.mkdir(mode=DIR_MODE)
    os.chmod(staging, DIR_MODE)  # mkdir's mode is reduced by the umask; the folder becomes the package folder
    try:
        sizes = {}
        for handle, url, md5 in files:
            destination = staging / handle
            destination.parent.mkdir(parents=True, exist_ok=True)
            sizes[handle] = {"size": client.download(url, destination, md5, handle), "md5": md5}
        manifest = package["packageManifest"]
        model_config = {
            "model_architecture": check_architecture(metadata, model_id),
            "task_type": metadata.get("taskType") or "instance-segmentation",
            "backend_type": "onnx",
            "model_id": model_id,
            "quantization": manifest.get("quantization"),
            "dynamic_batch_size_supported": bool(manifest.get("dynamicBatchSize", False)),
            "static_batch_size": manifest.get("staticBatchSize"),
        }
        (staging / MODEL_CONFIG_FILE).write_text(json.dumps(model_config, indent=2), encoding="utf-8")
        sizes[MODEL_CONFIG_FILE] = {"size": (staging / MODEL_CONFIG_FILE).stat().st_size, "md5": None}
        record = {
            "model_id": model_id,
            "package_id": package_id,
            "api_url": safe_url(api_url()),
            "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": sizes,
        }
        _write_synced(staging / MANIFEST_FILE, json.dumps(record, indent=2))
        _make_private(staging)
        if target.exists():  # an incomplete or forced-out copy; we hold the lock
            shutil.rmtree(target)
        os.replace(staging, target)
        _fsync_dir(target.parent)
        logger.info("Downloaded Roboflow model '%s' (package %s) to %s.", model_id, package_id, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _make_private(folder: Path) -> None:
    """Owner-only permissions for ``folder`` and everything in it (files 0o600, folders 0o700)."""
    for path in folder.rglob("*"):
        os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)
    os.chmod(folder, DIR_MODE)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
