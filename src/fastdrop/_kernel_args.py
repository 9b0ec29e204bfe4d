"""The argument checks of the kernel interface, the same for both backends.

The kernels (``dropout_flat``, ``dropout_rows``, ``keep_mask_rows``, ``fill_words``,
``apply_keep``, and the family's: ``gaussian_flat``, ``alpha_flat``, ``dropblock_keep``,
``concrete_flat``, ``concrete_grad_flat``) are called by fastdrop's Python layer with arguments it has already
checked; these checks keep a direct call, or a slip in that layer, from reading or writing
out of bounds or taking the wrong path (an int16 array is not float16).  The NumPy backend
runs them on every call.  The compiled one runs them too, except on the common call of
``dropout_flat``, which it tests in C and hands here only when that test fails, so that
both backends raise the same exception with the same message
(``tests/test_kernel_interface.py``).

Each ``check_*`` function returns normally when the arguments are valid.
"""
import numpy as np

from ._stream import CHUNK_RANGE, MAX_INDEX

FLOAT_TYPES = (np.float16, np.float32, np.float64)
REAL_SCALARS = (int, float, np.integer, np.floating)


def is_bfloat16(dtype):
    """Whether ``dtype`` is ``ml_dtypes.bfloat16``, NumPy's bfloat16 (told by its scalar type,
    so that fastdrop never imports ml_dtypes: an array of it means ml_dtypes is loaded)."""
    kind = dtype.type
    return dtype.itemsize == 2 and kind.__name__ == "bfloat16" and kind.__module__.split(".")[0] == "ml_dtypes"


def _describe(a):
    return str(a.dtype) if isinstance(a, np.ndarray) else type(a).__name__


def _check_array(a, name, dtype):
    if not (isinstance(a, np.ndarray) and a.dtype == np.dtype(dtype) and a.dtype.isnative):
        raise TypeError(f"{name} must be an array of dtype {np.dtype(dtype)}, got {_describe(a)}")


def _check_ndim(a, name, ndim):
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {a.ndim}-D")


def _check_contiguous(a, name):
    if not (a.flags.c_contiguous and a.flags.aligned):
        raise ValueError(f"{name} must be C-contiguous and aligned")


def _check_rows(a, name):
    """Rows contiguous and aligned, row stride a whole number of elements (any sign)."""
    if not (a.flags.aligned and (a.shape[1] <= 1 or a.strides[1] == a.itemsize) and a.strides[0] % a.itemsize == 0):
        raise ValueError(f"{name} must have contiguous, aligned rows")


def _check_writeable(out):
    if not out.flags.writeable:
        raise ValueError("out must be writeable")


def check_float_array(x, bfloat16=True):
    """x a float16/32/64 (or, where bfloat16, bfloat16) array in native byte order."""
    if not (isinstance(x, np.ndarray) and x.dtype.isnative
            and (x.dtype.type in FLOAT_TYPES or bfloat16 and is_bfloat16(x.dtype))):
        floats = "a float16, bfloat16, float32 or float64" if bfloat16 else "a float16, float32 or float64"
        raise TypeError(f"x must be {floats} array in native byte order, got {_describe(x)}")


def check_float_arrays(x, out, bfloat16=True):
    """x a float16/32/64 (or, where bfloat16, bfloat16) array in native byte order, out an
    array of its dtype and shape."""
    check_float_array(x, bfloat16)
    if not (isinstance(out, np.ndarray) and out.dtype == x.dtype):
        raise TypeError(f"out must be an array of x's dtype {x.dtype}, got {_describe(out)}")
    if out.shape != x.shape:
        raise ValueError(f"out must have x's shape {x.shape}, got {out.shape}")
    _check_writeable(out)


def check_runs(starts, rowlen):
    """Every run's stream indices in [0, 2**62): no int64 arithmetic in the kernels can wrap."""
    for start in starts:
        start = int(start)
        if start < 0 or rowlen > MAX_INDEX or start > MAX_INDEX - rowlen:
            raise ValueError(f"stream elements [{start}, {start} + {rowlen}) leave the index range [0, 2**62)")


def _check_starts(starts, nrows):
    _check_array(starts, "starts", np.int64)
    if starts.shape != (nrows,):
        raise ValueError(f"starts must have one run start per row, shape ({nrows},), got {starts.shape}")
    _check_contiguous(starts, "starts")


