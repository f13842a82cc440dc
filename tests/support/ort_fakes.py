"""Make the installed (CPU) onnxruntime look like onnxruntime-gpu, for tests of provider selection and of the
silent-CPU-fallback detection. Sessions really run, on the CPU; only the provider lists are made up."""

from __future__ import annotations

import onnxruntime
import pytest

REAL_SESSION = onnxruntime.InferenceSession


class ProviderScenario:
    """What onnxruntime offers (``available``) and what a session then reports using (``reported``).

    ``reported=None``: the session uses the requested providers that are available (a working GPU install).
    ``reported=["CPUExecutionProvider"]``: the GPU provider failed to load and ONNX Runtime fell back silently, as it
    does when CUDA / cuDNN libraries are missing.
    """

    def __init__(self, available: list[str], reported: list[str] | None = None, preload: bool = True) -> None:
        self.available = available
        self.reported = reported
        self.preload = preload
        self.requested: list[list] = []
        self.preloads = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> ProviderScenario:
        scenario = self

        class Session:
            def __init__(self, path: str, sess_options: object = None, providers: list | None = None) -> None:
                scenario.requested.append(list(providers or []))
                self._session = REAL_SESSION(path, sess_options=sess_options, providers=["CPUExecutionProvider"])
                names = [p if isinstance(p, str) else p[0] for p in providers or []]
                self._providers = scenario.reported if scenario.reported is not None else names

            def get_providers(self) -> list[str]:
                return list(self._providers)

            def __getattr__(self, name: str) -> object:
                return getattr(self._session, name)

        def preload_dlls(*args: object, **kwargs: object) -> None:
            scenario.preloads += 1

        monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(self.available))
        monkeypatch.setattr(onnxruntime, "InferenceSession", Session)
        if self.preload:
            monkeypatch.setattr(onnxruntime, "preload_dlls", preload_dlls, raising=False)
        return self


GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_BUILD = ["AzureExecutionProvider", "CPUExecutionProvider"]
