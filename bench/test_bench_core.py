"""Forward and backward dropout against the floor, NumPy and PyTorch (pytest-benchmark).

Run: ``pytest bench/ --benchmark-group-by=param`` (add ``--benchmark-columns=median`` for a
short table).  The targets these numbers are held to are in bench/NOTES.md and the README.
"""
import numpy as np
import pytest

import fastdrop
from conftest import TORCH
from fastdrop.bench import P, SEED, SPATIAL_SHAPE


def test_floor(benchmark, case):
    benchmark(case["floor"])


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
