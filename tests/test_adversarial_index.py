"""The top of the stream's index range (issue 10, item 1).

Every element's stream index (offset + its C-order index in the noise shape; the word
index for the word-per-element variants) must be below ``MAX_INDEX = 2**62``.  Over the
limit every entry point raises ValueError before touching anything; at the limit the
kernels work bit for bit like the NumPy backend, write nothing past their output, and
the slice identity ``dropout(x[i:j], offset=o + i) == dropout(x, offset=o)[i:j]`` holds.
"""

import numpy as np
import pytest

import fastdrop as fd
from fastdrop import _backend
from fastdrop.functional import MAX_INDEX

pytestmark = pytest.mark.adversarial

N = 5000                                   # elements next to the limit in most cases
TOP = MAX_INDEX - N                        # offset whose last element has index 2**62 - 1
SLICES = [(0, N), (0, 1), (N - 1, N), (1000, 1023), (17, 4100), (4096, N)]
OVER = r"offset \+ size must be at most 2\*\*62 \(the stream's index range\), got offset=\d+ and size=\d+"


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _kernel_variants():
    """(name, kernel module) for the NumPy backend and every compiled ISA variant this CPU runs."""
    variants = [("numpy", _backend._module_for("numpy"))]
    for isa in _backend.runnable_isas():
        if isa in _backend.built_isas():
            variants.append((isa, _backend.variant(isa)))
    return variants


@pytest.fixture(params=[name for name, _ in _kernel_variants()])
def variant(request, monkeypatch):
    """Run the test on the NumPy backend and on each ISA variant of the compiled kernels."""
    module = dict(_kernel_variants())[request.param]
    monkeypatch.setattr(_backend, "_active", ("numpy" if request.param == "numpy" else "cython", module))
    return request.param


def test_one_limit_everywhere():
    assert MAX_INDEX == 2**62
    if _backend.compiled_available():
        for _, module in _kernel_variants()[1:]:
            assert module.MAX_INDEX == MAX_INDEX


# --- over the limit: a clear ValueError, and no trace -------------------------------------
G = 2**62 - 1


def test_the_issues_mask_box_example_raises():
    with pytest.raises(ValueError, match=OVER):
        fd.dropout_mask_box((3000,), 0.5, seed=3, global_shape=(G,), origin=(G - 3000,), offset=G)


def test_the_issues_box_example_raises_and_leaves_out_alone(backend):
    buf = np.full(4000, 7.0, dtype=np.float32)
    with pytest.raises(ValueError, match=OVER):
        fd.dropout_box(np.ones(3000, dtype=np.float32), 0.5, seed=3, global_shape=(G,), origin=(G - 3000,),
                       offset=G, out=buf[:3000])
    assert (buf == 7.0).all()


X_SIZE = 100                              # x below is (4, 25); the noise shape (4, 1) has 4 elements
PAST_THE_LIMIT = {
    "dropout-fast": (X_SIZE, lambda x, o, out: fd.dropout(x, 0.5, seed=1, offset=o, out=out)),
    "dropout": (X_SIZE, lambda x, o, out: fd.dropout(x, 0.5, seed=np.int64(1), offset=o, out=out)),
    "dropout-p-array": (X_SIZE, lambda x, o, out: fd.dropout(x, np.full(25, 0.5), seed=1, offset=o, out=out)),
    "dropout-noise-shape": (4, lambda x, o, out: fd.dropout(x, 0.5, seed=1, offset=o, noise_shape=(None, 1),
                                                             out=out)),
    "alpha": (X_SIZE, lambda x, o, out: fd.alpha_dropout(x, 0.5, seed=1, offset=o, out=out)),
    "alpha-grad": (X_SIZE, lambda x, o, out: fd.alpha_dropout_grad(x, 0.5, seed=1, offset=o, out=out)),
    "gaussian": (X_SIZE, lambda x, o, out: fd.gaussian_dropout(x, 0.5, seed=1, offset=o, out=out)),
    "box": (X_SIZE, lambda x, o, out: fd.dropout_box(x, 0.5, seed=1, global_shape=x.shape, origin=(0, 0), offset=o,
                                                      out=out)),
}


