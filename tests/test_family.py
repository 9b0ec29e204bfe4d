"""The functional twins of the dropout family: definitions, statistics, backends, errors."""
import numpy as np
import pytest

import fastdrop as fd
from fastdrop import _core, _numpy_backend, family

RNG = np.random.default_rng(2024)
BACKENDS = ("cython", "numpy") if fd._backend.compiled_available() else ("numpy",)


def on_every_backend(f):
    """f() evaluated once per backend."""
    results = []
    for name in BACKENDS:
        with fd.use_backend(name):
            results.append(f())
    return results


# --- spatial, variational, drop path: fd.dropout with a noise shape -----------------------------

@pytest.mark.parametrize("shape", [(4, 3, 10), (4, 3, 6, 7), (2, 3, 4, 5, 6)])
def test_spatial_dropout_is_all_or_nothing_per_channel(shape, backend):
    x = np.ones(shape, np.float32)
    y = fd.spatial_dropout(x, 0.5, seed=1)
    per_map = y.reshape(shape[0], shape[1], -1)
    assert np.all((per_map == 0).all(axis=2) | (per_map == 2).all(axis=2))
    assert 0 < np.count_nonzero(per_map[:, :, 0]) < shape[0] * shape[1]
    ns = (shape[0], shape[1]) + (1,) * (len(shape) - 2)
    assert np.array_equal(y, fd.dropout(x, 0.5, seed=1, noise_shape=ns))


def test_spatial_dropout_channels_last_is_the_transposed_mask():
    x = RNG.standard_normal((5, 6, 7, 8))
    first = fd.spatial_dropout(x, 0.4, seed=9)
    last = fd.spatial_dropout(np.moveaxis(x, 1, -1), 0.4, seed=9, data_format="channels_last")
    assert np.array_equal(np.moveaxis(last, -1, 1), first)


@pytest.mark.parametrize("time_axis", [0, 1, -2])
def test_variational_mask_constant_over_time_and_equal_to_the_step_mask(time_axis):
    x = np.ones((6, 6, 20)) if time_axis != 1 else np.ones((6, 9, 20))
    y = fd.variational_dropout(x, 0.5, seed=3, time_axis=time_axis)
    steps = np.moveaxis(y, time_axis, 0)
    assert all(np.array_equal(s, steps[0]) for s in steps)
    assert 0 < np.count_nonzero(steps[0]) < steps[0].size
    assert np.array_equal(steps[0], fd.dropout(np.ones(steps[0].shape), 0.5, seed=3))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape, time_axis", [((4, 7, 3000), 1), ((9, 3, 5), 0), ((3, 2, 5, 4), 1), ((2, 3, 2), -1)])
def test_variational_dropout_is_its_noise_shaped_mask_applied(backend, dtype, shape, time_axis):
    """The fused pass (one decision per noise element, broadcast along time) gives the bits
    of the mask definition: dropout_mask over the noise shape, applied with apply_mask."""
    x = (RNG.standard_normal(shape) * 100).astype(dtype)
    x.reshape(-1)[:3] = [np.inf, np.nan, -0.0]
    noise = list(shape)
    noise[time_axis] = 1
    with np.errstate(invalid="ignore", over="ignore"):
        expected = fd.apply_mask(x, fd.dropout_mask(tuple(noise), 0.3, seed=5, offset=77), 0.3)
    got = fd.variational_dropout(x, 0.3, seed=5, time_axis=time_axis, offset=77)
    assert np.array_equal(got.view(f"u{x.itemsize}"), expected.view(f"u{x.itemsize}"))
    out = np.empty_like(x.transpose())
    fd.variational_dropout(x, 0.3, seed=5, time_axis=time_axis, offset=77, out=out.transpose())
    assert np.array_equal(out.transpose().view(f"u{x.itemsize}"), expected.view(f"u{x.itemsize}"))


