"""The noise of the block streams (_noise.h and its twins in _numpy_backend): the Gaussian's
(standard_normals: two Box-Muller normals per word) log, cos and sin against float64 libm and
the distribution of its normals; Concrete dropout's ln, exp and relaxed Bernoulli weights.
Bit-exactness across backends, ISA variants and thread counts is tests/test_isa.py's (and the
rate gradient's, here).
"""
import numpy as np
import pytest
from scipy import stats

import fastdrop as fd
from fastdrop import _core, _numpy_backend

# Bounds measured on every input (README "Gaussian noise"), with a little room.
LOG_REL_BOUND = 2.5e-7          # |ln_approx(u) - ln(u)| / |ln u|, u the float32 value used (measured 2.08e-7)
LOG_ABS_BOUND = 1.0e-6          # against ln of the exact (2k + 1) / 2**31, u's rounding included (9.53e-7)
COS_ABS_BOUND = 1.0e-7          # measured 9.45e-8 on all 2**26 angles
N = 1 << 22                     # normals for the distribution tests


def _unit(k):
    """The float32 u of 30-bit integers k (int64), as the transform forms it: exact, then one rounding."""
    return ((2 * k + 1).astype(np.float32) * np.float32(2.0 ** -31)).astype(np.float64)


def test_log_approximation_accuracy():
    rng = np.random.default_rng(0)
    k = np.concatenate([np.arange(1 << 16), (1 << 30) - 1 - np.arange(1 << 16),
                        rng.integers(0, 1 << 30, 1 << 21)]).astype(np.int64)
    got = _numpy_backend.log_unit((k << 2).astype(np.uint32).view(np.int32)).astype(np.float64)
    u = _unit(k)
    exact = np.log(u)
    nonzero = exact != 0                      # u rounds to 1 for the top 2**6 values: ln is 0, exactly
    assert np.all(got[~nonzero] == 0)
    assert np.max(np.abs(got - exact)[nonzero] / np.abs(exact[nonzero])) < LOG_REL_BOUND
    assert np.max(np.abs(got - np.log((2 * k + 1) / 2.0 ** 31))) < LOG_ABS_BOUND


def test_cos_and_sin_approximation_accuracy():
    g = np.arange(0, 1 << 23, 7, dtype=np.int64)        # a dense sample of every octant's fraction
    worst = 0.0
    for octant in range(8):
        lo = ((octant << 29) | (g << 6)).astype(np.uint32).view(np.int32)
        cos, sin = (a.astype(np.float64) for a in _numpy_backend.cos_sin_angle(lo))
        theta = 2 * np.pi * (octant + (2 * g + 1) / 2.0 ** 24) / 8
        worst = max(worst, np.max(np.abs(cos - np.cos(theta))), np.max(np.abs(sin - np.sin(theta))))
        assert np.all(np.abs(cos) <= 1) and np.all(np.abs(sin) <= 1)
    assert worst < COS_ABS_BOUND


@pytest.fixture(scope="module")
def normals():
    words = _core.stream_words(fd.functional.stream_key(1), 0, N // 2)
    return _numpy_backend.standard_normals(words).astype(np.float64)


def test_normals_mean_variance_and_ks(normals):
    z = normals
    assert np.isfinite(z).all()
    # mean ~ N(0, 1/N), variance ~ N(1, 2/N): 5 standard errors
    assert abs(z.mean()) < 5 / np.sqrt(N)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / N)
    assert stats.kstest(z, "norm").pvalue > 1e-3          # significance level 0.001


@pytest.mark.parametrize("sigma", [4.0, 5.0])
def test_normal_tails(normals, sigma):
    expected = 2 * stats.norm.sf(sigma)                   # 6.3e-5 and 5.7e-7
    count = np.count_nonzero(np.abs(normals) > sigma)
    sd = np.sqrt(N * expected * (1 - expected))
    assert abs(count - N * expected) < 5 * sd + 1          # binomial, 5 standard deviations


def test_max_attainable_normal():
    """|z| <= sqrt(-2 ln 2**-31) = 6.56: the smallest u, at the angle 0 (cos 1, sin 0)."""
    bound = np.sqrt(62 * np.log(2))
    word = np.array([0], dtype=np.uint64)                 # hi = 0: u = 2**-31; lo = 0: octant 0, f = 2**-24
    z = _numpy_backend.standard_normals(word)
    assert abs(z[0] - bound) < 1e-5 and abs(z[1]) < 1e-6
    assert np.abs(_numpy_backend.standard_normals(
        np.random.default_rng(3).integers(0, 2 ** 63, 1 << 20, dtype=np.uint64))).max() <= bound + 1e-5


