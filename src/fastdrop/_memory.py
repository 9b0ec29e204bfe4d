"""Where the arrays fastdrop returns come from: ``empty_like`` and ``empty`` make every output,
gradient and mask a call returns when it is not given ``out=``.

Large outputs come from the compiled module's memory handler (``_memory.h``): their data
starts on a 2 MiB boundary and is advised for transparent huge pages, so the fresh memory
faults in 2 MiB at a time.  NumPy's own allocation of the same size starts mid-page and
faults its head and tail in 4 KiB at a time: about 512 faults, 1 ms on a 32 MiB output here
(bench/NOTES.md, "Huge-page outputs").  Only blocks of at least ``HUGE_PAGE_MIN_BYTES`` take
it: below glibc's largest mmap threshold a freed block is reused from the heap without any
page fault, which beats fresh huge pages.  Nothing else changes: the array owns its memory,
has x's memory order, and NumPy frees it through the same handler.  Without the compiled
module, or off Linux, every output is NumPy's ``np.empty_like`` / ``np.empty``.

A leaf module: ``_backend`` installs the compiled allocator at import (``use_allocator``).
"""
import math

import numpy as np

# glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit platforms: blocks this large are always fresh
# mmaps, and so always page-faulted in.
HUGE_PAGE_MIN_BYTES = 32 << 20

_in_huge_pages = None     # the compiled module's in_huge_pages, where it has one


def use_allocator(in_huge_pages):
    """Large outputs from ``in_huge_pages(allocate, *args, **kwargs)`` (None: NumPy's allocator)."""
    global _in_huge_pages
    _in_huge_pages = in_huge_pages


def empty_like(x):
    """A new array of x's shape, dtype and memory order (``np.empty_like(x, subok=False)``)."""
    if _in_huge_pages is not None and x.nbytes >= HUGE_PAGE_MIN_BYTES:
        return _in_huge_pages(np.empty_like, x, subok=False)
    return np.empty_like(x, subok=False)


def empty(shape, dtype):
    """A new C-ordered array (``np.empty(shape, dtype)``)."""
    if _in_huge_pages is not None and math.prod(shape) * np.dtype(dtype).itemsize >= HUGE_PAGE_MIN_BYTES:
        return _in_huge_pages(np.empty, shape, dtype)
    return np.empty(shape, dtype)
