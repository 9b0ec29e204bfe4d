"""The dropout family as NumPy layers with forward, backward, train/eval and a seeded state.

Every layer draws the mask of its k-th training forward from ``derive_seed(seed, k)``
and remembers only that 64-bit seed (plus shapes and the rates it used), so ``backward``
regenerates the very same mask through the kernels instead of storing it.  The math of
each variant is in ``fastdrop.family`` (or ``fastdrop.dropout``), shared with the
functional twins.
"""
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

import numpy as np
import numpy.typing as npt

from . import _core, family
from ._stream import stream_key, substream_window
from ._validation import (FLOAT_DTYPES, as_float_array, check_block_size, check_bool, check_choice, check_data_format,
                          check_gaussian_rate, check_layer_noise_shape, check_logit, check_out, check_real,
                          check_scalar_rate, check_temperature, check_time_axis, resolve_noise_shape, resolve_seed)
from ._validation import check_bias, check_residual, is_common_input, is_plain_dropout_add_call
from ._typing import FloatArray, NoiseShape, Seed
from .functional import dropout
from .residual import dropout_add, dropout_add_grad

_Self = TypeVar("_Self", bound="Module")
_Layer = TypeVar("_Layer", bound="DropoutLayer")

__all__ = ["AdaptiveDropout", "AlphaDropout", "ConcreteDropout", "DropBlock2D", "DropPath", "Dropout",
           "DropoutLayer", "GaussianDropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
           "VariationalDropout"]


SUBSTREAM_WINDOW = 256         # substream seeds a layer derives at once (see DropoutLayer.seed): 0.2 us a call


class Module:
    """What every trainable piece shares: ``layer(x)`` is ``forward(x)``, ``eval()`` is
    ``train(False)``, ``training`` is True in training mode.  Subclasses define
    ``train(mode)`` and ``forward(x)``; those that learn arrays also override ``parameters()``.
    ``layer(x, training=False)`` (or True) overrides the mode for that call alone, as in
    Keras; it needs a ``forward(x, training=...)``, which every dropout layer has."""

    def parameters(self) -> List[Tuple[npt.NDArray[Any], npt.NDArray[Any]]]:
        """The trainable arrays as ``(value, gradient)`` pairs: ``backward`` writes the
        gradients and an optimizer updates the values, both in place.  The dropout layers
        have none (ConcreteDropout's learned rate is the float ``logit``).

        Returns
        -------
        list of (numpy.ndarray, numpy.ndarray)
            The (value, gradient) pairs; empty for every dropout layer.

        Examples
        --------
        >>> fd.Dropout(0.5).parameters()
        []
        """
        return []

    def eval(self: _Self) -> _Self:
        """Switch to inference mode; returns the module.

        Returns
        -------
        Module
            The module itself, now in inference mode.

        Examples
        --------
        >>> fd.Dropout(0.5, seed=0).eval().training
        False
        """
        return self.train(False)

    def __call__(self, x: Any, *, training: Optional[bool] = None) -> Any:
        return self.forward(x) if training is None else self.forward(x, training=training)


