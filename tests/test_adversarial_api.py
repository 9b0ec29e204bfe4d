"""Hostile inputs to the public API: array subclasses and lookalikes, exotic numeric types,
failed calls that must leave no trace, in-place rules and the Gaussian backward's noise.

Every test runs on both backends where the backend matters (the ``backend`` fixture).
"""
import datetime
import decimal

import numpy as np
import pytest

import fastdrop as fd

pytestmark = pytest.mark.adversarial

RNG = np.random.default_rng(2024)
X4 = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)

# Every public function that takes an array x, called with its other arguments valid.
ENTRY_POINTS = {
    "dropout": lambda x, **kw: fd.dropout(x, 0.5, seed=1, **kw),
    "dropout_noise_shape": lambda x, **kw: fd.dropout(x, 0.5, seed=1, noise_shape=(2, 3, 1, 1), **kw),
    "dropout_rates": lambda x, **kw: fd.dropout(x, np.linspace(0.1, 0.9, 5), seed=1, **kw),
    "apply_mask": lambda x, **kw: fd.apply_mask(x, np.ones(np.shape(np.asarray(x)), bool), 0.5, **kw),
    "dropout_box": lambda x, **kw: fd.dropout_box(x, 0.5, seed=1, global_shape=(4, 3, 4, 5), origin=(1, 0, 0, 0),
                                                  **kw),
    "classic_dropout": lambda x, **kw: fd.classic_dropout(x, 0.5, seed=1, **kw),
    "spatial_dropout": lambda x, **kw: fd.spatial_dropout(x, 0.5, seed=1, **kw),
    "variational_dropout": lambda x, **kw: fd.variational_dropout(x, 0.5, seed=1, **kw),
    "drop_path": lambda x, **kw: fd.drop_path(x, 0.5, seed=1, **kw),
    "alpha_dropout": lambda x, **kw: fd.alpha_dropout(x, 0.5, seed=1, **kw),
    "alpha_dropout_grad": lambda x, **kw: fd.alpha_dropout_grad(x, 0.5, seed=1, **kw),
    "gaussian_dropout": lambda x, **kw: fd.gaussian_dropout(x, 0.5, seed=1, **kw),
    "gaussian_dropout_grad": lambda x, **kw: fd.gaussian_dropout_grad(x, 0.5, seed=1, **kw),
    "dropblock2d": lambda x, **kw: fd.dropblock2d(x, 0.2, 2, seed=1, **kw),
    "concrete_dropout": lambda x, **kw: fd.concrete_dropout(x, -1.0, seed=1, **kw),
}


def make_layers():
    return {
        "Dropout": fd.Dropout(0.5, seed=1),
        "Dropout_noise_shape": fd.Dropout(0.5, noise_shape=(None, None, 1, 1), seed=1),
        "Dropout_classic": fd.Dropout(0.5, mode="classic", seed=1),
        "SpatialDropout2D": fd.SpatialDropout2D(0.5, seed=1),
        "AlphaDropout": fd.AlphaDropout(0.5, seed=1),
        "GaussianDropout": fd.GaussianDropout(0.5, seed=1),
        "VariationalDropout": fd.VariationalDropout(0.5, seed=1),
        "ConcreteDropout": fd.ConcreteDropout(0.2, seed=1),
        "AdaptiveDropout": fd.AdaptiveDropout(0.5, seed=1),
        "AdaptiveDropout_per_unit": fd.AdaptiveDropout(0.5, per_unit=True, seed=1),
        "DropBlock2D": fd.DropBlock2D(0.2, 2, seed=1),
        "DropPath": fd.DropPath(0.5, seed=1),
    }


class UfuncContainer:
    """A stand-in for pandas/xarray objects: array data plus semantics of its own."""

    def __init__(self, data):
        self.data = data

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.data, dtype=dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return NotImplemented


class ArrayOnly:
    """An object that only knows how to become an array (``__array__``): taken as its data."""

    def __init__(self, data):
        self.data = data

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.data, dtype=dtype)


class Tagged(np.ndarray):
    """An ndarray subclass carrying metadata (like astropy's Quantity carries units)."""


