"""The dropout family as functions: each variant's math lives here once.

The layers in ``fastdrop.layers`` call these functions for both their forward and their
backward pass.  Masks come from the block streams (through ``fd.dropout`` with a noise
shape where that suffices, else the private core), so every function here gives the same
bits on both backends and is reproducible from ``seed`` and ``offset`` alone.  Every
function that draws from the stream takes ``offset``, the stream index of its first
element (or word), as ``fd.dropout`` does.
"""
import collections.abc
import math
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

from . import _core, _memory
from ._typing import FloatArray, NoiseShape, Rate, Seed
from ._stream import stream_key
from ._validation import (FLOAT_DTYPES, as_float_array, check_block_size, check_bool, check_data_format,
                          check_dropout_call, check_forward_dtype, check_gaussian_rate, check_index_range, check_int,
                          check_logit, check_offset, check_out, check_real, check_scalar_rate, check_seed,
                          check_temperature, check_time_axis, resolve_seed)
from .functional import dropout

__all__ = ["alpha_dropout", "alpha_dropout_grad", "classic_dropout", "concrete_dropout", "concrete_dropout_grad",
           "concrete_rate", "concrete_regularization", "drop_path", "dropblock2d", "gaussian_dropout", "gaussian_dropout_grad",
           "spatial_dropout",
           "variational_dropout"]



def classic_dropout(x: npt.ArrayLike, p: float = 0.5, *, seed: Seed = None, training: bool = True,
                    noise_shape: NoiseShape = None, offset: int = 0, out: Optional[FloatArray] = None) -> FloatArray:
    """The original (non-inverted) dropout: kept elements unscaled while training,
    everything scaled by ``1 - p`` at inference.  The training mask is ``fd.dropout``'s;
    as there, nothing is drawn from a Generator seed with ``training=False`` or ``p == 0``.

    Parameters
    ----------
    x : array_like
        float16, bfloat16 (ml_dtypes), float32 or float64 values
    p : float, default 0.5
        The drop rate in [0, 1] (one rate: no array)
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        As in :func:`fastdrop.dropout`
    training : bool, default True
        False returns ``x * (1 - p)`` (inference)
    noise_shape : sequence of int or None, optional
        As in :func:`fastdrop.dropout`
    offset : int, default 0
        The flat index of the first element in a larger logical array (stream index)
    out : numpy.ndarray, optional
        Where to write the result (x's shape and dtype); ``out=x`` works in place

    Returns
    -------
    numpy.ndarray
        Kept elements unscaled, dropped ones 0 (training);
        of x's dtype and shape, in x's memory order, or ``out``

    Raises
    ------
    TypeError
        ``x`` not a float array, an argument of the wrong type.
    ValueError
        ``p`` outside [0, 1], an offset out of range, a bad ``out`` or noise shape.

    Examples
    --------
    >>> x = np.arange(1.0, 7.0)
    >>> fd.classic_dropout(x, 0.5, seed=42)
    array([1., 2., 0., 0., 5., 0.])
    >>> fd.classic_dropout(x, 0.5, training=False)
    array([0.5, 1. , 1.5, 2. , 2.5, 3. ])
    """
    x, p, shape, offset, training, out = check_dropout_call(x, p, noise_shape, offset, training, out,
                                                            scalar_rate=True)
    seed = check_seed(seed)
    if not training:
        return np.multiply(x, x.dtype.type(1.0 - p), out=out)
    if p == 0.0:                # every element kept, as by the mask: no key drawn, as fd.dropout
        return _core.copy_into(x, out)
    key = stream_key(resolve_seed(seed))
    return _core.dropout_over(key, offset, _core.keep_threshold(p), x.dtype.type(1.0), x, shape, out)


