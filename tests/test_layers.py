"""The dropout layers: modes, state, config, errors, backward and statistics."""
import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastdrop as fd

RNG = np.random.default_rng(1234)


def finite_difference(f, x, gy, eps=1e-6):
    """d(sum(f(x) * gy))/dx by central differences, one element at a time (float64)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        grad[i] = (np.sum(f(xp) * gy) - np.sum(f(xm) * gy)) / (2 * eps)
    return grad


def frozen(layer):
    """f(x) = layer(x) replayed from the layer's current state (same mask, same rates)."""
    state = copy.deepcopy(layer.__getstate__())        # the state without its lock

    def f(z):
        layer.__dict__.update(copy.deepcopy(state))
        return layer(z)
    return f


# ---------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------

def test_dropout_is_fd_dropout_with_the_per_call_seed(backend):
    x = RNG.standard_normal((16, 33)).astype(np.float32)
    layer = fd.Dropout(0.3, seed=7)
    for k in range(3):
        y = layer(x)
        want = fd.dropout(x, 0.3, seed=fd.functional.derive_seed(layer.seed, k))
        assert np.array_equal(y, want)
    assert layer.counter == 3


def test_dropout_backward_uses_the_last_mask(backend):
    x = RNG.standard_normal((8, 50))
    layer = fd.Dropout(0.4, seed=3)
    layer(x)
    y = layer(x)
    gy = RNG.standard_normal(x.shape)
    gx = layer.backward(gy)
    assert np.array_equal(gx == 0, y == 0)
    np.testing.assert_array_equal(gx[gx != 0], (gy / 0.6)[gx != 0])


def test_dropout_backward_matches_finite_differences():
    x = RNG.standard_normal((5, 7))
    gy = RNG.standard_normal(x.shape)
    for layer in (fd.Dropout(0.5, seed=1), fd.Dropout(0.5, seed=1, mode="classic"),
                  fd.Dropout(0.5, seed=1, noise_shape=(5, 1))):
        f = frozen(layer)
        f(x)
        gx = layer.backward(gy)
        np.testing.assert_allclose(gx, finite_difference(f, x, gy), atol=1e-8)


def test_dropout_eval_is_identity_and_train_switches_back():
    x = RNG.standard_normal((4, 9)).astype(np.float32)
    layer = fd.Dropout(0.5, seed=0)
    assert layer.training
    assert layer.eval() is layer and not layer.training
    y = layer(x)
    assert np.array_equal(y, x) and y is not x
    assert layer.counter == 0                        # eval draws no mask
    assert np.array_equal(layer.backward(np.ones_like(x)), np.ones_like(x))
    layer.train()
    assert layer.training and np.count_nonzero(layer(x) == 0) > 0


def test_dropout_classic_mode():
    x = RNG.standard_normal((6, 40)).astype(np.float32)
    layer = fd.Dropout(0.25, seed=5, mode="classic")
    y = layer(x)
    kept = y != 0
    assert np.array_equal(y[kept], x[kept])          # no scaling while training
    assert np.array_equal(kept, fd.dropout(x, 0.25, seed=fd.functional.derive_seed(layer.seed, 0)) != 0)
    layer.eval()
    assert np.array_equal(layer(x), x * np.float32(0.75))


def test_dropout_inplace_writes_into_x():
    x = RNG.standard_normal((10, 10))
    x0 = x.copy()
    layer = fd.Dropout(0.5, seed=2, inplace=True)
    y = layer(x)
    assert y is x
    assert np.array_equal(x, fd.Dropout(0.5, seed=2)(x0))
    with pytest.raises(TypeError, match=r"x \(Dropout\(inplace=True\) writes into it\) must be a numpy array, "
                                        r"got list"):
        layer([1.0, 2.0])


def test_dropout_p0_identity_p1_zeros_dtype_shape(backend):
    for dtype in (np.float16, np.float32, np.float64):
        x = RNG.standard_normal((3, 5, 7)).astype(dtype)
        y0 = fd.Dropout(0.0, seed=1)(x)
        y1 = fd.Dropout(1.0, seed=1)(x)
        assert y0.dtype == y1.dtype == dtype and y0.shape == y1.shape == x.shape
        assert np.array_equal(y0, x)
        assert not y1.any()


def test_dropout_seeded_sequence_reproducible_and_calls_differ():
    x = np.ones((64, 64), np.float32)
    a, b = fd.Dropout(0.5, seed=11), fd.Dropout(0.5, seed=11)
    ya = [a(x) for _ in range(3)]
    yb = [b(x) for _ in range(3)]
    assert all(np.array_equal(u, v) for u, v in zip(ya, yb))
    assert not np.array_equal(ya[0], ya[1]) and not np.array_equal(ya[1], ya[2])
    fresh1, fresh2 = fd.Dropout(0.5), fd.Dropout(0.5)
    assert fresh1.seed != fresh2.seed                 # seed=None: fresh entropy at construction
    assert not np.array_equal(fresh1(x), fresh2(x))


