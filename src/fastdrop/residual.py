"""Dropout on a residual branch: ``residual + dropout(x + bias)`` in one pass, and its gradient.

The pattern of every transformer block (``h + dropout(sublayer(h))``, with the sublayer's
bias added before the dropout as in Megatron's bias-dropout-add): the fused kernel reads x,
residual and bias once and writes the result once, instead of three NumPy passes and a
temporary.  The mask is ``fd.dropout``'s for the same (seed, offset, p, noise_shape), and
the result has the bits of the unfused NumPy composition in x's dtype.
"""
from typing import Optional, Tuple

import numpy as np
import numpy.typing as npt

from . import _core
from ._stream import stream_key
from ._validation import (as_float_array, check_bias_shape, check_dropout_add_call, check_grad_out, check_seed,
                          is_plain_dropout_add_call, resolve_seed)
from ._typing import FloatArray, NoiseShape, Rate, Seed, Shape
from .functional import dropout

__all__ = ["dropout_add", "dropout_add_grad"]


def dropout_add(x: npt.ArrayLike, residual: npt.ArrayLike, p: Rate = 0.5, *, bias: Optional[npt.ArrayLike] = None,
                seed: Seed = None, training: bool = True, noise_shape: NoiseShape = None, offset: int = 0,
                out: Optional[FloatArray] = None) -> FloatArray:
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
    never expanded.  With ``training=False`` or ``p == 0``: ``residual + (x + bias)``, and
    nothing is drawn from a Generator seed.  A noise shape other than x's (a shared mask)
    takes two steps: its keep mask, then the mask applied in cache-sized pieces (the same
    bits).
    ``out`` may be x or residual (in place) or a separate array of x's shape.  The backward
    pass is ``dropout_add_grad`` with the same seed, offset, p and noise_shape.

    Parameters
    ----------
    x : array_like
        float16, float32 or float64 values: the branch's output (before its bias).
    residual : array_like
        The skip connection: x's shape and dtype exactly.
    p : float or array_like, default 0.5
        The drop rate in [0, 1], or rates broadcastable to the noise shape, as in
        :func:`fastdrop.dropout`.
    bias : array_like, optional
        Added to x before the dropout: x's dtype, broadcasting to x's shape (typically one
        value per feature); read in place, never expanded.
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        As in :func:`fastdrop.dropout`: the same seed and offset give its mask.
    training : bool, default True
        False returns ``residual + (x + bias)``.
    noise_shape : sequence of int or None, optional
        Keras's noise shape, as in :func:`fastdrop.dropout`.
    offset : int, default 0
        The flat C-order index of this array's first element in a larger logical array.
    out : numpy.ndarray, optional
        Where to write the result (x's shape and dtype); ``out=x`` or ``out=residual``
        work in place.

    Returns
    -------
    numpy.ndarray
        ``residual + dropout(x + bias)``, of x's dtype and shape, or ``out``.

    Raises
    ------
    TypeError
        ``x``, ``residual`` or ``bias`` not a float array, ``residual`` or ``bias`` not of
        x's dtype, an argument of the wrong type.
    ValueError
        ``residual`` not of x's shape, a ``bias`` that does not broadcast to it, ``p``
        outside [0, 1], a seed or offset out of range, a noise shape that does not fit, a
        bad ``out`` (or one that overlaps residual or bias partially).

    Examples
    --------
    >>> x = np.arange(1.0, 9.0, dtype=np.float32)
    >>> residual = np.full(8, 10.0, dtype=np.float32)
    >>> y = fd.dropout_add(x, residual, 0.5, seed=42)
    >>> y
    array([12., 14., 10., 10., 20., 10., 10., 26.], dtype=float32)
    >>> bool(np.array_equal(y, residual + fd.dropout(x, 0.5, seed=42)))
    True
    >>> fd.dropout_add(x, residual, 0.5, bias=np.float32([0.5]), seed=42)
    array([13., 15., 10., 10., 21., 10., 10., 27.], dtype=float32)
    """
    if is_plain_dropout_add_call(x, residual, p, bias, seed, training, noise_shape, offset, out):
        return _core.dropout_add_plain(x, residual, p, bias, seed, offset, out)
    x, residual, p, bias, shape, offset, training, out = check_dropout_add_call(x, residual, p, bias, noise_shape,
                                                                                offset, training, out)
    seed = check_seed(seed)
    if not training or (isinstance(p, float) and p == 0.0):
        return _core.residual_add(x, residual, bias, out)
    thr, scale = _core.rate_arrays(p, x.dtype, shape)
    return _core.dropout_add_over(stream_key(resolve_seed(seed)), offset, thr, scale, x, residual, bias, shape, out)


def dropout_add_grad(grad: npt.ArrayLike, p: Rate = 0.5, *, seed: Seed = None, training: bool = True,
                     noise_shape: NoiseShape = None, offset: int = 0, bias_shape: Optional[Shape] = None,
                     out: Optional[FloatArray] = None) -> Tuple[FloatArray, FloatArray, Optional[FloatArray]]:
    """The gradients of ``dropout_add`` for the output gradient ``grad``: the tuple
    ``(grad_x, grad_residual, grad_bias)``.

    grad_x is ``fd.dropout(grad, p, ...)`` with the forward's seed, offset, p and noise_shape:
    the regenerated mask times the scale, in one fused pass with no temporaries (into
    ``out`` when given, which must not be grad).  grad_residual is grad itself (no copy).
    grad_bias is None without ``bias_shape``, else grad_x summed over the axes the bias was
    broadcast along (``np.sum`` in grad's dtype), of shape ``bias_shape``.

    Parameters
    ----------
    grad : array_like
        The gradient of the output (float16, float32 or float64).
    p, seed, training, noise_shape, offset
        The forward's arguments.
    bias_shape : int or sequence of int, optional
        The forward's ``bias.shape`` (broadcasting to grad's shape); None: the forward had
        no bias, and grad_bias is None.
    out : numpy.ndarray, optional
        Where to write grad_x (grad's shape and dtype); not grad itself.

    Returns
    -------
    grad_x : numpy.ndarray
        The gradient w.r.t. x (and w.r.t. the bias before its sum), or ``out``.
    grad_residual : numpy.ndarray
        ``grad`` itself.
    grad_bias : numpy.ndarray or None
        grad_x summed to ``bias_shape``; None without ``bias_shape``.

    Raises
    ------
    TypeError
        ``grad`` not a float array, an argument of the wrong type.
    ValueError
        A ``bias_shape`` that does not broadcast to grad's shape, ``out`` sharing memory
        with grad, ``p`` outside [0, 1], a seed or offset out of range, a noise shape that
        does not fit.

    Examples
    --------
    >>> grad_x, grad_residual, grad_bias = fd.dropout_add_grad(np.ones(8, dtype=np.float32), 0.5, seed=42,
    ...                                                        bias_shape=(1,))
    >>> grad_x
    array([2., 2., 0., 0., 2., 0., 0., 2.], dtype=float32)
    >>> grad_bias
    array([8.], dtype=float32)
    """
    grad = as_float_array(grad, "grad", bfloat16=False)
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
