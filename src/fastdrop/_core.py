"""The private core: rates as thresholds and scales, masks, the fused passes, output staging.

Everything here takes arguments that ``_validation`` has already checked.  It is the only
module that calls the backend (``_backend.kernels()``): the public functions of
``functional``, ``family`` and ``box`` describe *what* to compute and come here for *how*.
"""
import contextlib
import functools
import math

import numpy as np

from . import _backend, _kernel_args, _memory
from ._stream import CHUNK_RANGE, stream_key
from ._validation import check_rate_shape


# --- rates -----------------------------------------------------------------------------------
def keep_threshold(p):
    """The integer threshold t of rate(s) ``p``: an element is kept when its decision is < t."""
    if isinstance(p, float):
        return int(np.floor((1.0 - p) * CHUNK_RANGE + 0.5))
    return np.floor((1.0 - p) * CHUNK_RANGE + 0.5).astype(np.uint32)


def inverse_keep(p, dtype):
    """``dtype(1 / (1 - p))``, the scale of kept elements (1 where p == 1: never used).

    In float16 it is inf for p > 1 - 1/65504, exactly as NumPy rounds it."""
    with np.errstate(divide="ignore", over="ignore"):
        if isinstance(p, float):
            return dtype.type(1.0 / (1.0 - p)) if p < 1.0 else dtype.type(1.0)
        return np.where(p < 1.0, 1.0 / (1.0 - p), 1.0).astype(dtype)


# Small caches for the common call: a forward and its backward share the seed and p, so
# they hit; fresh seeds (seed=None, layers' substreams) only cycle 64 entries.
@functools.lru_cache(maxsize=64)
def _scalar_rate(p, dtype):
    return keep_threshold(p), inverse_keep(p, dtype)


_cached_stream_key = functools.lru_cache(maxsize=64)(stream_key)


def rate_arrays(p, dtype, noise_shape):
    """(threshold, scale) for the kernels: scalars, or read-only views of the noise shape.

    The values are computed on p as given (O(p.size), C-contiguous) and broadcast as views
    with stride 0 on the broadcast axes, which the kernels read in place: a per-feature p
    costs the size of p, not of x.  Both views have the same layout in elements."""
    if isinstance(p, float):
        return _scalar_rate(p, dtype)
    check_rate_shape(p, noise_shape)
    return (np.broadcast_to(np.ascontiguousarray(keep_threshold(p)), noise_shape),
            np.broadcast_to(np.ascontiguousarray(inverse_keep(p, dtype)), noise_shape))


# --- output staging --------------------------------------------------------------------------
@contextlib.contextmanager
def kernel_target(out):
    """An array the kernels can write (C-contiguous, aligned, native byte order): ``out``
    itself, or a temporary that is copied into ``out`` when the block ends."""
    direct = out.flags.c_contiguous and out.flags.aligned and out.dtype.isnative
    target = out if direct else np.empty(out.shape, dtype=out.dtype.newbyteorder("="))
    yield target
    if target is not out:
        out[...] = target


def copy_into(x, out):
    """``x`` copied into ``out`` (the result of a call that drops nothing), unless it is x."""
    if out is not x:
        np.copyto(out, x)
    return out


# --- masks and passes --------------------------------------------------------------------------
def keep_mask(key, starts, thr, extent):
    """The uint8 keep mask (1 = kept) of a noise region of shape ``extent`` whose C-order runs
    begin at the stream indices ``starts`` (one start: the whole region is one run)."""
    keep = _memory.empty(extent, np.uint8)
    if keep.size:
        starts = np.asarray(starts, dtype=np.int64).reshape(-1)
        _backend.kernels().keep_mask_rows(key, starts, thr, keep.reshape(starts.size, -1))
    return keep


def apply_keep(x, keep, scale, out):
    """out = keep ? x * scale : 0 with keep/scale broadcast from the noise shape."""
    with kernel_target(out) as target:
        if x.size:
            _backend.kernels().apply_keep(np.ascontiguousarray(x), keep, scale, target)
    return out


_FULL_PIECE_BYTES = 128 << 10       # bytes per piece of an x or out the kernel cannot take as it is


