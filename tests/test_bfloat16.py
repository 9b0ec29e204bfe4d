"""bfloat16 arrays (ml_dtypes.bfloat16) from NumPy: the values, the layers, and the refusals.

Bits against the NumPy backend on every ISA variant and thread count are in test_isa.py
(all 65536 patterns); here, on both backends: what the values are, that each layer's
backward is its forward's mask, and that the functions that compute in float16/32/64 only
refuse bfloat16 by name, leaving any ``out`` untouched.
"""
import re

import ml_dtypes
import numpy as np
import pytest

import fastdrop as fd

BF16 = ml_dtypes.bfloat16
RNG = np.random.default_rng(16)


def bf16(shape):
    return RNG.standard_normal(shape).astype(BF16)


def bits(a):
    return np.asarray(a).view(np.uint16)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_kept_values_are_ml_dtypes_products_and_dropped_are_zero(backend, p):
    x = bf16((64, 257))
    y = fd.dropout(x, p, seed=4, offset=99)
    keep = fd.dropout_mask(x.shape, p, seed=4, offset=99)
    assert y.dtype == BF16 and y.shape == x.shape
    assert np.array_equal(bits(y), np.where(keep, bits(x * BF16(1 / (1 - p))), np.uint16(0)))
    assert 0.8 * (1 - p) < keep.mean() < 1.2 * (1 - p)


def test_out_noise_shape_rates_and_grad(backend):
    x = bf16((8, 16, 5, 5))
    out = np.empty_like(x)
    y = fd.dropout(x, 0.3, seed=2, noise_shape=(8, 16, 1, 1), out=out)
    assert y is out
    assert np.array_equal(bits(y), bits(fd.spatial_dropout(x, 0.3, seed=2)))
    rates = np.linspace(0.0, 0.9, 5)
    keep = fd.dropout_mask(x.shape, rates, seed=3)
    want = np.where(keep, bits(x * (1 / (1 - rates)).astype(BF16)), np.uint16(0))
    assert np.array_equal(bits(fd.dropout(x, rates, seed=3)), want)
    with pytest.raises(ValueError, match=r"out must have shape \(8, 16, 5, 5\) and dtype bfloat16, got shape "
                                         r"\(8, 16, 5, 5\) and dtype float32"):
        fd.dropout(x, 0.3, seed=2, out=np.empty(x.shape, np.float32))


LAYERS = {
    "Dropout": lambda: fd.Dropout(0.4, seed=1),
    "SpatialDropout2D": lambda: fd.SpatialDropout2D(0.4, seed=1),
    "VariationalDropout": lambda: fd.VariationalDropout(0.4, seed=1),
    "DropPath": lambda: fd.DropPath(0.4, seed=1),
    "DropBlock2D": lambda: fd.DropBlock2D(0.2, block_size=3, seed=1),
    "AdaptiveDropout": lambda: fd.AdaptiveDropout(0.4, per_unit=True, seed=1),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_mask_layer_backward_is_its_forwards_mask(backend, name):
    """forward(x) = x * s where kept, +0 where dropped; backward(1) is s where kept, +0 where
    dropped: the same s (bfloat16) and the same mask, so forward(x) is x * backward(1) where
    that is kept (x * +0 would be -0 for a negative x: the select gives +0)."""
    layer = LAYERS[name]()
    x = bf16((4, 6, 9, 9))
    y = layer(x)
    ones = np.ones(x.shape, BF16)
    g = layer.backward(ones)
    assert y.dtype == g.dtype == BF16
    assert np.array_equal(bits(y), np.where(bits(g) != 0, bits(x * g), np.uint16(0)))
    assert 0 < int((bits(g) == 0).sum()) < x.size
    assert np.array_equal(bits(layer(x, training=False)), bits(x))


def test_alpha_dropout_rounds_the_product_then_the_sum(backend):
    x = bf16(10_000)
    y = fd.alpha_dropout(x, 0.2, seed=5)
    a = fd.alpha_dropout_grad(np.ones(x.shape, BF16), 0.2, seed=5)        # a where kept, 0 where dropped
    b_or_d = fd.alpha_dropout(np.zeros(x.shape, BF16), 0.2, seed=5)     # b where kept, d where dropped
    assert np.array_equal(bits(y), np.where(bits(a) != 0, bits(x * a + b_or_d), bits(b_or_d)))
    assert y.dtype == BF16


REFUSED = {        # the argument named, the call
    "gaussian_dropout": ("x", lambda x, out: fd.gaussian_dropout(x, 0.3, seed=1, out=out)),
    "gaussian_dropout_grad": ("grad", lambda x, out: fd.gaussian_dropout_grad(x, 0.3, seed=1, out=out)),
    "concrete_dropout": ("x", lambda x, out: fd.concrete_dropout(x, -1.0, seed=1, out=out)),
    "dropout_add": ("x", lambda x, out: fd.dropout_add(x, x, 0.3, seed=1, out=out)),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_the_noise_variants_and_dropout_add_refuse_bfloat16_by_name(backend, name):
    x = bf16(100)
    out = np.full(x.shape, 7, BF16)
    arg, call = REFUSED[name]
    message = (f"{arg} must have dtype float16, float32 or float64, got dtype bfloat16: the noise variants and "
               f"dropout_add compute in float16/32/64 only; pass {arg}.astype(np.float32)")
    with pytest.raises(TypeError, match=re.escape(message)):
        call(x, out)
    assert np.all(bits(out) == bits(BF16(7)))          # a failed call writes nothing


def test_refusals_name_grad_residual_and_bias():
    x32 = np.ones(4, np.float32)
    with pytest.raises(TypeError, match=r"grad must have dtype float16, float32 or float64, got dtype bfloat16"):
        fd.concrete_dropout_grad(x32, np.ones(4, BF16), -1.0, seed=1)
    with pytest.raises(TypeError, match=r"residual must have dtype float16, float32 or float64, got dtype bfloat16"):
        fd.dropout_add(x32, np.ones(4, BF16), 0.5, seed=1)
    with pytest.raises(TypeError, match=r"bias must have dtype float16, float32 or float64, got dtype bfloat16"):
        fd.dropout_add(x32, x32, 0.5, bias=np.ones(4, BF16), seed=1)


def test_byte_swapped_bfloat16_is_read_as_its_values(backend):
    x = bf16((7, 301))
    swapped = x.astype(x.dtype.newbyteorder(">"))
    y = fd.dropout(swapped, 0.3, seed=8)
    assert y.dtype == BF16 and y.dtype.isnative
    assert np.array_equal(bits(y), bits(fd.dropout(x, 0.3, seed=8)))
    assert np.array_equal(bits(fd.alpha_dropout(swapped, 0.3, seed=8)), bits(fd.alpha_dropout(x, 0.3, seed=8)))


def test_a_bfloat16_forward_dtype_for_gaussians_backward_is_refused_by_name():
    with pytest.raises(TypeError, match=re.escape(
            "dtype must be float16, float32 or float64 (the forward's data dtype), got bfloat16: the noise variants "
            "compute in float16/32/64 only")):
        fd.gaussian_dropout_grad(np.ones(4, np.float32), 0.3, seed=1, dtype=BF16)