def test_seeded_masks_are_the_same_in_every_run(backend):
    # golden values: a change here breaks every saved experiment that relied on the seed
    layer = fd.Dropout(0.5, seed=0)
    assert np.packbits(layer(np.ones(32)) != 0, bitorder="little").tolist() == [56, 87, 215, 51]
    assert np.packbits(layer(np.ones(32)) != 0, bitorder="little").tolist() == [25, 153, 212, 220]
    noise = fd.GaussianDropout(0.5, seed=0)(np.ones(4))
    # two normals per stream word since issue 12 (elements 0 and 2 are the cos normals of words 0 and 1)
    np.testing.assert_allclose(noise, [-0.069755, -0.479969, 0.986624, 1.128215], atol=1e-6)


def test_dropout_config_round_trip():
    layer = fd.Dropout(0.2, noise_shape=(None, 1), seed=None, mode="classic")
    cfg = layer.get_config()
    assert cfg == {"p": 0.2, "noise_shape": (None, 1), "seed": layer.seed, "inplace": False, "mode": "classic"}
    clone = fd.Dropout.from_config(cfg)
    x = RNG.standard_normal((8, 12))
    assert np.array_equal(clone(x), layer(x))
    assert repr(clone) == repr(layer)


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"p": 1.5}, ValueError, r"p must be a real number in \[0, 1\], got 1.5"),
    ({"p": -0.1}, ValueError, r"p must be a real number in \[0, 1\], got -0.1"),
    ({"p": "0.5"}, TypeError, r"p must be a real number in \[0, 1\], got str '0.5'"),
    ({"p": [0.5]}, TypeError, r"p must be a real number in \[0, 1\], got list \[0.5\]"),
    ({"mode": "standard"}, ValueError, r"mode must be 'inverted' or 'classic', got 'standard'"),
    ({"inplace": 1}, TypeError, r"inplace must be a bool, got 1"),
    ({"noise_shape": (0, 1)}, ValueError, r"noise_shape must be None or a tuple of ints >= 1"),
    ({"seed": 1.5}, TypeError, r"seed must be None, an int, or a numpy.random Generator, BitGenerator or SeedSequence, got float 1.5"),
])
def test_dropout_bad_arguments(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        fd.Dropout(**kwargs)


def test_dropout_call_errors():
    layer = fd.Dropout(0.5, seed=0)
    with pytest.raises(RuntimeError, match="Dropout.backward called before any forward"):
        layer.backward(np.ones(3))
    with pytest.raises(TypeError, match="x must have dtype float16, bfloat16, float32 or float64, got dtype int64"):
        layer(np.arange(3))
    layer(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"grad must have the shape of the last forward's output \(2, 3\), "
                                         r"got \(3, 2\)"):
        layer.backward(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"noise_shape must have length 2"):
        fd.Dropout(0.5, noise_shape=(1,))(np.ones((2, 3)))


def test_dropout_both_backends_bit_identical():
    x = RNG.standard_normal((4, 1000)).astype(np.float32)
    results = []
    for name in ("cython", "numpy") if fd._backend.compiled_available() else ("numpy",):
        with fd.use_backend(name):
            layer = fd.Dropout(0.35, seed=99, noise_shape=(None, 1000))
            results.append((layer(x), layer.backward(x)))
    for y, g in results[1:]:
        assert np.array_equal(y, results[0][0]) and np.array_equal(g, results[0][1])


# ---------------------------------------------------------------------------------------
# Every layer: the shared contract
# ---------------------------------------------------------------------------------------

# name -> (factory(p, seed), input shape, eval output of x, valid p range)
SPECS = {
    "Dropout": (lambda p, s: fd.Dropout(p, seed=s), (6, 10)),
    "Dropout-classic": (lambda p, s: fd.Dropout(p, seed=s, mode="classic"), (6, 10)),
    "Dropout-noise_shape": (lambda p, s: fd.Dropout(p, seed=s, noise_shape=(None, 1, 5)), (6, 4, 5)),
    "SpatialDropout1D": (lambda p, s: fd.SpatialDropout1D(p, seed=s), (4, 5, 6)),
    "SpatialDropout2D": (lambda p, s: fd.SpatialDropout2D(p, seed=s), (3, 4, 5, 6)),
    "SpatialDropout2D-last": (lambda p, s: fd.SpatialDropout2D(p, seed=s, data_format="channels_last"), (3, 5, 6, 4)),
    "SpatialDropout3D": (lambda p, s: fd.SpatialDropout3D(p, seed=s), (2, 3, 4, 3, 3)),
    "AlphaDropout": (lambda p, s: fd.AlphaDropout(p, seed=s), (6, 10)),
    "GaussianDropout": (lambda p, s: fd.GaussianDropout(p, seed=s), (6, 10)),
    "VariationalDropout": (lambda p, s: fd.VariationalDropout(p, seed=s), (4, 5, 6)),
    "ConcreteDropout": (lambda p, s: fd.ConcreteDropout(p, temperature=0.5, seed=s), (6, 10)),
    "AdaptiveDropout": (lambda p, s: fd.AdaptiveDropout(p, p_min=0.0, p_max=1.0, seed=s), (6, 10)),
    "AdaptiveDropout-per_unit": (lambda p, s: fd.AdaptiveDropout(p, p_min=0.0, p_max=1.0, per_unit=True, seed=s),
                                 (6, 10)),
    "DropBlock2D": (lambda p, s: fd.DropBlock2D(p, 3, seed=s), (2, 3, 8, 8)),
    "DropPath": (lambda p, s: fd.DropPath(p, seed=s), (6, 4, 3)),
}
NO_P0 = {"ConcreteDropout"}                       # the rate is a logit: (0, 1) only
NO_P1 = {"ConcreteDropout", "GaussianDropout"}    # Gaussian: variance p/(1-p) is infinite at 1


def make(name, p=0.5, seed=0):
    factory, shape = SPECS[name]
    return factory(p, seed), shape


def eval_output(name, layer, x):
    return x * x.dtype.type(1 - layer.p) if name == "Dropout-classic" else x


@pytest.mark.parametrize("name", SPECS)
def test_eval_is_identity(name):
    layer, shape = make(name)
    x = RNG.standard_normal(shape).astype(np.float32)
    layer.eval()
    y = layer(x)
    assert y is not x and np.array_equal(y, eval_output(name, layer, x))
    assert layer.counter == 0
    g = RNG.standard_normal(shape).astype(np.float32)
    assert np.array_equal(layer.backward(g), eval_output(name, layer, g))


@pytest.mark.parametrize("name", sorted(set(SPECS) - NO_P0))
def test_p0_is_identity(name):
    layer, shape = make(name, p=0.0)
    x = RNG.standard_normal(shape)
    assert np.array_equal(layer(x), x)
    assert np.array_equal(layer.backward(x), x)


@pytest.mark.parametrize("name", sorted(set(SPECS) - NO_P1))
def test_p1_is_zeros(name):
    layer, shape = make(name, p=1.0)
    x = RNG.standard_normal(shape)
    y = layer(x)
    assert y.shape == shape and not y.any()
    assert not layer.backward(x).any()


@pytest.mark.parametrize("name", sorted(NO_P0 | NO_P1))
def test_rates_outside_a_layers_domain_fail_at_construction(name):
    bad = [1.0] + ([0.0] if name in NO_P0 else [])
    for p in bad:
        with pytest.raises(ValueError, match=rf"p must be .*got {p}"):
            make(name, p=p)


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_and_shape_kept(name, dtype):
    layer, shape = make(name)
    x = RNG.standard_normal(shape).astype(dtype)
    y = layer(x)
    g = layer.backward(np.ones(shape, dtype))
    assert y.dtype == g.dtype == dtype and y.shape == g.shape == shape
    assert np.isfinite(y).all() and np.isfinite(g).all()


@pytest.mark.parametrize("name", SPECS)
def test_seeded_sequence_reproducible_successive_calls_differ_counter_advances(name):
    (a, shape), (b, _) = make(name, seed=21), make(name, seed=21)
    x = np.abs(RNG.standard_normal(shape)) + 0.5
    ya = []
    for k in range(3):
        assert a.counter == k
        ya.append(a(x))
        assert np.array_equal(ya[-1], b(x))
    assert a.counter == 3
    assert not np.array_equal(ya[0], ya[1]) and not np.array_equal(ya[1], ya[2])
    other, _ = make(name, seed=22)
    assert not np.array_equal(other(x), make(name, seed=21)[0](x))


@pytest.mark.parametrize("name", SPECS)
def test_config_round_trip(name):
    layer, shape = make(name, p=0.3, seed=None)
    cfg = layer.get_config()
    assert cfg["seed"] == layer.seed
    clone = type(layer).from_config(cfg)
    assert clone.get_config() == cfg and repr(clone) == repr(layer)
    x = RNG.standard_normal(shape)
    for _ in range(2):
        assert np.array_equal(clone(x), layer(x))


@pytest.mark.parametrize("name", SPECS)
def test_backward_before_forward_is_a_runtime_error(name):
    layer, shape = make(name)
    with pytest.raises(RuntimeError, match=rf"{type(layer).__name__}.backward called before any forward"):
        layer.backward(np.ones(shape))


@pytest.mark.parametrize("name", SPECS)
def test_backward_matches_finite_differences(name):
    layer, shape = make(name, p=0.4, seed=5)
    x = RNG.standard_normal(shape)
    gy = RNG.standard_normal(shape)
    f = frozen(layer)
    f(x)
    gx = layer.backward(gy)
    assert np.count_nonzero(gx) > 0
    np.testing.assert_allclose(gx, finite_difference(f, x, gy), atol=1e-7)


@pytest.mark.parametrize("name", SPECS)
def test_both_backends_bit_identical(name):
    shape = SPECS[name][1]
    x = RNG.standard_normal(shape).astype(np.float32)
    results = []
    for backend in ("cython", "numpy") if fd._backend.compiled_available() else ("numpy",):
        with fd.use_backend(backend):
            layer, _ = make(name, p=0.35, seed=17)
            results.append([layer(x), layer.backward(x), layer(x), layer.backward(2 * x)])
    for arrays in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(arrays, results[0]))


