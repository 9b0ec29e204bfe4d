"""No leaks: 100,000 calls of each entry point on tiny arrays keep memory and refcounts flat.

Python-level memory (NumPy registers its data buffers with tracemalloc) must not grow
over a traced window of 10,000 calls, nor the process RSS over all of them; the reference
counts of every argument must be the same afterwards.  A leak of one small array or one
reference per call would show as megabytes or as 100,000 extra references.
"""
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import fastdrop as fd
from fastdrop import _backend

CALLS = 100_000
ERROR_CALLS = 20_000
WARM_UP = 5_000
TRACED_CALLS = 10_000              # a leak of one 16-byte block per call: 160 KB, over the slack
TRACED_SLACK = 64 * 1024           # bytes: small caches NumPy and Python keep
RSS_SLACK = 4 * 1024 * 1024        # bytes: allocator fragmentation, page granularity

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS is read from /proc/self/statm")
# Under AddressSanitizer (.ci/sanitize) freed memory sits in ASan's quarantine, so RSS grows
# by design; tracemalloc and the refcounts still hold there.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
X16 = X.astype(np.float16)
XT = np.linspace(-1, 1, 12).reshape(4, 3).T              # non-contiguous float64
OUT = np.empty_like(X)
P_ROWS = np.array([[0.1], [0.5], [0.9]])
MASK = np.ones((3, 4), dtype=bool)
PACKED = np.packbits(MASK.ravel(), bitorder="little")
GEN = np.random.default_rng(0)


def expect_error(call, error):
    try:
        call()
    except error:
        return
    raise AssertionError("no error raised")


ENTRY_POINTS = {
    "dropout": (CALLS, lambda: fd.dropout(X, 0.5, seed=1)),
    "dropout_f16_out": (CALLS, lambda: fd.dropout(X16, 0.25, seed=2, offset=5)),
    "dropout_inplace_noise_rates": (CALLS, lambda: fd.dropout(OUT, P_ROWS, seed=3, noise_shape=(3, 1), out=OUT)),
    "dropout_strided_generator": (CALLS, lambda: fd.dropout(XT, 0.5, seed=GEN)),
    "dropout_eval": (CALLS, lambda: fd.dropout(X, 0.5, training=False)),
    "dropout_mask": (CALLS, lambda: fd.dropout_mask((3, 4), 0.5, seed=4)),
    "dropout_mask_packed": (CALLS, lambda: fd.dropout_mask(12, 0.5, seed=5, packed=True)),
    "apply_mask_bool": (CALLS, lambda: fd.apply_mask(X, MASK, 0.5, out=OUT)),
    "apply_mask_packed": (CALLS, lambda: fd.apply_mask(X, PACKED, 0.5)),
    "effective_keep": (CALLS, lambda: fd.effective_keep(0.3)),
    "dropout_box": (CALLS, lambda: fd.dropout_box(X, 0.5, seed=6, global_shape=(8, 9), origin=(1, 2))),
    "dropout_mask_box": (CALLS, lambda: fd.dropout_mask_box((3, 4), 0.5, seed=7, global_shape=(8, 9), origin=(1, 2))),
    "error_dtype": (ERROR_CALLS, lambda: expect_error(lambda: fd.dropout(MASK, 0.5), TypeError)),
    "error_rate": (ERROR_CALLS, lambda: expect_error(lambda: fd.dropout(X, P_ROWS + 1), ValueError)),
    "error_out": (ERROR_CALLS, lambda: expect_error(lambda: fd.dropout(X, 0.5, out=X16), ValueError)),
}


def refcounts():
    return [sys.getrefcount(obj) for obj in (X, X16, XT, OUT, P_ROWS, MASK, PACKED, GEN, np.float32, np.dtype(np.float32))]


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_no_leak(name):
    calls, call = ENTRY_POINTS[name]
    # The compiled backend is where a reference or buffer could leak; it is also fast enough.
    with fd.use_backend("cython" if _backend.compiled_available() else "numpy"):
        for _ in range(WARM_UP):                       # warm caches and allocator pools
            call()
        gc.collect()
        counts = refcounts()
        rss_before = rss_bytes()
        tracemalloc.start()                            # slows calls 5x: trace a window only
        try:
            for _ in range(1000):
                call()
            gc.collect()
            traced_before, _ = tracemalloc.get_traced_memory()
            for _ in range(TRACED_CALLS):
                call()
            gc.collect()
            traced_after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        for _ in range(calls - WARM_UP - 1000 - TRACED_CALLS):
            call()
        gc.collect()
        rss_after = rss_bytes()
        assert refcounts() == counts
        assert traced_after - traced_before < TRACED_SLACK, f"traced memory grew by {traced_after - traced_before} B"
        assert UNDER_ASAN or rss_after - rss_before < RSS_SLACK, f"RSS grew by {rss_after - rss_before} B"
