"""fd.dropout_add, its gradient and the DropoutAdd layer.

The fused pass has the bits of the unfused NumPy composition ``residual + fd.dropout(x +
bias, ...)`` on every backend, ISA variant, thread count and layout; its mask is
fd.dropout's; the gradient is the regenerated mask with no temporaries; bad arguments raise
naming the argument and leave no trace; the layer follows DropoutLayer's seed conventions.
"""
import gc
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import fastdrop as fd
from fastdrop import _backend, _core, _numpy_backend
from fastdrop.functional import derive_seed

ALL_HALVES = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
THREAD_CASE_SHAPE = (701, 1001)          # > the kernels' parallel threshold, not a whole number of blocks
DTYPES = [np.float16, np.float32, np.float64]


def _bits(a):
    a = np.asarray(a)
    return a.view(f"u{a.itemsize}")


def _same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(_bits(a), _bits(b))


def composition(x, residual, p, bias=None, **kw):
    """The unfused NumPy composition dropout_add must equal bit for bit."""
    with np.errstate(all="ignore"):
        h = x if bias is None else x + bias
        return residual + fd.dropout(h, p, **kw)


def _special(a, values):
    flat = a.reshape(-1)
    flat[:len(values)] = values[:flat.size]
    return a


def _arrays(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 100).astype(dtype)
    residual = (rng.standard_normal(shape) * 100).astype(dtype)
    if x.size >= 8:
        tiny = np.finfo(dtype).smallest_subnormal
        _special(x, [np.inf, -np.nan, -0.0, tiny, 0.0, -np.inf, 1.0, 2.0])
        _special(residual, [1.0, 2.0, -0.0, -tiny, np.nan, np.inf, -0.0, -np.inf])
    return x, residual


BIASES = {
    "none": lambda shape, dtype: None,
    "feature": lambda shape, dtype: np.linspace(-3, 3, shape[-1]).astype(dtype),
    "scalar": lambda shape, dtype: np.array(0.75, dtype=dtype),
    "column": lambda shape, dtype: np.linspace(-1, 1, shape[0]).astype(dtype)[:, None],
    "full": lambda shape, dtype: np.random.default_rng(3).standard_normal(shape).astype(dtype),
    "strided": lambda shape, dtype: np.linspace(-2, 2, 2 * shape[-1]).astype(dtype)[::2],
}
RATES = {
    "scalar": lambda shape: 0.3,
    "high": lambda shape: 0.999,
    "feature": lambda shape: np.linspace(0, 1, shape[-1]),
    "row": lambda shape: np.linspace(0, 1, shape[0])[:, None],
}


# --- bits -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_kind", list(BIASES))
@pytest.mark.parametrize("rate_kind", list(RATES))
def test_bits_equal_the_numpy_composition(backend, dtype, bias_kind, rate_kind):
    shape = (37, 77)
    x, residual = _arrays(shape, dtype)
    bias, p = BIASES[bias_kind](shape, dtype), RATES[rate_kind](shape)
    y = fd.dropout_add(x, residual, p, bias=bias, seed=5, offset=1001)
    assert _same_bits(y, composition(x, residual, p, bias, seed=5, offset=1001))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("noise_shape, p", [((1, None, None), 0.4), ((None, 1, None), 0.4), ((None, None, 1), 0.4),
                                            ((1, 1, 1), 0.4), ((1, None, None), "feature"),
                                            ((None, 1, None), "feature")])
def test_noise_shape_shares_dropouts_mask(backend, dtype, noise_shape, p):
    x, residual = _arrays((6, 5, 33), dtype)
    p = np.linspace(0, 1, 33) if p == "feature" else p
    bias = np.linspace(-1, 1, 33).astype(dtype)
    y = fd.dropout_add(x, residual, p, bias=bias, seed=9, noise_shape=noise_shape, offset=3)
    assert _same_bits(y, composition(x, residual, p, bias, seed=9, noise_shape=noise_shape, offset=3))