@pytest.mark.parametrize("layer, bad_shape, msg", [
    (fd.SpatialDropout1D(0.5), (2, 3), r"SpatialDropout1D expects input of rank 3, got rank 2 with shape \(2, 3\)"),
    (fd.SpatialDropout2D(0.5), (2, 3, 4),
     r"SpatialDropout2D expects input of rank 4, got rank 3 with shape \(2, 3, 4\)"),
    (fd.SpatialDropout3D(0.5), (2, 3, 4, 5), r"SpatialDropout3D expects input of rank 5, got rank 4"),
    (fd.DropBlock2D(0.1, 3), (2, 3, 4), r"DropBlock2D expects input of rank 4, got rank 3"),
    (fd.VariationalDropout(0.5), (7,),
     r"VariationalDropout expects input of rank >= 2 with time_axis=1 inside it, got rank 1 with shape \(7,\)"),
    (fd.DropPath(0.5), (), r"DropPath expects input of rank >= 1, got rank 0 with shape \(\)"),
])
def test_wrong_rank_fails_at_call_time(layer, bad_shape, msg):
    with pytest.raises(ValueError, match=msg):
        layer(np.ones(bad_shape))


@pytest.mark.parametrize("make_layer, exc, msg", [
    (lambda: fd.SpatialDropout2D(0.5, data_format="NHWC"), ValueError,
     r"data_format must be 'channels_first' or 'channels_last', got 'NHWC'"),
    (lambda: fd.SpatialDropout1D(2), ValueError, r"p must be a real number in \[0, 1\], got 2"),
    (lambda: fd.AlphaDropout(-0.5), ValueError, r"p must be a real number in \[0, 1\], got -0.5"),
    (lambda: fd.GaussianDropout(1), ValueError, r"p must be in \[0, 1\) for Gaussian dropout"),
    (lambda: fd.VariationalDropout(0.5, time_axis="1"), TypeError, r"time_axis must be an int, got '1'"),
    (lambda: fd.DropBlock2D(0.1, 0), ValueError, r"block_size must be an int >= 1, got 0"),
    (lambda: fd.DropBlock2D(0.1, 3.0), TypeError, r"block_size must be an int >= 1, got 3.0"),
    (lambda: fd.DropBlock2D(0.1, 3, data_format=None), ValueError, r"data_format must be .*got None"),
    (lambda: fd.DropPath(float("nan")), ValueError, r"p must be a real number in \[0, 1\], got nan"),
    (lambda: fd.ConcreteDropout(0.0), ValueError,
     r"init_p must be in \(0, 1\) \(the rate is learned through its logit\), got 0.0"),
    (lambda: fd.ConcreteDropout(0.1, temperature=0.0), ValueError,
     r"temperature must be a finite real number > 0, got 0.0"),
    (lambda: fd.ConcreteDropout(0.1, temperature=-1), ValueError, r"temperature must be .* > 0, got -1"),
    (lambda: fd.ConcreteDropout(0.1, weight_regularizer=-1e-6), ValueError,
     r"weight_regularizer must be >= 0.0, got -1e-06"),
    (lambda: fd.ConcreteDropout(0.1, dropout_regularizer="x"), TypeError,
     r"dropout_regularizer must be a finite real number >= 0.0, got str 'x'"),
    (lambda: fd.AdaptiveDropout(0.05), ValueError, r"init_p must be in \[0.1, 0.9\], got 0.05"),
    (lambda: fd.AdaptiveDropout(0.5, p_min=0.6, p_max=0.4), ValueError, r"p_max must be in \[0.6, 1.0\], got 0.4"),
    (lambda: fd.AdaptiveDropout(0.5, low=0.8, high=0.7), ValueError, r"high must be >= 0.8, got 0.7"),
    (lambda: fd.AdaptiveDropout(0.5, adapt_rate=-0.01), ValueError, r"adapt_rate must be >= 0.0, got -0.01"),
    (lambda: fd.AdaptiveDropout(0.5, per_unit="yes"), TypeError, r"per_unit must be a bool, got 'yes'"),
    (lambda: fd.AdaptiveDropout(0.5, seed=-1), ValueError, r"seed must be in \[0, 2\*\*64\), got -1"),
])
def test_bad_constructor_arguments(make_layer, exc, msg):
    with pytest.raises(exc, match=msg):
        make_layer()


