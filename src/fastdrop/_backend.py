"""Which implementation runs the kernels, and with how many threads.

The compiled extension is used when it is built; ``FASTDROP_BACKEND=numpy|cython``
forces one.  Asking for ``cython`` when it is not built raises ImportError instead of
falling back silently.  Both backends give the same bits, so the choice is about speed.

The compiled backend is one extension module, ``fastdrop._kernels``, holding the kernels
of every ISA variant of ``_isa.py`` that was built (one ``Kernels`` object each); the
fastest built one whose CPU features the machine has is used, or the one
``FASTDROP_ISA=baseline|avx2|avx512`` names (an error when it is not built or the CPU
cannot run it).  Every variant gives the same bits.

Two kinds of control, for the backend and for the kernel thread count alike:

* ``set_backend`` and ``set_num_threads`` change the process-wide setting, seen by every
  thread and task that has no override of its own.
* ``use_backend`` and ``use_num_threads`` are context managers that override the setting
  for the current context only (``contextvars``): another thread or asyncio task running
  at the same time never sees the override, and leaving the block restores exactly what
  this context had before, whatever other threads did meanwhile.  An asyncio task copies
  its creator's context, so a task created inside the block keeps the override; a
  ``threading.Thread`` started inside the block does not, nor does a thread pool such as
  dask's threaded scheduler: a new thread starts with an empty context (unless Python 3.14+
  runs with ``-X thread_inherit_context``, the default of free-threaded builds) and uses
  the process-wide settings.  A ``set_*`` call inside a ``use_*`` block changes
  the process-wide setting, which this context sees once the block ends.

Fork.  GNU OpenMP (libgomp) keeps a pool of worker threads per thread that ran a parallel
region, and that pool does not survive ``fork``: the child's first multi-threaded region
waits forever for workers that do not exist.  So before every ``os.fork`` (``os.fork``
itself, the "fork" start method of ``multiprocessing`` and ``concurrent.futures``,
PyTorch DataLoader workers) fastdrop asks the OpenMP runtime to end the forking thread's
pool (``omp_pause_resource_all``, OpenMP 5.0; the parent starts a new pool on its next
large call).  The child then keeps the parent's settings and may use any thread count.
When the runtime cannot end the pool (it lacks that function, or refuses), the child is
made single-threaded instead: ``get_num_threads()`` is 1 there, overrides inherited from
the parent are dropped, and asking for more than one thread raises RuntimeError.  Results
never depend on the thread count, so one thread is always correct.  Fork hooks run only
for forks made through Python (``os.fork``); a fork from C code that then runs
multi-threaded kernels in the child is not covered.  The "spawn" start method imports
fastdrop afresh and reads ``FASTDROP_NUM_THREADS``; "forkserver" workers are forks, covered
as above, of a server that did the same.

The default thread count (``default_num_threads``): ``FASTDROP_NUM_THREADS`` (an error at
import when it is not an integer in [1, MAX_THREADS]: it is fastdrop's own variable), else
``OMP_NUM_THREADS`` (a warning, and ignored, when fastdrop cannot use it: other libraries
read it too), else the CPUs available to the process (``available_cpus``); 1 without
OpenMP.  Whatever the count, a call on fewer than PARALLEL_MIN_BLOCKS blocks (256 blocks of
1024 elements, ``_walkers.c``) runs on the calling thread alone.  threadpoolctl lists and
limits the count once it is imported (``register_with_threadpoolctl``, ``_threadpool.py``).
"""
import contextlib
import contextvars
import functools
import importlib
import importlib.util
import os
import sys
import warnings
from typing import Iterator, Optional

from . import _isa, _memory, _numpy_backend
from ._validation import check_int

BACKENDS = ("cython", "numpy")
MAX_THREADS = 1024           # an OpenMP team far beyond any core count is a mistake, not a request


ISAS = _isa.NAMES


