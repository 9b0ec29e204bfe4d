"""The Gaussian noise of the block streams (_noise.h and its twin _numpy_backend.standard_normals):
accuracy of the log and cos approximations against float64 libm, and the distribution of the
normals.  Bit-exactness across backends, ISA variants and thread counts is tests/test_isa.py's.
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


def test_cos_approximation_accuracy():
    g = np.arange(0, 1 << 23, 7, dtype=np.int64)        # a dense sample of every octant's fraction
    worst = 0.0
    for octant in range(8):
        lo = ((octant << 29) | (g << 6)).astype(np.uint32).view(np.int32)
        got = _numpy_backend.cos_angle(lo).astype(np.float64)
        exact = np.cos(2 * np.pi * (octant + (2 * g + 1) / 2.0 ** 24) / 8)
        worst = max(worst, np.max(np.abs(got - exact)))
        assert np.all(np.abs(got) <= 1)
    assert worst < COS_ABS_BOUND


@pytest.fixture(scope="module")
def normals():
    return _numpy_backend.standard_normals(_core.stream_words(fd.functional.stream_key(1), 0, N)).astype(np.float64)


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
    """|z| <= sqrt(-2 ln 2**-31) = 6.56: the smallest u, at the angle 0 (cos 1)."""
    bound = np.sqrt(62 * np.log(2))
    word = np.array([0], dtype=np.uint64)                 # hi = 0: u = 2**-31; lo = 0: octant 0, f = 2**-24
    z = _numpy_backend.standard_normals(word)[0]
    assert abs(z - bound) < 1e-5
    assert np.abs(_numpy_backend.standard_normals(
        np.random.default_rng(3).integers(0, 2 ** 63, 1 << 20, dtype=np.uint64))).max() <= bound + 1e-5


def test_kernel_normals_are_the_twins(backend):
    key = fd.functional.stream_key(4)
    z = _numpy_backend.standard_normals(_core.stream_words(key, 123, 5001))
    got = fd.gaussian_dropout(np.ones(5001, np.float32), 0.5, seed=4, offset=123)
    assert np.array_equal(got, np.float32(1) + z)         # sigma = 1 at p = 0.5
