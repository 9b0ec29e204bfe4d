"""Property-based fuzzing of the public API on both backends.

Every generated case must give either the documented result, checked bit for bit against
an oracle built from the NumPy backend's mask and NumPy's own multiply, or the documented
exception with its message.  Inputs cover 0-d, empty, size-1 and many-axis shapes,
float16/32/64 in both byte orders, transposed, negative-stride, stepped and zero-stride
views, read-only and memory-mapped arrays, lists, scalars and ``__array__`` objects.
"""
import os
import re
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastdrop as fd

# The backend fixture is constant across the examples of one test, so sharing it is safe.
fuzz = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

FLOATS = [np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)]
# bfloat16 is named where the function takes it (all but the noise variants and dropout_add)
BFLOAT16_IF_TAKEN = "(bfloat16, )?"
NON_FLOATS = [np.dtype(c) for c in "?bBhHiIlLqQeFDGOSUV" if np.dtype(c).kind != "f"] + [
    np.dtype("M8[s]"), np.dtype("m8[s]"), np.dtype(np.longdouble)]
EDGE_P = [0.0, 1e-12, 0.5, 1 - 1e-12, 1.0]
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}

shapes = hnp.array_shapes(min_dims=0, max_dims=6, min_side=0, max_side=5).filter(lambda s: np.prod(s) <= 600)
rates = st.one_of(st.sampled_from(EDGE_P), st.floats(0.0, 1.0))
seeds = st.integers(0, 2**64 - 1)
offsets = st.one_of(st.integers(0, 5000), st.integers(0, 2**62 - 10_000))
layouts = st.sampled_from(["C", "F", "transposed", "negative", "stepped", "broadcast", "unaligned", "readonly",
                           "memmap", "byteswapped", "list", "array_like"])


def bits(a):
    a = np.asarray(a)
    return a.view(UINT[a.dtype.itemsize])


def assert_same_bits(actual, expected):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_array_equal(bits(actual), bits(expected))


def values(draw, shape, dtype):
    """Finite values with some inf, -inf and NaN mixed in (dropped ones must become +0.0)."""
    elems = st.floats(width=8 * dtype.itemsize, allow_nan=True, allow_infinity=True)
    return draw(hnp.arrays(dtype, shape, elements=elems, fill=st.sampled_from([1.0, -2.5, np.inf, np.nan])))


class ArrayLike:
    """A non-array object NumPy converts through ``__array__``."""

    def __init__(self, arr):
        self.arr = arr

    def __array__(self, dtype=None, copy=None):
        return self.arr if dtype is None else self.arr.astype(dtype)


def make_input(draw, base, layout, tmpdir):
    """``base`` (C-contiguous) presented in ``layout``; returns (input, its values as an array)."""
    ndim = base.ndim
    if layout == "F" and ndim >= 1:
        return np.asfortranarray(base), base
    if layout == "transposed" and ndim >= 2:
        perm = draw(st.permutations(range(ndim)))
        return np.ascontiguousarray(base.transpose(perm)).transpose(np.argsort(perm)), base
    if layout == "negative" and ndim >= 1:
        axes = tuple(draw(st.sets(st.integers(0, ndim - 1), min_size=1)))
        return np.flip(np.flip(base, axes).copy(), axes), base
    if layout == "stepped" and ndim >= 1:
        steps = [draw(st.integers(1, 3)) for _ in range(ndim)]
        big = np.zeros([max(n * s, 1) for n, s in zip(base.shape, steps)], dtype=base.dtype)
        view = big[tuple(slice(0, n * s, s) for n, s in zip(base.shape, steps))]
        view[...] = base
        return view, base
    if layout == "broadcast" and ndim >= 1:
        axes = draw(st.sets(st.integers(0, ndim - 1), min_size=1))
        src = base[tuple(slice(0, 1) if a in axes else slice(None) for a in range(ndim))]
        view = np.broadcast_to(src, base.shape)
        return view, np.ascontiguousarray(view)
    if layout == "unaligned" and base.size:      # as from np.frombuffer at an odd offset
        raw = np.zeros(base.nbytes + 1, np.uint8)
        view = raw[1:].view(base.dtype).reshape(base.shape)
        assert not view.flags.aligned
        view[...] = base
        return view, base
    if layout == "readonly":
        ro = base.copy()
        ro.flags.writeable = False
        return ro, base
    if layout == "memmap" and base.size:
        path = os.path.join(tmpdir, "x.bin")
        mm = np.memmap(path, dtype=base.dtype, mode="w+", shape=base.shape)
        mm[...] = base
        mm.flush()
        return np.memmap(path, dtype=base.dtype, mode="r", shape=base.shape), base
    if layout == "byteswapped":
        return base.astype(base.dtype.newbyteorder()), base
    if layout == "list" and 0 not in base.shape:      # [] would lose the shape
        native = np.asarray(base.tolist())       # Python floats: NumPy reads them as float64
        return base.tolist(), native
    if layout == "array_like":
        return ArrayLike(base), base
    return base, base


def noise_shapes(draw, shape):
    """A valid Keras noise shape for ``shape`` and the mask shape it resolves to."""
    entries, resolved = [], []
    for n in shape:
        choice = draw(st.sampled_from(["size", "one", "none"]))
        entries.append(n if choice == "size" else 1 if choice == "one" else None)
        resolved.append(1 if choice == "one" else n)
    return tuple(entries), tuple(resolved)


def oracle(x, p, seed, noise_shape, offset):
    """Documented dropout result from the NumPy backend's mask and NumPy's multiply."""
    x = np.asarray(x)
    x = x.astype(x.dtype.newbyteorder("="))
    ns = x.shape if noise_shape is None else noise_shape
    with fd.use_backend("numpy"):
        keep = fd.dropout_mask(ns, p, seed=seed, offset=offset)
    pb = np.broadcast_to(np.asarray(p, dtype=np.float64), ns)
    with np.errstate(all="ignore"):       # float16 scales near p = 1 overflow to inf, as documented
        scale = np.where(pb < 1.0, 1.0 / (1.0 - pb), 1.0).astype(x.dtype)
        return np.where(keep, x * scale, np.zeros((), x.dtype))


