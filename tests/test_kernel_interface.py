"""The kernel interface (what ``_backend.kernels()`` returns) is one interface on every backend.

A table of bad calls runs against the NumPy backend and every compiled ISA variant this
machine runs: each raises the same exception with the same message, before writing
anything.  Calls that are valid but unusual (any integer type as a threshold, a Python float
as a float16 scale) give the same bits everywhere.  The compiled module's stream layout is
``fastdrop._stream``'s.
"""
import numpy as np
import pytest

from fastdrop import _backend, _kernel_args, _stream

T = 32768                                   # a valid threshold
S = np.float32(2.0)                         # a valid scale for float32 x


def _kernel_sets():
    """(name, kernels) for the NumPy backend and every built ISA variant this CPU runs."""
    sets = [("numpy", _backend._module_for("numpy"))]
    sets += [(isa, _backend.variant(isa)) for isa in _backend.runnable_isas() if isa in _backend.built_isas()]
    return sets


KERNEL_SETS = _kernel_sets()


def f32(*shape):
    return np.ones(shape, dtype=np.float32)


def starts(n):
    return np.zeros(n, dtype=np.int64)


def readonly(a):
    a.flags.writeable = False
    return a


def rates(shape):
    """Per-element thresholds and scales as the Python layer makes them: broadcast views."""
    thr = np.broadcast_to(np.full(shape[-1], T, dtype=np.uint32), shape)
    return thr, np.broadcast_to(np.full(shape[-1], 2, dtype=np.float32), shape)


