"""Which API keys may use a cached Roboflow model id: the ones the Roboflow API confirmed can read it (issue 15).

A model id (``project/version``) is downloaded once per cache and loaded once per process, and both are shared by
every caller; the authorisation is per key. A key is confirmed by the cheapest call the API authorises for the model,
the first page of the metadata request the download makes (``GET /models/v1/external/weights?modelId=...``), and
the answer is remembered so that a busy server does not ask the API at every request:

- **in memory** (this process), per (API, package, key): a confirmation for
  ``WORKFLOWS_YOLOV5_SEG_KEY_CONFIRMATION_TTL`` seconds (1 hour), a refusal (401, 403, 404) for
  ``WORKFLOWS_YOLOV5_SEG_KEY_REFUSAL_TTL`` seconds (60), replayed as the same typed error. Keys are held as HMACs
  under a random per-process secret, never as text.
- **on disk**, beside the package (``<cache>/roboflow/<project>/<version>.keys.json``, owner-only, written
  atomically under a file lock): when each key was last confirmed, as ``HMAC-SHA256(salt, key)`` with a random
  32-byte salt per file. Another process sharing the cache trusts a record for the confirmation time-to-live; when
  the API cannot be asked (``OFFLINE_MODE``, or it is unreachable or failing), for
  ``WORKFLOWS_YOLOV5_SEG_OFFLINE_CONFIRMATION_TTL`` seconds (7 days). A refusal deletes the key's record.

Roboflow API keys are random tokens, so a keyed fast hash is enough to keep them out of the file (nothing short of
the key itself finds a record); a slow password hash would only make every new key cost the server CPU.

:func:`workflows_yolov5_seg.roboflow.download_model_package` and :func:`workflows_yolov5_seg.roboflow.authorize`
use :class:`ModelAccess`; with ``WORKFLOWS_YOLOV5_SEG_AUTHORIZE_ROBOFLOW_KEYS=false`` nothing here runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.errors import (
    RoboflowAPIError,
    RoboflowKeyNotConfirmedError,
    RoboflowModelNotFoundError,
    RoboflowUnauthorizedError,
)
from workflows_yolov5_seg.private_files import exclusive_file_lock, write_atomically

logger = logging.getLogger(__name__)

T = TypeVar("T")

REFUSAL_STATUSES = frozenset({401, 403, 404})  # the API's answers that refuse a key for a model
KEYS_FILE_SUFFIX = ".keys.json"
KEYS_FILE_FORMAT = "workflows-yolov5-seg/confirmed-keys@1"
KEYS_FILE_HASH = "hmac-sha256"
SALT_BYTES = 32
MAX_CONFIRMED_KEYS = 1000  # per model; the oldest confirmations go first
MAX_REMEMBERED_ANSWERS = 10_000  # per process; expired, then least recently stored, answers go first
CLOCK_SKEW_S = 300.0  # a record dated further ahead of this machine's clock is ignored


def now() -> float:
    """Wall-clock seconds; the records on disk are shared by processes, so this is ``time.time`` (tests replace it)."""
    return time.time()


def enabled() -> bool:
    """Whether keys are authorised (:data:`~workflows_yolov5_seg.settings.AUTHORIZE_ROBOFLOW_KEYS`)."""
    return settings.AUTHORIZE_ROBOFLOW_KEYS.get()


@dataclass(frozen=True)
class _Answer:
    """A remembered answer until ``expires_at``: a confirmation, or a refusal to replay (its type, message, status)."""

    expires_at: float
    refusal: tuple[type[RoboflowAPIError], str, int | None] | None = None


class RememberedAnswers:
    """The API's answers per (API, package, key) in this process, bounded and thread-safe.

    The key is stored as an HMAC under a secret drawn when the process starts, so neither the key nor a hash that
    another process could match is kept.
    """

    def __init__(self, capacity: int = MAX_REMEMBERED_ANSWERS) -> None:
        self.capacity = capacity
        self._answers: OrderedDict[tuple[str, str, str], _Answer] = OrderedDict()
        self._lock = threading.Lock()
        self._secret = os.urandom(SALT_BYTES)
        self._flights: dict[tuple[str, str, str], tuple[threading.Lock, list[int]]] = {}

    @contextlib.contextmanager
    def one_at_a_time(self, scope: tuple[str, str], key: str) -> Iterator[None]:
        """Holds a lock for (``scope``, ``key``), so that concurrent first requests with a key ask the API once."""
        entry = self._entry(scope, key)
        with self._lock:
            lock, holders = self._flights.setdefault(entry, (threading.Lock(), [0]))
            holders[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._lock:
                holders[0] -= 1
                if holders[0] == 0:
                    del self._flights[entry]

    def _entry(self, scope: tuple[str, str], key: str) -> tuple[str, str, str]:
        return (*scope, hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest())

    def get(self, scope: tuple[str, str], key: str) -> _Answer | None:
        entry = self._entry(scope, key)
        with self._lock:
            answer = self._answers.get(entry)
            if answer is not None and answer.expires_at <= now():
                del self._answers[entry]
                return None
            return answer

    def put(self, scope: tuple[str, str], key: str, answer: _Answer) -> None:
        entry = self._entry(scope, key)
        with self._lock:
            self._answers.pop(entry, None)
            self._answers[entry] = answer
            if len(self._answers) > self.capacity:
                moment = now()
                for stale in [e for e, a in self._answers.items() if a.expires_at <= moment]:
                    del self._answers[stale]
                while len(self._answers) > self.capacity:
                    self._answers.popitem(last=False)

    def forget(self, scope: tuple[str, str], key: str) -> None:
        with self._lock:
            self._answers.pop(self._entry(scope, key), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._answers)

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()


ANSWERS = RememberedAnswers()


class ConfirmedKeys:
    """When each key was last confirmed for one cached package: salted hashes in an owner-only JSON file beside it.

    The file (``<version>.keys.json`` next to the ``<version>/`` package folder)::

        {"format": "workflows-yolov5-seg/confirmed-keys@1", "hash": "hmac-sha256", "salt": "<64 hex digits>",
         "confirmed": {"<hex HMAC-SHA256(salt, key)>": <Unix time of the last confirmation>, ...}}

    A missing, unreadable or malformed file counts as empty (and is rewritten at the next confirmation); a failed
    write is logged and does not fail the request that the API has just authorised.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def beside(cls, package: Path) -> ConfirmedKeys:
        return cls(package.with_name(f"{package.name}{KEYS_FILE_SUFFIX}"))

    def _read(self) -> tuple[bytes | None, dict[str, float]]:
        """The salt and the records, or ``(None, {})`` when there is no usable file."""
        try:
            content = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, {}
        except (OSError, ValueError) as error:
            logger.warning("Ignoring the confirmed-keys file %s (%s); keys are confirmed again.", self.path, error)
            return None, {}
        try:
            if content["format"] != KEYS_FILE_FORMAT or content["hash"] != KEYS_FILE_HASH:
                raise ValueError(f"format {content['format']!r}, hash {content['hash']!r}")
            salt = bytes.fromhex(content["salt"])
            if len(salt) != SALT_BYTES:
                raise ValueError("salt of the wrong length")
            records = {str(digest): float(moment) for digest, moment in content["confirmed"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            logger.warning("Ignoring the malformed confirmed-keys file %s (%s).", self.path, error)
            return None, {}
        return salt, records

    @staticmethod
    def _digest(salt: bytes, key: str) -> str:
        return hmac.new(salt, key.encode(), hashlib.sha256).hexdigest()

    def confirmed_at(self, key: str) -> float | None:
        """When ``key`` was last confirmed for this package (Unix time), or ``None``."""
        salt, records = self._read()
        if salt is None:
            return None
        return records.get(self._digest(salt, key))

    def record(self, key: str, moment: float) -> None:
        """Stores that ``key`` was confirmed at ``moment``; drops records older than any time-to-live would use."""
        keep_s = max(settings.KEY_CONFIRMATION_TTL.get(), settings.OFFLINE_CONFIRMATION_TTL.get())
        self._update(lambda salt, records: records.__setitem__(self._digest(salt, key), moment), keep_s)

    def forget(self, key: str) -> None:
        """Deletes the record of ``key`` (a refused key is no longer trusted offline)."""
        if self.path.exists():
            self._update(lambda salt, records: records.pop(self._digest(salt, key), None), None)

    def _update(self, change: Callable[[bytes, dict[str, float]], Any], keep_s: float | None) -> None:
        try:
            with exclusive_file_lock(self.path.with_name(f"{self.path.name}.lock")):
                salt, records = self._read()
                salt = salt or os.urandom(SALT_BYTES)
                change(salt, records)
                if keep_s is not None:
                    oldest = now() - keep_s
                    records = {digest: moment for digest, moment in records.items() if moment >= oldest}
                newest = sorted(records.items(), key=lambda item: item[1])[-MAX_CONFIRMED_KEYS:]
                content = {
                    "format": KEYS_FILE_FORMAT,
                    "hash": KEYS_FILE_HASH,
                    "salt": salt.hex(),
                    "confirmed": dict(newest),
                }
                write_atomically(self.path, json.dumps(content, indent=1).encode())
        except OSError as error:
            logger.warning(
                "Could not update the confirmed-keys file %s (%s): other processes and offline use will ask for the "
                "key to be confirmed again. Make the cache folder writable (%s).",
                self.path,
                error.strerror or error,
                settings.CACHE_DIR.name,
            )


def _duration(seconds: float) -> str:
    """``7 days``, ``1.5 h``, ``60 s``."""
    if seconds >= 86400:
        return f"{round(seconds / 86400, 1):g} days"
    if seconds >= 3600:
        return f"{round(seconds / 3600, 1):g} h"
    return f"{round(seconds, 1):g} s"


class ModelAccess:
    """The authorisation of API keys for one cached Roboflow model (see the module docstring).

    Args:
        model_id: ``project/version``, for messages.
        package: the package folder (``<cache>/roboflow/<project>/<version>``); the records sit beside it.
        api: the API base URL; answers remembered in memory are per API.
    """

    def __init__(self, model_id: str, package: Path, api: str) -> None:
        self.model_id = model_id
        self.scope = (api, str(package))
        self.keys = ConfirmedKeys.beside(package)

    def remembered(self, key: str) -> bool:
        """``True`` when this process remembers a confirmation of ``key``; ``False`` when it remembers nothing.

        Raises:
            RoboflowUnauthorizedError, RoboflowModelNotFoundError: a remembered refusal, replayed.
        """
        answer = ANSWERS.get(self.scope, key)
        if answer is None:
            return False
        if answer.refusal is not None:
            error_type, message, status = answer.refusal
            raise error_type(message, status)
        return True

    def authorize(self, key: str, ask_api: Callable[[], object]) -> None:
        """Lets ``key`` use the cached package, or raises; ``ask_api`` makes the authorised API call with the key.

        A remembered answer is used as it is; a record on disk younger than the confirmation time-to-live is
        trusted; otherwise the API is asked (once for concurrent requests with the same key). When it cannot be
        asked (``OFFLINE_MODE``, the API unreachable or failing), a record younger than the offline time-to-live is
        enough.

        Raises:
            RoboflowUnauthorizedError: the API refused the key (401, 403; also 402, 423), now or remembered.
            RoboflowModelNotFoundError: the API does not show the model to this key (404).
            RoboflowKeyNotConfirmedError: the API cannot be asked and the key was not confirmed recently enough.
        """
        if self.remembered(key):
            return
        with ANSWERS.one_at_a_time(self.scope, key):
            if not self.remembered(key):  # else another thread asked meanwhile
                self._authorize(key, ask_api)

    def _authorize(self, key: str, ask_api: Callable[[], object]) -> None:
        moment = now()
        confirmed_at = self.keys.confirmed_at(key)
        if confirmed_at is not None and confirmed_at > moment + CLOCK_SKEW_S:
            confirmed_at = None  # dated in the future: not to be trusted for any length of time
        if settings.OFFLINE_MODE.get():
            self._offline(key, confirmed_at, moment, f"{settings.OFFLINE_MODE.name} is on")
            return
        ttl = settings.KEY_CONFIRMATION_TTL.get()
        if confirmed_at is not None and moment - confirmed_at < ttl:
            ANSWERS.put(self.scope, key, _Answer(expires_at=confirmed_at + ttl))
            return
        try:
            self.ask(key, ask_api)
        except (RoboflowUnauthorizedError, RoboflowModelNotFoundError):
            raise
        except RoboflowAPIError as error:  # unreachable, 5xx after the retries, an unreadable answer
            self._offline(key, confirmed_at, moment, f"the Roboflow API could not be asked: {error}")
            logger.warning(
                "Roboflow API could not confirm an API key for '%s'; serving it on its confirmation of %s ago.",
                self.model_id,
                _duration(moment - (confirmed_at or moment)),
            )

    def ask(self, key: str, call: Callable[[], T]) -> T:
        """Runs ``call``, an API call authorised with ``key`` (the metadata request, or the whole download), and
        remembers its answer: a success confirms the key; 401, 403 and 404 refuse it."""
        try:
            result = call()
        except (RoboflowUnauthorizedError, RoboflowModelNotFoundError) as error:
            if error.status in REFUSAL_STATUSES:
                self._refused(key, error)
            raise
        moment = now()
        ttl = settings.KEY_CONFIRMATION_TTL.get()
        if ttl > 0:
            ANSWERS.put(self.scope, key, _Answer(expires_at=moment + ttl))
        self.keys.record(key, moment)
        return result

    def _refused(self, key: str, error: RoboflowAPIError) -> None:
        ttl = settings.KEY_REFUSAL_TTL.get()
        if ttl > 0:
            replay = f"{error} (This answer is remembered for {_duration(ttl)}, {settings.KEY_REFUSAL_TTL.name}.)"
            ANSWERS.put(self.scope, key, _Answer(now() + ttl, (type(error), replay, error.status)))
        else:
            ANSWERS.forget(self.scope, key)
        self.keys.forget(key)

    def _offline(self, key: str, confirmed_at: float | None, moment: float, reason: str) -> None:
        """Lets ``key`` in on its record alone, or raises :class:`RoboflowKeyNotConfirmedError`."""
        offline_ttl = settings.OFFLINE_CONFIRMATION_TTL.get()
        if confirmed_at is not None and moment - confirmed_at < offline_ttl:
            until = min(confirmed_at + offline_ttl, moment + settings.KEY_CONFIRMATION_TTL.get())
            if until > moment:
                ANSWERS.put(self.scope, key, _Answer(expires_at=until))
            return
        when = (
            "before"
            if confirmed_at is None
            else f"since {_duration(moment - confirmed_at)} (longer than {_duration(offline_ttl)})"
        )
        raise RoboflowKeyNotConfirmedError(
            f"The Roboflow model '{self.model_id}' is cached here, but this API key has not been confirmed for it "
            f"{when}, and the Roboflow API cannot confirm it now ({reason}). Use the key once with network access "
            f"(a confirmed key then works offline for {_duration(offline_ttl)}, "
            f"{settings.OFFLINE_CONFIRMATION_TTL.name}), or retry when the API is reachable."
        )