def spatial_dropout(x: npt.ArrayLike, p: Rate = 0.5, *, seed: Seed = None, training: bool = True,
                    data_format: str = "channels_first", offset: int = 0,
                    out: Optional[FloatArray] = None) -> FloatArray:
    """Drop whole feature maps: one decision per (sample, channel), shared over the spatial axes.

    ``x`` has rank >= 3: ``(N, C, *spatial)`` for ``channels_first``, ``(N, *spatial, C)`` for
    ``channels_last``.  The mask is ``fd.dropout``'s over the noise shape (N, C, 1, ..., 1)
    or (N, 1, ..., 1, C), so it is the same for both formats up to the transposition.

    Parameters
    ----------
    x : array_like
        float16, bfloat16 (ml_dtypes), float32 or float64 values of rank >= 3
    p : float or array_like, default 0.5
        The drop rate(s), broadcastable to the noise shape
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        As in :func:`fastdrop.dropout`
    training : bool, default True
        False returns a copy of ``x``
    data_format : {"channels_first", "channels_last"}, default "channels_first"
        Where the channel axis is
    offset : int, default 0
        The flat index of the first element in a larger logical array (stream index)
    out : numpy.ndarray, optional
        Where to write the result (x's shape and dtype); ``out=x`` works in place

    Returns
    -------
    numpy.ndarray
        Whole channels dropped or kept and scaled by ``1/(1-p)``;
        of x's dtype and shape, in x's memory order, or ``out``

    Raises
    ------
    TypeError
        ``x`` not a float array, an argument of the wrong type.
    ValueError
        A rank below 3, an unknown ``data_format``, ``p`` outside [0, 1].

    Examples
    --------
    >>> y = fd.spatial_dropout(np.ones((2, 3, 4)), 0.5, seed=1)
    >>> y[:, :, 0]
    array([[2., 0., 2.],
           [2., 0., 2.]])
    >>> bool((y == y[:, :, :1]).all())
    True
    """
    return dropout(x, p, seed=seed, training=training, noise_shape=spatial_noise_shape(_float_shape(x), data_format),
                   offset=offset, out=out)


def _float_shape(x):
    """The shape of ``as_float_array(x)``, which raises for what is no float array: the shape
    itself for the common input, an aligned float ndarray, which needs no conversion."""
    if type(x) is np.ndarray and x.dtype in FLOAT_DTYPES and x.flags.aligned:
        return x.shape
    return as_float_array(x).shape


def spatial_noise_shape(shape, data_format="channels_first"):
    """(N, C, 1, ..., 1) or (N, 1, ..., 1, C): the noise shape of spatial dropout on ``shape``."""
    if type(data_format) is str and data_format == "channels_first" and len(shape) >= 3:    # the common call
        return tuple(shape[:2]) + (1,) * (len(shape) - 2)
    check_data_format(data_format)
    if len(shape) < 3:
        raise ValueError(f"spatial_dropout expects input of rank >= 3 (N, C, *spatial), got shape {tuple(shape)}")
    channel_axis = 1 if data_format == "channels_first" else len(shape) - 1
    return tuple(n if axis in (0, channel_axis) else 1 for axis, n in enumerate(shape))


def variational_dropout(x: npt.ArrayLike, p: Rate = 0.5, *, seed: Seed = None, training: bool = True,
                        time_axis: int = 1, offset: int = 0, out: Optional[FloatArray] = None) -> FloatArray:
    """One mask per sequence, shared over all time steps (Gal and Ghahramani 2016).

    The mask over the other axes is ``fd.dropout``'s with ``noise_shape`` 1 on
    ``time_axis``; it equals ``fd.dropout(x_t, p, seed=seed)``'s mask for any single step
    ``x_t = x.take(t, time_axis)``, so a step-by-step RNN can apply it one step at a time.

    Parameters
    ----------
    x : array_like
        float16, bfloat16 (ml_dtypes), float32 or float64 values of rank >= 2
    p : float or array_like, default 0.5
        The drop rate(s)
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        As in :func:`fastdrop.dropout`
    training : bool, default True
        False returns a copy of ``x``
    time_axis : int, default 1
        The axis the mask is shared along
    offset : int, default 0
        The flat index of the first element in a larger logical array (stream index)
    out : numpy.ndarray, optional
        Where to write the result (x's shape and dtype); ``out=x`` works in place

    Returns
    -------
    numpy.ndarray
        ``x`` with one mask for every time step;
        of x's dtype and shape, in x's memory order, or ``out``

    Raises
    ------
    TypeError
        ``x`` not a float array, an argument of the wrong type.
    ValueError
        A rank below 2 or a ``time_axis`` outside it, ``p`` outside [0, 1].

    Examples
    --------
    >>> y = fd.variational_dropout(np.ones((1, 3, 4)), 0.5, seed=3)
    >>> y[0]
    array([[2., 0., 2., 0.],
           [2., 0., 2., 0.],
           [2., 0., 2., 0.]])
    """
    shape = list(_float_shape(x))
    time_axis = check_time_axis(time_axis)
    if not -len(shape) <= time_axis < len(shape) or len(shape) < 2:
        raise ValueError(f"variational_dropout expects input of rank >= 2 with time_axis={time_axis} "
                         f"inside it, got shape {tuple(shape)}")
    shape[time_axis] = 1
    return dropout(x, p, seed=seed, training=training, noise_shape=tuple(shape), offset=offset, out=out)


