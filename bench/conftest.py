"""Cases of the pytest-benchmark suites: the callables of ``fastdrop bench`` on fixed arrays.

Each implementation is its own test function and the case (dtype, size) is the parameter,
so ``pytest bench/ --benchmark-group-by=param`` puts the implementations of one case in one
table.  Speed lives here only: nothing in bench/ asserts a time.
"""
import numpy as np
import pytest

import fastdrop
from fastdrop.bench import SPATIAL_SHAPE, implementations, _torch

SIZES = {"64K": 1 << 16, "1M": 1 << 20, "16M": 1 << 24}
CASES = [f"{dtype}-{size}" for dtype in ("float32", "float64", "float16") for size in SIZES]
TORCH = _torch()
fastdrop.set_num_threads(1)         # the targets are single-thread figures
if TORCH is not None:
    TORCH.set_num_threads(1)


@pytest.fixture(scope="module", params=CASES)
def case(request):
    """{implementation name: callable} for one flat forward case."""
    dtype, size = request.param.split("-")
    x = np.random.default_rng(0).standard_normal(SIZES[size]).astype(dtype)
    return implementations(x, np.empty_like(x), torch=TORCH)


@pytest.fixture(scope="module")
def spatial():
    x = np.random.default_rng(0).standard_normal(SPATIAL_SHAPE, dtype=np.float32)
    return x, np.empty_like(x)


PER_FEATURE_SHAPE = (16384, 1024)      # 16M float32, one rate per feature (AdaptiveDropout(per_unit=True))


@pytest.fixture(scope="module")
def per_feature():
    x = np.random.default_rng(0).standard_normal(PER_FEATURE_SHAPE, dtype=np.float32)
    return x, np.empty_like(x), np.linspace(0.1, 0.6, PER_FEATURE_SHAPE[1])