@pytest.mark.parametrize("shape, noise, expected", [
    ((4, 7, 30), (4, 1, 30), (4, 7, 30)),              # variational, time in the middle
    ((7, 4, 30), (1, 4, 30), (1, 7, 120)),             # time-major: no leading kept axis
    ((2, 5, 6, 3), (2, 1, 1, 3), (2, 30, 3)),          # channels_last spatial dropout
    ((2, 1, 5, 3), (2, 1, 1, 3), (2, 5, 3)),           # size-1 axes of x are skipped
    ((4, 7, 30), (4, 7, 1), (28, 30, 1)),              # nothing kept after the broadcast axes
    ((4, 3, 5, 6), (4, 1, 1, 1), (4, 90, 1)),          # drop_path
    ((4, 7, 30), (1, 1, 1), (1, 840, 1)),              # one decision for all
    ((4, 7, 30), (1, 7, 1), None),                     # two broadcast groups
    ((4, 7, 30), (4, 7, 30), None),                    # nothing broadcast
])
def test_shared_axes_finds_one_broadcast_group_between_kept_axes(shape, noise, expected):
    assert _core.shared_axes(shape, noise) == expected


def test_drop_path_drops_whole_samples():
    x = np.ones((200, 3, 4), np.float32)
    y = fd.drop_path(x, 0.25, seed=4)
    per_sample = y.reshape(200, -1)
    kept = (per_sample == np.float32(1 / 0.75)).all(axis=1)
    assert np.all(kept | (per_sample == 0).all(axis=1))
    assert abs(1 - kept.mean() - 0.25) < 0.1


# --- alpha dropout ---------------------------------------------------------------------------

def naive_alpha_dropout(x, p, seed):
    alpha = -1.7580993408473766
    keep = fd.dropout_mask(x.shape, p, seed=seed)
    a = ((1 - p) + alpha ** 2 * (1 - p) * p) ** -0.5
    b = -a * alpha * p
    return np.where(keep, a * x + b, a * alpha + b), keep, a


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_alpha_dropout_matches_the_formula(p, backend):
    x = RNG.standard_normal((7, 300))
    want, keep, a = naive_alpha_dropout(x, p, 5)
    got = fd.alpha_dropout(x, p, seed=5)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    g = fd.alpha_dropout_grad(np.ones_like(x), p, seed=5)
    assert np.array_equal(g, np.where(keep, a, 0.0))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_alpha_dropout_keeps_mean_0_and_std_1(p):
    x = np.random.default_rng(7).standard_normal(5000)
    y = fd.alpha_dropout(x, p, seed=11)
    assert abs(y.mean()) < 0.1
    assert abs(y.std() - 1.0) < 0.1


def test_alpha_dropout_edges():
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    assert not fd.alpha_dropout(x, 1.0, seed=0).any()
    assert not fd.alpha_dropout_grad(x, 1.0, seed=0).any()
    for y in (fd.alpha_dropout(x, 0.0, seed=0), fd.alpha_dropout(x, 0.5, seed=0, training=False)):
        assert np.array_equal(y, x) and y is not x
    assert fd.alpha_dropout(x, 0.5, seed=0).dtype == np.float32


def test_alpha_dropout_offset_chunks_the_array_and_out_may_be_x():
    x = RNG.standard_normal(3000)
    whole = fd.alpha_dropout(x, 0.3, seed=2)
    assert np.array_equal(fd.alpha_dropout(x[1000:2100], 0.3, seed=2, offset=1000), whole[1000:2100])
    grad = fd.alpha_dropout_grad(x, 0.3, seed=2)
    assert np.array_equal(fd.alpha_dropout_grad(x[::-1].copy()[::-1], 0.3, seed=2), grad)
    assert fd.alpha_dropout(x, 0.3, seed=2, out=x) is x and np.array_equal(x, whole)


# --- Gaussian dropout --------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_gaussian_dropout_noise_has_mean_1_and_std_sqrt_p_over_q(p):
    y = fd.gaussian_dropout(np.ones(100_000), p, seed=8)
    assert abs(y.std() - np.sqrt(p / (1 - p))) < 0.02
    assert abs(y.mean() - 1.0) < 0.02


