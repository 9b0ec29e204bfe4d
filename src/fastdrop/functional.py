"""The functional API: plain dropout, its mask and the mask applied.

Each function checks its arguments with ``fastdrop._validation`` and hands the checked
values to the private core (``fastdrop._core``), the only caller of the kernels.  The
stream's own definitions are re-exported here for users: ``stream_key`` and
``derive_seed`` (the layers' per-call substreams) and ``MAX_INDEX``, the index range.
"""
import math
from typing import Optional, Union

import numpy as np
import numpy.typing as npt

from . import _core, _memory
from ._typing import BoolArray, FloatArray, NoiseShape, Rate, Seed, Shape
from ._stream import CHUNK_RANGE, MAX_INDEX, derive_seed, stream_key
from ._validation import (as_float_array, broadcasts_to, check_array_container, check_bool, check_dropout_call,
                          check_index_range, check_offset, check_out, check_rate, check_seed, check_shape,
                          is_plain_dropout_call, is_shared_dropout_call, resolve_seed)

__all__ = ["MAX_INDEX", "apply_mask", "derive_seed", "dropout", "dropout_mask", "effective_keep", "stream_key"]


def dropout(x: npt.ArrayLike, p: Rate = 0.5, *, seed: Seed = None, training: bool = True,
            noise_shape: NoiseShape = None, offset: int = 0, out: Optional[FloatArray] = None) -> FloatArray:
    """Inverted dropout: each element is dropped (0.0) with probability ``p``, else scaled.

    Kept elements are exactly ``x * dtype(1 / (1 - p))`` computed in ``x``'s dtype; dropped
    ones are 0.0 even where ``x`` is inf or NaN.  The mask depends only on
    (seed, offset, the C-order index in the noise shape, p).  With ``training=False``
    or ``p == 0`` the result is a copy of ``x`` (or ``x`` written into ``out``), and nothing
    is drawn from a Generator or BitGenerator seed.
    Calling it on the gradient with the same arguments is the exact backward pass.

    Parameters
    ----------
    x : array_like
        float16, bfloat16 (ml_dtypes), float32 or float64 values, any shape, strides, memory order or byte order.
    p : float or array_like, default 0.5
        The probability of dropping an element, in [0, 1]; or an array of rates
        broadcastable to the noise shape (each kept element scaled by its own ``1/(1-p)``).
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        None draws fresh entropy; an int in [0, 2**64) gives the same mask every call; a
        Generator or BitGenerator gives one 64-bit key drawn from it, a SeedSequence its
        first 64-bit word.  The key is drawn only by a call that passes every check and
        draws decisions (not with ``training=False`` or ``p == 0``).
    training : bool, default True
        False returns a copy of ``x``.
    noise_shape : sequence of int or None, optional
        Keras's noise shape: one entry per axis, x's size, 1 (one decision shared along
        that axis) or None (x's size).
    offset : int, default 0
        The flat C-order index of this array's first element in a larger logical array.
    out : numpy.ndarray, optional
        An array of x's shape and dtype to write into; ``out=x`` works in place.

    Returns
    -------
    numpy.ndarray
        The result, of x's dtype and shape, in x's memory order (C or Fortran), or ``out``.

    Raises
    ------
    TypeError
        ``x`` not a float array (or a container whose meaning would be lost), an argument
        of the wrong type.
    ValueError
        ``p`` outside [0, 1], a seed or offset out of range, an ``out`` of the wrong shape,
        dtype or layout, a noise shape that does not fit.

    Examples
    --------
    >>> x = np.arange(1.0, 9.0, dtype=np.float32)
    >>> fd.dropout(x, 0.5, seed=42)
    array([ 2.,  4.,  0.,  0., 10.,  0.,  0., 16.], dtype=float32)
    >>> g = fd.dropout(np.ones_like(x), 0.5, seed=42)      # the backward pass: the same mask
    >>> bool(np.array_equal(g != 0, fd.dropout_mask(x.shape, 0.5, seed=42)))
    True
    """
    if is_plain_dropout_call(x, p, seed, training, noise_shape, offset, out):
        return _core.dropout_plain(x, p, seed, offset, out)
    if is_shared_dropout_call(x, p, seed, training, noise_shape, offset, out):
        return _core.dropout_plain_over(x, p, seed, noise_shape, offset, out)
    x, p, shape, offset, training, out = check_dropout_call(x, p, noise_shape, offset, training, out)
    seed = check_seed(seed)
    if not training or (isinstance(p, float) and p == 0.0):
        return _core.copy_into(x, out)
    thr, scale = _core.rate_arrays(p, x.dtype, shape)
    return _core.dropout_over(stream_key(resolve_seed(seed)), offset, thr, scale, x, shape, out)