# (id, kernel, arguments, exception, message): every argument list is rebuilt per call.
BAD_CALLS = [
    # dropout_flat(key, offset, thr, scale, x, out)
    ("flat-int16", "dropout_flat", lambda: (1, 0, T, S, np.ones(8, np.int16), np.ones(8, np.int16)),
     TypeError, "x must be a float16, bfloat16, float32 or float64 array in native byte order, got int16"),
    ("flat-list", "dropout_flat", lambda: (1, 0, T, S, [1.0] * 8, f32(8)),
     TypeError, "x must be a float16, bfloat16, float32 or float64 array in native byte order, got list"),
    ("flat-big-endian", "dropout_flat", lambda: (1, 0, T, S, np.ones(8, ">f4"), np.ones(8, ">f4")),
     TypeError, "x must be a float16, bfloat16, float32 or float64 array in native byte order, got >f4"),
    ("flat-out-dtype", "dropout_flat", lambda: (1, 0, T, S, f32(8), np.ones(8)),
     TypeError, "out must be an array of x's dtype float32, got float64"),
    ("flat-out-shape", "dropout_flat", lambda: (1, 0, T, S, f32(8), f32(9)),
     ValueError, "out must have x's shape (8,), got (9,)"),
    ("flat-2d", "dropout_flat", lambda: (1, 0, T, S, f32(2, 4), f32(2, 4)), ValueError, "x must be 1-D, got 2-D"),
    ("flat-strided-x", "dropout_flat", lambda: (1, 0, T, S, f32(16)[::2], f32(8)),
     ValueError, "x must be C-contiguous and aligned"),
    ("flat-strided-out", "dropout_flat", lambda: (1, 0, T, S, f32(8), f32(16)[::2]),
     ValueError, "out must be C-contiguous and aligned"),
    ("flat-readonly-out", "dropout_flat", lambda: (1, 0, T, S, f32(8), readonly(f32(8))),
     ValueError, "out must be writeable"),
    ("flat-thr-float", "dropout_flat", lambda: (1, 0, 0.5, S, f32(8), f32(8)),
     TypeError, "thr must be an integer, got float"),
    ("flat-thr-array", "dropout_flat", lambda: (1, 0, np.full(8, T, np.uint32), S, f32(8), f32(8)),
     TypeError, "thr must be an integer, got uint32"),
    ("flat-thr-above", "dropout_flat", lambda: (1, 0, 65537, S, f32(8), f32(8)),
     ValueError, "thr must be in [0, 65536], got 65537"),
    ("flat-thr-negative", "dropout_flat", lambda: (1, 0, np.int64(-1), S, f32(8), f32(8)),
     ValueError, "thr must be in [0, 65536], got -1"),
    ("flat-thr-huge", "dropout_flat", lambda: (1, 0, 2**70, S, f32(8), f32(8)),
     ValueError, f"thr must be in [0, 65536], got {2**70}"),
    ("flat-scale-str", "dropout_flat", lambda: (1, 0, T, "2", f32(8), f32(8)),
     TypeError, "scale must be a real number with a scalar thr, got str"),
    ("flat-scale-array", "dropout_flat", lambda: (1, 0, T, f32(8), f32(8), f32(8)),
     TypeError, "scale must be a real number with a scalar thr, got float32"),
    ("flat-index-range", "dropout_flat", lambda: (1, 2**62 - 4, T, S, f32(8), f32(8)),
     ValueError, f"stream elements [{2**62 - 4}, {2**62 - 4} + 8) leave the index range [0, 2**62)"),
    ("flat-negative-offset", "dropout_flat", lambda: (1, -1, T, S, f32(8), f32(8)),
     ValueError, "stream elements [-1, -1 + 8) leave the index range [0, 2**62)"),
    # dropout_rows(key, starts, thr, scale, x, out)
    ("rows-1d", "dropout_rows", lambda: (1, starts(1), T, S, f32(8), f32(8)), ValueError, "x must be 2-D, got 1-D"),
    ("rows-int16", "dropout_rows", lambda: (1, starts(2), T, S, np.ones((2, 4), np.int16), np.ones((2, 4), np.int16)),
     TypeError, "x must be a float16, bfloat16, float32 or float64 array in native byte order, got int16"),
    ("rows-strided-columns", "dropout_rows", lambda: (1, starts(4), T, S, f32(4, 8)[:, ::2], f32(4, 4)),
     ValueError, "x must have contiguous, aligned rows"),
    ("rows-strided-out", "dropout_rows", lambda: (1, starts(4), T, S, f32(4, 4), f32(4, 8)[:, ::2]),
     ValueError, "out must have contiguous, aligned rows"),
    ("rows-starts-int32", "dropout_rows", lambda: (1, np.zeros(4, np.int32), T, S, f32(4, 8), f32(4, 8)),
     TypeError, "starts must be an array of dtype int64, got int32"),
    ("rows-starts-list", "dropout_rows", lambda: (1, [0, 0, 0, 0], T, S, f32(4, 8), f32(4, 8)),
     TypeError, "starts must be an array of dtype int64, got list"),
    ("rows-starts-short", "dropout_rows", lambda: (1, starts(3), T, S, f32(4, 8), f32(4, 8)),
     ValueError, "starts must have one run start per row, shape (4,), got (3,)"),
    ("rows-starts-strided", "dropout_rows", lambda: (1, starts(8)[::2], T, S, f32(4, 8), f32(4, 8)),
     ValueError, "starts must be C-contiguous and aligned"),
    ("rows-thr-int64-array", "dropout_rows", lambda: (1, starts(4), np.full((4, 8), T), f32(4, 8), f32(4, 8), f32(4, 8)),
     TypeError, "thr must be an integer or a uint32 array, got int64"),
    ("rows-thr-size", "dropout_rows",
     lambda: (1, starts(4), np.full(31, T, np.uint32), f32(31), f32(4, 8), f32(4, 8)),
     ValueError, "thr must have 32 elements, one per decision, got 31"),
    ("rows-scale-dtype", "dropout_rows", lambda: (1, starts(4), rates((4, 8))[0], np.ones((4, 8)), f32(4, 8), f32(4, 8)),
     TypeError, "scale must be an array of x's dtype float32 with a thr array, got float64"),
    ("rows-scale-layout", "dropout_rows", lambda: (1, starts(4), rates((4, 8))[0], f32(4, 8), f32(4, 8), f32(4, 8)),
     ValueError, "scale must have thr's shape and layout (in elements)"),
    ("rows-out-rows-apart", "dropout_rows", lambda: (1, starts(4), *rates((4, 8)), f32(4, 8), f32(4, 16)[:, :8]),
     ValueError, "out must be C-contiguous with a thr array"),
    ("rows-index-range", "dropout_rows", lambda: (1, np.array([0, -1]), T, S, f32(2, 4), f32(2, 4)),
     ValueError, "stream elements [-1, -1 + 4) leave the index range [0, 2**62)"),
    # keep_mask_rows(key, starts, thr, out)
    ("keep-out-bool", "keep_mask_rows", lambda: (1, starts(2), T, np.empty((2, 4), bool)),
     TypeError, "out must be an array of dtype uint8, got bool"),
    ("keep-out-1d", "keep_mask_rows", lambda: (1, starts(1), T, np.empty(4, np.uint8)), ValueError, "out must be 2-D, got 1-D"),
    ("keep-out-fortran", "keep_mask_rows", lambda: (1, starts(4), T, np.empty((4, 8), np.uint8, order="F")),
     ValueError, "out must be C-contiguous and aligned"),
    ("keep-readonly-out", "keep_mask_rows", lambda: (1, starts(2), T, readonly(np.empty((2, 4), np.uint8))),
     ValueError, "out must be writeable"),
    ("keep-thr-float", "keep_mask_rows", lambda: (1, starts(2), 0.5, np.empty((2, 4), np.uint8)),
     TypeError, "thr must be an integer or a uint32 array, got float"),
    ("keep-thr-above", "keep_mask_rows", lambda: (1, starts(2), 70000, np.empty((2, 4), np.uint8)),
     ValueError, "thr must be in [0, 65536], got 70000"),
    ("keep-thr-size", "keep_mask_rows", lambda: (1, starts(2), np.full(7, T, np.uint32), np.empty((2, 4), np.uint8)),
     ValueError, "thr must have 8 elements, one per decision, got 7"),
    ("keep-starts-short", "keep_mask_rows", lambda: (1, starts(1), T, np.empty((2, 4), np.uint8)),
     ValueError, "starts must have one run start per row, shape (2,), got (1,)"),
    ("keep-index-range", "keep_mask_rows", lambda: (1, np.array([2**62 - 3000]), T, np.empty((1, 3001), np.uint8)),
     ValueError, f"stream elements [{2**62 - 3000}, {2**62 - 3000} + 3001) leave the index range [0, 2**62)"),
    # fill_words(key, first_word, out)
    ("words-int64", "fill_words", lambda: (1, 0, np.empty(4, np.int64)),
     TypeError, "out must be an array of dtype uint64, got int64"),
    ("words-2d", "fill_words", lambda: (1, 0, np.empty((2, 2), np.uint64)), ValueError, "out must be 1-D, got 2-D"),
    ("words-strided", "fill_words", lambda: (1, 0, np.empty(8, np.uint64)[::2]),
     ValueError, "out must be C-contiguous and aligned"),
    ("words-readonly", "fill_words", lambda: (1, 0, readonly(np.empty(4, np.uint64))), ValueError, "out must be writeable"),
    ("words-index-range", "fill_words", lambda: (1, 2**62 - 2, np.empty(3, np.uint64)),
     ValueError, f"stream elements [{2**62 - 2}, {2**62 - 2} + 3) leave the index range [0, 2**62)"),
    # apply_keep(x, keep, scale, out)
    ("apply-int16", "apply_keep", lambda: (np.ones(8, np.int16), np.ones(8, np.uint8), 2, np.ones(8, np.int16)),
     TypeError, "x must be a float16, bfloat16, float32 or float64 array in native byte order, got int16"),
    ("apply-out-dtype", "apply_keep", lambda: (f32(8), np.ones(8, np.uint8), S, np.ones(8)),
     TypeError, "out must be an array of x's dtype float32, got float64"),
    ("apply-out-shape", "apply_keep", lambda: (f32(8), np.ones(8, np.uint8), S, f32(2, 4)),
     ValueError, "out must have x's shape (8,), got (2, 4)"),
    ("apply-strided-x", "apply_keep", lambda: (f32(16)[::2], np.ones(8, np.uint8), S, f32(8)),
     ValueError, "x must be C-contiguous and aligned"),
    ("apply-readonly-out", "apply_keep", lambda: (f32(8), np.ones(8, np.uint8), S, readonly(f32(8))),
     ValueError, "out must be writeable"),
    ("apply-keep-bool", "apply_keep", lambda: (f32(8), np.ones(8, bool), S, f32(8)),
     TypeError, "keep must be an array of dtype uint8, got bool"),
    ("apply-keep-shape", "apply_keep", lambda: (f32(8), np.ones(3, np.uint8), S, f32(8)),
     ValueError, "keep of shape (3,) does not broadcast to x's shape (8,)"),
    ("apply-scale-shape", "apply_keep", lambda: (f32(4, 8), np.ones((4, 8), np.uint8), f32(3), f32(4, 8)),
     ValueError, "scale of shape (3,) does not broadcast to x's shape (4, 8)"),
    ("apply-scale-per-element-shared-keep", "apply_keep",
     lambda: (f32(4, 8), np.ones((4, 1), np.uint8), f32(4, 8), f32(4, 8)),
     ValueError, "scale must broadcast to keep's shape (one scale per decision)"),
    # alpha_flat(key, offset, thr, coef, x, out)
    ("alpha-coef-list", "alpha_flat", lambda: (1, 0, T, [1, 2, 3], f32(8), f32(8)),
     TypeError, "coef must be a tuple of three real numbers (a, b, d), got list"),
    ("alpha-coef-short", "alpha_flat", lambda: (1, 0, T, (1.0, 2.0), f32(8), f32(8)),
     TypeError, "coef must be a tuple of three real numbers (a, b, d), got tuple"),
    ("alpha-int16", "alpha_flat", lambda: (1, 0, T, (1.0, 2.0, 3.0), np.ones(8, np.int16), np.ones(8, np.int16)),
     TypeError, "x must be a float16, bfloat16, float32 or float64 array in native byte order, got int16"),
    ("alpha-strided-out", "alpha_flat", lambda: (1, 0, T, (1.0, 2.0, 3.0), f32(8), f32(16)[::2]),
     ValueError, "out must be C-contiguous and aligned"),
    ("alpha-thr-above", "alpha_flat", lambda: (1, 0, 65537, (1.0, 2.0, 3.0), f32(8), f32(8)),
     ValueError, "thr must be in [0, 65536], got 65537"),
    ("alpha-index-range", "alpha_flat", lambda: (1, 2**62 - 4, T, (1.0, 2.0, 3.0), f32(8), f32(8)),
     ValueError, f"stream elements [{2**62 - 4}, {2**62 - 4} + 8) leave the index range [0, 2**62)"),
    # dropblock_keep(key, offset, block, thr53, keep)
    ("dropblock-bool", "dropblock_keep", lambda: (1, 0, 2, 5, np.empty((1, 1, 4, 4), bool)),
     TypeError, "keep must be an array of dtype uint8, got bool"),
    ("dropblock-3d", "dropblock_keep", lambda: (1, 0, 2, 5, np.empty((1, 4, 4), np.uint8)),
     ValueError, "keep must be 4-D, got 3-D"),
    ("dropblock-readonly", "dropblock_keep", lambda: (1, 0, 2, 5, readonly(np.empty((1, 1, 4, 4), np.uint8))),
     ValueError, "out must be writeable"),
    ("dropblock-block-float", "dropblock_keep", lambda: (1, 0, 2.0, 5, np.empty((1, 1, 4, 4), np.uint8)),
     TypeError, "block must be an integer, got float"),
    ("dropblock-block-large", "dropblock_keep", lambda: (1, 0, 5, 5, np.empty((1, 1, 4, 6), np.uint8)),
     ValueError, "block must be in [1, min(H, W)] = [1, 4], got 5"),
    ("dropblock-thr-float", "dropblock_keep", lambda: (1, 0, 2, 0.5, np.empty((1, 1, 4, 4), np.uint8)),
     TypeError, "thr53 must be an integer, got float"),
    ("dropblock-thr-above", "dropblock_keep", lambda: (1, 0, 2, 2**53 + 1, np.empty((1, 1, 4, 4), np.uint8)),
     ValueError, f"thr53 must be in [0, 2**53], got {2**53 + 1}"),
    ("dropblock-index-range", "dropblock_keep", lambda: (1, 2**62 - 8, 2, 5, np.empty((1, 1, 4, 4), np.uint8)),
     ValueError, f"stream elements [{2**62 - 8}, {2**62 - 8} + 9) leave the index range [0, 2**62)"),
    # dropout_shared(key, offset, thr, scale, x, out)
    ("shared-2d", "dropout_shared", lambda: (1, 0, T, S, f32(4, 8), f32(4, 8)),
     ValueError, "x must be 3-D, got 2-D"),
    ("shared-strided-x", "dropout_shared", lambda: (1, 0, T, S, f32(2, 3, 8)[:, :, ::2], f32(2, 3, 4)),
     ValueError, "x must be C-contiguous and aligned"),
    ("shared-shape", "dropout_shared", lambda: (1, 0, T, S, f32(2, 3, 4), f32(2, 4, 3)),
     ValueError, "out must have x's shape (2, 3, 4), got (2, 4, 3)"),
    ("shared-rate-array", "dropout_shared", lambda: (1, 0, np.full(24, T, np.uint32), f32(24), f32(2, 3, 4),
                                                     f32(2, 3, 4)),
     TypeError, "thr must be an integer, got uint32"),
    ("shared-index-range", "dropout_shared", lambda: (1, 2**62 - 4, T, S, f32(2, 3, 4), f32(2, 3, 4)),
     ValueError, f"stream elements [{2**62 - 4}, {2**62 - 4} + 8) leave the index range [0, 2**62)"),
    # dropout_abs_flat(key, offset, thr, scale, x, out, partials); abs_sums(offset, x, partials)
    ("abs-partials-short", "dropout_abs_flat", lambda: (1, 1000, T, S, f32(100), f32(100), np.empty(1)),
     ValueError, "partials must have one element per sum block of 1024 elements, 2, got 1"),
    ("abs-partials-float32", "dropout_abs_flat", lambda: (1, 0, T, S, f32(100), f32(100), f32(1)),
     TypeError, "partials must be an array of dtype float64, got float32"),
    ("abs-partials-readonly", "dropout_abs_flat", lambda: (1, 0, T, S, f32(100), f32(100), readonly(np.empty(1))),
     ValueError, "partials must be writeable"),
    ("abs-partials-strided", "dropout_abs_flat", lambda: (1, 0, T, S, f32(2000), f32(2000), np.empty(4)[::2]),
     ValueError, "partials must be C-contiguous and aligned"),
    ("abs-rate-array", "dropout_abs_flat", lambda: (1, 0, np.full(8, T, np.uint32), f32(8), f32(8), f32(8), np.empty(1)),
     TypeError, "thr must be an integer, got uint32"),
    ("abs-strided-x", "dropout_abs_flat", lambda: (1, 0, T, S, f32(16)[::2], f32(8), np.empty(1)),
     ValueError, "x must be C-contiguous and aligned"),
    ("abs-index-range", "dropout_abs_flat", lambda: (1, 2**62 - 4, T, S, f32(8), f32(8), np.empty(1)),
     ValueError, f"stream elements [{2**62 - 4}, {2**62 - 4} + 8) leave the index range [0, 2**62)"),
    ("abs-no-partials-index-range", "dropout_abs_flat", lambda: (1, 2**62 - 4, T, S, f32(8), f32(8), None),
     ValueError, f"stream elements [{2**62 - 4}, {2**62 - 4} + 8) leave the index range [0, 2**62)"),
    # exact_sum(terms)
    ("exact-sum-float32", "exact_sum", lambda: (f32(4),),
     TypeError, "terms must be an array of dtype float64, got float32"),
    ("exact-sum-2d", "exact_sum", lambda: (np.zeros((2, 2)),), ValueError, "terms must be 1-D, got 2-D"),
    ("exact-sum-strided", "exact_sum", lambda: (np.zeros(8)[::2],),
     ValueError, "terms must be C-contiguous and aligned"),
    ("exact-sum-list", "exact_sum", lambda: ([1.0, 2.0],),
     TypeError, "terms must be an array of dtype float64, got list"),
    ("sums-int16", "abs_sums", lambda: (0, np.ones(8, np.int16), np.empty(1)),
     TypeError, "x must be a float16, bfloat16, float32 or float64 array in native byte order, got int16"),
    ("sums-2d", "abs_sums", lambda: (0, f32(2, 4), np.empty(1)), ValueError, "x must be 1-D, got 2-D"),
    ("sums-partials-long", "abs_sums", lambda: (0, f32(8), np.empty(2)),
     ValueError, "partials must have one element per sum block of 1024 elements, 1, got 2"),
]