# ---------------------------------------------------------------------------------------
# Layer by layer: the statistics and the specifics
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, shape", [(fd.SpatialDropout1D, (8, 6, 12)), (fd.SpatialDropout2D, (8, 6, 5, 7)),
                                        (fd.SpatialDropout3D, (8, 6, 3, 4, 5))])
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_spatial_layers_drop_whole_channels(cls, shape, data_format, backend):
    if data_format == "channels_last":
        shape = (shape[0],) + shape[2:] + (shape[1],)
    layer = cls(0.5, data_format=data_format, seed=3)
    y = layer(np.ones(shape, np.float32))
    maps = np.moveaxis(y, -1, 1) if data_format == "channels_last" else y
    maps = maps.reshape(maps.shape[0], maps.shape[1], -1)
    zero, kept = (maps == 0).all(axis=2), (maps == 2).all(axis=2)
    assert np.all(zero | kept) and zero.any() and kept.any()
    g = layer.backward(np.ones(shape, np.float32))
    assert np.array_equal(g, y)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_alpha_dropout_layer_keeps_mean_0_std_1(p):
    x = np.random.default_rng(5).standard_normal(5000)
    y = fd.AlphaDropout(p, seed=1)(x)
    assert abs(y.mean()) < 0.1 and abs(y.std() - 1.0) < 0.1


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_gaussian_dropout_layer_std_on_ones(p):
    layer = fd.GaussianDropout(p, seed=4)
    y = layer(np.ones((200, 500), np.float32))
    assert abs(y.std(dtype=np.float64) - np.sqrt(p / (1 - p))) < 0.02
    assert np.array_equal(layer.backward(np.ones((200, 500), np.float32)), y)


