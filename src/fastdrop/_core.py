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


# --- passes in pieces ---------------------------------------------------------------------------
PIECE_BYTES = 128 << 10         # per operand of a pass in pieces: its temporaries stay in L2


def takes_as_is(a):
    """True when a kernel reads or writes ``a`` in place: C-contiguous, aligned, native order."""
    return a.flags.c_contiguous and a.flags.aligned and a.dtype.isnative


def flat_pass(offset, out, inputs, run, rates=()):
    """``run(pos, target, *pieces)`` over elements [pos, pos + target.size) of C-order arrays
    of one shape (stream elements from offset + pos): once over the whole arrays (pos 0, in
    their shapes) when out and the inputs are all C-contiguous, aligned and native, else
    piece by piece, each piece 1-D.
    A piece covers whole sum blocks of the stream (so reducing kernels write whole partials)
    and about PIECE_BYTES of its widest operand; each operand the kernel cannot take as it
    is (a transposed or strided view, a byte-swapped or misaligned array) is copied into a
    C-contiguous native temporary of the piece, and out's piece copied back: temporaries of
    O(one piece), not O(x).  ``rates`` (views of x's shape, read with their strides) are
    passed whole, or a piece of them each.  out may be None (a reduction alone) or an input
    (in place: each piece is read before it is written).  Returns out."""
    n = inputs[0].size
    if not n:
        return out
    operands = inputs if out is None else (out,) + inputs
    if all(takes_as_is(a) for a in operands):
        run(0, out, *inputs, *rates)
        return out
    block = _kernel_args.SUM_BLOCK
    piece = max(1, PIECE_BYTES // max(a.itemsize for a in operands) // block) * block
    pos = 0
    while pos < n:
        end = min(n, pos + piece - (offset + pos) % block)      # ends on a sum block's end
        target = None if out is None else (out.reshape(-1)[pos:end] if takes_as_is(out)
                                           else np.empty(end - pos, out.dtype.newbyteorder("=")))
        run(pos, target, *(a.reshape(-1)[pos:end] if takes_as_is(a) else flat_range(a, pos, end) for a in inputs),
            *(flat_range(r, pos, end) for r in rates))
        if out is not None and not takes_as_is(out):
            set_flat_range(out, pos, target)
        pos = end
    return out


def _range_indices(shape, start, stop):
    """Basic indices (ints, then one slice) of an array of ``shape`` (ndim >= 1) whose parts,
    in order, are its C-order elements [start, stop): a partial row, whole rows, a partial
    row at each level."""
    if len(shape) == 1:
        yield (slice(start, stop),)
        return
    inner = math.prod(shape[1:])
    first, last = start // inner, (stop - 1) // inner
    if first == last or start % inner:
        for index in _range_indices(shape[1:], start - first * inner, min(stop, (first + 1) * inner) - first * inner):
            yield (first,) + index
        first += 1
    if first * inner >= stop:
        return
    if stop // inner > first:
        yield (slice(first, stop // inner),)
    if stop % inner and stop // inner >= first:
        for index in _range_indices(shape[1:], 0, stop % inner):
            yield (stop // inner,) + index


def flat_range(a, start, stop):
    """a's C-order elements [start, stop) as a new C-contiguous 1-D array of a's dtype in
    native byte order (strided copies of a's parts, not an element-wise walk)."""
    buffer = np.empty(stop - start, dtype=a.dtype.newbyteorder("="))
    if a.ndim == 0:
        buffer[...] = a
        return buffer
    pos = 0
    for index in _range_indices(a.shape, start, stop):
        part = a[index]
        buffer[pos:pos + part.size].reshape(part.shape)[...] = part
        pos += part.size
    return buffer


def set_flat_range(a, start, values):
    """a's C-order elements [start, start + values.size) = values (1-D)."""
    if a.ndim == 0:
        a[...] = values[0]
        return
    pos = 0
    for index in _range_indices(a.shape, start, start + values.size):
        part = a[index]
        a[index] = values[pos:pos + part.size].reshape(part.shape)
        pos += part.size


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
    """out = keep ? x * scale : 0 with keep/scale broadcast from the noise shape (a piece of
    each at a time where x or out goes in pieces, ``flat_pass``)."""
    if all(takes_as_is(a) for a in (x, out)):       # keep and scale of the noise shape, read in place
        if x.size:
            _backend.kernels().apply_keep(x, keep, scale, out)
        return out
    return flat_pass(0, out, (x,), lambda pos, target, piece, keep, scale:
                     _backend.kernels().apply_keep(piece, keep, scale, target),
                     (np.broadcast_to(keep, x.shape), np.broadcast_to(np.asarray(scale, x.dtype), x.shape)))


def dropout_full(key, offset, thr, scale, x, out):
    """The fused one-pass path, mask as large as x: no mask is stored.  Per-element rates
    (views of x's shape) are read with their strides as the kernel goes, or a piece of them
    at a time where x goes in pieces (``flat_pass``)."""
    def run(pos, target, piece, *rates):
        if rates:
            _backend.kernels().dropout_rows(key, np.array([offset + pos], dtype=np.int64), *rates, piece.reshape(1, -1),
                                            target.reshape(1, -1), _backend.get_num_threads())
        else:
            _backend.kernels().dropout_flat(key, offset + pos, thr, scale, piece.reshape(-1), target.reshape(-1),
                                            _backend.get_num_threads())
    return flat_pass(offset, out, (x,), run, () if np.ndim(thr) == 0 else (thr, scale))


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
    return flat_pass(offset, out, (x,), lambda pos, target, piece: _backend.kernels().gaussian_flat(
        key, offset + pos, sigma, half_noise, piece.reshape(-1), target.reshape(-1), _backend.get_num_threads()))


# --- the dropout family's fused kernels ----------------------------------------------------------
def alpha_full(key, offset, thr, coef, x, out):
    """out = kept ? x * a + b : d in one pass (coef = (a, b, d)), no temporaries of x's size."""
    return flat_pass(offset, out, (x,), lambda pos, target, piece: _backend.kernels().alpha_flat(
        key, offset + pos, thr, coef, piece.reshape(-1), target.reshape(-1), _backend.get_num_threads()))


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
    noise element's decision drawn once.  Where x or out is not as the kernel takes it, the
    pass goes in pieces of x's C order (_shared_pieces), copied as ``flat_pass`` copies."""
    if not x.size:
        return out
    kernel, threads = _backend.kernels().dropout_shared, _backend.get_num_threads()
    if takes_as_is(x) and takes_as_is(out):
        kernel(key, offset, thr, scale, x.reshape(shared), out.reshape(shared), threads)
        return out
    for start, stop, piece_shape, decision in _shared_pieces(shared, PIECE_BYTES // x.itemsize):
        piece = x.reshape(-1)[start:stop] if takes_as_is(x) else flat_range(x, start, stop)
        target = out.reshape(-1)[start:stop] if takes_as_is(out) else np.empty(stop - start, out.dtype.newbyteorder("="))
        kernel(key, offset + decision, thr, scale, piece.reshape(piece_shape), target.reshape(piece_shape), threads)
        if not takes_as_is(out):
            set_flat_range(out, start, target)
    return out


def _shared_pieces(shared, limit):
    """(start, stop, (outer, shared, inner) of the piece, its first decision) of pieces of
    about ``limit`` elements covering an array of ``shared`` = (outer, shared, inner) in C
    order: whole outer rows, else rows of the middle axis, else parts of one such row.  The
    piece's decision (a, f) is the array's (a0 + a, f0 + f): its first is a0 * inner + f0."""
    outer, middle, inner = shared
    row = middle * inner
    if row <= limit:
        step = limit // row
        for a in range(0, outer, step):
            n = min(step, outer - a)
            yield a * row, (a + n) * row, (n, middle, inner), a * inner
    elif inner <= limit:
        step = limit // inner
        for a in range(outer):
            for t in range(0, middle, step):
                n = min(step, middle - t)
                yield a * row + t * inner, a * row + (t + n) * inner, (1, n, inner), a * inner
    else:
        for a in range(outer):
            for t in range(middle):
                for f in range(0, inner, limit):
                    n = min(limit, inner - f)
                    yield a * row + t * inner + f, a * row + t * inner + f + n, (1, 1, n), a * inner + f

# --- Concrete dropout (_noise.h) -------------------------------------------------------------------
def concrete_into(key, offset, logit, inv_t, x, out):
    """out = x * dtype(w), w the float32 relaxed keep weight of stream word offset + i, in one
    pass of the kernel (no noise array)."""
    return flat_pass(offset, out, (x,), lambda pos, target, piece: _backend.kernels().concrete_flat(
        key, offset + pos, logit, inv_t, piece.reshape(-1), target.reshape(-1), _backend.get_num_threads()))


def concrete_grad_into(key, offset, logit, inv_t, x, grad, out):
    """out = grad * dtype(w) in one pass that also sums the rate gradient: the kernel's partial
    sums per block of 1024 stream elements (independent of threads and backend) added by
    ``exact_sum`` (exactly rounded: their order does not matter); returns that sum."""
    partials = np.empty(_kernel_args.sum_blocks(offset, grad.size), dtype=np.float64)
    first = offset // _kernel_args.SUM_BLOCK

    def run(pos, target, x, grad):
        k = (offset + pos) // _kernel_args.SUM_BLOCK - first
        _backend.kernels().concrete_grad_flat(key, offset + pos, logit, inv_t, x.reshape(-1), grad.reshape(-1),
                                              target.reshape(-1),
                                              partials[k:k + _kernel_args.sum_blocks(offset + pos, grad.size)],
                                              _backend.get_num_threads())
    flat_pass(offset, out, (x, grad), run)
    return exact_sum(partials)


def exact_sum(partials):
    """A reducing kernel's partial sums added exactly rounded (the backend's ``exact_sum``:
    their order, hence the thread count and the backend, does not matter); inf or nan as
    IEEE addition of the non-finite terms says."""
    return _backend.kernels().exact_sum(partials)

# --- dropout and the sum of |x| (AdaptiveDropout's activity) --------------------------------------
def dropout_abs_sum_key(x, p, key, offset):
    """(dropout of x, the sum of |x|) in one pass: the common call (x as ``dropout_plain_key``
    takes it, 0 < p < 1) with the seed's stream key.  The sum is ``abs_sum``'s."""
    thr, scale = _scalar_rate(p, x.dtype)
    y = _memory.empty_like(x)
    total = _backend.kernels().dropout_abs_flat(key, offset, thr, scale, x.ravel(), y.ravel(), None,
                                                _backend.get_num_threads())
    return y, total


def abs_sum(x, offset=0):
    """The sum of |x| over x in C order, the same float on every backend, ISA and thread count:
    float64 partial sums per block of 1024 stream elements from ``offset`` (the kernels'
    layout, ``_kernel_args.SUM_BLOCK``) added by ``exact_sum``; in pieces of whole sum blocks
    where the kernel cannot read x as it is (``flat_pass``)."""
    partials = np.empty(_kernel_args.sum_blocks(offset, x.size), dtype=np.float64)
    first = offset // _kernel_args.SUM_BLOCK

    def run(pos, _, piece):
        k = (offset + pos) // _kernel_args.SUM_BLOCK - first
        _backend.kernels().abs_sums(offset + pos, piece.reshape(-1),
                                    partials[k:k + _kernel_args.sum_blocks(offset + pos, piece.size)],
                                    _backend.get_num_threads())
    flat_pass(offset, None, (x,), run)
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
    kernel, threads = _backend.kernels().dropout_add, _backend.get_num_threads()
    if all(takes_as_is(a) for a in (x, residual, out)):
        if x.size:
            # the bias is small (x's last axes): a copy where it is not C-contiguous; reshape:
            # np.ascontiguousarray makes a 0-d array 1-d
            bias = None if bias is None else np.ascontiguousarray(bias).reshape(bias.shape)
            kernel(key, offset, thr, scale, bias, x, residual, out, threads)
        return out
    rates = () if np.ndim(thr) == 0 else (thr, scale)

    def run(pos, target, x, residual, *pieces):
        piece_rates, piece_bias = (pieces[:2], pieces[2:]) if rates else ((thr, scale), pieces)
        kernel(key, offset + pos, *piece_rates, piece_bias[0] if piece_bias else None, x, residual, target, threads)
    return flat_pass(offset, out, (x, residual), run,
                     rates + (() if bias is None else (np.broadcast_to(bias, x.shape),)))