def _load_compiled():
    """(the compiled module, the Kernels of the chosen ISA variant, None), or (None, None, the
    ImportError that says why there is none).

    An invalid ``FASTDROP_ISA`` raises ValueError; a valid one this build or CPU cannot
    provide raises ImportError: a forced variant never falls back silently."""
    requested = os.environ.get("FASTDROP_ISA", "").strip().lower()
    if requested and requested not in ISAS:
        raise ValueError(f"FASTDROP_ISA must be one of {', '.join(ISAS)}, got {os.environ['FASTDROP_ISA']!r}")
    try:
        module = importlib.import_module("fastdrop._kernels")
    except ImportError as exc:
        if requested:
            raise ImportError(f"the cython backend is not available, and FASTDROP_ISA={requested} needs it: {exc}") from exc
        return None, None, exc
    runnable = _isa.runnable(module.cpu_features())
    if requested:
        if requested not in runnable:
            raise ImportError(f"FASTDROP_ISA={requested}: this CPU cannot run it (it runs {', '.join(runnable)})")
        if requested not in module.VARIANTS:
            raise ImportError(f"FASTDROP_ISA={requested}: that variant is not built on this platform "
                              f"(built: {', '.join(module.VARIANTS)})")
        return module, module.VARIANTS[requested], None
    best = [name for name in runnable if name in module.VARIANTS][-1]     # the baseline is always built
    return module, module.VARIANTS[best], None


def runnable_isas():
    """The ISA variants this CPU can execute, slowest first (each may or may not be built)."""
    return _isa.runnable(_compiled.cpu_features()) if _compiled is not None else ()


def built_isas():
    """The ISA variants the compiled module holds, slowest first."""
    return tuple(_compiled.VARIANTS) if _compiled is not None else ()


def variant(name):
    """The compiled kernels of ISA variant ``name`` (KeyError when it is not built)."""
    return _compiled.VARIANTS[name]


_compiled, _compiled_kernels, _compiled_error = _load_compiled()
if _compiled is not None and _compiled.HUGE_PAGES:        # large outputs in huge pages (_memory.py)
    _memory.use_allocator(_compiled.in_huge_pages)
_active = None                  # the process-wide (name, module), set by set_backend
_num_threads = 1                # the process-wide thread count, set by set_num_threads
_num_threads_chosen = False     # set_num_threads (or FASTDROP_NUM_THREADS) chose it, not the default
# The overrides of use_backend / use_num_threads, per context.  No default: get(global) is then
# one C call that returns the override or, in a context without one, the process-wide value.
_backend_override = contextvars.ContextVar("fastdrop_backend")
_threads_override = contextvars.ContextVar("fastdrop_num_threads")
# Why this process must stay single-threaded (a fork whose OpenMP pool was not ended), or None.
_single_threaded_because = None


def _module_for(name):
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "numpy":
        return _numpy_backend
    if _compiled is None:
        raise ImportError(f"the cython backend is not available: {_compiled_error}")
    return _compiled_kernels


def set_backend(name: str) -> None:
    """Select ``"cython"`` or ``"numpy"`` for every later call in every thread without an override.

    Parameters
    ----------
    name : {"cython", "numpy"}
        The backend: the compiled kernels or the NumPy twin (the same bits).

    Raises
    ------
    ValueError
        Another name.
    ImportError
        ``"cython"`` when the compiled extension is not available (the message says why).

    Examples
    --------
    >>> previous = fd.backend()
    >>> fd.set_backend("numpy"); fd.backend()
    'numpy'
    >>> fd.set_backend(previous)
    """
    global _active
    _active = (name, _module_for(name))


def backend() -> str:
    """The name of the backend in use here: ``"cython"`` or ``"numpy"``.

    Returns
    -------
    str
        The backend of this thread or task: its ``use_backend`` override, else the
        process-wide one.

    Examples
    --------
    >>> fd.backend() in ("cython", "numpy")
    True
    """
    return _backend_override.get(_active)[0]


