"""Inputs and outputs the fused kernels cannot take as they are (transposed and strided views,
byte-swapped and misaligned arrays, Fortran-ordered outputs) go through them in pieces
(``_core.flat_pass``, ``_core.dropout_shared``): the same bits as the C-contiguous call, with
pieces that end inside rows and inside the stream's sum blocks, on both backends; memory
is bounded in tests/test_memory.py."""
import numpy as np
import pytest

import fastdrop as fd

SHAPE = (3, 70, 1100)           # 231K elements: several pieces of 128 KiB, and rows of 1100 across pieces
BASE = np.random.default_rng(21).standard_normal(SHAPE).astype(np.float32)
RESIDUAL = np.random.default_rng(22).standard_normal(SHAPE).astype(np.float32)
P_FEATURE = np.linspace(0.05, 0.8, SHAPE[-1])
BIAS = np.linspace(-1, 1, SHAPE[-1]).astype(np.float32)


def _views(a):
    """name: an array equal to a that no kernel takes as it is."""
    misaligned = np.frombuffer(b"\0" + a.tobytes(), dtype=a.dtype, offset=1).reshape(a.shape)
    return {"transposed": np.ascontiguousarray(a.T).T, "strided": np.repeat(a, 2, axis=-1)[..., ::2],
            "reversed": np.ascontiguousarray(a[::-1])[::-1], "byte-swapped": a.astype(a.dtype.newbyteorder(">")),
            "misaligned": misaligned}


CALLS = {
    "dropout": lambda x: fd.dropout(x, 0.3, seed=5, offset=1001),
    "dropout-per-feature": lambda x: fd.dropout(x, P_FEATURE, seed=5, offset=1001),
    "dropout-noise-shape": lambda x: fd.dropout(x, 0.3, seed=5, noise_shape=(3, 1, None)),
    "dropout-noise-shape-per-feature": lambda x: fd.dropout(x, P_FEATURE, seed=5, noise_shape=(1, 70, None)),
    "classic_dropout": lambda x: fd.classic_dropout(x, 0.3, seed=5),
    "alpha_dropout": lambda x: fd.alpha_dropout(x, 0.3, seed=5, offset=7),
    "alpha_dropout_grad": lambda x: fd.alpha_dropout_grad(x, 0.3, seed=5, offset=7),
    "gaussian_dropout": lambda x: fd.gaussian_dropout(x, 0.3, seed=5, offset=3),
    "gaussian_dropout_grad": lambda x: fd.gaussian_dropout_grad(x, 0.3, seed=5, offset=3),
    "concrete_dropout": lambda x: fd.concrete_dropout(x, -1.0, seed=5, offset=999),
    "concrete_dropout_grad": lambda x: fd.concrete_dropout_grad(x, RESIDUAL, -1.0, seed=5, offset=999),
    "concrete_dropout_grad-of-grad": lambda g: fd.concrete_dropout_grad(BASE, g, -1.0, seed=5, offset=999),
    "variational_dropout": lambda x: fd.variational_dropout(x, 0.3, seed=5),
    "spatial_dropout": lambda x: fd.spatial_dropout(x, 0.3, seed=5),
    "spatial_dropout-channels-last": lambda x: fd.spatial_dropout(x, 0.3, seed=5, data_format="channels_last"),
    "drop_path": lambda x: fd.drop_path(x, 0.3, seed=5),
    "dropout_add": lambda x: fd.dropout_add(x, RESIDUAL, 0.3, seed=5, offset=1023),
    "dropout_add-bias-per-feature": lambda x: fd.dropout_add(x, RESIDUAL, P_FEATURE, bias=BIAS, seed=5),
    "dropout_add-residual": lambda r: fd.dropout_add(BASE, r, 0.3, bias=BIAS, seed=5),
}


def _bits(result):
    if isinstance(result, tuple):
        return tuple(_bits(r) for r in result)
    if isinstance(result, float):
        return np.float64(result).view(np.uint64)
    return np.ascontiguousarray(result).view(f"u{result.dtype.itemsize}").tobytes()


@pytest.mark.parametrize("name", CALLS)
def test_every_layout_gives_the_contiguous_bits(backend, name):
    call = CALLS[name]
    expected = _bits(call(BASE if "residual" not in name else RESIDUAL))
    source = RESIDUAL if "residual" in name else BASE
    for layout, view in _views(source).items():
        assert np.array_equal(view, source)
        assert _bits(call(view)) == expected, layout


@pytest.mark.parametrize("name", ["dropout", "dropout-per-feature", "alpha_dropout", "gaussian_dropout",
                                  "concrete_dropout", "variational_dropout", "dropout_add"])
def test_fortran_ordered_out_and_in_place(backend, name):
    """out= a Fortran-ordered array (written back a piece at a time), and out=x for a
    transposed x (each piece read before it is written)."""
    calls = {
        "dropout": lambda x, **o: fd.dropout(x, 0.3, seed=5, offset=1001, **o),
        "dropout-per-feature": lambda x, **o: fd.dropout(x, P_FEATURE, seed=5, **o),
        "alpha_dropout": lambda x, **o: fd.alpha_dropout(x, 0.3, seed=5, **o),
        "gaussian_dropout": lambda x, **o: fd.gaussian_dropout(x, 0.3, seed=5, **o),
        "concrete_dropout": lambda x, **o: fd.concrete_dropout(x, -1.0, seed=5, **o),
        "variational_dropout": lambda x, **o: fd.variational_dropout(x, 0.3, seed=5, **o),
        "dropout_add": lambda x, **o: fd.dropout_add(x, RESIDUAL, 0.3, bias=BIAS, seed=5, **o),
    }
    call = calls[name]
    expected = call(BASE)
    out = np.empty(SHAPE, np.float32, order="F")
    assert call(BASE, out=out) is out and np.array_equal(out.view(np.uint32), expected.view(np.uint32))
    x = np.ascontiguousarray(BASE.T).T
    assert call(x, out=x) is x and np.array_equal(x.view(np.uint32), expected.view(np.uint32))