def _check_threshold(thr, size):
    """An integer in [0, CHUNK_RANGE] (any integer type), or, where size is not None, a
    uint32 array of size elements (any shape and strides: a broadcast view)."""
    if isinstance(thr, (int, np.integer)):
        if not 0 <= thr <= CHUNK_RANGE:
            raise ValueError(f"thr must be in [0, {CHUNK_RANGE}], got {thr}")
        return
    if size is None:
        raise TypeError(f"thr must be an integer, got {_describe(thr)}")
    if not (isinstance(thr, np.ndarray) and thr.dtype == np.uint32 and thr.dtype.isnative):
        raise TypeError(f"thr must be an integer or a uint32 array, got {_describe(thr)}")
    if thr.size != size:
        raise ValueError(f"thr must have {size} elements, one per decision, got {thr.size}")
    if not thr.flags.aligned:
        raise ValueError("thr must be aligned")


def _check_rates(thr, scale, x, out, arrays=True):
    """A scalar thr with a real scale, or (where arrays) a thr array with a scale array of
    x's dtype and thr's shape and layout (in elements: broadcast axes alike); then out is
    C-contiguous."""
    _check_threshold(thr, x.size if arrays else None)
    if not isinstance(thr, np.ndarray):
        if not (isinstance(scale, REAL_SCALARS) or type(scale) is x.dtype.type):   # a bfloat16 scalar too
            raise TypeError(f"scale must be a real number with a scalar thr, got {_describe(scale)}")
        return
    if not (isinstance(scale, np.ndarray) and scale.dtype == x.dtype):
        raise TypeError(f"scale must be an array of x's dtype {x.dtype} with a thr array, got {_describe(scale)}")
    if scale.shape != thr.shape or any(s // scale.itemsize != t // 4 or s % scale.itemsize
                                       for s, t in zip(scale.strides, thr.strides)):
        raise ValueError("scale must have thr's shape and layout (in elements)")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous with a thr array")


def check_dropout_flat(offset, thr, scale, x, out):
    check_float_arrays(x, out)
    _check_ndim(x, "x", 1)
    _check_contiguous(x, "x")
    _check_contiguous(out, "out")
    _check_rates(thr, scale, x, out, arrays=False)
    check_runs((offset,), x.size)


def check_dropout_abs_flat(offset, thr, scale, x, out, partials):
    """dropout_flat's arguments (one rate), and partials for the sums of |x| (check_partials),
    or None."""
    check_dropout_flat(offset, thr, scale, x, out)
    if partials is not None:
        check_partials(partials, offset, x.size)


def check_abs_sums(offset, x, partials):
    """x a 1-D C-contiguous float array, partials as check_partials asks."""
    check_float_array(x)
    _check_ndim(x, "x", 1)
    _check_contiguous(x, "x")
    check_runs((offset,), x.size)
    check_partials(partials, offset, x.size)


def check_dropout_rows(starts, thr, scale, x, out):
    check_float_arrays(x, out)
    _check_ndim(x, "x", 2)
    _check_rows(x, "x")
    _check_rows(out, "out")
    _check_starts(starts, x.shape[0])
    _check_rates(thr, scale, x, out)
    check_runs(starts, x.shape[1])


def check_keep_mask_rows(starts, thr, out):
    _check_array(out, "out", np.uint8)
    _check_ndim(out, "out", 2)
    _check_contiguous(out, "out")
    _check_writeable(out)
    _check_starts(starts, out.shape[0])
    _check_threshold(thr, out.size)
    check_runs(starts, out.shape[1])


def check_fill_words(first_word, out):
    _check_array(out, "out", np.uint64)
    _check_ndim(out, "out", 1)
    _check_contiguous(out, "out")
    _check_writeable(out)
    check_runs((first_word,), out.size)


def apply_keep_views(x, keep, scale, out):
    """(keep, scale) as views of x's shape for ``apply_keep``, after its checks.

    out has x's shape, or x has extra leading length-1 axes (``np.ascontiguousarray`` makes
    a 0-d array 1-d); keep (uint8, made C-contiguous) and scale (converted to x's dtype)
    broadcast to x, and scale varies only where keep does (one scale per decision)."""
    if isinstance(x, np.ndarray) and isinstance(out, np.ndarray) and x.ndim > out.ndim and x.size == 1:
        check_float_arrays(x.reshape(out.shape), out)
    else:
        check_float_arrays(x, out)
    _check_contiguous(x, "x")
    _check_contiguous(out, "out")
    _check_array(keep, "keep", np.uint8)
    views = []
    keep = np.ascontiguousarray(keep).reshape(keep.shape)     # a 0-d keep stays 0-d
    for name, a in (("keep", keep), ("scale", np.asarray(scale, dtype=x.dtype))):
        try:
            views.append(np.broadcast_to(a, x.shape))
        except ValueError:
            raise ValueError(f"{name} of shape {a.shape} does not broadcast to x's shape {x.shape}") from None
    kview, sview = views
    if any(n != 1 and k == 0 and s != 0 for n, k, s in zip(x.shape, kview.strides, sview.strides)):
        raise ValueError("scale must broadcast to keep's shape (one scale per decision)")
    return kview, sview


