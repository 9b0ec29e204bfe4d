"""A small NumPy neural-network kit for the demo and the examples.

Every layer has the shape fastdrop's dropout layers have: ``layer(x)`` runs the forward
pass and remembers what the backward pass needs, ``layer.backward(gy)`` returns the
gradient with respect to the input of the last forward call, ``train()``/``eval()``
switch modes. Layers with weights list them in ``params()`` as (value, gradient) pairs
that the optimizer updates in place. Everything is float32: dropout's kernels and
BLAS are fastest there and the digits need no more precision.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

DTYPE = np.float32


def he_normal(rng, fan_in, shape):
    """He et al. 2015 initialisation: N(0, 2 / fan_in), the right scale before a ReLU."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(DTYPE)


class Layer:
    """Base class: no parameters, a training flag like PyTorch's ``module.training``."""

    training = True

    def params(self):
        return []

    def train(self):
        self.training = True
        return self

    def eval(self):
        self.training = False
        return self

    def __call__(self, x):
        return self.forward(x)


class Dense(Layer):
    """``x @ W + b`` over the last axis, He-initialised."""

    def __init__(self, n_in, n_out, rng):
        self.W = he_normal(rng, n_in, (n_in, n_out))
        self.b = np.zeros(n_out, dtype=DTYPE)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def params(self):
        return [(self.W, self.dW), (self.b, self.db)]

    def forward(self, x):
        self._x = x
        return x @ self.W + self.b

    def backward(self, gy):
        x2 = self._x.reshape(-1, self.W.shape[0])
        g2 = gy.reshape(-1, self.W.shape[1])
        self.dW[...] = x2.T @ g2
        self.db[...] = g2.sum(axis=0)
        return gy @ self.W.T


class ReLU(Layer):
    def forward(self, x):
        self._y = np.maximum(x, DTYPE(0))
        return self._y

    def backward(self, gy):
        return gy * (self._y > 0)


class Flatten(Layer):
    """(N, ...) -> (N, prod(...))."""

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, gy):
        return gy.reshape(self._shape)


class Conv2D(Layer):
    """'same' 2-D convolution, stride 1, odd square kernel, channels first (N, C, H, W).

    The forward pass builds the (N, H, W, C, k, k) window view of the zero-padded input
    with ``sliding_window_view`` (no copy) and contracts it with the kernels in one
    ``tensordot``; the input gradient is the same operation on the output gradient with
    the kernels flipped and transposed.
    """

    def __init__(self, c_in, c_out, kernel_size, rng):
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.pad = kernel_size // 2
        self.W = he_normal(rng, c_in * kernel_size * kernel_size, (c_out, c_in, kernel_size, kernel_size))
        self.b = np.zeros(c_out, dtype=DTYPE)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def params(self):
        return [(self.W, self.dW), (self.b, self.db)]

    def _windows(self, x):
        k = self.W.shape[-1]
        padded = np.pad(x, ((0, 0), (0, 0), (self.pad, self.pad), (self.pad, self.pad)))
        return sliding_window_view(padded, (k, k), axis=(2, 3))     # (N, C, H, W, k, k)

    def forward(self, x):
        self._win = self._windows(x)
        y = np.tensordot(self._win, self.W, axes=([1, 4, 5], [1, 2, 3]))   # (N, H, W, C_out)
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2)) + self.b[:, None, None]

    def backward(self, gy):
        self.dW[...] = np.tensordot(gy, self._win, axes=([0, 2, 3], [0, 2, 3]))
        self.db[...] = gy.sum(axis=(0, 2, 3))
        flipped = self.W[:, :, ::-1, ::-1]                               # (C_out, C_in, k, k)
        gwin = self._windows(gy)                                         # (N, C_out, H, W, k, k)
        gx = np.tensordot(gwin, flipped, axes=([1, 4, 5], [0, 2, 3]))    # (N, H, W, C_in)
        return np.ascontiguousarray(gx.transpose(0, 3, 1, 2))


class MaxPool2D(Layer):
    """2x2 max pooling, stride 2, channels first; H and W must be even."""

    def forward(self, x):
        n, c, h, w = x.shape
        blocks = x.reshape(n, c, h // 2, 2, w // 2, 2)
        y = blocks.max(axis=(3, 5))
        # The gradient goes to the first maximum of each window, as in PyTorch.
        flat = blocks.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
        self._argmax = flat.argmax(axis=-1)
        self._shape = x.shape
        return y

    def backward(self, gy):
        n, c, h, w = self._shape
        g = np.zeros((n, c, h // 2, w // 2, 4), dtype=gy.dtype)
        np.put_along_axis(g, self._argmax[..., None], gy[..., None], axis=-1)
        return g.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


class EmbeddingBag(Layer):
    """Mean of the embeddings of each row's tokens (PyTorch's ``EmbeddingBag(mode="mean")``).

    Input: (N, L) int token ids, with ``padding`` ids ignored (rows of different lengths
    padded to L). Output: (N, dim). Rows with no token give zeros.
    """

    def __init__(self, vocab_size, dim, rng, padding=-1):
        self.E = (rng.standard_normal((vocab_size, dim)) * 0.1).astype(DTYPE)
        self.dE = np.zeros_like(self.E)
        self.padding = padding

    def params(self):
        return [(self.E, self.dE)]

    def forward(self, ids):
        present = ids != self.padding
        counts = np.maximum(present.sum(axis=1, keepdims=True), 1)
        self._ids, self._weights = ids, (present / counts).astype(self.E.dtype)    # (N, L)
        return np.einsum("nl,nld->nd", self._weights, self.E[np.where(present, ids, 0)])

    def backward(self, gy):
        self.dE[...] = 0
        contributions = self._weights[:, :, None] * gy[:, None, :]                  # (N, L, dim)
        present = self._ids != self.padding
        np.add.at(self.dE, self._ids[present], contributions[present])
        return None             # token ids have no gradient


class Sequential(Layer):
    """Layers applied in order; backward in reverse; train/eval reach every layer."""

    def __init__(self, *layers):
        self.layers = list(layers)

    def params(self):
        return [pair for layer in self.layers for pair in _params_of(layer)]

    def train(self):
        self.training = True
        for layer in self.layers:
            layer.train()
        return self

    def eval(self):
        self.training = False
        for layer in self.layers:
            layer.eval()
        return self

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, gy):
        for layer in reversed(self.layers):
            gy = layer.backward(gy)
        return gy


def _params_of(layer):
    # fastdrop's dropout layers have no trainable weights here (ConcreteDropout's rate
    # is trained by the example that uses it), so they need not know this kit's API.
    return layer.params() if isinstance(layer, Layer) else []


def softmax(logits):
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of integer ``labels`` under ``softmax(logits)``, and its gradient."""
    n = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -float(log_probs[np.arange(n), labels].astype(np.float64).mean())
    grad = np.exp(log_probs)
    grad[np.arange(n), labels] -= 1.0
    return loss, (grad / n).astype(logits.dtype)


class SGD:
    """Mini-batch SGD with (heavy-ball) momentum and optional L2 weight decay.

    ``v = momentum * v - lr * (g + weight_decay * w); w += v``, PyTorch's update up to
    where the learning rate sits (identical for a constant learning rate).
    """

    def __init__(self, params, lr=0.05, momentum=0.9, weight_decay=0.0):
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self._velocity = [np.zeros_like(w) for w, _ in self.params]

    def step(self):
        for (w, g), v in zip(self.params, self._velocity):
            step = g + self.weight_decay * w if self.weight_decay else g
            v *= self.momentum
            v -= self.lr * step
            w += v