def drop_path(x: npt.ArrayLike, p: Rate = 0.5, *, seed: Seed = None, training: bool = True, offset: int = 0,
              out: Optional[FloatArray] = None) -> FloatArray:
    """Stochastic depth: drop whole samples (noise shape (N, 1, ..., 1)), scale the rest.

    Parameters
    ----------
    x : array_like
        float16, bfloat16 (ml_dtypes), float32 or float64 values of rank >= 1, samples on axis 0
    p : float or array_like, default 0.5
        The drop rate(s)
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        As in :func:`fastdrop.dropout`
    training : bool, default True
        False returns a copy of ``x``
    offset : int, default 0
        The flat index of the first element in a larger logical array (stream index)
    out : numpy.ndarray, optional
        Where to write the result (x's shape and dtype); ``out=x`` works in place

    Returns
    -------
    numpy.ndarray
        Whole samples dropped or kept and scaled by ``1/(1-p)``;
        of x's dtype and shape, in x's memory order, or ``out``

    Raises
    ------
    TypeError
        ``x`` not a float array, an argument of the wrong type.
    ValueError
        A 0-d ``x``, ``p`` outside [0, 1].

    Examples
    --------
    >>> fd.drop_path(np.ones((4, 2)), 0.5, seed=3)
    array([[2., 2.],
           [0., 0.],
           [2., 2.],
           [0., 0.]])
    """
    shape = _float_shape(x)
    if len(shape) < 1:
        raise ValueError(f"drop_path expects input of rank >= 1 (N, ...), got shape {shape}")
    return dropout(x, p, seed=seed, training=training, noise_shape=(shape[0],) + (1,) * (len(shape) - 1),
                   offset=offset, out=out)


# --- alpha dropout ------------------------------------------------------------------------
SELU_ALPHA_PRIME = -1.7580993408473766      # -lambda * alpha of SELU: the value SELU saturates at


def _alpha_coefficients(p):
    """(a, b) of Klambauer et al. 2017: a * (x * m + alpha' * (1 - m)) + b keeps mean 0, var 1."""
    q = 1.0 - p
    a = (q + SELU_ALPHA_PRIME ** 2 * q * p) ** -0.5
    return a, -a * SELU_ALPHA_PRIME * p


def alpha_dropout(x: npt.ArrayLike, p: float = 0.5, *, seed: Seed = None, training: bool = True, offset: int = 0,
                  out: Optional[FloatArray] = None) -> FloatArray:
    """Alpha dropout for SELU networks: dropped elements take SELU's saturation value
    alpha' and an affine map ``a * y + b`` restores mean 0 and variance 1 of standard-normal input.

    The keep mask is ``fd.dropout_mask(x.shape, p, seed=seed, offset=offset)``.
    ``p == 1`` gives zeros (the limit of the dropped value ``a * alpha' + b = a * alpha' * (1 - p)``,
    and PyTorch's choice); ``p == 0`` or ``training=False`` return a copy of ``x``.

    Parameters
    ----------
    x : array_like
        float16, bfloat16 (ml_dtypes), float32 or float64 values
    p : float, default 0.5
        The drop rate in [0, 1]
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        As in :func:`fastdrop.dropout`
    training : bool, default True
        False returns a copy of ``x``
    offset : int, default 0
        The flat index of the first element in a larger logical array (stream index)
    out : numpy.ndarray, optional
        Where to write the result (x's shape and dtype); ``out=x`` works in place

    Returns
    -------
    numpy.ndarray
        ``a * x + b`` where kept, ``a * alpha' + b`` where dropped;
        of x's dtype and shape, in x's memory order, or ``out``

    Raises
    ------
    TypeError
        ``x`` not a float array, an argument of the wrong type.
    ValueError
        ``p`` outside [0, 1], an offset out of range, a bad ``out``.

    Examples
    --------
    >>> y = fd.alpha_dropout(np.zeros(5), 0.5, seed=4)
    >>> y.round(4)
    array([-0.7792, -0.7792,  0.7792,  0.7792,  0.7792])
    """
    x, p, offset, training, out = _alpha_args(x, p, offset, training, out, "x")
    seed = check_seed(seed)
    if not training or p in (0.0, 1.0):
        return _alpha_edge(x, p, training, out)
    a, b = _alpha_coefficients(p)
    key = stream_key(resolve_seed(seed))
    return _core.alpha_full(key, offset, _core.keep_threshold(p), _alpha_coef(a, b), x, out)


def _alpha_coef(a, b):
    """(a, b, d) of the fused pass: kept x * a + b, dropped d = a * alpha' + b, each rounded
    in x's dtype by the kernel, so kept values are dtype(dtype(x * a) + b) as in the
    composition (x * a masked) + (kept ? b : d) and dropped ones dtype(d)."""
    return a, b, a * SELU_ALPHA_PRIME + b


