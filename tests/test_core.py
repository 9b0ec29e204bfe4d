"""The functional API's contract (issue 2): exact values, reproducibility, both backends."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastdrop as fd
from fastdrop import _backend
from fastdrop.functional import stream_key

FLOATS = [np.float16, np.float32, np.float64]
RATES = [0.0, 1e-12, 0.001, 0.1, 0.3, 0.5, 0.9, 0.999, 1 - 1e-12, 1.0]


def both(fn):
    """fn() on the NumPy backend and on the active backend."""
    with fd.use_backend("numpy"):
        ref = fn()
    return ref, fn()


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# --- the documented stream layout, rebuilt from its definition in plain Python ----------

U64 = (1 << 64) - 1


def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
    return z ^ (z >> 31)


def _xoshiro256pp(s):
    rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & U64  # noqa: E731
    result = (rotl((s[0] + s[3]) & U64, 23) + s[0]) & U64
    t = (s[1] << 17) & U64
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = rotl(s[3], 45)
    return result


def oracle_block(seed, block):
    """Block `block` of the stream for `seed`, exactly as README's layout section says."""
    golden = 0x9E3779B97F4A7C15
    key = _mix64((seed + golden) & U64)
    lanes = []
    for lane in range(8):
        x = _mix64((key + (block * 8 + lane + 1) * golden) & U64)
        lanes.append([_mix64((x + i * golden) & U64) for i in range(1, 5)])
    return [_xoshiro256pp(lanes[r % 8]) for r in range(256)]  # word r: lane r % 8, step r // 8


def test_xoshiro256pp_reference_vector():
    # Published first output of xoshiro256++ from state (1, 2, 3, 4).
    assert _xoshiro256pp([1, 2, 3, 4]) == 41943041


@pytest.mark.parametrize("seed,block", [(0, 0), (42, 3), (2**64 - 1, 12345)])
def test_stream_matches_documented_layout(backend, seed, block):
    words = np.empty(256, dtype=np.uint64)
    _backend.kernels().fill_words(stream_key(seed), block * 256, words)
    assert words.tolist() == oracle_block(seed, block)
    # decision 4w + k is bits [16k, 16k + 16) of word w, kept when below the threshold
    chunks = [(w >> (16 * k)) & 0xFFFF for w in words.tolist() for k in range(4)]
    thr = int(np.floor(0.7 * 65536 + 0.5))
    expected = np.array([c < thr for c in chunks])
    assert np.array_equal(fd.dropout_mask(1024, 0.3, seed=seed, offset=block * 1024), expected)


def test_known_answer_never_changes():
    # A regression guard on the mask bits themselves: these bytes are the format.
    assert fd.dropout_mask(64, 0.5, seed=0, packed=True).tolist() == KNOWN_ANSWER


KNOWN_ANSWER = [63, 200, 254, 92, 64, 116, 79, 204]   # frozen: changing the stream is a format break


# --- equivalence of the backends ---------------------------------------------------------

SHAPES = [(), (0,), (1,), (7,), (1023,), (1025,), (3, 5), (4, 0, 3), (2, 3, 4, 5), (5000,), (33, 1027)]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", [0.001, 0.5, 0.999])
def test_backends_bit_identical(dtype, shape, p):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    for offset in (0, 5, 1021, 2**40 + 3):
        ref, got = both(lambda: fd.dropout(x, p, seed=7, offset=offset))
        assert same_bits(ref, got)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,noise", [((8, 16, 5, 5), (8, 16, 1, 1)), ((8, 16, 5, 5), (1, 16, 1, 5)),
                                         ((4, 7, 3), (4, 1, 3)), ((4, 7, 3), (1, 1, 1)),
                                         ((6, 1030), (1, None)), ((3, 4, 5, 6), (3, 1, 5, 1))])
def test_backends_bit_identical_noise_shape(dtype, shape, noise):
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    ref, got = both(lambda: fd.dropout(x, 0.4, seed=11, noise_shape=noise, offset=3))
    assert same_bits(ref, got)


