"""The NumPy twin of the compiled kernels: same streams, same bits.

It is the fallback when the extension is not built and the oracle the tests hold the
kernels to.  The stream layout is described in ``_xoshiro.h``; every backend exposes
the public functions below (fill_words, keep_mask_rows, apply_keep, dropout_flat,
dropout_rows) with the same arguments.
"""
import math

import numpy as np

LANES = 8
STEPS = 32
BLOCK_WORDS = LANES * STEPS
BLOCK_CHUNKS = 4 * BLOCK_WORDS
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_BATCH_BLOCKS = 2048          # blocks generated per NumPy pass: bounds temporary memory


def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


_SHIFT = {k: np.array(k, dtype=np.uint64) for k in (17, 19, 23, 41, 45)}   # 0-d arrays: ~25% faster than scalars


def _block_words(key, blocks):
    """Words of the blocks numbered ``blocks`` (uint64 array) as uint64 (len(blocks), 256).

    With few lanes NumPy's per-call and allocation costs, not the arithmetic, set the
    speed: every operation writes into a preallocated array (positional ``out``), shift
    counts are 0-d arrays, and the state is one stacked array so that the four seeds and
    each pair of independent xors take one call each."""
    nblocks = blocks.size
    with np.errstate(over="ignore"):
        lane = blocks.astype(np.uint64)[:, None] * np.uint64(LANES) + np.arange(LANES, dtype=np.uint64)
        x = _mix64(np.uint64(key) + (lane + np.uint64(1)) * GOLDEN)
        state = _mix64(x + np.arange(1, 5, dtype=np.uint64)[:, None, None] * GOLDEN)
        s0, s1, s2, s3 = state
        low, high, high_reversed = state[0:2], state[2:4], state[3:1:-1]
        out = np.empty((nblocks, STEPS, LANES), dtype=np.uint64)
        t, u = np.empty_like(x), np.empty_like(x)
        for step in range(STEPS):
            np.add(s0, s3, t)                          # word = rotl(s0 + s3, 23) + s0
            np.left_shift(t, _SHIFT[23], u)
            np.right_shift(t, _SHIFT[41], t)
            np.bitwise_or(u, t, t)
            np.add(t, s0, out[:, step])
            np.left_shift(s1, _SHIFT[17], t)           # t = s1 << 17
            np.bitwise_xor(high, low, high)            # s2 ^= s0; s3 ^= s1
            np.bitwise_xor(low, high_reversed, low)    # s0 ^= s3; s1 ^= s2
            np.bitwise_xor(s2, t, s2)
            np.left_shift(s3, _SHIFT[45], t)           # s3 = rotl(s3, 45)
            np.right_shift(s3, _SHIFT[19], s3)
            np.bitwise_or(s3, t, s3)
    return out.reshape(nblocks, BLOCK_WORDS)


def fill_words(key, first_word, out):
    """Fill the uint64 array ``out`` with stream words first_word, first_word+1, ..."""
    n = out.size
    pos = 0
    while pos < n:
        w = first_word + pos
        b0 = w // BLOCK_WORDS
        take = min(n - pos, _BATCH_BLOCKS * BLOCK_WORDS - (w - b0 * BLOCK_WORDS))     # Python ints: no overflow
        nb = (w + take - 1) // BLOCK_WORDS - b0 + 1
        words = _block_words(key, np.arange(b0, b0 + nb, dtype=np.uint64)).ravel()
        out[pos:pos + take] = words[w - b0 * BLOCK_WORDS:w - b0 * BLOCK_WORDS + take]
        pos += take
    return out


