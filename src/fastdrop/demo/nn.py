"""A small NumPy neural-network kit for the demo and the examples.

Every layer follows fastdrop's own layer protocol, :class:`fastdrop.layers.Module`, as the
dropout layers do: ``layer(x)`` runs the forward pass and remembers what the backward pass
needs, ``layer.backward(gy)`` returns the gradient with respect to the input of the last
forward call, ``train(mode)``/``eval()`` switch modes and ``training`` tells the mode,
``parameters()`` lists the trainable arrays as (value, gradient) pairs that ``backward``
fills and the optimizers update in place. So a fastdrop layer goes anywhere in a
``Sequential`` with no adapter. Everything is float32: dropout's kernels and BLAS are
fastest there and these data need no more precision.
"""
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..layers import Module

DTYPE = np.float32


def he_normal(rng, fan_in, shape):
    """He et al. 2015 initialisation: N(0, 2 / fan_in), the right scale before a ReLU."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(DTYPE)


def _he_init(rng, fan_in, weight_shape, n_out):
    return he_normal(rng, fan_in, weight_shape), np.zeros(n_out, dtype=DTYPE)


def _torch_init(rng, fan_in, weight_shape, n_out):
    # PyTorch's default for Linear and Conv1d: kaiming_uniform(a=sqrt(5)) for the weights,
    # which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
    bound = 1.0 / np.sqrt(fan_in)
    weight = rng.uniform(-bound, bound, weight_shape).astype(DTYPE)
    return weight, rng.uniform(-bound, bound, n_out).astype(DTYPE)


INITS = {"he": _he_init, "torch": _torch_init}


class Layer(Module):
    """A kit layer: the training flag, and ``children`` that train() and parameters() reach."""

    training = True
    children = ()

    def train(self, mode=True):
        self.training = bool(mode)
        for child in self.children:
            child.train(mode)
        return self

    def parameters(self):
        return [pair for child in self.children for pair in child.parameters()]


class _Weighted(Layer):
    """A layer with a weight array ``W`` and a bias ``b``, initialised by ``INITS[init]``."""

    def __init__(self, weight_shape, fan_in, n_out, rng, init):
        if init not in INITS:
            raise ValueError(f"init must be one of {sorted(INITS)}, got {init!r}")
        self.W, self.b = INITS[init](rng, fan_in, weight_shape, n_out)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def parameters(self):
        return [(self.W, self.dW), (self.b, self.db)]


class Dense(_Weighted):
    """``x @ W + b`` over the last axis; ``init="he"`` (He normal, zero bias) or ``"torch"``
    (PyTorch's ``nn.Linear`` default)."""

    def __init__(self, n_in, n_out, rng, init="he"):
        super().__init__((n_in, n_out), n_in, n_out, rng, init)

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


class Reshape(Layer):
    """(N, ...) -> (N, *shape)."""

    def __init__(self, *shape):
        self.shape = shape

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], *self.shape)

    def backward(self, gy):
        return gy.reshape(self._shape)