def dropout_full(key, offset, thr, scale, x, out):
    """The fused one-pass path, mask as large as x: no mask is stored.  Per-element rates
    (views of x's shape) are read with their strides as the kernel goes.  Where x or out is
    not C-contiguous, aligned and native (a transposed view, a strided slice), the pass goes
    in pieces of leading-axis slices, each copied to and from a C-contiguous temporary at
    its own stream offset: the temporaries stay O(one piece), not O(x)."""
    if not x.size:
        return out
    if x.ndim and not all(a.flags.c_contiguous and a.flags.aligned and a.dtype.isnative for a in (x, out)):
        for index in _leading_pieces(x.shape, _FULL_PIECE_BYTES // x.itemsize):
            piece = out[index]
            _dropout_run(key, offset + _c_start(x.shape, index), thr if np.ndim(thr) == 0 else thr[index],
                         scale if np.ndim(scale) == 0 else scale[index], x[index], piece)
        return out
    _dropout_run(key, offset, thr, scale, x, out)
    return out


def _dropout_run(key, offset, thr, scale, x, out):
    """x (decision i of its C order: stream element offset + i) through the fused kernel into out."""
    with kernel_target(out) as target:
        xc = np.ascontiguousarray(x)
        if np.ndim(thr) == 0:
            _backend.kernels().dropout_flat(key, offset, thr, scale, xc.reshape(-1), target.reshape(-1),
                                            _backend.get_num_threads())
        else:
            _backend.kernels().dropout_rows(key, np.array([offset], dtype=np.int64), thr, scale,
                                            xc.reshape(1, -1), target.reshape(1, -1), _backend.get_num_threads())


def _c_start(shape, index):
    """The C-order flat index, in an array of ``shape``, of the first element of ``x[index]``
    (index: ``_leading_pieces``'s ints and one slice of the leading axes)."""
    start = 0
    for i, n in zip(index, shape):
        start = start * n + (i.start if isinstance(i, slice) else i)
    return start * math.prod(shape[len(index):])


def dropout_over(key, offset, thr, scale, x, noise_shape, out):
    """out = x * scale where kept, 0 where dropped, one decision per noise-shape element: the
    fused pass when the noise shape is x's, else a keep mask of the noise shape applied."""
    if noise_shape == x.shape:
        return dropout_full(key, offset, thr, scale, x, out)
    shared = _cached_shared_axes(x.shape, noise_shape) if np.ndim(thr) == 0 else None
    if shared is not None:
        return dropout_shared(key, offset, thr, scale, x, shared, out)
    return apply_keep(x, keep_mask(key, offset, thr, noise_shape), scale, out)


def dropout_plain(x, p, seed, offset, out):
    """The common call (``_validation.is_plain_dropout_call``): the fused kernel straight on
    x and out, with the cached threshold, scale and key: the same bits as ``dropout_full``."""
    return dropout_plain_key(x, p, _cached_stream_key(seed), offset, out)


def dropout_plain_over(x, p, seed, noise_shape, offset, out):
    """The common call with a noise shape (``_validation.is_shared_dropout_call``): the
    general path's kernels with the cached threshold, scale, key and axis split, and, for one
    broadcast group, ``dropout_shared``'s kernel straight on x and out (both C-contiguous)."""
    return dropout_plain_over_key(x, p, _cached_stream_key(seed), noise_shape, offset, out)


def dropout_plain_over_key(x, p, key, noise_shape, offset, out):
    """``dropout_plain_over`` for a caller that has the seed's stream key (a layer's window)."""
    thr, scale = _scalar_rate(p, x.dtype)
    y = _memory.empty_like(x) if out is None else out
    shared = _cached_shared_axes(x.shape, noise_shape)
    if shared is None:
        return dropout_over(key, offset, thr, scale, x, noise_shape, y)
    _backend.kernels().dropout_shared(key, offset, thr, scale, x.reshape(shared), y.reshape(shared),
                                      _backend.get_num_threads())
    return y


def dropout_plain_key(x, p, key, offset, out):
    """``dropout_plain`` for a caller that has the seed's stream key (a layer's window)."""
    thr, scale = _scalar_rate(p, x.dtype)
    y = _memory.empty_like(x) if out is None else out
    _backend.kernels().dropout_flat(key, offset, thr, scale, x.ravel(), y.ravel(), _backend.get_num_threads())
    return y


def dropout_runs(key, starts, thr, scale, x, out):
    """Row r of x (reshaped to one row per start) through the fused kernel from stream index
    starts[r], all in one call: no mask is stored.  Per-element rates are views of x's
    shape, read in place."""
    rows_in = x.reshape(starts.size, -1)        # a view when the runs are contiguous, as in a tile of a C array
    if rows_in.shape[1] > 1 and rows_in.strides[1] != x.itemsize:
        rows_in = np.ascontiguousarray(rows_in)
    with kernel_target(out) as target:
        _backend.kernels().dropout_rows(key, starts, thr, scale, rows_in, target.reshape(starts.size, -1),
                                        _backend.get_num_threads())
    return out


def stream_words(key, first_word, n):
    """Stream words first_word .. first_word + n - 1 as uint64 (the word-per-element variants)."""
    words = np.empty(n, dtype=np.uint64)
    if n:
        _backend.kernels().fill_words(key, first_word, words)
    return words


def gaussian_into(key, offset, sigma, half_noise, x, out):
    """out = x * (1 + sigma * z), z the float32 standard normal offset + i of the stream (word (offset + i) // 2), in
    one pass of the kernel (no noise array); the noise is rounded to float16 where half_noise."""
    if x.size:
        with kernel_target(out) as target:
            _backend.kernels().gaussian_flat(key, offset, sigma, half_noise, np.ascontiguousarray(x).reshape(-1),
                                             target.reshape(-1), _backend.get_num_threads())
    return out


# --- the dropout family's fused kernels ----------------------------------------------------------
def alpha_full(key, offset, thr, coef, x, out):
    """out = kept ? x * a + b : d in one pass (coef = (a, b, d)), no temporaries of x's size."""
    if x.size:
        with kernel_target(out) as target:
            _backend.kernels().alpha_flat(key, offset, thr, coef, np.ascontiguousarray(x).reshape(-1),
                                          target.reshape(-1), _backend.get_num_threads())
    return out


def dropblock_keep(key, offset, block, thr53, keep):
    """DropBlock's keep bytes into the uint8 (N, C, H, W) array or view ``keep``; the kept count."""
    return _backend.kernels().dropblock_keep(key, offset, block, thr53, keep, _backend.get_num_threads())


# --- a mask shared along a middle axis (variational dropout, channels_last spatial dropout) ---
@functools.lru_cache(maxsize=64)
def shared_axes(shape, noise_shape):
    """(outer, shared, inner) when the noise shape keeps x's leading and trailing axes, none or
    some of either, and is 1 on the axes between them (those of size 1 in x aside): then noise
    element (a, f) is the decision of x's elements (a, t, f) for every t (inner is 1 where no
    trailing axis is kept: drop_path, channels_first spatial dropout).  Else None."""
    pattern = ["k" if m == n else "b" for n, m in zip(shape, noise_shape) if n != 1]
    text = "".join(pattern)
    lead = len(text) - len(text.lstrip("k"))
    middle = len(text[lead:]) - len(text[lead:].lstrip("b"))
    if middle == 0 or "b" in text[lead + middle:]:
        return None
    sizes = [n for n in shape if n != 1]
    return math.prod(sizes[:lead]), math.prod(sizes[lead:lead + middle]), math.prod(sizes[lead + middle:])


_cached_shared_axes = functools.lru_cache(maxsize=256)(shared_axes)


def dropout_shared(key, offset, thr, scale, x, shared, out):
    """Dropout with one decision per noise element broadcast along the middle axis of
    ``shared`` = (outer, shared, inner), in one kernel pass: no keep mask of x's size, each
    noise element's decision drawn once."""
    if x.size:
        with kernel_target(out) as target:
            _backend.kernels().dropout_shared(key, offset, thr, scale, np.ascontiguousarray(x).reshape(shared),
                                              target.reshape(shared), _backend.get_num_threads())
    return out

# --- Concrete dropout (_noise.h) -------------------------------------------------------------------
def concrete_into(key, offset, logit, inv_t, x, out):
    """out = x * dtype(w), w the float32 relaxed keep weight of stream word offset + i, in one
    pass of the kernel (no noise array)."""
    if x.size:
        with kernel_target(out) as target:
            _backend.kernels().concrete_flat(key, offset, logit, inv_t, np.ascontiguousarray(x).reshape(-1),
                                             target.reshape(-1), _backend.get_num_threads())
    return out


def concrete_grad_into(key, offset, logit, inv_t, x, grad, out):
    """out = grad * dtype(w) in one pass that also sums the rate gradient: the kernel's partial
    sums per block of 1024 stream elements (independent of threads and backend) added by
    ``math.fsum`` (exactly rounded: their order does not matter); returns that sum."""
    if not grad.size:
        return 0.0
    partials = np.empty(_kernel_args.sum_blocks(offset, grad.size), dtype=np.float64)
    with kernel_target(out) as target:
        _backend.kernels().concrete_grad_flat(key, offset, logit, inv_t, np.ascontiguousarray(x).reshape(-1),
                                              np.ascontiguousarray(grad).reshape(-1), target.reshape(-1), partials,
                                              _backend.get_num_threads())
    return exact_sum(partials)


def exact_sum(partials):
    """A reducing kernel's partial sums added exactly rounded (``math.fsum``: their order, hence
    the thread count and the backend, does not matter); inf or nan as the terms say where the
    sum leaves float64's range or meets inf - inf."""
    try:
        return math.fsum(partials.tolist())
    except (OverflowError, ValueError):
        with np.errstate(invalid="ignore", over="ignore"):
            return float(np.sum(partials))

# --- dropout and the sum of |x| (AdaptiveDropout's activity) --------------------------------------
def dropout_abs_sum_key(x, p, key, offset):
    """(dropout of x, the sum of |x|) in one pass: the common call (x as ``dropout_plain_key``
    takes it, 0 < p < 1) with the seed's stream key.  The sum is ``abs_sum``'s."""
    thr, scale = _scalar_rate(p, x.dtype)
    y = _memory.empty_like(x)
    partials = np.empty(_kernel_args.sum_blocks(offset, x.size), dtype=np.float64)
    _backend.kernels().dropout_abs_flat(key, offset, thr, scale, x.ravel(), y.ravel(), partials,
                                        _backend.get_num_threads())
    return y, exact_sum(partials)


_ABS_SUM_PIECE_BLOCKS = 8          # sum blocks per piece of an input the kernel cannot read in place


def abs_sum(x, offset=0):
    """The sum of |x| over x in C order, the same float on every backend, ISA and thread count:
    float64 partial sums per block of 1024 stream elements from ``offset`` (the kernels'
    layout, ``_kernel_args.SUM_BLOCK``) added by ``exact_sum``.  An input the kernel cannot
    read in place (strided, misaligned, byte-swapped) is copied a piece of whole sum blocks
    at a time, so the temporaries stay O(one piece), not O(x)."""
    partials = np.empty(_kernel_args.sum_blocks(offset, x.size), dtype=np.float64)
    kernels, threads = _backend.kernels(), _backend.get_num_threads()
    if x.flags.c_contiguous and x.flags.aligned and x.dtype.isnative:
        if x.size:
            kernels.abs_sums(offset, x.reshape(-1), partials, threads)
        return exact_sum(partials)
    native, block = x.dtype.newbyteorder("="), _kernel_args.SUM_BLOCK
    flat = x.reshape(-1) if x.flags.c_contiguous else x.flat        # C order; slices of x.flat are copies
    piece = _ABS_SUM_PIECE_BLOCKS * block
    pos = k = 0
    while pos < x.size:
        end = min(x.size, pos + piece - (offset + pos) % block)    # ends on a sum block's end
        blocks = _kernel_args.sum_blocks(offset + pos, end - pos)
        kernels.abs_sums(offset + pos, np.require(flat[pos:end], native, "CA"), partials[k:k + blocks], threads)
        pos, k = end, k + blocks
    return exact_sum(partials)

# --- dropout_add -----------------------------------------------------------------------------------
_ADD_PIECE_ELEMENTS = 1 << 16       # elements per piece of the unfused paths: temporaries stay in cache


def _leading_pieces(shape, limit):
    """Basic indices covering an array of ``shape`` (ndim >= 1) in C order with slices of the
    leading axes of at most ``limit`` elements (a whole last-axis row at least)."""
    inner = 1
    for n in shape[1:]:
        inner *= n
    if inner == 0:
        return
    if inner <= limit or len(shape) == 1:
        step = max(1, limit // inner)
        for i in range(0, shape[0], step):
            yield (slice(i, i + step),)
        return
    for i in range(shape[0]):
        for index in _leading_pieces(shape[1:], limit):
            yield (i,) + index


def _narrowed(a, index):
    """``a[index]`` for an array ``a`` that broadcasts to the indexed array's shape (same ndim,
    size-1 axes): an axis of size 1 is kept whole (or taken at 0 where index takes one entry)."""
    return a[tuple((0 if isinstance(i, int) else slice(None)) if n == 1 else i for i, n in zip(index, a.shape))]


def residual_add(x, residual, bias, out, keep=None, scale=None):
    """out = residual + select(keep, (x + bias) * scale, +0.0) (where keep is None: residual +
    (x + bias)), each operation rounded in x's dtype, in pieces: the paths the fused kernel
    does not take (eval, p == 0, a shared mask of a noise shape).  keep (uint8) and scale
    (a scalar or a view of keep's shape) have x's ndim; bias broadcasts to x."""
    if bias is None and keep is None:
        with np.errstate(over="ignore", invalid="ignore"):      # inf/NaN inputs, as in the kernels
            return np.add(residual, x, out=out)
    target = out
    if x.ndim == 0:             # with a bias, no mask: the noise shape of a 0-d x is x's (the fused pass)
        x, residual, target = x.reshape(1), residual.reshape(1), out.reshape(1)
    if bias is not None:
        bias = np.broadcast_to(bias, x.shape)
    for index in _leading_pieces(x.shape, _ADD_PIECE_ELEMENTS):
        piece = x[index]
        h = np.empty(piece.shape, dtype=x.dtype)
        with np.errstate(over="ignore", invalid="ignore"):      # inf/NaN inputs, as in the kernels
            if bias is None:
                np.copyto(h, piece)
            else:
                np.add(piece, bias[index], out=h)
            if keep is not None:
                _backend.kernels().apply_keep(h, _narrowed(keep, index),
                                              scale if np.ndim(scale) == 0 else _narrowed(scale, index), h)
            np.add(residual[index], h, out=target[index])
    return out


def dropout_add_plain(x, residual, p, bias, seed, offset, out):
    """dropout_add's common call (``_validation.is_plain_dropout_add_call``): the fused kernel
    straight on the arrays (a bias of x's last axes read in place as it is), with the cached
    threshold, scale and key: the same bits as ``dropout_add_over``."""
    return dropout_add_plain_key(x, residual, p, bias, _cached_stream_key(seed), offset, out)


def dropout_add_plain_key(x, residual, p, bias, key, offset, out):
    """``dropout_add_plain`` for a caller that has the seed's stream key (a layer's window)."""
    thr, scale = _scalar_rate(p, x.dtype)
    y = _memory.empty_like(x) if out is None else out
    _backend.kernels().dropout_add(key, offset, thr, scale, bias, x, residual, y, _backend.get_num_threads())
    return y


def dropout_add_over(key, offset, thr, scale, x, residual, bias, noise_shape, out):
    """out = residual + dropout(x + bias) with one decision per noise-shape element: the fused
    kernel in one pass when the noise shape is x's (per-element rates and the bias read in
    place, as views of x's shape), else the keep mask of the noise shape applied in pieces."""
    if noise_shape != x.shape:
        return residual_add(x, residual, bias, out, keep_mask(key, offset, thr, noise_shape), scale)
    if x.size:
        with kernel_target(out) as target:
            # reshape: np.ascontiguousarray makes a 0-d array 1-d
            bias = None if bias is None else np.ascontiguousarray(bias).reshape(bias.shape)
            _backend.kernels().dropout_add(key, offset, thr, scale, bias, np.ascontiguousarray(x).reshape(x.shape),
                                           np.ascontiguousarray(residual).reshape(x.shape), target,
                                           _backend.get_num_threads())
    return out
