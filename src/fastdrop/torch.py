"""fastdrop for PyTorch: drop-in CPU replacements for ``torch.nn``'s dropout modules and functions.

``Dropout``, ``Dropout1d``, ``Dropout2d``, ``Dropout3d``, ``AlphaDropout`` and
``FeatureAlphaDropout`` are subclasses of their ``torch.nn`` namesakes (same arguments, same
``repr``, no extra state, so ``nn.Dropout`` checkpoints load strictly and ``isinstance`` checks
hold); ``dropout``, ``dropout1d``, ``dropout2d``, ``dropout3d``, ``alpha_dropout`` and
``feature_alpha_dropout`` have ``torch.nn.functional``'s signatures, defaults and errors.

How it works.  Each training call draws a 63-bit seed from torch's default CPU generator
(``torch.randint``), so ``torch.manual_seed``, ``torch.random.fork_rng`` and
``torch.utils.checkpoint`` (which restores the RNG state for its recompute) reproduce the
masks.  The work is a PyTorch custom op (``torch.ops.fastdrop.*``, with a fake kernel for
``torch.compile`` and an autograd formula) that runs ``fastdrop.dropout`` (or the alpha
functions) on ``tensor.numpy()`` views of the input and of an output laid out in the order
of the input's strides, as torch's own ops do (channels_last and transposed inputs give
outputs of the same layout).  The
mask is a function of (seed, logical C-order index, p), never of strides or threads, so
autograd saves only the seed tensor (8 bytes; torch keeps a noise tensor of the input's size)
and the backward regenerates the mask: it is the same op on the gradient.

Threads: the kernels use ``torch.get_num_threads()`` unless fastdrop's count was chosen
(``fastdrop.set_num_threads``, ``fastdrop.use_num_threads``, ``FASTDROP_NUM_THREADS``).  The
results never depend on the thread count.  OpenMP: fastdrop's kernels link the system's GNU
OpenMP and PyTorch's wheel ships its own copy, but both are named ``libgomp.so.1``, so the
dynamic loader loads whichever the first import needs and binds the other library to it:
one runtime and one thread pool per calling thread in either import order, no second pool
to oversubscribe the cores (``tests/test_torch.py`` checks both orders in fresh
interpreters: one libgomp mapped, the threads counted, no CPU burnt while idle).  fastdrop
needs only OpenMP 4.0 symbols (and, at fork, ``omp_pause_resource_all`` when present),
which torch's copy has.

Differences from torch, all deliberate:

* A dropped element is 0 even where the input is NaN or inf (a select); torch multiplies by 0
  and keeps NaN.  ``p == 1`` likewise gives exact zeros.
* The masks are fastdrop's stream, not torch's Bernoulli draws: the same seed state gives
  other (equally distributed) masks than ``torch.nn.Dropout``.
* float16, bfloat16, float32 and float64 outputs (and gradients) live in NumPy blocks that are handed
  out again once no tensor holds them (at most 4 blocks, 64 MiB; ``empty_cache()`` lets them
  go), so their storage cannot grow: ``resize_`` to a larger size raises RuntimeError.
* float16, bfloat16, float32 and float64 are read and written in place (zero copies for
  contiguous tensors; a non-contiguous one is staged through a contiguous buffer inside
  fastdrop, with the output in the input's layout).  bfloat16 tensors are read as NumPy
  arrays of ``ml_dtypes.bfloat16`` (installed by the ``torch`` extra) and run through
  fastdrop's compiled bfloat16 loops: kept values are x * bfloat16(1 / (1 - p)) rounded to
  bfloat16, the values torch's own CPU dropout keeps (its noise tensor is bfloat16).  Other
  dtypes, and tensors on any device but the CPU, raise TypeError naming the dtype or the
  device.
"""
import sys
import threading
import warnings

import numpy as np

try:
    import torch
except ImportError as exc:              # name the extra that provides it
    raise ImportError(f"fastdrop.torch needs PyTorch (pip install 'fastdrop[torch]'): {exc}") from exc
from torch.overrides import handle_torch_function, has_torch_function_unary

import fastdrop as _fd
from fastdrop._validation import has_internal_overlap

try:
    import ml_dtypes as _ml_dtypes          # NumPy's bfloat16: fastdrop.torch's view of bfloat16 tensors
except ImportError:                         # float16/32/64 work without it; bfloat16 names the extra
    _ml_dtypes = None

__all__ = ["AlphaDropout", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "FeatureAlphaDropout",
           "alpha_dropout", "dropout", "dropout1d", "dropout2d", "dropout3d", "empty_cache",
           "feature_alpha_dropout"]

