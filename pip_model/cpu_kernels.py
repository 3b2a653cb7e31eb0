"""Which CPU kernels the math libraries run, pinned so that the instruction set of the CPU does not change what
training and evaluation compute.

PyTorch's own kernels (ATen), oneDNN (the convolutions) and MKL (matrix products) each pick their code path by the
instruction set of the CPU they run on, and paths of different vector widths add in different orders: a 1,000-step
training of ``pip_restormer_tiny`` ended up to 1.8 dB apart per task on an Intel Xeon and an AMD EPYC, both with
AVX-512. Pinned, every library runs its AVX2 path (AVX2 is on every x86 server CPU since 2013) and MKL its
reproducible branch, whatever the CPU offers beyond that (``tests/test_cpu_kernels.py`` trains and evaluates under
an emulated AVX2-only CPU and checks the bits). Across vendors it is not yet enough: pinned, an Intel Xeon and an
AMD EPYC still trained rows up to 0.58 dB apart per task (docs/04-compare-runs.md says what was ruled out). The pin
costs about 12% of PIP tiny's training speed on the AMD EPYC (``bench/model_step.py --kernels both`` times the
paper-size models).

The libraries read these settings once, before their first kernel runs, so :func:`pin` runs when ``pip_model`` is
imported and sets only what the environment leaves unset: a variable set by hand wins. ``PIP_CPU_KERNELS=native``
turns the pin off (each library's fastest path for this CPU; results then depend on the CPU model). The thread
count changes the bits too (reductions split across threads): runs compare at equal ``train_run.threads``.

This module imports nothing heavy: ``pip_model`` loads it on every import.
"""

from __future__ import annotations

import os
import platform
import warnings
from collections.abc import MutableMapping
from typing import Any

MODE_VARIABLE = "PIP_CPU_KERNELS"
MODES = ("reproducible", "native")
# Each library's own switch, at its AVX2 level (MKL's COMPATIBLE branch is the one it documents as identical on
# every x86 CPU; its AVX2 branch is not promised on AMD ones).
REPRODUCIBLE = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE"}
# What the libraries find on a CPU whose widest vectors are AVX2's (an AMD EPYC before Zen 4, an Intel Xeon before
# Skylake-SP): set on a wider CPU, these make it compute as that one would (tests/test_cpu_kernels.py,
# bench/reproducible.py).
AVX2_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell",
            "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL "
                                        "AVX512_SPR"}
# What torch.backends.cpu.get_cpu_capability() reports for each ATEN_CPU_CAPABILITY value.
ATEN_LEVELS = {"default": "DEFAULT", "avx2": "AVX2", "avx512": "AVX512", "zvector": "ZVECTOR", "sve256": "SVE256"}


def mode(environ: MutableMapping[str, str] = os.environ) -> str:
    """The kernel choice asked for by ``PIP_CPU_KERNELS`` (``reproducible`` when unset).

    Raises:
        ValueError: any other value, naming the variable and the values allowed.
    """
    value = environ.get(MODE_VARIABLE, "") or MODES[0]
    if value not in MODES:
        raise ValueError(f"{MODE_VARIABLE}={value!r}: use one of {', '.join(MODES)}")
    return value


def pin(environ: MutableMapping[str, str] = os.environ) -> None:
    """Sets the libraries' variables to their reproducible values where ``environ`` leaves them unset (nothing under
    ``PIP_CPU_KERNELS=native``). Must run before torch runs its first kernel."""
    if mode(environ) == "reproducible":
        for name, value in REPRODUCIBLE.items():
            environ.setdefault(name, value)


def settings() -> dict[str, Any]:
    """What this process runs, as a run records it: the mode, each library's level (as the library reports it where
    it can) and the thread count. The same on every CPU when the pin held; imports torch."""
    import torch

    return {"mode": mode(), "aten": torch.backends.cpu.get_cpu_capability(),
            "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "native"),
            "mkl_cbwr": os.environ.get("MKL_CBWR", "AUTO"), "threads": torch.get_num_threads()}


def check() -> dict[str, Any]:
    """:func:`settings`, with a warning when the pin asked for did not take (torch ran a kernel before ``pip_model``
    was imported, so ATen kept this CPU's own level): results will then differ from other CPUs'."""
    found = settings()
    wanted = ATEN_LEVELS.get(os.environ.get("ATEN_CPU_CAPABILITY", ""), None)
    if found["mode"] == "reproducible" and wanted is not None and found["aten"] != wanted:
        warnings.warn(f"torch runs its {found['aten']} kernels, not the pinned {wanted}: it ran a kernel before "
                      "pip_model was imported, so results will not match other CPUs bit for bit; import pip_model "
                      "first (or set ATEN_CPU_CAPABILITY before starting Python)", RuntimeWarning, stacklevel=2)
    return found


def describe(found: dict[str, Any]) -> str:
    """One line for a stage's log, such as
    ``CPU kernels AVX2 (ATen), AVX2 (oneDNN), COMPATIBLE (MKL), 2 threads: reproducible``."""
    return (f"CPU kernels {found['aten']} (ATen), {found['onednn_max_isa']} (oneDNN), {found['mkl_cbwr']} (MKL), "
            f"{found['threads']} threads: {found['mode']}")


def machine() -> dict[str, str]:
    """The CPU this process runs on, for the record (never part of an output whose hash DVC compares)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            name = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), name)
    except OSError:
        pass
    return {"cpu": name, "cores": str(os.cpu_count() or 0)}