def test_variational_layer_mask_constant_over_time_and_step_api():
    layer = fd.VariationalDropout(0.5, seed=8)
    x = np.ones((4, 7, 30))
    y = layer(x)
    assert all(np.array_equal(y[:, t], y[:, 0]) for t in range(7))
    assert 0 < np.count_nonzero(y[:, 0]) < y[:, 0].size
    stepper = fd.VariationalDropout(0.5, seed=8)
    with pytest.raises(RuntimeError, match=r"VariationalDropout.step called before start_sequence\(\)"):
        stepper.step(x[:, 0])
    stepper.start_sequence()
    assert stepper.counter == 1
    for t in range(7):
        assert np.array_equal(stepper.step(x[:, t]), y[:, t])      # the step mask is the sequence mask
    assert np.array_equal(stepper.step_backward(np.ones((4, 30))), y[:, 0])
    stepper.start_sequence()
    assert not np.array_equal(stepper.step(x[:, 0]), y[:, 0])       # a new sequence, a new mask
    stepper.eval().start_sequence()
    assert np.array_equal(stepper.step(x[:, 0]), x[:, 0]) and stepper.counter == 2


def test_variational_layer_time_major():
    y = fd.VariationalDropout(0.5, time_axis=0, seed=2)(np.ones((6, 4, 9)))
    assert all(np.array_equal(y[t], y[0]) for t in range(6))


def test_drop_path_layer_drops_whole_samples():
    y = fd.DropPath(0.5, seed=6)(np.ones((64, 3, 4)))
    per_sample = y.reshape(64, -1)
    dropped = (per_sample == 0).all(axis=1)
    assert np.all(dropped | (per_sample == 2).all(axis=1)) and 10 < dropped.sum() < 54


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_dropblock_layer_area_and_rescaling(data_format):
    shape = (32, 16, 24, 24) if data_format == "channels_first" else (32, 24, 24, 16)
    layer = fd.DropBlock2D(0.1, 5, data_format=data_format, seed=7)
    y = layer(np.ones(shape, np.float32))
    assert 0.085 <= np.mean(y == 0) <= 0.102          # overlapping blocks drop slightly less than p
    assert abs(y.mean(dtype=np.float64) - 1.0) < 1e-6
    assert np.array_equal(layer.backward(np.ones(shape, np.float32)), y)


def test_concrete_layer_rate_gradient_matches_finite_differences():
    layer = fd.ConcreteDropout(0.2, temperature=0.3, seed=9)
    x = RNG.standard_normal((5, 8))
    gy = RNG.standard_normal(x.shape)
    f = frozen(layer)
    f(x)
    layer.backward(gy)
    # the noise is float32 (logit rounded to float32): steps of 2**-8 around that logit are
    # exact, and the tolerance covers w's float32 rounding over the step
    logit, eps = float(np.float32(layer.logit)), 2.0 ** -8

    def loss(lg):
        layer.logit = lg
        layer.counter -= 1                                 # the same uniforms as the forward
        return np.sum(layer(x) * gy)
    numeric = (loss(logit + eps) - loss(logit - eps)) / (2 * eps)
    assert abs(layer.grad_logit - numeric) < 2e-3 * max(1.0, abs(numeric))


