"""The NumPy twin of the compiled kernels: same streams, same bits.

It is the fallback when the extension is not built and the oracle the tests hold the
kernels to.  The stream layout is ``_stream``'s; every backend exposes the public
functions below (fill_words, keep_mask_rows, apply_keep, dropout_flat, dropout_rows, gaussian_flat,
alpha_flat, dropblock_keep, dropout_shared, concrete_flat, concrete_grad_flat, dropout_add,
dropout_abs_flat, abs_sums) with
the same arguments and the same checks (``_kernel_args``).
"""
import fractions
import math

import numpy as np

from . import _kernel_args, _stream
from ._stream import BLOCK_CHUNKS, BLOCK_WORDS, CHUNK_BITS, CHUNKS_PER_WORD, LANES, STEPS

GOLDEN = np.uint64(_stream.GOLDEN)
_MIX_MULTIPLIERS = tuple(np.uint64(m) for m in _stream.MIX_MULTIPLIERS)
_MIX_SHIFTS = tuple(np.uint64(k) for k in _stream.MIX_SHIFTS)
_CHUNK = f"<u{CHUNK_BITS // 8}"   # a decision as a little-endian integer: word w's k-th is bits [16k, 16k+16)
_BATCH_BLOCKS = 2048          # blocks generated per NumPy pass: bounds temporary memory


def _mix64(z):
    z = (z ^ (z >> _MIX_SHIFTS[0])) * _MIX_MULTIPLIERS[0]
    z = (z ^ (z >> _MIX_SHIFTS[1])) * _MIX_MULTIPLIERS[1]
    return z ^ (z >> _MIX_SHIFTS[2])


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
    """Fill the C-contiguous uint64 array ``out`` with stream words first_word, first_word+1, ..."""
    _kernel_args.check_fill_words(first_word, out)
    return _fill_words(key, first_word, out)


