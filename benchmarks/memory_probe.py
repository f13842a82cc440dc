"""Where the server's resident memory goes under load: a leak, or memory malloc keeps (issue 13).

``python -m benchmarks.memory_probe --requests 1500 --out memory-probe.json`` starts ``workflows-yolov5-seg serve``'s
server (:func:`workflows_yolov5_seg.server.serve`, so with its allocator settings) in a child process that answers
two signals, drives it with :mod:`benchmarks.loadtest`, and reads, at every ``--sample-every`` requests, after the
load, and after ``malloc_trim(0)``, inside the server:

- ``rss_mib``: VmRSS;
- glibc's ``mallinfo2()`` over all arenas: ``heap_mib`` (``arena``: heap memory obtained with ``brk`` / ``mmap``ed
  heaps), ``mapped_mib`` (``hblkhd``: blocks served by their own ``mmap``), ``in_use_mib`` (``uordblks + hblkhd``:
  what the program holds) and ``free_mib`` (``fordblks``: freed memory malloc keeps in its heaps);
- ``pymalloc_blocks`` (``sys.getallocatedblocks()``: Python objects alive) and the thread count.

After the load (``after_load``, then ``idle`` 5 s later) it runs a full garbage collection and describes what it
found unreachable (``collected``: objects by type, numpy bytes, the frames and exceptions among them), then calls
``malloc_trim(0)`` (``trimmed``).

RSS that grows with ``free_mib`` while ``in_use_mib`` and ``pymalloc_blocks`` stay flat, and that ``malloc_trim``
gives back, is memory glibc keeps, not a leak; memory in use that a full collection frees was cyclic garbage waiting
for Python's oldest generation. Only that garbage is walked, never all the server's objects (``gc.get_objects()`` in
a serving process makes OpenCV's bindings fail in other threads: they fill tuples the walk then references).

Linux with glibc only. ``WORKFLOWS_YOLOV5_SEG_MMAP_THRESHOLD=0`` in the environment gives glibc's own dynamic
threshold (the behaviour before ``serve`` fixed it).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import loadtest

REPORT_ENV = "WORKFLOWS_YOLOV5_SEG_MEMORY_PROBE_REPORT"
MIB = 1024 * 1024


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc >= 2.33)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def memory_state(tag: str) -> dict[str, Any]:
    """This process's memory as malloc and the kernel see it (glibc)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    rss = loadtest.resident_memory_kib(os.getpid()) or {}
    return {
        "tag": tag,
        "rss_mib": round(rss.get("VmRSS", 0) / 1024, 1),
        "heap_mib": round(info.arena / MIB, 1),
        "mapped_mib": round(info.hblkhd / MIB, 1),
        "in_use_mib": round((info.uordblks + info.hblkhd) / MIB, 1),
        "free_mib": round(info.fordblks / MIB, 1),
        "pymalloc_blocks": sys.getallocatedblocks(),
        "threads": threading.active_count(),
    }