def alpha_dropout_grad(grad: npt.ArrayLike, p: float = 0.5, *, seed: Seed = None, training: bool = True,
                       offset: int = 0, out: Optional[FloatArray] = None) -> FloatArray:
    """The gradient of ``alpha_dropout`` w.r.t. x for the same arguments: ``a * mask * grad``.

    Parameters
    ----------
    grad : array_like
        The gradient of the output (float16, float32 or float64)
    p, seed, training, offset
        The forward's arguments
    out : numpy.ndarray, optional
        Where to write the result

    Returns
    -------
    numpy.ndarray
        The gradient with respect to x: ``a`` where kept, 0 where dropped, times ``grad``

    Raises
    ------
    TypeError
        ``grad`` not a float array, an argument of the wrong type.
    ValueError
        ``p`` outside [0, 1], an offset out of range.

    Examples
    --------
    >>> g = fd.alpha_dropout_grad(np.ones(5), 0.5, seed=4)
    >>> g.round(4)
    array([0.    , 0.    , 0.8864, 0.8864, 0.8864])
    """
    grad, p, offset, training, out = _alpha_args(grad, p, offset, training, out, "grad")
    seed = check_seed(seed)
    if not training or p in (0.0, 1.0):
        return _alpha_edge(grad, p, training, out)
    a, _ = _alpha_coefficients(p)
    key = stream_key(resolve_seed(seed))
    return _core.dropout_full(key, offset, _core.keep_threshold(p), grad.dtype.type(a), grad, out)


def _alpha_args(x, p, offset, training, out, name):
    given, x = x, as_float_array(x, name)
    p, offset = check_scalar_rate(p), check_offset(offset)
    check_index_range(offset, x.size)
    return x, p, offset, check_bool(training, "training"), check_out(out, x, given)


def _alpha_edge(x, p, training, out):
    """Alpha dropout (and its gradient) where no mask is drawn: eval or p == 0 copy, p == 1 zeros."""
    if training and p == 1.0:
        out[...] = 0
        return out
    return _core.copy_into(x, out)


# --- Gaussian dropout ----------------------------------------------------------------------
def gaussian_dropout(x: npt.ArrayLike, p: float = 0.5, *, seed: Seed = None, training: bool = True,
                     offset: int = 0, out: Optional[FloatArray] = None) -> FloatArray:
    """Multiplicative Gaussian noise: ``x * dtype(1 + sqrt(p/(1-p)) * z)``, z standard normal.

    Element i (C order, plus ``offset``) takes normal ``offset + i`` of ``seed``'s stream: z
    is a float32 Box-Muller normal of word (offset + i) // 2 (its cos normal for an even
    index, its sin normal for an odd one), computed with correctly rounded IEEE
    operations only (``_noise.h``; its NumPy twin is ``_numpy_backend.standard_normals``),
    for every dtype, so the result is reproducible, chunkable like ``fd.dropout`` and
    bit-identical on every backend, ISA variant and thread count.  The noise has mean 1 and
    variance p/(1-p), as in Keras's ``GaussianDropout`` and Srivastava et al. 2014; it is
    rounded to float16 for float16 data.  Its backward pass is ``gaussian_dropout_grad``
    with the same arguments.

    Parameters
    ----------
    x : array_like
        float16, float32 or float64 values
    p : float, default 0.5
        In [0, 1): the noise variance is p / (1 - p)
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        As in :func:`fastdrop.dropout`
    training : bool, default True
        False returns a copy of ``x``
    offset : int, default 0
        The flat index of the first element in a larger logical array (stream index)
    out : numpy.ndarray, optional
        Where to write the result (x's shape and dtype); ``out=x`` works in place

    Returns
    -------
    numpy.ndarray
        ``x`` times its noise;
        of x's dtype and shape, in x's memory order, or ``out``

    Raises
    ------
    TypeError
        ``x`` not a float array, an argument of the wrong type.
    ValueError
        ``p`` outside [0, 1), an offset out of range, a bad ``out``.

    Examples
    --------
    >>> y = fd.gaussian_dropout(np.ones(4, dtype=np.float32), 0.5, seed=5)
    >>> y
    array([ 1.3846138,  2.2246335,  1.5513811, -1.3647034], dtype=float32)
    >>> bool(np.array_equal(fd.gaussian_dropout_grad(np.ones(4, dtype=np.float32), 0.5, seed=5), y))
    True
    """
    given, x = x, as_float_array(x, bfloat16=False)
    return _gaussian(given, x, p, seed, training, offset, out, x.dtype)