@given(n=st.integers(0, 5000), offset=st.integers(0, 2**50), seed=st.integers(0, 2**64 - 1),
       p=st.floats(0, 1), dtype=st.sampled_from(FLOATS))
@settings(max_examples=60, deadline=None)
def test_backends_bit_identical_random(n, offset, seed, p, dtype):
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    ref, got = both(lambda: fd.dropout(x, p, seed=seed, offset=offset))
    assert same_bits(ref, got)
    ref, got = both(lambda: fd.dropout_mask(n, p, seed=seed, offset=offset, packed=True))
    assert same_bits(ref, got)


def test_per_element_rates_bit_identical():
    x = np.random.default_rng(3).standard_normal((64, 300)).astype(np.float32)
    p = np.random.default_rng(4).uniform(0, 1, 300)
    p[:3] = [0.0, 1.0, 0.5]
    ref, got = both(lambda: fd.dropout(x, p, seed=5))
    assert same_bits(ref, got)
    ref, got = both(lambda: fd.dropout(x, p[:, None][:64], seed=5, noise_shape=(64, 1)))
    assert same_bits(ref, got)


# --- exact values ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.77])
def test_kept_values_are_the_dtype_multiply(backend, dtype, p):
    x = np.random.default_rng(5).standard_normal(20000).astype(dtype) * dtype(30)
    x[:6] = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-7]
    y = fd.dropout(x, p, seed=3)
    keep = fd.dropout_mask(x.shape, p, seed=3)
    expected = np.where(keep, x * dtype(1 / (1 - p)), dtype(0))
    assert y.dtype == dtype
    assert expected.tobytes() == y.tobytes()
    assert not np.signbit(y[~keep]).any(), "dropped elements are +0.0"
    assert not np.isnan(y[~keep]).any()


def test_float16_rounding_edges(backend):
    # subnormals, values that overflow to inf after scaling, ties: NumPy's float16 multiply
    bits = np.arange(0, 1 << 16, dtype=np.uint16)
    x = bits.view(np.float16)
    for p in (0.25, 0.5, 0.1):
        keep = fd.dropout_mask(x.shape, p, seed=9)
        with np.errstate(all="ignore"):
            expected = np.where(keep, x * np.float16(1 / (1 - p)), np.float16(0))
        y = fd.dropout(x, p, seed=9)
        nan = np.isnan(expected)
        assert np.array_equal(np.isnan(y), nan)
        assert y[~nan].tobytes() == expected[~nan].tobytes()


def test_p_zero_and_eval_return_copies(backend):
    x = np.arange(6.0).reshape(2, 3)
    for y in (fd.dropout(x, 0.0, seed=1), fd.dropout(x, 0.7, seed=1, training=False)):
        assert y is not x and not np.shares_memory(x, y)
        assert same_bits(y, x)


def test_p_one_gives_zeros_never_nan(backend):
    x = np.array([np.inf, np.nan, -1.0, 5.0], dtype=np.float32)
    assert same_bits(fd.dropout(x, 1.0, seed=0), np.zeros(4, np.float32))


def test_zero_dim_and_empty(backend):
    y = fd.dropout(np.float64(3.0), 0.5, seed=1)
    assert y.shape == () and float(y) in (0.0, 6.0)
    assert fd.dropout(np.empty((0, 3), np.float32), 0.5, seed=1).shape == (0, 3)
    assert fd.dropout_mask((2, 0), 0.5, seed=1).shape == (2, 0)


def test_lists_and_scalars_accepted(backend):
    y = fd.dropout([1.0, 2.0, 3.0], 0.5, seed=4)
    assert y.dtype == np.float64 and y.shape == (3,)


# --- reproducibility and the offset contract ---------------------------------------------

def test_same_seed_same_mask_different_seeds_differ(backend):
    x = np.ones(4096, np.float32)
    assert same_bits(fd.dropout(x, 0.5, seed=123), fd.dropout(x, 0.5, seed=123))
    masks = {fd.dropout_mask(4096, 0.5, seed=s, packed=True).tobytes() for s in range(20)}
    assert len(masks) == 20
    assert not np.array_equal(fd.dropout(x, 0.5), fd.dropout(x, 0.5))   # seed=None: fresh entropy


