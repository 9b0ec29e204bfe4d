"""Peak memory of every public entry point and layer (issue 10, item 10).

NumPy reports its allocations to ``tracemalloc``, so the traced peak of a call is what it
allocated at most at once, its output included.  The rule: output + O(noise shape) +
O(p) + a fixed slack, i.e. ``out + 64 KiB + 2 x (mask the call may keep) + 2 x p.nbytes``,
where the mask is 0 for the fused paths (no mask at all) and a uint8 mask of the noise
shape for shared masks.  Variants that are not yet a compiled fused kernel are held to
their current factor instead, so they fail if they get worse (dropblock2d's keep mask,
DROPBLOCK_MASK).  One RSS check in a fresh
process confirms no native allocation hides from tracemalloc.
"""
import gc
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import fastdrop as fd
from fastdrop import _backend, _core, _numpy_backend
from fastdrop import layers as L

pytestmark = pytest.mark.adversarial

SLACK = 64 << 10
RNG = np.random.default_rng(0)
X2 = RNG.standard_normal((512, 2048), dtype=np.float32)           # 4 MiB inputs
X3 = RNG.standard_normal((32, 64, 512), dtype=np.float32)
X4 = RNG.standard_normal((16, 64, 32, 32), dtype=np.float32)
X5 = RNG.standard_normal((8, 16, 8, 32, 32), dtype=np.float32)
P_FEATURE = np.linspace(0.1, 0.6, 2048)                             # one rate per feature of X2
P_ROW = np.linspace(0.1, 0.6, 512)[:, None]
MASK = fd.dropout_mask(X2.shape, 0.3, seed=1)
PACKED = fd.dropout_mask(X2.shape, 0.3, seed=1, packed=True)

# alpha_dropout, gaussian_dropout and concrete_dropout (forward and backward, the rate
# gradient's partial sums being O(n / 1024)) are one fused pass (the floor); dropblock2d
# holds its keep mask, one byte per element, beside the output (DROPBLOCK_MASK).
DROPBLOCK_MASK = 1 / 4              # uint8 keep bytes per float32 input byte


@pytest.fixture
def pass_allowance(backend, monkeypatch):
    """Bytes a pass of the active backend may hold on top of the rule.  The NumPy twin works
    in passes of _BATCH_BLOCKS blocks, more than these inputs at its default; with passes of
    16 blocks (16 Ki elements) its temporaries must stay within 256 KiB, which shows that
    nothing is expanded to the input's size.  The compiled kernels allocate nothing."""
    if backend != "numpy":
        return 0
    monkeypatch.setattr(_numpy_backend, "_BATCH_BLOCKS", 16)
    return 256 << 10


def traced_peak(call):
    gc.collect()
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def floor_bound(out_bytes, mask_elements=0, p=None):
    return out_bytes + SLACK + 2 * mask_elements + 2 * (0 if p is None else np.asarray(p).nbytes)


def noise_elements(shape):
    return int(np.prod(shape))


# Inputs the fused kernels cannot take as they are (transposed, strided) go through them in
# pieces copied to and from C-contiguous temporaries of a fixed size (_core.PIECE_BYTES per
# operand: the output's piece, x's, a residual's or gradient's, per-element rates' and a
# bias's pieces, at most four at once).
PIECES = 4 * _core.PIECE_BYTES
X2_STRIDED = np.repeat(X2, 2, axis=1)[:, ::2]
XT, X3T, X4T = X2.T, np.ascontiguousarray(X3.T).T, np.ascontiguousarray(X4.T).T
TRANSPOSED = {
    "dropout": (lambda: fd.dropout(XT, 0.3, seed=1), XT),
    "dropout-strided-per-feature-p": (lambda: fd.dropout(X2_STRIDED, P_FEATURE, seed=1), X2),
    "dropout-noise-shape": (lambda: fd.dropout(XT, 0.3, seed=1, noise_shape=(1, None)), XT),
    "alpha_dropout": (lambda: fd.alpha_dropout(XT, 0.3, seed=1), XT),
    "alpha_dropout_grad": (lambda: fd.alpha_dropout_grad(XT, 0.3, seed=1), XT),
    "gaussian_dropout": (lambda: fd.gaussian_dropout(XT, 0.3, seed=1), XT),
    "gaussian_dropout_grad": (lambda: fd.gaussian_dropout_grad(XT, 0.3, seed=1), XT),
    "concrete_dropout": (lambda: fd.concrete_dropout(XT, -1.0, seed=1), XT),
    "concrete_dropout_grad": (lambda: fd.concrete_dropout_grad(XT, XT, -1.0, seed=1), XT),
    "spatial_dropout": (lambda: fd.spatial_dropout(X4T, 0.3, seed=1), X4T),
    "variational_dropout": (lambda: fd.variational_dropout(X3T, 0.3, seed=1), X3T),
    "drop_path": (lambda: fd.drop_path(X4T, 0.3, seed=1), X4T),
    "dropout_add": (lambda: fd.dropout_add(XT, XT, 0.3, bias=np.ones(XT.shape[-1], np.float32), seed=1), XT),
}

