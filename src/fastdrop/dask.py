"""Chunked and distributed dropout on Dask arrays, bit-identical to the in-memory result.

Each chunk calls :func:`fastdrop.box.dropout_box` with its location in the whole array,
so a chunk gets exactly its slice of ``fd.dropout(darr.compute(), ...)`` whatever the
chunking, the scheduler or the worker that runs it.  Nothing is computed on call.

The seed is the one thing every worker must share: an int is used as given;
``seed=None`` (or a numpy Generator) draws one 64-bit seed once, on the client, when
``dropout`` is called, and every chunk of the result uses it.

Needs the optional extra ``pip install fastdrop[dask]``; ``import fastdrop`` never
imports this module.
"""
import math
from typing import Union

import numpy as np

from ._typing import NoiseShape, Rate, Seed

try:
    import dask.array as da
except ImportError as exc:       # the extra is missing: say which one installs it
    raise ImportError(f'fastdrop.dask needs the dask extra ({exc}): pip install "fastdrop[dask]"') from exc

from .box import dropout_box
from .family import spatial_noise_shape
from ._validation import (as_float_array, check_index_range, check_offset, check_rate, check_rate_shape,
                          resolve_noise_shape, resolve_seed)

__all__ = ["dropout", "spatial_dropout"]


def dropout(darr: "da.Array", p: Union[Rate, "da.Array"] = 0.5, *, seed: Seed = None, noise_shape: NoiseShape = None,
            offset: int = 0) -> "da.Array":
    """Lazy inverted dropout of the Dask array ``darr``.

    ``dropout(darr, p, seed=s, noise_shape=n).compute()`` equals
    ``fd.dropout(darr.compute(), p, seed=s, noise_shape=n)`` bit for bit, for any
    chunking.  ``p`` is a float or an array (NumPy or Dask) broadcastable to the noise
    shape.  The backward pass is the same call, with the same seed, on the gradient.

    Parameters
    ----------
    darr : dask.array.Array
        float16, float32 or float64 chunks of known sizes.
    p : float or array_like or dask.array.Array, default 0.5
        The drop rate(s) in [0, 1]; a Dask array of rates is range-checked chunk by chunk.
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        An int is used as given; anything else draws one 64-bit seed now, on the client,
        that every chunk shares.
    noise_shape : sequence of int or None, optional
        The global noise shape, as in :func:`fastdrop.dropout`.
    offset : int, default 0
        The whole array's offset in the stream.

    Returns
    -------
    dask.array.Array
        The lazy result, chunked as ``darr``.

    Raises
    ------
    TypeError
        ``darr`` not a Dask array or not of a float dtype.
    ValueError
        Unknown chunk sizes, a noise shape that does not fit, ``p`` outside [0, 1].

    Examples
    --------
    >>> import dask.array as da, fastdrop.dask as fdd
    >>> y = fdd.dropout(da.ones((4, 6), chunks=(2, 3)), 0.5, seed=1)
    >>> y.compute()
    array([[2., 0., 2., 2., 0., 2.],
           [2., 0., 2., 2., 0., 2.],
           [2., 0., 2., 2., 2., 0.],
           [0., 2., 2., 2., 0., 0.]])
    >>> bool(np.array_equal(_, fd.dropout(np.ones((4, 6)), 0.5, seed=1)))
    True
    """
    if not isinstance(darr, da.Array):
        raise TypeError(f"darr must be a dask.array.Array, got {type(darr).__module__}.{type(darr).__name__}")
    dtype = as_float_array(np.empty(0, dtype=darr.dtype), "darr").dtype     # the chunks' dtype, native order
    if any(np.isnan(size) for size in darr.shape):
        raise ValueError(f"darr has unknown chunk sizes (shape {darr.shape}); a chunk's place in the array "
                         f"must be known: call darr.compute_chunk_sizes() first")
    try:
        global_noise = resolve_noise_shape(noise_shape, darr.shape)
    except ValueError as exc:
        raise ValueError(f"noise_shape={noise_shape!r} cannot broadcast with darr of shape {darr.shape} "
                         f"and chunks {darr.chunks}: {exc}") from None
    offset = check_offset(offset)
    check_index_range(offset, math.prod(global_noise))     # here, before any chunk is computed
    if isinstance(p, da.Array):
        rates = _rates_like(p, darr, global_noise)
    else:
        p = check_rate(p)
        rates = None if isinstance(p, float) else _rates_like(da.from_array(p), darr, global_noise)
    # drawn here, once, so that every chunk shares it, and after every check: a call that
    # raises leaves a Generator seed as it was
    seed = resolve_seed(seed)
    kwargs = dict(seed=seed, global_shape=darr.shape, noise_shape=global_noise, offset=offset,
                  dtype=dtype, meta=np.empty((0,) * darr.ndim, dtype), token="fastdrop-dropout")
    if rates is None:
        return da.map_blocks(_dropout_chunk, darr, p=p, **kwargs)
    return da.map_blocks(_dropout_chunk, darr, rates, **kwargs)


def spatial_dropout(darr: "da.Array", p: Union[Rate, "da.Array"] = 0.5, *, seed: Seed = None,
                    data_format: str = "channels_first", offset: int = 0) -> "da.Array":
    """Lazy spatial dropout: one decision per (sample, channel), shared over the spatial axes.

    ``darr`` has rank >= 3: ``(N, C, *spatial)`` for ``"channels_first"``, ``(N, *spatial, C)``
    for ``"channels_last"``.  The result equals ``fd.spatial_dropout(darr.compute(), p,
    seed=seed, data_format=data_format, offset=offset)`` bit for bit.

    Parameters
    ----------
    darr : dask.array.Array
        float16, float32 or float64 chunks of rank >= 3.
    p, seed, offset
        As in :func:`dropout`.
    data_format : {"channels_first", "channels_last"}, default "channels_first"
        Where the channel axis is.

    Returns
    -------
    dask.array.Array
        The lazy result.

    Raises
    ------
    TypeError, ValueError
        As :func:`dropout`, and for a rank below 3 or an unknown ``data_format``.

    Examples
    --------
    >>> import dask.array as da, fastdrop.dask as fdd
    >>> x = da.ones((2, 3, 8), chunks=(1, 3, 4))
    >>> bool(np.array_equal(fdd.spatial_dropout(x, 0.5, seed=2).compute(),
    ...                     fd.spatial_dropout(np.ones((2, 3, 8)), 0.5, seed=2)))
    True
    """
    if not isinstance(darr, da.Array):
        raise TypeError(f"darr must be a dask.array.Array, got {type(darr).__module__}.{type(darr).__name__}")
    return dropout(darr, p, seed=seed, noise_shape=spatial_noise_shape(darr.shape, data_format), offset=offset)


def _rates_like(p, darr, global_noise):
    """Per-element rates as a Dask array whose chunks line up with ``darr``'s."""
    if p.dtype.kind not in "fiu":
        raise ValueError(f"p must be a real number in [0, 1] or an array of them, got an array of dtype {p.dtype}")
    check_rate_shape(p, global_noise)
    p = p.reshape((1,) * (darr.ndim - p.ndim) + p.shape)
    return p.rechunk(tuple((1,) if n == 1 else chunks for n, chunks in zip(p.shape, darr.chunks)))


def _dropout_chunk(x, p=None, *, seed, global_shape, noise_shape, offset, block_info=None):
    origin = tuple(start for start, _ in block_info[0]["array-location"])
    return dropout_box(x, p, seed=seed, global_shape=global_shape, origin=origin, noise_shape=noise_shape,
                       offset=offset)