def test_generator_seed(backend):
    a = fd.dropout_mask(1000, 0.5, seed=np.random.default_rng(5))
    b = fd.dropout_mask(1000, 0.5, seed=np.random.default_rng(5))
    key = int(np.random.default_rng(5).integers(0, 2**64, dtype=np.uint64))
    assert np.array_equal(a, b) and np.array_equal(a, fd.dropout_mask(1000, 0.5, seed=key))


@given(n=st.integers(1, 4000), data=st.data())
@settings(max_examples=40, deadline=None)
def test_offset_slices_equal_the_whole(n, data):
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(i, n))
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    whole = fd.dropout(x, 0.35, seed=77)
    assert same_bits(fd.dropout(x[i:j], 0.35, seed=77, offset=i), whole[i:j])


def test_nd_offset_is_the_flat_index(backend):
    x = np.random.default_rng(6).standard_normal((37, 41))
    big = fd.dropout(np.concatenate([np.zeros(500), x.ravel()]), 0.5, seed=8)
    assert same_bits(fd.dropout(x, 0.5, seed=8, offset=500), big[500:].reshape(37, 41))


@pytest.mark.parametrize("make", [lambda a: a.T, lambda a: a[::-1, ::2], lambda a: np.asfortranarray(a),
                                  lambda a: a[:, 1::3], lambda a: np.broadcast_to(a[:1], a.shape)])
def test_layout_never_changes_the_result(backend, make):
    base = np.random.default_rng(7).standard_normal((64, 96)).astype(np.float32)
    view = make(base)
    y = fd.dropout(view, 0.5, seed=2)
    assert same_bits(y, fd.dropout(np.ascontiguousarray(view), 0.5, seed=2))


@pytest.mark.parametrize("shape", [(130, 1001), (3, 5, 40_000)])
@pytest.mark.parametrize("rates", ["scalar", "per-feature"])
def test_layouts_the_kernel_cannot_take_go_in_pieces_with_the_same_bits(backend, shape, rates):
    """Transposed, strided and byte-swapped inputs (and Fortran-ordered outputs) pass through
    the fused kernel in pieces of leading-axis slices (_core._FULL_PIECE_BYTES, here several
    per input, and pieces inside a row of 40K elements): the bits of the C-contiguous call,
    with an offset, per-element rates read in pieces too, out= and in place."""
    base = np.random.default_rng(12).standard_normal(shape).astype(np.float32)
    p = 0.3 if rates == "scalar" else np.linspace(0.05, 0.9, shape[-1])
    expected = fd.dropout(base, p, seed=5, offset=333)
    views = {"transposed": np.ascontiguousarray(base.T).T, "strided": np.repeat(base, 2, axis=-1)[..., ::2],
             "byte-swapped": base.astype(">f4")}
    for name, view in views.items():
        assert same_bits(fd.dropout(view, p, seed=5, offset=333), expected), name
        out = np.empty(shape, np.float32, order="F")
        assert fd.dropout(view, p, seed=5, offset=333, out=out) is out and same_bits(out, expected), name
        if name != "byte-swapped":
            fd.dropout(view, p, seed=5, offset=333, out=view)
            assert same_bits(view, expected), name


def test_thread_count_never_changes_the_result(backend):
    x = np.random.default_rng(8).standard_normal(3_000_017).astype(np.float32)
    old = fd.get_num_threads()
    try:
        fd.set_num_threads(1)
        one = fd.dropout(x, 0.5, seed=3, offset=17)
        fd.set_num_threads(2)
        two = fd.dropout(x, 0.5, seed=3, offset=17)
    finally:
        fd.set_num_threads(old)
    assert same_bits(one, two)


def test_out_and_in_place(backend):
    x = np.random.default_rng(9).standard_normal(3000)
    expected = fd.dropout(x, 0.5, seed=1)
    out = np.empty_like(x)
    assert fd.dropout(x, 0.5, seed=1, out=out) is out and same_bits(out, expected)
    y = x.copy()
    assert fd.dropout(y, 0.5, seed=1, out=y) is y and same_bits(y, expected)
    f = np.asfortranarray(np.random.default_rng(1).standard_normal((30, 40)))
    expected = fd.dropout(f, 0.5, seed=2)
    assert fd.dropout(f, 0.5, seed=2, out=f) is f and same_bits(np.ascontiguousarray(f), expected)