def kernels():
    """The module implementing the kernels of the backend in use here (called on every dropout call)."""
    return _backend_override.get(_active)[1]


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager running its body on backend ``name`` in this context only (this thread
    or asyncio task), then restoring what this context had; other threads are not affected.

    Parameters
    ----------
    name : {"cython", "numpy"}
        The backend for the block.

    Yields
    ------
    None
        The block runs on that backend.

    Raises
    ------
    ValueError, ImportError
        As :func:`set_backend`, on entering the block.

    Examples
    --------
    >>> with fd.use_backend("numpy"):
    ...     fd.backend()
    'numpy'
    """
    token = _backend_override.set((name, _module_for(name)))
    try:
        yield
    finally:
        _backend_override.reset(token)


def compiled_available():
    """True when the compiled extension imported."""
    return _compiled is not None


def isa():
    """The instruction-set variant of the compiled kernels in use here ("numpy" on that backend)."""
    name, kernels = _backend_override.get(_active)
    return kernels.ISA if name == "cython" else "numpy"


def compiled_unavailable_because():
    """Why the compiled extension did not load, as a sentence (None when it did)."""
    return None if _compiled is not None else str(_compiled_error)


def openmp():
    """True when the compiled kernels were built with OpenMP."""
    return bool(getattr(_compiled, "OPENMP", False))


def _checked_threads(n):
    n = check_int(n, "num_threads", low=1, high=MAX_THREADS)
    if n > 1 and _single_threaded_because:
        raise RuntimeError(f"num_threads={n} is not possible in this process: {_single_threaded_because}")
    return n


def set_num_threads(n: int) -> None:
    """Threads used by the compiled kernels on large arrays, for every thread without an
    override (results never depend on it).

    Parameters
    ----------
    n : int
        At least 1.

    Raises
    ------
    TypeError
        ``n`` not an integer.
    ValueError
        ``n`` below 1 or above the limit.
    RuntimeError
        ``n > 1`` in a forked child whose OpenMP pool could not be ended before the fork.

    Examples
    --------
    >>> previous = fd.get_num_threads()
    >>> fd.set_num_threads(2); fd.get_num_threads()
    2
    >>> fd.set_num_threads(previous)
    """
    global _num_threads, _num_threads_chosen
    _num_threads = _checked_threads(n)
    _num_threads_chosen = True


def get_num_threads(default: Optional[int] = None) -> int:
    """The number of threads the compiled kernels may use here.

    Parameters
    ----------
    default : int, optional
        For integrations with a thread setting of their own (``fastdrop.torch`` passes
        ``torch.get_num_threads()``): returned, capped at 1024, when fastdrop's count was not
        chosen, i.e. when no ``use_num_threads`` block, ``set_num_threads`` call or
        ``FASTDROP_NUM_THREADS`` set it (a forked child held to one thread returns 1).

    Returns
    -------
    int
        This context's ``use_num_threads`` override, else the process-wide count (or
        ``default`` as above).

    Raises
    ------
    TypeError
        ``default`` not an integer.
    ValueError
        ``default`` below 1.

    Examples
    --------
    >>> fd.get_num_threads() >= 1
    True
    >>> with fd.use_num_threads(1):
    ...     fd.get_num_threads(default=8)
    1
    """
    if default is not None:
        default = check_int(default, "default", low=1)
    chosen = _threads_override.get(None)
    if chosen is not None:
        return chosen
    if default is None or _num_threads_chosen or _single_threaded_because:
        return _num_threads
    return min(default, MAX_THREADS)


@contextlib.contextmanager
def use_num_threads(n: int) -> Iterator[None]:
    """Context manager running its body with ``n`` kernel threads in this context only (this
    thread or asyncio task), then restoring what this context had; other threads are not affected.

    Parameters
    ----------
    n : int
        At least 1.

    Yields
    ------
    None
        The block runs with that many threads.

    Raises
    ------
    TypeError, ValueError, RuntimeError
        As :func:`set_num_threads`, on entering the block.

    Examples
    --------
    >>> with fd.use_num_threads(1):
    ...     fd.get_num_threads()
    1
    """
    # A forked single-threaded child replaces _threads_override; the block resets the variable it set.
    override = _threads_override
    token = override.set(_checked_threads(n))
    try:
        yield
    finally:
        override.reset(token)


_OMP_PAUSE_SOFT = 1             # omp_pause_soft of omp_pause_resource_t (OpenMP 5.0)
_pool_ended = False             # whether the last fork's "before" hook ended the forking thread's pool


@functools.cache
def _omp_pause_resource_all():
    """``omp_pause_resource_all`` of the OpenMP runtime the compiled kernels link, or None."""
    import ctypes               # only on the first fork: importing fastdrop stays as fast as before
    try:
        # dlsym on the extension's own handle searches its dependencies: the runtime it really uses,
        # not whichever other copy (a wheel's vendored libgomp, another package's) is loaded too.
        pause = ctypes.CDLL(_compiled.__file__).omp_pause_resource_all
    except (OSError, AttributeError):       # a runtime older than OpenMP 5.0
        return None
    pause.argtypes = [ctypes.c_int]
    pause.restype = ctypes.c_int
    return pause


def _before_fork():
    global _pool_ended
    # A child that stayed single-threaded holds a dead pool: pausing it would wait for its lost workers.
    pause = None if _single_threaded_because else _omp_pause_resource_all()
    _pool_ended = pause is not None and pause(_OMP_PAUSE_SOFT) == 0


def _after_fork_in_child():
    global _num_threads, _threads_override, _single_threaded_because
    if _pool_ended:
        return
    _single_threaded_because = _single_threaded_because or (
        "it was forked from a process whose OpenMP runtime could not end its thread pool before the fork, "
        "and a multi-threaded call would wait forever for the lost workers; use the 'spawn' or "
        "'forkserver' start method for multi-threaded workers")
    _num_threads = 1
    # Overrides copied from the parent's contexts must not apply: a new variable has none of them.
    _threads_override = contextvars.ContextVar("fastdrop_num_threads")


if openmp() and hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def _from_env():
    global _num_threads
    raw = os.environ.get("FASTDROP_BACKEND", "")
    name = raw.strip().lower()
    if not name:
        set_backend("cython" if _compiled is not None else "numpy")
    else:
        try:
            set_backend(name)
        except (ValueError, ImportError) as exc:
            raise type(exc)(f"{exc} (from the environment variable FASTDROP_BACKEND={raw!r})") from None
    raw = os.environ.get("FASTDROP_NUM_THREADS", "")
    threads = raw.strip()
    if threads:
        # Only plain decimal digits: int() would also take "+2", "2_0" and non-ASCII digits.
        if not (threads.isascii() and threads.isdigit()):
            raise ValueError(f"FASTDROP_NUM_THREADS must be an integer >= 1, got {raw!r}")
        try:
            set_num_threads(int(threads))
        except ValueError as exc:
            raise ValueError(f"{exc} (from the environment variable FASTDROP_NUM_THREADS={raw!r})") from None
    else:
        _num_threads = _checked_threads(default_num_threads())      # the default: not a choice


# --- the default thread count ------------------------------------------------------------------
def available_cpus():
    """The CPUs this process may run on: ``os.process_cpu_count()`` (Python 3.13+: the
    affinity mask, or PYTHON_CPU_COUNT), else ``len(os.sched_getaffinity(0))`` where the OS
    has it, else ``os.cpu_count()``; at least 1, at most MAX_THREADS."""
    count = None
    if hasattr(os, "process_cpu_count"):
        count = os.process_cpu_count()
    if count is None and hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    if count is None:
        count = os.cpu_count()
    return max(1, min(count or 1, MAX_THREADS))


def default_num_threads(environ=None):
    """The thread count when FASTDROP_NUM_THREADS is not set, as OpenMP and OpenBLAS users
    expect: ``OMP_NUM_THREADS`` (its first entry, the outer level, when it is a list such as
    "4,2"), else ``available_cpus()``; 1 when the compiled kernels have no OpenMP.

    OMP_NUM_THREADS belongs to every OpenMP library of the process, so an entry fastdrop
    cannot use (not an integer in [1, MAX_THREADS]) is not an import error: like libgomp and
    OpenBLAS, fastdrop ignores it, with a RuntimeWarning naming the variable and the value."""
    if not openmp():
        return 1
    environ = os.environ if environ is None else environ
    raw = environ.get("OMP_NUM_THREADS", "")
    if raw.strip():
        first = raw.split(",")[0].strip()
        if first.isascii() and first.isdigit() and 1 <= int(first) <= MAX_THREADS:
            return int(first)
        warnings.warn(f"OMP_NUM_THREADS={raw!r} is not a thread count fastdrop can use (an integer in "
                      f"[1, {MAX_THREADS}], or a list whose first entry is one); fastdrop ignores it and uses "
                      f"the {available_cpus()} CPUs available to the process", RuntimeWarning, stacklevel=2)
    return available_cpus()


def process_num_threads():
    """The process-wide thread count (``set_num_threads``'s), whatever this context's override."""
    return _num_threads


# --- threadpoolctl -------------------------------------------------------------------------------
class _ThreadpoolctlHook:
    """A meta path finder that registers fastdrop's controller once threadpoolctl is imported:
    it hands out threadpoolctl's spec with its loader wrapped so the registration runs right
    after the module has run, and then leaves ``sys.meta_path``.  ``importlib.util.find_spec``
    alone (no import) leaves it in place.  It answers None for every other module."""

    def find_spec(self, name, path=None, target=None):
        if name != "threadpoolctl":
            return None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            spec = None if finder is self or find is None else find(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisteringLoader(spec.loader, self)
                return spec
        return None


class _RegisteringLoader:
    """threadpoolctl's own loader, then the registration (duck-typed: importlib.abc costs ~30 ms)."""

    def __init__(self, loader, hook):
        self.loader, self.hook = loader, hook

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        module.__loader__ = module.__spec__.loader = self.loader       # leave no trace on the module
        if self.hook in sys.meta_path:
            sys.meta_path.remove(self.hook)
        register_with_threadpoolctl()

    def __getattr__(self, name):           # get_source, get_resource_reader, ... while it runs
        return getattr(self.loader, name)


def register_with_threadpoolctl():
    """Make threadpoolctl list and limit fastdrop's pool (``fastdrop._threadpool``): now when
    threadpoolctl is imported, else when it is.  Nothing to do without OpenMP kernels."""
    if not openmp():
        return
    if "threadpoolctl" in sys.modules:
        # threadpoolctl >= 3.5 takes third-party controllers; an older one is left alone
        if hasattr(sys.modules["threadpoolctl"], "register"):
            importlib.import_module("fastdrop._threadpool")
    elif not any(isinstance(finder, _ThreadpoolctlHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ThreadpoolctlHook())


_from_env()
register_with_threadpoolctl()


# --- streaming stores ----------------------------------------------------------------------------
# The compiled kernels write an output of at least this many bytes with streaming
# (non-temporal) stores, which skip reading each destination line into the cache before
# writing it.  The default is half the last-level cache: a pass reads its input and writes
# its output, so from there the two do not fit in the cache together and the output would
# not stay there anyway; a copy-like pass then moves two streams of memory traffic instead
# of three (bench/NOTES.md, "seventh session": at half the cache, streamed 0.85x the time of
# ordinary stores, 0.90x counting the next pass that reads the output; at a quarter, 0.98x
# and 1.01x).  Smaller outputs keep ordinary stores, so the next layer reads them from
# cache.  The bits are the same either way; the NumPy backend has no such choice.
STREAMING_FALLBACK_BYTES = 32 << 20       # the threshold where the OS reports no cache size
STREAMING_MAX_BYTES = (1 << 63) - 1       # the kernels compare int64 byte counts
_CACHE_DIR = "/sys/devices/system/cpu/cpu0/cache"
_SIZE_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def last_level_cache_bytes():
    """The size in bytes of the CPU's last-level cache, the largest cache Linux lists in
    /sys/devices/system/cpu/cpu0/cache (Python's ``os.sysconf`` has no cache-size names), or
    None where there is no such list."""
    sizes = []
    try:
        entries = os.listdir(_CACHE_DIR)
    except OSError:
        return None
    for entry in entries:
        try:
            with open(os.path.join(_CACHE_DIR, entry, "size")) as f:
                text = f.read().strip().upper()
        except OSError:
            continue
        number, unit = (text[:-1], _SIZE_SUFFIXES[text[-1]]) if text[-1:] in _SIZE_SUFFIXES else (text, 1)
        if number.isdigit():
            sizes.append(int(number) * unit)
    return max(sizes) if sizes else None


def default_streaming_threshold():
    """Half the last-level cache size in bytes (``STREAMING_FALLBACK_BYTES`` where the OS says nothing)."""
    cache = last_level_cache_bytes()
    return cache // 2 if cache else STREAMING_FALLBACK_BYTES


def set_streaming_threshold(nbytes: Optional[int] = None) -> None:
    """Outputs of at least ``nbytes`` bytes are written with streaming stores by the compiled
    kernels (process-wide; None: the default, half the last-level cache size).  0 streams
    every output, a value above any array size none.  Results never depend on it.

    Streaming (non-temporal) stores skip reading each destination line into the cache: an
    output of half the last-level cache or more would not stay there anyway, beside the
    input the same pass reads.  The NumPy backend
    has no such choice; the value is kept for the compiled module either way.  The
    environment variable ``FASTDROP_STREAMING_THRESHOLD`` sets it at import.

    Parameters
    ----------
    nbytes : int, optional
        The output size in bytes from which stores stream, in [0, 2**63 - 1]; None: half
        the last-level cache size (32 MiB where the OS reports none).

    Raises
    ------
    TypeError
        ``nbytes`` not an integer or None.
    ValueError
        ``nbytes`` below 0 or above 2**63 - 1.

    Examples
    --------
    >>> previous = fd.get_streaming_threshold()
    >>> fd.set_streaming_threshold(1 << 20); fd.get_streaming_threshold()
    1048576
    >>> fd.set_streaming_threshold(previous)
    """
    global _streaming_threshold
    value = default_streaming_threshold() if nbytes is None else check_int(nbytes, "nbytes", low=0,
                                                                            high=STREAMING_MAX_BYTES)
    if _compiled is not None:
        _compiled.set_streaming_threshold(value)
    _streaming_threshold = value


def get_streaming_threshold() -> int:
    """The output size in bytes from which the compiled kernels use streaming stores.

    Returns
    -------
    int
        The value of the last ``set_streaming_threshold`` (or of the environment variable
        ``FASTDROP_STREAMING_THRESHOLD``, else half the last-level cache size).

    Examples
    --------
    >>> fd.get_streaming_threshold() >= 0
    True
    """
    return _streaming_threshold



def _streaming_from_env():
    raw = os.environ.get("FASTDROP_STREAMING_THRESHOLD", "")
    text = raw.strip()
    if not text:
        set_streaming_threshold(None)
        return
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"FASTDROP_STREAMING_THRESHOLD must be an integer number of bytes >= 0, got {raw!r}")
    try:
        set_streaming_threshold(int(text))
    except ValueError as exc:
        raise ValueError(f"{exc} (from the environment variable FASTDROP_STREAMING_THRESHOLD={raw!r})") from None


_streaming_from_env()