REFUSED = [
    ("masked", lambda x: np.ma.masked_array(x, mask=x > 1), r"is a numpy\.ma\.MaskedArray: fastdrop would scale "
                                                             r"its masked entries like data and drop the mask"),
    ("matrix", lambda x: np.asmatrix(x), r"is a numpy\..*matrix, an ndarray subclass"),
    ("tagged", lambda x: x.view(Tagged), r"is a .*Tagged, an ndarray subclass whose meaning a plain ndarray result"),
    ("ufunc_container", UfuncContainer, r"is a .*UfuncContainer, a container whose labels or semantics"),
]
RANK_2_ENTRY_POINTS = ("dropout", "apply_mask", "classic_dropout", "variational_dropout", "drop_path",
                       "alpha_dropout", "alpha_dropout_grad", "gaussian_dropout", "gaussian_dropout_grad",
                       "concrete_dropout")
CASES = [(name, kind, wrap, message) for kind, wrap, message in REFUSED for name in sorted(ENTRY_POINTS)
         if kind != "matrix" or name in RANK_2_ENTRY_POINTS]


def sample_for(kind):
    return X4.reshape(6, 20) if kind == "matrix" else X4        # a matrix is always 2-D


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("name, kind, wrap, message", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_containers_with_their_own_meaning_are_refused_by_every_entry_point(backend, name, kind, wrap, message):
    argument = {"alpha_dropout_grad": "grad", "gaussian_dropout_grad": "grad", "dropout_box": "x_box"}.get(name, "x")
    with pytest.raises(TypeError, match=rf"^{argument} {message}"):
        ENTRY_POINTS[name](wrap(sample_for(kind)))


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("kind, wrap, message", REFUSED, ids=[r[0] for r in REFUSED])
def test_containers_are_refused_by_every_layer_forward_and_backward_without_trace(backend, kind, wrap, message):
    x = sample_for(kind)
    for name, layer in make_layers().items():
        if (layer.expected_ranks is not None and x.ndim not in layer.expected_ranks) or (
                name == "Dropout_noise_shape" and x.ndim != 4):
            continue
        with pytest.raises(TypeError, match=message):
            layer(wrap(x))
        assert layer.counter == 0, name
        layer(x)
        with pytest.raises(TypeError, match=message):
            layer.backward(wrap(np.ones_like(x)))
        assert layer.counter == 1, name


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_masked_and_tagged_out_are_refused_and_left_untouched(backend, name):
    for out in (np.ma.masked_array(np.full_like(X4, 7.0), mask=X4 > 1), np.full_like(X4, 7.0).view(Tagged)):
        with pytest.raises(TypeError, match=r"out is a "):
            ENTRY_POINTS[name](X4, out=out)
        assert np.all(np.asarray(out) == 7.0)


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS) + ["dropout_add", "dropout_add_grad"])
def test_an_out_whose_elements_share_memory_is_refused_and_left_untouched(backend, name):
    """A view whose strides make elements share memory (as_strided's, step smaller than the
    rows) would be written in an order-dependent mess: every writer refuses it, as PyTorch
    refuses a written-to tensor with elements at one memory location."""
    buffer = np.full(X4.size // 2, 7.0, np.float32)
    strides = (buffer.itemsize * 5,) * 2 + (buffer.itemsize * 5, buffer.itemsize)   # rows of 5 at steps of 5: overlap
    out = np.lib.stride_tricks.as_strided(buffer, X4.shape, strides, writeable=True)
    call = {"dropout_add": lambda x, **kw: fd.dropout_add(x, x, 0.5, seed=1, **kw),
            "dropout_add_grad": lambda x, **kw: fd.dropout_add_grad(x, 0.5, seed=1, **kw)}.get(name, ENTRY_POINTS.get(name))
    with pytest.raises(ValueError, match=r"out has elements that share memory \(strides \(20, 20, 20, 4\) for shape "
                                         r"\(2, 3, 4, 5\)\); pass an array whose elements are distinct"):
        call(X4, out=out)
    assert np.all(buffer == 7.0)


@pytest.mark.parametrize("shape, strides, itemsize, shared", [
    ((4, 5), (20, 4), 4, False),            # C order
    ((4, 5), (4, 16), 4, False),            # Fortran order
    ((4, 5), (-20, 4), 4, False),           # a reversed view
    ((2, 2), (24, 4), 4, False),            # a slice: rows 24 bytes apart
    ((3, 2), (4, 6), 2, False),             # interleaved, no shared element: decided by listing offsets
    ((2, 2), (12, 8), 4, False),
    ((4, 4), (8, 8), 8, True),              # rows one element apart
    ((5,), (0,), 4, True),                  # a broadcast view
    ((3, 2), (4, 4), 8, True),              # 8-byte elements 4 bytes apart
    ((1, 7), (0, 4), 4, False), ((0, 3), (0, 0), 4, False), ((1,), (0,), 8, False),
    ((1025, 1024), (8, 4), 4, True),        # past the listing limit: a layout failing the nested test counts as shared
])
def test_internal_overlap_of_layouts(shape, strides, itemsize, shared):
    from fastdrop._validation import has_internal_overlap
    assert has_internal_overlap(shape, strides, itemsize) is shared


@pytest.mark.parametrize("noise_shape", [{0: 2, 1: 1}, {2, 1}])
def test_an_unordered_noise_shape_is_refused(backend, noise_shape):
    with pytest.raises(TypeError, match=r"noise_shape must be None or a tuple of length 2, got "):
        fd.dropout(np.ones((2, 3), np.float32), 0.5, seed=1, noise_shape=noise_shape)


def test_a_dask_array_points_to_fastdrop_dask():
    da = pytest.importorskip("dask.array")
    darr = da.from_array(X4, chunks=(1, 3, 4, 5))
    with pytest.raises(TypeError, match=r"x is a dask\.array\.core\.Array: fastdrop\.dropout would compute it "
                                        r"whole; use fastdrop\.dask\.dropout"):
        fd.dropout(darr, 0.5, seed=1)
    with pytest.raises(TypeError, match=r"use fastdrop\.dask\.dropout"):
        fd.Dropout(0.5, seed=1)(darr)


def test_lookalikes_that_only_hold_data_are_taken_as_their_data(backend, tmp_path):
    expected = fd.dropout(X4, 0.5, seed=1)
    # __array__ objects and lists: their data, a plain ndarray result.
    for arg in (ArrayOnly(X4), X4.tolist()):
        y = fd.dropout(arg if not isinstance(arg, list) else np.asarray(arg, np.float32), 0.5, seed=1)
        assert type(y) is np.ndarray and np.array_equal(y, expected)
    # memmap: an ndarray backed by a file; the result is a plain ndarray, out=memmap writes the file.
    mm = np.memmap(tmp_path / "x.bin", dtype=np.float32, mode="w+", shape=X4.shape)
    mm[...] = X4
    y = fd.dropout(mm, 0.5, seed=1)
    assert np.array_equal(y, expected)
    fd.dropout(mm, 0.5, seed=1, out=mm)
    mm.flush()
    assert np.array_equal(np.fromfile(tmp_path / "x.bin", np.float32).reshape(X4.shape), expected)


def test_real_pandas_objects_are_refused():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X4.reshape(6, 20))
    with pytest.raises(TypeError, match=r"x is a pandas\.(core\.frame\.)?DataFrame, a container"):
        fd.dropout(frame, 0.5, seed=1)
    with pytest.raises(TypeError, match=r"x is a pandas\.(core\.series\.)?Series, a container"):
        fd.dropout(frame[0], 0.5, seed=1)
    assert np.array_equal(fd.dropout(frame.to_numpy(), 0.5, seed=1), fd.dropout(X4.reshape(6, 20), 0.5, seed=1))


