"""The cases of ``fastdrop bench --family`` as pytest-benchmark suites.

    python -m pytest bench/test_bench_family.py --benchmark-group-by=param:case

puts the floor, fastdrop and the naive NumPy formulation of each variant and pass side by
side (float32 ``FAMILY_SHAPE``, single thread), and each layer's forward + backward next to
its functional twin's at 10K elements.  Nothing here asserts a time.
"""
import numpy as np
import pytest

import fastdrop
from fastdrop.bench import FAMILY_SHAPE, FAMILY_TARGETS, family_calls, layer_pairs, naive_family

fastdrop.set_num_threads(1)
CASES = [f"{variant}-{direction}" for variant in FAMILY_TARGETS for direction in ("forward", "backward")]
X = np.random.default_rng(0).standard_normal(FAMILY_SHAPE, dtype=np.float32)


def _callables(case):
    variant, direction = case.rsplit("-", 1)
    x = X.reshape(FAMILY_SHAPE[0], FAMILY_SHAPE[1], -1) if variant == "variational_dropout" else X
    p = FAMILY_TARGETS[variant][0]
    which = 0 if direction == "forward" else 1
    forward, backward = naive_family(variant, x, p, np.random.default_rng(0))
    if which:
        forward()                  # backward applies the mask forward drew
    scale = np.float32(1 / (1 - p))
    return {"floor": lambda: np.multiply(x, scale), "fastdrop": family_calls(variant, x, p)[which],
            "naive": (forward, backward)[which]}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("implementation", ["floor", "fastdrop", "naive"])
def test_family(benchmark, case, implementation):
    benchmark.group = case
    benchmark(_callables(case)[implementation])


@pytest.mark.parametrize("case", sorted(layer_pairs()))
@pytest.mark.parametrize("how", ["layer", "functional"])
def test_layer_overhead(benchmark, case, how):
    layer, inputs, forward, backward = layer_pairs()[case]
    backward = backward or forward
    benchmark.group = f"layer-{case}"
    if how == "layer":
        benchmark(lambda: layer.backward(layer.forward(*inputs)))
    else:
        benchmark(lambda: backward(forward(*inputs)))
