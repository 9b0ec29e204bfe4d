"""A small Elman RNN showing variational dropout on the inputs and on the recurrent state.

``h_t = tanh(drop_x(x)_t @ W_x + drop_h(h_{t-1}) @ W_h + b)``: ``drop_x`` masks each input
feature for a whole sequence (Keras's ``dropout``), ``drop_h`` masks each hidden unit
fed back for a whole sequence (Keras's ``recurrent_dropout``), both with one mask per
sequence held fixed over time (Gal and Ghahramani 2016).
"""
import numpy as np

from ..functional import derive_seed, resolve_seed
from ..layers import Module, VariationalDropout


class ElmanRNN(Module):
    """Batch-first Elman RNN over (N, T, input_size) arrays, float64 parameters.

    ``forward(x)`` returns all hidden states (N, T, hidden_size); ``backward(g)`` takes
    their gradient, returns d/dx and writes the parameter gradients into ``grads`` (same
    keys as ``params``) in place; ``parameters()`` pairs them for the kit's optimizers.
    """

    def __init__(self, input_size, hidden_size, *, dropout=0.0, recurrent_dropout=0.0, seed=None):
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        seed = resolve_seed(seed)
        rng = np.random.default_rng(derive_seed(seed, 0))
        bound = 1.0 / np.sqrt(hidden_size)      # PyTorch's nn.RNN initialisation
        self.params = {
            "W_x": rng.uniform(-bound, bound, (input_size, hidden_size)),
            "W_h": rng.uniform(-bound, bound, (hidden_size, hidden_size)),
            "b": rng.uniform(-bound, bound, hidden_size),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.input_dropout = VariationalDropout(dropout, time_axis=1, seed=derive_seed(seed, 1))
        self.recurrent_dropout = VariationalDropout(recurrent_dropout, time_axis=1, seed=derive_seed(seed, 2))
        self._cache = None

    def parameters(self):
        return [(self.params[name], self.grads[name]) for name in self.params]

    @property
    def training(self):
        """True in training mode (``train()`` and ``eval()`` switch both dropouts)."""
        return self.input_dropout.training

    def train(self, mode=True):
        """Training mode for both dropouts (``mode=False``: inference); returns the RNN."""
        self.input_dropout.train(mode)
        self.recurrent_dropout.train(mode)
        return self

    def forward(self, x):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3 or x.shape[2] != self.params["W_x"].shape[0]:
            raise ValueError(f"ElmanRNN expects input of rank 3 (N, T, {self.params['W_x'].shape[0]}), "
                             f"got shape {x.shape}")
        n, steps, _ = x.shape
        xd = self.input_dropout(x)                      # one input mask per sequence, all steps
        self.recurrent_dropout.start_sequence()         # one recurrent mask per sequence
        hidden = self.params["W_h"].shape[0]
        hs = np.empty((n, steps, hidden))
        hds = np.empty((n, steps, hidden))              # the dropped previous state each step saw
        h = np.zeros((n, hidden))
        for t in range(steps):
            hds[:, t] = self.recurrent_dropout.step(h)
            h = np.tanh(xd[:, t] @ self.params["W_x"] + hds[:, t] @ self.params["W_h"] + self.params["b"])
            hs[:, t] = h
        self._cache = (xd, hs, hds)
        return hs

    def backward(self, grad_hs):
        """Backpropagation through time: d/dx, with parameter gradients in ``grads``."""
        if self._cache is None:
            raise RuntimeError("ElmanRNN.backward called before any forward")
        xd, hs, hds = self._cache
        grad_hs = np.asarray(grad_hs, dtype=np.float64)
        if grad_hs.shape != hs.shape:
            raise ValueError(f"grad must have the output's shape {hs.shape}, got {grad_hs.shape}")
        grads = self.grads
        for g in grads.values():
            g[...] = 0.0
        grad_xd = np.empty_like(xd)
        carry = np.zeros(hs.shape[::2])
        for t in reversed(range(hs.shape[1])):
            da = (grad_hs[:, t] + carry) * (1.0 - hs[:, t] ** 2)
            grads["W_x"] += xd[:, t].T @ da
            grads["W_h"] += hds[:, t].T @ da
            grads["b"] += da.sum(axis=0)
            grad_xd[:, t] = da @ self.params["W_x"].T
            carry = self.recurrent_dropout.step_backward(da @ self.params["W_h"].T)
        return self.input_dropout.backward(grad_xd)