class Conv1D(_Weighted):
    """1-D convolution of channels-last input (N, L, C_in) -> (N, L_out, C_out), with PyTorch
    ``Conv1d``'s arithmetic: zero ``padding`` on both ends, ``stride``, and
    ``L_out = (L + 2 padding - kernel_size) // stride + 1``.

    im2col: the forward pass copies the kernel_size strided slices of the padded input
    side by side into one (N, L_out, kernel_size, C_in) array and multiplies it by the
    (kernel_size * C_in, C_out) weights in one matmul; the backward pass multiplies the
    output gradient by the transposed weights and adds the kernel_size slices back.
    Channels last keeps every copy contiguous and the matmul's result in output order,
    so no transposition is needed. (PyTorch stores (C_out, C_in, k) weights and flattens
    channels first: the same model up to a fixed permutation of the weights.)
    """

    def __init__(self, c_in, c_out, kernel_size, rng, *, stride=1, padding=0, init="torch"):
        super().__init__((kernel_size * c_in, c_out), c_in * kernel_size, c_out, rng, init)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def _out_length(self, length):
        return (length + 2 * self.padding - self.kernel_size) // self.stride + 1

    def _taps(self, out_length):
        """The slice of the padded input that kernel tap j reads, for each j."""
        span = self.stride * (out_length - 1) + 1
        return [slice(j, j + span, self.stride) for j in range(self.kernel_size)]

    def forward(self, x):
        n, length, c_in = x.shape
        out_length = self._out_length(length)
        padded = np.zeros((n, length + 2 * self.padding, c_in), dtype=x.dtype)
        padded[:, self.padding:self.padding + length] = x
        cols = np.empty((n, out_length, self.kernel_size, c_in), dtype=x.dtype)
        for j, taps in enumerate(self._taps(out_length)):
            cols[:, :, j] = padded[:, taps]
        self._cols, self._length = cols.reshape(n * out_length, -1), length
        return (self._cols @ self.W + self.b).reshape(n, out_length, -1)

    def backward(self, gy):
        n, out_length, c_out = gy.shape
        g2 = gy.reshape(-1, c_out)
        self.dW[...] = self._cols.T @ g2
        self.db[...] = g2.sum(axis=0)
        gcols = (g2 @ self.W.T).reshape(n, out_length, self.kernel_size, -1)
        gpadded = np.zeros((n, self._length + 2 * self.padding, gcols.shape[-1]), dtype=gy.dtype)
        for j, taps in enumerate(self._taps(out_length)):
            gpadded[:, taps] += gcols[:, :, j]
        return gpadded[:, self.padding:self.padding + self._length]


class Conv2D(_Weighted):
    """'same' 2-D convolution, stride 1, odd square kernel, channels first (N, C, H, W).

    The forward pass builds the (N, H, W, C, k, k) window view of the zero-padded input
    with ``sliding_window_view`` (no copy) and contracts it with the kernels in one
    ``tensordot``; the input gradient is the same operation on the output gradient with
    the kernels flipped and transposed.
    """

    def __init__(self, c_in, c_out, kernel_size, rng, init="he"):
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.pad = kernel_size // 2
        super().__init__((c_out, c_in, kernel_size, kernel_size), c_in * kernel_size * kernel_size, c_out, rng, init)

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

    def parameters(self):
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

    @property
    def children(self):
        return self.layers

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, gy):
        for layer in reversed(self.layers):
            gy = layer.backward(gy)
        return gy


class Residual(Layer):
    """``x + body(x)``: the skip connection of the MNIST-1D reference MLP (``h = h + f(h)``)."""

    def __init__(self, body):
        self.body = body
        self.children = (body,)

    def forward(self, x):
        return x + self.body(x)

    def backward(self, gy):
        return gy + self.body.backward(gy)


class Timed(Layer):
    """``layer`` itself, with the wall time of its forward and backward calls added to ``seconds``.

    The demo wraps its dropout layers in it to report the share of the training time
    spent in fastdrop.
    """

    def __init__(self, layer):
        self.layer = layer
        self.children = (layer,)
        self.seconds = 0.0

    def forward(self, x):
        start = time.perf_counter()
        y = self.layer(x)
        self.seconds += time.perf_counter() - start
        return y

    def backward(self, gy):
        start = time.perf_counter()
        g = self.layer.backward(gy)
        self.seconds += time.perf_counter() - start
        return g


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


class Adam:
    """Adam (Kingma and Ba 2015) as PyTorch's ``torch.optim.Adam`` computes it, without weight decay.

    At step t: ``m += (1 - beta1) (g - m)``, ``v = beta2 v + (1 - beta2) g^2``,
    ``w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``, in the
    parameters' dtype.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, tuple(betas), eps
        self.t = 0
        self._m = [np.zeros_like(w) for w, _ in self.params]
        self._v = [np.zeros_like(w) for w, _ in self.params]

    def step(self):
        self.t += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.t)
        root_correction = (1 - beta2 ** self.t) ** 0.5
        for (w, g), m, v in zip(self.params, self._m, self._v):
            m += (1 - beta1) * (g - m)
            v *= beta2
            v += (1 - beta2) * g * g
            denominator = np.sqrt(v)
            denominator /= root_correction
            denominator += self.eps
            w -= step_size * m / denominator