def test_masked_rates_and_masks_are_refused():
    with pytest.raises(TypeError, match=r"p is a numpy\.ma\.MaskedArray"):
        fd.dropout(X4, np.ma.masked_array(np.full(5, 0.5), mask=[1, 0, 0, 0, 0]), seed=1)
    with pytest.raises(TypeError, match=r"mask is a numpy\.ma\.MaskedArray"):
        fd.apply_mask(X4, np.ma.masked_array(np.ones(X4.shape, bool)), 0.5)


# --- exotic numeric types -------------------------------------------------------------------
EXOTIC = [np.timedelta64(1), np.timedelta64(1, "D"), np.datetime64("2020-01-01"), datetime.timedelta(days=1),
          1 + 0j, np.complex64(1), decimal.Decimal("0.5"), True, np.bool_(False), "1", None]
EXOTIC_IDS = ["td64", "td64_day", "dt64", "py_timedelta", "complex", "np_complex", "decimal", "bool", "np_bool",
              "str", "none"]


@pytest.mark.parametrize("value", EXOTIC, ids=EXOTIC_IDS)
def test_rates_refuse_every_non_real(backend, value):
    if value is None:
        return                              # p=None is not among p's exotic cases: covered elsewhere
    with pytest.raises(TypeError, match=r"p must be a real number in \[0, 1\]"):
        fd.dropout(X4, value, seed=1)
    for make in (lambda: fd.Dropout(value), lambda: fd.SpatialDropout2D(value), lambda: fd.GaussianDropout(value),
                 lambda: fd.dropblock2d(X4, value, 2, seed=1), lambda: fd.alpha_dropout(X4, value, seed=1)):
        with pytest.raises(TypeError, match=r"p must be"):
            make()