@st.composite
def dropout_cases(draw):
    dtype = draw(st.sampled_from(FLOATS))
    shape = draw(shapes)
    base = values(draw, shape, dtype)
    layout = draw(layouts)
    use_noise = draw(st.booleans())
    noise, resolved = noise_shapes(draw, shape) if use_noise else (None, shape)
    if draw(st.booleans()):
        p = draw(rates)
    else:       # per-element rates broadcast to the noise shape, leading axes may be missing
        keep_dims = draw(st.integers(0, len(resolved)))
        pshape = tuple(1 if draw(st.booleans()) else n for n in resolved[len(resolved) - keep_dims:])
        p = draw(hnp.arrays(np.float64, pshape, elements=st.one_of(st.sampled_from(EDGE_P), st.floats(0, 1))))
    return base, layout, noise, resolved, p, draw(seeds), draw(offsets)


@fuzz
@given(case=dropout_cases(), data=st.data())
def test_dropout_matches_oracle_for_any_layout(backend, case, data):
    base, layout, noise, resolved, p, seed, offset = case
    with tempfile.TemporaryDirectory() as tmpdir:
        x, logical = make_input(data.draw, base, layout, tmpdir)
        before = np.array(logical, copy=True)
        got = fd.dropout(x, p, seed=seed, noise_shape=noise, offset=offset)
        expected = oracle(logical, p, seed, resolved, offset)
        assert_same_bits(got, expected)
        assert got.dtype.isnative and got.flags.writeable
        assert not np.shares_memory(got, np.asarray(x))          # a new array, never x itself
        assert_same_bits(np.asarray(x).astype(before.dtype), before)   # x untouched
        del x


@fuzz
@given(case=dropout_cases())
def test_same_seed_same_result_and_matches_numpy_backend(backend, case):
    base, _, noise, _, p, seed, offset = case
    a = fd.dropout(base, p, seed=seed, noise_shape=noise, offset=offset)
    b = fd.dropout(base, p, seed=np.random.default_rng(seed % 1000), noise_shape=noise, offset=offset)
    with fd.use_backend("numpy"):
        ref_a = fd.dropout(base, p, seed=seed, noise_shape=noise, offset=offset)
        ref_b = fd.dropout(base, p, seed=np.random.default_rng(seed % 1000), noise_shape=noise, offset=offset)
    assert_same_bits(a, ref_a)
    assert_same_bits(b, ref_b)


@fuzz
@given(dtype=st.sampled_from(FLOATS), shape=shapes, p=rates, seed=seeds, data=st.data())
def test_training_false_and_p_zero_return_an_equal_copy(backend, dtype, shape, p, seed, data):
    x = values(data.draw, shape, dtype)
    for kwargs in ({"training": False, "p": p}, {"p": 0.0}, {"p": np.zeros(shape)}):
        y = fd.dropout(x, seed=seed, **kwargs)
        assert_same_bits(y, x)
        assert y is not x and not np.shares_memory(y, x)


@fuzz
@given(dtype=st.sampled_from(FLOATS), shape=shapes, seed=seeds, data=st.data())
def test_p_one_gives_positive_zeros_even_for_inf_and_nan(backend, dtype, shape, seed, data):
    x = values(data.draw, shape, dtype)
    for p in (1.0, 1, np.ones(shape)):
        assert_same_bits(fd.dropout(x, p, seed=seed), np.zeros(shape, dtype))
        assert_same_bits(fd.apply_mask(x, np.ones(shape, bool), p), np.zeros(shape, dtype))


@st.composite
def out_cases(draw):
    dtype = draw(st.sampled_from(FLOATS))
    shape = draw(shapes)
    base = values(draw, shape, dtype)
    layout = draw(st.sampled_from(["C", "F", "negative", "stepped", "unaligned"]))
    use_noise = draw(st.booleans())
    noise, resolved = noise_shapes(draw, shape) if use_noise else (None, shape)
    return base, layout, noise, resolved, draw(rates), draw(seeds), draw(offsets)


@fuzz
@given(case=out_cases(), data=st.data())
def test_out_is_x_works_in_place(backend, case, data):
    base, layout, noise, resolved, p, seed, offset = case
    x, logical = make_input(data.draw, base.copy(), layout, None)
    expected = oracle(logical, p, seed, resolved, offset)
    got = fd.dropout(x, p, seed=seed, noise_shape=noise, offset=offset, out=x)
    assert got is x
    assert_same_bits(x, expected)


@fuzz
@given(case=out_cases(), out_layout=st.sampled_from(["C", "F", "negative", "stepped", "unaligned"]), data=st.data())
def test_separate_out_of_any_layout_receives_the_result(backend, case, out_layout, data):
    base, layout, noise, resolved, p, seed, offset = case
    x, logical = make_input(data.draw, base, layout, None)
    out, _ = make_input(data.draw, np.full(base.shape, 7, base.dtype), out_layout, None)
    got = fd.dropout(x, p, seed=seed, noise_shape=noise, offset=offset, out=out)
    assert got is out
    assert_same_bits(out, oracle(logical, p, seed, resolved, offset))
    assert_same_bits(x, base)


@st.composite
def bad_outs(draw):
    """(x, out) pairs that must be refused: partial overlap, read-only, zero stride."""
    dtype = draw(st.sampled_from(FLOATS))
    kind = draw(st.sampled_from(["shifted", "reversed", "transposed", "readonly", "zero_stride", "readonly_x"]))
    n = draw(st.integers(2, 40))
    buf = np.arange(n + 1, dtype=dtype)
    if kind == "shifted":                  # same shape, one element apart
        return buf[:-1], buf[1:], "overlaps x partially"
    if kind == "reversed":
        return buf[:-1], buf[:-1][::-1], "overlaps x partially"
    if kind == "transposed":
        sq = np.arange(n * n, dtype=dtype).reshape(n, n)
        return sq, sq.T, "overlaps x partially"
    if kind == "readonly":
        out = np.empty(n, dtype)
        out.flags.writeable = False
        return buf[:n], out, "out must be writeable"
    if kind == "readonly_x":
        x = buf[:n]
        x.flags.writeable = False
        return x, x, "out must be writeable"
    out = np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=(n,), strides=(0,))
    return buf[:n], out, "zero strides"


@fuzz
@given(case=bad_outs(), p=rates, seed=seeds)
def test_bad_out_raises_and_writes_nothing(backend, case, p, seed):
    x, out, message = case
    snapshot_x, snapshot_out = x.copy(), out.copy()
    with pytest.raises(ValueError, match=message):
        fd.dropout(x, p, seed=seed, out=out)
    with pytest.raises(ValueError, match=message):
        fd.apply_mask(x, np.ones(x.shape, bool), p, out=out)
    assert_same_bits(x, snapshot_x)
    assert_same_bits(out, snapshot_out)