def check_gaussian_flat(offset, sigma, x, out):
    check_float_arrays(x, out, bfloat16=False)
    _check_ndim(x, "x", 1)
    _check_contiguous(x, "x")
    _check_contiguous(out, "out")
    if not isinstance(sigma, REAL_SCALARS):
        raise TypeError(f"sigma must be a real number, got {_describe(sigma)}")
    check_runs((offset,), x.size)


# --- the dropout family's fused kernels ---------------------------------------------------------
def check_alpha_flat(offset, thr, coef, x, out):
    """dropout_flat's checks, with coef (a, b, d) three real numbers in place of the scale."""
    if not (isinstance(coef, tuple) and len(coef) == 3 and all(isinstance(c, REAL_SCALARS) for c in coef)):
        raise TypeError(f"coef must be a tuple of three real numbers (a, b, d), got {_describe(coef)}")
    check_dropout_flat(offset, thr, coef[0], x, out)


WORD_THRESHOLD_RANGE = 1 << 53      # corners compare the top 53 bits of a word


def check_dropblock_keep(offset, block, thr53, keep):
    """keep a writeable uint8 (N, C, H, W) array (any strides), 1 <= block <= min(H, W) unless
    keep is empty, thr53 an integer in [0, 2**53], the corner words in the index range."""
    _check_array(keep, "keep", np.uint8)
    _check_ndim(keep, "keep", 4)
    _check_writeable(keep)
    if not isinstance(block, (int, np.integer)) or isinstance(block, bool):
        raise TypeError(f"block must be an integer, got {_describe(block)}")
    if not isinstance(thr53, (int, np.integer)) or isinstance(thr53, bool):
        raise TypeError(f"thr53 must be an integer, got {_describe(thr53)}")
    if not 0 <= thr53 <= WORD_THRESHOLD_RANGE:
        raise ValueError(f"thr53 must be in [0, 2**53], got {thr53}")
    n, c, h, w = keep.shape
    if keep.size and not 1 <= block <= min(h, w):
        raise ValueError(f"block must be in [1, min(H, W)] = [1, {min(h, w)}], got {block}")
    if keep.size:
        check_runs((offset,), n * c * (h - block + 1) * (w - block + 1))


def check_dropout_shared(offset, thr, scale, x, out):
    """x and out C-contiguous 3-D (outer, shared, inner), a scalar thr and scale, the
    outer * inner decisions from offset in the index range."""
    check_float_arrays(x, out)
    _check_ndim(x, "x", 3)
    _check_contiguous(x, "x")
    _check_contiguous(out, "out")
    _check_rates(thr, scale, x, out, arrays=False)
    check_runs((offset,), x.shape[0] * x.shape[2])

# --- partial sums (_xoshiro.h: FD_SUM_BLOCK, FD_SUM_LANES) ----------------------------------------
SUM_BLOCK = 1024        # stream elements per partial sum of a reducing kernel (global, from element 0)
SUM_LANES = 16          # its lanes: stream element e adds to lane e % 16, in element order from +0


def sum_blocks(offset, n):
    """How many partial sums a reducing kernel over stream elements [offset, offset + n) writes."""
    return (offset + n - 1) // SUM_BLOCK - offset // SUM_BLOCK + 1 if n else 0


def check_partials(partials, offset, n):
    """partials: a writeable 1-D C-contiguous float64 array of one element per sum block."""
    _check_array(partials, "partials", np.float64)
    _check_ndim(partials, "partials", 1)
    _check_contiguous(partials, "partials")
    if not partials.flags.writeable:
        raise ValueError("partials must be writeable")
    expected = sum_blocks(offset, n)
    if partials.size != expected:
        raise ValueError(f"partials must have one element per sum block of {SUM_BLOCK} elements, "
                         f"{expected}, got {partials.size}")

def check_sum_terms(terms):
    """exact_sum's terms: a 1-D C-contiguous float64 array."""
    _check_array(terms, "terms", np.float64)
    _check_ndim(terms, "terms", 1)
    _check_contiguous(terms, "terms")