@pytest.mark.parametrize("name", PAST_THE_LIMIT)
def test_one_past_the_limit_raises_and_writes_nothing(backend, name):
    noise_size, call = PAST_THE_LIMIT[name]
    x = np.ones((4, 25), dtype=np.float32)
    out = np.full_like(x, 7.0)
    call(x, MAX_INDEX - noise_size, out)                        # right at the limit: fine
    out[...] = 7.0
    with pytest.raises(ValueError, match=OVER):
        call(x, MAX_INDEX - noise_size + 1, out)
    assert (out == 7.0).all()


def test_dropout_mask_raises_one_past_the_limit():
    fd.dropout_mask((3, 7), 0.5, seed=1, offset=MAX_INDEX - 21)
    with pytest.raises(ValueError, match=OVER):
        fd.dropout_mask((3, 7), 0.5, seed=1, offset=MAX_INDEX - 20)
    with pytest.raises(ValueError, match=OVER):
        fd.dropout_mask((3, 7), np.full(7, 0.5), seed=1, offset=MAX_INDEX - 20, packed=True)


def test_a_global_shape_past_the_limit_raises_even_for_a_small_box():
    with pytest.raises(ValueError, match=OVER):
        fd.dropout_mask_box((2, 2), 0.5, seed=1, global_shape=(2**31, 2**31 + 1), origin=(0, 0))
    with pytest.raises(ValueError, match=OVER):           # the noise shape counts, with the offset
        fd.dropout_mask_box((2, 2), 0.5, seed=1, global_shape=(2**40, 2**22), origin=(0, 0), offset=1)
    fd.dropout_mask_box((2, 2), 0.5, seed=1, global_shape=(2**40, 2**22), origin=(0, 0), noise_shape=(None, 1), offset=1)