@fuzz
@given(shape=shapes, dtype=st.sampled_from(FLOATS), data=st.data())
def test_out_of_wrong_shape_or_dtype_raises(backend, shape, dtype, data):
    x = np.zeros(shape, dtype)
    other = data.draw(st.sampled_from([d for d in FLOATS if d != dtype]))
    wrong_shape = shape + (2,)
    for out in (np.zeros(shape, other), np.zeros(wrong_shape, dtype), np.zeros(shape, dtype.newbyteorder())):
        with pytest.raises(ValueError, match=r"out must have shape"):
            fd.dropout(x, 0.5, seed=1, out=out)
        with pytest.raises(ValueError, match=r"out must have shape"):
            fd.apply_mask(x, np.ones(shape, bool), 0.5, out=out)
    with pytest.raises(TypeError, match="out must be a numpy array, got list"):
        fd.dropout(x, 0.5, seed=1, out=[0.0])


@fuzz
@given(dtype=st.sampled_from(NON_FLOATS), shape=shapes)
def test_every_non_float_dtype_raises_type_error(backend, dtype, shape):
    x = np.zeros(shape, dtype)
    pattern = re.escape(f"x must have dtype float16, bfloat16, float32 or float64, got dtype {x.dtype}")
    with pytest.raises(TypeError, match=pattern):
        fd.dropout(x, 0.5, seed=1)
    with pytest.raises(TypeError, match=pattern):
        fd.dropout(x, 0.5, seed=1, training=False)
    with pytest.raises(TypeError, match=pattern):
        fd.apply_mask(x, np.ones(shape, bool), 0.5)


@pytest.mark.parametrize("x", [[1, 2, 3], 3, True, 1 + 2j, "abc", [[1.0], ["a"]], object(), None])
def test_non_float_array_likes_raise_type_error(backend, x):
    with pytest.raises(TypeError, match=r"x must have dtype float16, bfloat16, float32 or float64, got dtype"):
        fd.dropout(x, 0.5, seed=1)


@fuzz
@given(x=st.one_of(st.floats(), st.lists(st.floats(), max_size=20),
                   st.lists(st.lists(st.floats(), min_size=3, max_size=3), max_size=5)),
       p=rates, seed=seeds)
def test_python_scalars_and_lists_are_float64(backend, x, p, seed):
    got = fd.dropout(x, p, seed=seed)
    assert_same_bits(got, oracle(np.asarray(x, dtype=np.float64), p, seed, None, 0))


BAD_P_VALUES = [-1e-12, 1 + 1e-12, -1.0, 2.0, float("nan"), float("inf"), -float("inf")]
BAD_P_TYPES = [True, np.True_, "0.5", None, 0.5 + 0j, [0.5, "a"], object(), np.timedelta64(1)]


@pytest.mark.parametrize("p, exc", [(p, ValueError) for p in BAD_P_VALUES] + [(p, TypeError) for p in BAD_P_TYPES],
                         ids=repr)
def test_bad_rate_raises_naming_p(backend, p, exc):
    x = np.ones(4, np.float32)
    for call in (lambda: fd.dropout(x, p, seed=1), lambda: fd.dropout(x, p, seed=1, training=False),
                 lambda: fd.dropout_mask(4, p, seed=1), lambda: fd.apply_mask(x, np.ones(4, bool), p),
                 lambda: fd.effective_keep(p)):
        with pytest.raises(exc, match=r"p must be"):
            call()


@fuzz
@given(bad=st.one_of(st.floats(max_value=-1e-300), st.floats(min_value=1 + 1e-15), st.just(float("nan"))),
       shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), data=st.data())
def test_rate_array_with_one_bad_entry_raises_naming_the_value(backend, bad, shape, data):
    p = np.full(shape, 0.5)
    p[tuple(data.draw(st.integers(0, n - 1)) for n in shape)] = bad
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got .* in p"):
        fd.dropout(np.ones(shape, np.float32), p, seed=1)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got .* in p"):
        fd.dropout_mask(shape, p, seed=1)


@fuzz
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=2, max_side=4), data=st.data())
def test_rate_array_that_does_not_broadcast_raises(backend, shape, data):
    pshape = list(shape)
    axis = data.draw(st.integers(0, len(shape) - 1))
    pshape[axis] += 1
    with pytest.raises(ValueError, match=r"p of shape .* cannot broadcast to the noise shape"):
        fd.dropout(np.ones(shape, np.float32), np.full(pshape, 0.5), seed=1)
    with pytest.raises(ValueError, match=r"p of shape .* cannot broadcast to the noise shape"):
        fd.dropout_mask(shape, np.full(pshape, 0.5), seed=1)


@fuzz
@given(p=st.one_of(st.sampled_from(EDGE_P), st.floats(0, 1)))
def test_effective_keep_is_the_exact_threshold_fraction(p):
    keep = fd.effective_keep(p)
    t = np.floor((1.0 - p) * 65536 + 0.5)
    assert keep == t / 65536 and abs(keep - (1 - p)) <= 2**-17
    assert np.array_equal(fd.effective_keep(np.array([p, p])), [keep, keep])


@fuzz
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5), data=st.data())
def test_invalid_noise_shapes_raise(backend, shape, data):
    x = np.ones(shape, np.float32)
    axis = data.draw(st.integers(0, len(shape) - 1))
    bad_entry = data.draw(st.one_of(st.integers(-5, 0), st.integers(2, 9).filter(lambda v: v != shape[axis]),
                                    st.sampled_from([1.0, "1", True, 1.5])))
    assume(bad_entry not in (1, shape[axis]) or isinstance(bad_entry, (bool, float, str)))
    entries = list(shape)
    entries[axis] = bad_entry
    exc = TypeError if isinstance(bad_entry, (bool, float, str)) else ValueError
    with pytest.raises(exc, match=rf"noise_shape\[{axis}\] must be 1, None or x.shape\[{axis}\]"):
        fd.dropout(x, 0.5, seed=1, noise_shape=tuple(entries))
    for wrong_length in (tuple(shape) + (1,), tuple(shape)[1:]):
        with pytest.raises(ValueError, match=rf"noise_shape must have length {len(shape)}"):
            fd.dropout(x, 0.5, seed=1, noise_shape=wrong_length)
    with pytest.raises(TypeError, match="noise_shape must be None or a tuple"):
        fd.dropout(x, 0.5, seed=1, noise_shape=3)


