"""Forward and backward dropout against the floors, NumPy and PyTorch (pytest-benchmark).

Run: ``pytest bench/ --benchmark-group-by=param`` (add ``--benchmark-columns=median`` for a
short table).  The targets these numbers are held to are in bench/NOTES.md and the README.
The two floors are ``np.multiply(x, c, out=y)`` and ``np.copyto(y, x)`` (no write-allocate
read beyond the cache, like fastdrop's streaming stores); the ``large`` cases (64M float32
and float64, 1.5 GiB in all) compare fastdrop with both, on one thread and on two.
"""
import concurrent.futures

import numpy as np
import pytest

import fastdrop
from conftest import TORCH
from fastdrop.bench import LARGE_DTYPES, LARGE_SIZE, P, SEED, SPATIAL_SHAPE, threaded_copy


def test_floor(benchmark, case):
    benchmark(case["floor"])


def test_copy_floor(benchmark, case):
    benchmark(case["copy"])


def test_fastdrop(benchmark, case):
    benchmark(case["fastdrop"])


def test_fastdrop_backward(benchmark, case):
    """The backward pass regenerates the mask from the seed: the same kernel on the gradient."""
    benchmark(case["fastdrop"])


def test_numpy_backend(benchmark, case):
    benchmark(case["numpy-backend"])


def test_naive_numpy(benchmark, case):
    benchmark(case["naive"])


@pytest.mark.skipif(TORCH is None, reason="torch is not installed (pip install torch==2.13.0)")
def test_torch(benchmark, case):
    benchmark(case["torch"])


@pytest.mark.parametrize("which", ["spatial"])
def test_spatial_floor(benchmark, spatial, which):
    x, out = spatial
    benchmark(np.multiply, x, np.float32(1 / (1 - P)), out=out)


@pytest.mark.parametrize("which", ["spatial"])
def test_spatial_fastdrop(benchmark, spatial, which):
    x, out = spatial
    benchmark(fastdrop.dropout, x, P, seed=SEED, noise_shape=SPATIAL_SHAPE[:2] + (1, 1), out=out)


@pytest.mark.parametrize("which", ["per-feature"])
def test_per_feature_floor(benchmark, per_feature, which):
    x, out, _ = per_feature
    benchmark(np.multiply, x, np.float32(1 / (1 - P)), out=out)


@pytest.mark.parametrize("which", ["per-feature"])
def test_per_feature_fastdrop(benchmark, per_feature, which):
    """One rate per feature: the fused kernel reads each row's thresholds and scales in place."""
    x, out, p = per_feature
    benchmark(fastdrop.dropout, x, p, seed=SEED, out=out)


@pytest.fixture(scope="module", params=[f"{dtype}-64M" for dtype in LARGE_DTYPES])
def large(request):
    x = np.random.default_rng(0).standard_normal(LARGE_SIZE).astype(request.param.split("-")[0])
    out = np.empty_like(x)
    out[...] = 0                     # touch every page before timing
    return x, out


@pytest.mark.parametrize("implementation", ["floor", "copy", "copy-2-threads", "fastdrop", "fastdrop-2-threads"])
def test_large(benchmark, large, implementation):
    """Beyond the last-level cache, out= preallocated: fastdrop (streaming stores) against
    np.multiply, np.copyto and a copy of one half per thread."""
    x, out = large
    scale = x.dtype.type(1 / (1 - P))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        def with_threads(n):
            def call():
                with fastdrop.use_num_threads(n):
                    fastdrop.dropout(x, P, seed=SEED, out=out)
            return call
        calls = {"floor": lambda: np.multiply(x, scale, out=out), "copy": lambda: np.copyto(out, x),
                 "copy-2-threads": lambda: threaded_copy(x, out, pool), "fastdrop": with_threads(1),
                 "fastdrop-2-threads": with_threads(2)}
        benchmark(calls[implementation])
