"""The functional API: plain dropout, its mask and the mask applied.

Each function checks its arguments with ``fastdrop._validation`` and hands the checked
values to the private core (``fastdrop._core``), the only caller of the kernels.  The
stream's own definitions are re-exported here for users: ``stream_key`` and
``derive_seed`` (the layers' per-call substreams) and ``MAX_INDEX``, the index range.
"""
import math

import numpy as np

from . import _core
from ._stream import CHUNK_RANGE, MAX_INDEX, derive_seed, stream_key
from ._validation import (as_float_array, check_array_container, check_bool, check_dropout_call,
                          check_index_range, check_offset, check_out, check_rate, check_shape, is_plain_dropout_call,
                          resolve_seed)

__all__ = ["MAX_INDEX", "apply_mask", "derive_seed", "dropout", "dropout_mask", "effective_keep", "stream_key"]


def dropout(x, p=0.5, *, seed=None, training=True, noise_shape=None, offset=0, out=None):
    """Inverted dropout: each element is dropped (0.0) with probability ``p``, else scaled.

    Kept elements are exactly ``x * dtype(1 / (1 - p))`` computed in ``x``'s dtype; dropped
    ones are 0.0 even where ``x`` is inf or NaN.  The mask depends only on
    (seed, offset, the C-order index in the noise shape, p).  With ``training=False``
    or ``p == 0`` the result is a copy of ``x`` (or ``x`` written into ``out``).
    Calling it on the gradient with the same arguments is the exact backward pass.
    """
    if is_plain_dropout_call(x, p, seed, training, noise_shape, offset, out):
        return _core.dropout_plain(x, p, seed, offset, out)
    x, p, shape, offset, training, out = check_dropout_call(x, p, noise_shape, offset, training, out)
    key = stream_key(resolve_seed(seed))
    if not training or (isinstance(p, float) and p == 0.0):
        return _core.copy_into(x, out)
    thr, scale = _core.rate_arrays(p, x.dtype, shape)
    return _core.dropout_over(key, offset, thr, scale, x, shape, out)


def dropout_mask(shape, p=0.5, *, seed=None, offset=0, packed=False):
    """The keep mask ``dropout`` uses for an array of ``shape`` (True = kept).

    With ``packed=True``: ``np.packbits(mask.ravel(), bitorder="little")``, 1 bit per element.
    """
    shape = check_shape(shape)
    p = check_rate(p)
    offset = check_offset(offset)
    check_index_range(offset, math.prod(shape))
    packed = check_bool(packed, "packed")
    key = stream_key(resolve_seed(seed))
    thr, _ = _core.rate_arrays(p, np.dtype(np.float64), shape)
    mask = _core.keep_mask(key, offset, thr, shape).view(bool)
    return np.packbits(mask.ravel(), bitorder="little") if packed else mask


def apply_mask(x, mask, p=0.5, *, out=None):
    """``mask ? x * dtype(1 / (1 - p)) : 0``: dropout with a given mask.

    ``mask`` is a bool array of x's shape (or broadcastable to it from size-1 axes, like a
    noise-shaped mask), or a packed uint8 array from ``dropout_mask(..., packed=True)``.
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
    if isinstance(p, float) and p == 1.0:
        out[...] = 0
        return out
    _, scale = _core.rate_arrays(p, x.dtype, keep.shape)
    if not isinstance(p, float):       # rate 1 drops whatever the mask says; keep is ours, p broadcasts to it
        np.bitwise_and(keep, p < 1.0, out=keep)
    return _core.apply_keep(x, keep, scale, out)


def effective_keep(p):
    """The exact keep probability used for drop rate ``p`` (within 1e-5 of ``1 - p``)."""
    thr = _core.keep_threshold(check_rate(p))
    return thr / CHUNK_RANGE if isinstance(thr, int) else thr.astype(np.float64) / CHUNK_RANGE
