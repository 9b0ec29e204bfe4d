"""The functional API: validate, resolve the stream key, call the active backend.

Every layer and integration goes through these functions, so there is one place that
decides what a valid argument is and one place that says what the output is.
"""
import contextlib
import functools
import math
import secrets

import numpy as np

from . import _backend
from ._validation import check_array_container, check_bool, is_integer, is_real

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
CHUNK_BITS = 16                 # each keep decision compares 16 random bits with a threshold
_CHUNK_RANGE = 1 << CHUNK_BITS
_U64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_SUBSTREAM = 0xD1B54A32D192ED03


def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
    return z ^ (z >> 31)


def resolve_seed(seed):
    """An int in [0, 2**64) from ``None`` (fresh entropy), an int, or a numpy Generator."""
    if seed is None:
        return secrets.randbits(64)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 1 << 64, dtype=np.uint64))
    if not is_integer(seed):
        raise TypeError(f"seed must be None, an int or a numpy.random.Generator, got {type(seed).__name__} {seed!r}")
    if not 0 <= int(seed) <= _U64:
        raise ValueError(f"seed must be in [0, 2**64), got {int(seed)}")
    return int(seed)


def stream_key(seed):
    """The key of the block streams for an already resolved integer seed."""
    return _mix64((seed + _GOLDEN) & _U64)


def derive_seed(seed, index):
    """Seed of the ``index``-th independent substream of ``seed`` (layers: one per call)."""
    return _mix64((stream_key(seed) + (index + 1) * _SUBSTREAM) & _U64)