def test_the_two_normals_of_a_word_are_uncorrelated(normals):
    """Box-Muller's cos and sin normals are independent: their correlation within 5 standard errors of 0."""
    assert abs(np.corrcoef(normals[0::2], normals[1::2])[0, 1]) < 5 / np.sqrt(N // 2)
    assert stats.kstest(normals[1::2], "norm").pvalue > 1e-3


@pytest.mark.parametrize("offset", [123, 124])
def test_kernel_normals_are_the_twins(backend, offset):
    """Element e is normal e of the stream: word e // 2, cos where e is even, sin where odd."""
    key = fd.functional.stream_key(4)
    z = _numpy_backend.standard_normals(_core.stream_words(key, offset // 2, 2502))[offset % 2:offset % 2 + 5001]
    got = fd.gaussian_dropout(np.ones(5001, np.float32), 0.5, seed=4, offset=offset)
    assert np.array_equal(got, np.float32(1) + z)         # sigma = 1 at p = 0.5


# --- Concrete dropout's noise (_noise.h's nz_log, nz_exp, nz_concrete; their twins) -----------------
LN_REL_BOUND = 2.5e-7           # measured 2.27e-7 on every mantissa at exponents -24, -1, 0, 1, 23
LN_ABS_BOUND = 1.1e-6           # measured 1.03e-6 (|ln x| up to 16.6: a few float32 ulps)
EXP_REL_BOUND = 1.2e-7          # measured 1.03e-7 on a dense sample of [-86, 86] and every |a| in [0.5, 1)
W_REL_BOUND = 8e-6              # w against float64 from the same u, ln and exp (float32 a: see below)
# w and s against float64 where inv_t is a whole number n <= 128 (exp(a) = y**n): measured at most
# 2.5e-7, 3.9e-7, 8.8e-7, 1.8e-6, 3.4e-6, 1.6e-5 and 2.2e-5 relative at n = 1, 2, 5, 10, 20, 100, 128
POWER_REL_BOUND_PER_N = 2e-7    # times n + 1
MANTISSAS = np.arange(0x3F3504F3, 0x3FB504F3, dtype=np.int32).view(np.float32)    # [sqrt(2)/2, sqrt(2))


@pytest.mark.parametrize("exponent", [-24, -1, 0, 1, 23])
def test_ln_accuracy_on_every_mantissa(exponent):
    x = (MANTISSAS.astype(np.float64) * 2.0 ** exponent).astype(np.float32)      # exact: a power-of-two scale
    got = _numpy_backend.log_positive(x).astype(np.float64)
    exact = np.log(x.astype(np.float64))
    nonzero = exact != 0
    assert np.all(got[~nonzero] == 0)                      # ln 1 is 0 exactly
    assert np.max(np.abs(got - exact)[nonzero] / np.abs(exact[nonzero])) < LN_REL_BOUND
    assert np.max(np.abs(got - exact)) < LN_ABS_BOUND


def test_ln_of_every_v_the_transform_forms():
    """v = odd / (2**24 - odd): the whole range [1 / (2**24 - 1), 2**24 - 1], sampled densely."""
    odd = np.concatenate([np.arange(1, 1 << 17, 2), np.arange((1 << 24) - (1 << 17) + 1, 1 << 24, 2),
                          np.arange(1, 1 << 24, 97 * 2)]).astype(np.int32)
    v = odd.astype(np.float32) / ((1 << 24) - odd).astype(np.float32)
    got = _numpy_backend.log_positive(v).astype(np.float64)
    exact = np.log(v.astype(np.float64))
    nonzero = exact != 0
    assert np.max(np.abs(got - exact)[nonzero] / np.abs(exact[nonzero])) < LN_REL_BOUND
    assert np.max(np.abs(got - exact)) < LN_ABS_BOUND


def test_exp_accuracy():
    unit = np.arange(0x3F000000, 0x3F800000, dtype=np.int32).view(np.float32)       # every float32 in [0.5, 1)
    a = np.concatenate([np.linspace(-86, 86, 1 << 23, dtype=np.float32), unit, -unit, np.float32([-86, 0, 86])])
    got = _numpy_backend.exp_reduced(a).astype(np.float64)
    exact = np.exp(a.astype(np.float64))
    assert np.max(np.abs(got - exact) / exact) < EXP_REL_BOUND
    assert got[-3] > np.finfo(np.float32).tiny and np.isfinite(got[-1])    # both ends normal and finite


def _exact_concrete(words, logit, inv_t):
    """(w, s) in float64 from the same u, logit and inv_t (float32 values), libm's log and exp."""
    u = ((words >> np.uint64(41)).astype(np.float64) + 0.5) / 2.0 ** 23
    a = (logit + np.log(u) - np.log1p(-u)) * inv_t
    with np.errstate(over="ignore"):
        keep, drop = 1 / (1 + np.exp(a)), 1 / (1 + np.exp(-a))
    inverse_keep = 1 + np.exp(logit)
    w = keep * inverse_keep
    return w, w * (1 / inverse_keep * np.exp(logit) - drop * inv_t)


@pytest.mark.parametrize("logit, temperature", [(-1.0, 0.09), (2.0, 0.3), (-10.0, 1 / 1.5), (-2.2, 2.0)])
def test_concrete_weights_against_float64(logit, temperature):
    """w and the rate factor s against float64 math on the same u, where 1 / t is not a whole
    number (ln and exp).  a = (logit + ln v) / t is float32: its rounding (|a| * 6e-8) and ln v's
    (1e-6 / t) set the relative error of w, about |a| * 6e-8 + 1e-6 / t: 8e-6 at 1 / t = 11."""
    words = _core.stream_words(fd.functional.stream_key(3), 0, 1 << 20)
    logit32, inv_t32 = float(np.float32(logit)), float(np.float32(1 / temperature))
    assert not _numpy_backend.concrete_power(inv_t32)
    w, s = _numpy_backend.concrete_weights(words, logit32, inv_t32, rate_factor=True)
    w_exact, s_exact = _exact_concrete(words, logit32, inv_t32)
    assert np.all(np.isfinite(w)) and np.all(w >= 0)
    relevant = w_exact > 1e-30 * w_exact.max()
    assert np.max(np.abs(w - w_exact)[relevant] / w_exact[relevant]) < W_REL_BOUND
    assert np.max(np.abs(s - s_exact)) < W_REL_BOUND * np.abs(s_exact).max()


@pytest.mark.parametrize("inv_t", [1.0, 2.0, 5.0, 10.0, 20.0, 100.0, 128.0])
def test_concrete_weights_as_a_power_against_float64(inv_t):
    """Where inv_t is a whole number n <= 128 (temperature 0.1 gives 10), exp(a) = (v e**logit)**n
    by squarings and multiplications: w and s against float64 math on the same u, over stream
    words and a sample of the whole range of u, within 2e-7 (n + 1) relative."""
    words = np.concatenate([_core.stream_words(fd.functional.stream_key(3), 0, 1 << 19),
                            np.arange(0, 1 << 23, 97, dtype=np.uint64) << np.uint64(41)])
    assert _numpy_backend.concrete_power(np.float32(inv_t)) == inv_t
    bound = POWER_REL_BOUND_PER_N * (inv_t + 1)
    for logit in (-10.0, -2.2, -1.0, 0.0, 2.0, 10.0):
        logit = float(np.float32(logit))                   # the float32 logit the kernels take
        w, s = _numpy_backend.concrete_weights(words, logit, inv_t, rate_factor=True)
        w_exact, s_exact = _exact_concrete(words, logit, inv_t)
        assert np.all(np.isfinite(w)) and np.all(w >= 0) and np.all(np.isfinite(s))
        relevant = w_exact > 1e-30 * w_exact.max()
        assert np.max(np.abs(w - w_exact)[relevant] / w_exact[relevant]) < bound, logit
        assert np.max(np.abs(s - s_exact)) < bound * np.abs(s_exact).max(), logit


@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.1, 0.01, 1 / 128])
def test_concrete_power_results_are_never_subnormal(backend, temperature):
    """y**n saturates at 2**+-124 as a does at +-86, so no w, d/dx or rate term is subnormal
    and a thread's flush-to-zero mode cannot change a bit (an OpenMP worker keeps its own)."""
    x = np.ones(1 << 16, np.float32)
    tiny = np.finfo(np.float32).tiny
    for logit in (-50.0, -20.0, 0.0, 20.0, 50.0):
        words = _core.stream_words(fd.functional.stream_key(6), 0, x.size)
        w, s = _numpy_backend.concrete_weights(words, logit, np.float32(1 / temperature), rate_factor=True)
        for values in (w, s, fd.concrete_dropout(x, logit, temperature=temperature, seed=6)):
            assert not np.any((values != 0) & (np.abs(values) < tiny)), (logit, temperature)


def test_concrete_power_is_whole_numbers_from_1_to_128():
    power = _numpy_backend.concrete_power
    assert [power(np.float32(t)) for t in (1.0, 2.0, 10.0, 128.0)] == [1, 2, 10, 128]
    assert [power(np.float32(t)) for t in (0.5, 1.5, 129.0, 1 / 0.3, 3e38, 0.0)] == [0] * 6
    assert power(np.float32(1 / 0.1)) == 10 and power(np.float32(1 / 0.01)) == 100


def test_concrete_constants_are_libm_free_and_exact_enough():
    for logit in (-50.0, -3.0, -0.5, 0.0, 1.25, 20.0, 50.0):
        _, inverse_keep, p = _numpy_backend.concrete_constants(np.float32(logit))
        assert inverse_keep.dtype == np.float32 and p.dtype == np.float32
        assert abs(float(inverse_keep) - (1 + np.exp(logit))) <= 2e-7 * (1 + np.exp(logit))
        assert abs(float(p) - 1 / (1 + np.exp(-logit))) <= 3e-7 * max(1 / (1 + np.exp(-logit)), 1e-30)


def _relaxed_cdf(d, logit, temperature):
    """P(drop <= d) of the exact relaxed Bernoulli: drop <= d iff ln(u / (1 - u)) <= t logit(d) - logit."""
    return 1 / (1 + np.exp(-(temperature * (np.log(d) - np.log1p(-d)) - logit)))


@pytest.mark.parametrize("logit, temperature", [(-1.0, 0.5), (0.5, 1.0), (-2.0, 2.0)])
def test_concrete_drop_is_the_relaxed_bernoulli(logit, temperature, backend):
    """drop = 1 - w / inverse_keep of 2**21 elements: Kolmogorov-Smirnov against the exact CDF
    (significance 0.001) and the mean against the integral of the relaxed drop over u."""
    n = 1 << 21
    w = fd.concrete_dropout(np.ones(n), logit, temperature=temperature, seed=7)
    _, inverse_keep, _ = _numpy_backend.concrete_constants(np.float32(logit))
    drop = 1 - w / float(inverse_keep)
    interior = (drop > 1e-6) & (drop < 1 - 1e-6)           # 1 - w / K loses the ends to rounding
    low, high = _relaxed_cdf(1e-6, logit, temperature), _relaxed_cdf(1 - 1e-6, logit, temperature)

    def interior_cdf(d):
        return (_relaxed_cdf(d, logit, temperature) - low) / (high - low)
    assert stats.kstest(drop[interior], interior_cdf).pvalue > 1e-3
    u = (np.arange(1 << 20) + 0.5) / (1 << 20)            # midpoint rule: error far below the tolerance
    mean = np.mean(1 / (1 + np.exp(-(logit + np.log(u) - np.log1p(-u)) / temperature)))
    sd = np.std(drop)
    assert abs(drop.mean() - mean) < 5 * sd / np.sqrt(n)     # 5 standard errors


def test_concrete_saturated_ends_are_exact(backend):
    x = np.random.default_rng(1).standard_normal(20_000).astype(np.float32)
    # a = 10 (40 + ln v) >= 234 > 86 everywhere: keep is 0 exactly, so is every output
    assert np.array_equal(fd.concrete_dropout(x, 40.0, temperature=0.1, seed=2), np.zeros_like(x))
    gx, gl = fd.concrete_dropout_grad(x, np.ones_like(x), 40.0, temperature=0.1, seed=2)
    assert np.array_equal(gx, np.zeros_like(x)) and gl == 0.0
    # a = 100 (-50 + ln v) < -86 everywhere: drop is 0 exactly, keep 1, 1 + exp(-50) is 1 in float32
    assert np.array_equal(fd.concrete_dropout(x, -50.0, temperature=0.01, seed=2), x)
    *_, p = _numpy_backend.concrete_constants(np.float32(-50.0))
    gx, gl = fd.concrete_dropout_grad(x, np.ones_like(x), -50.0, temperature=0.01, seed=2)
    assert np.array_equal(gx, np.ones_like(x))
    assert gl == pytest.approx(float(np.sum(x.astype(np.float64))) * float(p), rel=1e-12)
    # a temperature far below 1 / float32 max: a hard threshold, w in {0, inverse_keep}, no inf or nan
    w = fd.concrete_dropout(np.ones(20_000, np.float32), 0.0, temperature=1e-300, seed=2)
    assert set(np.unique(w).tolist()) == {0.0, 2.0}
    gx, gl = fd.concrete_dropout_grad(x, np.ones_like(x), 0.0, temperature=1e-300, seed=2)
    assert np.all(np.isfinite(gx)) and np.isfinite(gl)


@pytest.mark.parametrize("temperature", [0.3, 0.1, 1 / 128, 1 / 129])
def test_concrete_kernels_are_the_twins(backend, temperature):
    words = _core.stream_words(fd.functional.stream_key(4), 123, 5001)
    w = _numpy_backend.concrete_weights(words, -1.0, np.float32(1 / temperature))
    got = fd.concrete_dropout(np.ones(5001, np.float32), -1.0, temperature=temperature, seed=4, offset=123)
    assert np.array_equal(got, w)


def test_concrete_rate_gradient_is_independent_of_threads_and_backend():
    x = np.random.default_rng(2).standard_normal(700_001).astype(np.float32)
    g = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    results = []
    for name in (["cython"] if fd._backend.compiled_available() else []) + ["numpy"]:
        with fd.use_backend(name):
            for threads in (1, 2, 3):
                with fd.use_num_threads(threads):
                    gx, gl = fd.concrete_dropout_grad(x, g, -1.5, temperature=0.2, seed=5, offset=333)
                results.append((gx.tobytes(), gl))
    assert all(r == results[0] for r in results)


def test_concrete_kernel_argument_errors_are_the_same_on_both_backends():
    x = np.ones(10, np.float32)
    cases = [
        (lambda k: k.concrete_flat(1, 0, 1e39, 1.0, x, np.empty_like(x)), ValueError,
         r"logit must be in \[-3.40282e\+38, 3.40282e\+38\] \(a finite float32\), got 1e\+39"),
        (lambda k: k.concrete_flat(1, 0, 0.0, -1.0, x, np.empty_like(x)), ValueError,
         r"inv_t must be in \[0, 3.40282e\+38\] \(a finite float32\), got -1.0"),
        (lambda k: k.concrete_flat(1, 0, "0", 1.0, x, np.empty_like(x)), TypeError, r"logit must be a real number"),
        (lambda k: k.concrete_grad_flat(1, 0, 0.0, 1.0, x, x, np.empty_like(x), np.empty(2)), ValueError,
         r"partials must have one element per sum block of 1024 elements, 1, got 2"),
        (lambda k: k.concrete_grad_flat(1, 1020, 0.0, 1.0, x, x, np.empty_like(x), np.empty(2, np.float32)),
         TypeError, r"partials must be an array of dtype float64, got float32"),
        (lambda k: k.concrete_grad_flat(1, 0, 0.0, 1.0, np.ones(9), x, np.empty_like(x), np.empty(1)), ValueError,
         r"x must have grad's shape \(10,\), got \(9,\)"),
        (lambda k: k.concrete_grad_flat(1, 0, 0.0, 1.0, x, x.astype(np.int32), np.empty_like(x), np.empty(1)),
         TypeError, r"grad must be a float16, float32 or float64 array in native byte order, got int32"),
        (lambda k: k.concrete_grad_flat(1, 0, 0.0, 1.0, x, x, np.empty(10), np.empty(1)), TypeError,
         r"out must be an array of grad's dtype float32, got float64"),
    ]
    for name in (["cython"] if fd._backend.compiled_available() else []) + ["numpy"]:
        with fd.use_backend(name):
            kernels = fd._backend.kernels()
            for call, exc, msg in cases:
                with pytest.raises(exc, match=msg):
                    call(kernels)
