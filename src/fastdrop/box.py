"""Dropout for one N-d sub-box of a larger logical array, without the rest of it.

A keep decision depends only on (seed, offset, the element's C-order index in the noise
shape, p), so a box of a huge array can build exactly its own part of the mask: each
contiguous run of the box in the global noise shape starts at a known global index.
Runs of at least a block with a scalar rate go through the fused one-pass kernel, all
in one call; otherwise one ``keep_mask_rows`` call builds the box's mask, run by run,
and it is applied.  The work is the box's size plus at most two partial blocks of 1024
decisions per run; nothing outside the box is generated.
Chunked and distributed engines (``fastdrop.dask``) are built on these two functions.
"""
import math
from typing import Optional, Sequence

import numpy as np
import numpy.typing as npt

from . import _core, _memory
from ._typing import BoolArray, FloatArray, NoiseShape, Rate, Seed, Shape
from ._stream import BLOCK_CHUNKS, stream_key
from ._validation import (as_float_array, check_index_range, check_offset, check_origin, check_out, check_rate,
                          check_seed, check_shape, resolve_noise_shape, resolve_seed)

__all__ = ["dropout_box", "dropout_mask_box"]

# From one block per run, a fused kernel call per run beats building the mask and applying
# it in a second pass (measured: 2.7x faster at 1024 elements, break-even near 256).
FUSED_MIN_RUN = BLOCK_CHUNKS