def test_concrete_layer_rate_regularization_and_eval():
    layer = fd.ConcreteDropout(0.1, seed=1)
    assert abs(layer.p - 0.1) < 1e-15
    with pytest.raises(RuntimeError, match="ConcreteDropout.regularization needs a forward first"):
        layer.regularization()
    x = RNG.standard_normal((10, 20))
    layer(x)
    w = RNG.standard_normal((20, 3))
    value = layer.regularization([w])
    d_logit, (d_w,) = layer.regularization_grad([w])
    p = layer.p
    neg_entropy = p * np.log(p) + (1 - p) * np.log(1 - p)
    assert abs(value - (1e-6 * np.sum(w ** 2) / (1 - p) + 1e-5 * 20 * neg_entropy)) < 1e-15
    layer.logit -= 1.0 * d_logit
    assert layer.p != p                                   # the rate is learnable through logit
    layer.eval()
    assert np.array_equal(layer(x), x)
    layer.backward(x)
    assert layer.grad_logit == 0.0


def test_concrete_layer_learns_a_rate_towards_its_gradient():
    layer = fd.ConcreteDropout(0.5, temperature=0.1, seed=2)
    x = np.ones((64, 32))
    start = layer.p
    for _ in range(20):        # loss = sum(y**2): E[y**2] = x**2 / (1 - p) for hard masks, so p falls
        y = layer(x)
        layer.backward(2 * y)
        layer.logit -= 1e-4 * layer.grad_logit
    assert layer.p < start - 0.1


def test_adaptive_dropout_follows_activity_and_clamps():
    layer = fd.AdaptiveDropout(0.5, adapt_rate=0.1, seed=0)
    for expected in (0.6, 0.7, 0.8, 0.9, 0.9):          # mean |x| = 2 > high: rises to p_max
        layer(np.full((4, 8), 2.0))
        assert abs(layer.p - expected) < 1e-12
    for expected in (0.8, 0.7):                            # mean |x| = 0.1 < low: falls
        layer(np.full((4, 8), -0.1))
        assert abs(layer.p - expected) < 1e-12
    layer(np.full((4, 8), 0.5))                            # between low and high: unchanged
    assert abs(layer.p - 0.7) < 1e-12
    layer.eval()(np.full((4, 8), 2.0))                     # inference does not adapt
    assert abs(layer.p - 0.7) < 1e-12


def test_adaptive_dropout_backward_uses_the_rate_of_its_forward():
    layer = fd.AdaptiveDropout(0.5, adapt_rate=0.2, seed=3)
    x = np.full((50, 40), 2.0)
    y = layer(x)                                           # rate 0.5 used, then raised to 0.7
    assert abs(layer.p - 0.7) < 1e-12
    assert np.array_equal(layer.backward(np.full_like(x, 2.0)), y)


def test_adaptive_dropout_per_unit_rates():
    layer = fd.AdaptiveDropout(0.5, adapt_rate=0.1, per_unit=True, seed=4)
    x = np.ones((2000, 3)) * np.array([2.0, 0.5, 0.05])
    y = layer(x)
    np.testing.assert_allclose(layer.p, [0.6, 0.5, 0.4])
    y = layer(x)                                           # drawn with rates 0.6, 0.5, 0.4
    np.testing.assert_allclose(np.mean(y == 0, axis=0), [0.6, 0.5, 0.4], atol=0.04)
    assert np.array_equal(y[y != 0], (x / (1 - np.array([0.6, 0.5, 0.4])))[y != 0])
    with pytest.raises(ValueError, match=r"AdaptiveDropout\(per_unit=True\) has 3 feature rates, "
                                         r"got input with 4 features \(shape \(2, 4\)\)"):
        layer(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"AdaptiveDropout expects input of rank >= 1, got rank 0 with shape \(\)"):
        layer(np.float64(1.0))


def test_layers_are_independent_of_eval_calls_between_training_calls():
    x = np.ones((8, 16))
    a, b = fd.Dropout(0.5, seed=1), fd.Dropout(0.5, seed=1)
    a(x)
    b(x)
    b.eval()(x)
    b.train()
    assert np.array_equal(a(x), b(x))


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), data=st.data(),
       p=st.floats(0.0, 1.0), dtype=st.sampled_from([np.float16, np.float32, np.float64]))
def test_dropout_layer_is_fd_dropout_for_any_noise_shape(shape, data, p, dtype):
    noise_shape = tuple(data.draw(st.sampled_from([None, 1, n])) for n in shape)
    x = np.asfortranarray(RNG.standard_normal(shape).astype(dtype))
    layer = fd.Dropout(p, noise_shape=noise_shape, seed=data.draw(st.integers(0, 2 ** 64 - 1)))
    y = layer(x)
    resolved = tuple(n if e is None else e for n, e in zip(shape, noise_shape))
    assert np.array_equal(y, fd.dropout(x, p, seed=fd.functional.derive_seed(layer.seed, 0), noise_shape=resolved))
    g = layer.backward(np.ones(shape, dtype))                 # the same mask as the forward
    assert np.array_equal((g == 0)[x != 0], (y == 0)[x != 0])


