"""The dropout layers: modes, state, config, errors, backward and statistics."""
import numpy as np
import pytest

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


def replay(layer, x):
    """f(x) evaluated with the mask of the layer's last forward (the counter is rewound)."""
    def f(z):
        layer.counter -= 1
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
        layer(x)
        gx = layer.backward(gy)
        np.testing.assert_allclose(gx, finite_difference(replay(layer, x), x, gy), atol=1e-8)


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
    with pytest.raises(TypeError, match=r"Dropout\(inplace=True\) needs a writeable native-byte-order "
                                        r"numpy float array, got list"):
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
    ({"p": "0.5"}, ValueError, r"p must be a real number in \[0, 1\], got '0.5'"),
    ({"p": [0.5]}, ValueError, r"p must be a real number in \[0, 1\], got \[0.5\]"),
    ({"mode": "standard"}, ValueError, r"mode must be 'inverted' or 'classic', got 'standard'"),
    ({"inplace": 1}, TypeError, r"inplace must be a bool, got 1"),
    ({"noise_shape": (0, 1)}, ValueError, r"noise_shape must be None or a tuple of ints >= 1"),
    ({"seed": 1.5}, TypeError, r"seed must be None, an int or a numpy.random.Generator, got float 1.5"),
])
def test_dropout_bad_arguments(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        fd.Dropout(**kwargs)


def test_dropout_call_errors():
    layer = fd.Dropout(0.5, seed=0)
    with pytest.raises(RuntimeError, match="Dropout.backward called before any forward"):
        layer.backward(np.ones(3))
    with pytest.raises(TypeError, match="x must have dtype float16, float32 or float64, got dtype int64"):
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