def test_every_half_bit_pattern(backend):
    x = ALL_HALVES.reshape(64, 1024)
    residual = ALL_HALVES[::-1].reshape(64, 1024).copy()
    bias = ALL_HALVES[31744 - 1024:31744][::-1].copy()            # finite halves of every size, both signs
    for p in (0.5, 0.3, 0.999):
        y = fd.dropout_add(x, residual, p, bias=bias, seed=2)
        assert _same_bits(y, composition(x, residual, p, bias, seed=2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_mask_is_dropouts_mask(backend, dtype):
    shape = (33, 65)
    for p in (0.2, np.linspace(0, 1, 65)):
        y = fd.dropout_add(np.ones(shape, dtype), np.zeros(shape, dtype), p, seed=4, offset=17)
        assert np.array_equal(y != 0, fd.dropout_mask(shape, p, seed=4, offset=17))


@pytest.mark.parametrize("dtype", DTYPES)
def test_backends_agree_over_the_parallel_path(dtype):
    x, residual = _arrays(THREAD_CASE_SHAPE, dtype)
    bias = np.linspace(-1, 1, THREAD_CASE_SHAPE[1]).astype(dtype)
    with fd.use_backend("numpy"):
        want = fd.dropout_add(x, residual, 0.3, bias=bias, seed=8, offset=333)
    for threads in (1, 2, 3):
        with fd.use_num_threads(threads):
            got = fd.dropout_add(x, residual, 0.3, bias=bias, seed=8, offset=333)
        assert _same_bits(got, want), threads


def _variant_cases():
    """(name, thunk) pairs run on each ISA variant in a child interpreter."""
    cases = []
    for dtype in DTYPES:
        name = np.dtype(dtype).name
        for shape, offset in (((1,), 0), ((17,), 5), ((3, 341), 1), ((5, 1021), 1021), (THREAD_CASE_SHAPE, 123)):
            x, residual = _arrays(shape, dtype)
            for bias_kind in ("none", "feature", "scalar", "strided"):
                bias = BIASES[bias_kind](shape, dtype)
                for p in (0.3, 0.999, np.linspace(0, 1, shape[-1])):
                    tag = "array" if isinstance(p, np.ndarray) else p
                    cases.append((f"{name}-{shape}-o{offset}-{bias_kind}-p{tag}",
                                  lambda x=x, r=residual, b=bias, p=p, o=offset:
                                  fd.dropout_add(x, r, p, bias=b, seed=11, offset=o)))
    residual = ALL_HALVES[::-1].copy()
    cases.append(("all-halves", lambda: fd.dropout_add(ALL_HALVES, residual, 0.3, bias=np.float16(0.5), seed=1)))
    return cases


_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import fastdrop
    sys.path.insert(0, {tests!r})
    from test_dropout_add import _variant_cases
    fastdrop.set_num_threads(int(sys.argv[2]))
    assert fastdrop.backend() == "cython"
    np.savez(sys.argv[1], isa=fastdrop.info()["isa"], **{{name: f() for name, f in _variant_cases()}})
""")


@pytest.mark.skipif(not _backend.compiled_available(), reason="the compiled extension is not built")
@pytest.mark.parametrize("streaming", ["", "0"], ids=["ordinary-stores", "streaming-stores"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_every_isa_variant_matches_the_numpy_backend(isa, threads, streaming, tmp_path):
    """Each variant with the default streaming threshold and with 0 (every output streamed)."""
    if isa not in _backend.runnable_isas() or isa not in _backend.built_isas():
        pytest.skip(f"the {isa} variant is not runnable or not built here")
    out = tmp_path / "cases.npz"
    r = subprocess.run([sys.executable, "-c", _CHILD.format(tests=os.path.dirname(__file__)), str(out),
                        str(threads)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "FASTDROP_BACKEND": "", "FASTDROP_NUM_THREADS": "", "FASTDROP_ISA": isa,
                            "FASTDROP_STREAMING_THRESHOLD": streaming})
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    assert str(got["isa"]) == isa
    with fd.use_backend("numpy"):
        for name, f in _variant_cases():
            assert np.array_equal(_bits(got[name]), _bits(f())), f"{isa} differs from the NumPy backend on {name}"


# --- layouts, out= ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_layouts_and_out(backend, dtype):
    x, residual = _arrays((40, 50), dtype)
    bias = np.linspace(-1, 1, 50).astype(dtype)
    want = composition(x, residual, 0.3, bias, seed=6)
    fortran_x, fortran_r = np.asfortranarray(x), np.asfortranarray(residual)
    assert _same_bits(fd.dropout_add(fortran_x, fortran_r, 0.3, bias=bias, seed=6), want)
    big_x, big_r = np.zeros((80, 150), dtype), np.zeros((80, 150), dtype)
    big_x[::2, 1::3], big_r[1::2, ::3] = x, residual                       # non-contiguous views
    assert _same_bits(fd.dropout_add(big_x[::2, 1::3], big_r[1::2, ::3], 0.3, bias=bias, seed=6), want)
    for out in (np.empty_like(x), np.empty((40, 50), dtype, order="F"), np.zeros((40, 100), dtype)[:, ::2]):
        assert fd.dropout_add(x, residual, 0.3, bias=bias, seed=6, out=out) is out
        assert _same_bits(out.astype(dtype), want)
    in_x, in_r = x.copy(), fortran_r.copy(order="F")
    assert fd.dropout_add(in_x, residual, 0.3, bias=bias, seed=6, out=in_x) is in_x       # in place on x
    assert fd.dropout_add(x, in_r, 0.3, bias=bias, seed=6, out=in_r) is in_r              # on a Fortran residual
    assert _same_bits(in_x, want) and _same_bits(np.ascontiguousarray(in_r), want)
    swapped = x.astype(np.dtype(dtype).newbyteorder())
    assert _same_bits(fd.dropout_add(swapped, residual, 0.3, bias=bias, seed=6), want)
    assert fd.dropout_add(swapped, residual, 0.3, bias=bias, seed=6, out=swapped) is swapped    # its own out
    assert _same_bits(swapped.astype(dtype), want)


def test_zero_size_and_zero_d(backend):
    empty = np.empty((0, 5), np.float32)
    assert fd.dropout_add(empty, empty, 0.5, bias=np.ones(5, np.float32), seed=1).shape == (0, 5)
    x, r = np.array(3.0), np.array(0.5)
    for p in (0.5, np.array(0.25)):
        assert _same_bits(fd.dropout_add(x, r, p, bias=np.array(1.0), seed=7),
                          composition(x, r, p, np.array(1.0), seed=7))
    assert _same_bits(fd.dropout_add(x, r, 0.5, bias=np.array(1.0), training=False), np.array(4.5))


# --- no dropout --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_eval_and_zero_rate_add_the_biased_input(backend, dtype):
    x, residual = _arrays((9, 1500), dtype)
    bias = np.linspace(-1, 1, 1500).astype(dtype)
    with np.errstate(all="ignore"):
        want, want_unbiased = residual + (x + bias), residual + x
    for kw in ({"training": False}, {"training": False, "seed": 1}):
        assert _same_bits(fd.dropout_add(x, residual, 0.5, bias=bias, **kw), want)
    assert _same_bits(fd.dropout_add(x, residual, 0.0, bias=bias, seed=1), want)
    assert _same_bits(fd.dropout_add(x, residual, 0.5, training=False), want_unbiased)
    out = residual.copy()
    assert fd.dropout_add(x, out, 0.9, bias=bias, training=False, out=out) is out
    assert _same_bits(out, want)


# --- gradients -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_shape", [None, (77,), (37, 1), (), (1, 77), (37, 77)])
def test_grad_equals_the_composition(backend, dtype, bias_shape):
    grad = np.random.default_rng(1).standard_normal((37, 77)).astype(dtype)
    gx, gr, gb = fd.dropout_add_grad(grad, 0.3, seed=5, offset=9, bias_shape=bias_shape)
    want_x = fd.dropout(grad, 0.3, seed=5, offset=9)
    assert _same_bits(gx, want_x)
    assert gr is grad
    if bias_shape is None:
        assert gb is None
    else:
        lead = 2 - len(bias_shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(bias_shape) if n == 1)
        assert _same_bits(gb, want_x.sum(axis=axes, dtype=dtype).reshape(bias_shape))


def test_grad_matches_finite_differences(backend):
    rng = np.random.default_rng(2)
    x, residual = rng.standard_normal((12, 7)), rng.standard_normal((12, 7))
    bias, w = rng.standard_normal(7), rng.standard_normal((12, 7))
    kw = {"seed": 13, "noise_shape": (None, 1), "offset": 4}

    def loss(x, residual, bias):
        return float(np.sum(w * fd.dropout_add(x, residual, 0.4, bias=bias, **kw)))

    gx, gr, gb = fd.dropout_add_grad(w, 0.4, bias_shape=bias.shape, **kw)
    eps = 1e-6
    for arg, grad in ((0, gx), (1, gr), (2, gb)):
        args = [x, residual, bias]
        numeric = np.empty_like(args[arg])
        for i in np.ndindex(args[arg].shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[arg][i] += eps
            minus[arg][i] -= eps
            numeric[i] = (loss(*plus) - loss(*minus)) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


def test_grad_in_eval_and_into_out(backend):
    grad = np.random.default_rng(3).standard_normal((5, 8)).astype(np.float32)
    gx, gr, gb = fd.dropout_add_grad(grad, 0.5, training=False, bias_shape=(8,))
    assert _same_bits(gx, grad) and gx is not grad and gr is grad
    assert _same_bits(gb, grad.sum(axis=0))
    out = np.empty_like(grad)
    assert fd.dropout_add_grad(grad, 0.5, seed=2, out=out)[0] is out
    assert _same_bits(out, fd.dropout(grad, 0.5, seed=2))


def _traced_peak(call):
    gc.collect()
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_fused_passes_hold_no_temporaries(backend, monkeypatch):
    """Forward and grad_x allocate the output alone (the NumPy twin: plus one bounded pass)."""
    allowance = 64 << 10
    if backend == "numpy":
        monkeypatch.setattr(_numpy_backend, "_BATCH_BLOCKS", 16)     # passes of 16 Ki elements
        allowance = 512 << 10
    x, residual = _arrays((1024, 1024), np.float32)
    bias = np.ones(1024, np.float32)
    grad = np.ones_like(x)
    out = np.empty_like(x)
    assert _traced_peak(lambda: fd.dropout_add(x, residual, 0.3, bias=bias, seed=1, out=out)) <= allowance
    assert _traced_peak(lambda: fd.dropout_add(x, residual, 0.3, bias=bias, seed=1)) <= x.nbytes + allowance
    assert _traced_peak(lambda: fd.dropout_add_grad(grad, 0.3, seed=1, out=out)) <= allowance


# --- errors ------------------------------------------------------------------------------------------
F32 = np.float32


@pytest.mark.parametrize("call, error, message", [
    (lambda x, r: fd.dropout_add(x, r.astype(np.float64), 0.5), TypeError,
     "residual must have x's dtype float32, got dtype float64"),
    (lambda x, r: fd.dropout_add(x, r[:3], 0.5), ValueError, "residual must have x's shape (4, 6), got shape (3, 6)"),
    (lambda x, r: fd.dropout_add(x, r[:, :1], 0.5), ValueError,
     "residual must have x's shape (4, 6), got shape (4, 1)"),
    (lambda x, r: fd.dropout_add(x, r.astype(np.int32), 0.5), TypeError,
     "residual must have dtype float16, float32 or float64, got dtype int32"),
    (lambda x, r: fd.dropout_add(x, r, 0.5, bias=np.ones(6)), TypeError,
     "bias must have x's dtype float32, got dtype float64"),
    (lambda x, r: fd.dropout_add(x, r, 0.5, bias=np.ones(5, F32)), ValueError,
     "bias of shape (5,) does not broadcast to x's shape (4, 6)"),
    (lambda x, r: fd.dropout_add(x, r, 0.5, bias=np.ones((2, 4, 6), F32)), ValueError,
     "bias of shape (2, 4, 6) does not broadcast to x's shape (4, 6)"),
    (lambda x, r: fd.dropout_add(x, r, 1.5), ValueError, "p must be a real number in [0, 1], got 1.5"),
    (lambda x, r: fd.dropout_add(x, r, np.ones(5) / 2), ValueError,
     "p of shape (5,) cannot broadcast to the noise shape (4, 6)"),
    (lambda x, r: fd.dropout_add(x, r, 0.5, noise_shape=(2, 1)), ValueError,
     "noise_shape[0] must be 1, None or x.shape[0]=4, got 2 in noise_shape=(2, 1)"),
    (lambda x, r: fd.dropout_add(x, r, 0.5, training=1), TypeError, "training must be a bool, got 1"),
    (lambda x, r: fd.dropout_add(x, r, 0.5, offset=-1), ValueError, "offset must be an integer in [0, 2**62)"),
    (lambda x, r: fd.dropout_add(x, r, 0.5, out=np.empty((4, 6))), ValueError,
     "out must have shape (4, 6) and dtype float32, got shape (4, 6) and dtype float64"),
    (lambda x, r: fd.dropout_add(x[:, :5], r[:, 1:], 0.5, out=r[:, :5]), ValueError,
     "out overlaps residual partially"),
    (lambda x, r: fd.dropout_add(x, r, 0.5, bias=r[0], out=r), ValueError, "out overlaps bias partially"),
    # the first row of out: the same start and strides, but out's first row would be written before
    # the later rows read it
    (lambda x, r: fd.dropout_add(x, x, 0.5, bias=r[:1], out=r), ValueError,
     "out overlaps bias partially; pass bias.copy(), or a separate out"),
    (lambda x, r: fd.dropout_add_grad(r, 0.5, bias_shape=(5,)), ValueError,
     "bias_shape (5,) does not broadcast to grad's shape (4, 6)"),
    (lambda x, r: fd.dropout_add_grad(r, 0.5, bias_shape="6"), TypeError, "bias_shape must be an int or a tuple"),
    (lambda x, r: fd.dropout_add_grad(r, 0.5, out=r), ValueError, "out must not share memory with grad"),
])
def test_errors_name_the_argument_and_leave_no_trace(backend, call, error, message):
    x, r = np.ones((4, 6), F32), np.full((4, 6), 2.0, F32)
    before_x, before_r = x.copy(), r.copy()
    with pytest.raises(error) as info:
        call(x, r)
    assert message in str(info.value)
    assert _same_bits(x, before_x) and _same_bits(r, before_r)


def test_a_bias_with_any_stride_on_an_axis_of_size_1_is_read_on_both_backends(backend):
    """The stride of a size-1 axis is never used (NumPy's flags ignore it): a field of one
    packed record, shape (1, 4) with strides (17, 4), is a bias like any other."""
    record = np.zeros(1, dtype=[("w", "f4", (4,)), ("flag", "u1")])
    record["w"] = [1, 2, 3, 4]
    bias = record["w"]
    assert bias.strides[0] % bias.itemsize and bias.flags.c_contiguous
    x = np.arange(8, dtype=F32).reshape(2, 1, 4)
    residual = np.zeros_like(x)
    expected = residual + fd.dropout(x + bias.copy(), 0.3, seed=1)
    assert _same_bits(fd.dropout_add(x, residual, 0.3, bias=bias, seed=1), expected)
    kernel = _backend.kernels()                            # the backend under test
    out = np.empty_like(x)
    thr, scale = _core.rate_arrays(0.3, x.dtype, x.shape)
    key = fd.functional.stream_key(1)
    assert _same_bits(kernel.dropout_add(key, 0, thr, scale, bias, x, residual, out), expected)


def test_kernel_checks_are_the_same_on_both_backends():
    x = np.ones((3, 4), F32)
    calls = [
        lambda k: k.dropout_add(1, 0, 100, 2.0, None, x, x.astype(np.float64), np.empty_like(x)),
        lambda k: k.dropout_add(1, 0, 100, 2.0, np.ones(3, F32), x, x, np.empty_like(x)),
        lambda k: k.dropout_add(1, 0, 100, 2.0, None, x, x[:2], np.empty_like(x)),
        lambda k: k.dropout_add(1, 2 ** 62 - 5, 100, 2.0, None, x, x, np.empty_like(x)),
        lambda k: k.dropout_add(1, 0, np.zeros(12, np.uint32), np.ones(12, F32), None, x, x, np.empty_like(x)),
    ]
    kernels = [_numpy_backend] + ([_backend.variant(i) for i in _backend.built_isas()]
                                  if _backend.compiled_available() else [])
    for call in calls:
        raised = set()
        for k in kernels:
            with pytest.raises((TypeError, ValueError)) as info:
                call(k)
            raised.add((info.type, str(info.value)))
        assert len(raised) == 1, raised


# --- the layer ----------------------------------------------------------------------------------------
def test_layer_forward_backward_follow_the_functional_calls(backend):
    x, residual = _arrays((16, 24), np.float32)
    bias = np.linspace(-1, 1, 24).astype(np.float32)
    layer = fd.DropoutAdd(0.3, seed=77)
    assert layer.parameters() == []
    for k in range(3):
        y = layer(x, residual, bias)
        seed = derive_seed(77, k)
        assert _same_bits(y, fd.dropout_add(x, residual, 0.3, bias=bias, seed=seed))
        grad = np.random.default_rng(k).standard_normal(x.shape).astype(np.float32)
        gx, gr, gb = layer.backward(grad)
        assert _same_bits(gx, fd.dropout(grad, 0.3, seed=seed)) and gr is grad
        assert _same_bits(gb, gx.sum(axis=0))
    assert layer.counter == 3
    assert layer.forward(x, residual)[0] is not None and layer.backward(np.ones_like(x))[2] is None


def test_layer_eval_noise_shape_and_clone(backend):
    x, residual = _arrays((8, 5, 6), np.float64)
    layer = fd.DropoutAdd(0.5, noise_shape=(None, 1, None), seed=3)
    first = layer(x, residual)
    assert _same_bits(first, fd.dropout_add(x, residual, 0.5, seed=derive_seed(3, 0), noise_shape=(8, 1, 6)))
    layer.eval()
    with np.errstate(all="ignore"):
        want = residual + (x + np.ones(6))
    assert _same_bits(layer(x, residual, np.ones(6)), want)
    gx, gr, gb = layer.backward(np.ones_like(x))
    assert _same_bits(gx, np.ones_like(x)) and _same_bits(gb, np.full(6, 40.0))
    assert layer.counter == 1                                   # eval draws no mask
    layer.train()
    second = layer(x, residual)
    clone = fd.DropoutAdd.from_config(layer.get_config())
    assert _same_bits(clone(x, residual), first) and _same_bits(clone(x, residual), second)
    assert repr(clone) == "DropoutAdd(p=0.5, noise_shape=(None, 1, None), seed=3)"


def test_layer_failed_forward_takes_no_substream(backend):
    x, residual = np.ones((4, 6), F32), np.zeros((4, 6), F32)
    layer = fd.DropoutAdd(0.5, seed=1, noise_shape=(None, 1))
    for bad in (lambda: layer(x, residual[:2]), lambda: layer(x, residual, np.ones(5, F32)),
                lambda: layer(x, residual.astype(np.float64)), lambda: layer(x[:, :, None], residual[:, :, None])):
        with pytest.raises((TypeError, ValueError)):
            bad()
    assert layer.counter == 0
    with pytest.raises(RuntimeError, match="DropoutAdd.backward called before any forward"):
        layer.backward(x)
    layer(x, residual)
    with pytest.raises(ValueError, match=r"grad must have the shape of the last forward's output \(4, 6\)"):
        layer.backward(np.ones((4, 5), F32))
    with pytest.raises(TypeError, match="p must be a real number in"):
        fd.DropoutAdd(np.ones(3))
