"""Dropout on a residual branch: ``residual + dropout(x + bias)`` in one pass, and its gradient.

The pattern of every transformer block (``h + dropout(sublayer(h))``, with the sublayer's
bias added before the dropout as in Megatron's bias-dropout-add): the fused kernel reads x,
residual and bias once and writes the result once, instead of three NumPy passes and a
temporary.  The mask is ``fd.dropout``'s for the same (seed, offset, p, noise_shape), and
the result has the bits of the unfused NumPy composition in x's dtype.
"""
import numpy as np

from . import _core
from ._stream import stream_key
from ._validation import as_float_array, check_bias_shape, check_dropout_add_call, check_grad_out, resolve_seed
from .functional import dropout

__all__ = ["dropout_add", "dropout_add_grad"]


def dropout_add(x, residual, p=0.5, *, bias=None, seed=None, training=True, noise_shape=None, offset=0, out=None):
    """``residual + dropout(x + bias, p)`` in one pass, each operation rounded in x's dtype.

    The result is bit for bit the NumPy composition
    ``residual + fd.dropout(x + bias, p, seed=seed, noise_shape=noise_shape, offset=offset)``:
    h = x + bias, then h * dtype(1 / (1 - p)) where kept and +0.0 where dropped (also where h
    is inf or NaN), then residual + that.  The mask is ``fd.dropout``'s for the same seed,
    offset, p (a float, or per-element / per-feature rates broadcasting to the noise shape)
    and ``noise_shape``.

    ``residual`` must have x's shape and dtype (a skip connection adds two activations of one
    shape: a broadcast residual is refused, not guessed at); ``bias`` (None, or an array of
    x's dtype broadcasting to x's shape, typically one value per feature) is read in place,
    never expanded.  With ``training=False`` or ``p == 0``: ``residual + (x + bias)``.  A
    noise shape other than x's (a shared mask) takes two steps: its keep mask, then the
    mask applied in cache-sized pieces (the same bits).
    ``out`` may be x or residual (in place) or a separate array of x's shape.  The backward
    pass is ``dropout_add_grad`` with the same seed, offset, p and noise_shape.
    """
    x, residual, p, bias, shape, offset, training, out = check_dropout_add_call(x, residual, p, bias, noise_shape,
                                                                                offset, training, out)
    key = stream_key(resolve_seed(seed))
    if not training or (isinstance(p, float) and p == 0.0):
        return _core.residual_add(x, residual, bias, out)
    thr, scale = _core.rate_arrays(p, x.dtype, shape)
    return _core.dropout_add_over(key, offset, thr, scale, x, residual, bias, shape, out)


def dropout_add_grad(grad, p=0.5, *, seed=None, training=True, noise_shape=None, offset=0, bias_shape=None,
                     out=None):
    """The gradients of ``dropout_add`` for the output gradient ``grad``: the tuple
    ``(grad_x, grad_residual, grad_bias)``.

    grad_x is ``fd.dropout(grad, p, ...)`` with the forward's seed, offset, p and noise_shape:
    the regenerated mask times the scale, in one fused pass with no temporaries (into
    ``out`` when given, which must not be grad).  grad_residual is grad itself (no copy).
    grad_bias is None without ``bias_shape``, else grad_x summed over the axes the bias was
    broadcast along (``np.sum`` in grad's dtype), of shape ``bias_shape``.
    """
    grad = as_float_array(grad, "grad")
    bias_shape = check_bias_shape(bias_shape, grad.shape)
    check_grad_out(out, grad)
    grad_x = dropout(grad, p, seed=seed, training=training, noise_shape=noise_shape,
                     offset=offset, out=out)
    return grad_x, grad, None if bias_shape is None else _sum_to_shape(grad_x, bias_shape)


def _sum_to_shape(a, shape):
    """``a`` summed over the axes that broadcasting ``shape`` to a's shape repeats."""
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and a.shape[lead + i] != 1)
    return np.sum(a, axis=axes, dtype=a.dtype).reshape(shape)