# --- masks ------------------------------------------------------------------------------

def test_mask_packed_and_apply(backend):
    x = np.random.default_rng(10).standard_normal((13, 29)).astype(np.float32)
    mask = fd.dropout_mask(x.shape, 0.3, seed=4)
    packed = fd.dropout_mask(x.shape, 0.3, seed=4, packed=True)
    assert mask.dtype == np.bool_ and packed.dtype == np.uint8
    assert np.array_equal(packed, np.packbits(mask.ravel(), bitorder="little"))
    y = fd.dropout(x, 0.3, seed=4)
    assert same_bits(fd.apply_mask(x, mask, 0.3), y)
    assert same_bits(fd.apply_mask(x, packed, 0.3), y)
    shared = fd.dropout_mask((13, 1), 0.3, seed=4)
    assert same_bits(fd.apply_mask(x, shared, 0.3), fd.dropout(x, 0.3, seed=4, noise_shape=(13, 1)))


def test_per_element_rates_scale_each_element(backend):
    p = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    x = np.ones((20000, 5))
    y = fd.dropout(x, p, seed=1)
    for j, pj in enumerate(p):
        kept = y[:, j][y[:, j] != 0]
        assert np.all(kept == 1 / (1 - pj)) if pj < 1 else kept.size == 0
    assert np.all(y[:, 0] == 1.0)


# --- statistics -------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.001, 0.1, 0.5, 0.9, 0.999])
def test_kept_fraction_is_binomial(p):
    n = 4_000_000
    keep = fd.dropout_mask(n, p, seed=2024)
    q = fd.effective_keep(p)
    sigma = np.sqrt(n * q * (1 - q))
    assert abs(keep.sum() - n * q) < 4.5 * sigma
    assert abs(q - (1 - p)) < 1e-5


def test_effective_keep_formula():
    ps = np.linspace(0, 1, 10001)
    q = fd.effective_keep(ps)
    assert np.all(np.abs(q - (1 - ps)) <= 0.5 / 65536 + 1e-15)
    assert fd.effective_keep(0.0) == 1.0 and fd.effective_keep(1.0) == 0.0
    assert fd.effective_keep(0.5) == 0.5


def test_mean_is_preserved():
    x = np.ones(4_000_000, np.float64)
    p = 0.3
    y = fd.dropout(x, p, seed=99)
    q = fd.effective_keep(p)
    expected_mean = q / (1 - p)
    sigma = np.sqrt(q * (1 - q) / x.size) / (1 - p)
    assert abs(y.mean() - expected_mean) < 4.5 * sigma
    assert abs(expected_mean - 1) < 2e-5


@pytest.mark.parametrize("lag", [1, 2, 3, 4, 31, 32, 1023, 1024, 1025, 2048])
def test_neighbours_uncorrelated(lag):
    m = fd.dropout_mask(2_000_000, 0.5, seed=5).astype(np.float64)
    r = np.corrcoef(m[:-lag], m[lag:])[0, 1]
    assert abs(r) < 4.5 / np.sqrt(m.size)


@pytest.mark.parametrize("seed", [0, 1, 2**32 - 1, 2**63])
def test_neighbouring_seeds_uncorrelated(seed):
    a = fd.dropout_mask(2_000_000, 0.5, seed=seed).astype(np.float64)
    b = fd.dropout_mask(2_000_000, 0.5, seed=seed + 1).astype(np.float64)
    assert abs(np.corrcoef(a, b)[0, 1]) < 4.5 / np.sqrt(a.size)


# --- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex128, object])
def test_non_float_dtype_is_a_type_error(dtype):
    with pytest.raises(TypeError, match=f"x must have dtype float16, bfloat16, float32 or float64, got dtype {np.dtype(dtype)}"):
        fd.dropout(np.zeros(3, dtype=dtype), 0.5, seed=1)