def test_inplace_dropout_writes_into_an_ndarray_subclass(tmp_path):
    mm = np.memmap(tmp_path / "x.bin", dtype=np.float32, mode="w+", shape=(64,))
    mm[:] = 1.0
    expected = fd.Dropout(0.5, seed=4)(np.ones(64, np.float32))
    y = fd.Dropout(0.5, seed=4, inplace=True)(mm)
    assert np.array_equal(np.asarray(mm), expected) and np.array_equal(y, expected)
    with pytest.raises(ValueError, match=r"x \(Dropout\(inplace=True\) writes into it\) must be writeable"):
        fd.Dropout(0.5, seed=4, inplace=True)(np.frombuffer(np.ones(64, np.float32).tobytes(), np.float32))


@pytest.mark.parametrize("shape", [(7,), (5, 7), (3, 4, 7), (1000, 3)])
def test_adaptive_feature_activity_is_mean_abs_in_bounded_slices(shape):
    from fastdrop.layers import _feature_mean_abs
    x = RNG.standard_normal(shape).astype(np.float32)
    expected = np.mean(np.abs(x), axis=tuple(range(x.ndim - 1)), dtype=np.float64)
    for chunk in (1, 7, None):
        np.testing.assert_allclose(_feature_mean_abs(x, chunk), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4000, 3), (50, 40, 7), (300_000, 1)])
def test_adaptive_feature_activity_does_not_depend_on_the_layout(dtype, shape):
    """Each feature's mean |x| (hence AdaptiveDropout(per_unit=True)'s next rates) is the same
    float for C, Fortran, strided and byte-swapped arrays of the same values (NumPy sums a
    Fortran-ordered float64 array pairwise along the features' axis, a C-ordered one row by
    row: those differed in the last bits before the slices were made C-ordered)."""
    from fastdrop.layers import _feature_mean_abs
    scale = np.random.default_rng(5).uniform(0.1, 1e4, shape[:1] + (1,) * (len(shape) - 1))
    x = (RNG.standard_normal(shape) * scale).astype(dtype)
    expected = _feature_mean_abs(x)
    for name, v in {"F": np.asfortranarray(x), "strided": np.repeat(x, 2, axis=-1)[..., ::2],
                    "byte-swapped": x.astype(x.dtype.newbyteorder(">"))}.items():
        assert np.array_equal(v, x)
        assert np.array_equal(_feature_mean_abs(v).view(np.uint64), expected.view(np.uint64)), name


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("n, offset", [(1, 0), (1000, 30), (5000, 1021), (300_001, 7)])
def test_abs_sum_is_the_fused_kernels_sum_and_nearly_exact(dtype, n, offset):
    """_core.abs_sum (any layout) gives the fused kernel's float, within 2**-40 of the exact
    sum of |x|; the partials' exact sum makes it independent of their order."""
    from fastdrop import _core
    x = (RNG.standard_normal(n) * 100).astype(dtype)
    exact = math.fsum(np.abs(x.astype(np.float64)).tolist())
    fused = _core.dropout_abs_sum_key(x, 0.3, 12345, offset)[1]
    assert _core.abs_sum(x, offset) == fused
    assert abs(fused - exact) <= 2.0 ** -40 * exact
    assert _core.abs_sum(np.asfortranarray(np.stack([x, x])).T.copy(order="F").T, offset) == \
        _core.abs_sum(np.stack([x, x]), offset)
    with fd.use_backend("numpy"):
        assert _core.abs_sum(x, offset) == fused


def test_abs_sum_of_extremes():
    from fastdrop import _core
    big = np.full(3000, np.finfo(np.float64).max)
    assert _core.abs_sum(big) == math.inf                      # partials overflow to inf
    assert _core.abs_sum(np.full(2 * 1024, np.finfo(np.float64).max / 1024)) == math.inf   # their sum does
    assert math.isnan(_core.abs_sum(np.array([1.0, np.nan, -np.inf], np.float32)))
    assert _core.abs_sum(np.array([-np.inf, 2.0])) == math.inf
    assert _core.abs_sum(np.zeros(0, np.float32)) == 0.0
    assert _core.abs_sum(np.array([-0.0, -1.5, 2.5], ">f8")) == 4.0      # byte-swapped input


