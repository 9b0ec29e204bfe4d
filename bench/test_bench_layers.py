"""Each layer's forward + backward against the NumPy code one would write without fastdrop.

    python -m pytest bench/test_bench_layers.py --benchmark-group-by=param:case

groups the fastdrop layer and its naive twin of each case side by side.  The naive
versions draw their noise with ``numpy.random.Generator`` (float32 where possible) and
keep the full mask or noise for backward, as hand-written layers usually do.

The ``overhead`` cases put each layer's forward, and its backward, next to the functional
call it wraps (``fastdrop.bench.layer_pairs``: 10K float32 elements, where a layer's Python
costs show; the target is 1.2x), grouped by ``--benchmark-group-by=group``.
"""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import fastdrop as fd
from fastdrop.bench import layer_pairs

IMAGES = (64, 128, 32, 32)      # a conv feature map batch, float32 (32 MiB)
DENSE = (256, 4096)             # a fully connected activation batch
SEQUENCE = (64, 50, 512)        # (batch, time, features) for recurrent inputs
ALPHA = -1.7580993408473766


class Naive:
    """forward stores what backward needs, like a typical hand-written NumPy layer."""

    def __init__(self, forward):
        self.rng = np.random.default_rng(0)
        self.forward = forward

    def __call__(self, x):
        y, self.backward = self.forward(self.rng, x)
        return y


def naive_dropout(p, mask_shape=None):
    def forward(rng, x):
        shape = x.shape if mask_shape is None else mask_shape(x.shape)
        mask = (rng.random(shape, dtype=np.float32) >= p) * np.float32(1 / (1 - p))
        return x * mask, lambda g: g * mask
    return forward


def naive_alpha(p):
    a = ((1 - p) * (1 + p * ALPHA ** 2)) ** -0.5
    b = -a * ALPHA * p

    def forward(rng, x):
        keep = rng.random(x.shape, dtype=np.float32) >= p
        y = np.where(keep, x * np.float32(a) + np.float32(b), np.float32(a * ALPHA + b))
        return y, lambda g: np.where(keep, g * np.float32(a), np.float32(0))
    return forward


def naive_gaussian(p):
    def forward(rng, x):
        noise = rng.normal(1.0, np.sqrt(p / (1 - p)), x.shape).astype(np.float32)
        return x * noise, lambda g: g * noise
    return forward


def naive_concrete(p, temperature=0.1):
    def forward(rng, x):
        u = rng.random(x.shape, dtype=np.float32)
        eps = np.float32(1e-7)
        z = (np.log(p + eps) - np.log(1 - p + eps) + np.log(u + eps) - np.log(1 - u + eps)) / temperature
        keep = (1 - 1 / (1 + np.exp(-z))) / (1 - p)
        return x * keep, lambda g: g * keep
    return forward


def naive_adaptive(p):
    """Dropout, then the mean |x| the rate adapts to (summed in float64), as AdaptiveDropout does."""
    dropout = naive_dropout(p)

    def forward(rng, x):
        y, backward = dropout(rng, x)
        np.abs(x).mean(dtype=np.float64)
        return y, backward
    return forward


def naive_dropblock(p, block):
    def forward(rng, x):
        n, c, h, w = x.shape
        gamma = p * h * w / (block ** 2 * (h - block + 1) * (w - block + 1))
        corners = np.zeros(x.shape, dtype=np.float32)
        corners[:, :, :h - block + 1, :w - block + 1] = rng.random((n, c, h - block + 1, w - block + 1)) < gamma
        padded = np.pad(corners, ((0, 0), (0, 0), (block - 1, 0), (block - 1, 0)))
        mask = 1 - sliding_window_view(padded, (block, block), axis=(2, 3)).max(axis=(4, 5))
        mask *= mask.size / max(mask.sum(), 1.0)
        return x * mask, lambda g: g * mask
    return forward


# case -> (fastdrop layer factory, naive forward, input shape)
CASES = {
    "Dropout": (lambda: fd.Dropout(0.5, seed=0), naive_dropout(0.5), DENSE),
    "Dropout-images": (lambda: fd.Dropout(0.5, seed=0), naive_dropout(0.5), IMAGES),
    "SpatialDropout2D": (lambda: fd.SpatialDropout2D(0.3, seed=0),
                         naive_dropout(0.3, lambda s: s[:2] + (1, 1)), IMAGES),
    "AlphaDropout": (lambda: fd.AlphaDropout(0.1, seed=0), naive_alpha(0.1), IMAGES),
    "GaussianDropout": (lambda: fd.GaussianDropout(0.3, seed=0), naive_gaussian(0.3), IMAGES),
    "VariationalDropout": (lambda: fd.VariationalDropout(0.3, seed=0),
                           naive_dropout(0.3, lambda s: (s[0], 1, s[2])), SEQUENCE),
    "ConcreteDropout": (lambda: fd.ConcreteDropout(0.1, seed=0), naive_concrete(0.1), DENSE),
    "AdaptiveDropout": (lambda: fd.AdaptiveDropout(0.5, seed=0, adapt_rate=0.0), naive_adaptive(0.5), DENSE),
    "AdaptiveDropout-images": (lambda: fd.AdaptiveDropout(0.5, seed=0, adapt_rate=0.0), naive_adaptive(0.5), IMAGES),
    "DropBlock2D": (lambda: fd.DropBlock2D(0.1, 7, seed=0), naive_dropblock(0.1, 7), IMAGES),
    "DropPath": (lambda: fd.DropPath(0.2, seed=0),
                 naive_dropout(0.2, lambda s: s[:1] + (1,) * (len(s) - 1)), IMAGES),
}


def run(benchmark, case, layer):
    shape = CASES[case][2]
    x = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
    g = np.ones(shape, np.float32)
    benchmark.group = case
    benchmark.extra_info["shape"] = shape
    benchmark.extra_info["backend"] = fd.backend()

    def step():
        y = layer(x)
        return y, layer.backward(g)
    y, gx = benchmark(step)
    assert y.shape == gx.shape == shape and y.dtype == np.float32


@pytest.mark.parametrize("case", sorted(CASES))
def test_fastdrop(benchmark, case):
    run(benchmark, case, CASES[case][0]())


@pytest.mark.parametrize("case", sorted(CASES))
def test_naive_numpy(benchmark, case):
    run(benchmark, case, Naive(CASES[case][1]))


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("case", sorted(layer_pairs()))
@pytest.mark.parametrize("how", ["layer", "functional"])
def test_overhead(benchmark, case, direction, how):
    layer, inputs, forward, backward = layer_pairs()[case]
    grad = np.ones_like(inputs[0])
    benchmark.group = f"overhead-{case}-{direction}"
    if how == "layer":
        layer.forward(*inputs)              # backward pairs with the last forward
        call = (lambda: layer.forward(*inputs)) if direction == "forward" else (lambda: layer.backward(grad))
    else:
        call = (lambda: forward(*inputs)) if direction == "forward" else (lambda: (backward or forward)(grad))
    result = call()
    assert (result[0] if isinstance(result, tuple) else result).shape == inputs[0].shape   # DropoutAdd: 3 grads
    benchmark(call)