@pytest.mark.parametrize("p, exc", [(-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                                    (float("inf"), ValueError), ([0.2, 1.2], ValueError), ("0.5", TypeError),
                                    (None, TypeError), (True, TypeError)])
def test_bad_rate_value_or_type(p, exc):
    with pytest.raises(exc, match=r"p must be"):
        fd.dropout(np.zeros(2), p, seed=1)


def test_bad_rate_message_names_the_value():
    with pytest.raises(ValueError, match=r"p must be a real number in \[0, 1\], got 1.5"):
        fd.dropout(np.zeros(2), 1.5, seed=1)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got -0.5 in p"):
        fd.dropout(np.zeros(2), np.array([0.1, -0.5]), seed=1)
    with pytest.raises(ValueError, match=r"p of shape \(3,\) cannot broadcast to the noise shape \(2,\)"):
        fd.dropout(np.zeros(2), np.array([0.1, 0.2, 0.3]), seed=1)


@pytest.mark.parametrize("seed,exc,msg", [(-1, ValueError, r"seed must be in \[0, 2\*\*64\), got -1"),
                                          (2**64, ValueError, r"seed must be in \[0, 2\*\*64\), got 18446744073709551616"),
                                          (1.5, TypeError, "seed must be None, an int, or a numpy.random Generator, BitGenerator or SeedSequence"),
                                          (True, TypeError, "seed must be None, an int")])
def test_bad_seed(seed, exc, msg):
    with pytest.raises(exc, match=msg):
        fd.dropout(np.zeros(2), 0.5, seed=seed)


@pytest.mark.parametrize("noise,msg", [((1,), r"noise_shape must have length 2 \(x.ndim\), got \(1,\)"),
                                       ((0, 3), r"noise_shape\[0\] must be 1, None or x.shape\[0\]=2, got 0"),
                                       ((2, -1), r"noise_shape\[1\] must be 1, None or x.shape\[1\]=3, got -1"),
                                       ((2, 2), r"noise_shape\[1\] must be 1, None or x.shape\[1\]=3, got 2")])
def test_bad_noise_shape(noise, msg):
    with pytest.raises(ValueError, match=msg):
        fd.dropout(np.zeros((2, 3)), 0.5, seed=1, noise_shape=noise)


def test_a_noise_shape_of_the_wrong_type_is_a_type_error():
    for noise in (5, "ab", (2, 3.0)):
        with pytest.raises(TypeError, match=r"noise_shape"):
            fd.dropout(np.zeros((2, 3)), 0.5, seed=1, noise_shape=noise)


def test_bad_offset_and_out():
    with pytest.raises(ValueError, match=r"offset must be an integer in \[0, 2\*\*62\), got -1"):
        fd.dropout(np.zeros(2), 0.5, seed=1, offset=-1)
    with pytest.raises(ValueError, match=r"out must have shape \(2,\) and dtype float64, got shape \(3,\) and dtype float64"):
        fd.dropout(np.zeros(2), 0.5, seed=1, out=np.zeros(3))
    with pytest.raises(ValueError, match=r"out must have shape \(2,\) and dtype float64, got shape \(2,\) and dtype float32"):
        fd.dropout(np.zeros(2), 0.5, seed=1, out=np.zeros(2, np.float32))


def test_bad_masks():
    x = np.zeros((4, 5))
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\) does not match x of shape \(4, 5\)"):
        fd.apply_mask(x, np.ones((4, 4), bool), 0.5)
    with pytest.raises(ValueError, match=r"a packed mask for x of size 20 must be 1-D of length 3, got shape \(2,\)"):
        fd.apply_mask(x, np.zeros(2, np.uint8), 0.5)
    with pytest.raises(TypeError, match="mask must be a bool array or a packed uint8 array, got dtype int64"):
        fd.apply_mask(x, np.ones((4, 5), np.int64), 0.5)


# --- backend selection -------------------------------------------------------------------

