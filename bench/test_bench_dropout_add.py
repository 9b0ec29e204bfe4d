"""dropout_add against its floor np.add(x, residual, out=y) and the unfused composition
(pytest-benchmark; the cases are those of bench/dropout_add_ratios.py).

Run: ``pytest bench/test_bench_dropout_add.py --benchmark-group-by=param:case``.  The target
(<= 1.15x np.add at 16M, one thread) and its measurements are in bench/NOTES.md.
"""
import pytest

from dropout_add_ratios import SIZES, implementations

CASES = [f"{dtype}-{size}" for dtype in ("float32", "float64") for size in SIZES]


@pytest.fixture(scope="module", params=CASES)
def case(request):
    dtype, size = request.param.split("-")
    return implementations(dtype, SIZES[size])


@pytest.mark.parametrize("name", ["np.add", "dropout_add", "dropout_add+bias", "unfused"])
def test_dropout_add(benchmark, case, name):
    benchmark(case[name])