def gaussian_dropout_grad(grad: npt.ArrayLike, p: float = 0.5, *, seed: Seed = None, training: bool = True,
                          offset: int = 0, dtype: npt.DTypeLike = None, out: Optional[FloatArray] = None) -> FloatArray:
    """The gradient of ``gaussian_dropout`` w.r.t. x: ``grad`` times the forward's noise.

    ``dtype`` is the dtype of the forward's input (default: grad's): the noise is rounded
    exactly as that forward did (to float16 for a float16 input), so a float64 gradient of
    a float16 forward is multiplied by the very values the forward used.  Nothing is stored:
    the noise is regenerated from the seed.

    Parameters
    ----------
    grad : array_like
        The gradient of the output
    p, seed, training, offset
        The forward's arguments
    dtype : dtype, optional
        The forward input's dtype (default: grad's): the noise is rounded as the forward rounded it
    out : numpy.ndarray, optional
        Where to write the result

    Returns
    -------
    numpy.ndarray
        ``grad`` times the forward's noise

    Raises
    ------
    TypeError
        ``grad`` or ``dtype`` not float, an argument of the wrong type.
    ValueError
        ``p`` outside [0, 1), an offset out of range.

    Examples
    --------
    >>> fd.gaussian_dropout_grad(np.ones(4, dtype=np.float32), 0.5, seed=5)
    array([ 1.3846138,  2.2246335,  1.5513811, -1.3647034], dtype=float32)
    """
    given, grad = grad, as_float_array(grad, "grad", bfloat16=False)
    noise_dtype = grad.dtype if dtype is None else check_forward_dtype(dtype)
    return _gaussian(given, grad, p, seed, training, offset, out, noise_dtype)


def _gaussian(given, x, p, seed, training, offset, out, noise_dtype):
    """x * noise_dtype(1 + sigma z) into ``out``, z from stream words offset.. (float32)."""
    p = check_gaussian_rate(p)
    offset = check_offset(offset)
    check_index_range(offset, x.size)           # element i uses stream normal offset + i (word (offset + i) // 2)
    training = check_bool(training, "training")
    out = check_out(out, x, given)
    seed = check_seed(seed)
    if not training or p == 0.0:
        return _core.copy_into(x, out)
    half_noise = np.float16 in (noise_dtype, x.dtype)      # a float16 product rounds its factors to half
    return _core.gaussian_into(stream_key(resolve_seed(seed)), offset, np.float32(np.sqrt(p / (1.0 - p))),
                               half_noise, x, out)


# --- DropBlock ------------------------------------------------------------------------------
def dropblock_mask(shape, p, block_size, *, seed=None, offset=0):
    """The keep mask (bool, shape (N, C, H, W)) of DropBlock and the fraction it keeps.

    Block corners are drawn with probability gamma = p * H * W / (b**2 * (H-b+1) * (W-b+1))
    (Ghiasi et al. 2018) at the (H-b+1) x (W-b+1) positions where a whole b x b block fits,
    over (N, C, H-b+1, W-b+1), so every channel has its own blocks; b is ``block_size``
    clipped to min(H, W).  Corner k (C order) uses stream word ``offset + k``; it is drawn when
    the 53-bit uniform of that word is
    below gamma, so small rates keep their precision (gamma ~ p / b**2 is often below the
    1/65536 resolution of the dropout decisions).  Overlapping blocks make the dropped
    fraction fall below p: a little for small p and blocks, much for large p or blocks
    close to the map size (p = 0.5, b = 5 on 8 x 8 maps drops about 0.37).
    """
    n, c, h, w = shape
    keep = np.empty(shape, dtype=np.uint8)
    _dropblock_keep(keep, p, block_size, seed, offset)
    return keep.view(bool)


def _dropblock_keep(keep, p, block_size, seed, offset):
    """Fill the uint8 (N, C, H, W) array or view ``keep`` with DropBlock's keep bytes; the kept count."""
    _, _, h, w = keep.shape
    b = min(block_size, h, w)
    hv, wv = h - b + 1, w - b + 1
    gamma = min(1.0, p * h * w / (b * b * hv * wv)) if h and w else 0.0
    return _core.dropblock_keep(stream_key(resolve_seed(seed)), offset, b, corner_threshold(gamma), keep)


def corner_threshold(gamma):
    """The integer t with (word >> 11) < t exactly when the float64 u of the word,
    (word >> 11) + 0.5 rounded, times 2**-53, is below gamma: the kernels compare integers.

    u is monotone in m = word >> 11, so the m passing are [0, t); t starts at gamma * 2**53
    and moves while the float comparison (the same rounding as u) disagrees."""
    def below(m):
        return (float(m) + 0.5) * 2.0 ** -53 < gamma
    t = min(max(int(gamma * 2.0 ** 53), 0), 1 << 53)
    while t > 0 and not below(t - 1):
        t -= 1
    while t < 1 << 53 and below(t):
        t += 1
    return t


