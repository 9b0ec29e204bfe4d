"""The NumPy twin of the compiled kernels: same streams, same bits.

It is the fallback when the extension is not built and the oracle the tests hold the
kernels to.  The stream layout is described in ``_xoshiro.h``; every backend exposes
the four functions below with the same arguments.
"""
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


def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


def _block_words(key, blocks):
    """Words of the blocks numbered ``blocks`` (uint64 array) as uint64 (len(blocks), 256)."""
    nblocks = blocks.size
    with np.errstate(over="ignore"):
        lane = blocks.astype(np.uint64)[:, None] * np.uint64(LANES) + np.arange(LANES, dtype=np.uint64)
        x = _mix64(np.uint64(key) + (lane + np.uint64(1)) * GOLDEN)
        s0, s1, s2, s3 = (_mix64(x + np.uint64(i) * GOLDEN) for i in range(1, 5))
        out = np.empty((nblocks, STEPS, LANES), dtype=np.uint64)
        for step in range(STEPS):
            out[:, step] = _rotl(s0 + s3, 23) + s0
            t = s1 << np.uint64(17)
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = _rotl(s3, 45)
    return out.reshape(nblocks, BLOCK_WORDS)


def fill_words(key, first_word, out):
    """Fill the uint64 array ``out`` with stream words first_word, first_word+1, ..."""
    n = out.size
    pos = 0
    while pos < n:
        w = first_word + pos
        b0 = w // BLOCK_WORDS
        take = min(n - pos, _BATCH_BLOCKS * BLOCK_WORDS - (w - b0 * BLOCK_WORDS))
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


def _keep_range(key, offset, thr, out):
    step = _BATCH_BLOCKS * BLOCK_CHUNKS
    for pos in range(0, out.size, step):
        end = min(out.size, pos + step)
        t = thr if np.ndim(thr) == 0 else thr[pos:end]
        np.less(_chunks(key, offset + pos, end - pos), t, out=out[pos:end], casting="unsafe")
    return out


def keep_mask_rows(key, starts, thr, out):
    """out[r, i] = 1 if element starts[r] + i is kept (decision value < thr), else 0.

    ``out`` is a C-contiguous uint8 array (nrows, rowlen), ``starts`` int64 (nrows,);
    ``thr`` is an int or a uint32 array shaped like ``out`` (per-element rates)."""
    nrows, rowlen = out.shape
    if nrows == 1 or rowlen >= BLOCK_CHUNKS:
        for r in range(nrows):
            _keep_range(key, int(starts[r]), thr if np.ndim(thr) == 0 else thr[r], out[r])
        return out
    per_batch = max(1, (_BATCH_BLOCKS * BLOCK_CHUNKS) // rowlen)
    for r0 in range(0, nrows, per_batch):
        r1 = min(nrows, r0 + per_batch)
        idx = np.asarray(starts[r0:r1], dtype=np.int64)[:, None] + np.arange(rowlen)
        t = thr if np.ndim(thr) == 0 else thr[r0:r1]
        np.less(_chunks_at(key, idx), t, out=out[r0:r1], casting="unsafe")
    return out


def apply_keep(x, keep, scale, out):
    """out = keep ? x * scale : 0, broadcasting keep (uint8) and scale against x."""
    zero = np.zeros((), dtype=x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):     # inf/NaN inputs, as in the kernels
        np.copyto(out, np.where(keep.astype(bool), np.multiply(x, scale, dtype=x.dtype), zero))
    return out


def dropout_flat(key, offset, thr, scale, x, out, nthreads=1):
    """Fused mask generation and scaling over 1-D arrays (``out`` may be ``x``)."""
    step = _BATCH_BLOCKS * BLOCK_CHUNKS
    keep = np.empty(min(step, x.size), dtype=np.uint8)
    for pos in range(0, x.size, step):
        end = min(x.size, pos + step)
        k = _keep_range(key, offset + pos, thr, keep[:end - pos])
        apply_keep(x[pos:end], k, scale, out[pos:end])
    return out


def _chunks_at(key, idx):
    """Decision values at arbitrary global element indices ``idx`` (int64 array)."""
    blocks, where = np.unique(idx // BLOCK_CHUNKS, return_inverse=True)
    words = _block_words(key, blocks)
    chunks = words.astype("<u8", copy=False).view("<u2").reshape(-1, BLOCK_CHUNKS)
    return chunks[where.reshape(idx.shape), idx % BLOCK_CHUNKS]