def cyclic_garbage() -> dict[str, Any]:
    """Runs a full garbage collection, keeping what it finds unreachable long enough to describe it.

    Only the garbage is walked (objects no thread can reach), never every object of the process.
    """
    import gc

    import numpy as np

    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        unreachable = gc.collect()
        garbage = list(gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    types = Counter(type(item).__name__ for item in garbage)
    # numpy arrays are not tracked by the collector: count those the garbage refers to (locals of its frames, ...)
    arrays = {}
    for item in garbage:
        for referent in gc.get_referents(item):
            if isinstance(referent, np.ndarray):
                owner = referent.base if isinstance(referent.base, np.ndarray) else referent
                arrays[id(owner)] = owner
    arrays = list(arrays.values())
    frames = Counter(
        f"{Path(item.f_code.co_filename).name}:{item.f_code.co_name}"
        for item in garbage
        if type(item).__name__ == "frame"
    )
    errors = Counter(type(item).__name__ for item in garbage if isinstance(item, BaseException))
    summary = {
        "unreachable_objects": unreachable,
        "numpy_arrays": len(arrays),
        "numpy_mib": round(sum(array.nbytes for array in arrays) / MIB, 1),
        "bytes_mib": round(sum(len(item) for item in garbage if isinstance(item, (bytes, bytearray))) / MIB, 1),
        "types": dict(types.most_common(12)),
        "frames": dict(frames.most_common(12)),
        "exceptions": dict(errors.most_common(8)),
    }
    del garbage, arrays
    gc.collect()  # the garbage, released again, is freed now
    return summary


def child(port: int, model_root: Path, workdir: Path) -> None:
    """The server, answering two signals by appending a JSON line to the file named by ``REPORT_ENV``: SIGUSR1, the
    memory state tagged with the text of ``<report>.tag``; SIGUSR2, with the tag ``collect``, a full garbage
    collection (what it found, then the state ``collected``), with ``trim``, ``malloc_trim(0)`` then ``trimmed``."""
    from workflows_yolov5_seg import server

    report = Path(os.environ[REPORT_ENV])
    tag_file = report.with_suffix(".tag")

    def write(tag: str, action: str | None = None) -> None:
        extra = {}
        if action == "collect":
            extra["garbage"] = cyclic_garbage()
        elif action == "trim":
            ctypes.CDLL(None).malloc_trim(0)
        state = memory_state(tag) | extra
        with open(report, "a", encoding="utf-8") as file:
            file.write(json.dumps(state) + "\n")

    def tag() -> str:
        return tag_file.read_text(encoding="utf-8").strip() if tag_file.exists() else "?"

    def on_state(*_: Any) -> None:
        threading.Thread(target=write, args=(tag(),)).start()

    def on_action(*_: Any) -> None:
        action = tag()
        threading.Thread(target=write, args=({"collect": "collected", "trim": "trimmed"}[action], action)).start()

    signal.signal(signal.SIGUSR1, on_state)
    signal.signal(signal.SIGUSR2, on_action)
    server.serve(host="127.0.0.1", port=port, workdir=workdir, log_level="warning", model_roots=[model_root])


def ask(pid: int, report: Path, tag: str, count: int, timeout_s: float = 120.0, action: bool = False) -> None:
    """Signals the server (SIGUSR2 for the actions ``collect`` and ``trim``) and waits for its answer."""
    report.with_suffix(".tag").write_text(tag, encoding="utf-8")
    os.kill(pid, signal.SIGUSR2 if action else signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if report.exists() and len(report.read_text(encoding="utf-8").splitlines()) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not report its memory within {timeout_s:.0f} s")


def run_probe(requests: int, sample_every: int, concurrency: int, max_wall_s: float, log: Any = print) -> dict:
    if not sys.platform.startswith("linux"):
        raise RuntimeError("the probe reads glibc's malloc statistics: Linux with glibc only")
    workdir = Path(tempfile.mkdtemp(prefix="workflows-yolov5-seg-memory-probe-"))
    report = workdir / "memory.jsonl"
    port = loadtest.free_port()
    model = loadtest.DEFAULT_MODEL
    environment = {
        **os.environ,
        REPORT_ENV: str(report),
        loadtest.MAX_IMAGE_PIXELS_ENV: str(loadtest.DEFAULT_SERVER_PIXEL_LIMIT),
        "PYTHONUNBUFFERED": "1",
    }
    code = f"from benchmarks.memory_probe import child; child({port}, {str(model.parent)!r}, {str(workdir)!r})"
    with open(workdir / "server.log", "wb") as server_log:
        process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=server_log,
            stderr=subprocess.STDOUT,
            env=environment,
            stdin=subprocess.DEVNULL,
            cwd=str(loadtest.REPOSITORY),
        )
    server = loadtest.Server(f"http://127.0.0.1:{port}", process.pid, process, workdir / "server.log")
    samples = [0]
    lock = threading.Lock()
    try:
        deadline = time.monotonic() + 300
        while loadtest_status(server.url) != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{server.log_tail()}")
            time.sleep(0.5)
        ask(process.pid, report, "ready", 1)
        samples[0] = 1

        def on_sample(done: int) -> None:
            if done % sample_every == 0:
                with lock:
                    samples[0] += 1
                    ask(process.pid, report, str(done), samples[0])

        settings = loadtest.Settings(
            requests=requests,
            concurrency=concurrency,
            max_wall_s=max_wall_s,
            url=server.url,
            server_pid=process.pid,
            rss_every=sample_every,
            on_sample=on_sample,
        )
        load = loadtest.run_load_test(settings, log=log)
        ask(process.pid, report, "after_load", samples[0] + 1)
        time.sleep(5)
        ask(process.pid, report, "idle", samples[0] + 2)
        ask(process.pid, report, "collect", samples[0] + 3, action=True)
        ask(process.pid, report, "trim", samples[0] + 4, action=True)
    finally:
        loadtest.stop_server(server)
    states = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    return {
        "what": "memory inside the server under load (benchmarks/memory_probe.py)",
        "mmap_threshold_setting": os.environ.get("WORKFLOWS_YOLOV5_SEG_MMAP_THRESHOLD", "unset (serve's default)"),
        "states": states,
        "load": {
            key: load[key]
            for key in ("ok", "sent", "status_counts", "good_ok", "wall_s", "server_rss_after_warmup", "provenance")
        },
    }


def loadtest_status(url: str) -> int | None:
    try:
        return loadtest.http_get(f"{url}/readiness", timeout=2)
    except OSError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500, help="good workflow requests (default 1500)")
    parser.add_argument("--sample-every", type=int, default=250, help="read the server's memory every N requests")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-wall-s", type=float, default=1800.0)
    parser.add_argument("--out", type=Path, default=Path("memory-probe.json"))
    arguments = parser.parse_args(argv)
    result = run_probe(arguments.requests, arguments.sample_every, arguments.concurrency, arguments.max_wall_s)
    arguments.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for state in result["states"]:
        print(
            f"{state['tag']:>10}: RSS {state['rss_mib']:7.1f} MiB, malloc in use {state['in_use_mib']:6.1f}, free in "
            f"its heaps {state['free_mib']:6.1f}, heaps {state['heap_mib']:6.1f}, mapped {state['mapped_mib']:6.1f}, "
            f"pymalloc blocks {state['pymalloc_blocks']}"
        )
    print(f"report: {arguments.out}")
    return 0 if result["load"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
