"""The stand-in GPU for processes a test starts (CLI runs, mpirun/torchrun ranks).

With this folder on PYTHONPATH and JEOPARDA_STANDIN_GPUS=N set, every Python process puts the
stand-in CUDA runtime of tests/standin_cuda.py (N boards) and its NVML in place as soon as
``jeoparda.devices`` is imported; CUDA_VISIBLE_DEVICES filters the boards as the driver would.
Without the variable it does nothing.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys

_TARGET = "jeoparda.devices"


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds ``jeoparda.devices`` as usual, then installs the stand-in once the module has run."""

    def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):  # type: ignore[no-untyped-def]
            run(module)
            _install(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _install(devices) -> None:  # type: ignore[no-untyped-def]
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if here not in sys.path:
        sys.path.append(here)  # the repository root, for tests.standin_cuda
    from tests.standin_cuda import Board, StandInCuda, standin_nvml

    runtime = StandInCuda(boards=[Board() for _ in range(int(os.environ["JEOPARDA_STANDIN_GPUS"]))])
    runtime.energy_per_read_mj = 1000
    devices.RUNTIME = runtime
    sys.modules["pynvml"] = standin_nvml(runtime)  # type: ignore[assignment]


if os.environ.get("JEOPARDA_STANDIN_GPUS"):
    sys.meta_path.insert(0, _AfterImport())