def dropout_mask(shape: Shape, p: Rate = 0.5, *, seed: Seed = None, offset: int = 0,
                 packed: bool = False) -> Union[BoolArray, npt.NDArray[np.uint8]]:
    """The keep mask ``dropout`` uses for an array of ``shape`` (True = kept).

    With ``packed=True``: ``np.packbits(mask.ravel(), bitorder="little")``, 1 bit per element.

    Parameters
    ----------
    shape : int or sequence of int
        The shape of the array the mask is for.
    p : float or array_like, default 0.5
        The drop rate(s), as in :func:`dropout`.
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        As in :func:`dropout`: the same seed and offset give :func:`dropout`'s mask (at
        ``p == 0``, all True, nothing is drawn from a Generator).
    offset : int, default 0
        The flat index of the first element in a larger logical array.
    packed : bool, default False
        Return the mask packed, 1 bit per element (little bit order).

    Returns
    -------
    numpy.ndarray
        A bool array of ``shape``, or (``packed=True``) a 1-D uint8 array of
        ``ceil(size / 8)`` bytes.

    Raises
    ------
    TypeError
        ``shape`` not an int or a sequence of ints, ``packed`` not a bool.
    ValueError
        A negative shape entry, ``p`` outside [0, 1], an offset out of range.

    Examples
    --------
    >>> fd.dropout_mask(6, 0.5, seed=42)
    array([ True,  True, False, False,  True, False])
    >>> fd.dropout_mask(6, 0.5, seed=42, packed=True)
    array([19], dtype=uint8)
    """
    shape = check_shape(shape)
    p = check_rate(p)
    offset = check_offset(offset)
    check_index_range(offset, math.prod(shape))
    packed = check_bool(packed, "packed")
    seed = check_seed(seed)
    thr, _ = _core.rate_arrays(p, np.dtype(np.float64), shape)
    if isinstance(p, float) and p == 0.0:       # every element kept whatever the key: draw none, as dropout
        mask = _memory.empty(shape, np.bool_)
        mask.fill(True)
    else:
        mask = _core.keep_mask(stream_key(resolve_seed(seed)), offset, thr, shape).view(bool)
    return np.packbits(mask.ravel(), bitorder="little") if packed else mask


def apply_mask(x: npt.ArrayLike, mask: npt.ArrayLike, p: Rate = 0.5, *,
               out: Optional[FloatArray] = None) -> FloatArray:
    """``mask ? x * dtype(1 / (1 - p)) : 0``: dropout with a given mask.

    ``mask`` is a bool array of x's shape (or broadcastable to it from size-1 axes, like a
    noise-shaped mask), or a packed uint8 array from ``dropout_mask(..., packed=True)``.

    Parameters
    ----------
    x : array_like
        float16, bfloat16 (ml_dtypes), float32 or float64 values.
    mask : array_like of bool, or packed uint8
        True where an element is kept.
    p : float or array_like, default 0.5
        The rate(s) whose ``1/(1-p)`` scales the kept elements.
    out : numpy.ndarray, optional
        Where to write the result, as in :func:`dropout`.

    Returns
    -------
    numpy.ndarray
        The masked and scaled ``x``, or ``out``.

    Raises
    ------
    TypeError
        ``x`` not a float array, ``mask`` neither bool nor uint8.
    ValueError
        A mask that does not match ``x``, ``p`` outside [0, 1].

    Examples
    --------
    >>> x = np.arange(1.0, 9.0, dtype=np.float32)
    >>> packed = fd.dropout_mask(x.shape, 0.5, seed=42, packed=True)
    >>> bool(np.array_equal(fd.apply_mask(x, packed, 0.5), fd.dropout(x, 0.5, seed=42)))
    True
    """
    given, x = x, as_float_array(x)
    p = check_rate(p)
    out = check_out(out, x, given)
    mask = np.asarray(check_array_container(mask, "mask"))
    if mask.dtype == np.uint8:
        need = (x.size + 7) // 8
        if mask.ndim != 1 or mask.size != need:
            raise ValueError(f"a packed mask for x of size {x.size} must be 1-D of length {need}, "
                             f"got shape {mask.shape}")
        keep = np.unpackbits(mask, count=x.size, bitorder="little").reshape(x.shape)
    elif mask.dtype == np.bool_:
        if mask.ndim != x.ndim or any(m not in (1, n) for m, n in zip(mask.shape, x.shape)):
            raise ValueError(f"mask of shape {mask.shape} does not match x of shape {x.shape}")
        keep = np.asarray(mask.view(np.uint8) != 0).view(np.uint8)    # any nonzero byte is True
    else:
        raise TypeError(f"mask must be a bool array or a packed uint8 array, got dtype {mask.dtype}")
    if not isinstance(p, float):
        # per-element rates and a noise-shaped mask may each leave axes to the other (a mask of
        # shape (1, F), rates of shape (N, 1)): the decisions are read at their common shape
        try:
            shape = np.broadcast_shapes(keep.shape, p.shape)
        except ValueError:
            shape = None
        if shape is None or not broadcasts_to(shape, x.shape):
            raise ValueError(f"p of shape {p.shape} cannot broadcast to x's shape {x.shape} with the mask's "
                             f"{mask.shape}")
        keep = np.bitwise_and(np.broadcast_to(keep, shape), p < 1.0)   # rate 1 drops whatever the mask says
    elif p == 1.0:
        out[...] = 0
        return out
    _, scale = _core.rate_arrays(p, x.dtype, keep.shape)
    return _core.apply_keep(x, keep, scale, out)


def effective_keep(p: Rate) -> Union[float, npt.NDArray[np.float64]]:
    """The exact keep probability used for drop rate ``p`` (within 1e-5 of ``1 - p``).

    Parameters
    ----------
    p : float or array_like
        Drop rate(s) in [0, 1].

    Returns
    -------
    float or numpy.ndarray
        ``t / 65536`` with ``t = floor((1 - p) * 65536 + 0.5)``, for each rate.

    Raises
    ------
    TypeError
        ``p`` not a real number or an array of them.
    ValueError
        ``p`` outside [0, 1].

    Examples
    --------
    >>> fd.effective_keep(0.3)
    0.6999969482421875
    """
    thr = _core.keep_threshold(check_rate(p))
    return thr / CHUNK_RANGE if isinstance(thr, int) else thr.astype(np.float64) / CHUNK_RANGE