@pytest.mark.parametrize("seed, error, message", [
    (-1, ValueError, r"seed must be in \[0, 2\*\*64\), got -1"),
    (np.int64(-5), ValueError, r"seed must be in \[0, 2\*\*64\), got -5"),
    (2**64, ValueError, r"seed must be in \[0, 2\*\*64\), got 18446744073709551616"),
    (1.5, TypeError, r"seed must be None, an int, or a numpy.random Generator, BitGenerator or SeedSequence, got float 1.5"),
    ("42", TypeError, r"seed must be None, an int, or a numpy.random Generator, BitGenerator or SeedSequence, got str '42'"),
    (True, TypeError, r"seed must be None, an int, or a numpy.random Generator, BitGenerator or SeedSequence, got bool True"),
    (np.random.RandomState(0), TypeError, r"got RandomState"),
])
def test_bad_seed(backend, seed, error, message):
    x = np.ones(3, np.float32)
    for call in (lambda: fd.dropout(x, 0.5, seed=seed), lambda: fd.dropout_mask(3, 0.5, seed=seed)):
        with pytest.raises(error, match=message):
            call()


@pytest.mark.parametrize("offset, exc", [(-1, ValueError), (1.0, TypeError), (True, TypeError), ("3", TypeError),
                                         (None, TypeError), (np.timedelta64(3), TypeError), (2**62, ValueError),
                                         (2**64, ValueError), (-(2**70), ValueError)], ids=repr)
def test_bad_offset(backend, offset, exc):
    x = np.ones(3, np.float32)
    for call in (lambda: fd.dropout(x, 0.5, seed=1, offset=offset),
                 lambda: fd.dropout(x, 0.5, seed=1, offset=offset, noise_shape=(1,)),
                 lambda: fd.dropout_mask(3, 0.5, seed=1, offset=offset)):
        with pytest.raises(exc, match=r"offset must be an integer in \[0, 2\*\*62\), got"):
            call()


@fuzz
@given(n=st.integers(1, 3000), cut=st.data(), p=rates, seed=seeds, offset=offsets)
def test_any_sub_range_via_offset_equals_the_slice(backend, n, cut, p, seed, offset):
    i = cut.draw(st.integers(0, n - 1))
    j = cut.draw(st.integers(i, n))
    x = np.arange(n, dtype=np.float32) + 1
    whole = fd.dropout(x, p, seed=seed, offset=offset)
    assert_same_bits(fd.dropout(x[i:j], p, seed=seed, offset=offset + i), whole[i:j])
    whole_mask = fd.dropout_mask(n, p, seed=seed, offset=offset)
    assert np.array_equal(fd.dropout_mask(j - i, p, seed=seed, offset=offset + i), whole_mask[i:j])


# ---- dropout_mask ---------------------------------------------------------------------

@fuzz
@given(shape=shapes, p=rates, seed=seeds, offset=offsets, as_int=st.booleans())
def test_dropout_mask_and_packed_form(backend, shape, p, seed, offset, as_int):
    arg = shape[0] if as_int and len(shape) == 1 else shape
    mask = fd.dropout_mask(arg, p, seed=seed, offset=offset)
    packed = fd.dropout_mask(arg, p, seed=seed, offset=offset, packed=True)
    with fd.use_backend("numpy"):
        ref = fd.dropout_mask(shape, p, seed=seed, offset=offset)
    assert mask.dtype == np.bool_ and mask.shape == shape
    assert np.array_equal(mask, ref)
    assert packed.dtype == np.uint8 and np.array_equal(packed, np.packbits(ref.ravel(), bitorder="little"))
    if p == 0.0 or p == 1e-12:
        assert mask.all()
    if p == 1.0 or p == 1 - 1e-12:
        assert not mask.any()


@pytest.mark.parametrize("shape, exc", [(-1, ValueError), ((2, -1), ValueError), ((2.0,), TypeError),
                                        ("3", TypeError), (None, TypeError), ((True,), TypeError),
                                        ([[2]], TypeError), (1.5, TypeError)], ids=repr)
def test_dropout_mask_bad_shape(backend, shape, exc):
    with pytest.raises(exc, match=r"shape must be an int or a tuple of ints >= 0, got"):
        fd.dropout_mask(shape, 0.5, seed=1)


# ---- apply_mask -----------------------------------------------------------------------

@fuzz
@given(case=dropout_cases(), packed=st.booleans(), data=st.data())
def test_apply_mask_equals_dropout(backend, case, packed, data):
    base, layout, noise, resolved, p, seed, offset = case
    assume(not (packed and noise is not None))       # a packed mask always covers all of x
    with tempfile.TemporaryDirectory() as tmpdir:
        x, logical = make_input(data.draw, base, layout, tmpdir)
        mask = fd.dropout_mask(resolved, p, seed=seed, offset=offset, packed=packed)
        got = fd.apply_mask(x, mask, p)
        assert_same_bits(got, oracle(logical, p, seed, resolved, offset))
        del x


@fuzz
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=2, max_side=5), data=st.data())
def test_apply_mask_rejects_mismatched_masks(backend, shape, data):
    x = np.ones(shape, np.float32)
    size = x.size
    need = (size + 7) // 8
    wrong = data.draw(st.integers(0, need + 3).filter(lambda n: n != need))
    with pytest.raises(ValueError, match=rf"a packed mask for x of size {size} must be 1-D of length {need}"):
        fd.apply_mask(x, np.zeros(wrong, np.uint8), 0.5)
    with pytest.raises(ValueError, match=rf"a packed mask for x of size {size} must be 1-D of length {need}"):
        fd.apply_mask(x, np.zeros((1, need), np.uint8), 0.5)
    bigger = tuple(n + 1 for n in shape)
    for mask_shape in (bigger, shape + (1,), shape[1:]):
        with pytest.raises(ValueError, match=r"mask of shape .* does not match x of shape"):
            fd.apply_mask(x, np.ones(mask_shape, bool), 0.5)
    for dtype in (np.int8, np.uint16, np.float32, np.int64, object):
        with pytest.raises(TypeError, match=r"mask must be a bool array or a packed uint8 array, got dtype"):
            fd.apply_mask(x, np.ones(shape, dtype), 0.5)


# ---- backend and thread controls --------------------------------------------------------

@pytest.mark.parametrize("name", ["", "Cython", "torch", None, 1])
def test_bad_backend_name(name):
    before = fd.backend()
    with pytest.raises(ValueError, match=r"backend must be one of \('cython', 'numpy'\), got"):
        fd.set_backend(name)
    with pytest.raises(ValueError, match=r"backend must be one of"):
        with fd.use_backend(name):
            pass
    assert fd.backend() == before


