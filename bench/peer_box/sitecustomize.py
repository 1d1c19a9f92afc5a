"""Loaded by `python` at start-up when this folder is on PYTHONPATH (bench/bench_peers.py puts it there).

Makes the REAL `pynvml` module answer as a GPU box without a GPU: the functions tests/fake_pynvml.py
implements answer from its fake box (GPUSPEND_PEER_GPUS H100s, half of them busy with one process each);
every other `nvml*` function raises the real NVMLError_NotSupported, as a driver does for a query it lacks.
gpuspend, nvitop and gpustat all import this same patched module, so they see the same box.
"""

from __future__ import annotations

import os
import sys

_root = os.environ.get("GPUSPEND_PEER_ROOT")
if _root:
    if _root not in sys.path:
        sys.path.append(_root)
    try:
        import pynvml as _real

        from tests.fake_pynvml import FakeNvml

        _fake = FakeNvml.h100_box(int(os.environ.get("GPUSPEND_PEER_GPUS", "4")))

        def _not_supported(*_a: object, **_k: object) -> None:
            raise _real.NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)

        for _name in dir(_real):
            if not _name.startswith("nvml") or not callable(getattr(_real, _name)):
                continue
            if _name.startswith(("nvmlMemory_", "nvmlFriendly", "nvmlStructToFriendly", "nvmlExceptionClass")):
                continue
            setattr(_real, _name, getattr(_fake.module, _name, _not_supported))
        # Queries the peers need that gpuspend's adapter does not make.
        _real.nvmlDeviceGetIndex = lambda h: h.gpu.index
        # Some tools initialise with flags or the v2 entry point.
        _real.nvmlInitWithFlags = lambda _flags=0: _fake.module.nvmlInit()
        _real.nvmlInit_v2 = _fake.module.nvmlInit
        # nvitop and gpustat replace nvmlDeviceGetMemoryInfo with their own ctypes call into libnvidia-ml
        # (which this box has not got): give them back the box's answer once their module has loaded.
        import importlib.abc
        import importlib.machinery

        _PEER_NVML = ("gpustat.nvml", "nvitop.api.libnvml")

        class _AfterPeerNvml(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):  # noqa: ANN001, ANN201
                if name not in _PEER_NVML:
                    return None
                spec = importlib.machinery.PathFinder.find_spec(name, path)
                if spec is None or spec.loader is None:
                    return spec
                run = spec.loader.exec_module

                def exec_module(module):  # noqa: ANN001, ANN202
                    run(module)
                    module.nvmlDeviceGetMemoryInfo = _fake.module.nvmlDeviceGetMemoryInfo
                    _real.nvmlDeviceGetMemoryInfo = _fake.module.nvmlDeviceGetMemoryInfo

                spec.loader.exec_module = exec_module
                return spec

        sys.meta_path.insert(0, _AfterPeerNvml())
    except Exception as exc:  # a benchmark aid: never break the interpreter
        print(f"peer_box: fake NVML not installed: {exc}", file=sys.stderr)