@pytest.mark.parametrize("value", [v for v in EXOTIC if v is not None], ids=EXOTIC_IDS[:-1])
def test_integer_arguments_refuse_every_non_integer(backend, value):
    cases = [
        (lambda: fd.dropout(X4, 0.5, seed=value), TypeError, r"seed must be None, an int"),
        (lambda: fd.dropout(X4, 0.5, seed=1, noise_shape=(2, value, 4, 5)), TypeError, r"noise_shape\[1\] must be"),
        (lambda: fd.dropout_mask((2, value), 0.5, seed=1), TypeError, r"shape must be an int or a tuple of ints"),
        (lambda: fd.dropout_box(X4, 0.5, seed=1, global_shape=(4, 3, 4, 5), origin=(value, 0, 0, 0)), TypeError,
         r"origin must be a tuple of 4 ints"),
        (lambda: fd.dropout(X4, 0.5, seed=1, offset=value), TypeError, r"offset must be an integer"),
        (lambda: fd.dropblock2d(X4, 0.2, value, seed=1), TypeError, r"block_size must be an int"),
        (lambda: fd.variational_dropout(X4, 0.5, seed=1, time_axis=value), TypeError, r"time_axis must be an int"),
        (lambda: fd.Dropout(0.5, noise_shape=(value, None)), TypeError, r"noise_shape must be None or a tuple"),
    ]
    for call, exc, message in cases:
        with pytest.raises(exc, match=message):
            call()


@pytest.mark.parametrize("value", [v for v in EXOTIC if not isinstance(v, (bool, np.bool_))],
                         ids=[i for i, v in zip(EXOTIC_IDS, EXOTIC) if not isinstance(v, (bool, np.bool_))])
def test_flags_refuse_everything_but_true_and_false(backend, value):
    calls = [lambda: fd.dropout(X4, 0.5, seed=1, training=value), lambda: fd.dropout_mask(4, 0.5, seed=1, packed=value),
             lambda: fd.Dropout(0.5, inplace=value), lambda: fd.AdaptiveDropout(0.5, per_unit=value),
             lambda: fd.Dropout(0.5).train(value)]
    calls += [lambda f=f: ENTRY_POINTS[f](X4, training=value) for f in ENTRY_POINTS
              if f not in ("apply_mask", "dropout_box")]
    for call in calls:
        with pytest.raises(TypeError, match=r"(training|packed|inplace|per_unit|mode) must be a bool, got"):
            call()


def test_training_strings_are_refused_not_taken_as_true():
    out = np.full_like(X4, 7.0)
    with pytest.raises(TypeError, match=r"training must be a bool, got 'no'"):
        fd.dropout(X4, 0.5, seed=1, training="no", out=out)
    assert np.all(out == 7.0)
    assert np.array_equal(fd.dropout(X4, 0.5, seed=1, training=np.bool_(False)), X4)


@pytest.mark.parametrize("value", [np.timedelta64(1, "D"), datetime.timedelta(1), 1 + 0j, "0.1", True],
                         ids=["td64", "py_timedelta", "complex", "str", "bool"])
def test_layer_reals_refuse_non_reals(value):
    for make in (lambda: fd.ConcreteDropout(0.1, temperature=value), lambda: fd.AdaptiveDropout(0.5, low=value),
                 lambda: fd.ConcreteDropout(0.1, weight_regularizer=value),
                 lambda: fd.concrete_dropout(X4, value, seed=1)):
        with pytest.raises(TypeError, match=r"(temperature|low|weight_regularizer|logit) must be"):
            make()