def dropblock2d(x: npt.ArrayLike, p: float = 0.1, block_size: int = 7, *, seed: Seed = None, training: bool = True,
                data_format: str = "channels_first", offset: int = 0, out: Optional[FloatArray] = None) -> FloatArray:
    """DropBlock (Ghiasi et al. 2018): drop b x b squares of each feature map, then rescale
    the kept elements by size / kept (the actual kept fraction over the whole array).

    ``x`` is (N, C, H, W) (``channels_first``) or (N, H, W, C); the mask is that of
    ``dropblock_mask`` on the (N, C, H, W) view, so both formats drop the same squares.
    ``p == 1`` (and any draw that keeps nothing) gives zeros.  Applied to the gradient with the same
    arguments it is the exact backward pass (same mask, same scale).

    Parameters
    ----------
    x : array_like
        float16, bfloat16 (ml_dtypes), float32 or float64 values of shape (N, C, H, W) or (N, H, W, C)
    p : float, default 0.1
        The target fraction of dropped elements, in [0, 1]
    block_size : int, default 7
        The side of the dropped squares (clipped to the map)
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        As in :func:`fastdrop.dropout`
    training : bool, default True
        False returns a copy of ``x``
    data_format : {"channels_first", "channels_last"}, default "channels_first"
        Where the channel axis is
    offset : int, default 0
        The flat index of the first element in a larger logical array (stream index)
    out : numpy.ndarray, optional
        Where to write the result (x's shape and dtype); ``out=x`` works in place

    Returns
    -------
    numpy.ndarray
        Kept elements scaled by size / kept, dropped squares 0;
        of x's dtype and shape, in x's memory order, or ``out``

    Raises
    ------
    TypeError
        ``x`` not a float array, an argument of the wrong type.
    ValueError
        A rank other than 4, a ``block_size`` below 1, ``p`` outside [0, 1].

    Examples
    --------
    >>> y = fd.dropblock2d(np.ones((1, 1, 6, 6)), 0.2, 3, seed=1)
    >>> (y[0, 0] > 0).astype(int)
    array([[1, 1, 1, 1, 1, 1],
           [1, 1, 1, 1, 1, 1],
           [1, 0, 0, 0, 1, 1],
           [1, 0, 0, 0, 1, 1],
           [1, 0, 0, 0, 1, 1],
           [1, 1, 1, 1, 1, 1]])
    >>> float(y.max())
    1.3333333333333333
    """
    given, x = x, as_float_array(x)
    p = check_scalar_rate(p)
    block_size = check_block_size(block_size)
    check_data_format(data_format)
    offset = check_offset(offset)
    training = check_bool(training, "training")
    if x.ndim != 4:
        raise ValueError(f"dropblock2d expects input of rank 4 (N, C, H, W) or (N, H, W, C), got shape {x.shape}")
    check_index_range(offset, x.size)     # corners use at most one word per element
    out = check_out(out, x, given)
    seed = check_seed(seed)
    if not training or p == 0.0 or x.size == 0:
        return _core.copy_into(x, out)
    if p == 1.0:                           # gamma's formula never covers everything: say so directly
        out[...] = 0
        return out
    keep = np.empty(x.shape, dtype=np.uint8)        # in x's layout: the apply pass reads it in order
    kept = _dropblock_keep(keep if data_format == "channels_first" else keep.transpose(0, 3, 1, 2),
                           p, block_size, seed, offset)
    scale = x.dtype.type(keep.size / kept if kept else 1.0)
    return _core.apply_keep(x, keep, scale, out)