def test_gaussian_dropout_is_x_times_the_float32_noise_in_x_dtype(backend):
    x = RNG.standard_normal((33, 17)).astype(np.float32)
    noise = fd.gaussian_dropout(np.ones(x.shape, np.float32), 0.4, seed=6)
    assert np.array_equal(fd.gaussian_dropout(x, 0.4, seed=6), x * noise)
    words = _core.stream_words(fd.functional.stream_key(6), 0, (x.size + 1) // 2)
    z = _numpy_backend.standard_normals(words)[:x.size]
    assert z.dtype == np.float32
    assert np.array_equal(noise.ravel(), 1 + np.float32(np.sqrt(0.4 / 0.6)) * z)
    # one precision for every dtype: float64 data gets the same float32 noise, widened exactly
    assert np.array_equal(fd.gaussian_dropout(np.ones(x.size), 0.4, seed=6), noise.ravel().astype(np.float64))
    half = fd.gaussian_dropout(np.ones(x.size, np.float16), 0.4, seed=6)
    assert np.array_equal(half, noise.ravel().astype(np.float16))


def test_gaussian_dropout_grad_uses_the_forward_noise_whatever_grad_dtype_or_layout(backend):
    x = RNG.standard_normal((40, 30)).astype(np.float16)
    noise = fd.gaussian_dropout(np.ones(x.shape, np.float16), 0.3, seed=9, offset=5)
    g = RNG.standard_normal((30, 40)).T                    # float64, Fortran order
    got = fd.gaussian_dropout_grad(g, 0.3, seed=9, offset=5, dtype=np.float16)
    assert got.dtype == np.float64 and np.array_equal(got, g * noise.astype(np.float64))
    assert np.array_equal(fd.gaussian_dropout_grad(x, 0.3, seed=9, offset=5), x * noise)


def test_gaussian_dropout_offset_and_layout():
    x = RNG.standard_normal((40, 50))
    whole = fd.gaussian_dropout(x, 0.3, seed=2)
    assert np.array_equal(fd.gaussian_dropout(x.ravel()[700:1900], 0.3, seed=2, offset=700),
                          whole.ravel()[700:1900])
    fortran = np.asfortranarray(x)
    assert np.array_equal(fd.gaussian_dropout(fortran, 0.3, seed=2), whole)
    out = np.empty((50, 40)).T
    assert fd.gaussian_dropout(x, 0.3, seed=2, out=out) is out and np.array_equal(out, whole)


def test_gaussian_dropout_crosses_the_pass_boundary(backend):
    n = _numpy_backend._WORDS_PER_PASS + 1000
    whole = fd.gaussian_dropout(np.ones(n), 0.5, seed=1)
    tail = fd.gaussian_dropout(np.ones(2000), 0.5, seed=1, offset=n - 2000)
    assert np.array_equal(whole[-2000:], tail)


# --- DropBlock ----------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.05, 0.1, 0.2])
def test_dropblock_dropped_area_near_p(p):
    y = fd.dropblock2d(np.ones((64, 16, 32, 32), np.float32), p, 5, seed=12)
    dropped = np.mean(y == 0)
    # overlapping blocks drop slightly less than p (about 3% less at p = 0.1)
    assert p * 0.85 <= dropped <= p * 1.02
    assert abs(y.mean(dtype=np.float64) - 1.0) < 1e-6     # rescaled by the actual kept fraction


def test_dropblock_drops_squares():
    block = 4
    for seed in range(200):
        keep = family.dropblock_mask((1, 1, 16, 16), 0.05, block, seed=seed)
        rows, cols = np.nonzero(~keep[0, 0])
        if rows.size:
            break
    assert rows.size
    # the first map with any drop: every dropped pixel lies in a fully dropped 4 x 4 square
    dropped = ~keep[0, 0]
    for r, c in zip(rows, cols):
        assert any(dropped[r0:r0 + block, c0:c0 + block].all()
                   for r0 in range(max(0, r - block + 1), min(r, 16 - block) + 1)
                   for c0 in range(max(0, c - block + 1), min(c, 16 - block) + 1))


def test_dropblock_formats_edges_and_scale():
    x = RNG.standard_normal((2, 3, 9, 11)).astype(np.float32)
    y = fd.dropblock2d(x, 0.3, 3, seed=1)
    last = fd.dropblock2d(np.moveaxis(x, 1, -1), 0.3, 3, seed=1, data_format="channels_last")
    assert np.array_equal(np.moveaxis(last, -1, 1), y)
    keep = family.dropblock_mask(x.shape, 0.3, 3, seed=1)
    assert np.array_equal(y, np.where(keep, x * np.float32(keep.size / keep.sum()), np.float32(0)))
    assert not fd.dropblock2d(x, 1.0, 3, seed=1).any()
    assert np.array_equal(fd.dropblock2d(x, 0.0, 3, seed=1), x)
    big = fd.dropblock2d(x, 0.5, 50, seed=1)      # block clipped to the 9 x 9 that fits
    assert big.shape == x.shape and big.dtype == np.float32


# --- Concrete dropout ------------------------------------------------------------------------------

def test_concrete_dropout_gradients_match_finite_differences(backend):
    """float64 data; the noise is float32, so logit steps are float32-exact (2**-8) and the
    tolerance covers w's float32 rounding (~1e-7 relative per element) over the step."""
    x = RNG.standard_normal((40, 60))
    g = RNG.standard_normal(x.shape)
    logit, h = float(np.float32(np.log(0.3 / 0.7))), 2.0 ** -8

    def loss(z, lg):
        return np.sum(g * fd.concrete_dropout(z, lg, temperature=0.5, seed=3))

    gx, glogit = fd.concrete_dropout_grad(x, g, logit, temperature=0.5, seed=3)
    num_logit = (loss(x, logit + h) - loss(x, logit - h)) / (2 * h)
    assert abs(glogit - num_logit) < 2e-3 * abs(num_logit)
    assert np.array_equal(gx, g * fd.concrete_dropout(np.ones_like(x), logit, temperature=0.5, seed=3))
    e = 1e-3 * RNG.standard_normal(x.shape)            # y is linear in x: the difference is exact up to rounding
    assert abs((loss(x + e, logit) - loss(x - e, logit)) / 2 - np.sum(gx * e)) < 1e-12


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_concrete_rate_gradient_is_the_exact_sum_of_its_terms(dtype, backend):
    """d/dlogit = sum of (g * x) * s, s = w (p - drop inv_t), against float64 math on the same u."""
    n, logit, t = 50_000, -1.25, 0.3
    x = RNG.standard_normal(n).astype(dtype)
    g = RNG.standard_normal(n).astype(dtype)
    words = _core.stream_words(fd.functional.stream_key(6), 11, n)
    u = ((words >> np.uint64(41)).astype(np.float64) + 0.5) / 2.0 ** 23
    inv_t = float(np.float32(1 / t))
    drop = 1 / (1 + np.exp(-(logit + np.log(u) - np.log1p(-u)) * inv_t))
    p = 1 / (1 + np.exp(-logit))
    exact = np.sum(g.astype(np.float64) * x * (1 - drop) / (1 - p) * (p - drop * inv_t))
    gx, gl = fd.concrete_dropout_grad(x, g, logit, temperature=t, seed=6, offset=11)
    assert gx.dtype == dtype
    assert abs(gl - exact) < 1e-5 * np.sum(np.abs(g.astype(np.float64) * x) / (1 - p) * (p + inv_t))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concrete_dropout_at_low_temperature_drops_a_fraction_p(dtype):
    p = 0.3
    w = fd.concrete_dropout(np.ones(100_000, dtype), np.log(p / (1 - p)), temperature=0.01, seed=5)
    dropped = w < 0.5 / (1 - p)
    assert abs(dropped.mean() - p) < 0.01
    assert abs(w.mean() - 1.0) < 0.02


def test_concrete_noise_is_float32_for_every_dtype(backend):
    """float64 data multiply by the float32 w widened exactly; float16 data by w rounded to half."""
    logit = float(np.float32(np.log(0.2 / 0.8)))
    w32 = fd.concrete_dropout(np.ones(6400, np.float32), logit, temperature=0.5, seed=3)
    assert np.array_equal(fd.concrete_dropout(np.ones(6400), logit, temperature=0.5, seed=3), w32.astype(np.float64))
    x16 = RNG.standard_normal(6400).astype(np.float16)
    assert np.array_equal(fd.concrete_dropout(x16, logit, temperature=0.5, seed=3), x16 * w32.astype(np.float16))
    g = RNG.standard_normal(6400)
    gx, _ = fd.concrete_dropout_grad(x16, g, logit, temperature=0.5, seed=3)     # grad's dtype, float64 here
    assert gx.dtype == np.float64 and np.array_equal(gx, g * w32.astype(np.float64))


def test_concrete_chunks_are_slices_of_one_call(backend):
    x = RNG.standard_normal(10_000).astype(np.float32)
    g = RNG.standard_normal(10_000).astype(np.float32)
    whole = fd.concrete_dropout(x, 0.3, seed=8, offset=5)
    gx, _ = fd.concrete_dropout_grad(x, g, 0.3, seed=8, offset=5)
    for i, j in ((0, 1), (1000, 1001), (1019, 5000), (3000, 10_000)):
        assert np.array_equal(fd.concrete_dropout(x[i:j], 0.3, seed=8, offset=5 + i), whole[i:j])
        assert np.array_equal(fd.concrete_dropout_grad(x[i:j], g[i:j], 0.3, seed=8, offset=5 + i)[0], gx[i:j])


def test_concrete_strided_and_out_arguments(backend):
    x = RNG.standard_normal((60, 80)).astype(np.float32)
    want = fd.concrete_dropout(np.ascontiguousarray(x.T), -0.5, seed=2)
    assert np.array_equal(fd.concrete_dropout(x.T, -0.5, seed=2), want)
    out = np.empty((80, 60), np.float32)
    assert fd.concrete_dropout(x.T, -0.5, seed=2, out=out) is out and np.array_equal(out, want)
    gx, gl = fd.concrete_dropout_grad(x.T, x.T, -0.5, seed=2)
    gx_c, gl_c = fd.concrete_dropout_grad(np.ascontiguousarray(x.T), np.ascontiguousarray(x.T), -0.5, seed=2)
    assert np.array_equal(gx, gx_c) and gl == gl_c


def test_concrete_regularization_value_and_gradients():
    weights = [RNG.standard_normal((3, 4)), RNG.standard_normal(4)]
    logit, dim = 0.4, 12
    p = 1 / (1 + np.exp(-logit))
    value, d_logit, d_w = fd.concrete_regularization(logit, dim, weights, weight_regularizer=1e-2,
                                                     dropout_regularizer=1e-3)
    squares = sum(np.sum(w ** 2) for w in weights)
    want = 1e-2 * squares / (1 - p) + 1e-3 * dim * (p * np.log(p) + (1 - p) * np.log(1 - p))
    assert abs(value - want) < 1e-12
    def penalty(lg, ws):
        return fd.concrete_regularization(lg, dim, ws, weight_regularizer=1e-2, dropout_regularizer=1e-3)[0]
    eps = 1e-6
    assert abs(d_logit - (penalty(logit + eps, weights) - penalty(logit - eps, weights)) / (2 * eps)) < 1e-8
    bump = np.zeros_like(weights[0])
    bump[1, 2] = eps
    up, down = penalty(logit, [weights[0] + bump, weights[1]]), penalty(logit, [weights[0] - bump, weights[1]])
    numeric = (up - down) / (2 * eps)
    assert abs(d_w[0][1, 2] - numeric) < 1e-8
    np.testing.assert_allclose(d_w[0], 2e-2 * weights[0] / (1 - p))



REG_WEIGHTS = [np.arange(6.0).reshape(2, 3) / 7, np.float32([0.5, -1.25])]


@pytest.mark.parametrize("args, kwargs, value, d_logit", [
    ((0.0, 10), {}, -6.344482009681085e-05, 2.9349489795918367e-06),
    ((0.4, 12), dict(weight_regularizer=1e-2, dropout_regularizer=1e-3), 0.06505130127638017, 0.04493754532028081),
    ((-50.0, 3), {}, 2.9349489795918367e-06, -2.8874639895477075e-25),
    ((50.0, 3), {}, 1.5216846200610782e+16, 1.5216846200610782e+16),       # the largest logit: q = 1.9e-22, finite
    ((np.float32(-2.5), np.int64(7)), dict(weight_regularizer=0, dropout_regularizer=0.5),
     -0.9398731452098049, -0.6134075197696965),
])
def test_concrete_regularization_valid_calls_keep_their_values(args, kwargs, value, d_logit):
    """The values of the unchecked implementation (bit for bit), the weights' dtypes kept."""
    got, got_logit, d_w = fd.concrete_regularization(*args, REG_WEIGHTS, **kwargs)
    assert (got, got_logit) == (value, d_logit)
    q = fd.concrete_rate(-float(args[0]))
    for g, w in zip(d_w, REG_WEIGHTS):
        assert g.dtype == w.dtype and np.array_equal(g, 2.0 * float(kwargs.get("weight_regularizer", 1e-6)) / q * w)


def test_concrete_regularization_reads_a_generator_of_weights_once():
    want = fd.concrete_regularization(0.3, 5, REG_WEIGHTS)
    got = fd.concrete_regularization(0.3, 5, (w for w in REG_WEIGHTS))
    assert got[:2] == want[:2] and len(got[2]) == 2 and all(np.array_equal(a, b) for a, b in zip(got[2], want[2]))


LOGIT = r"logit must be a real number in \[-50, 50\] \(drop rate sigmoid\(logit\)\), got "
FLOATS = "float16, bfloat16, float32 or float64"


@pytest.mark.parametrize("args, kwargs, exc, msg", [
    (("1.5", 10), {}, TypeError, LOGIT + r"str '1.5'$"),
    ((True, 10), {}, TypeError, LOGIT + r"bool True$"),
    ((1 + 0j, 10), {}, TypeError, LOGIT + r"complex \(1\+0j\)$"),
    ((float("nan"), 10), {}, ValueError, LOGIT + r"nan$"),
    ((float("inf"), 10), {}, ValueError, LOGIT + r"inf$"),
    ((1000.0, 3, [np.ones(2)]), {}, ValueError, LOGIT + r"1000.0$"),         # was ZeroDivisionError: q == 0.0
    ((50.5, 3), {}, ValueError, LOGIT + r"50.5$"),
    ((0.0, 2.7), {}, TypeError, r"input_dim must be an integer >= 1, got float 2.7$"),
    ((0.0, True), {}, TypeError, r"input_dim must be an integer >= 1, got bool True$"),
    ((0.0, "3"), {}, TypeError, r"input_dim must be an integer >= 1, got str '3'$"),
    ((0.0, -5), {}, ValueError, r"input_dim must be an integer >= 1, got -5$"),
    ((0.0, 0), {}, ValueError, r"input_dim must be an integer >= 1, got 0$"),
    ((0.0, 3), dict(weight_regularizer=-1.0), ValueError, r"weight_regularizer must be >= 0.0, got -1.0$"),
    ((0.0, 3), dict(weight_regularizer=True), TypeError,
     r"weight_regularizer must be a finite real number >= 0.0, got bool True$"),
    ((0.0, 3), dict(weight_regularizer=float("nan")), ValueError,
     r"weight_regularizer must be a finite real number, got nan$"),
    ((0.0, 3), dict(dropout_regularizer=-1e-5), ValueError, r"dropout_regularizer must be >= 0.0, got -1e-05$"),
    ((0.0, 3), dict(dropout_regularizer=float("inf")), ValueError,
     r"dropout_regularizer must be a finite real number, got inf$"),
    ((0.0, 3), dict(dropout_regularizer="1e-5"), TypeError,
     r"dropout_regularizer must be a finite real number >= 0.0, got str '1e-5'$"),
    ((0.0, 3, [np.ones(2, complex)]), {}, TypeError, rf"weights\[0\] must have dtype {FLOATS}, got dtype complex128$"),
    ((0.0, 3, [np.ones(2), np.ones(2, bool)]), {}, TypeError,
     rf"weights\[1\] must have dtype {FLOATS}, got dtype bool$"),
    ((0.0, 3, [np.array([1.0], object)]), {}, TypeError, rf"weights\[0\] must have dtype {FLOATS}, got dtype object$"),
    ((0.0, 3, [np.arange(3)]), {}, TypeError, rf"weights\[0\] must have dtype {FLOATS}, got dtype int64$"),
    ((0.0, 3, np.ones(3)), {}, TypeError,
     r"weights must be a sequence of float arrays \(\[w\] for a single array\), got ndarray array\(\[1., 1., 1.\]\)$"),
    ((0.0, 3, None), {}, TypeError,
     r"weights must be a sequence of float arrays \(\[w\] for a single array\), got NoneType None$"),
])
def test_concrete_regularization_refuses_bad_arguments(args, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        fd.concrete_regularization(*args, **kwargs)


@pytest.mark.parametrize("logit, rate", [(0.0, 0.5), (2.0, 0.8807970779778823), (-800.0, 0.0), (800.0, 1.0),
                                         (float("inf"), 1.0), (-float("inf"), 0.0),
                                         (np.float32(-1.5), 0.18242552380635632), (3, 0.9525741268224334)])
def test_concrete_rate_values(logit, rate):
    got = fd.concrete_rate(logit)
    assert type(got) is float and got == rate


@pytest.mark.parametrize("logit, exc, msg", [
    (True, TypeError, r"logit must be a real number, got bool True$"),
    (np.bool_(False), TypeError, r"logit must be a real number, got bool (np.)?False(_)?$"),
    ("0.5", TypeError, r"logit must be a real number, got str '0.5'$"),
    (1j, TypeError, r"logit must be a real number, got complex 1j$"),
    (np.array(0.5), TypeError, r"logit must be a real number, got ndarray array\(0.5\)$"),
    (float("nan"), ValueError, r"logit must be a real number, got nan$"),
])
def test_concrete_rate_refuses_bad_logits(logit, exc, msg):
    with pytest.raises(exc, match=msg):
        fd.concrete_rate(logit)


# --- every twin: both backends, bit for bit -------------------------------------------------------

TWINS = {
    "spatial": lambda x: fd.spatial_dropout(x, 0.3, seed=1),
    "variational": lambda x: fd.variational_dropout(x, 0.3, seed=1),
    "drop_path": lambda x: fd.drop_path(x, 0.3, seed=1),
    "alpha": lambda x: fd.alpha_dropout(x, 0.3, seed=1),
    "alpha_grad": lambda x: fd.alpha_dropout_grad(x, 0.3, seed=1),
    "gaussian": lambda x: fd.gaussian_dropout(x, 0.3, seed=1),
    "dropblock": lambda x: fd.dropblock2d(x, 0.3, 3, seed=1),
    "concrete": lambda x: fd.concrete_dropout(x, -1.0, seed=1),
    "concrete_grad": lambda x: fd.concrete_dropout_grad(x, x[::-1].copy(), -1.0, seed=1)[0],
    "classic": lambda x: fd.classic_dropout(x, 0.3, seed=1),
}


@pytest.mark.parametrize("name", sorted(TWINS))
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_twins_bit_identical_on_both_backends(name, dtype):
    x = RNG.standard_normal((3, 5, 17, 19)).astype(dtype)
    results = on_every_backend(lambda: TWINS[name](x))
    for y in results:
        assert y.dtype == dtype and y.shape == x.shape
        assert np.array_equal(y, results[0])


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, exc, msg", [
    (lambda: fd.spatial_dropout(np.ones((2, 3)), 0.5), ValueError,
     r"spatial_dropout expects input of rank >= 3 \(N, C, \*spatial\), got shape \(2, 3\)"),
    (lambda: fd.spatial_dropout(np.ones((2, 3, 4)), 0.5, data_format="NCHW"), ValueError,
     r"data_format must be 'channels_first' or 'channels_last', got 'NCHW'"),
    (lambda: fd.variational_dropout(np.ones((2, 3)), 0.5, time_axis=2), ValueError,
     r"variational_dropout expects input of rank >= 2 with time_axis=2 inside it, got shape \(2, 3\)"),
    (lambda: fd.variational_dropout(np.ones((2, 3)), 0.5, time_axis=1.0), TypeError,
     r"time_axis must be an int, got 1.0"),
    (lambda: fd.drop_path(np.float64(1.0), 0.5), ValueError, r"drop_path expects input of rank >= 1"),
    (lambda: fd.alpha_dropout(np.ones(3), 1.2), ValueError, r"p must be a real number in \[0, 1\], got 1.2"),
    (lambda: fd.alpha_dropout(np.ones(3), 0.2, offset=-1), ValueError,
     r"offset must be an integer in \[0, 2\*\*62\), got -1"),
    (lambda: fd.gaussian_dropout(np.ones(3), 1.0), ValueError,
     r"p must be in \[0, 1\) for Gaussian dropout \(the noise variance p/\(1-p\) is infinite at 1\), got 1.0"),
    (lambda: fd.dropblock2d(np.ones((2, 3, 4)), 0.1, 3), ValueError,
     r"dropblock2d expects input of rank 4 \(N, C, H, W\) or \(N, H, W, C\), got shape \(2, 3, 4\)"),
    (lambda: fd.dropblock2d(np.ones((1, 1, 4, 4)), 0.1, 0), ValueError, r"block_size must be an int >= 1, got 0"),
    (lambda: fd.dropblock2d(np.ones((1, 1, 4, 4)), 0.1, 2.5), TypeError, r"block_size must be an int >= 1, got 2.5"),
    (lambda: fd.concrete_dropout(np.ones(3), 0.0, temperature=0), ValueError,
     r"temperature must be a finite real number > 0, got 0"),
    (lambda: fd.concrete_dropout_grad(np.ones(3), np.ones(4), 0.0), ValueError,
     r"grad must have x's shape \(3,\), got \(4,\)"),
    (lambda: fd.concrete_dropout(np.ones(3), 50.5), ValueError,
     r"logit must be a real number in \[-50, 50\] \(drop rate sigmoid\(logit\)\), got 50.5"),
    (lambda: fd.classic_dropout(np.ones(3), np.array([0.5])), TypeError,
     r"p must be a real number in \[0, 1\], got ndarray array\(\[0.5\]\)"),
    (lambda: fd.gaussian_dropout(np.arange(3), 0.5), TypeError,
     r"x must have dtype float16, float32 or float64, got dtype int64"),
])
def test_errors_name_the_argument_and_value(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


@pytest.mark.parametrize("fn", [fd.alpha_dropout, fd.alpha_dropout_grad])
def test_alpha_edges_eval_beats_p_one(backend, fn):
    x = np.arange(1.0, 7.0)
    assert np.array_equal(fn(x, 1.0, seed=1, training=False), x)      # eval is the identity, whatever p
    assert np.array_equal(fn(x, 1.0, seed=1), np.zeros(6))
    assert np.array_equal(fn(x, 0.0, seed=1), x)


def test_dropblock_keeps_its_precision_at_small_rates(backend):
    # gamma = p / b**2 ~ 4e-6 here, far below 1/65536: corners must still be drawn at that rate.
    p, shape = 0.0002, (100, 64, 32, 32)
    keep = family.dropblock_mask(shape, p, 7, seed=3)
    keep = keep[0] if isinstance(keep, tuple) else keep
    blocks_expected = p * np.prod(shape) / 49                      # ~27 blocks of 49 cells
    dropped = 1.0 - keep.mean()
    assert abs(dropped - p) < 4.5 * p / np.sqrt(blocks_expected) + 0.1 * p


# --- offset: every variant that draws from the stream takes it, as fd.dropout does ---------
def _data(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("offset", [0, 5, 4093])
def test_shared_mask_variants_take_an_offset_into_their_noise_shape(backend, offset):
    x = _data((6, 4, 3, 5))
    cases = [(fd.spatial_dropout(x, 0.4, seed=3, offset=offset), (6, 4, 1, 1)),
             (fd.variational_dropout(x, 0.4, seed=3, offset=offset), (6, 1, 3, 5)),
             (fd.drop_path(x, 0.4, seed=3, offset=offset), (6, 1, 1, 1))]
    for got, noise in cases:
        assert np.array_equal(got, fd.dropout(x, 0.4, seed=3, noise_shape=noise, offset=offset))
    # Samples i..j of a batch are the batch's noise-shape elements from i * (its row size) on.
    i, j = 2, 5
    assert np.array_equal(fd.spatial_dropout(x[i:j], 0.4, seed=3, offset=offset + i * 4),
                          fd.spatial_dropout(x, 0.4, seed=3, offset=offset)[i:j])
    assert np.array_equal(fd.drop_path(x[i:j], 0.4, seed=3, offset=offset + i),
                          fd.drop_path(x, 0.4, seed=3, offset=offset)[i:j])


@pytest.mark.parametrize("offset", [0, 7, 1 << 40])
def test_element_and_word_variants_follow_the_slice_identity_with_an_offset(backend, offset):
    x = _data(3000)
    i, j = 1000, 2500
    for f in (lambda v, o: fd.classic_dropout(v, 0.3, seed=4, offset=o),
              lambda v, o: fd.concrete_dropout(v, -1.0, seed=4, offset=o),
              lambda v, o: fd.concrete_dropout_grad(v, np.ones_like(v), -1.0, seed=4, offset=o)[0]):
        assert np.array_equal(f(x[i:j], offset + i), f(x, offset)[i:j])
        assert not np.array_equal(f(x, offset), f(x, offset + 1))


def test_dropblock_corners_follow_the_offset_sample_by_sample(backend):
    shape, b = (5, 3, 9, 9), 3
    per_sample = 3 * (9 - b + 1) ** 2                 # corner words of one sample
    whole = family.dropblock_mask(shape, 0.3, b, seed=6, offset=11)
    part = family.dropblock_mask((2,) + shape[1:], 0.3, b, seed=6, offset=11 + 2 * per_sample)
    assert np.array_equal(part, whole[2:4])
    x = _data(shape)
    assert np.array_equal(fd.dropblock2d(x, 0.3, b, seed=6, offset=11),
                          fd.apply_mask(x, whole, 0.0) * np.float32(whole.size / whole.sum()))