# --- Concrete dropout (_noise.h) --------------------------------------------------------------
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32_real(value, name, low):
    """A real number in [low, float32 max]: the kernels round it to float32."""
    if not isinstance(value, REAL_SCALARS) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    if not low <= value <= FLOAT32_MAX:
        raise ValueError(f"{name} must be in [{low:g}, {FLOAT32_MAX:g}] (a finite float32), got {value!r}")


def check_concrete_flat(offset, logit, inv_t, x, out):
    """gaussian_flat's arrays; logit a finite float32, inv_t (1 / temperature) one >= 0."""
    check_float_arrays(x, out, bfloat16=False)
    _check_ndim(x, "x", 1)
    _check_contiguous(x, "x")
    _check_contiguous(out, "out")
    _check_float32_real(logit, "logit", -FLOAT32_MAX)
    _check_float32_real(inv_t, "inv_t", 0.0)
    check_runs((offset,), x.size)


def check_concrete_grad_flat(offset, logit, inv_t, x, grad, out, partials):
    """check_concrete_flat's checks on (grad, out), x a 1-D C-contiguous float array of grad's
    length (any float dtype), partials a writeable float64 array of one element per sum block."""
    if not (isinstance(grad, np.ndarray) and grad.dtype.type in FLOAT_TYPES and grad.dtype.isnative):
        raise TypeError(f"grad must be a float16, float32 or float64 array in native byte order, "
                        f"got {_describe(grad)}")
    if not (isinstance(out, np.ndarray) and out.dtype == grad.dtype):
        raise TypeError(f"out must be an array of grad's dtype {grad.dtype}, got {_describe(out)}")
    if out.shape != grad.shape:
        raise ValueError(f"out must have grad's shape {grad.shape}, got {out.shape}")
    _check_writeable(out)
    _check_ndim(grad, "grad", 1)
    _check_contiguous(grad, "grad")
    _check_contiguous(out, "out")
    _check_float32_real(logit, "logit", -FLOAT32_MAX)
    _check_float32_real(inv_t, "inv_t", 0.0)
    check_runs((offset,), grad.size)
    if not (isinstance(x, np.ndarray) and x.dtype.type in FLOAT_TYPES and x.dtype.isnative):
        raise TypeError(f"x must be a float16, float32 or float64 array in native byte order, got {_describe(x)}")
    if x.shape != grad.shape:
        raise ValueError(f"x must have grad's shape {grad.shape}, got {x.shape}")
    _check_contiguous(x, "x")
    check_partials(partials, offset, grad.size)

# --- dropout_add -------------------------------------------------------------------------------
def check_dropout_add(offset, thr, scale, bias, x, residual, out):
    """x, residual and out C-contiguous arrays of one dtype and shape (any rank); thr and scale
    scalars, or arrays of x's shape (any strides: broadcast views) read as ``dropout_rows``
    reads them; bias None or an aligned array of x's dtype whose shape broadcasts to x's (any
    strides whole numbers of elements); the decisions in the index range."""
    check_float_arrays(x, out, bfloat16=False)
    _check_contiguous(x, "x")
    _check_contiguous(out, "out")
    if not (isinstance(residual, np.ndarray) and residual.dtype == x.dtype):
        raise TypeError(f"residual must be an array of x's dtype {x.dtype}, got {_describe(residual)}")
    if residual.shape != x.shape:
        raise ValueError(f"residual must have x's shape {x.shape}, got {residual.shape}")
    _check_contiguous(residual, "residual")
    _check_rates(thr, scale, x, out)
    if isinstance(thr, np.ndarray) and thr.shape != x.shape:
        raise ValueError(f"thr must have x's shape {x.shape} with a thr array, got {thr.shape}")
    if bias is not None:
        if not (isinstance(bias, np.ndarray) and bias.dtype == x.dtype):
            raise TypeError(f"bias must be None or an array of x's dtype {x.dtype}, got {_describe(bias)}")
        if bias.ndim > x.ndim or any(b not in (1, n) for b, n in zip(bias.shape[::-1], x.shape[::-1])):
            raise ValueError(f"bias must broadcast to x's shape {x.shape}, got {bias.shape}")
        # the stride of an axis of size 1 is never used (NumPy's flags ignore it too)
        if not bias.flags.aligned or any(s % bias.itemsize for s, n in zip(bias.strides, bias.shape) if n > 1):
            raise ValueError("bias must be aligned, with strides that are whole numbers of elements")
    check_runs((offset,), x.size)
