"""The cases of ``fastdrop bench --torch`` as pytest-benchmark suites.

    python -m pytest bench/test_bench_torch.py --benchmark-group-by=group

puts torch.nn.Dropout and fastdrop.torch.Dropout side by side for the forward and the
forward+backward at 1M and 16M float32 and bfloat16 elements, and the MLP training step (784-2048-2048-10,
batch 256, SGD) with torch's dropout, fastdrop's and none; single thread.  The module is
skipped without PyTorch.  Nothing here asserts a time.
"""
import pytest

torch = pytest.importorskip("torch", reason="fastdrop.torch's benchmarks need PyTorch")

import fastdrop  # noqa: E402
from fastdrop.bench import TORCH_DTYPES, TORCH_SIZES, _label, mlp_steps, torch_dropout_calls  # noqa: E402

fastdrop.set_num_threads(1)         # the targets are single-thread figures
torch.set_num_threads(1)


@pytest.fixture(scope="module", params=[(d, n) for d in TORCH_DTYPES for n in TORCH_SIZES],
                ids=lambda case: f"{case[0]}-{_label(case[1])}")
def calls(request):
    dtype, n = request.param
    return f"{dtype}-{_label(n)}", torch_dropout_calls(n, torch, dtype=dtype)


@pytest.fixture(scope="module")
def steps():
    return mlp_steps(torch)


@pytest.mark.parametrize("direction", ["forward", "forward+backward"])
@pytest.mark.parametrize("implementation", ["torch", "fastdrop"])
def test_dropout(benchmark, calls, direction, implementation):
    case, funcs = calls
    benchmark.group = f"{direction}-{case}"
    benchmark(funcs[direction][implementation])


@pytest.mark.parametrize("dropout", ["torch", "fastdrop", "none"])
def test_mlp_step(benchmark, steps, dropout):
    benchmark.group = "mlp-step"
    benchmark(steps[dropout])