def _fill_words(key, first_word, out):
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
    first = offset // CHUNKS_PER_WORD
    words = _fill_words(key, first, np.empty((offset + n - 1) // CHUNKS_PER_WORD + 1 - first, dtype=np.uint64))
    chunks = words.astype("<u8", copy=False).view(_CHUNK)
    return chunks[offset - CHUNKS_PER_WORD * first:offset - CHUNKS_PER_WORD * first + n]


def keep_mask_rows(key, starts, thr, out):
    """out[r, i] = 1 if element starts[r] + i is kept (decision value < thr), else 0.

    ``out`` is a C-contiguous uint8 array (nrows, rowlen), ``starts`` int64 (nrows,);
    ``thr`` is an int, or a uint32 array of out's size in any shape and strides (per-element
    rates, usually a broadcast view) whose C-order elements are out's."""
    _kernel_args.check_keep_mask_rows(starts, thr, out)
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
    keep, scale = _kernel_args.apply_keep_views(x, keep, scale, out)
    target = out.reshape(x.shape)           # out is C-contiguous: a view
    for _, _, index in _pieces(x.shape, _BATCH_BLOCKS * BLOCK_CHUNKS):
        _scale_and_select(x[index], scale[index], keep[index], target[index])
    return out


def _scale_and_select(x, scale, keep, out):
    """Multiply in place, then AND the bits with all-ones (kept) or zero (dropped): no
    temporaries of x's size, and no branchy masked copy (np.copyto(where=) is ~10x slower)."""
    with np.errstate(over="ignore", invalid="ignore"):     # inf/NaN inputs, as in the kernels
        np.multiply(x, scale, out=out, dtype=x.dtype)
    bits = out.view(f"u{out.itemsize}")
    np.bitwise_and(bits, np.negative(keep.view(np.uint8), dtype=bits.dtype), out=bits)


def dropout_flat(key, offset, thr, scale, x, out, nthreads=1):
    """Fused mask generation and scaling over C-contiguous 1-D arrays (``out`` may be ``x``)."""
    _kernel_args.check_dropout_flat(offset, thr, scale, x, out)
    return _dropout_flat(key, offset, thr, x.dtype.type(scale), x, out)


def _dropout_flat(key, offset, thr, scale, x, out):
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
    _kernel_args.check_dropout_rows(starts, thr, scale, x, out)
    if np.ndim(thr) == 0:
        scale = x.dtype.type(scale)
        for start, row_in, row_out in zip(starts.tolist(), x, out):
            _dropout_flat(key, start, thr, scale, row_in, row_out)
        return out
    region = thr.shape
    xs, outs = x.reshape(region), out.reshape(region)
    for pos, n, index in _pieces(region, _piece_limit(out.shape)):
        piece = outs[index]
        keep = np.less(_decisions(key, starts, out.shape[1], pos, n).reshape(piece.shape), thr[index])
        _scale_and_select(xs[index], scale[index], keep, piece)
    return out


# --- the dropout family's fused kernels ----------------------------------------------------------
def alpha_flat(key, offset, thr, coef, x, out, nthreads=1):
    """Alpha dropout over C-contiguous 1-D arrays (``out`` may be ``x``): kept x * a + b,
    dropped d, each operation rounded in x's dtype; one pass's temporaries at a time."""
    _kernel_args.check_alpha_flat(offset, thr, coef, x, out)
    a, b, d = (x.dtype.type(c) for c in coef)
    step = _BATCH_BLOCKS * BLOCK_CHUNKS
    for pos in range(0, x.size, step):
        end = min(x.size, pos + step)
        keep = np.less(_chunks(key, offset + pos, end - pos), thr)
        _scale_and_select(x[pos:end], a, keep, out[pos:end])      # kept a * x, dropped +0
        np.add(out[pos:end], np.where(keep, b, d), out=out[pos:end])
    return out


def dropblock_keep(key, offset, block, thr53, keep, nthreads=1):
    """DropBlock's keep bytes into the uint8 (N, C, H, W) array ``keep`` (any strides) and the
    kept count: corners (word >> 11 < thr53) dilated right then down, a few maps per pass."""
    _kernel_args.check_dropblock_keep(offset, block, thr53, keep)
    n, c, h, w = keep.shape
    hv, wv = h - block + 1, w - block + 1
    per_pass = max(1, _BATCH_BLOCKS * BLOCK_CHUNKS // max(1, h * w))
    kept = 0
    for i in range(n if keep.size else 0):
        for c0 in range(0, c, per_pass):
            c1 = min(c, c0 + per_pass)
            words = _fill_words(key, offset + (i * c + c0) * hv * wv, np.empty((c1 - c0) * hv * wv, dtype=np.uint64))
            corners = (words >> np.uint64(11) < np.uint64(thr53)).reshape(c1 - c0, hv, wv)
            rows = np.zeros((c1 - c0, hv, w), dtype=bool)
            for dj in range(block):
                rows[..., dj:dj + wv] |= corners
            dropped = np.zeros((c1 - c0, h, w), dtype=bool)
            for di in range(block):
                dropped[:, di:di + hv, :] |= rows
            np.logical_not(dropped, out=dropped)
            keep[i, c0:c1] = dropped
            kept += int(np.count_nonzero(dropped))
    return kept


def _chunks_at(key, idx):
    """Decision values at arbitrary global element indices ``idx`` (int64 array)."""
    blocks, where = np.unique(idx // BLOCK_CHUNKS, return_inverse=True)
    words = _block_words(key, blocks)
    chunks = words.astype("<u8", copy=False).view(_CHUNK).reshape(-1, BLOCK_CHUNKS)
    return chunks[where.reshape(idx.shape), idx % BLOCK_CHUNKS]


# --- Gaussian noise: _noise.h's transform, step for step in float32 ---------------------------
def _f32(hex_literal):
    return np.float32(float.fromhex(hex_literal))


_NZ = {name: _f32(h) for name, h in (
    ("LN2_HI", "0x1.62e4p-1"), ("LN2_LO", "0x1.7f7d1cp-20"), ("SQRT2", "0x1.6a09e6p+0"),
    ("L3", "0x1.555556p-1"), ("L5", "0x1.99999ap-2"), ("L7", "0x1.24924ap-2"), ("L9", "0x1.c71c72p-3"),
    ("C2", "-0x1p-1"), ("C4", "0x1.555556p-5"), ("C6", "-0x1.6c16c2p-10"), ("C8", "0x1.a01a02p-16"),
    ("S2", "-0x1.555556p-3"), ("S4", "0x1.111112p-7"), ("S6", "-0x1.a01a02p-13"), ("S8", "0x1.71de3ap-19"),
    ("PHI", "0x1.921fb6p-25"), ("ONE", "0x1p+0"), ("TWO", "0x1p+1"), ("MINUS_TWO", "-0x1p+1"),
    ("UNIT", "0x1p-31"), ("LOG2E", "0x1.715476p+0"), ("ROUNDER", "0x1.8p+23"), ("EXP_MAX", "0x1.58p+6"),
    ("E2", "0x1p-1"), ("E3", "0x1.555556p-3"), ("E4", "0x1.555556p-5"), ("E5", "0x1.111112p-7"),
    ("E6", "0x1.6c16c2p-10"), ("E7", "0x1.a01a02p-13"))}
_WORDS_PER_PASS = 1 << 14     # float32 temporaries of a pass (64 KiB each) stay in cache


def _horner(t, coefficients, last):
    """((c[0] t + c[1]) t + ...) t + last in float32, the order _noise.h writes."""
    acc = _NZ[coefficients[0]] * t
    for name in coefficients[1:]:
        acc += _NZ[name]
        acc *= t
    acc += last
    return acc


def standard_normals(words):
    """The two float32 standard normals of each uint64 stream word, interleaved (word j gives
    normals 2j and 2j + 1: radius times cos, radius times sin), bit for bit _noise.h's
    nz_gaussian_noise: integer steps on int32 (exact), float32 +, -, *, /, sqrt and
    conversions (correctly rounded)."""
    halves = words.astype("<u8", copy=False).view("<u4").reshape(-1, 2)
    radius = log_unit(halves[:, 1].view(np.int32))
    radius *= _NZ["MINUS_TWO"]
    np.sqrt(radius, out=radius)
    z = np.empty((words.size, 2), dtype=np.float32)
    cos, sin = cos_sin_angle(halves[:, 0].view(np.int32))
    np.multiply(radius, cos, out=z[:, 0])
    np.multiply(radius, sin, out=z[:, 1])
    return z.reshape(-1)


def log_unit(hi):
    """ln u in float32 for u = (2 (hi >> 2) + 1) / 2**31 (hi: int32 array), as _noise.h computes it."""
    odd = ((hi >> 2) & 0x3FFFFFFF) * 2 + 1
    u = odd.astype(np.float32)
    u *= _NZ["UNIT"]
    return log_positive(u)


def log_positive(x):
    """ln x in float32 for positive normal float32 x (an array), as _noise.h's nz_log computes it:
    x = 2**E m with m in [sqrt(2)/2, sqrt(2)), ln m = 2 atanh((m - 1)/(m + 1)) by its series."""
    one = _NZ["ONE"]
    bits = x.view(np.int32)
    e = ((bits >> 23) & 0xFF) - 127
    mbits = (bits & 0x7FFFFF) | 0x3F800000
    big = (mbits.view(np.float32) > _NZ["SQRT2"]).astype(np.int32)
    mbits -= big << 23                 # m / 2, exactly, and one more in the exponent
    e += big
    m = mbits.view(np.float32)
    s = np.subtract(m, one)
    s /= np.add(m, one)
    ln_m = _horner(s * s, ("L9", "L7", "L5", "L3"), _NZ["TWO"])
    ln_m *= s
    ef = e.astype(np.float32)
    ln_u = ef * _NZ["LN2_LO"]
    ln_u += ln_m
    ln_u += ef * _NZ["LN2_HI"]       # a + b == b + a: IEEE addition commutes
    return ln_u


def cos_sin_angle(lo):
    """(cos, sin) of 2 pi (octant + f) / 8 in float32 from the int32 array lo, as _noise.h's
    nz_phi_cos_sin and nz_octant compute them."""
    octant = (lo >> 29) & 7
    h = ((lo >> 6) & 0x7FFFFF) * 2 + 1
    np.subtract(1 << 24, h, out=h, where=(octant & 1).astype(bool))
    phi = h.astype(np.float32)
    phi *= _NZ["PHI"]
    p2 = phi * phi
    c = _horner(p2, ("C8", "C6", "C4", "C2"), _NZ["ONE"])
    sn = _horner(p2, ("S8", "S6", "S4", "S2"), _NZ["ONE"])
    sn *= phi
    use_sin = (((octant + 1) >> 1) & 1).astype(bool)
    cos, sin = np.where(use_sin, sn, c), np.where(use_sin, c, sn)
    cos.view(np.int32)[...] ^= (((octant + 2) >> 2) & 1) << 31
    sin.view(np.int32)[...] ^= (octant >> 2) << 31
    return cos, sin


def gaussian_flat(key, offset, sigma, half_noise, x, out, nthreads=1):
    """out = x * (1 + sigma * z) over C-contiguous 1-D arrays, z of element i the normal
    offset + i of ``standard_normals`` (word (offset + i) // 2); the noise is rounded to float16
    first where ``half_noise``."""
    _kernel_args.check_gaussian_flat(offset, sigma, x, out)
    sigma = np.float32(sigma)
    step = 2 * min(_WORDS_PER_PASS, _BATCH_BLOCKS * BLOCK_WORDS)      # _BATCH_BLOCKS bounds every pass's memory
    for pos in range(0, x.size, step):
        end = min(x.size, pos + step)
        first, last = (offset + pos) // 2, (offset + end - 1) // 2
        z = standard_normals(_fill_words(key, first, np.empty(last - first + 1, dtype=np.uint64)))
        noise = z[offset + pos - 2 * first:offset + end - 2 * first]
        noise *= sigma
        noise += _NZ["ONE"]
        if half_noise:
            noise = noise.astype(np.float16)
        with np.errstate(over="ignore", invalid="ignore"):
            np.multiply(x[pos:end], noise, out=out[pos:end], dtype=x.dtype)
    return out


# --- dropout with a mask shared along a middle axis ------------------------------------------------
def dropout_shared(key, offset, thr, scale, x, out, nthreads=1):
    """Dropout of C-contiguous 3-D ``x`` (outer, shared, inner) into ``out``: element (a, t, f)
    is decided by stream element offset + a * inner + f for every t; the (outer, inner) keep
    bytes are drawn once per pass of a few samples and broadcast over the middle axis (the
    select's temporaries have the noise shape's size, not x's)."""
    _kernel_args.check_dropout_shared(offset, thr, scale, x, out)
    outer, shared, inner = x.shape
    scale = x.dtype.type(scale)
    per_pass = max(1, _BATCH_BLOCKS * BLOCK_CHUNKS // max(1, inner))
    for a in range(0, outer if x.size else 0, per_pass):
        b = min(outer, a + per_pass)
        keep = np.less(_chunks(key, offset + a * inner, (b - a) * inner), thr).reshape(b - a, 1, inner)
        _scale_and_select(x[a:b], scale, keep, out[a:b])

# --- Concrete dropout: _noise.h's relaxed Bernoulli, step for step in float32 ----------------------
def exp_reduced(a):
    """exp a in float32 for a float32 array a in [-86, 86], as _noise.h's nz_exp computes it:
    k = a / ln 2 rounded to nearest by adding and subtracting 1.5 * 2**23, r = (a - k LN2_HI) -
    k LN2_LO, the Taylor polynomial of exp r to r**7, times 2**k through the exponent field."""
    kf = a * _NZ["LOG2E"]
    kf += _NZ["ROUNDER"]
    kf -= _NZ["ROUNDER"]
    r = a - kf * _NZ["LN2_HI"]
    r -= kf * _NZ["LN2_LO"]
    q = _horner(r, ("E7", "E6", "E5", "E4", "E3", "E2", "ONE"), _NZ["ONE"])
    bits = q.view(np.int32)
    bits += kf.astype(np.int32) * np.int32(0x800000)
    return q


def concrete_constants(logit):
    """(odds, inverse_keep, p) = (exp(logit), 1 + odds, odds / inverse_keep) in float32 for
    float32 logit clamped to [-86, 86], as _noise.h's nz_concrete_constants computes them."""
    limit = _NZ["EXP_MAX"]
    odds = exp_reduced(np.array([min(max(logit, -limit), limit)], dtype=np.float32))[0]
    inverse_keep = _NZ["ONE"] + odds
    return odds, inverse_keep, odds / inverse_keep


CONCRETE_POWER_MAX = 128         # _noise.h's NZ_POWER_MAX: the largest inv_t taken as a power
_CONCRETE_POWER_HIGH = np.float32(2.0 ** 124)    # _noise.h's FD_NZ_POWER_HIGH and _LOW: y**n's saturations
_CONCRETE_POWER_LOW = np.float32(2.0 ** -124)


def concrete_power(inv_t):
    """float32 inv_t as the whole power n of exp(a) = y**n (_noise.h's nz_concrete_power), or 0."""
    return int(inv_t) if 1 <= inv_t <= CONCRETE_POWER_MAX and int(inv_t) == inv_t else 0


def concrete_weights(words, logit, inv_t, rate_factor=False):
    """The float32 keep weight w of each uint64 word (and, where rate_factor, s = w (p - drop
    inv_t)), bit for bit _noise.h's nz_concrete_words, for float32 logit and inv_t: exp(a) as
    y**n where inv_t is a whole number n (``concrete_power``), else from ln and exp."""
    logit, inv_t = np.float32(logit), np.float32(inv_t)
    odds, inverse_keep, rate = concrete_constants(logit)
    limit = _NZ["EXP_MAX"]
    odd = (words >> np.uint64(41)).astype(np.int32)
    odd *= 2
    odd += 1
    v = odd.astype(np.float32)
    v /= (np.int32(1 << 24) - odd).astype(np.float32)
    power = concrete_power(inv_t)
    if power:
        with np.errstate(over="ignore", under="ignore"):
            y = np.multiply(v, odds, out=v)
            e = y.copy()
            for bit in range(power.bit_length() - 2, -1, -1):       # from the bit below the top
                e *= e
                if power >> bit & 1:
                    e *= y
        high, low = e > _CONCRETE_POWER_HIGH, e < _CONCRETE_POWER_LOW
    else:
        a = log_positive(v)
        a += logit
        with np.errstate(over="ignore"):           # an inv_t near the float32 maximum: a = +-inf, clipped
            a *= inv_t
        high, low = a > limit, a < -limit
        e = exp_reduced(np.clip(a, -limit, limit))
    keep = np.add(e, _NZ["ONE"])
    np.divide(_NZ["ONE"], keep, out=keep)
    keep[high] = 0
    w = keep * inverse_keep
    if not rate_factor:
        return w
    with np.errstate(invalid="ignore"):            # inf * 0 where y**n is inf, replaced by 1
        drop = np.multiply(e, keep, out=e)
    drop[low] = 0
    drop[high] = _NZ["ONE"]
    drop *= inv_t
    s = np.subtract(rate, drop, out=drop)
    s *= w
    return w, s


def concrete_flat(key, offset, logit, inv_t, x, out, nthreads=1):
    """out = x * dtype(w) over C-contiguous 1-D arrays, w = ``concrete_weights`` of stream words
    offset + i (float16: w rounded to half first; float64: widened exactly)."""
    _kernel_args.check_concrete_flat(offset, logit, inv_t, x, out)
    step = min(_WORDS_PER_PASS, _BATCH_BLOCKS * BLOCK_WORDS)
    words = np.empty(min(step, x.size), dtype=np.uint64)
    for pos in range(0, x.size, step):
        end = min(x.size, pos + step)
        w = concrete_weights(_fill_words(key, offset + pos, words[:end - pos]), logit, inv_t)
        with np.errstate(over="ignore", invalid="ignore"):
            np.multiply(x[pos:end], w.astype(x.dtype), out=out[pos:end], dtype=x.dtype)
    return out


def concrete_grad_flat(key, offset, logit, inv_t, x, grad, out, partials, nthreads=1):
    """out = grad * dtype(w) (grad's dtype) and partials[k] the sum of (grad * x) * s (float64
    product and sum) over sum block offset // 1024 + k, as _noise.h sums it: 16 lanes by stream
    index % 16, each in element order from +0, then the tree (l, l + 8), (l, l + 4), (l, l + 2),
    (0, 1).  Passes cover whole sum blocks; each block's 64 rows of 16 lanes are added one row
    at a time, every block and lane of the pass at once (missing elements add +0: exact)."""
    _kernel_args.check_concrete_grad_flat(offset, logit, inv_t, x, grad, out, partials)
    for pos, end, k in _sum_passes(offset, grad.size, min(_WORDS_PER_PASS, _BATCH_BLOCKS * BLOCK_WORDS)):
        w, s = concrete_weights(_fill_words(key, offset + pos, np.empty(end - pos, dtype=np.uint64)), logit, inv_t,
                                rate_factor=True)
        with np.errstate(over="ignore", invalid="ignore"):
            terms = np.multiply(grad[pos:end], x[pos:end], dtype=np.float64)
            terms *= s
            np.multiply(grad[pos:end], w.astype(grad.dtype), out=out[pos:end], dtype=grad.dtype)
        sums = _sum_block_partials(terms, (offset + pos) % _kernel_args.SUM_BLOCK)
        partials[k:k + sums.size] = sums


def _sum_passes(offset, n, pass_elements):
    """(pos, end, k) of the passes over run elements [0, n) of a reducing kernel: each ends on
    a global multiple of the sum block (so no sum block spans two passes), k being the index
    of its first partial."""
    block = _kernel_args.SUM_BLOCK
    step = max(block, pass_elements // block * block)
    pos = k = 0
    while pos < n:
        end = min(n, pos + step - (offset % block if pos == 0 else 0))
        yield pos, end, k
        k += ((offset + end - 1) // block - (offset + pos) // block + 1)
        pos = end


def _sum_block_partials(terms, lead):
    """The partial sums of float64 ``terms`` (stream elements from ``lead`` into a sum block on),
    one per sum block, as the reducing kernels sum them (_xoshiro.h): 16 lanes by stream index
    % 16, each in element order from +0, then the tree (l, l + 8), (l, l + 4), (l, l + 2),
    (0, 1).  Each block's 64 rows of 16 lanes are added one row at a time, every block at once;
    missing elements add +0, which changes no lane (a lane starting at +0 is never -0)."""
    block, lanes = _kernel_args.SUM_BLOCK, _kernel_args.SUM_LANES
    nblocks = (lead + terms.size - 1) // block + 1
    padded = np.zeros(nblocks * block, dtype=np.float64)
    padded[lead:lead + terms.size] = terms
    rows = padded.reshape(nblocks, block // lanes, lanes)
    acc = np.zeros((nblocks, lanes), dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        for r in range(block // lanes):
            acc += rows[:, r]
        width = lanes // 2
        while width:
            acc[:, :width] += acc[:, width:2 * width]
            width //= 2
    return acc[:, 0]

# --- dropout and the sums of |x| (AdaptiveDropout's activity) ----------------------------------------
def dropout_abs_flat(key, offset, thr, scale, x, out, partials=None, nthreads=1):
    """``dropout_flat`` with one rate (``out`` may be ``x``); returns the sum of |x|,
    ``exact_sum`` of the partials: partials[k] (float64) over sum block offset // 1024 + k,
    summed as ``_sum_block_partials`` says, into ``partials`` when it is given."""
    _kernel_args.check_dropout_abs_flat(offset, thr, scale, x, out, partials)
    if partials is None:
        partials = np.empty(_kernel_args.sum_blocks(offset, x.size), dtype=np.float64)
    _abs_sums(offset, x, partials)                  # first: out may be x
    _dropout_flat(key, offset, thr, x.dtype.type(scale), x, out)
    return _exact_sum(partials)


def abs_sums(offset, x, partials, nthreads=1):
    """``dropout_abs_flat``'s partials alone."""
    _kernel_args.check_abs_sums(offset, x, partials)
    _abs_sums(offset, x, partials)
    return partials


def exact_sum(terms):
    """The exactly rounded sum of the float64 terms (1-D, C-contiguous; _exact_sum.h): their
    order does not matter; inf or nan as IEEE addition of the non-finite terms says; an exact
    zero is +0.0."""
    _kernel_args.check_sum_terms(terms)
    return _exact_sum(terms)


def _exact_sum(terms):
    values = terms.tolist()
    try:
        total = math.fsum(values) + 0.0         # + 0.0: an exact zero is +0.0
    except (ValueError, OverflowError):         # inf - inf, or an intermediate past float64's range
        total = _exact_sum_past_fsum(values)
    return math.nan if math.isnan(total) else total     # one nan: C's NAN, whatever the terms' nan


def _exact_sum_past_fsum(values):
    special = 0.0
    for v in values:
        if not math.isfinite(v):
            special += v                        # IEEE: nan for a nan or inf - inf, else the inf
    if special != 0.0 or math.isnan(special):
        return special
    total = sum(map(fractions.Fraction, values))     # all finite: the exact sum
    try:
        return float(total)                     # correctly rounded
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def _abs_sums(offset, x, partials):
    for pos, end, k in _sum_passes(offset, x.size, _WORDS_PER_PASS):
        sums = _sum_block_partials(np.abs(x[pos:end].astype(np.float64)), (offset + pos) % _kernel_args.SUM_BLOCK)
        partials[k:k + sums.size] = sums

# --- dropout_add: _residual.h's composition, operation for operation ---------------------------
def dropout_add(key, offset, thr, scale, bias, x, residual, out, nthreads=1):
    """out = residual + dropout(x + bias) over C-contiguous arrays of one shape (``out`` may be
    x or residual; bias broadcasts to their shape), decision j (C order) being stream element
    offset + j: h = x + bias, then ``_scale_and_select`` (h * scale where kept, +0.0 where
    dropped), then residual + that, each rounded in x's dtype; one pass's temporaries at a time."""
    _kernel_args.check_dropout_add(offset, thr, scale, bias, x, residual, out)
    if bias is not None:
        bias = np.broadcast_to(bias, x.shape)
    if np.ndim(thr) == 0:
        scale = x.dtype.type(scale)
    for pos, n, index in _pieces(x.shape, _BATCH_BLOCKS * BLOCK_CHUNKS):
        piece = x[index]
        h = np.empty(piece.shape, dtype=x.dtype)
        keep = np.less(_chunks(key, offset + pos, n).reshape(piece.shape), thr if np.ndim(thr) == 0 else thr[index])
        with np.errstate(over="ignore", invalid="ignore"):      # inf/NaN inputs, as in the kernels
            if bias is None:
                np.copyto(h, piece)
            else:
                np.add(piece, bias[index], out=h)
            _scale_and_select(h, scale if np.ndim(thr) == 0 else scale[index], keep, h)
            np.add(residual[index], h, out=out[index])
    return out
