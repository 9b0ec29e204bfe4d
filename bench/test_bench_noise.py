"""Gaussian dropout against its floor and NumPy's own noise (pytest-benchmark), float32, one thread.

Run: ``pytest bench/test_bench_noise.py --benchmark-group-by=param --benchmark-columns=median``.
The floor is ``np.multiply(x, c)`` for the calls that allocate their output and
``np.multiply(x, c, out=y)`` for the ones given ``out=``; bench/noise_ratios.py prints the
ratios from interleaved rounds in one process (the figures in bench/NOTES.md).
"""
import numpy as np
import pytest

import fastdrop

P, SEED = 0.3, 0
SIGMA = np.float32(np.sqrt(P / (1 - P)))
SIZES = {"8M": 1 << 23, "16M": 1 << 24}


@pytest.fixture(scope="module", params=list(SIZES))
def arrays(request):
    x = np.random.default_rng(0).standard_normal(SIZES[request.param], dtype=np.float32)
    return x, np.empty_like(x)


def test_gaussian_floor(benchmark, arrays):
    benchmark(np.multiply, arrays[0], np.float32(1.7))


def test_gaussian_floor_out(benchmark, arrays):
    x, out = arrays
    benchmark(np.multiply, x, np.float32(1.7), out=out)


def test_gaussian_dropout(benchmark, arrays):
    benchmark(fastdrop.gaussian_dropout, arrays[0], P, seed=SEED)


def test_gaussian_dropout_out(benchmark, arrays):
    x, out = arrays
    benchmark(fastdrop.gaussian_dropout, x, P, seed=SEED, out=out)


def test_gaussian_dropout_grad(benchmark, arrays):
    """The backward regenerates the forward's noise from the seed: the same kernel on the gradient."""
    benchmark(fastdrop.gaussian_dropout_grad, arrays[0], P, seed=SEED)


def test_gaussian_naive_numpy(benchmark, arrays):
    x = arrays[0]
    rng = np.random.default_rng(SEED)
    benchmark(lambda: x * (1 + SIGMA * rng.standard_normal(x.shape, dtype=np.float32)))