def dropout_box(x_box: npt.ArrayLike, p: Rate = 0.5, *, seed: Seed, global_shape: Shape, origin: Sequence[int],
                noise_shape: NoiseShape = None, offset: int = 0, out: Optional[FloatArray] = None) -> FloatArray:
    """Dropout of ``x_box``, the box ``[origin, origin + x_box.shape)`` of a larger array.

    The result is bit for bit
    ``fd.dropout(full, p, seed=seed, noise_shape=noise_shape, offset=offset)[box]`` for
    a ``full`` array of ``global_shape`` holding ``x_box`` at ``origin``.  ``seed`` is
    required and not None: every box of one logical array must share it.
    ``noise_shape`` is the global one (Keras semantics against ``global_shape``).

    A per-element ``p`` array is broadcastable either to the global noise shape (the box
    uses its slice of it) or to the box's own region of the noise shape (the box's rates);
    when it broadcasts to both the two readings select the same rates.

    Parameters
    ----------
    x_box : array_like
        The box's data, float16, bfloat16 (ml_dtypes), float32 or float64.
    p : float or array_like, default 0.5
        The drop rate(s): a float, or rates broadcastable to the global noise shape or to
        the box's region of it.
    seed : int, numpy.random.Generator, BitGenerator or SeedSequence
        Required (not None): the seed every box of the array shares.  A Generator is drawn
        from only by a call that passes every check and draws decisions (not at ``p == 0``).
    global_shape : int or sequence of int
        The shape of the whole logical array.
    origin : sequence of int
        The index of the box's first element in the whole array.
    noise_shape : sequence of int or None, optional
        The global noise shape, as in :func:`fastdrop.dropout`.
    offset : int, default 0
        The whole array's offset in the stream, as in :func:`fastdrop.dropout`.
    out : numpy.ndarray, optional
        Where to write the result (x_box's shape and dtype).

    Returns
    -------
    numpy.ndarray
        The box's part of the whole array's dropout, or ``out``.

    Raises
    ------
    TypeError
        ``x_box`` not a float array, an argument of the wrong type.
    ValueError
        ``seed`` None, a box outside ``global_shape``, ``p`` outside [0, 1], an offset out of
        range.

    Examples
    --------
    >>> full = np.arange(1.0, 13.0).reshape(3, 4)
    >>> fd.dropout_box(full[1:3, 2:4], 0.5, seed=7, global_shape=(3, 4), origin=(1, 2))
    array([[ 0., 16.],
           [ 0., 24.]])
    >>> bool(np.array_equal(_, fd.dropout(full, 0.5, seed=7)[1:3, 2:4]))
    True
    """
    given, x_box = x_box, as_float_array(x_box, "x_box")
    p = check_rate(p)
    out = check_out(out, x_box, given)
    seed, global_noise, lo, hi, offset = _resolve_box(seed, global_shape, origin, x_box.shape, noise_shape, offset)
    thr, scale = _box_rates(p, x_box.dtype, global_noise, lo, hi)
    if isinstance(p, float) and p == 0.0:
        return _core.copy_into(x_box, out)
    key = stream_key(resolve_seed(seed))      # after every check: a failed call leaves a Generator as it was
    starts = _run_starts(offset, global_noise, lo, hi)
    # Per-element rates always take the fused kernel (it reads them in place: no mask at all).
    if (_extent(lo, hi) == x_box.shape and starts.size
            and (np.ndim(thr) or starts.size == 1 or x_box.size // starts.size >= FUSED_MIN_RUN)):
        return _core.dropout_runs(key, starts, thr, scale, x_box, out)
    return _core.apply_keep(x_box, _core.keep_mask(key, starts, thr, _extent(lo, hi)), scale, out)


def dropout_mask_box(box_shape: Shape, p: Rate = 0.5, *, seed: Seed, global_shape: Shape, origin: Sequence[int],
                     noise_shape: NoiseShape = None, offset: int = 0) -> BoolArray:
    """The keep mask (True = kept) of a box's region of the global noise shape: the box of
    ``box_shape`` at ``origin`` of an array of ``global_shape`` (arguments as ``dropout_box``'s).

    Its shape is ``box_shape`` with 1 on the axes where the noise shape is 1, and it equals
    ``fd.dropout_mask(global_noise_shape, p, seed=seed, offset=offset)`` sliced to the box
    (``0:1`` on those axes), so it broadcasts against the box's data.

    Parameters
    ----------
    box_shape : int or sequence of int
        The box's shape.
    p, seed, global_shape, origin, noise_shape, offset
        As in :func:`dropout_box`.

    Returns
    -------
    numpy.ndarray of bool
        True where the box's element is kept.

    Raises
    ------
    TypeError
        An argument of the wrong type.
    ValueError
        ``seed`` None, a box outside ``global_shape``, ``p`` outside [0, 1].

    Examples
    --------
    >>> fd.dropout_mask_box((2, 2), 0.5, seed=7, global_shape=(3, 4), origin=(1, 2))
    array([[False,  True],
           [False,  True]])
    """
    box_shape = check_shape(box_shape, "box_shape")
    p = check_rate(p)
    seed, global_noise, lo, hi, offset = _resolve_box(seed, global_shape, origin, box_shape, noise_shape, offset)
    thr, _ = _box_rates(p, np.dtype(np.float64), global_noise, lo, hi)
    if isinstance(p, float) and p == 0.0:       # every element kept whatever the key: draw none, as dropout_box
        mask = _memory.empty(_extent(lo, hi), np.bool_)
        mask.fill(True)
        return mask
    key = stream_key(resolve_seed(seed))
    return _core.keep_mask(key, _run_starts(offset, global_noise, lo, hi), thr, _extent(lo, hi)).view(bool)


def _resolve_box(seed, global_shape, origin, box_shape, noise_shape, offset):
    """(seed, global noise shape, box corners in the noise shape, offset) after validation;
    the seed checked but not drawn from (``check_seed``): the caller draws its key last."""
    if seed is None:
        raise ValueError("seed must be given for a box (an int or a numpy.random.Generator), got None: "
                         "every box of one array must use the same seed")
    global_shape = check_shape(global_shape, "global_shape")
    if len(box_shape) != len(global_shape):
        raise ValueError(f"the box has {len(box_shape)} dimensions (shape {tuple(box_shape)}) but "
                         f"global_shape={global_shape} has {len(global_shape)}")
    origin = check_origin(origin, box_shape, global_shape)
    global_noise = resolve_noise_shape(noise_shape, global_shape)
    offset = check_offset(offset)
    check_index_range(offset, math.prod(global_noise))    # the whole logical array, not just this box
    seed = check_seed(seed)
    # On a noise axis of size 1 every element of the box shares index 0 of that axis.
    lo = tuple(o if n > 1 else 0 for o, n in zip(origin, global_noise))
    hi = tuple(o + b if n > 1 else min(b, 1) for o, b, n in zip(origin, box_shape, global_noise))
    return seed, global_noise, lo, hi, offset


def _extent(lo, hi):
    return tuple(h - l for l, h in zip(lo, hi))


def _box_rates(p, dtype, global_noise, lo, hi):
    """(threshold, scale) of the box's region of the noise shape: scalars for a float ``p``,
    else views of p's values broadcast to the global noise shape (or the region) and
    sliced to the region, never expanded."""
    extent = _extent(lo, hi)
    if isinstance(p, float):
        return _core.rate_arrays(p, dtype, extent)
    for target, box_slice in ((global_noise, tuple(slice(l, h) for l, h in zip(lo, hi))), (extent, ())):
        try:
            if np.broadcast_shapes(p.shape, target) == target:
                thr, scale = _core.rate_arrays(p, dtype, target)
                return thr[box_slice], scale[box_slice]
        except ValueError:
            pass
    raise ValueError(f"p of shape {p.shape} broadcasts neither to the global noise shape {global_noise} "
                     f"nor to the box's noise region {extent}")


def _run_starts(offset, global_noise, lo, hi):
    """Global start index of each contiguous run of the noise region [lo, hi), in C order.

    A run grows over trailing axes while the box spans them completely, so a box of whole
    rows (or a whole array) is a single run."""
    extent = _extent(lo, hi)
    if 0 in extent:
        return np.empty(0, dtype=np.int64)
    # Strides as Python ints (NumPy int64 would wrap silently); with offset + the noise size
    # <= 2**62 (checked by _resolve_box) every start and partial sum below fits in int64.
    strides = [math.prod(global_noise[axis + 1:]) for axis in range(len(extent))]
    split = len(extent) - 1
    while split > 0 and extent[split] == global_noise[split]:
        split -= 1
    starts = np.full((), offset + sum(l * s for l, s in zip(lo, strides)), dtype=np.int64)
    for axis in range(split):
        starts = np.add.outer(starts, np.arange(extent[axis], dtype=np.int64) * np.int64(strides[axis]))
    return starts.reshape(-1)