@pytest.mark.parametrize("n", [0, -1, 2**40])
def test_bad_thread_count(n):
    before = fd.get_num_threads()
    with pytest.raises(ValueError, match=r"num_threads must be an integer in \[1, 1024\], got"):
        fd.set_num_threads(n)
    assert fd.get_num_threads() == before


# ---- the box entry points ---------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, message", [
    ({"seed": None}, ValueError, r"seed must be given for a box"),
    ({"global_shape": (4,), "origin": (0,)}, ValueError,
     r"the box has 2 dimensions \(shape \(2, 3\)\) but global_shape=\(4,\) has 1"),
    ({"origin": (0, -1)}, ValueError, r"origin must be a tuple of 2 ints >= 0, got \(0, -1\)"),
    ({"origin": 3}, TypeError, r"origin must be a tuple of 2 ints >= 0, got 3"),
    ({"origin": (0, 1.0)}, TypeError, r"origin must be a tuple of 2 ints >= 0, got \(0, 1.0\)"),
    ({"origin": (3, 0)}, ValueError, r"the box \[3, 5\) on axis 0 .* does not fit in global_shape=\(4, 4\)"),
    ({"p": np.full(7, 0.5)}, ValueError, r"p of shape \(7,\) broadcasts neither to the global noise shape"),
    ({"p": 1.5}, ValueError, r"p must be a real number in \[0, 1\], got 1.5"),
    ({"offset": -1}, ValueError, r"offset must be an integer in \[0, 2\*\*62\)"),
    ({"noise_shape": (4, 2)}, ValueError, r"noise_shape\[1\] must be 1, None or x.shape\[1\]=4"),
    ({"global_shape": (2**31, 2**31 + 1), "origin": (0, 0)}, ValueError,
     r"offset \+ size must be at most 2\*\*62 \(the stream's index range\)"),
])
def test_box_errors(backend, kwargs, exc, message):
    args = {"p": 0.5, "seed": 1, "global_shape": (4, 4), "origin": (0, 0), **kwargs}
    p = args.pop("p")
    x = np.ones((2, 3), np.float32)
    with pytest.raises(exc, match=message):
        fd.dropout_box(x, p, **args)
    with pytest.raises(exc, match=message):
        fd.dropout_mask_box(x.shape, p, **args)


@fuzz
@given(case=dropout_cases(), data=st.data())
def test_box_equals_the_slice_of_the_whole(backend, case, data):
    base, layout, noise, resolved, p, seed, offset = case
    assume(base.ndim >= 1)
    lo = [data.draw(st.integers(0, n)) for n in base.shape]
    hi = [data.draw(st.integers(a, n)) for a, n in zip(lo, base.shape)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    with tempfile.TemporaryDirectory() as tmpdir:
        x, logical = make_input(data.draw, base, layout, tmpdir)
        x_box = np.asarray(x)[box]
        whole = oracle(logical, p, seed, resolved, offset)
        got = fd.dropout_box(x_box, p, seed=seed, global_shape=logical.shape, origin=tuple(lo), noise_shape=noise,
                             offset=offset)
        assert_same_bits(got, whole[box])
        del x, x_box


# ---- environment variables read at import ------------------------------------------------

def import_error(env, before=""):
    """The last line of the error raised by ``import fastdrop`` in a fresh interpreter."""
    import subprocess
    import sys
    code = f"{before}\nimport fastdrop"
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)
    assert proc.returncode != 0, "import succeeded"
    return proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("env, before, expected", [
    ({"FASTDROP_BACKEND": "torch"}, "", "ValueError: backend must be one of ('cython', 'numpy'), got 'torch'"),
    ({"FASTDROP_NUM_THREADS": "two"}, "", "ValueError: FASTDROP_NUM_THREADS must be an integer >= 1, got 'two'"),
    ({"FASTDROP_NUM_THREADS": "0"}, "", "ValueError: num_threads must be an integer in [1, 1024], got 0"),
    ({"FASTDROP_ISA": "sse9"}, "", "ValueError: FASTDROP_ISA must be one of"),
    ({"FASTDROP_BACKEND": "cython"}, "import sys; sys.modules['fastdrop._kernels'] = None",
     "ImportError: the cython backend is not available"),
])
def test_bad_environment_fails_at_import(env, before, expected):
    clean = {"FASTDROP_BACKEND": "", "FASTDROP_NUM_THREADS": "", "FASTDROP_ISA": ""}
    assert import_error({**clean, **env}, before).startswith(expected)


# ---- layers --------------------------------------------------------------------------

def _layer_specs():
    """name -> (factory(p, seed, data_format, block_size), allowed ranks up to 6, rate domain)."""
    any_rank = range(0, 7)
    return {
        "Dropout": (lambda p, s, f, b: fd.Dropout(p, seed=s), any_rank, "closed"),
        "Dropout-classic": (lambda p, s, f, b: fd.Dropout(p, seed=s, mode="classic"), any_rank, "closed"),
        "SpatialDropout1D": (lambda p, s, f, b: fd.SpatialDropout1D(p, seed=s, data_format=f), [3], "closed"),
        "SpatialDropout2D": (lambda p, s, f, b: fd.SpatialDropout2D(p, seed=s, data_format=f), [4], "closed"),
        "SpatialDropout3D": (lambda p, s, f, b: fd.SpatialDropout3D(p, seed=s, data_format=f), [5], "closed"),
        "AlphaDropout": (lambda p, s, f, b: fd.AlphaDropout(p, seed=s), any_rank, "closed"),
        "GaussianDropout": (lambda p, s, f, b: fd.GaussianDropout(p, seed=s), any_rank, "below_one"),
        "DropPath": (lambda p, s, f, b: fd.DropPath(p, seed=s), range(1, 7), "closed"),
        "DropBlock2D": (lambda p, s, f, b: fd.DropBlock2D(p, b, seed=s, data_format=f), [4], "closed"),
        "VariationalDropout": (lambda p, s, f, b: fd.VariationalDropout(p, seed=s), range(2, 7), "closed"),
        "ConcreteDropout": (lambda p, s, f, b: fd.ConcreteDropout(p, seed=s), any_rank, "open"),
        "AdaptiveDropout": (lambda p, s, f, b: fd.AdaptiveDropout(p, p_min=0.0, p_max=1.0, seed=s), any_rank, "closed"),
        "AdaptiveDropout-per-unit": (lambda p, s, f, b: fd.AdaptiveDropout(p, p_min=0.0, p_max=1.0, per_unit=True,
                                                                          seed=s), range(1, 7), "closed"),
    }