# --- Concrete dropout -----------------------------------------------------------------------
def concrete_rate(logit: float) -> float:
    """The drop rate ``sigmoid(logit)`` of a Concrete dropout logit, without overflow for large ``|logit|``.

    Parameters
    ----------
    logit : float
        The logit of the drop rate: any real number, +-inf included

    Returns
    -------
    float
        ``1 / (1 + exp(-logit))``

    Raises
    ------
    TypeError
        ``logit`` not a real number (a bool, a string, a complex number, an array, ...).
    ValueError
        ``logit`` NaN.  Never OverflowError: large ``|logit|`` gives 0.0 or 1.0.

    Examples
    --------
    >>> fd.concrete_rate(0.0)
    0.5
    >>> fd.concrete_rate(-800.0)
    0.0
    """
    z = check_real(logit, "logit", finite=False)
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _concrete_args(logit, temperature, offset, size):
    """The checked (float32-exact logit, inv_t, offset) of a Concrete call over ``size`` elements:
    the kernels compute in float32, so logit is float32(logit) and inv_t float32(1 / temperature)
    (the float32 maximum where that overflows: a temperature below 2.9e-39 is a hard threshold)."""
    temperature = check_temperature(temperature)
    logit = float(np.float32(check_logit(logit)))
    offset = check_offset(offset)
    check_index_range(offset, size)             # element i uses stream word offset + i
    return logit, float(np.float32(min(1.0 / temperature, _FLOAT32_MAX))), offset


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _softplus(z):
    """log(1 + exp(z)) for a Python float, without overflow."""
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def concrete_dropout(x: npt.ArrayLike, logit: float, *, temperature: float = 0.1, seed: Seed = None,
                     training: bool = True, offset: int = 0, out: Optional[FloatArray] = None) -> FloatArray:
    """Concrete (relaxed Bernoulli) dropout with drop rate p = sigmoid(logit) (Gal, Hron and
    Kendall 2017): ``x * dtype(w)``, w = (1 - drop) / (1 - p), differentiable in ``logit``.

    Element i (C order, plus ``offset``) uses stream word ``offset + i`` of ``seed``: u =
    (its top 23 bits + 1/2) / 2**23, drop = sigmoid((logit + ln(u / (1 - u))) / temperature),
    all in float32 with correctly rounded IEEE operations only (``_noise.h``; the NumPy twin
    is ``_numpy_backend.concrete_weights``), for every dtype: the result is reproducible,
    chunkable like ``fd.dropout`` and bit-identical on every backend, ISA variant and thread
    count.  float16 data multiply by w rounded to half; float64 data by w widened exactly.
    ``|logit| <= 50`` (p within 2e-22 of 0 or 1), so that 1 / (1 - p) = 1 + exp(logit) is a
    finite float32.

    With ``training=False`` it returns a copy of ``x``: the relaxed mask divided by the keep
    rate has expectation close to 1, so inference is the identity, as for inverted dropout.

    Parameters
    ----------
    x : array_like
        float16, float32 or float64 values
    logit : float
        The drop rate is ``sigmoid(logit)``
    temperature : float, default 0.1
        The relaxation's temperature, > 0
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        As in :func:`fastdrop.dropout`
    training : bool, default True
        False returns a copy of ``x``
    offset : int, default 0
        The flat index of the first element in a larger logical array (stream index)
    out : numpy.ndarray, optional
        Where to write the result (x's shape and dtype); ``out=x`` works in place

    Returns
    -------
    numpy.ndarray
        ``x`` times its relaxed keep value over the keep rate;
        of x's dtype and shape, in x's memory order, or ``out``

    Raises
    ------
    TypeError
        ``x`` not a float array, an argument of the wrong type.
    ValueError
        A temperature <= 0, a non-finite logit, an offset out of range.

    Examples
    --------
    >>> y = fd.concrete_dropout(np.ones(4), -1.0, seed=7)
    >>> y.round(3)
    array([1.368, 1.368, 1.368, 1.368])
    """
    given, x = x, as_float_array(x, bfloat16=False)
    training = check_bool(training, "training")
    logit, inv_t, offset = _concrete_args(logit, temperature, offset, x.size)
    out = check_out(out, x, given)
    seed = check_seed(seed)
    if not training:
        return _core.copy_into(x, out)
    return _core.concrete_into(stream_key(resolve_seed(seed)), offset, logit, inv_t, x, out)


def concrete_dropout_grad(x: npt.ArrayLike, grad: npt.ArrayLike, logit: float, *, temperature: float = 0.1,
                          seed: Seed = None, training: bool = True, offset: int = 0) -> Tuple[FloatArray, float]:
    """(d/dx, d/dlogit) of sum(grad * concrete_dropout(x, logit, ...)) for the same seed.

    With w = (1 - drop) / (1 - p) = (1 - drop)(1 + exp(logit)) and d drop/dlogit =
    drop (1 - drop) / temperature: dy/dx = w and dy/dlogit = x * w * (p - drop / temperature).
    d/dx is ``grad * dtype(w)`` in grad's dtype (float16: w rounded to half).  d/dlogit is
    the sum of (grad * x) * s, s = w * (p - drop * inv_t) in float32 and the rest in
    float64: per block of 1024 stream elements in a fixed order (16 lanes, then a tree), the
    blocks' sums added exactly and rounded once, so it is the same float on every
    backend, ISA variant and thread count.  The noise is regenerated from the seed.

    Parameters
    ----------
    x : array_like
        The forward's input
    grad : array_like
        The gradient of the output, x's shape
    logit, temperature, seed, training, offset
        The forward's arguments

    Returns
    -------
    grad_x : numpy.ndarray
        The gradient with respect to x
    grad_logit : float
        The gradient with respect to logit

    Raises
    ------
    TypeError
        ``x`` or ``grad`` not float arrays.
    ValueError
        ``grad`` of another shape, a bad temperature or logit.

    Examples
    --------
    >>> gx, glogit = fd.concrete_dropout_grad(np.ones(4), np.ones(4), -1.0, seed=7)
    >>> bool(np.array_equal(gx, fd.concrete_dropout(np.ones(4), -1.0, seed=7)))
    True
    """
    x = as_float_array(x, bfloat16=False)
    grad = as_float_array(grad, "grad", bfloat16=False)
    if grad.shape != x.shape:
        raise ValueError(f"grad must have x's shape {x.shape}, got {grad.shape}")
    training = check_bool(training, "training")
    logit, inv_t, offset = _concrete_args(logit, temperature, offset, x.size)
    seed = check_seed(seed)
    if not training:
        return grad.copy(), 0.0
    grad_x = _memory.empty_like(grad)
    grad_logit = _core.concrete_grad_into(stream_key(resolve_seed(seed)), offset, logit, inv_t, x, grad, grad_x)
    return grad_x, grad_logit