# --- a failed forward leaves no trace ----------------------------------------------------
X2 = X4.reshape(6, 20)
# name: (make the layer, an input its forward refuses, an input it takes)
FAILING_FORWARDS = {
    "Dropout_noise_shape_length": (lambda: fd.Dropout(0.5, noise_shape=(None, 1), seed=3), X4, X2),
    "Dropout_dtype": (lambda: fd.Dropout(0.5, seed=3), X2.astype(np.int64), X2),
    "SpatialDropout2D": (lambda: fd.SpatialDropout2D(0.5, seed=3), X4[0], X4),
    "AlphaDropout": (lambda: fd.AlphaDropout(0.5, seed=3), X4.astype(np.int32), X4),
    "GaussianDropout": (lambda: fd.GaussianDropout(0.5, seed=3), np.ma.masked_array(X4), X4),
    "VariationalDropout": (lambda: fd.VariationalDropout(0.5, time_axis=3, seed=3), X4[0], X4),
    "DropBlock2D": (lambda: fd.DropBlock2D(0.2, 2, seed=3), X4[0], X4),
    "DropPath": (lambda: fd.DropPath(0.5, seed=3), np.float32(1.0), X4),
    "AdaptiveDropout_per_unit": (lambda: fd.AdaptiveDropout(0.5, per_unit=True, seed=3), X4[..., :4], X4),
    "ConcreteDropout": (lambda: fd.ConcreteDropout(0.2, seed=3), "not an array", X4),
    "Dropout_inplace_readonly": (lambda: fd.Dropout(0.5, inplace=True, seed=3),
                                 np.frombuffer(X4.tobytes(), np.float32).reshape(X4.shape), X4),
}


@pytest.mark.parametrize("name", sorted(FAILING_FORWARDS))
def test_a_failed_forward_does_not_advance_the_counter(backend, name):
    make, bad, good = FAILING_FORWARDS[name]
    layer, clone = make(), make()
    if name == "AdaptiveDropout_per_unit":
        layer(good.copy()), clone(good.copy())     # fixes the feature count at 5; the bad input has 4
    before = layer.counter
    with pytest.raises((TypeError, ValueError)):
        layer(bad)
    assert layer.counter == before
    assert np.array_equal(layer(good.copy()), clone(good.copy()))
    assert np.array_equal(layer.backward(np.ones_like(good)), clone.backward(np.ones_like(good)))


def test_a_concrete_logit_out_of_range_fails_before_the_counter_moves(backend):
    layer, clone = fd.ConcreteDropout(0.2, seed=5), fd.ConcreteDropout(0.2, seed=5)
    saved = layer.logit
    layer.logit = 1e4
    with pytest.raises(ValueError, match=r"logit must be a real number in \[-50, 50\]"):
        layer(X4)
    assert layer.counter == 0
    layer.logit = saved
    assert np.array_equal(layer(X4), clone(X4))


@pytest.mark.parametrize("make, target, name", [
    (lambda: fd.Dropout(0.5, seed=9), fd._core, "dropout_plain_key"),   # its one-frame common forward
    (lambda: fd.Dropout(0.5, seed=9, mode="classic"), None, "_forward"),
    (lambda: fd.AlphaDropout(0.5, seed=9), None, "_forward"),
])
def test_a_forward_failing_inside_the_kernel_call_gives_its_substream_back(monkeypatch, make, target, name):
    layer, clone = make(), make()

    def fail(*args, **kwargs):
        raise MemoryError("simulated")

    with monkeypatch.context() as patch:
        patch.setattr(layer if target is None else target, name, fail)
        with pytest.raises(MemoryError):
            layer(X4)
    assert layer.counter == 0
    assert np.array_equal(layer(X4), clone(X4))


# --- in place: one rule, one message ---------------------------------------------------------
def test_in_place_layer_and_functional_accept_the_same_arrays(backend):
    expected = fd.dropout(X4, 0.5, seed=fd.functional.derive_seed(4, 0))
    raw = np.zeros(X4.nbytes + 1, np.uint8)
    unaligned = np.frombuffer(raw.data, np.float32, X4.size, offset=1).reshape(X4.shape)
    assert not unaligned.flags.aligned and unaligned.flags.writeable
    swapped = X4.astype(X4.dtype.newbyteorder())
    strided = np.zeros((2, 3, 4, 10), np.float32)[..., ::2]
    for target in (unaligned, swapped, strided):
        for apply in (lambda t: fd.dropout(t, 0.5, seed=fd.functional.derive_seed(4, 0), out=t),
                      lambda t: fd.Dropout(0.5, seed=4, inplace=True)(t)):
            target[...] = X4
            y = apply(target)
            assert y is target
            assert np.array_equal(target, expected), target.dtype
            assert target.dtype.byteorder == y.dtype.byteorder