LAYER_SPECS = _layer_specs()
LAYER_RATES = {
    "closed": st.one_of(st.sampled_from(EDGE_P), st.floats(0, 1)),
    "below_one": st.one_of(st.sampled_from([0.0, 1e-12, 0.5, 1 - 1e-12]), st.floats(0, 0.999)),
    "open": st.one_of(st.sampled_from([1e-12, 0.5, 1 - 1e-12]), st.floats(1e-6, 1 - 1e-6)),
}


@st.composite
def layer_cases(draw):
    name = draw(st.sampled_from(sorted(LAYER_SPECS)))
    make, ranks, domain = LAYER_SPECS[name]
    ndim = draw(st.sampled_from([r for r in ranks if r <= 5]))
    shape = draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=0, max_side=4)) if ndim else ()
    dtype = draw(st.sampled_from(FLOATS))
    base = values(draw, shape, dtype)
    p = draw(LAYER_RATES[domain])
    data_format = draw(st.sampled_from(["channels_first", "channels_last"]))
    block = draw(st.integers(1, 3))
    layout = draw(st.sampled_from(["C", "F", "transposed", "negative", "stepped", "broadcast", "unaligned",
                                   "readonly", "byteswapped", "list", "array_like"]))
    seed = draw(seeds)
    return name, (lambda: make(p, seed, data_format, block)), base, layout


def forward_backward(make, x, grad, calls=2):
    """Outputs and input gradients of ``calls`` training forwards, then one eval forward."""
    layer = make()
    results = []
    for _ in range(calls):
        y = layer(x)
        results += [y, layer.backward(grad)]
    assert layer.counter == calls
    layer.eval()
    results.append(layer(x))
    assert layer.counter == calls                  # eval draws no mask
    return results


@fuzz
@given(case=layer_cases(), data=st.data())
def test_layers_give_the_same_bits_for_any_layout_and_backend(case, data):
    name, make, base, layout = case
    x, logical = make_input(data.draw, base, layout, None)
    snapshot = np.array(x, copy=True)
    grad = values(data.draw, logical.shape, logical.dtype)
    with fd.use_backend("numpy"):
        expected = forward_backward(make, logical.copy(), grad)
    for backend_name in fd._backend.BACKENDS if fd._backend.compiled_available() else ["numpy"]:
        with fd.use_backend(backend_name):
            got = forward_backward(make, x, grad)
        for a, b in zip(got, expected):
            assert_same_bits(np.asarray(a), np.asarray(b))
    assert_same_bits(np.array(x), snapshot)             # the input is never written


@fuzz
@given(case=layer_cases(), bad=st.sampled_from(NON_FLOATS[:-3]), data=st.data())
def test_layers_reject_non_float_inputs_and_bad_gradients(case, bad, data):
    name, make, base, _ = case
    layer = make()
    with pytest.raises(RuntimeError, match="backward called before any forward"):
        layer.backward(base)
    wrong = np.zeros(base.shape, bad)
    with pytest.raises(TypeError, match=f"x must have dtype float16, {BFLOAT16_IF_TAKEN}float32 or float64, got dtype "
                                        f"{wrong.dtype}"):
        layer(wrong)
    assert layer.counter == 0
    y = layer(base)
    with pytest.raises(TypeError, match=f"grad must have dtype float16, {BFLOAT16_IF_TAKEN}float32 or float64, "
                                        f"got dtype {wrong.dtype}"):
        layer.backward(wrong)
    with pytest.raises(ValueError, match=r"grad must have the shape of the last forward's output"):
        layer.backward(np.zeros(y.shape + (2,), y.dtype))


@fuzz
@given(name=st.sampled_from(sorted(n for n, (_, ranks, _) in LAYER_SPECS.items() if len(ranks) < 7)),
       ndim=st.integers(0, 6))
def test_layers_reject_wrong_ranks(name, ndim):
    make, ranks, _ = LAYER_SPECS[name]
    assume(ndim not in ranks)
    layer = make(0.5, 1, "channels_first", 2)
    with pytest.raises(ValueError, match=r"expects input of rank"):
        layer(np.ones((2,) * ndim, np.float32))
    assert layer.counter == 0


# ---- the family's functional twins: out= aliasing ---------------------------------------

FAMILY = {
    "classic_dropout": (lambda x, s, out: fd.classic_dropout(x, 0.3, seed=s, out=out), range(0, 5)),
    "spatial_dropout": (lambda x, s, out: fd.spatial_dropout(x, 0.3, seed=s, out=out), range(3, 6)),
    "variational_dropout": (lambda x, s, out: fd.variational_dropout(x, 0.3, seed=s, out=out), range(2, 5)),
    "drop_path": (lambda x, s, out: fd.drop_path(x, 0.3, seed=s, out=out), range(1, 5)),
    "alpha_dropout": (lambda x, s, out: fd.alpha_dropout(x, 0.3, seed=s, offset=7, out=out), range(0, 5)),
    "alpha_dropout_grad": (lambda x, s, out: fd.alpha_dropout_grad(x, 0.3, seed=s, out=out), range(0, 5)),
    "gaussian_dropout": (lambda x, s, out: fd.gaussian_dropout(x, 0.3, seed=s, offset=3, out=out), range(0, 5)),
    "dropblock2d": (lambda x, s, out: fd.dropblock2d(x, 0.3, 2, seed=s, out=out), [4]),
    "concrete_dropout": (lambda x, s, out: fd.concrete_dropout(x, -1.0, seed=s, out=out), range(0, 5)),
}


@fuzz
@given(name=st.sampled_from(sorted(FAMILY)), dtype=st.sampled_from(FLOATS), seed=seeds, data=st.data())
def test_family_out_aliasing(backend, name, dtype, seed, data):
    call, ranks = FAMILY[name]
    ndim = data.draw(st.sampled_from(list(ranks)))
    shape = data.draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=2, max_side=4)) if ndim else ()
    x = values(data.draw, shape, dtype)
    expected = call(x, seed, None)
    with fd.use_backend("numpy"):
        assert_same_bits(call(x, seed, None), expected)
    separate = np.full(shape, 9, dtype)
    assert call(x, seed, separate) is separate
    assert_same_bits(separate, expected)
    work = x.copy()
    assert call(work, seed, work) is work                 # in place
    assert_same_bits(work, expected)
    if ndim:                                               # the same memory, first axis reversed
        with pytest.raises(ValueError, match="out overlaps x partially"):
            call(x, seed, x[::-1])
    read_only = np.empty(shape, dtype)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        call(x, seed, read_only)
    with pytest.raises(TypeError, match=f"must have dtype float16, {BFLOAT16_IF_TAKEN}float32 or float64, got dtype int"):
        call(np.zeros(shape, np.int32), seed, None)