def _run(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_backend_env_selection():
    r = _run("import fastdrop; print(fastdrop.backend())", FASTDROP_BACKEND="numpy")
    assert r.returncode == 0 and r.stdout.strip() == "numpy"
    r = _run("import fastdrop", FASTDROP_BACKEND="fortran")
    assert r.returncode != 0 and "backend must be one of ('cython', 'numpy'), got 'fortran'" in r.stderr
    r = _run("import fastdrop; print(fastdrop.get_num_threads())", FASTDROP_NUM_THREADS="2")
    assert r.stdout.strip() == "2"


def test_cython_requested_but_missing_is_an_error():
    # Hide the compiled module: asking for it must fail, not fall back.
    code = ("import sys; sys.modules['fastdrop._kernels'] = None\n"
            "import fastdrop")
    r = _run(code, FASTDROP_BACKEND="cython", FASTDROP_ISA="baseline")
    assert r.returncode != 0 and "the cython backend is not available" in r.stderr


def test_use_backend_restores_and_rejects_unknown():
    before = fd.backend()
    with fd.use_backend("numpy"):
        assert fd.backend() == "numpy"
    assert fd.backend() == before
    with pytest.raises(ValueError, match="backend must be one of"):
        fd.set_backend("gpu")
    with pytest.raises(ValueError, match=r"num_threads must be an integer in \[1, 1024\], got 0"):
        fd.set_num_threads(0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_fast_path_equals_general_path(backend, dtype):
    # Plain ints/floats on a C-contiguous array take a shortcut past the general checks;
    # NumPy scalars and out= take the general path: both must give the same bits.
    x = np.random.default_rng(12).standard_normal((33, 65)).astype(dtype)
    fast = fd.dropout(x, 0.3, seed=5, offset=7)
    general = fd.dropout(x, np.float64(0.3), seed=np.int64(5), offset=np.int64(7), out=np.empty_like(x))
    assert same_bits(fast, general)
    assert fast.flags.c_contiguous and not np.shares_memory(fast, x)
    out = np.empty_like(x)
    assert fd.dropout(x, 0.3, seed=5, offset=7, out=out) is out and same_bits(out, general)
    y = x.copy()
    assert fd.dropout(y, 0.3, seed=5, offset=7, out=y) is y and same_bits(y, general)
    flat = np.arange(100, dtype=dtype)            # contiguous x and out, overlapping by a shift
    with pytest.raises(ValueError, match="out overlaps x partially"):
        fd.dropout(flat[:-1], 0.3, seed=5, out=flat[1:])


def test_interleaved_out_that_shares_no_element_is_accepted(backend):
    a = np.arange(1, 41, dtype=np.float32)
    x = a[::2].copy()
    fd.dropout(a[::2], 0.5, seed=1, out=a[1::2])      # same buffer, disjoint elements
    assert same_bits(a[1::2], fd.dropout(x, 0.5, seed=1))
    assert same_bits(a[::2], x)                        # x untouched


def test_numpy_integer_thread_counts():
    old = fd.get_num_threads()
    try:
        fd.set_num_threads(np.int64(2))
        assert fd.get_num_threads() == 2 and type(fd.get_num_threads()) is int
    finally:
        fd.set_num_threads(old)


def test_bool_mask_bytes_other_than_0_and_1_mean_true():
    x = np.random.default_rng(13).standard_normal(64).astype(np.float32)
    raw = np.tile(np.array([2, 1, 0, 255], np.uint8), 16)
    mask = raw.view(bool)
    ref, got = both(lambda: fd.apply_mask(x, mask, 0.5))
    assert same_bits(ref, got)
    assert same_bits(got, np.where(raw != 0, x * np.float32(2), np.float32(0)))


def test_many_one_element_runs_on_the_numpy_backend():
    # A column of a wide array: 20000 runs of 1 element, each in its own block.
    from fastdrop import dropout_mask_box
    with fd.use_backend("numpy"):
        col = dropout_mask_box((20000, 1), 0.5, seed=3, global_shape=(20000, 4096), origin=(0, 7))
    full_rows = fd.dropout_mask((20000, 4096), 0.5, seed=3)[:, 7:8]
    assert np.array_equal(col, full_rows)