def test_in_place_refusals_have_one_message_per_rule(backend):
    readonly = np.frombuffer(X4.tobytes(), np.float32).reshape(X4.shape)
    with pytest.raises(ValueError, match=r"^out must be writeable$"):
        fd.dropout(readonly, 0.5, seed=1, out=readonly)
    with pytest.raises(ValueError, match=r"^x \(Dropout\(inplace=True\) writes into it\) must be writeable$"):
        fd.Dropout(0.5, seed=1, inplace=True)(readonly)
    native = X4.copy()
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3, 4, 5\) and dtype float32, got shape "
                                         r"\(2, 3, 4, 5\) and dtype >f4"):
        fd.dropout(native, 0.5, seed=1, out=native.astype(">f4"))


# --- the Gaussian backward uses the forward's noise ----------------------------------------
@pytest.mark.parametrize("grad_dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("x_dtype", [np.float16, np.float32, np.float64])
def test_gaussian_backward_reuses_the_forward_noise_whatever_the_gradient_dtype(backend, x_dtype, grad_dtype):
    x = np.ones((64, 33), x_dtype)
    layer = fd.GaussianDropout(0.3, seed=11)
    noise = layer(x)                                      # x == 1: the output is the forward's noise
    grad = layer.backward(np.ones(x.shape, grad_dtype))
    assert grad.dtype == grad_dtype
    assert np.array_equal(grad, noise.astype(grad_dtype))


class DLPackOnly:
    """An array from another library that offers only the DLPack protocol."""

    def __init__(self, data, device=(1, 0)):
        self._data, self._device = data, device

    def __dlpack__(self, **kwargs):
        if self._device != (1, 0):
            raise BufferError("the data lives on another device")
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._device


def test_dlpack_only_objects_are_read_without_a_copy_or_refused_by_device(backend):
    y = fd.dropout(DLPackOnly(X4), 0.5, seed=1)
    assert type(y) is np.ndarray and np.array_equal(y, fd.dropout(X4, 0.5, seed=1))
    # zero-copy: the kernels read the producer's memory (out=x writes it)
    data = X4.copy()
    fd.dropout(np.from_dlpack(DLPackOnly(data)), 0.5, seed=1, out=np.from_dlpack(DLPackOnly(data)))
    assert np.array_equal(data, fd.dropout(X4, 0.5, seed=1))
    # refused by the device's name before the producer is asked for its data
    with pytest.raises(TypeError, match=r"x \(.*DLPackOnly\) lives on CUDA \(device 0\): fastdrop reads arrays in "
                                        r"host memory; copy it to the host first"):
        fd.dropout(DLPackOnly(X4, device=(2, 0)), 0.5, seed=1)
    with pytest.raises(TypeError, match=r"x \(.*DLPackOnly\) lives on DLPack device type 99 \(device 3\)"):
        fd.dropout(DLPackOnly(X4, device=(99, 3)), 0.5, seed=1)


def test_apply_mask_reads_rates_and_a_noise_shaped_mask_at_their_common_shape(backend):
    """A mask of shape (1, F) and rates of shape (N, 1) each broadcast to x (N, F): element
    (i, j) is kept by mask[0, j] and scaled by p[i]'s 1 / (1 - p), as with both expanded."""
    x = np.arange(1.0, 21.0, dtype=np.float32).reshape(4, 5)
    mask = np.array([[True, False, True, True, False]])
    p = np.array([[0.1], [0.5], [0.75], [1.0]])
    want = fd.apply_mask(x, np.broadcast_to(mask, x.shape).copy(), np.broadcast_to(p, x.shape).copy())
    got = fd.apply_mask(x, mask, p)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert not got[3].any() and not got[:, 1].any() and got[1, 0] == 12.0      # x[1, 0] = 6 at p = 0.5
    out = np.full_like(x, 7.0)
    with pytest.raises(ValueError, match=r"p of shape \(3, 1\) cannot broadcast to x's shape \(4, 5\) with the "
                                         r"mask's \(1, 5\)"):
        fd.apply_mask(x, mask, np.full((3, 1), 0.5), out=out)
    assert np.all(out == 7.0)


@pytest.mark.parametrize("shape", [(0, 2**70), (0, 2**62 + 1), 2**62 + 1])
def test_an_axis_past_the_stream_is_refused_by_name_even_when_empty(shape):
    with pytest.raises(ValueError, match=r"shape entries must be at most 2\*\*62 \(the stream's index range\), got"):
        fd.dropout_mask(shape, 0.5, seed=1)