def _outputs(args):
    return [a for a in args if isinstance(a, np.ndarray) and a.flags.writeable]


@pytest.mark.parametrize("case", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_calls_raise_the_same_error_on_every_backend(case):
    _, kernel, make_args, exc, message = case
    for name, kernels in KERNEL_SETS:
        args = make_args()
        before = [a.copy() for a in _outputs(args)]
        with pytest.raises(exc) as info:
            getattr(kernels, kernel)(*args)
        assert str(info.value) == message, f"{name}: {info.value}"
        for a, b in zip(_outputs(args), before):       # nothing written
            assert a.tobytes() == b.tobytes(), f"{name} wrote before raising"


def _bits(a):
    return a.view(f"u{a.itemsize}") if a.dtype.kind == "f" else a


VALID_CALLS = [
    ("flat-np-int64-thr", "dropout_flat", lambda: (3, 5, np.int64(40000), S, f32(3000) * 3, f32(3000))),
    ("flat-np-uint16-thr", "dropout_flat", lambda: (3, 5, np.uint16(40000), S, f32(3000) * 3, f32(3000))),
    ("flat-python-float-scale-f16", "dropout_flat",
     lambda: (3, 5, T, 1.7, np.linspace(-5, 5, 3000).astype(np.float16), np.empty(3000, np.float16))),
    ("flat-python-float-scale-f64", "dropout_flat", lambda: (3, 5, T, 1.7, np.linspace(-5, 5, 3000), np.empty(3000))),
    ("rows-np-int64-thr", "dropout_rows", lambda: (3, np.array([0, 10**12]), np.int64(20000), S, f32(2, 1500), f32(2, 1500))),
    ("rows-negative-row-stride", "dropout_rows",
     lambda: (3, np.array([7, 0, 99]), T, S, np.arange(3000, dtype=np.float32).reshape(3, -1)[::-1], f32(3, 1000))),
    ("keep-np-int64-thr", "keep_mask_rows", lambda: (3, np.array([5, 9000]), np.int64(30000), np.empty((2, 2000), np.uint8))),
    ("keep-rates", "keep_mask_rows", lambda: (3, np.array([5, 9000]), rates((2, 2000))[0], np.empty((2, 2000), np.uint8))),
    ("alpha-np-int64-thr-f16", "alpha_flat",
     lambda: (3, 5, np.int64(40000), (1.5, 0.25, -0.75), np.linspace(-5, 5, 3000).astype(np.float16),
              np.empty(3000, np.float16))),
    ("dropblock-fortran-keep", "dropblock_keep",
     lambda: (3, 9, np.int64(3), 2**50, np.empty((2, 3, 11, 9), np.uint8, order="F"))),
    ("shared-np-int64-thr-f16", "dropout_shared",
     lambda: (3, 5, np.int64(40000), 1.7, np.linspace(-5, 5, 3 * 7 * 2051).astype(np.float16).reshape(3, 7, 2051),
              np.empty((3, 7, 2051), np.float16))),
    ("shared-empty-rows", "dropout_shared", lambda: (3, 5, T, S, f32(3, 0, 5), f32(3, 0, 5))),
    ("apply-0d-out", "apply_keep", lambda: (np.ones(1, np.float32), np.ones((), np.uint8), S, np.empty((), np.float32))),
    ("abs-np-int64-thr-f16-in-place", "dropout_abs_flat",
     lambda: (3, 1000, np.int64(40000), 1.7, *[np.linspace(-5, 5, 3000).astype(np.float16)] * 2, np.empty(4))),
    ("abs-empty", "dropout_abs_flat", lambda: (3, 5, T, S, f32(0), f32(0), np.empty(0))),
    ("abs-empty-no-partials", "dropout_abs_flat", lambda: (3, 5, T, S, f32(0), f32(0), None)),
    ("abs-no-partials-heap", "dropout_abs_flat",      # past the compiled stack scratch of 256 blocks
     lambda: (3, 1000, T, S, np.linspace(-5, 5, 300_000).astype(np.float32), f32(300_000))),
    ("exact-sum-empty", "exact_sum", lambda: (np.empty(0),)),
    ("exact-sum-cancel", "exact_sum", lambda: (np.array([1e308, 1e308, -1e308, 1.0, -1e308, 2.0**-1074]),)),
    ("sums-f64-offset", "abs_sums", lambda: (1023, np.linspace(-5, 5, 3000), np.empty(4))),
]


@pytest.mark.parametrize("case", VALID_CALLS, ids=[c[0] for c in VALID_CALLS])
def test_unusual_valid_calls_give_the_same_bits_everywhere(case):
    _, kernel, make_args = case
    results = []
    for name, kernels in KERNEL_SETS:
        args = make_args()
        returned = np.asarray(getattr(kernels, kernel)(*args))
        results.append((name, [_bits(a).copy() for a in [returned, *_outputs(args)]]))
    for name, got in results[1:]:
        assert len(got) == len(results[0][1])
        for a, b in zip(got, results[0][1]):
            assert a.dtype == b.dtype and np.array_equal(a, b), f"{name} differs from the NumPy backend"


# --- the stream layout: one definition, compiled as it says ---------------------------------

@pytest.mark.skipif(not _backend.compiled_available(), reason="the compiled extension is not built")
def test_compiled_stream_layout_is_the_stream_module():
    import fastdrop._kernels as k
    assert k.STREAM_LAYOUT == {
        "lanes": _stream.LANES, "steps": _stream.STEPS, "block_words": _stream.BLOCK_WORDS,
        "chunk_bits": _stream.CHUNK_BITS, "chunks_per_word": _stream.CHUNKS_PER_WORD,
        "block_chunks": _stream.BLOCK_CHUNKS, "golden": _stream.GOLDEN, "mix_shifts": _stream.MIX_SHIFTS,
        "mix_multipliers": _stream.MIX_MULTIPLIERS, "max_index": _stream.MAX_INDEX,
    }
    assert k.MAX_INDEX == _stream.MAX_INDEX
    assert all(kernels.MAX_INDEX == _stream.MAX_INDEX for _, kernels in KERNEL_SETS[1:])
    assert k.SUM_LAYOUT == {"sum_block": _kernel_args.SUM_BLOCK, "sum_lanes": _kernel_args.SUM_LANES}