@pytest.mark.skipif(not _backend.compiled_available(), reason="the compiled extension is not built")
def test_the_compiled_kernels_guard_their_own_arguments():
    # The public API checks first; a direct call past the range must still not wrap int64.
    k = _backend._module_for("cython")
    x = np.ones(3000, dtype=np.float32)
    out = np.full(3100, 7.0, dtype=np.float32)
    with pytest.raises(ValueError, match=r"leave the index range \[0, 2\*\*62\)"):
        k.dropout_flat(5, G, 32768, np.float32(2.0), x, out[:3000])
    with pytest.raises(ValueError, match=r"leave the index range"):
        k.keep_mask_rows(5, np.array([MAX_INDEX - 3000], dtype=np.int64), 32768, np.empty((1, 3001), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"leave the index range"):
        k.fill_words(5, MAX_INDEX - 2, np.empty(3, dtype=np.uint64))
    with pytest.raises(ValueError, match=r"leave the index range"):
        k.dropout_rows(5, np.array([0, -1], dtype=np.int64), 32768, np.float32(2.0), x.reshape(2, -1),
                       out[:3000].reshape(2, -1))
    assert (out == 7.0).all()


# --- at the limit: bit-exact on every backend and variant, nothing written past out -------
def test_at_the_limit_every_variant_matches_the_numpy_backend(variant):
    x = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    p = np.linspace(0.0, 1.0, N)
    results = {
        "dropout": fd.dropout(x, 0.4, seed=3, offset=TOP),
        "dropout-p": fd.dropout(x, p, seed=3, offset=TOP),
        "mask": fd.dropout_mask(N, 0.4, seed=3, offset=TOP),
        "mask-box": fd.dropout_mask_box((4000,), 0.4, seed=3, global_shape=(G - 4999,), origin=(G - 8999,), offset=5000),
        "box": fd.dropout_box(x[:3000], 0.4, seed=3, global_shape=(MAX_INDEX - 5000,), origin=(MAX_INDEX - 8000,),
                              offset=5000),
        "words": _backend.kernels().fill_words(9, MAX_INDEX - 3000, np.empty(3000, dtype=np.uint64)),
        "gaussian": fd.gaussian_dropout(x, 0.3, seed=3, offset=TOP),
        "alpha": fd.alpha_dropout(x, 0.3, seed=3, offset=TOP),
    }
    with fd.use_backend("numpy"):
        expected = {
            "dropout": fd.dropout(x, 0.4, seed=3, offset=TOP),
            "dropout-p": fd.dropout(x, p, seed=3, offset=TOP),
            "mask": fd.dropout_mask(N, 0.4, seed=3, offset=TOP),
            # the box's stream indices are offset + origin ..: the last is 2**62 - 1
            "mask-box": fd.dropout_mask(4000, 0.4, seed=3, offset=MAX_INDEX - 4000),
            "box": fd.dropout(x[:3000], 0.4, seed=3, offset=MAX_INDEX - 3000),
            "words": _backend.kernels().fill_words(9, MAX_INDEX - 3000, np.empty(3000, dtype=np.uint64)),
            "gaussian": fd.gaussian_dropout(x, 0.3, seed=3, offset=TOP),
            "alpha": fd.alpha_dropout(x, 0.3, seed=3, offset=TOP),
        }
    for name in results:
        assert same_bits(results[name], expected[name]), name


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_out_slices_at_the_limit_write_nothing_past_their_end(variant, dtype):
    x = np.random.default_rng(1).standard_normal(N).astype(dtype)
    buf = np.full(N + 4096, 7.0, dtype=dtype)
    cases = [
        lambda out: fd.dropout(x, 0.5, seed=3, offset=TOP, out=out),
        lambda out: fd.dropout(x, np.linspace(0, 1, N), seed=3, offset=TOP, out=out),
        lambda out: fd.dropout_box(x, 0.5, seed=3, global_shape=(MAX_INDEX,), origin=(MAX_INDEX - N,), out=out),
        lambda out: fd.dropout_box(x, np.linspace(0, 1, N), seed=3, global_shape=(MAX_INDEX,),
                                   origin=(MAX_INDEX - N,), out=out),
        lambda out: fd.alpha_dropout_grad(x, 0.5, seed=3, offset=TOP, out=out),
        lambda out: fd.gaussian_dropout(x, 0.5, seed=3, offset=TOP, out=out),
    ]
    for call in cases:
        buf[...] = 7.0
        call(buf[:N])
        assert (buf[N:] == 7.0).all()
        assert not (buf[:N] == 7.0).all()


def test_mask_rows_at_the_limit_write_nothing_past_their_end(variant):
    # Two runs of a 2-D box, the second ending at index 2**62 - 1, written into one guarded buffer.
    buf = np.full(2 * 3000 + 4096, 9, dtype=np.uint8)
    starts = np.array([MAX_INDEX - 9000, MAX_INDEX - 3000], dtype=np.int64)
    _backend.kernels().keep_mask_rows(4, starts, 32768, buf[:6000].reshape(2, 3000))
    assert (buf[6000:] == 9).all() and set(np.unique(buf[:6000])) == {0, 1}


# --- the slice identity near the limit --------------------------------------------------
@pytest.mark.parametrize("i,j", SLICES)
def test_slice_identity_near_the_limit(variant, i, j):
    x = np.random.default_rng(2).standard_normal(N).astype(np.float32)
    p = np.linspace(0.05, 0.95, N)
    pairs = [
        (fd.dropout(x[i:j], 0.3, seed=7, offset=TOP + i), fd.dropout(x, 0.3, seed=7, offset=TOP)[i:j]),
        (fd.dropout(x[i:j], p[i:j], seed=7, offset=TOP + i), fd.dropout(x, p, seed=7, offset=TOP)[i:j]),
        (fd.dropout_mask(j - i, 0.3, seed=7, offset=TOP + i), fd.dropout_mask(N, 0.3, seed=7, offset=TOP)[i:j]),
        (fd.dropout_box(x[i:j], 0.3, seed=7, global_shape=(N,), origin=(i,), offset=TOP),
         fd.dropout(x, 0.3, seed=7, offset=TOP)[i:j]),
        (fd.dropout_box(x[i:j], p, seed=7, global_shape=(N,), origin=(i,), offset=TOP),
         fd.dropout(x, p, seed=7, offset=TOP)[i:j]),
        (fd.dropout_mask_box((j - i,), 0.3, seed=7, global_shape=(N,), origin=(i,), offset=TOP),
         fd.dropout_mask(N, 0.3, seed=7, offset=TOP)[i:j]),
        (fd.alpha_dropout(x[i:j], 0.3, seed=7, offset=TOP + i), fd.alpha_dropout(x, 0.3, seed=7, offset=TOP)[i:j]),
        (fd.alpha_dropout_grad(x[i:j], 0.3, seed=7, offset=TOP + i),
         fd.alpha_dropout_grad(x, 0.3, seed=7, offset=TOP)[i:j]),
        (fd.gaussian_dropout(x[i:j], 0.3, seed=7, offset=TOP + i),
         fd.gaussian_dropout(x, 0.3, seed=7, offset=TOP)[i:j]),
    ]
    for k, (part, whole) in enumerate(pairs):
        assert same_bits(part, whole), k


def test_2d_boxes_near_the_limit_match_the_whole(variant):
    # A (50, 100) array whose last element has index 2**62 - 1; boxes cut rows and columns,
    # with scalar and per-feature rates (fused and mask paths).
    shape, offset = (50, 100), MAX_INDEX - 5000
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    p = np.linspace(0.1, 0.9, 100)
    for rate in (0.3, p):
        whole = fd.dropout(x, rate, seed=5, offset=offset)
        for (r0, r1), (c0, c1) in [((40, 50), (0, 100)), ((3, 50), (97, 100)), ((49, 50), (99, 100))]:
            got = fd.dropout_box(x[r0:r1, c0:c1], rate, seed=5, global_shape=shape, origin=(r0, c0), offset=offset)
            assert same_bits(got, whole[r0:r1, c0:c1])


def test_threads_split_a_run_at_the_limit(variant):
    n = 300_000                                 # past the kernels' parallel threshold
    x = np.random.default_rng(4).standard_normal(n).astype(np.float32)
    p = np.linspace(0, 1, 1000)
    before = fd.get_num_threads()
    try:
        fd.set_num_threads(1)
        one = [fd.dropout(x, 0.5, seed=2, offset=MAX_INDEX - n),
               fd.dropout(x.reshape(-1, 1000), p, seed=2, offset=MAX_INDEX - n)]
        fd.set_num_threads(2)
        two = [fd.dropout(x, 0.5, seed=2, offset=MAX_INDEX - n),
               fd.dropout(x.reshape(-1, 1000), p, seed=2, offset=MAX_INDEX - n)]
    finally:
        fd.set_num_threads(before)
    for a, b in zip(one, two):
        assert same_bits(a, b)


# --- Dask: checked at graph construction, and the last chunk at the limit ----------------
def test_dask_array_whose_last_chunk_sits_at_the_limit(backend):
    da = pytest.importorskip("dask.array")
    import fastdrop.dask as fdd
    x = np.random.default_rng(5).standard_normal((40, 250)).astype(np.float32)
    darr = da.from_array(x, chunks=(13, 64))
    offset = MAX_INDEX - x.size
    for rate in (0.4, np.linspace(0.1, 0.9, 250)):
        got = fdd.dropout(darr, rate, seed=11, offset=offset).compute(scheduler="sync")
        assert same_bits(got, fd.dropout(x, rate, seed=11, offset=offset))
    with pytest.raises(ValueError, match=OVER):
        fdd.dropout(darr, 0.4, seed=11, offset=offset + 1)           # raised on call, nothing computed
    with pytest.raises(ValueError, match=OVER):
        fdd.dropout(da.zeros((2**31, 2**31 + 1), chunks=(2**20, 2**20), dtype=np.float32), 0.5, seed=1)
