"""Arrays past 2**31 (and a mask past 2**32) elements: no 32-bit index anywhere.

A 32-bit element, block or byte index would wrap at 2**31 or 2**32 and show as a wrong
mask, an untouched region or a crash.  Each test writes the whole array through the
compiled kernels (in place, so one array of ~4 GiB is the peak), then checks windows at
the start, across 2**31 and at the tail against the same window computed alone via
``offset``, by both backends, and that every element was written.  Needs ~5 GiB of RAM.
"""
import numpy as np
import pytest

import fastdrop as fd
from fastdrop import _backend

pytestmark = [
    pytest.mark.large,
    pytest.mark.skipif(not _backend.compiled_available(), reason="the NumPy backend is too slow for 2**31 elements"),
]

SEED = 20240229
N = 2**31 + 1024 * 5 + 3          # past 2**31, not a multiple of a block
WINDOW = 3000
SCAN = 1 << 26                     # elements per step when scanning the whole array


def windows(n):
    """Start indices of the (disjoint) windows checked: the head, across 2**31, the tail."""
    return [0, 2**31 - WINDOW // 2, n - WINDOW]


def fill_pattern(x, starts):
    """x = 1 everywhere except random values in the checked windows (returned as copies)."""
    x.fill(1.0)
    rng = np.random.default_rng(0)
    saved = {}
    for s in starts:
        x[s:s + WINDOW] = rng.standard_normal(WINDOW).astype(x.dtype)
        saved[s] = x[s:s + WINDOW].copy()
    return saved


def assert_window_matches_alone(result, saved, p, **kwargs):
    for start, original in saved.items():
        got = result[start:start + WINDOW]
        for name in _backend.BACKENDS if _backend.compiled_available() else ["numpy"]:
            with fd.use_backend(name):
                alone = fd.dropout(original, p, seed=SEED, offset=start, **kwargs)
            assert np.array_equal(got.view(np.uint16), alone.view(np.uint16)), (start, name)


def assert_every_element_written(x, p):
    """Outside the windows x held 1.0: now each element is 0.0 or 1/(1-p), kept at rate 1-p."""
    scale = x.dtype.type(1 / (1 - p))
    kept = other = 0
    for pos in range(0, x.size, SCAN):
        part = x[pos:pos + SCAN]
        k = np.count_nonzero(part == scale)
        kept += k
        other += part.size - k - np.count_nonzero(part == 0)
    assert other <= len(windows(x.size)) * WINDOW          # only the random windows differ
    keep = fd.effective_keep(p)
    sigma = np.sqrt(x.size * keep * (1 - keep))
    assert abs(kept - x.size * keep) < 6 * sigma + len(windows(x.size)) * WINDOW


def test_packed_mask_past_2_32():
    """dropout_mask of 2**32 + 4099 elements: windows across 2**31 and 2**32 and the tail.

    Runs before the 4 GiB array below exists, so the peak stays near 5 GiB."""
    n = 2**32 + 4099
    packed = fd.dropout_mask(n, 0.3, seed=SEED, packed=True)
    assert packed.size == (n + 7) // 8
    for start in (0, 2**31 - 8 * 64, 2**32 - 8 * 64, (n - WINDOW) // 8 * 8):
        count = min(WINDOW, n - start)
        alone = fd.dropout_mask(count, 0.3, seed=SEED, offset=start)
        got = np.unpackbits(packed[start // 8:(start + count + 7) // 8], count=count, bitorder="little")
        assert np.array_equal(got.astype(bool), alone), start


@pytest.fixture(scope="module")
def huge():
    x = np.empty(N, dtype=np.float16)       # 4 GiB
    yield x
    del x


@pytest.mark.parametrize("threads", [1, 2])
def test_fused_float16_past_2_31(huge, threads):
    saved = fill_pattern(huge, windows(N))
    previous = fd.get_num_threads()
    fd.set_num_threads(threads)
    try:
        with fd.use_backend("cython"):
            result = fd.dropout(huge, 0.5, seed=SEED, out=huge)
    finally:
        fd.set_num_threads(previous)
    assert result is huge
    assert_window_matches_alone(huge, saved, 0.5)
    assert_every_element_written(huge, 0.5)


def test_noise_shaped_float16_past_2_31(huge):
    """The broadcasting kernel: rows of 1024 sharing one decision, 2**21 + 5 rows."""
    rows = N // 1024
    x = huge[:rows * 1024].reshape(rows, 1024)
    x.fill(1.0)
    rng = np.random.default_rng(1)
    tail_rows = 7
    x[-tail_rows:] = rng.standard_normal((tail_rows, 1024)).astype(np.float16)
    original = x[-tail_rows:].copy()
    with fd.use_backend("cython"):
        fd.dropout(x, 0.25, seed=SEED, noise_shape=(None, 1), out=x)
    for name in _backend.BACKENDS:
        with fd.use_backend(name):
            alone = fd.dropout(original, 0.25, seed=SEED, noise_shape=(None, 1), offset=rows - tail_rows)
        assert np.array_equal(x[-tail_rows:].view(np.uint16), alone.view(np.uint16)), name
    with fd.use_backend("numpy"):
        keep = fd.dropout_mask((rows, 1), 0.25, seed=SEED)
    body = x[:-tail_rows]
    expected_row = np.where(keep[:-tail_rows], np.float16(1 / 0.75), np.float16(0))
    for r0 in range(0, body.shape[0], SCAN // 1024):
        assert np.array_equal(body[r0:r0 + SCAN // 1024], np.broadcast_to(
            expected_row[r0:r0 + SCAN // 1024], body[r0:r0 + SCAN // 1024].shape))