# ---- numbers of every kind -------------------------------------------------------------

@fuzz
@given(p=st.sampled_from([0.0, 0.25, 0.5, 1.0]), seed=seeds)
def test_rate_and_seed_of_any_numeric_type_give_the_same_result(backend, p, seed):
    from fractions import Fraction
    x = np.linspace(-3, 3, 50, dtype=np.float32).reshape(5, 10)
    expected = fd.dropout(x, p, seed=seed)
    for same_p in (np.float64(p), np.float32(p), np.float16(p), Fraction(p), np.array(p), np.full((1, 10), p),
                   [[p] * 10] * 5):
        assert_same_bits(fd.dropout(x, same_p, seed=seed), expected)
    for same_seed in (np.uint64(seed), Fraction(seed).numerator):
        assert_same_bits(fd.dropout(x, p, seed=same_seed), expected)
    if seed < 2**63:
        assert_same_bits(fd.dropout(x, p, seed=np.int64(seed)), expected)
    if p in (0.0, 1.0):
        assert_same_bits(fd.dropout(x, int(p), seed=seed), expected)


# ---- the common call's shortcut -------------------------------------------------------------
def assert_the_shortcut_keeps_the_general_paths_bits(monkeypatch, predicate, arguments, base, out_kind, **kwargs):
    """``_validation.<predicate>`` lets the common call skip the checks: whenever it says yes,
    the general path (``functional``'s copy of the predicate patched to False) must accept the
    same arguments and give the same bits.  ``arguments(base)`` makes (x, out) of an array."""
    from fastdrop import _validation, functional
    x, out = arguments(base)
    shortcut = getattr(_validation, predicate)(x, kwargs["p"], kwargs["seed"], kwargs.get("training", True),
                                                kwargs.get("noise_shape"), kwargs["offset"], out)
    with monkeypatch.context() as patch:
        patch.setattr(functional, predicate, lambda *args: False)
        try:
            fresh_x, fresh_out = arguments(base.copy())
            expected = fd.dropout(fresh_x, out=fresh_out if out_kind == "new" else None, **kwargs)
        except (TypeError, ValueError):
            assert not shortcut
            return
    if shortcut:
        assert_same_bits(fd.dropout(x, out=out, **kwargs), expected)


def out_of_kind(out_kind, x, base):
    return {"none": None, "x": x, "new": np.empty_like(x), "shifted": base[1:x.size + 1].reshape(x.shape)}[out_kind]


@fuzz
@given(dtype=st.sampled_from(FLOATS), order=st.sampled_from(["C", "F", "strided", "swapped"]),
       n=st.integers(0, 70), p=st.sampled_from([0.0, 0.3, 1.0, 1.5, np.float64(0.3), "0.3"]),
       seed=st.sampled_from([5, -1, 2**64, np.int64(5), 1.0, True]),
       offset=st.sampled_from([0, 7, 2**62 - 10, 2**62, -1, True]),
       training=st.sampled_from([True, False, "yes"]), out_kind=st.sampled_from(["none", "x", "new", "shifted"]))
def test_the_shortcut_is_taken_only_for_calls_the_general_path_accepts(monkeypatch, dtype, order, n, p, seed,
                                                                       offset, training, out_kind):
    """``is_plain_dropout_call``: x is (n, 3)."""
    def arguments(base):
        x = {"C": base[:n * 3].reshape(n, 3), "F": np.asfortranarray(base[:n * 3].reshape(n, 3)),
             "strided": base[::2][:n * 3].reshape(n, 3),
             "swapped": base[:n * 3].reshape(n, 3).astype(dtype.newbyteorder())}[order]
        return x, out_of_kind(out_kind, x, base)

    base = np.random.default_rng(n).standard_normal(2 * n * 3 + 2).astype(dtype)
    assert_the_shortcut_keeps_the_general_paths_bits(monkeypatch, "is_plain_dropout_call", arguments, base, out_kind,
                                                     p=p, seed=seed, training=training, offset=offset)


@fuzz
@given(dtype=st.sampled_from(FLOATS), order=st.sampled_from(["C", "F", "strided"]), n=st.integers(0, 40),
       noise_shape=st.sampled_from([(None, 1, 1), (1, 1, 1), (-1, 1, 1), (1, 4, 1), (1, 1, 5), (1, 4), (1.0, 1, 1),
                                    (np.int64(1), 1, 1), [1, 1, 1], (1, 2, 1), (True, 1, 1), "n"]),
       p=st.sampled_from([0.3, 1.0, np.float64(0.3)]), seed=st.sampled_from([5, -1, np.int64(5)]),
       offset=st.sampled_from([0, 7, 2**62 - 10, 2**62]), out_kind=st.sampled_from(["none", "x", "new", "shifted"]))
def test_the_noise_shape_shortcut_is_taken_only_for_calls_the_general_path_accepts(monkeypatch, dtype, order, n,
                                                                                   noise_shape, p, seed, offset,
                                                                                   out_kind):
    """``is_shared_dropout_call``: x is (n, 4, 5); "n" stands for the noise shape (n, 1, 1)."""
    if noise_shape == "n":
        noise_shape = (n, 1, 1)

    def arguments(base):
        x = {"C": base[:n * 20].reshape(n, 4, 5), "F": np.asfortranarray(base[:n * 20].reshape(n, 4, 5)),
             "strided": base[::2][:n * 20].reshape(n, 4, 5)}[order]
        return x, out_of_kind(out_kind, x, base)

    base = np.random.default_rng(n).standard_normal(2 * n * 20 + 2).astype(dtype)
    assert_the_shortcut_keeps_the_general_paths_bits(monkeypatch, "is_shared_dropout_call", arguments, base, out_kind,
                                                     p=p, seed=seed, noise_shape=noise_shape, offset=offset)


DROPOUT_ADD_CHOICES = {   # the common call's value first, then the others
    "order": ["C", "F", "strided", "swapped"],
    "residual_kind": ["copy", "x", "shifted", "F", "float64", "list"],
    "bias_kind": ["row", "none", "full", "0-d", "(1, 3)", "float64", "strided row", "out's row", "list"],
    "p": [0.3, 0.0, 1.0, np.float64(0.3)],
    "seed": [5, -1, 2**64, np.int64(5)],
    "offset": [7, 0, 2**62 - 10, 2**62, True],
    "training": [True, False],
    "out_kind": ["new", "none", "x", "residual", "bias", "shifted", "read-only"],
}


