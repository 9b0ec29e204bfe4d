"""The dropout family as NumPy layers with forward, backward, train/eval and a seeded state.

Every layer draws the mask of its k-th training forward from ``derive_seed(seed, k)``
and remembers only that 64-bit seed (plus shapes and the rates it used), so ``backward``
regenerates the very same mask through the kernels instead of storing it.  The math of
each variant is in ``fastdrop.family`` (or ``fastdrop.dropout``), shared with the
functional twins.
"""
import numbers

import numpy as np

from . import family
from .functional import as_float_array, derive_seed, dropout, resolve_noise_shape, resolve_seed

__all__ = ["DropoutLayer", "Dropout"]


class _ForwardRecord:
    """What backward needs from the last forward: its seed (None in eval), shape, extras."""
    __slots__ = ("seed", "shape", "extra")

    def __init__(self, seed, shape, extra=None):
        self.seed, self.shape, self.extra = seed, shape, extra


class DropoutLayer:
    """Base class: the training flag, the per-call seed counter, config and backward checks.

    ``counter`` is the number of training-mode forwards so far; forward number k (0-based)
    uses the substream ``derive_seed(seed, k)``.  Eval-mode calls draw no mask and leave
    the counter alone, so the sequence of training masks never depends on how often the
    model was evaluated in between.  A layer is not thread-safe (the counter and the
    record of the last forward are mutated per call): give each thread its own layer.
    """
    expected_ranks = None          # tuple of allowed input ranks, or None for any rank

    def __init__(self, *, seed=None):
        self.seed = resolve_seed(seed)
        self.training = True
        self.counter = 0
        self._last = None

    # -- mode -------------------------------------------------------------------------
    def train(self, mode=True):
        """Switch to training mode (``mode=False``: inference); returns the layer."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Switch to inference mode; returns the layer."""
        return self.train(False)

    # -- calls ------------------------------------------------------------------------
    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        x = self._check_input(x)
        seed = None
        if self.training:
            seed = derive_seed(self.seed, self.counter)
            self.counter += 1
        y, extra = self._forward(x, seed)
        self._last = _ForwardRecord(seed, x.shape, extra)
        return y

    def backward(self, grad):
        """The gradient w.r.t. the input of the last forward, for the output gradient ``grad``."""
        if self._last is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before any forward")
        grad = as_float_array(grad, "grad")
        if grad.shape != self._last.shape:
            raise ValueError(f"grad must have the shape of the last forward's output {self._last.shape}, "
                             f"got {grad.shape}")
        return self._backward(grad, self._last)

    def _check_input(self, x):
        x = as_float_array(x)
        if self.expected_ranks is not None and x.ndim not in self.expected_ranks:
            ranks = " or ".join(str(r) for r in self.expected_ranks)
            raise ValueError(f"{type(self).__name__} expects input of rank {ranks}, "
                             f"got rank {x.ndim} with shape {x.shape}")
        return x

    # -- config -----------------------------------------------------------------------
    def get_config(self):
        """The constructor arguments (seed resolved to its int) as a plain dict."""
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config):
        """A new layer (counter 0, training mode) from ``get_config()``'s dict."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _check_noise_shape(noise_shape):
    if noise_shape is None:
        return None
    try:
        entries = tuple(noise_shape)
    except TypeError:
        raise ValueError(f"noise_shape must be None or a tuple of ints >= 1 and None, got {noise_shape!r}") from None
    for n in entries:
        if n is not None and (isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or n < 1):
            raise ValueError(f"noise_shape must be None or a tuple of ints >= 1 and None, got {noise_shape!r}")
    return tuple(None if n is None else int(n) for n in entries)


class Dropout(DropoutLayer):
    """Dropout with drop probability ``p`` (PyTorch's ``nn.Dropout``, Keras's ``Dropout``).

    ``mode="inverted"`` (default): kept elements are scaled by ``1/(1-p)`` while training,
    inference is the identity.  ``mode="classic"``: kept elements unscaled while training,
    inference multiplies by ``1 - p``.  ``noise_shape`` (Keras): entries 1 share the mask
    along that axis, None means the input's size.  ``inplace=True`` writes the result into
    ``x`` (which must then be a writeable NumPy float array) and returns it.
    """
    MODES = ("inverted", "classic")

    def __init__(self, p=0.5, *, noise_shape=None, seed=None, inplace=False, mode="inverted"):
        self.p = family.check_scalar_rate(p)
        self.noise_shape = _check_noise_shape(noise_shape)
        if not isinstance(inplace, (bool, np.bool_)):
            raise TypeError(f"inplace must be a bool, got {inplace!r}")
        self.inplace = bool(inplace)
        if mode not in self.MODES:
            raise ValueError(f"mode must be 'inverted' or 'classic', got {mode!r}")
        self.mode = mode
        super().__init__(seed=seed)

    def _check_input(self, x):
        arr = super()._check_input(x)
        if self.inplace and not (arr is x and x.flags.writeable):
            raise TypeError(f"Dropout(inplace=True) needs a writeable native-byte-order numpy float array, "
                            f"got {type(x).__name__}")
        return arr

    def _forward(self, x, seed):
        out = x if self.inplace else None
        return self._apply(x, seed, out), None

    def _backward(self, grad, last):
        return self._apply(grad, last.seed, None)

    def _apply(self, x, seed, out):
        shape = resolve_noise_shape(self.noise_shape, x.shape)
        if self.mode == "classic":
            return family.classic_dropout(x, self.p, seed=seed, training=seed is not None,
                                          noise_shape=shape, out=out)
        if seed is None and out is x:
            return x
        return dropout(x, self.p, seed=seed, training=seed is not None, noise_shape=shape, out=out)

    def get_config(self):
        return {"p": self.p, "noise_shape": self.noise_shape, "seed": self.seed, "inplace": self.inplace,
                "mode": self.mode}