# name: (call, bound in bytes)
ENTRY_POINTS = {
    **{f"{name}-transposed": (call, floor_bound(x.nbytes, p=P_FEATURE if "per-feature" in name else None) + PIECES)
       for name, (call, x) in TRANSPOSED.items()},
    "dropout-scalar": (lambda: fd.dropout(X2, 0.3, seed=1), floor_bound(X2.nbytes)),
    "dropout-per-feature-p": (lambda: fd.dropout(X2, P_FEATURE, seed=1), floor_bound(X2.nbytes, p=P_FEATURE)),
    "dropout-per-row-p": (lambda: fd.dropout(X2, P_ROW, seed=1), floor_bound(X2.nbytes, p=P_ROW)),
    "dropout-noise-shape": (lambda: fd.dropout(X2, 0.3, seed=1, noise_shape=(None, 1)),
                            floor_bound(X2.nbytes, 512)),
    "dropout-noise-shape-p": (lambda: fd.dropout(X2, P_FEATURE, seed=1, noise_shape=(1, None)),
                              floor_bound(X2.nbytes, 2048, P_FEATURE)),
    "dropout_mask": (lambda: fd.dropout_mask(X2.shape, 0.3, seed=1), floor_bound(X2.size)),
    "dropout_mask-p": (lambda: fd.dropout_mask(X2.shape, P_FEATURE, seed=1), floor_bound(X2.size, p=P_FEATURE)),
    "dropout_mask-packed": (lambda: fd.dropout_mask(X2.shape, 0.3, seed=1, packed=True),
                            floor_bound(X2.size // 8, X2.size)),
    # apply_mask keeps a normalized or unpacked copy of the mask (1 byte per element)
    "apply_mask-bool": (lambda: fd.apply_mask(X2, MASK, 0.3), floor_bound(X2.nbytes, X2.size)),
    "apply_mask-packed": (lambda: fd.apply_mask(X2, PACKED, 0.3), floor_bound(X2.nbytes, X2.size)),
    "apply_mask-p": (lambda: fd.apply_mask(X2, MASK, P_FEATURE), floor_bound(X2.nbytes, X2.size, P_FEATURE)),
    "dropout_box-rows": (lambda: fd.dropout_box(X2, 0.3, seed=1, global_shape=(1024, 2048), origin=(100, 0)),
                         floor_bound(X2.nbytes)),
    "dropout_box-columns": (lambda: fd.dropout_box(X2, 0.3, seed=1, global_shape=(1024, 4096), origin=(100, 1000)),
                            floor_bound(X2.nbytes)),
    "dropout_box-p": (lambda: fd.dropout_box(X2, P_FEATURE, seed=1, global_shape=(1024, 2048), origin=(100, 0)),
                      floor_bound(X2.nbytes, p=P_FEATURE)),
    "dropout_box-p-columns": (lambda: fd.dropout_box(X2, P_FEATURE[:2048], seed=1, global_shape=(1024, 4096),
                                                     origin=(100, 1000)), floor_bound(X2.nbytes, p=P_FEATURE)),
    "dropout_mask_box": (lambda: fd.dropout_mask_box(X2.shape, 0.3, seed=1, global_shape=(1024, 4096), origin=(100, 1000)),
                         floor_bound(X2.size)),
    "alpha_dropout": (lambda: fd.alpha_dropout(X2, 0.3, seed=1), floor_bound(X2.nbytes)),
    "alpha_dropout_grad": (lambda: fd.alpha_dropout_grad(X2, 0.3, seed=1), floor_bound(X2.nbytes)),
    "gaussian_dropout": (lambda: fd.gaussian_dropout(X2, 0.3, seed=1), floor_bound(X2.nbytes)),
    "gaussian_dropout_grad": (lambda: fd.gaussian_dropout_grad(X2, 0.3, seed=1, dtype=np.float16),
                              floor_bound(X2.nbytes)),
    "spatial_dropout": (lambda: fd.spatial_dropout(X4, 0.3, seed=1), floor_bound(X4.nbytes, 16 * 64)),
    "variational_dropout": (lambda: fd.variational_dropout(X3, 0.3, seed=1), floor_bound(X3.nbytes, 32 * 512)),
    "drop_path": (lambda: fd.drop_path(X4, 0.3, seed=1), floor_bound(X4.nbytes, 16)),
    "dropblock2d": (lambda: fd.dropblock2d(X4, 0.1, 7, seed=1), floor_bound(X4.nbytes) + X4.size),
    "concrete_dropout": (lambda: fd.concrete_dropout(X2, -1.0, seed=1), floor_bound(X2.nbytes)),
    "concrete_dropout_grad": (lambda: fd.concrete_dropout_grad(X2, X2, -1.0, seed=1), floor_bound(X2.nbytes)),
    # classic dropout over x's own shape is the fused kernel with scale 1: no mask kept
    "classic_dropout": (lambda: fd.classic_dropout(X2, 0.3, seed=1), floor_bound(X2.nbytes)),
}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_point_peak(pass_allowance, name):
    call, bound = ENTRY_POINTS[name]
    call()                                  # warm caches (rates, imports) outside the measurement
    peak = traced_peak(call)
    bound += pass_allowance
    assert peak <= bound, f"{name}: peak {peak / X2.nbytes:.3f} x 4 MiB > bound {bound / X2.nbytes:.3f}"


# name: (make layer, input, forward bound, backward bound) in multiples of the input's bytes
# (the floor: 1 + slack, plus the noise mask where one is shared).
def _floor(x, mask_elements=0, p=None):
    return floor_bound(x.nbytes, mask_elements, p) / x.nbytes


MEAN_ABS_BUFFER = 1.25 * L.MEAN_ABS_CHUNK * 8 / X2.nbytes          # a float64 slice of |x|
LAYERS = {
    "Dropout": (lambda: L.Dropout(0.3, seed=1), X2, _floor(X2), _floor(X2)),
    "Dropout-classic": (lambda: L.Dropout(0.3, seed=1, mode="classic"), X2, _floor(X2), _floor(X2)),
    "SpatialDropout1D": (lambda: L.SpatialDropout1D(0.3, seed=1), X3, _floor(X3, 32 * 64), _floor(X3, 32 * 64)),
    "SpatialDropout2D": (lambda: L.SpatialDropout2D(0.3, seed=1), X4, _floor(X4, 16 * 64), _floor(X4, 16 * 64)),
    "SpatialDropout3D": (lambda: L.SpatialDropout3D(0.3, seed=1), X5, _floor(X5, 8 * 16), _floor(X5, 8 * 16)),
    "AlphaDropout": (lambda: L.AlphaDropout(0.3, seed=1), X2, _floor(X2), _floor(X2)),
    "GaussianDropout": (lambda: L.GaussianDropout(0.3, seed=1), X2, _floor(X2), _floor(X2)),
    "VariationalDropout": (lambda: L.VariationalDropout(0.3, seed=1), X3, _floor(X3, 32 * 512),
                           _floor(X3, 32 * 512)),
    "ConcreteDropout": (lambda: L.ConcreteDropout(0.2, seed=1), X2, _floor(X2), _floor(X2)),
    # one rate: mean |x| from the mask's kernel pass (a partial sum per 1024 elements);
    # per unit: each feature's, summed in float64 slices of L.MEAN_ABS_CHUNK elements (a fixed buffer)
    "AdaptiveDropout": (lambda: L.AdaptiveDropout(0.3, seed=1), X2, _floor(X2), _floor(X2)),
    # a transposed input: the general path sums |x| in pieces of whole sum blocks
    "AdaptiveDropout-transposed": (lambda: L.AdaptiveDropout(0.3, seed=1), XT, _floor(X2) + PIECES / X2.nbytes,
                                   _floor(X2) + PIECES / X2.nbytes),
    "AdaptiveDropout-per-unit": (lambda: L.AdaptiveDropout(0.3, seed=1, per_unit=True), X2,
                                 _floor(X2, p=P_FEATURE) + MEAN_ABS_BUFFER, _floor(X2, p=P_FEATURE)),
    "DropBlock2D": (lambda: L.DropBlock2D(0.1, 7, seed=1), X4, _floor(X4) + DROPBLOCK_MASK,
                    _floor(X4) + DROPBLOCK_MASK),
    "DropPath": (lambda: L.DropPath(0.3, seed=1), X4, _floor(X4, 16), _floor(X4, 16)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_forward_and_backward_peak(pass_allowance, name):
    make, x, forward_bound, backward_bound = LAYERS[name]
    layer = make()
    layer.backward(layer.forward(x))        # warm up (per-unit rates take their shape here)
    forward = (traced_peak(lambda: layer.forward(x)) - pass_allowance) / x.nbytes
    backward = (traced_peak(lambda: layer.backward(x)) - pass_allowance) / x.nbytes
    assert forward <= forward_bound, f"{name}.forward: {forward:.3f} > {forward_bound:.3f}"
    assert backward <= backward_bound, f"{name}.backward: {backward:.3f} > {backward_bound:.3f}"


_RSS_CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import fastdrop as fd
    fd.set_num_threads(1)
    x = np.ones((16384, 1024), dtype=np.float32)       # 64 MiB, one rate per feature
    p = np.linspace(0.1, 0.6, 1024)
    fd.dropout(x[:64], p, seed=1)                      # load and warm everything on a small slice
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    y = fd.dropout(x, p, seed=1)
    y[::1024] = 1.0                                    # the output is touched: its pages count
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) * 1024)
""")


@pytest.mark.skipif(not _backend.compiled_available(), reason="the compiled extension is not built")
def test_per_feature_rates_rss_is_the_output_alone():
    r = subprocess.run([sys.executable, "-c", _RSS_CHILD], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "FASTDROP_BACKEND": "cython", "FASTDROP_NUM_THREADS": ""})
    assert r.returncode == 0, r.stderr
    grown = int(r.stdout.split()[-1])
    output = 16384 * 1024 * 4
    assert grown <= output + (8 << 20), f"max RSS grew by {grown / output:.2f} x the 64 MiB output"
