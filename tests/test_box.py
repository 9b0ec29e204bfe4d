"""Dropout of a sub-box of a larger logical array (issue 6): the box's slice, bit for bit."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastdrop as fd
from fastdrop import _backend
from fastdrop.box import dropout_box, dropout_mask_box

FLOATS = [np.float16, np.float32, np.float64]


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@st.composite
def boxes(draw):
    """(global shape, noise_shape, origin, box shape) with boxes touching edges and empty ones."""
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    noise = tuple(draw(st.sampled_from([None, 1])) for _ in shape)
    origin = tuple(draw(st.integers(0, n - 1)) for n in shape)
    box = tuple(draw(st.integers(0, n - o)) for n, o in zip(shape, origin))
    return shape, noise, origin, box


def box_slice(origin, box):
    return tuple(slice(o, o + b) for o, b in zip(origin, box))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=boxes(), dtype=st.sampled_from(FLOATS), p=st.sampled_from([0.0, 0.1, 0.5, 0.93, 1.0]),
       offset=st.integers(0, 5000), seed=st.integers(0, 2**64 - 1))
def test_box_equals_slice_of_full_dropout(backend, case, dtype, p, offset, seed):
    shape, noise, origin, box = case
    full = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    expected = fd.dropout(full, p, seed=seed, noise_shape=noise, offset=offset)[box_slice(origin, box)]
    got = dropout_box(full[box_slice(origin, box)], p, seed=seed, global_shape=shape, origin=origin,
                      noise_shape=noise, offset=offset)
    assert same_bits(got, expected)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=boxes(), offset=st.integers(0, 5000))
def test_mask_box_equals_slice_of_full_mask(backend, case, offset):
    shape, noise, origin, box = case
    noise_shape = tuple(1 if n == 1 else size for n, size in zip(noise, shape))
    region = tuple(slice(o, o + b) if n > 1 else slice(0, min(b, 1)) for o, b, n in zip(origin, box, noise_shape))
    expected = fd.dropout_mask(noise_shape, 0.4, seed=9, offset=offset)[region]
    got = dropout_mask_box(box, 0.4, seed=9, global_shape=shape, origin=origin, noise_shape=noise, offset=offset)
    assert got.dtype == np.bool_ and np.array_equal(got, expected)


@pytest.mark.parametrize("noise_shape", [None, (None, 1, None), (1, None, 1)])
def test_a_tiling_reassembles_the_full_result(backend, noise_shape):
    full = np.random.default_rng(1).standard_normal((13, 11, 7)).astype(np.float32)
    expected = fd.dropout(full, 0.35, seed=3, noise_shape=noise_shape)
    rebuilt = np.full_like(full, np.nan)
    cuts = [(0, 4, 5, 13), (0, 1, 11), (0, 3, 6, 7)]
    for i0, i1 in zip(cuts[0], cuts[0][1:]):
        for j0, j1 in zip(cuts[1], cuts[1][1:]):
            for k0, k1 in zip(cuts[2], cuts[2][1:]):
                rebuilt[i0:i1, j0:j1, k0:k1] = dropout_box(full[i0:i1, j0:j1, k0:k1], 0.35, seed=3,
                                                           global_shape=full.shape, origin=(i0, j0, k0),
                                                           noise_shape=noise_shape)
    assert same_bits(rebuilt, expected)


def test_a_small_box_of_a_huge_array_matches_the_stream_at_its_global_index(backend):
    # The global array (2**40 elements per row) is never built: if whole rows were generated
    # this would run out of memory. Each element is checked against the stream at its index.
    shape = (3, 2**40)
    origin, box = (1, 2**40 - 5), (2, 5)
    got = dropout_mask_box(box, 0.5, seed=77, global_shape=shape, origin=origin, offset=10)
    expected = np.array([[fd.dropout_mask(1, 0.5, seed=77, offset=10 + i * 2**40 + j)[0]
                          for j in range(origin[1], origin[1] + box[1])]
                         for i in range(origin[0], origin[0] + box[0])])
    assert np.array_equal(got, expected)
    x = np.ones(box, dtype=np.float32)
    y = dropout_box(x, 0.5, seed=77, global_shape=shape, origin=origin, offset=10)
    assert same_bits(y, np.where(expected, np.float32(2.0), np.float32(0.0)))


def test_work_is_the_box_size_plus_partial_blocks(monkeypatch):
    # Every row handed to the kernel is one contiguous run of the box, and their total is the box.
    calls = []
    real = _backend.kernels().keep_mask_rows

    def recording(key, starts, thr, out):
        calls.append((starts.copy(), out.shape))
        return real(key, starts, thr, out)

    monkeypatch.setattr(_backend.kernels(), "keep_mask_rows", recording)
    dropout_mask_box((3, 20, 6), 0.5, seed=1, global_shape=(50, 4000, 6), origin=(10, 100, 0))
    (starts, rows_shape), = calls
    assert rows_shape == (3, 120)       # the trailing axis is spanned, so runs merge over two axes
    assert starts.tolist() == [(10 + i) * 24000 + 600 for i in range(3)]
    calls.clear()
    dropout_mask_box((50, 4000, 6), 0.5, seed=1, global_shape=(50, 4000, 6), origin=(0, 0, 0))
    assert calls[0][1] == (1, 50 * 4000 * 6)   # the whole array is a single run


def test_whole_row_boxes_take_the_fused_one_pass_kernel(monkeypatch):
    calls = []
    real = _backend.kernels().dropout_rows
    monkeypatch.setattr(_backend.kernels(), "dropout_rows",
                        lambda key, starts, *args: calls.append(starts.tolist()) or real(key, starts, *args))
    x = np.ones((4, 5, 6), dtype=np.float32)
    dropout_box(x, 0.5, seed=2, global_shape=(9, 5, 6), origin=(3, 0, 0), offset=7)
    assert calls == [[7 + 3 * 30]]


@pytest.mark.parametrize("dtype", FLOATS)
def test_per_element_rates_global_or_box_local(backend, dtype):
    rng = np.random.default_rng(4)
    full = rng.standard_normal((6, 8, 5)).astype(dtype)
    p_global = rng.random((8, 1))                 # broadcastable to the global noise shape (6, 8, 5)
    expected = fd.dropout(full, p_global, seed=12)[2:5, 3:8, 1:4]
    from_global = dropout_box(full[2:5, 3:8, 1:4], p_global, seed=12, global_shape=full.shape, origin=(2, 3, 1))
    from_local = dropout_box(full[2:5, 3:8, 1:4], p_global[3:8], seed=12, global_shape=full.shape, origin=(2, 3, 1))
    assert same_bits(from_global, expected)
    assert same_bits(from_local, expected)


def test_per_element_rates_with_noise_shape(backend):
    full = np.random.default_rng(5).standard_normal((4, 6, 3))
    p = np.linspace(0.1, 0.9, 6).reshape(1, 6, 1)
    expected = fd.dropout(full, p, seed=8, noise_shape=(1, None, 1))[1:3, 2:5]
    got = dropout_box(full[1:3, 2:5], p, seed=8, global_shape=full.shape, origin=(1, 2, 0), noise_shape=(1, None, 1))
    assert same_bits(got, expected)


def test_p_zero_copies_and_p_one_zeroes(backend):
    x = np.array([[1.5, -np.inf], [np.nan, 3.0]], dtype=np.float32)
    kept = dropout_box(x, 0.0, seed=1, global_shape=(5, 5), origin=(2, 3))
    assert same_bits(kept, x) and kept is not x
    dropped = dropout_box(x, 1.0, seed=1, global_shape=(5, 5), origin=(2, 3))
    assert same_bits(dropped, np.zeros_like(x))


def test_out_and_in_place(backend):
    full = np.random.default_rng(6).standard_normal((7, 9)).astype(np.float32)
    expected = fd.dropout(full, 0.5, seed=21)[2:6, 1:9]
    box = full[2:6, 1:9].copy()
    assert dropout_box(box, 0.5, seed=21, global_shape=(7, 9), origin=(2, 1), out=box) is box
    assert same_bits(box, expected)
    strided_out = np.zeros((4, 16), dtype=np.float32)[:, ::2]
    dropout_box(full[2:6, 1:9], 0.5, seed=21, global_shape=(7, 9), origin=(2, 1), out=strided_out)
    assert same_bits(np.ascontiguousarray(strided_out), expected)


def test_generator_seed_draws_like_the_functional_api():
    x = np.ones((3, 4))
    a = dropout_box(x, 0.5, seed=np.random.default_rng(3), global_shape=(3, 4), origin=(0, 0))
    b = fd.dropout(x, 0.5, seed=np.random.default_rng(3))
    assert same_bits(a, b)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(seed=None), ValueError, r"seed must be given for a box .* got None"),
    (dict(seed="7"), TypeError, r"seed must be None, an int, or a numpy.random Generator, BitGenerator or SeedSequence, got str '7'"),
    (dict(global_shape=(4, 5, 6)), ValueError, r"the box has 2 dimensions \(shape \(2, 3\)\) but global_shape="),
    (dict(global_shape=(4, -5)), ValueError, r"shape must be an int or a tuple of ints >= 0, got \(4, -5\)"),
    (dict(origin=(1,)), ValueError, r"origin must be a tuple of 2 ints >= 0, got \(1,\)"),
    (dict(origin=(1, -1)), ValueError, r"origin must be a tuple of 2 ints >= 0, got \(1, -1\)"),
    (dict(origin=5), TypeError, r"origin must be a tuple of 2 ints >= 0, got 5"),
    (dict(origin=(3, 0)), ValueError, r"the box \[3, 5\) on axis 0 .* does not fit in global_shape=\(4, 5\)"),
    (dict(noise_shape=(2, 1)), ValueError, r"noise_shape\[0\] must be 1, None or x.shape\[0\]=4"),
    (dict(p=1.5), ValueError, r"p must be a real number in \[0, 1\], got 1.5"),
    (dict(p=np.ones((3, 3)) * 0.5), ValueError,
     r"p of shape \(3, 3\) broadcasts neither to the global noise shape \(4, 5\) nor to the box's noise region"),
    (dict(global_shape=(2**31, 2**31 + 1)), ValueError,
     r"offset \+ size must be at most 2\*\*62 \(the stream's index range\), got offset=0 and "
     r"size=4611686020574871552"),
    (dict(offset=-1), ValueError, r"offset must be an integer in \[0, 2\*\*62\), got -1"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    args = dict(p=0.5, seed=1, global_shape=(4, 5), origin=(0, 0))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        dropout_box(np.ones((2, 3)), args.pop("p"), **args)


def test_non_float_box_is_a_type_error():
    with pytest.raises(TypeError, match=r"x_box must have dtype float16, bfloat16, float32 or float64, got dtype int64"):
        dropout_box(np.ones((2, 2), dtype=np.int64), 0.5, seed=1, global_shape=(4, 4), origin=(0, 0))


def test_exported_from_the_package():
    assert fd.dropout_box is dropout_box and fd.dropout_mask_box is dropout_mask_box


@pytest.mark.parametrize("dtype", FLOATS)
def test_long_runs_take_the_fused_kernel_in_one_call(backend, dtype, monkeypatch):
    full = np.random.default_rng(7).standard_normal((5, 3000)).astype(dtype)
    expected = fd.dropout(full, 0.3, seed=15, offset=4)[1:4, 700:1800]
    calls = []
    real = _backend.kernels().dropout_rows
    monkeypatch.setattr(_backend.kernels(), "dropout_rows",
                        lambda key, starts, *args: calls.append(starts.tolist()) or real(key, starts, *args))
    got = dropout_box(full[1:4, 700:1800], 0.3, seed=15, global_shape=full.shape, origin=(1, 700), offset=4)
    assert calls == [[4 + row * 3000 + 700 for row in (1, 2, 3)]]
    assert same_bits(got, expected)
    in_place = full[1:4, 700:1800].copy()
    dropout_box(in_place, 0.3, seed=15, global_shape=full.shape, origin=(1, 700), offset=4, out=in_place)
    assert same_bits(in_place, expected)
    strided_out = np.zeros((3, 2200), dtype=dtype)[:, ::2]
    dropout_box(full[1:4, 700:1800].T.copy().T, 0.3, seed=15, global_shape=full.shape, origin=(1, 700),
                offset=4, out=strided_out)
    assert same_bits(np.ascontiguousarray(strided_out), expected)


def test_many_runs_split_over_threads_give_the_same_bits(backend):
    full = np.random.default_rng(9).standard_normal((400, 3000)).astype(np.float32)
    expected = fd.dropout(full, 0.5, seed=21)[50:350, 500:2500]     # 300 runs of 2000: threads split runs
    old = fd.get_num_threads()
    try:
        for threads in (1, 2):
            fd.set_num_threads(threads)
            got = dropout_box(full[50:350, 500:2500], 0.5, seed=21, global_shape=full.shape, origin=(50, 500))
            assert same_bits(got, expected)
    finally:
        fd.set_num_threads(old)