def as_float_array(x, name="x"):
    """``x`` as an aligned native-byte-order float16/32/64 array; TypeError naming any other dtype
    or a container whose meaning a plain array would lose (``check_array_container``)."""
    arr = np.asarray(check_array_container(x, name))
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4, 8):     # any byte order
        raise TypeError(f"{name} must have dtype float16, float32 or float64, got dtype {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.aligned:              # e.g. np.frombuffer at an odd offset: the kernels need aligned data
        arr = arr.copy()
    return arr


def check_rate(p, name="p"):
    """``p`` as a float in [0, 1] or a float64 array of such values; ValueError otherwise."""
    if isinstance(p, (bool, np.bool_, np.timedelta64, np.datetime64)):
        raise ValueError(f"{name} must be a real number in [0, 1], got {type(p).__name__} {p!r}")
    if is_real(p):
        value = float(p)
        if not 0.0 <= value <= 1.0:          # also rejects NaN
            raise ValueError(f"{name} must be a real number in [0, 1], got {p!r}")
        return value
    if isinstance(p, np.ndarray) or hasattr(type(p), "__array_ufunc__"):
        check_array_container(p, name)
    try:
        arr = np.asarray(p)
    except Exception:                        # objects NumPy cannot even wrap
        arr = np.asarray(None)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise ValueError(f"{name} must be a real number in [0, 1] or an array of them, got {p!r}")
    arr = arr.astype(np.float64)
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if bad.any():
        raise ValueError(f"{name} must be in [0, 1], got {float(arr[bad].ravel()[0])!r} in {name}")
    return float(arr) if arr.ndim == 0 else arr


def keep_threshold(p):
    """The integer threshold t: an element is kept when its 16 random bits are < t."""
    if isinstance(p, float):
        return int(np.floor((1.0 - p) * _CHUNK_RANGE + 0.5))
    return np.floor((1.0 - p) * _CHUNK_RANGE + 0.5).astype(np.uint32)


def effective_keep(p):
    """The exact keep probability used for drop rate ``p`` (within 1e-5 of ``1 - p``)."""
    thr = keep_threshold(check_rate(p))
    return thr / _CHUNK_RANGE if isinstance(thr, int) else thr.astype(np.float64) / _CHUNK_RANGE


def inverse_keep(p, dtype):
    """``dtype(1 / (1 - p))``, the scale of kept elements (1 where p == 1: never used).

    In float16 it is inf for p > 1 - 1/65504, exactly as NumPy rounds it."""
    with np.errstate(divide="ignore", over="ignore"):
        if isinstance(p, float):
            return dtype.type(1.0 / (1.0 - p)) if p < 1.0 else dtype.type(1.0)
        return np.where(p < 1.0, 1.0 / (1.0 - p), 1.0).astype(dtype)


def resolve_noise_shape(noise_shape, shape):
    """Keras semantics: same length as ``shape``, each entry the size, 1, or None."""
    if noise_shape is None:
        return tuple(shape)
    try:
        entries = tuple(noise_shape)
    except TypeError:
        raise ValueError(f"noise_shape must be a tuple of length {len(shape)}, got {noise_shape!r}") from None
    if len(entries) != len(shape):
        raise ValueError(f"noise_shape must have length {len(shape)} (x.ndim), got {noise_shape!r}")
    resolved = []
    for axis, (n, size) in enumerate(zip(entries, shape)):
        if n is None:
            n = size
        if not is_integer(n) or n not in (1, size):
            raise ValueError(f"noise_shape[{axis}] must be 1, None or x.shape[{axis}]={size}, "
                             f"got {n!r} in noise_shape={noise_shape!r}")
        resolved.append(int(n))
    return tuple(resolved)


# The stream's index range: every element's stream index (offset + its C-order index in the
# noise shape; the word index for the word-per-element variants) is < 2**62, so the kernels'
# int64 arithmetic on starts, block ends and pointer offsets never overflows.
MAX_INDEX = 1 << 62


def check_offset(offset):
    """``offset`` as an int in [0, MAX_INDEX): TypeError for a non-integer, ValueError out of range."""
    if not is_integer(offset):
        raise TypeError(f"offset must be an integer in [0, 2**62), got {type(offset).__name__} {offset!r}")
    if not 0 <= offset < MAX_INDEX:
        raise ValueError(f"offset must be an integer in [0, 2**62), got {offset!r}")
    return int(offset)


def check_index_range(offset, size):
    """ValueError unless stream indices offset .. offset + size - 1 are all below MAX_INDEX."""
    if offset + size > MAX_INDEX:
        raise ValueError(f"offset + size must be at most 2**62 (the stream's index range), "
                         f"got offset={offset} and size={size}")


def check_out(out, x, given=None, name="out"):
    """``out`` validated against ``x`` (or a new C-contiguous array when None).

    ``x`` is the validated (native-byte-order) input and ``given`` the argument it came
    from: ``out`` must have x's shape and the dtype of either, so a byte-swapped array is
    its own valid ``out`` (the result is written back in its byte order) and every
    in-place call follows this one rule."""
    if out is None:
        return np.empty(x.shape, dtype=x.dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(out).__name__}")
    check_array_container(out, name)
    given_dtype = given.dtype if isinstance(given, np.ndarray) else x.dtype
    if out.shape != x.shape or out.dtype not in (x.dtype, given_dtype):
        raise ValueError(f"{name} must have shape {x.shape} and dtype {given_dtype}, "
                         f"got shape {out.shape} and dtype {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    if out.size > 1 and 0 in out.strides[:out.ndim] and any(
            s == 0 and n > 1 for s, n in zip(out.strides, out.shape)):
        raise ValueError(f"{name} must not have zero strides (a broadcast view)")
    if out is not x and out is not given and _overlaps(out, x) and not _same_layout(out, x):
        raise ValueError(f"{name} overlaps x partially; pass out=x for in-place, or a separate array")
    return out


_TooHard = getattr(np, "exceptions", np).TooHardError


def _overlaps(a, b):
    """True when a and b share an element; interleaved views that share none do not overlap."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return np.shares_memory(a, b, max_work=100_000)
    except _TooHard:                   # undecided in the budget: treat as overlapping, never corrupt
        return True


def _same_layout(a, b):
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.strides == b.strides)


# Small caches for the shortcut in ``dropout``: a forward and its backward share the seed
# and p, so they hit; fresh seeds (seed=None, layers' substreams) only cycle 64 entries.
@functools.lru_cache(maxsize=64)
def _scalar_rate(p, dtype):
    return keep_threshold(p), inverse_keep(p, dtype)


_cached_stream_key = functools.lru_cache(maxsize=64)(stream_key)


def _rate_arrays(p, dtype, noise_shape):
    """(threshold, scale) for the kernels: scalars, or read-only views of the noise shape.

    The values are computed on p as given (O(p.size), C-contiguous) and broadcast as views
    with stride 0 on the broadcast axes, which the kernels read in place: a per-feature p
    costs the size of p, not of x.  Both views have the same layout in elements."""
    if isinstance(p, float):
        return _scalar_rate(p, dtype)
    if not _broadcasts_to(p.shape, noise_shape):
        raise ValueError(f"p of shape {p.shape} cannot broadcast to the noise shape {noise_shape}")
    return (np.broadcast_to(np.ascontiguousarray(keep_threshold(p)), noise_shape),
            np.broadcast_to(np.ascontiguousarray(inverse_keep(p, dtype)), noise_shape))


def _broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def _keep(key, offset, thr, noise_shape):
    """The uint8 keep mask over the noise shape (1 = kept)."""
    keep = np.empty(noise_shape, dtype=np.uint8)
    if keep.size:
        _backend.kernels().keep_mask_rows(key, np.array([offset], dtype=np.int64), thr, keep.reshape(1, -1))
    return keep


def _apply(x, keep, scale, out):
    """out = keep ? x * scale : 0 with keep/scale broadcast from the noise shape."""
    with kernel_target(out) as target:
        if x.size:
            _backend.kernels().apply_keep(np.ascontiguousarray(x), keep, scale, target)
    return out


@contextlib.contextmanager
def kernel_target(out):
    """An array the kernels can write (C-contiguous, aligned, native byte order): ``out``
    itself, or a temporary that is copied into ``out`` when the block ends."""
    direct = out.flags.c_contiguous and out.flags.aligned and out.dtype.isnative
    target = out if direct else np.empty(out.shape, dtype=out.dtype.newbyteorder("="))
    yield target
    if target is not out:
        out[...] = target


def dropout(x, p=0.5, *, seed=None, training=True, noise_shape=None, offset=0, out=None):
    """Inverted dropout: each element is dropped (0.0) with probability ``p``, else scaled.

    Kept elements are exactly ``x * dtype(1 / (1 - p))`` computed in ``x``'s dtype; dropped
    ones are 0.0 even where ``x`` is inf or NaN.  The mask depends only on
    (seed, offset, the C-order index in the noise shape, p).  With ``training=False``
    or ``p == 0`` the result is a copy of ``x`` (or ``x`` written into ``out``).
    Calling it on the gradient with the same arguments is the exact backward pass.
    """
    if (type(x) is np.ndarray and type(p) is float and type(seed) is int and type(offset) is int
            and noise_shape is None and training is True
            and 0.0 < p < 1.0 and 0 <= seed <= _U64 and 0 <= offset and offset + x.size <= MAX_INDEX
            and x.dtype in FLOAT_DTYPES and x.flags.c_contiguous and x.flags.aligned and x.size
            and (out is None or _direct_out(out, x))):
        # The common call, valid as given: skip the general checks (the same kernel, the same bits).
        thr, scale = _scalar_rate(p, x.dtype)
        y = np.empty_like(x) if out is None else out
        _backend.kernels().dropout_flat(_cached_stream_key(seed), offset, thr, scale, x.ravel(), y.ravel(),
                                        _backend.get_num_threads())
        return y
    given, x = x, as_float_array(x)
    p = check_rate(p)
    shape = resolve_noise_shape(noise_shape, x.shape)
    offset = check_offset(offset)
    check_index_range(offset, math.prod(shape))
    training = check_bool(training, "training")
    out = check_out(out, x, given)
    key = stream_key(resolve_seed(seed))
    if not training or (isinstance(p, float) and p == 0.0):
        if out is not x:
            np.copyto(out, x)
        return out
    thr, scale = _rate_arrays(p, x.dtype, shape)
    if shape == x.shape:
        return _dropout_full(key, offset, thr, scale, x, out)
    return _apply(x, _keep(key, offset, thr, shape), scale, out)


def _direct_out(out, x):
    """True when ``out`` takes the kernel's result as it is: x itself, or a separate array like x."""
    return (type(out) is np.ndarray and out.dtype == x.dtype and out.shape == x.shape and out.flags.c_contiguous
            and out.flags.aligned and out.flags.writeable and (out is x or not np.may_share_memory(out, x)))


def _dropout_full(key, offset, thr, scale, x, out):
    """The fused one-pass path, mask as large as x: no mask is stored.  Per-element rates
    (views of x's shape) are read with their strides as the kernel goes."""
    if x.size:
        with kernel_target(out) as target:
            xc = np.ascontiguousarray(x)
            if np.ndim(thr) == 0:
                _backend.kernels().dropout_flat(key, offset, thr, scale, xc.reshape(-1), target.reshape(-1),
                                                _backend.get_num_threads())
            else:
                _backend.kernels().dropout_rows(key, np.array([offset], dtype=np.int64), thr, scale,
                                                xc.reshape(1, -1), target.reshape(1, -1), _backend.get_num_threads())
    return out


def _check_shape(shape):
    if is_integer(shape):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be an int or a tuple of ints >= 0, got {shape!r}") from None
    if not all(is_integer(n) and n >= 0 for n in shape):
        raise ValueError(f"shape must be an int or a tuple of ints >= 0, got {shape!r}")
    return tuple(int(n) for n in shape)


def dropout_mask(shape, p=0.5, *, seed=None, offset=0, packed=False):
    """The keep mask ``dropout`` uses for an array of ``shape`` (True = kept).

    With ``packed=True``: ``np.packbits(mask.ravel(), bitorder="little")``, 1 bit per element.
    """
    shape = _check_shape(shape)
    p = check_rate(p)
    offset = check_offset(offset)
    check_index_range(offset, math.prod(shape))
    packed = check_bool(packed, "packed")
    key = stream_key(resolve_seed(seed))
    thr, _ = _rate_arrays(p, np.dtype(np.float64), shape)
    mask = _keep(key, offset, thr, shape).view(bool)
    return np.packbits(mask.ravel(), bitorder="little") if packed else mask


def apply_mask(x, mask, p=0.5, *, out=None):
    """``mask ? x * dtype(1 / (1 - p)) : 0``: dropout with a given mask.

    ``mask`` is a bool array of x's shape (or broadcastable to it from size-1 axes, like a
    noise-shaped mask), or a packed uint8 array from ``dropout_mask(..., packed=True)``.
    """
    given, x = x, as_float_array(x)
    p = check_rate(p)
    out = check_out(out, x, given)
    mask = np.asarray(check_array_container(mask, "mask"))
    if mask.dtype == np.uint8:
        need = (x.size + 7) // 8
        if mask.ndim != 1 or mask.size != need:
            raise ValueError(f"a packed mask for x of size {x.size} must be 1-D of length {need}, "
                             f"got shape {mask.shape}")
        keep = np.unpackbits(mask, count=x.size, bitorder="little").reshape(x.shape)
    elif mask.dtype == np.bool_:
        if mask.ndim != x.ndim or any(m not in (1, n) for m, n in zip(mask.shape, x.shape)):
            raise ValueError(f"mask of shape {mask.shape} does not match x of shape {x.shape}")
        keep = np.asarray(mask.view(np.uint8) != 0).view(np.uint8)    # any nonzero byte is True
    else:
        raise TypeError(f"mask must be a bool array or a packed uint8 array, got dtype {mask.dtype}")
    if isinstance(p, float) and p == 1.0:
        out[...] = 0
        return out
    _, scale = _rate_arrays(p, x.dtype, keep.shape)
    if not isinstance(p, float):       # rate 1 drops whatever the mask says; keep is ours, p broadcasts to it
        np.bitwise_and(keep, p < 1.0, out=keep)
    return _apply(x, keep, scale, out)
