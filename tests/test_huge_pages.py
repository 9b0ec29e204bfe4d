"""Large outputs come from the compiled module's huge-page memory handler (``_memory.py``,
``_memory.h``): aligned to 2 MiB, owning their memory, in x's memory order, traced by
tracemalloc, freed and resized by NumPy as any array, with the same bits; small outputs and
the program's own allocations keep NumPy's allocator."""
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import fastdrop as fd
from fastdrop import _backend, _memory

try:
    from numpy._core.multiarray import get_handler_name
except ImportError:                                  # NumPy 1.x
    from numpy.core.multiarray import get_handler_name

HUGE = 2 << 20
pytestmark = pytest.mark.skipif(not (_backend.compiled_available() and sys.platform.startswith("linux")),
                                reason="the huge-page handler is the compiled module's, on Linux")

RNG = np.random.default_rng(5)
# 2049 x 4100 float32: 33.6 MB, over HUGE_PAGE_MIN_BYTES and not a whole number of huge pages
X = RNG.standard_normal((2049, 4100), dtype=np.float32)
X4 = X.reshape(2049, 4100 // 4, 2, 2)
LARGE_CALLS = {
    "dropout": lambda x: fd.dropout(x, 0.3, seed=1),
    "dropout-per-feature-p": lambda x: fd.dropout(x, np.linspace(0.1, 0.6, x.shape[-1]), seed=1),
    "spatial_dropout": lambda x: fd.spatial_dropout(x.reshape(X4.shape), 0.3, seed=1),
    "drop_path": lambda x: fd.drop_path(x, 0.3, seed=1),
    "alpha_dropout_grad": lambda x: fd.alpha_dropout_grad(x, 0.3, seed=1),
    "gaussian_dropout": lambda x: fd.gaussian_dropout(x, 0.3, seed=1),
    "concrete_dropout_grad": lambda x: fd.concrete_dropout_grad(x, x, -1.0, seed=1)[0],
    "dropout_add": lambda x: fd.dropout_add(x, x, 0.3, seed=1),
    "dropout_mask": lambda x: fd.dropout_mask((4 * x.size,), 0.3, seed=1),     # one byte per element
    "dropout_box": lambda x: fd.dropout_box(x, 0.3, seed=1, global_shape=(4098, 4100), origin=(7, 0)),
}


def test_the_threshold_is_the_largest_glibc_mmap_threshold():
    assert _memory.HUGE_PAGE_MIN_BYTES == 32 << 20
    assert X.nbytes > _memory.HUGE_PAGE_MIN_BYTES and X.nbytes % HUGE


@pytest.mark.parametrize("name", LARGE_CALLS)
def test_a_large_output_is_aligned_owned_and_bit_identical(name):
    y = LARGE_CALLS[name](X)
    y = y if y.base is None else y.base              # a mask is a bool view of its keep bytes
    assert get_handler_name(y) == "fastdrop_huge_pages"
    assert y.ctypes.data % HUGE == 0
    assert y.flags.owndata and y.base is None and y.flags.c_contiguous and y.flags.writeable
    with fd.use_backend("numpy"):
        twin = LARGE_CALLS[name](X)
    twin = twin if twin.base is None else twin.base
    assert get_handler_name(twin) == "fastdrop_huge_pages"      # allocation does not depend on the backend
    np.testing.assert_array_equal(y.view(np.uint8), twin.view(np.uint8))
    assert get_handler_name() == "default_allocator"            # the program's own handler is back


def test_a_fortran_ordered_input_keeps_its_order():
    xf = np.asfortranarray(X)
    y = fd.dropout(xf, 0.3, seed=1)
    assert get_handler_name(y) == "fastdrop_huge_pages" and y.flags.f_contiguous and y.ctypes.data % HUGE == 0
    np.testing.assert_array_equal(y, fd.dropout(X, 0.3, seed=1))


def test_small_outputs_and_given_outputs_keep_numpys_allocator():
    small = X[: (_memory.HUGE_PAGE_MIN_BYTES // X.strides[0]) - 1]
    assert get_handler_name(fd.dropout(small, 0.3, seed=1)) == "default_allocator"
    out = np.empty_like(X)
    assert fd.dropout(X, 0.3, seed=1, out=out) is out and get_handler_name(out) == "default_allocator"


def test_numpy_resizes_and_frees_a_huge_page_output():
    y = fd.dropout(X, 0.3, seed=1)
    head = y.ravel()[:1000].copy()
    y.resize(y.size + 12345, refcheck=False)            # realloc through the same handler
    np.testing.assert_array_equal(y[:1000], head)
    assert not y[y.size - 12345:].flags.owndata
    y.resize(10, refcheck=False)
    np.testing.assert_array_equal(y, head[:10])
    del y                                               # free through the handler (ASan/valgrind see a leak otherwise)


def test_tracemalloc_traces_a_huge_page_output_at_its_size():
    tracemalloc.start()
    try:
        y = fd.dropout(X, 0.3, seed=1)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert X.nbytes <= current <= peak <= X.nbytes + (64 << 10)
    del y


def test_the_handler_is_local_to_the_call_in_every_thread():
    import threading
    names = []

    def work():
        fd.dropout(X, 0.3, seed=1)
        names.append(get_handler_name())
        names.append(get_handler_name(np.empty(X.shape)))
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert names == ["default_allocator"] * 4


_RSS_CHILD = textwrap.dedent("""
    import resource, numpy as np, fastdrop as fd
    x = np.ones((2049, 4100), np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ys = [fd.dropout(x, 0.3, seed=s) for s in range(3)]
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)
""")


def test_huge_page_outputs_cost_no_more_resident_memory_than_their_size():
    """Aligning a block leaves up to 2 MiB of untouched address space before it; none of it
    may become resident (three live outputs: at most their bytes and one huge page each)."""
    r = subprocess.run([sys.executable, "-c", _RSS_CHILD], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "FASTDROP_BACKEND": "cython", "FASTDROP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    grown = int(r.stdout.split()[-1])
    assert grown <= 3 * (X.nbytes + HUGE), f"max RSS grew by {grown} bytes for three {X.nbytes}-byte outputs"
