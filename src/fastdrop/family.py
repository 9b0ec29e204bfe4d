"""The dropout family as functions: each variant's math lives here once.

The layers in ``fastdrop.layers`` call these functions for both their forward and their
backward pass.  Masks come from the block streams of ``fastdrop.functional`` (through
``fd.dropout`` with a noise shape where that suffices), so every function here gives
the same bits on both backends and is reproducible from ``seed`` alone.
"""
import numbers

import numpy as np

from . import _backend
from .functional import (_apply, _keep, as_float_array, check_out, check_rate, dropout, keep_threshold,
                         resolve_noise_shape, resolve_seed, stream_key)

__all__ = ["classic_dropout"]

DATA_FORMATS = ("channels_first", "channels_last")


def check_scalar_rate(p, name="p"):
    """``p`` as a float in [0, 1]; ValueError naming ``name`` for arrays and anything else."""
    if isinstance(p, numbers.Real) and not isinstance(p, (bool, np.bool_)):
        return check_rate(p, name)
    raise ValueError(f"{name} must be a real number in [0, 1], got {p!r}")


def check_data_format(data_format):
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}")
    return data_format


def _identity(x, out):
    if out is None:
        return x.copy()
    np.copyto(out, x)
    return out


def classic_dropout(x, p=0.5, *, seed=None, training=True, noise_shape=None, out=None):
    """The original (non-inverted) dropout: kept elements unscaled while training,
    everything scaled by ``1 - p`` at inference.  The training mask is ``fd.dropout``'s."""
    x = as_float_array(x)
    p = check_scalar_rate(p)
    out = check_out(out, x)
    if not training:
        return np.multiply(x, x.dtype.type(1.0 - p), out=out)
    shape = resolve_noise_shape(noise_shape, x.shape)
    keep = _keep(stream_key(resolve_seed(seed)), 0, keep_threshold(p), shape)
    return _apply(x, keep, x.dtype.type(1.0), out)
