"""Which implementation runs the kernels, and with how many threads.

The compiled extension is used when it is built; ``FASTDROP_BACKEND=numpy|cython``
forces one.  Asking for ``cython`` when it is not built raises ImportError instead of
falling back silently.  Both backends give the same bits, so the choice is about speed.

The compiled backend comes in ISA variants built from one source (``_kernels`` the
baseline, ``_kernels_avx2``, ``_kernels_avx512``); the fastest one the CPU runs is
loaded, or the one ``FASTDROP_ISA=baseline|avx2|avx512`` names (an error when it is
not built or the CPU cannot run it).  Every variant gives the same bits.
"""
import contextlib
import importlib
import numbers
import os

import numpy as np

from . import _numpy_backend

BACKENDS = ("cython", "numpy")
MAX_THREADS = 1024           # an OpenMP team far beyond any core count is a mistake, not a request


ISAS = ("baseline", "avx2", "avx512")


def _variant_module(isa):
    return "fastdrop._kernels" if isa == "baseline" else f"fastdrop._kernels_{isa}"


def _load_compiled():
    """The compiled kernel module of the chosen ISA variant, or the ImportError that says why there is none.

    An invalid ``FASTDROP_ISA`` raises ValueError; a valid one this build or CPU cannot
    provide raises ImportError: a forced variant never falls back silently."""
    requested = os.environ.get("FASTDROP_ISA", "").strip().lower()
    if requested and requested not in ISAS:
        raise ValueError(f"FASTDROP_ISA must be one of {', '.join(ISAS)}, got {os.environ['FASTDROP_ISA']!r}")
    try:
        baseline = importlib.import_module(_variant_module("baseline"))
    except ImportError as exc:
        if requested:
            raise ImportError(f"the cython backend is not available, and FASTDROP_ISA={requested} needs it: {exc}") from exc
        return None, exc
    runnable = baseline.cpu_isas()
    if requested:
        if requested not in runnable:
            raise ImportError(f"FASTDROP_ISA={requested}: this CPU cannot run it (it runs {', '.join(runnable)})")
        try:
            return importlib.import_module(_variant_module(requested)), None
        except ImportError as exc:
            raise ImportError(f"FASTDROP_ISA={requested}: that variant is not built on this platform: {exc}") from exc
    for isa in reversed(runnable[1:]):
        try:
            return importlib.import_module(_variant_module(isa)), None
        except ImportError:         # variant not built here (another architecture or compiler)
            continue
    return baseline, None


_compiled, _compiled_error = _load_compiled()
_active = None
_num_threads = 1


def _module_for(name):
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "numpy":
        return _numpy_backend
    if _compiled is None:
        raise ImportError(f"the cython backend is not available: {_compiled_error}")
    return _compiled


def set_backend(name):
    """Select ``"cython"`` or ``"numpy"`` for every later call."""
    global _active
    _active = (name, _module_for(name))


def backend():
    """The name of the backend in use: ``"cython"`` or ``"numpy"``."""
    return _active[0]


def kernels():
    """The module implementing the kernels of the active backend."""
    return _active[1]


@contextlib.contextmanager
def use_backend(name):
    """Context manager running its body on backend ``name``, then restoring the previous one."""
    previous = _active[0]
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def compiled_available():
    """True when the compiled extension imported."""
    return _compiled is not None


def isa():
    """The instruction-set variant of the compiled kernels in use ("numpy" on that backend)."""
    return getattr(_active[1], "ISA", "baseline") if _active[0] == "cython" else "numpy"


def openmp():
    """True when the compiled kernels were built with OpenMP."""
    return bool(getattr(_compiled, "OPENMP", False))


def set_num_threads(n):
    """Threads used by the compiled kernels on large arrays (results never depend on it)."""
    global _num_threads
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"num_threads must be an integer in [1, {MAX_THREADS}], got {n!r}")
    _num_threads = int(n)


def get_num_threads():
    """The number of threads the compiled kernels may use."""
    return _num_threads


def _from_env():
    name = os.environ.get("FASTDROP_BACKEND", "").strip().lower()
    if name:
        set_backend(name)
    else:
        set_backend("cython" if _compiled is not None else "numpy")
    threads = os.environ.get("FASTDROP_NUM_THREADS", "").strip()
    if threads:
        try:
            value = int(threads)
        except ValueError:
            raise ValueError(f"FASTDROP_NUM_THREADS must be an integer >= 1, got {threads!r}") from None
        set_num_threads(value)


_from_env()