Tensor = torch.Tensor
_SEED_HIGH = (1 << 63) - 1                                          # seeds are drawn in [0, 2**63 - 1)
_LEAF_MESSAGE = "a leaf Variable that requires grad is being used in an in-place operation."
_OVERLAP_MESSAGE = ("unsupported operation: more than one element of the written-to tensor refers to a single "
                    "memory location. Please clone() the tensor before performing the operation.")   # torch's words


# --- the kernels on tensors ---------------------------------------------------------------------
def _noise_shape(shape, feature):
    """None (one decision per element) or (N, C, 1, ..., 1): one decision per feature map."""
    return tuple(shape[:2]) + (1,) * (len(shape) - 2) if feature else None


# The NumPy type of each tensor dtype's storage; bfloat16 is stored as int16 (torch.from_numpy
# knows no ml_dtypes type) and viewed as ml_dtypes.bfloat16 by _as_numpy.
_STORAGE_OF = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64,
               torch.bfloat16: np.int16}


def _is_dense(shape, strides):
    """True when the elements fill a block of numel slots exactly (any axis order, no gaps)."""
    expected = 1
    for size, stride in sorted(((n, s) for n, s in zip(shape, strides) if n != 1), key=lambda a: a[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def _iterator_strides(shape, operands):
    """The strides torch's TensorIterator gives the output of an elementwise op on operands of
    ``shape`` with the given strides: its insertion sort of the axes (innermost first; a
    broadcast stride of 0 has no say, equal strides put the smaller axis inside), then dense
    strides in that order."""
    def should_swap(dim0, dim1):
        for strides in operands:
            s0, s1 = strides[dim0], strides[dim1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return -1 if s0 < s1 else 1
            if shape[dim0] > shape[dim1]:
                return 1
        return 0
    perm = list(range(len(shape)))[::-1]
    for i in range(1, len(perm)):
        dim1 = i
        for dim0 in range(i - 1, -1, -1):
            comparison = should_swap(perm[dim0], perm[dim1])
            if comparison > 0:
                perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
                dim1 = dim0
            elif comparison < 0:
                break
    strides, step = [0] * len(shape), 1
    for axis in perm:
        strides[axis] = step
        step *= shape[axis]
    return strides


def _broadcast_strides(noise_shape, shape):
    """The strides a contiguous tensor of noise_shape has when broadcast to shape."""
    contiguous = torch.empty(noise_shape, device="meta").stride()
    return [0 if n == 1 and m != 1 else s for n, m, s in zip(noise_shape, shape, contiguous)]


def _output_strides(x, feature):
    """The strides of torch's own dropout output for x: ``input * noise`` with the noise made
    by ``empty_like(input)`` (one per element) or of shape (N, C, 1, ..., 1) (feature
    dropout).  A dense input keeps its strides (TensorIterator's fast path); other inputs
    get TensorIterator's axis order."""
    shape, strides = tuple(x.shape), x.stride()
    if feature:
        noise = _broadcast_strides(tuple(shape[:2]) + (1,) * (len(shape) - 2), shape)
    elif _is_dense(shape, strides):
        return strides
    else:
        noise = torch.empty_like(x, device="meta").stride()
    return _iterator_strides(shape, [strides, noise])


def _refcounts(blocks):
    """sys.getrefcount of each block, taken the same way for the probe and the cached blocks,
    so the count of a block nothing else holds is measured, not assumed (it differs between
    Python versions)."""
    return [sys.getrefcount(block) for block in blocks]


class _OutputBlocks:
    """The memory of the ops' outputs: NumPy blocks, each handed out again to a
    later output of the same size and dtype once no tensor holds it (only this cache refers
    to it).

    Why: when glibc trims its heap after a large free (how often depends on everything else
    the process allocated), every fresh output is faulted in again page by page: a
    forward+backward at 1M float32 elements then took ~1000 page faults and 4-5 ms instead of
    2 ms, in one process of two (bench/NOTES.md, "fastdrop.torch's outputs").  Bounded: at
    most ``max_blocks`` blocks and ``max_bytes`` bytes, the least recently used forgotten
    first (a tensor still holding a forgotten block keeps it alive); larger outputs are not
    cached.  ``fastdrop.torch.empty_cache()`` forgets them all."""

    def __init__(self, max_blocks, max_bytes):
        self.max_blocks, self.max_bytes = max_blocks, max_bytes
        self._blocks = []                                   # least recently used first
        self._lock = threading.Lock()
        self._free_refs = _refcounts([np.empty(0)])[0]

    def take(self, size, dtype):
        """A 1-d block of ``size`` elements of ``dtype``, uninitialised."""
        dtype = np.dtype(dtype)
        if size * dtype.itemsize > self.max_bytes:
            return np.empty(size, dtype)
        with self._lock:
            blocks = self._blocks
            for i, refs in enumerate(_refcounts(blocks)):
                block = blocks[i]
                if refs <= self._free_refs and block.size == size and block.dtype == dtype:
                    blocks.append(blocks.pop(i))
                    return block
            block = np.empty(size, dtype)
            blocks.append(block)
            while len(blocks) > self.max_blocks or sum(b.nbytes for b in blocks) > self.max_bytes:
                blocks.pop(0)
            return block

    def clear(self):
        with self._lock:
            self._blocks.clear()


_OUTPUTS = _OutputBlocks(max_blocks=4, max_bytes=64 << 20)


def empty_cache() -> None:
    """Forget the output blocks fastdrop.torch keeps for reuse (at most 4 blocks, 64 MiB in
    all), so that the memory of those no tensor holds any more goes back to the allocator.

    Like ``torch.cuda.empty_cache``: results never depend on it, and later calls cache again.

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> y = ft.dropout(torch.ones(4))
    >>> ft.empty_cache()
    """
    _OUTPUTS.clear()


def _empty_like(x, feature):
    """An uninitialised tensor laid out as torch's dropout of x would be (``_output_strides``):
    channels_last and transposed inputs give outputs of the same layout, in the reused
    blocks of ``_OUTPUTS`` (bfloat16: int16 blocks viewed as bfloat16)."""
    strides = _output_strides(x, feature)
    flat = torch.from_numpy(_OUTPUTS.take(x.numel(), _STORAGE_OF[x.dtype])).view(x.dtype)
    return flat.as_strided(x.shape, strides)


def _empty_fake(x, seed, p, feature):
    """The fake kernels' output: the real kernels' shape, dtype and strides, no data."""
    return torch.empty_strided(x.shape, _output_strides(x, feature), dtype=x.dtype, device=x.device)


def _as_numpy(t):
    """The tensor's memory as a NumPy array of its dtype (bfloat16: ml_dtypes.bfloat16), no copy."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(_ml_dtypes.bfloat16)
    return t.numpy()


def _feature_alpha_into(xn, p, seed, shape, out, grad):
    """Feature alpha dropout (or its gradient) into ``out``: the per-map coefficients come from
    fastdrop's alpha functions on a noise-shaped array, so the math stays in fastdrop.family.

    scale is a (kept) or 0, shift b (kept) or the dropped value; dropped elements get exactly
    the shift (or 0), whatever x holds."""
    scale = _fd.alpha_dropout_grad(np.ones(shape, xn.dtype), p, seed=seed)
    np.multiply(xn, scale, out=out)
    if grad:
        np.copyto(out, 0, where=scale == 0)
        return
    shift = _fd.alpha_dropout(np.zeros(shape, xn.dtype), p, seed=seed)
    np.add(out, shift, out=out)
    np.copyto(out, shift, where=scale == 0)


def _run(kind, x, seed, p, feature, out):
    """``kind`` ("dropout", "alpha" or "alpha_grad") of x written into the tensor ``out``
    (``out`` may be x), on torch's thread count unless fastdrop's was chosen."""
    if x.numel() == 0:
        return
    xn, yn = _as_numpy(x), _as_numpy(out)
    seed = int(seed)
    shape = _noise_shape(xn.shape, feature)
    with _fd.use_num_threads(_fd.get_num_threads(default=torch.get_num_threads())):
        if kind == "dropout":
            _fd.dropout(xn, p, seed=seed, noise_shape=shape, out=yn)
        elif feature:
            _feature_alpha_into(xn, p, seed, shape, yn, grad=kind == "alpha_grad")
        elif kind == "alpha":
            _fd.alpha_dropout(xn, p, seed=seed, out=yn)
        else:
            _fd.alpha_dropout_grad(xn, p, seed=seed, out=yn)


# --- the custom ops -------------------------------------------------------------------------------
# seed is a 0-d int64 tensor: a Python int drawn from a tensor would break torch.compile's graph.
@torch.library.custom_op("fastdrop::dropout", mutates_args=(), device_types="cpu")
def _dropout_op(x: Tensor, seed: Tensor, p: float, feature: bool) -> Tensor:
    out = _empty_like(x, feature)
    _run("dropout", x, seed, p, feature, out)
    return out


@torch.library.custom_op("fastdrop::alpha_dropout", mutates_args=(), device_types="cpu")
def _alpha_op(x: Tensor, seed: Tensor, p: float, feature: bool) -> Tensor:
    out = _empty_like(x, feature)
    _run("alpha", x, seed, p, feature, out)
    return out


@torch.library.custom_op("fastdrop::alpha_dropout_grad", mutates_args=(), device_types="cpu")
def _alpha_grad_op(grad: Tensor, seed: Tensor, p: float, feature: bool) -> Tensor:
    out = _empty_like(grad, feature)
    _run("alpha_grad", grad, seed, p, feature, out)
    return out


@torch.library.custom_op("fastdrop::dropout_", mutates_args=("x",), device_types="cpu")
def _inplace_op(x: Tensor, seed: Tensor, p: float, feature: bool, alpha: bool) -> None:
    _run("alpha" if alpha else "dropout", x, seed, p, feature, x)


for _op in (_dropout_op, _alpha_op, _alpha_grad_op):
    _op.register_fake(_empty_fake)


@_inplace_op.register_fake
def _(x, seed, p, feature, alpha):
    return None


def _save_seed(ctx, inputs, output):
    _, seed, p, feature = inputs
    ctx.save_for_backward(seed)          # the mask is regenerated from it: nothing of x's size is kept
    ctx.p, ctx.feature = p, feature


def _backward_with(op):
    """The backward of an op whose derivative w.r.t. x is ``op`` applied to the gradient (each
    of these ops is linear and diagonal in x once the mask is fixed: its own adjoint)."""
    def backward(ctx, grad):
        seed, = ctx.saved_tensors
        return op(grad, seed, ctx.p, ctx.feature), None, None, None
    return backward


_dropout_op.register_autograd(_backward_with(_dropout_op), setup_context=_save_seed)
_alpha_op.register_autograd(_backward_with(_alpha_grad_op), setup_context=_save_seed)
_alpha_grad_op.register_autograd(_backward_with(_alpha_grad_op), setup_context=_save_seed)


# --- the functions --------------------------------------------------------------------------------
def _check_p(p):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _check_tensor(input, feature):
    if input.device.type != "cpu":
        raise TypeError(f"fastdrop.torch runs on CPU tensors only, got a tensor on device {input.device}; "
                        f"use torch.nn.functional's dropout there")
    if input.dtype not in _STORAGE_OF:
        raise TypeError(f"input must have dtype float16, bfloat16, float32 or float64, got {input.dtype}")
    if input.dtype == torch.bfloat16 and _ml_dtypes is None:
        raise TypeError("fastdrop.torch reads bfloat16 tensors as ml_dtypes.bfloat16 arrays, and ml_dtypes "
                        "is not installed: pip install 'fastdrop[torch]' (or ml_dtypes)")
    if feature and input.dim() < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")


def _draw_seed():
    """A 0-d int64 seed from torch's default CPU generator (one draw per training call)."""
    return torch.randint(0, _SEED_HIGH, (), dtype=torch.int64)


def _apply(input, p, training, inplace, feature, alpha):
    """The dropout of ``input`` as torch's ``_dropout_impl`` returns it: ``input`` itself when
    nothing is dropped (eval, p == 0, no elements), else a new tensor or ``input`` modified."""
    _check_tensor(input, feature)
    if not training or p == 0 or input.numel() == 0:
        return input
    needs_grad = input.requires_grad and torch.is_grad_enabled()
    if inplace and needs_grad and input.is_leaf:
        raise RuntimeError(_LEAF_MESSAGE)
    if inplace and has_internal_overlap(input.shape, [s * input.element_size() for s in input.stride()],
                                        input.element_size()):
        raise RuntimeError(_OVERLAP_MESSAGE)        # before the seed is drawn: a failed call leaves no trace
    seed = _draw_seed()
    if inplace and not needs_grad:
        _inplace_op(input, seed, float(p), feature, alpha)
        return input
    result = (_alpha_op if alpha else _dropout_op)(input, seed, float(p), feature)
    return input.copy_(result) if inplace else result     # copy_ carries the graph through the in-place use


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """``torch.nn.functional.dropout`` on fastdrop's kernels: each element is zeroed with
    probability ``p``, the rest scaled by 1 / (1 - p); see the module docstring.

    The mask is ``fastdrop.dropout``'s for a seed drawn from torch's default CPU generator
    (one draw per training call), so ``torch.manual_seed`` reproduces it; the backward pass
    regenerates it from that seed.

    Parameters
    ----------
    input : torch.Tensor
        A CPU tensor of dtype float16, bfloat16, float32 or float64, any shape and layout.
    p : float, default 0.5
        The probability of dropping an element, in [0, 1].
    training : bool, default True
        False (or ``p == 0``, or no elements) returns ``input`` itself.
    inplace : bool, default False
        Write the result into ``input`` and return it.

    Returns
    -------
    torch.Tensor
        The result, of input's shape, dtype and layout (``input`` itself in place or when nothing is dropped).

    Raises
    ------
    ValueError
        ``p`` outside [0, 1].
    TypeError
        ``input`` not on the CPU, or of another dtype.
    RuntimeError
        ``inplace=True`` on a leaf tensor that requires grad or on one whose elements share memory (``expand``).

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> _ = torch.manual_seed(0)
    >>> ft.dropout(torch.ones(8), 0.5)
    tensor([0., 2., 0., 0., 2., 2., 0., 0.])
    >>> ft.dropout(torch.ones(3), 0.5, training=False)
    tensor([1., 1., 1.])
    """
    if has_torch_function_unary(input):
        return handle_torch_function(dropout, (input,), input, p=p, training=training, inplace=inplace)
    _check_p(p)
    return _apply(input, p, training, inplace, feature=False, alpha=False)


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
    """``torch.nn.functional.alpha_dropout`` (note: ``training`` defaults to False, as in torch).

    Alpha dropout for SELU networks by ``fastdrop.alpha_dropout`` (and its gradient by
    ``fastdrop.alpha_dropout_grad``) with a seed drawn from torch's default CPU generator.

    Parameters
    ----------
    input : torch.Tensor
        A CPU tensor of dtype float16, bfloat16, float32 or float64, any shape and layout.
    p : float, default 0.5
        The probability of dropping an element, in [0, 1].
    training : bool, default False
        False (or ``p == 0``, or no elements) returns ``input`` itself.
    inplace : bool, default False
        Write the result into ``input`` and return it.

    Returns
    -------
    torch.Tensor
        The result, of input's shape, dtype and layout.

    Raises
    ------
    ValueError
        ``p`` outside [0, 1].
    TypeError
        ``input`` not on the CPU, or of another dtype.
    RuntimeError
        ``inplace=True`` on a leaf tensor that requires grad or on one whose elements share memory (``expand``).

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> _ = torch.manual_seed(0)
    >>> ft.alpha_dropout(torch.zeros(6), 0.5, training=True)
    tensor([-0.7792,  0.7792, -0.7792, -0.7792,  0.7792,  0.7792])
    """
    if has_torch_function_unary(input):
        return handle_torch_function(alpha_dropout, (input,), input, p=p, training=training, inplace=inplace)
    _check_p(p)
    return _apply(input, p, training, inplace, feature=False, alpha=True)


def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
    """``torch.nn.functional.feature_alpha_dropout``: alpha dropout of whole channels (N, C, ...).

    One decision per (sample, channel), shared along the other axes (noise shape
    (N, C, 1, ..., 1)).

    Parameters
    ----------
    input : torch.Tensor
        A CPU tensor of dtype float16, bfloat16, float32 or float64, any shape and layout.
    p : float, default 0.5
        The probability of dropping a channel, in [0, 1].
    training : bool, default False
        False (or ``p == 0``, or no elements) returns ``input`` itself.
    inplace : bool, default False
        Write the result into ``input`` and return it.

    Returns
    -------
    torch.Tensor
        The result, of input's shape, dtype and layout.

    Raises
    ------
    ValueError
        ``p`` outside [0, 1].
    TypeError
        ``input`` not on the CPU, or of another dtype.
    RuntimeError
        ``inplace=True`` on a leaf tensor that requires grad or on one whose elements share memory (``expand``), an input of fewer than 2 dimensions.

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> _ = torch.manual_seed(0)
    >>> ft.feature_alpha_dropout(torch.zeros(2, 3, 2), 0.5, training=True)[:, :, 0]
    tensor([[-0.7792,  0.7792, -0.7792],
            [-0.7792,  0.7792,  0.7792]])
    """
    if has_torch_function_unary(input):
        return handle_torch_function(feature_alpha_dropout, (input,), input, p=p, training=training,
                                     inplace=inplace)
    _check_p(p)
    return _apply(input, p, training, inplace, feature=True, alpha=True)


def _feature_dropout(input, p, training, inplace, add_batch):
    """Channel dropout with torch's handling of an unbatched input (a batch axis of 1 added)."""
    if add_batch:
        input = input.unsqueeze_(0) if inplace else input.unsqueeze(0)
    result = _apply(input, p, training, inplace, feature=True, alpha=False)
    if add_batch:
        result = result.squeeze_(0) if inplace else result.squeeze(0)
    return result


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """``torch.nn.functional.dropout1d``: zero whole channels of (N, C, L) or (C, L) input.

    One decision per (sample, channel), shared along L; kept channels are scaled by
    1 / (1 - p).

    Parameters
    ----------
    input : torch.Tensor
        A CPU tensor of dtype float16, bfloat16, float32 or float64, any shape and layout.
    p : float, default 0.5
        The probability of dropping a channel, in [0, 1].
    training : bool, default True
        False (or ``p == 0``, or no elements) returns ``input`` itself.
    inplace : bool, default False
        Write the result into ``input`` and return it.

    Returns
    -------
    torch.Tensor
        The result, of input's shape, dtype and layout.

    Raises
    ------
    ValueError
        ``p`` outside [0, 1].
    TypeError
        ``input`` not on the CPU, or of another dtype.
    RuntimeError
        ``inplace=True`` on a leaf tensor that requires grad or on one whose elements share memory (``expand``), an input of a rank other than 2 or 3.

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> _ = torch.manual_seed(0)
    >>> ft.dropout1d(torch.ones(2, 3, 2), 0.5)[:, :, 0]
    tensor([[0., 2., 0.],
            [0., 2., 2.]])
    """
    if has_torch_function_unary(input):
        return handle_torch_function(dropout1d, (input,), input, p=p, training=training, inplace=inplace)
    _check_p(p)
    inp_dim = input.dim()
    if inp_dim not in (2, 3):
        raise RuntimeError(
            f"dropout1d: Expected 2D or 3D input, but received a {inp_dim}D input. "
            "Note that dropout1d exists to provide channel-wise dropout on inputs with 1 "
            "spatial dimension, a channel dimension, and an optional batch dimension "
            "(i.e. 2D or 3D inputs).")
    return _feature_dropout(input, p, training, inplace, add_batch=inp_dim == 2)


def _warn_rank(name, inp_dim, spatial):
    warnings.warn(
        f"{name}: Received a {inp_dim}-D input to {name}, which is deprecated "
        "and will result in an error in a future release. To retain the behavior "
        f"and silence this warning, please use dropout instead. Note that {name} "
        f"exists to provide channel-wise dropout on inputs with {spatial} spatial dimensions, "
        f"a channel dimension, and an optional batch dimension (i.e. {spatial + 1}D or {spatial + 2}D inputs).",
        stacklevel=3)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """``torch.nn.functional.dropout2d``: zero whole channels of (N, C, H, W) input.  As in torch,
    a 3-D input is taken as (N, C, L) (with torch's warning), other ranks warn and still work.

    Parameters
    ----------
    input : torch.Tensor
        A CPU tensor of dtype float16, bfloat16, float32 or float64, any shape and layout.
    p : float, default 0.5
        The probability of dropping a channel, in [0, 1].
    training : bool, default True
        False (or ``p == 0``, or no elements) returns ``input`` itself.
    inplace : bool, default False
        Write the result into ``input`` and return it.

    Returns
    -------
    torch.Tensor
        The result, of input's shape, dtype and layout.

    Raises
    ------
    ValueError
        ``p`` outside [0, 1].
    TypeError
        ``input`` not on the CPU, or of another dtype.
    RuntimeError
        ``inplace=True`` on a leaf tensor that requires grad or on one whose elements share memory (``expand``).

    Warns
    -----
    UserWarning
        torch's warnings: an input of rank other than 3 or 4, and a 3-D input (taken as (N, C, L)).

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> _ = torch.manual_seed(0)
    >>> ft.dropout2d(torch.ones(1, 4, 1, 2), 0.5)[:, :, 0, 0]
    tensor([[0., 2., 0., 0.]])
    """
    if has_torch_function_unary(input):
        return handle_torch_function(dropout2d, (input,), input, p=p, training=training, inplace=inplace)
    _check_p(p)
    inp_dim = input.dim()
    if inp_dim not in (3, 4):
        _warn_rank("dropout2d", inp_dim, 2)
    if inp_dim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
            "1D dropout behavior is desired - input is interpreted as shape (N, C, L), where C "
            "is the channel dim. This behavior will change in a future release to interpret the "
            "input as one without a batch dimension, i.e. shape (C, H, W). To maintain the 1D "
            "channel-wise dropout behavior, please switch to using dropout1d instead.",
            stacklevel=2)
    return _feature_dropout(input, p, training, inplace, add_batch=False)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """``torch.nn.functional.dropout3d``: zero whole channels of (N, C, D, H, W) or (C, D, H, W) input.

    As in torch, other ranks warn and still work (as unbatched input).

    Parameters
    ----------
    input : torch.Tensor
        A CPU tensor of dtype float16, bfloat16, float32 or float64, any shape and layout.
    p : float, default 0.5
        The probability of dropping a channel, in [0, 1].
    training : bool, default True
        False (or ``p == 0``, or no elements) returns ``input`` itself.
    inplace : bool, default False
        Write the result into ``input`` and return it.

    Returns
    -------
    torch.Tensor
        The result, of input's shape, dtype and layout.

    Raises
    ------
    ValueError
        ``p`` outside [0, 1].
    TypeError
        ``input`` not on the CPU, or of another dtype.
    RuntimeError
        ``inplace=True`` on a leaf tensor that requires grad or on one whose elements share memory (``expand``).

    Warns
    -----
    UserWarning
        torch's warning: an input of rank other than 4 or 5.

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> _ = torch.manual_seed(0)
    >>> ft.dropout3d(torch.ones(1, 4, 1, 1, 2), 0.5)[:, :, 0, 0, 0]
    tensor([[0., 2., 0., 0.]])
    """
    if has_torch_function_unary(input):
        return handle_torch_function(dropout3d, (input,), input, p=p, training=training, inplace=inplace)
    _check_p(p)
    inp_dim = input.dim()
    if inp_dim not in (4, 5):
        _warn_rank("dropout3d", inp_dim, 3)
    return _feature_dropout(input, p, training, inplace, add_batch=inp_dim != 5)


# --- the modules ----------------------------------------------------------------------------------
class Dropout(torch.nn.Dropout):
    """``torch.nn.Dropout`` on fastdrop's kernels (``fastdrop.torch.dropout``).

    A subclass of ``torch.nn.Dropout`` with its arguments, ``repr`` and state (checkpoints of
    the torch module load into it strictly); ``forward`` is ``fastdrop.torch.dropout``.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    inplace : bool, default False
        Write the result into the input.

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> _ = torch.manual_seed(0)
    >>> layer = ft.Dropout(0.5)
    >>> layer
    Dropout(p=0.5, inplace=False)
    >>> layer(torch.ones(8))
    tensor([0., 2., 0., 0., 2., 2., 0., 0.])
    """

    def forward(self, input: Tensor) -> Tensor:
        """The layer applied to ``input``: ``fastdrop.torch.dropout`` with the module's ``p``
        and ``inplace``, in training mode (``train()``) with a fresh mask, else the input.

        Parameters
        ----------
        input : torch.Tensor
            A CPU tensor of dtype float16, bfloat16, float32 or float64.

        Returns
        -------
        torch.Tensor
            The result, of input's shape, dtype and layout.

        Examples
        --------
        >>> import torch
        >>> import fastdrop.torch as ft
        >>> x = torch.ones(4)
        >>> ft.Dropout(0.5).eval().forward(x) is x
        True
        """
        return dropout(input, self.p, self.training, self.inplace)


class Dropout1d(torch.nn.Dropout1d):
    """``torch.nn.Dropout1d`` on fastdrop's kernels (``fastdrop.torch.dropout1d``).

    A subclass of ``torch.nn.Dropout1d`` with its arguments, ``repr`` and state (checkpoints of
    the torch module load into it strictly); ``forward`` is ``fastdrop.torch.dropout1d``.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    inplace : bool, default False
        Write the result into the input.

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> _ = torch.manual_seed(0)
    >>> layer = ft.Dropout1d(0.5)
    >>> layer
    Dropout1d(p=0.5, inplace=False)
    >>> layer(torch.ones(1, 4, 2))[:, :, 0]
    tensor([[0., 2., 0., 0.]])
    """

    def forward(self, input: Tensor) -> Tensor:
        """The layer applied to ``input``: ``fastdrop.torch.dropout1d`` with the module's ``p``
        and ``inplace``, in training mode (``train()``) with a fresh mask, else the input.

        Parameters
        ----------
        input : torch.Tensor
            A CPU tensor of dtype float16, bfloat16, float32 or float64.

        Returns
        -------
        torch.Tensor
            The result, of input's shape, dtype and layout.

        Examples
        --------
        >>> import torch
        >>> import fastdrop.torch as ft
        >>> x = torch.ones(1, 2, 3)
        >>> ft.Dropout1d(0.5).eval().forward(x) is x
        True
        """
        return dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(torch.nn.Dropout2d):
    """``torch.nn.Dropout2d`` on fastdrop's kernels (``fastdrop.torch.dropout2d``).

    A subclass of ``torch.nn.Dropout2d`` with its arguments, ``repr`` and state (checkpoints of
    the torch module load into it strictly); ``forward`` is ``fastdrop.torch.dropout2d``.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    inplace : bool, default False
        Write the result into the input.

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> _ = torch.manual_seed(0)
    >>> layer = ft.Dropout2d(0.5)
    >>> layer
    Dropout2d(p=0.5, inplace=False)
    >>> layer(torch.ones(1, 4, 1, 2))[:, :, 0, 0]
    tensor([[0., 2., 0., 0.]])
    """

    def forward(self, input: Tensor) -> Tensor:
        """The layer applied to ``input``: ``fastdrop.torch.dropout2d`` with the module's ``p``
        and ``inplace``, in training mode (``train()``) with a fresh mask, else the input.

        Parameters
        ----------
        input : torch.Tensor
            A CPU tensor of dtype float16, bfloat16, float32 or float64.

        Returns
        -------
        torch.Tensor
            The result, of input's shape, dtype and layout.

        Examples
        --------
        >>> import torch
        >>> import fastdrop.torch as ft
        >>> x = torch.ones(1, 2, 3, 3)
        >>> ft.Dropout2d(0.5).eval().forward(x) is x
        True
        """
        return dropout2d(input, self.p, self.training, self.inplace)


class Dropout3d(torch.nn.Dropout3d):
    """``torch.nn.Dropout3d`` on fastdrop's kernels (``fastdrop.torch.dropout3d``).

    A subclass of ``torch.nn.Dropout3d`` with its arguments, ``repr`` and state (checkpoints of
    the torch module load into it strictly); ``forward`` is ``fastdrop.torch.dropout3d``.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    inplace : bool, default False
        Write the result into the input.

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> _ = torch.manual_seed(0)
    >>> layer = ft.Dropout3d(0.5)
    >>> layer
    Dropout3d(p=0.5, inplace=False)
    >>> layer(torch.ones(1, 4, 1, 1, 2))[:, :, 0, 0, 0]
    tensor([[0., 2., 0., 0.]])
    """

    def forward(self, input: Tensor) -> Tensor:
        """The layer applied to ``input``: ``fastdrop.torch.dropout3d`` with the module's ``p``
        and ``inplace``, in training mode (``train()``) with a fresh mask, else the input.

        Parameters
        ----------
        input : torch.Tensor
            A CPU tensor of dtype float16, bfloat16, float32 or float64.

        Returns
        -------
        torch.Tensor
            The result, of input's shape, dtype and layout.

        Examples
        --------
        >>> import torch
        >>> import fastdrop.torch as ft
        >>> x = torch.ones(1, 2, 3, 3, 3)
        >>> ft.Dropout3d(0.5).eval().forward(x) is x
        True
        """
        return dropout3d(input, self.p, self.training, self.inplace)


class AlphaDropout(torch.nn.AlphaDropout):
    """``torch.nn.AlphaDropout`` on fastdrop's kernels (``inplace`` is ignored, as in torch).

    A subclass of ``torch.nn.AlphaDropout`` with its arguments, ``repr`` and state (checkpoints of
    the torch module load into it strictly); ``forward`` is ``fastdrop.torch.alpha_dropout``.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    inplace : bool, default False
        Ignored, as in torch.

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> _ = torch.manual_seed(0)
    >>> layer = ft.AlphaDropout(0.5)
    >>> layer
    AlphaDropout(p=0.5, inplace=False)
    >>> layer(torch.zeros(4))
    tensor([-0.7792,  0.7792, -0.7792, -0.7792])
    """

    def forward(self, input: Tensor) -> Tensor:
        """The layer applied to ``input``: ``fastdrop.torch.alpha_dropout`` with the module's ``p``
        (not in place), in training mode (``train()``) with a fresh mask, else the input.

        Parameters
        ----------
        input : torch.Tensor
            A CPU tensor of dtype float16, bfloat16, float32 or float64.

        Returns
        -------
        torch.Tensor
            The result, of input's shape, dtype and layout.

        Examples
        --------
        >>> import torch
        >>> import fastdrop.torch as ft
        >>> x = torch.ones(4)
        >>> ft.AlphaDropout(0.5).eval().forward(x) is x
        True
        """
        return alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(torch.nn.FeatureAlphaDropout):
    """``torch.nn.FeatureAlphaDropout`` on fastdrop's kernels (``inplace`` is ignored, as in torch).

    A subclass of ``torch.nn.FeatureAlphaDropout`` with its arguments, ``repr`` and state (checkpoints of
    the torch module load into it strictly); ``forward`` is ``fastdrop.torch.feature_alpha_dropout``.

    Parameters
    ----------
    p : float, default 0.5
        The drop rate in [0, 1].
    inplace : bool, default False
        Ignored, as in torch.

    Examples
    --------
    >>> import torch
    >>> import fastdrop.torch as ft
    >>> _ = torch.manual_seed(0)
    >>> layer = ft.FeatureAlphaDropout(0.5)
    >>> layer
    FeatureAlphaDropout(p=0.5, inplace=False)
    >>> layer(torch.zeros(1, 4, 2))[:, :, 0]
    tensor([[-0.7792,  0.7792, -0.7792, -0.7792]])
    """

    def forward(self, input: Tensor) -> Tensor:
        """The layer applied to ``input``: ``fastdrop.torch.feature_alpha_dropout`` with the module's ``p``
        (not in place), in training mode (``train()``) with a fresh mask, else the input.

        Parameters
        ----------
        input : torch.Tensor
            A CPU tensor of dtype float16, bfloat16, float32 or float64.

        Returns
        -------
        torch.Tensor
            The result, of input's shape, dtype and layout.

        Examples
        --------
        >>> import torch
        >>> import fastdrop.torch as ft
        >>> x = torch.ones(1, 2, 3)
        >>> ft.FeatureAlphaDropout(0.5).eval().forward(x) is x
        True
        """
        return feature_alpha_dropout(input, self.p, self.training)