def concrete_regularization(logit: float, input_dim: int, weights: Sequence[npt.NDArray[Any]] = (), *,
                            weight_regularizer: float = 1e-6, dropout_regularizer: float = 1e-5
                            ) -> Tuple[float, float, List[npt.NDArray[Any]]]:
    """Gal et al.'s penalty and its gradients: (value, d/dlogit, [d/dw for w in weights]).

    ``value = weight_regularizer * sum(w**2) / (1 - p) + dropout_regularizer * input_dim *
    (p log p + (1 - p) log(1 - p))``, the KL term of the variational objective (the second part is minus the entropy of
    the Bernoulli rate, which pushes p towards 1/2).

    Parameters
    ----------
    logit : float
        The drop rate's logit, in [-50, 50] as for :func:`concrete_dropout`
    input_dim : int
        The number of inputs the layer drops from, >= 1
    weights : sequence of numpy.ndarray, optional
        The weights of the layer after the dropout (any iterable of arrays, a generator
        too): float16, bfloat16, float32 or float64, as trainable weights are in Keras
        and PyTorch
    weight_regularizer, dropout_regularizer : float
        The two terms' factors: finite real numbers >= 0

    Returns
    -------
    value : float
        The penalty to add to the loss
    grad_logit : float
        Its gradient with respect to logit
    grad_weights : list of numpy.ndarray
        Its gradients with respect to the weights

    Raises
    ------
    TypeError
        ``logit`` or a factor not a real number, ``input_dim`` not an integer (bools are
        neither), ``weights`` a single array or no iterable, an entry ``weights[i]`` not a
        float array (integer, bool, complex or object dtype).
    ValueError
        ``|logit| > 50`` or NaN, ``input_dim`` below 1, a factor negative, infinite or NaN.

    Examples
    --------
    >>> value, grad_logit, grads = fd.concrete_regularization(0.0, 10, [np.ones(3)])
    >>> round(value, 9), grads[0].shape
    (-6.3315e-05, (3,))
    """
    logit = check_logit(logit)          # |logit| <= 50: q = 1 - p >= 1.9e-22, never 0
    input_dim = check_int(input_dim, "input_dim", low=1)
    weights = _regularized_weights(weights)
    weight_regularizer = check_real(weight_regularizer, "weight_regularizer", low=0.0)
    dropout_regularizer = check_real(dropout_regularizer, "dropout_regularizer", low=0.0)
    p, q = concrete_rate(logit), concrete_rate(-logit)
    squares = sum(float(np.sum(np.square(np.asarray(w, dtype=np.float64)))) for w in weights)
    neg_entropy = -(p * _softplus(-logit) + q * _softplus(logit))       # log p = -softplus(-logit)
    value = weight_regularizer * squares / q + dropout_regularizer * input_dim * neg_entropy
    d_logit = weight_regularizer * squares * p / q + dropout_regularizer * input_dim * logit * p * q
    d_weights = [2.0 * weight_regularizer / q * w for w in weights]
    return float(value), float(d_logit), d_weights


def _regularized_weights(weights):
    """``weights`` as a list of float arrays, each checked as ``x`` is and named ``weights[i]``.

    A list, so that a generator is read once for both the value and the gradients.  A single array is refused rather than iterated: its rows would pass
    for separate weights and the gradients come back as rows."""
    if isinstance(weights, (np.ndarray, str, bytes)) or not isinstance(weights, collections.abc.Iterable):
        raise TypeError(f"weights must be a sequence of float arrays ([w] for a single array), "
                        f"got {type(weights).__name__} {weights!r}")
    return [as_float_array(w, f"weights[{i}]") for i, w in enumerate(weights)]