def _chunks(key, offset, n):
    """The 16-bit decision values of elements [offset, offset + n) as uint16."""
    first = offset // 4
    words = fill_words(key, first, np.empty((offset + n + 3) // 4 - first, dtype=np.uint64))
    chunks = words.astype("<u8", copy=False).view("<u2")
    return chunks[offset - 4 * first:offset - 4 * first + n]


def keep_mask_rows(key, starts, thr, out):
    """out[r, i] = 1 if element starts[r] + i is kept (decision value < thr), else 0.

    ``out`` is a C-contiguous uint8 array (nrows, rowlen), ``starts`` int64 (nrows,);
    ``thr`` is an int, or a uint32 array of out's size in any shape and strides (per-element
    rates, usually a broadcast view) whose C-order elements are out's."""
    region = out.shape if np.ndim(thr) == 0 else thr.shape
    keep = out.reshape(region)
    for pos, n, index in _pieces(region, _piece_limit(out.shape)):
        piece = keep[index]
        t = thr if np.ndim(thr) == 0 else thr[index]
        np.less(_decisions(key, starts, out.shape[1], pos, n).reshape(piece.shape), t, out=piece, casting="unsafe")
    return out


def _piece_limit(rows_shape):
    """Elements per NumPy pass over runs of this (nrows, rowlen) layout: bounded so that a
    pass generates at most about _BATCH_BLOCKS blocks (a short run touches up to 2)."""
    nrows, rowlen = rows_shape
    if nrows > 1 and rowlen < BLOCK_CHUNKS:
        return max(1, _BATCH_BLOCKS // 2 * rowlen)
    return _BATCH_BLOCKS * BLOCK_CHUNKS


def _pieces(shape, limit, start=0):
    """(flat start, size, index) covering an array of ``shape`` in C order with contiguous
    flat ranges of at most ``limit`` elements; ``index`` is the basic index selecting one
    as a view (of any array of ``shape``, broadcast views of rates included)."""
    if not shape:
        yield start, 1, (Ellipsis,)
        return
    inner = math.prod(shape[1:])
    if inner == 0:
        return
    if inner <= limit:
        step = limit // inner
        for i in range(0, shape[0], step):
            stop = min(shape[0], i + step)
            yield start + i * inner, (stop - i) * inner, (slice(i, stop), Ellipsis)
        return
    for i in range(shape[0]):
        for pos, n, index in _pieces(shape[1:], limit, start + i * inner):
            yield pos, n, (i,) + index


def _decisions(key, starts, rowlen, pos, n):
    """Decision values of flat elements [pos, pos + n) of runs of ``rowlen`` elements, run r
    being stream elements starts[r], starts[r] + 1, ..."""
    r0, r1 = pos // rowlen, (pos + n - 1) // rowlen
    if r0 == r1:
        return _chunks(key, int(starts[r0]) + pos - r0 * rowlen, n)
    if rowlen >= BLOCK_CHUNKS:
        return np.concatenate([_chunks(key, int(starts[r]) + max(pos - r * rowlen, 0),
                                       min(pos + n - r * rowlen, rowlen) - max(pos - r * rowlen, 0))
                               for r in range(r0, r1 + 1)])
    j = np.arange(pos, pos + n, dtype=np.int64)
    return _chunks_at(key, np.asarray(starts, dtype=np.int64)[j // rowlen] + j % rowlen)


def apply_keep(x, keep, scale, out):
    """out = keep ? x * scale : 0, broadcasting keep (uint8) and scale against x, in passes
    of bounded size (the select's temporary is a pass's, not the array's)."""
    x, keep, scale = (np.broadcast_to(_trim(a, out.ndim), out.shape) for a in (x, keep, scale))
    for _, _, index in _pieces(out.shape, _BATCH_BLOCKS * BLOCK_CHUNKS):
        _scale_and_select(x[index], scale[index], keep[index], out[index])
    return out


def _trim(a, ndim):
    """``a`` without leading length-1 axes beyond ``ndim``: results are written into out in
    place, so operands cannot have more axes (np.ascontiguousarray makes a 0-d x (1,))."""
    a = np.asarray(a)
    return a.reshape(a.shape[a.ndim - ndim:]) if a.ndim > ndim else a


def _scale_and_select(x, scale, keep, out):
    """Multiply in place, then AND the bits with all-ones (kept) or zero (dropped): no
    temporaries of x's size, and no branchy masked copy (np.copyto(where=) is ~10x slower)."""
    with np.errstate(over="ignore", invalid="ignore"):     # inf/NaN inputs, as in the kernels
        np.multiply(x, scale, out=out, dtype=x.dtype)
    bits = out.view(f"u{out.itemsize}")
    np.bitwise_and(bits, np.negative(keep.view(np.uint8), dtype=bits.dtype), out=bits)


def dropout_flat(key, offset, thr, scale, x, out, nthreads=1):
    """Fused mask generation and scaling over 1-D arrays (``out`` may be ``x``)."""
    step = _BATCH_BLOCKS * BLOCK_CHUNKS
    keep = np.empty(min(step, x.size), dtype=np.uint8)
    for pos in range(0, x.size, step):
        end = min(x.size, pos + step)
        np.less(_chunks(key, offset + pos, end - pos), thr, out=keep[:end - pos], casting="unsafe")
        _scale_and_select(x[pos:end], scale, keep[:end - pos], out[pos:end])
    return out


def dropout_rows(key, starts, thr, scale, x, out, nthreads=1):
    """``dropout_flat`` on each row of 2-D ``x`` and ``out``; row r starts at decision starts[r].

    ``thr`` and ``scale`` are scalars, or per-element rates: a uint32 array and an array of
    x's dtype of one shape (any strides: broadcast views), whose C-order elements are x's
    rows one after the other; then ``out`` is C-contiguous and each pass reads its slice
    of the rates, never expanding them."""
    if np.ndim(thr) == 0:
        for start, row_in, row_out in zip(starts.tolist(), x, out):
            dropout_flat(key, start, thr, scale, row_in, row_out)
        return out
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous with per-element rates")
    region = thr.shape
    xs, outs = x.reshape(region), out.reshape(region)
    for pos, n, index in _pieces(region, _piece_limit(out.shape)):
        piece = outs[index]
        keep = np.less(_decisions(key, starts, out.shape[1], pos, n).reshape(piece.shape), thr[index])
        _scale_and_select(xs[index], scale[index], keep, piece)
    return out


def _chunks_at(key, idx):
    """Decision values at arbitrary global element indices ``idx`` (int64 array)."""
    blocks, where = np.unique(idx // BLOCK_CHUNKS, return_inverse=True)
    words = _block_words(key, blocks)
    chunks = words.astype("<u8", copy=False).view("<u2").reshape(-1, BLOCK_CHUNKS)
    return chunks[where.reshape(idx.shape), idx % BLOCK_CHUNKS]