class DropoutLayer(Module):
    """Base class: the training flag, the per-call seed counter, config and backward checks.

    ``counter`` is the number of training-mode forwards so far; forward number k (0-based)
    uses the substream ``derive_seed(seed, k)``.  Eval-mode calls draw no mask and leave
    the counter alone, so the sequence of training masks never depends on how often the
    model was evaluated in between.  The counter is guarded by a lock, so a layer shared
    by threads gives every forward its own substream (forwards k = 0, 1, 2, ... are all
    used exactly once); but ``backward`` pairs with the layer's last forward from any
    thread, so training code should still give each thread its own layer.  A forward that
    fails leaves no trace: every argument is checked before a substream is taken, and a
    substream taken by a forward that still fails is given back (unless another thread has
    taken the next one meanwhile), so the masks keep matching a ``from_config`` clone's.

    Subclasses implement ``_forward(x, seed) -> (y, extra)`` (``seed`` is None in eval
    mode) and ``_backward(grad, record)``, where ``record`` holds the forward's seed,
    input shape and ``extra``.

    Parameters
    ----------
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.

    Examples
    --------
    >>> layer = fd.Dropout(0.5, seed=1)
    >>> isinstance(layer, fd.DropoutLayer), layer.counter
    (True, 0)
    """
    expected_ranks = None          # tuple of allowed input ranks, or None for any rank
    min_rank = 0                   # the smallest rank accepted when expected_ranks is None

    def __init__(self, *, seed: Seed = None) -> None:
        self.seed = resolve_seed(seed)
        self.training = True
        self.counter = 0
        # The last forward's (seed, input shape, extra): what backward needs (seed None in eval
        # mode).  A plain tuple: a record class's constructor costs ~0.4 us of a ~5 us forward.
        self._last = None
        self._counter_lock = threading.Lock()

    @property
    def seed(self) -> int:
        """The layer's seed: forward k draws from ``derive_seed(seed, k)``.

        Examples
        --------
        >>> fd.Dropout(0.5, seed=3).seed
        3
        """
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        # The seed's stream key is kept with it, and the substream seeds (and their keys) of
        # the next SUBSTREAM_WINDOW forwards are computed at once (substream_window): a
        # forward then takes its seed and key from a list instead of two Python mixes.
        self._seed, self._key = value, stream_key(value)
        self._window = (0, [], [])
        self._window_keys = {}

    def __getstate__(self):            # locks do not pickle or deepcopy
        state = self.__dict__.copy()
        del state["_counter_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._counter_lock = threading.Lock()

    # -- mode -------------------------------------------------------------------------
    def train(self: _Layer, mode: bool = True) -> _Layer:
        """Switch to training mode (``mode=False``: inference); returns the layer.

        Parameters
        ----------
        mode : bool, default True
            True for training, False for inference.

        Returns
        -------
        DropoutLayer
            The layer itself.

        Raises
        ------
        TypeError
            ``mode`` not a bool.

        Examples
        --------
        >>> layer = fd.Dropout(0.5, seed=0).train(False)
        >>> layer.training, layer.train().training
        (False, True)
        """
        self.training = check_bool(mode, "mode")
        return self

    # -- calls ------------------------------------------------------------------------
    def forward(self, x: npt.ArrayLike, *, training: Optional[bool] = None) -> FloatArray:
        """The layer applied to ``x``; in training mode with the next mask of the sequence.

        ``training`` (a bool) overrides the layer's mode for this call alone: an inference
        call (``training=False``) draws no mask and leaves the counter alone, as in eval mode.
        ``layer(x, training=...)`` is the same call.

        Parameters
        ----------
        x : array_like
            float16, float32 or float64 input of a rank the layer takes.
        training : bool, optional
            This call's mode (default: the layer's ``training``).

        Returns
        -------
        numpy.ndarray
            The output, of x's dtype and shape.

        Raises
        ------
        TypeError
            ``x`` not a float array, ``training`` not a bool.
        ValueError
            An input of a rank or shape the layer does not take.

        Examples
        --------
        >>> layer = fd.Dropout(0.5, seed=0)
        >>> x = np.ones(6, dtype=np.float32)
        >>> layer(x, training=False)
        array([1., 1., 1., 1., 1., 1.], dtype=float32)
        >>> layer.counter, layer(x).shape, layer.counter
        (0, (6,), 1)
        """
        training = self.training if training is None else check_bool(training, "training")
        x = self._check_input(x)
        index, seed = self._take_substream()[:2] if training else (None, None)
        try:
            y, extra = self._forward(x, seed)
        except BaseException:
            self._give_back(index)
            raise
        self._last = (seed, x.shape, extra)      # x: the checked ndarray
        return y

    def _take_seed(self, training=None):
        """(index, seed) of the next mask in training mode (``training``, else the layer's mode),
        advancing the counter; else (None, None)."""
        if not (self.training if training is None else training):
            return None, None
        index, seed, _ = self._take_substream()
        return index, seed

    def _take_substream(self):
        """(index, seed, stream key) of the next training mask, advancing the counter.  The
        lock is taken with acquire/release: a ``with`` block costs twice as much (~0.3 us,
        of a ~5 us forward on 10K elements)."""
        lock = self._counter_lock
        lock.acquire()
        try:
            index = self.counter
            self.counter = index + 1
            start, seeds, keys = self._window
            if not start <= index < start + len(seeds):
                start, seeds, keys = self._window = (index, *substream_window(self._key, index, SUBSTREAM_WINDOW))
                self._window_keys = dict(zip(seeds, keys))
        finally:
            lock.release()
        return index, seeds[index - start], keys[index - start]

    def _is_common_call(self, x):
        """True when this layer's training call on x (with a derived int seed) is the
        functional API's common call, which ``_core`` takes as it is: 0 < p < 1 and an aligned
        C-contiguous float16/32/64 ndarray that is not empty."""
        return is_common_input(x, self.p, bfloat16=False)

    def _key_of(self, seed):
        """The stream key of a derived seed: from the window when it is there (one lookup)."""
        key = self._window_keys.get(seed)
        return stream_key(seed) if key is None else key

    def _give_back(self, index):
        """Undo ``_take_seed`` for a forward that failed, if no later forward took one since."""
        if index is not None:
            with self._counter_lock:
                if self.counter == index + 1:
                    self.counter = index

    def backward(self, grad: npt.ArrayLike) -> FloatArray:
        """The gradient w.r.t. the input of the last forward, for the output gradient ``grad``.

        The mask is regenerated from the forward's seed, not stored.

        Parameters
        ----------
        grad : array_like
            The gradient of the loss with respect to the last forward's output.

        Returns
        -------
        numpy.ndarray
            The gradient with respect to that forward's input.

        Raises
        ------
        RuntimeError
            No forward yet.
        ValueError
            ``grad`` not of the last output's shape.

        Examples
        --------
        >>> layer = fd.Dropout(0.5, seed=0)
        >>> y = layer(np.ones(4))
        >>> bool(np.array_equal(layer.backward(np.ones(4)), y))
        True
        """
        if self._last is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before any forward")
        grad = _as_float_input(grad, "grad")
        seed, shape, extra = self._last
        if grad.shape != shape:
            raise ValueError(f"grad must have the shape of the last forward's output {shape}, got {grad.shape}")
        return self._backward(grad, seed, extra)

    def _check_input(self, x):
        # _as_float_input's common answer inline (its frame is ~0.1 us of a layer call)
        if not (type(x) is np.ndarray and x.dtype in FLOAT_DTYPES and x.flags.aligned):
            x = as_float_array(x, "x")
        if self.expected_ranks is not None and x.ndim not in self.expected_ranks:
            ranks = " or ".join(str(r) for r in self.expected_ranks)
            raise ValueError(f"{type(self).__name__} expects input of rank {ranks}, "
                             f"got rank {x.ndim} with shape {x.shape}")
        if x.ndim < self.min_rank:
            raise ValueError(f"{type(self).__name__} expects input of rank >= {self.min_rank}, "
                             f"got rank {x.ndim} with shape {x.shape}")
        return x

    # -- config -----------------------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        """The constructor arguments (seed resolved to its int) as a plain dict: the
        architecture, not learned state (a learned rate restarts from ``init_p``).

        Returns
        -------
        dict
            Keyword arguments that rebuild the layer (``from_config``).

        Examples
        --------
        >>> fd.Dropout(0.25, seed=3).get_config()
        {'p': 0.25, 'noise_shape': None, 'seed': 3, 'inplace': False, 'mode': 'inverted'}
        """
        return {"seed": self.seed}

    @classmethod
    def from_config(cls: Type[_Layer], config: Dict[str, Any]) -> _Layer:
        """A new layer (counter 0, training mode) from ``get_config()``'s dict.

        Parameters
        ----------
        config : dict
            A ``get_config()`` result.

        Returns
        -------
        DropoutLayer
            A layer that draws the same masks as the one the config came from did.

        Examples
        --------
        >>> layer = fd.Dropout(0.5, seed=9)
        >>> clone = fd.Dropout.from_config(layer.get_config())
        >>> bool(np.array_equal(clone(np.ones(8)), layer(np.ones(8))))
        True
        """
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _as_float_input(x, name="x"):
    """``as_float_array(x, name)``, with the answer for an aligned native float ndarray (the
    usual layer input, returned as it is) given without the general checks."""
    if type(x) is np.ndarray and x.dtype in FLOAT_DTYPES and x.flags.aligned:
        return x
    return as_float_array(x, name)


class Dropout(DropoutLayer):
    """Dropout with drop probability ``p`` (PyTorch's ``nn.Dropout``, Keras's ``Dropout``).

    ``mode="inverted"`` (default): kept elements are scaled by ``1/(1-p)`` while training,
    inference is the identity.  ``mode="classic"``: kept elements unscaled while training,
    inference multiplies by ``1 - p``.  ``noise_shape`` (Keras): entries 1 share the mask
    along that axis, None means the input's size.  ``inplace=True`` writes the result into
    ``x`` (which must then be a writeable NumPy float array) and returns it.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    noise_shape : sequence of int or None, optional
        Keras's noise shape (None entries: the input's size).
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.
    inplace : bool, default False
        Write the result into the input.
    mode : {"inverted", "classic"}, default "inverted"
        Scale while training (inverted) or at inference (classic).

    Examples
    --------
    >>> layer = fd.Dropout(0.5, seed=0)
    >>> layer(np.ones(6))
    array([0., 0., 0., 2., 2., 2.])
    """
    MODES = ("inverted", "classic")

    def __init__(self, p: float = 0.5, *, noise_shape: NoiseShape = None, seed: Seed = None, inplace: bool = False,
                 mode: str = "inverted") -> None:
        self.p = check_scalar_rate(p)
        self.noise_shape = check_layer_noise_shape(noise_shape)
        self.inplace = check_bool(inplace, "inplace")
        self.mode = check_choice(mode, "mode", self.MODES)
        super().__init__(seed=seed)

    def forward(self, x: npt.ArrayLike, *, training: Optional[bool] = None) -> FloatArray:
        # The common training call (a plain C-contiguous aligned float ndarray, inverted,
        # no noise shape, 0 < p < 1) in one frame, straight to fd.dropout's kernel call with
        # the window's key: the general path's five frames cost ~1 us here, 20% of a forward
        # on 10K elements.  Everything else, and every failure, goes the general way.
        if (self.training if training is None else training is True) and not self.inplace and self._is_plain(x):
            index, seed, key = self._take_substream()
            try:
                y = _core.dropout_plain_key(x, self.p, key, 0, None)
            except BaseException:
                self._give_back(index)
                raise
            self._last = (seed, x.shape, None)
            return y
        return super().forward(x, training=training)

    forward.__doc__ = DropoutLayer.forward.__doc__

    def _check_input(self, x):
        # The common input (a plain aligned float ndarray; no noise shape, copy or rank to
        # check) is valid as it is: answered here, without the general path's frames.
        if (type(x) is np.ndarray and x.dtype in FLOAT_DTYPES and x.flags.aligned and self.noise_shape is None
                and not self.inplace and self.expected_ranks is None and not self.min_rank):
            return x
        arr = super()._check_input(x)
        if self.noise_shape is not None:          # None fits every shape
            resolve_noise_shape(self.noise_shape, arr.shape)
        if self.inplace:
            # The rule of every out= argument: fd.dropout(x, out=x) accepts exactly these.
            check_out(x, arr, x, name="x (Dropout(inplace=True) writes into it)")
            return x
        return arr

    def _forward(self, x, seed):
        out = x if self.inplace else None
        return self._apply(x, seed, out), None

    def _backward(self, grad, seed, extra):
        return self._apply(grad, seed, None)

    def _apply(self, x, seed, out):
        # The layer's common call (inverted, no noise shape, 0 < p < 1, a plain input that
        # _check_input or backward has checked, out None or x itself, a derived int seed) is
        # fd.dropout's common call: go straight to its kernel call, without checking again.
        # The input test (what _core.dropout_plain takes as it is: an in-place layer's x is
        # the caller's array, which may be unaligned, byte-swapped or strided) and the key's
        # lookup in the window are inline: each Python frame is ~0.1 us of a ~5 us call.
        if seed is not None and self._is_plain(x):
            return _core.dropout_plain_key(x, self.p, self._key_of(seed), 0, out)
        # noise_shape as configured (None entries included): fd.dropout resolves it, and None
        # lets the common call take its shortcut.
        if self.mode == "classic":
            return family.classic_dropout(x, self.p, seed=seed, training=seed is not None,
                                          noise_shape=self.noise_shape, out=out)
        return dropout(x, self.p, seed=seed, training=seed is not None, noise_shape=self.noise_shape, out=out)

    def _is_plain(self, x):
        """True when this layer's call on x is fd.dropout's common call (inverted, no noise
        shape, 0 < p < 1) on an input _core.dropout_plain_key takes as it is."""
        return self.noise_shape is None and self.mode == "inverted" and self._is_common_call(x)

    def get_config(self) -> Dict[str, Any]:
        return {"p": self.p, "noise_shape": self.noise_shape, "seed": self.seed, "inplace": self.inplace,
                "mode": self.mode}


class _RateLayer(DropoutLayer):
    """A layer with one scalar drop rate ``p`` whose forward and backward are one family
    function applied to the input and to the gradient with the same seed."""

    def __init__(self, p: float = 0.5, *, seed: Seed = None) -> None:
        self.p = check_scalar_rate(p)
        super().__init__(seed=seed)

    def _forward(self, x, seed):
        return self._apply(x, seed), None

    def _backward(self, grad, seed, extra):
        return self._apply(grad, seed)

    def get_config(self) -> Dict[str, Any]:
        return {"p": self.p, "seed": self.seed}


class _SpatialDropout(_RateLayer):
    def __init__(self, p: float = 0.5, *, data_format: str = "channels_first", seed: Seed = None) -> None:
        self.data_format = check_data_format(data_format)
        super().__init__(p, seed=seed)

    def _apply(self, x, seed):
        # the common call straight to the core with the window's key (_check_input checked the rank)
        if seed is not None and self._is_common_call(x):
            return _core.dropout_plain_over_key(x, self.p, self._key_of(seed),
                                                family.spatial_noise_shape(x.shape, self.data_format), 0, None)
        return family.spatial_dropout(x, self.p, seed=seed, training=seed is not None,
                                      data_format=self.data_format)

    def get_config(self) -> Dict[str, Any]:
        return {"p": self.p, "data_format": self.data_format, "seed": self.seed}


class SpatialDropout1D(_SpatialDropout):
    """Drops whole channels of (N, C, L) (``channels_first``) or (N, L, C) inputs.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    data_format : {"channels_first", "channels_last"}, default "channels_first"
        Where the channel axis is.
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.

    Examples
    --------
    >>> y = fd.SpatialDropout1D(0.5, seed=0)(np.ones((1, 4, 3)))
    >>> y[0, :, 0]
    array([0., 0., 0., 2.])
    """
    expected_ranks = (3,)


class SpatialDropout2D(_SpatialDropout):
    """Drops whole feature maps of (N, C, H, W) (``channels_first``) or (N, H, W, C) inputs.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    data_format : {"channels_first", "channels_last"}, default "channels_first"
        Where the channel axis is.
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.

    Examples
    --------
    >>> fd.SpatialDropout2D(0.5, seed=0)(np.ones((2, 3, 4, 4))).shape
    (2, 3, 4, 4)
    """
    expected_ranks = (4,)


class SpatialDropout3D(_SpatialDropout):
    """Drops whole volumes of (N, C, D, H, W) (``channels_first``) or (N, D, H, W, C) inputs.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    data_format : {"channels_first", "channels_last"}, default "channels_first"
        Where the channel axis is.
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.

    Examples
    --------
    >>> fd.SpatialDropout3D(0.5, seed=0)(np.ones((1, 2, 2, 2, 2))).shape
    (1, 2, 2, 2, 2)
    """
    expected_ranks = (5,)


class AlphaDropout(_RateLayer):
    """Alpha dropout for SELU networks (Klambauer et al. 2017): keeps mean 0 and variance 1
    of standard-normal inputs.  ``p == 1`` outputs zeros (as PyTorch).

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.

    Examples
    --------
    >>> fd.AlphaDropout(0.2, seed=0)(np.zeros(4)).round(4)
    array([-1.2362,  0.309 ,  0.309 ,  0.309 ])
    """

    def _forward(self, x, seed):
        return family.alpha_dropout(x, self.p, seed=seed, training=seed is not None), None

    def _backward(self, grad, seed, extra):
        return family.alpha_dropout_grad(grad, self.p, seed=seed, training=seed is not None)


class GaussianDropout(_RateLayer):
    """Multiplicative noise N(1, p/(1-p)) (Keras's ``GaussianDropout``); ``p`` in [0, 1).

    Parameters
    ----------
    p : float, default 0.5
        The rate in [0, 1): the noise variance is p / (1 - p).
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.

    Examples
    --------
    >>> fd.GaussianDropout(0.5, seed=0)(np.ones(3, dtype=np.float32))
    array([-0.06975484, -0.47996938,  0.98662436], dtype=float32)
    """

    def __init__(self, p: float = 0.5, *, seed: Seed = None) -> None:
        super().__init__(check_gaussian_rate(p), seed=seed)

    def _forward(self, x, seed):
        return family.gaussian_dropout(x, self.p, seed=seed, training=seed is not None), x.dtype

    def _backward(self, grad, seed, extra):
        # The forward's noise, drawn in the forward input's precision, whatever grad's dtype.
        return family.gaussian_dropout_grad(grad, self.p, seed=seed, training=seed is not None,
                                            dtype=extra)


class DropPath(_RateLayer):
    """Stochastic depth: drops whole samples (noise shape (N, 1, ..., 1)), scales the rest
    by 1/(1-p).  Put it on a residual branch: ``x + drop_path(branch(x))``.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.

    Examples
    --------
    >>> fd.DropPath(0.5, seed=0)(np.ones((4, 2)))
    array([[0., 0.],
           [0., 0.],
           [0., 0.],
           [2., 2.]])
    """
    min_rank = 1

    def _apply(self, x, seed):
        if seed is not None and self._is_common_call(x):         # as SpatialDropout's
            return _core.dropout_plain_over_key(x, self.p, self._key_of(seed), x.shape[:1] + (1,) * (x.ndim - 1), 0,
                                                None)
        return family.drop_path(x, self.p, seed=seed, training=seed is not None)


class DropBlock2D(_RateLayer):
    """DropBlock (Ghiasi et al. 2018) on (N, C, H, W) or (N, H, W, C) inputs: drops
    ``block_size`` x ``block_size`` squares per channel, rescales by the kept fraction.

    Parameters
    ----------
    p : float, default 0.1
        The drop rate in [0, 1] (the target fraction of dropped elements).
    block_size : int, default 7
        The side of the dropped squares.
    data_format : {"channels_first", "channels_last"}, default "channels_first"
        Where the channel axis is.
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.

    Examples
    --------
    >>> fd.DropBlock2D(0.2, 3, seed=0)(np.ones((1, 1, 6, 6))).shape
    (1, 1, 6, 6)
    """
    expected_ranks = (4,)

    def __init__(self, p: float = 0.1, block_size: int = 7, *, data_format: str = "channels_first",
                 seed: Seed = None) -> None:
        self.block_size = check_block_size(block_size)
        self.data_format = check_data_format(data_format)
        super().__init__(p, seed=seed)

    def _apply(self, x, seed):
        return family.dropblock2d(x, self.p, self.block_size, seed=seed, training=seed is not None,
                                  data_format=self.data_format)

    def get_config(self) -> Dict[str, Any]:
        return {"p": self.p, "block_size": self.block_size, "data_format": self.data_format, "seed": self.seed}


class VariationalDropout(_RateLayer):
    """One mask per sequence shared over all time steps (Gal and Ghahramani 2016).

    ``forward(x)`` takes a whole sequence batch (rank >= 2, time along ``time_axis``).
    Inside a step-by-step recurrent loop, call ``start_sequence()`` once per sequence
    (it draws the mask seed and advances the counter) and then ``step(h)`` on each step's
    (N, ...) state: every step gets the same mask, equal to the one ``forward`` would use
    on the stacked sequence.  ``step_backward(g)`` is its gradient.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    time_axis : int, default 1
        The axis the mask is shared along.
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.

    Examples
    --------
    >>> layer = fd.VariationalDropout(0.5, seed=0).start_sequence()
    >>> bool(np.array_equal(layer.step(np.ones((2, 3))), layer.step(np.ones((2, 3)))))
    True
    """

    def __init__(self, p: float = 0.5, *, time_axis: int = 1, seed: Seed = None) -> None:
        self.time_axis = check_time_axis(time_axis)
        super().__init__(p, seed=seed)
        self._sequence = None

    def _check_input(self, x):
        x = super()._check_input(x)
        if x.ndim < 2 or not -x.ndim <= self.time_axis < x.ndim:
            raise ValueError(f"VariationalDropout expects input of rank >= 2 with time_axis={self.time_axis} "
                             f"inside it, got rank {x.ndim} with shape {x.shape}")
        return x

    def _apply(self, x, seed):
        if seed is not None and self._is_common_call(x) and x.ndim >= 2 and -x.ndim <= self.time_axis < x.ndim:
            noise_shape = list(x.shape)
            noise_shape[self.time_axis] = 1
            return _core.dropout_plain_over_key(x, self.p, self._key_of(seed), tuple(noise_shape), 0, None)
        return family.variational_dropout(x, self.p, seed=seed, training=seed is not None, time_axis=self.time_axis)

    def start_sequence(self) -> "VariationalDropout":
        """Draw the mask of a new sequence for ``step`` (none in eval mode); returns the layer.

        Returns
        -------
        VariationalDropout
            The layer itself.

        Examples
        --------
        >>> layer = fd.VariationalDropout(0.5, seed=0).start_sequence()
        >>> layer.counter
        1
        """
        self._sequence = (self._take_seed()[1],)     # (None,) in eval mode
        return self

    def step(self, h: npt.ArrayLike) -> FloatArray:
        """The current sequence's mask applied to one time step ``h`` (N, ...).

        Parameters
        ----------
        h : array_like
            One time step of the sequence (the input without its time axis).

        Returns
        -------
        numpy.ndarray
            ``h`` with the sequence's mask applied (the same for every step).

        Raises
        ------
        RuntimeError
            No ``start_sequence()`` yet.

        Examples
        --------
        >>> layer = fd.VariationalDropout(0.5, seed=0).start_sequence()
        >>> layer.step(np.ones((2, 3)))
        array([[0., 0., 0.],
               [2., 2., 2.]])
        """
        return self._step(h, "step")

    def step_backward(self, grad: npt.ArrayLike) -> FloatArray:
        """The gradient of ``step``: the same mask applied to ``grad``.

        Parameters
        ----------
        grad : array_like
            The gradient of one step's output.

        Returns
        -------
        numpy.ndarray
            The gradient with respect to that step's input.

        Raises
        ------
        RuntimeError
            No ``start_sequence()`` yet.

        Examples
        --------
        >>> layer = fd.VariationalDropout(0.5, seed=0).start_sequence()
        >>> bool(np.array_equal(layer.step_backward(np.ones((2, 3))), layer.step(np.ones((2, 3)))))
        True
        """
        return self._step(grad, "step_backward")

    def _step(self, x, what):
        if self._sequence is None:
            raise RuntimeError(f"VariationalDropout.{what} called before start_sequence()")
        (seed,) = self._sequence
        return dropout(x, self.p, seed=seed, training=seed is not None)

    def get_config(self) -> Dict[str, Any]:
        return {"p": self.p, "time_axis": self.time_axis, "seed": self.seed}


class ConcreteDropout(DropoutLayer):
    """Concrete dropout (Gal, Hron and Kendall 2017): dropout with a learnable rate.

    The rate is ``p = sigmoid(logit)``; training multiplies x by the relaxed keep value
    ``(1 - drop) / (1 - p)`` with drop = sigmoid((logit + log u - log(1-u)) / temperature).
    ``backward(g)`` returns d/dx and stores d/dlogit in ``grad_logit``;
    ``regularization(weights)`` is the penalty to add to the loss and
    ``regularization_grad(weights)`` its gradients.  Update the rate with
    ``layer.logit -= lr * (layer.grad_logit + reg_grad_logit)``.  Inference is the
    identity (inverted-dropout scaling); keep the layer in training mode for MC dropout.
    The rate gradient needs the input, so the layer keeps a reference to the last input
    (do not modify it in place before ``backward``).

    Parameters
    ----------
    init_p : float, default 0.1
        The initial drop rate, in (0, 1).
    temperature : float, default 0.1
        The relaxation's temperature, > 0.
    weight_regularizer, dropout_regularizer : float
        The factors of the two terms of ``regularization``.
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.

    Examples
    --------
    >>> layer = fd.ConcreteDropout(0.2, seed=0)
    >>> y = layer(np.ones((2, 3)))
    >>> round(layer.p, 6), y.shape
    (0.2, (2, 3))
    """

    def __init__(self, init_p: float = 0.1, *, temperature: float = 0.1, weight_regularizer: float = 1e-6,
                 dropout_regularizer: float = 1e-5, seed: Seed = None) -> None:
        init_p = check_scalar_rate(init_p, "init_p")
        if not 0.0 < init_p < 1.0:
            raise ValueError(f"init_p must be in (0, 1) (the rate is learned through its logit), got {init_p!r}")
        self.init_p = init_p
        self.temperature = check_temperature(temperature)
        self.weight_regularizer = check_real(weight_regularizer, "weight_regularizer", low=0.0)
        self.dropout_regularizer = check_real(dropout_regularizer, "dropout_regularizer", low=0.0)
        self.logit = float(np.log(init_p) - np.log1p(-init_p))
        self.grad_logit = 0.0
        super().__init__(seed=seed)

    @property
    def p(self) -> float:
        """The current drop rate ``sigmoid(logit)``.

        Examples
        --------
        >>> round(fd.ConcreteDropout(0.2).p, 6)
        0.2
        """
        return float(family.concrete_rate(self.logit))

    def _check_input(self, x):
        x = super()._check_input(x)
        check_logit(self.logit)
        return x

    def _forward(self, x, seed):
        logit = self.logit
        return family.concrete_dropout(x, logit, temperature=self.temperature, seed=seed,
                                       training=seed is not None), (x, logit)

    def _backward(self, grad, seed, extra):
        x, logit = extra
        gx, self.grad_logit = family.concrete_dropout_grad(x, grad, logit, temperature=self.temperature,
                                                           seed=seed, training=seed is not None)
        return gx

    def _input_dim(self):
        if self._last is None:
            raise RuntimeError("ConcreteDropout.regularization needs a forward first (it uses the input size)")
        return int(np.prod(self._last[1][1:]))

    def regularization(self, weights: Sequence[npt.NDArray[Any]] = ()) -> float:
        """weight_regularizer * sum(w**2) / (1-p) + dropout_regularizer * D * (p log p + (1-p) log(1-p)),
        with D the number of features per sample of the last input and ``weights`` the
        parameters of the layer this dropout feeds.

        Parameters
        ----------
        weights : sequence of numpy.ndarray, optional
            The weights of the layer after this dropout.

        Returns
        -------
        float
            The penalty to add to the loss.

        Raises
        ------
        RuntimeError
            No forward yet (the penalty needs the input's size).

        Examples
        --------
        >>> layer = fd.ConcreteDropout(0.2, seed=0)
        >>> _ = layer(np.ones((2, 3)))
        >>> round(layer.regularization([np.ones(3)]), 9)
        -1.1262e-05
        """
        return self._regularization(weights)[0]

    def regularization_grad(self, weights: Sequence[npt.NDArray[Any]] = ()) -> Tuple[float, List[npt.NDArray[Any]]]:
        """(d/dlogit, [d/dw for w in weights]) of ``regularization(weights)``.

        Parameters
        ----------
        weights : sequence of numpy.ndarray, optional
            As in ``regularization``.

        Returns
        -------
        grad_logit : float
            The penalty's gradient with respect to ``logit``.
        grad_weights : list of numpy.ndarray
            Its gradients with respect to the weights.

        Raises
        ------
        RuntimeError
            No forward yet.

        Examples
        --------
        >>> layer = fd.ConcreteDropout(0.2, seed=0)
        >>> _ = layer(np.ones((2, 3)))
        >>> grad_logit, (grad_w,) = layer.regularization_grad([np.ones(3)])
        >>> grad_w
        array([2.5e-06, 2.5e-06, 2.5e-06])
        """
        return self._regularization(weights)[1:]

    def _regularization(self, weights):
        return family.concrete_regularization(self.logit, self._input_dim(), weights,
                                              weight_regularizer=self.weight_regularizer,
                                              dropout_regularizer=self.dropout_regularizer)

    def get_config(self) -> Dict[str, Any]:
        return {"init_p": self.init_p, "temperature": self.temperature,
                "weight_regularizer": self.weight_regularizer, "dropout_regularizer": self.dropout_regularizer,
                "seed": self.seed}


# Elements per slice when AdaptiveDropout(per_unit=True) measures each feature's mean |x|: a
# fixed buffer (512 KiB of float64), not one of x's size, at a Python-loop cost that stays
# small next to the pass.
MEAN_ABS_CHUNK = 1 << 16


def _feature_mean_abs(x, chunk_elements=None):
    """mean |x| per feature (the last axis) over the other axes, summed in float64 over slices
    of about ``chunk_elements`` along the first axis: memory O(chunk), not O(x).  Each slice's
    |x| is a C-ordered float64 temporary, so NumPy sums it in an order fixed by x's shape: the
    same rates for any memory order, strides or byte order of the same values."""
    chunk_elements = chunk_elements or MEAN_ABS_CHUNK
    if x.ndim == 1:
        return np.abs(x, dtype=np.float64)
    axes = tuple(range(x.ndim - 1))
    step = max(1, chunk_elements // max(1, x[0].size))
    total = sum(np.abs(x[i:i + step], dtype=np.float64, order="C").sum(axis=axes)
                for i in range(0, x.shape[0], step))
    return total / (x.size // x.shape[-1])


class AdaptiveDropout(DropoutLayer):
    """Dropout whose rate follows the activations: after each training forward the rate
    rises by ``adapt_rate`` when the input's mean ``|x|`` exceeds ``high``, falls by it when
    below ``low``, and stays within [p_min, p_max].

    With one rate, mean ``|x|`` is summed in float64 in a fixed order (partial sums per
    block of 1024 elements, added exactly), in the same kernel pass as the mask where the
    input is a plain C-contiguous array: the same float, hence the same later rates and
    masks, on every backend, ISA and thread count.

    ``per_unit=True`` keeps one rate per feature (the last axis, standout-style), each
    adapted from its own feature's mean ``|x|``, and uses the per-element rates of
    ``fd.dropout``.  The rates of the current state are in ``p`` (a float, or an array of
    the feature count once the first input has fixed it).

    Parameters
    ----------
    init_p : float, default 0.5
        The initial rate, in [p_min, p_max].
    adapt_rate : float, default 0.01
        How much the rate moves after each training forward.
    low, high : float, default 0.3, 0.7
        The mean ``|x|`` below which the rate falls and above which it rises.
    p_min, p_max : float, default 0.1, 0.9
        The range of the rate.
    per_unit : bool, default False
        One rate per feature (the last axis).
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.

    Examples
    --------
    >>> layer = fd.AdaptiveDropout(0.5, seed=0)
    >>> _ = layer(np.ones((4, 8)))
    >>> round(layer.p, 2)
    0.51
    """

    def __init__(self, init_p: float = 0.5, *, adapt_rate: float = 0.01, low: float = 0.3, high: float = 0.7,
                 p_min: float = 0.1, p_max: float = 0.9, per_unit: bool = False, seed: Seed = None) -> None:
        self.p_min = check_real(p_min, "p_min", low=0.0, high=1.0)
        self.p_max = check_real(p_max, "p_max", low=self.p_min, high=1.0)
        self.init_p = check_real(init_p, "init_p", low=self.p_min, high=self.p_max)
        self.adapt_rate = check_real(adapt_rate, "adapt_rate", low=0.0)
        self.low = check_real(low, "low", low=0.0)
        self.high = check_real(high, "high", low=self.low)
        self.per_unit = check_bool(per_unit, "per_unit")
        self.min_rank = 1 if self.per_unit else 0          # per-unit rates need a feature axis
        self.p = self.init_p
        super().__init__(seed=seed)

    def _check_input(self, x):
        x = super()._check_input(x)
        if self.per_unit and isinstance(self.p, np.ndarray) and self.p.shape != x.shape[-1:]:
            raise ValueError(f"AdaptiveDropout(per_unit=True) has {self.p.size} feature rates, "
                             f"got input with {x.shape[-1]} features (shape {x.shape})")
        return x

    def forward(self, x: npt.ArrayLike, *, training: Optional[bool] = None) -> FloatArray:
        # The common training call with one rate (a plain C-contiguous aligned float ndarray,
        # 0 < p < 1) in one frame, as Dropout.forward: mask and mean |x| from one kernel pass
        # with the window's key.  Everything else, and every failure, goes the general way.
        if (self.training if training is None else training is True) and not self.per_unit \
                and self._is_common_call(x):
            index, seed, key = self._take_substream()
            p = self.p
            try:
                y, total = _core.dropout_abs_sum_key(x, p, key, 0)
            except BaseException:
                self._give_back(index)
                raise
            self._adapt(total, x.size)
            self._last = (seed, x.shape, p)
            return y
        return super().forward(x, training=training)

    forward.__doc__ = DropoutLayer.forward.__doc__

    def _forward(self, x, seed):
        if self.per_unit:
            return self._forward_per_unit(x, seed)
        p = self.p
        if seed is None:
            return dropout(x, p, seed=None, training=False), p
        # One rate, an input fd.dropout's common call does not take as it is (or p 0 or 1):
        # _core.abs_sum sums |x| as forward's fused pass does, so the rate follows the same floats.
        y = dropout(x, p, seed=seed)
        self._adapt(_core.abs_sum(x), x.size)
        return y, p

    def _adapt(self, total, size):
        """One rate's step from the training input's sum of |x| over its size elements."""
        if size:                        # no activations, no evidence: the rate stays (nan: neither test holds)
            activity = total / size
            if activity > self.high:
                self.p = min(self.p + self.adapt_rate, self.p_max)
            elif activity < self.low:
                self.p = max(self.p - self.adapt_rate, self.p_min)

    def _forward_per_unit(self, x, seed):
        if not isinstance(self.p, np.ndarray):
            self.p = np.full(x.shape[-1:], self.init_p)
        p = self.p
        y = dropout(x, p, seed=seed, training=seed is not None)
        if seed is not None and x.size:
            activity = _feature_mean_abs(x)
            step = self.adapt_rate * ((activity > self.high).astype(np.float64) - (activity < self.low))
            self.p = np.clip(p + step, self.p_min, self.p_max)
        return y, p

    def _backward(self, grad, seed, extra):
        return dropout(grad, extra, seed=seed, training=seed is not None)

    def get_config(self) -> Dict[str, Any]:
        return {"init_p": self.init_p, "adapt_rate": self.adapt_rate, "low": self.low, "high": self.high,
                "p_min": self.p_min, "p_max": self.p_max, "per_unit": self.per_unit, "seed": self.seed}


__all__ += ["DropoutAdd"]


class DropoutAdd(DropoutLayer):
    """``residual + dropout(x + bias)`` in one fused pass: the residual connection of a
    transformer block with the dropout on its branch (Megatron's bias-dropout-add).

    ``layer(x, residual, bias=None)`` is ``forward``; ``bias`` is an input (the bias of the
    layer that produced x, added before the dropout, which that layer owns and learns), so
    the layer has no parameters.  ``backward(grad)`` returns ``(grad_x, grad_residual,
    grad_bias)`` by ``fd.dropout_add_grad``: grad_x by the regenerated mask, grad_residual
    is grad itself, grad_bias is None when the forward had no bias.  Seeds, the counter and
    train/eval are ``DropoutLayer``'s; inference is ``residual + (x + bias)``.
    ``noise_shape`` as ``Dropout``'s.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    noise_shape : sequence of int or None, optional
        Keras's noise shape (None entries: the input's size).
    seed : None, int, numpy.random.Generator, BitGenerator or SeedSequence, optional
        The layer's seed, resolved to an int at construction.

    Examples
    --------
    >>> layer = fd.DropoutAdd(0.5, seed=0)
    >>> x, residual = np.ones((2, 3), dtype=np.float32), np.zeros((2, 3), dtype=np.float32)
    >>> layer(x, residual, np.float32([1, 2, 3]))
    array([[0., 0., 0.],
           [4., 6., 8.]], dtype=float32)
    >>> grad_x, grad_residual, grad_bias = layer.backward(np.ones((2, 3), dtype=np.float32))
    >>> grad_bias
    array([2., 2., 2.], dtype=float32)
    """

    def __init__(self, p: float = 0.5, *, noise_shape: NoiseShape = None, seed: Seed = None) -> None:
        self.p = check_scalar_rate(p)
        self.noise_shape = check_layer_noise_shape(noise_shape)
        super().__init__(seed=seed)

    def __call__(self, x: npt.ArrayLike, residual: npt.ArrayLike,
                 bias: Optional[npt.ArrayLike] = None) -> FloatArray:
        return self.forward(x, residual, bias)

    def forward(self, x: npt.ArrayLike, residual: npt.ArrayLike,
                bias: Optional[npt.ArrayLike] = None) -> FloatArray:
        """The layer applied to (x, residual, bias); in training mode with the next mask.

        ``residual + dropout(x + bias)`` by ``fd.dropout_add``, with the mask of the layer's
        next substream in training mode; ``residual + (x + bias)`` in eval mode.

        Parameters
        ----------
        x : array_like
            float16, float32 or float64 input: the branch's output (before its bias).
        residual : array_like
            The skip connection: x's shape and dtype exactly.
        bias : array_like, optional
            Added to x before the dropout: x's dtype, broadcasting to x's shape.

        Returns
        -------
        numpy.ndarray
            ``residual + dropout(x + bias)``, of x's dtype and shape.

        Raises
        ------
        TypeError
            ``x``, ``residual`` or ``bias`` not a float array, ``residual`` or ``bias`` not
            of x's dtype.
        ValueError
            ``residual`` not of x's shape, a ``bias`` that does not broadcast to it, a noise
            shape that does not fit x.

        Examples
        --------
        >>> layer = fd.DropoutAdd(0.5, seed=0)
        >>> x, residual = np.ones(4, dtype=np.float32), np.full(4, 10.0, dtype=np.float32)
        >>> layer.forward(x, residual)
        array([10., 10., 10., 12.], dtype=float32)
        >>> layer.eval().forward(x, residual)
        array([11., 11., 11., 11.], dtype=float32)
        """
        # The common training call (fd.dropout_add's, with the derived int seed that 0 stands
        # for here) goes straight to its kernel call with the window's key: the checks below
        # took half of a forward on 10K elements.  Everything else goes the general way.
        if self.training and is_plain_dropout_add_call(x, residual, self.p, bias, 0, True, self.noise_shape, 0, None):
            index, seed, key = self._take_substream()
            try:
                y = _core.dropout_add_plain_key(x, residual, self.p, bias, key, 0, None)
            except BaseException:
                self._give_back(index)
                raise
            self._last = (seed, x.shape, None if bias is None else bias.shape)
            return y
        x = self._check_input(x)
        residual, bias = check_residual(residual, x), check_bias(bias, x)
        if self.noise_shape is not None:
            resolve_noise_shape(self.noise_shape, x.shape)
        index, seed = self._take_seed()
        try:
            y = dropout_add(x, residual, self.p, bias=bias, seed=seed, training=seed is not None,
                            noise_shape=self.noise_shape)
        except BaseException:
            self._give_back(index)
            raise
        self._last = (seed, x.shape, None if bias is None else bias.shape)
        return y

    def backward(self, grad: npt.ArrayLike) -> Tuple[FloatArray, FloatArray, Optional[FloatArray]]:
        """The gradients w.r.t. the last forward's x, residual and bias, for the output
        gradient ``grad``: ``fd.dropout_add_grad`` with the forward's mask, regenerated from
        its seed.

        ``DropoutLayer.backward`` with the three gradients of ``dropout_add`` as its result
        (this method exists for its signature and documentation).

        Parameters
        ----------
        grad : array_like
            The gradient of the loss with respect to the last forward's output.

        Returns
        -------
        grad_x : numpy.ndarray
            The gradient w.r.t. x: grad through the forward's mask and scale.
        grad_residual : numpy.ndarray
            ``grad`` itself (as a float array).
        grad_bias : numpy.ndarray or None
            grad_x summed to the forward's bias shape; None when the forward had no bias.

        Raises
        ------
        RuntimeError
            No forward yet.
        ValueError
            ``grad`` not of the last output's shape.

        Examples
        --------
        >>> layer = fd.DropoutAdd(0.5, seed=0)
        >>> _ = layer(np.ones(4), np.zeros(4), np.zeros(1))
        >>> grad_x, grad_residual, grad_bias = layer.backward(np.ones(4))
        >>> grad_x, grad_bias
        (array([0., 0., 0., 2.]), array([2.]))
        """
        return super().backward(grad)

    def _backward(self, grad, seed, extra):
        return dropout_add_grad(grad, self.p, seed=seed, training=seed is not None,
                                noise_shape=self.noise_shape, bias_shape=extra)

    def get_config(self) -> Dict[str, Any]:
        return {"p": self.p, "noise_shape": self.noise_shape, "seed": self.seed}