def check_the_dropout_add_shortcut(monkeypatch, dtype, n, order, residual_kind, bias_kind, p, seed, offset, training,
                                   out_kind):
    """``is_plain_dropout_add_call`` on x of shape (n, 3): whenever it says yes, the general path
    (the predicate patched to False in ``fastdrop.residual``) accepts the same arguments and
    gives the same bits, and so does the NumPy backend.  Returns what it said."""
    from fastdrop import _validation, residual as residual_module

    def arguments(base):
        x = {"C": base[:n * 3].reshape(n, 3), "F": np.asfortranarray(base[:n * 3].reshape(n, 3)),
             "strided": base[::2][:n * 3].reshape(n, 3),
             "swapped": base[:n * 3].reshape(n, 3).astype(dtype.newbyteorder())}[order]
        other = base[n * 3:n * 6]
        residual = {"copy": other.reshape(n, 3), "x": x, "shifted": base[1:n * 3 + 1].reshape(n, 3),
                    "F": np.asfortranarray(other.reshape(n, 3)), "float64": other.reshape(n, 3).astype(np.float64),
                    "list": other.reshape(n, 3).tolist()}[residual_kind]
        out = {"new": np.empty(x.shape, dtype), "none": None, "x": x, "residual": residual, "bias": None,
               "shifted": base[2:n * 3 + 2].reshape(n, 3), "read-only": np.empty(x.shape, dtype)}[out_kind]
        if out_kind == "read-only":
            out.flags.writeable = False
        row = base[-3:]
        bias = {"row": row, "none": None, "full": base[-n * 3 - 3:-3].reshape(n, 3), "0-d": row[:1].reshape(()),
                "(1, 3)": row.reshape(1, 3), "float64": row.astype(np.float64), "strided row": base[-6::2],
                "out's row": out[:1] if isinstance(out, np.ndarray) else row, "list": row.tolist()}[bias_kind]
        if out_kind == "bias" and isinstance(bias, np.ndarray) and bias.shape == x.shape:
            out = bias
        return x, residual, bias, out

    pristine = np.random.default_rng(n).standard_normal(9 * n + 8).astype(dtype)
    kwargs = dict(seed=seed, training=training, offset=offset)
    x, residual, bias, out = arguments(pristine.copy())
    shortcut = _validation.is_plain_dropout_add_call(x, residual, p, bias, seed, training, None, offset, out)
    with monkeypatch.context() as patch:
        patch.setattr(residual_module, "is_plain_dropout_add_call", lambda *args: False)
        try:
            fresh = arguments(pristine.copy())
            expected = fd.dropout_add(fresh[0], fresh[1], p, bias=fresh[2], out=fresh[3], **kwargs)
        except (TypeError, ValueError):
            assert not shortcut
            return shortcut
    if shortcut:
        assert_same_bits(fd.dropout_add(x, residual, p, bias=bias, out=out, **kwargs), expected)
        with fd.use_backend("numpy"):
            fresh = arguments(pristine.copy())
            assert_same_bits(fd.dropout_add(fresh[0], fresh[1], p, bias=fresh[2], out=fresh[3], **kwargs), expected)
    return shortcut


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("choice", [(name, value) for name, values in DROPOUT_ADD_CHOICES.items()
                                    for value in values[1:]] + [None], ids=repr)
def test_the_dropout_add_shortcut_off_the_common_call_by_one_argument(monkeypatch, dtype, choice):
    """The common call, and each argument in turn changed to another kind: the shortcut is taken
    for the common call and for no change the general path refuses."""
    arguments = {name: values[0] for name, values in DROPOUT_ADD_CHOICES.items()}
    if choice is not None:
        arguments[choice[0]] = choice[1]
    taken = check_the_dropout_add_shortcut(monkeypatch, dtype, 5, **arguments)
    if choice is None:
        assert taken


@fuzz
@given(dtype=st.sampled_from(FLOATS), n=st.integers(0, 40), data=st.data())
def test_the_dropout_add_shortcut_is_taken_only_for_calls_the_general_path_accepts(monkeypatch, dtype, n, data):
    arguments = {name: data.draw(st.sampled_from(values), label=name) for name, values in DROPOUT_ADD_CHOICES.items()}
    check_the_dropout_add_shortcut(monkeypatch, dtype, n, **arguments)


@pytest.mark.parametrize("bias", [None, np.ones(6, np.float32), np.ones((5, 6), np.float32), np.ones((4, 5, 6),
                                                                                                   np.float32)])
def test_dropout_add_on_c_arrays_takes_the_shortcut(monkeypatch, backend, bias):
    from fastdrop import _core
    taken = []
    original = _core.dropout_add_plain_key
    monkeypatch.setattr(_core, "dropout_add_plain_key", lambda *args: taken.append(args) or original(*args))
    x = np.random.default_rng(0).standard_normal((4, 5, 6)).astype(np.float32)
    residual = np.ones_like(x)
    y = fd.dropout_add(x, residual, 0.3, bias=bias, seed=1)
    assert len(taken) == 1
    layer = fd.DropoutAdd(0.3, seed=1)
    y_layer = layer(x, residual, bias)
    assert len(taken) == 2
    general = fd.DropoutAdd(0.3, seed=1)                   # the same mask through the general path
    assert_same_bits(general(np.asfortranarray(x), residual, bias), y_layer)
    assert len(taken) == 2 and layer.counter == general.counter == 1
    with fd.use_backend("numpy"):
        assert_same_bits(y, fd.dropout_add(x, residual, 0.3, bias=bias, seed=1))
    expected = residual + fd.dropout(x if bias is None else x + bias, 0.3, seed=1)
    assert_same_bits(y, expected)


@pytest.mark.parametrize("call", [lambda x: fd.spatial_dropout(x, 0.3, seed=1), lambda x: fd.drop_path(x, 0.3, seed=1),
                                  lambda x: fd.variational_dropout(x, 0.3, seed=1),
                                  lambda x: fd.dropout(x, 0.3, seed=1, noise_shape=(1, 4, 1, 1))])
def test_the_family_calls_on_c_arrays_take_the_noise_shape_shortcut(monkeypatch, call):
    from fastdrop import _core
    taken = []
    original = _core.dropout_plain_over
    monkeypatch.setattr(_core, "dropout_plain_over", lambda *args: taken.append(args) or original(*args))
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 6)).astype(np.float32)
    y = call(x)
    assert len(taken) == 1
    with fd.use_backend("numpy"):
        assert_same_bits(y, call(x))