@pytest.mark.parametrize("offset", [0, 5, 1023, 8 * 1024 - 1])
def test_abs_sum_of_any_layout_is_the_contiguous_sum(offset):
    """Inputs the kernel cannot read in place go to it in pieces of whole sum blocks: the
    same float as the C-contiguous copy whatever the layout, with pieces ending inside the
    input (8 blocks each) and a short last piece."""
    from fastdrop import _core
    x = (RNG.standard_normal((29, 1301)) * 3).astype(np.float32)      # 37729 elements: 5 pieces
    expected = _core.abs_sum(np.ascontiguousarray(x), offset)
    misaligned = np.frombuffer(b"\0" + x.tobytes(), dtype=np.float32, offset=1).reshape(x.shape)
    for name, v in {"transposed": np.ascontiguousarray(x.T).T, "strided": np.repeat(x, 2, axis=1)[:, ::2],
                    "byte-swapped": x.astype(">f4"), "misaligned": misaligned,
                    "swapped-strided": np.repeat(x, 2, axis=0).astype(">f4")[::2]}.items():
        assert np.array_equal(v, x) and not (v.flags.c_contiguous and v.flags.aligned and v.dtype.isnative)
        assert _core.abs_sum(v, offset) == expected, name
        with fd.use_backend("numpy"):
            assert _core.abs_sum(v, offset) == expected, name


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_adaptive_dropout_fused_and_general_paths_agree(dtype):
    """The one-rate layer's common call (mask and mean |x| from one kernel) and its general
    path (a Fortran-ordered input, a float p of 0) give the same masks and the same rates, on
    both backends and with 1 and 2 threads."""
    x = (RNG.standard_normal((300, 701)) * 0.7).astype(dtype)
    xf = np.asfortranarray(x)
    runs = []
    for backend, threads, inp in (("cython", 1, x), ("cython", 2, x), ("cython", 1, xf), ("numpy", 1, x)):
        if backend == "cython" and not fd.backend() == "cython":
            continue
        with fd.use_backend(backend), fd.use_num_threads(threads):
            layer = fd.AdaptiveDropout(0.5, adapt_rate=0.05, low=0.5, high=0.55, seed=8)
            outs, rates = [], []
            for step in range(4):
                outs.append(layer(inp * dtype(0.9 + 0.1 * step)))
                rates.append(layer.p)
                np.testing.assert_array_equal(layer.backward(np.ones_like(inp)) == 0, outs[-1] == 0)
        runs.append((outs, rates))
    for outs, rates in runs[1:]:
        assert rates == runs[0][1]
        for a, b in zip(outs, runs[0][0]):
            assert np.array_equal(a, b)
    expected, p = [], 0.5                                     # the rule, from the exact mean |x|
    for step in range(4):
        activity = math.fsum(np.abs((x * dtype(0.9 + 0.1 * step)).astype(np.float64)).ravel().tolist()) / x.size
        p = min(max(p + 0.05 * ((activity > 0.55) - (activity < 0.5)), 0.1), 0.9)
        expected.append(p)
    assert runs[0][1] == expected
    zero_rate = fd.AdaptiveDropout(0.0, p_min=0.0, adapt_rate=0.1, high=0.5, seed=8)   # p = 0: the general path
    assert np.array_equal(zero_rate(x), x) and zero_rate.p == 0.1   # mean |x| ~0.56 > high: the rate rises


def test_layer_keeps_its_stream_key_with_its_seed():
    """A layer derives forward k's seed from the key it keeps with ``seed``: reassigning the
    seed changes the masks exactly as a layer built with it, and the common call's shortcut
    gives fd.dropout's bits for forward and backward."""
    x = np.random.default_rng(3).standard_normal((37, 29)).astype(np.float32)
    layer = fd.Dropout(0.3, seed=5)
    layer.seed = 9
    for k in range(3):
        want = fd.dropout(x, 0.3, seed=fd.functional.derive_seed(9, k))
        assert np.array_equal(layer.forward(x), want)
        assert np.array_equal(layer.backward(x), want)
    assert layer.counter == 3 and layer.get_config()["seed"] == 9


def test_substream_window_is_derive_seed_across_refills():
    """Forwards past the layer's window of substream seeds (and a seed reassigned in the
    middle of one) draw exactly derive_seed's masks."""
    from fastdrop import _stream
    x = np.random.default_rng(4).standard_normal(300).astype(np.float32)
    layer = fd.Dropout(0.4, seed=11)
    for k in range(fd.layers.SUBSTREAM_WINDOW + 5):
        assert np.array_equal(layer(x), fd.dropout(x, 0.4, seed=fd.functional.derive_seed(11, k)))
    layer.seed = 12
    assert np.array_equal(layer(x), fd.dropout(x, 0.4, seed=fd.functional.derive_seed(12, layer.counter - 1)))
    key = _stream.stream_key(3)
    seeds, keys = _stream.substream_window(key, 2**40, 8)
    assert seeds == [_stream.derive_seed(3, 2**40 + i) for i in range(8)]
    assert keys == [_stream.stream_key(s) for s in seeds]
