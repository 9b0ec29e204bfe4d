"""Argument checks shared by every public function, layer and command of fastdrop: the
one place that decides what a valid argument is.

One rule everywhere: an argument of the wrong type raises TypeError, one of the right
type with a wrong value raises ValueError, and the message names the argument and the
value.  Python and NumPy integers and reals are accepted; bools are not numbers here,
and neither are ``np.timedelta64`` (NumPy makes it a subclass of ``np.signedinteger``,
so ``numbers.Integral`` alone lets it through) nor ``np.datetime64``.
"""
import collections.abc
import math
import numbers
import secrets

import numpy as np

from . import _memory
from ._kernel_args import is_bfloat16
from ._stream import MAX_INDEX, U64

_NOT_NUMBERS = (bool, np.bool_, np.timedelta64, np.datetime64)


def is_integer(value):
    """True for Python and NumPy integers; False for bools, timedeltas and everything else."""
    if type(value) is int:          # the common case, without the ABC's isinstance machinery
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, _NOT_NUMBERS)


def is_real(value):
    """True for Python and NumPy integers and floats (and other ``numbers.Real``); False for
    bools, timedeltas, datetimes, complex numbers and everything else."""
    if type(value) in (float, int):  # the common cases, without the ABC's isinstance (0.7 us on Zen 4)
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, _NOT_NUMBERS)


def bounds_text(low, high):
    """How messages word a range: 'in [low, high]', '>= low', '<= high' ('' without bounds)."""
    if low is not None and high is not None:
        return f"in [{low}, {high}]"
    if low is not None:
        return f">= {low}"
    return f"<= {high}" if high is not None else ""


def _described(kind, low, high):
    bounds = bounds_text(low, high)
    return f"{kind} {bounds}" if bounds else kind


def check_int(value, name, *, low=None, high=None):
    """``value`` as an int within [low, high] (either bound may be None)."""
    if not is_integer(value):
        raise TypeError(f"{name} must be {_described('an integer', low, high)}, got {type(value).__name__} {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {_described('an integer', low, high)}, got {value!r}")
    return value


def check_real(value, name, *, low=None, high=None, finite=True):
    """``value`` as a float within [low, high]; NaN is refused, and inf too when ``finite``."""
    kind = "a finite real number" if finite else "a real number"
    if not is_real(value):
        raise TypeError(f"{name} must be {_described(kind, low, high)}, got {type(value).__name__} {value!r}")
    number = float(value)
    if math.isnan(number) or (finite and math.isinf(number)):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"{name} must be {bounds_text(low, high)}, got {value!r}")
    return number


def check_bool(value, name):
    """``value`` as a bool: only True and False (Python or NumPy) are accepted, never a truthy object."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_choice(value, name, choices):
    """``value`` when it is one of ``choices``, else ValueError listing them (a choice is a
    question of value: None or a number is simply not one of them)."""
    if not (isinstance(value, str) and value in choices):
        listed = [repr(c) for c in choices]
        allowed = " or ".join(listed) if len(listed) == 2 else "one of " + ", ".join(listed)
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def check_array_container(value, name):
    """Refuse array containers whose meaning a plain ndarray result would lose.

    A NumPy ndarray (and ``np.memmap``, an ndarray backed by a file) or anything NumPy turns
    into one (lists, scalars, ``__array__``/buffer objects) is taken as its data.  Refused
    with TypeError, because returning a plain ndarray would silently change what they mean:
    ``np.ma.MaskedArray`` (the mask would be dropped and masked entries scaled like data),
    ``np.matrix`` (``*`` is a matrix product), other ndarray subclasses (units, metadata),
    Dask arrays (they would be computed whole: ``fastdrop.dask`` keeps them lazy) and
    other containers that take part in NumPy's ufunc protocol (pandas, xarray, ...), whose
    labels would be lost.
    """
    kind = type(value)
    if kind is np.ndarray or isinstance(value, np.memmap):
        return value
    what = f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{name} is a numpy.ma.MaskedArray: fastdrop would scale its masked entries like data "
                        f"and drop the mask; pass {name}.filled(value) or np.ma.getdata({name}) explicitly")
    if isinstance(value, np.ndarray):
        raise TypeError(f"{name} is a {what}, an ndarray subclass whose meaning a plain ndarray result "
                        f"would lose; pass np.asarray({name}) explicitly")
    if kind.__module__.split(".")[0] == "dask":
        raise TypeError(f"{name} is a {what}: fastdrop.dropout would compute it whole; "
                        f"use fastdrop.dask.dropout, which stays lazy and chunked")
    if hasattr(kind, "__array_ufunc__") or hasattr(kind, "__array_function__"):
        raise TypeError(f"{name} is a {what}, a container whose labels or semantics a plain ndarray result "
                        f"would lose; pass np.asarray({name}) (or its .to_numpy()) explicitly")
    return value


# --- arrays --------------------------------------------------------------------------------
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def as_float_array(x, name="x", bfloat16=True):
    """``x`` as an aligned native-byte-order float16/32/64 array, or bfloat16 (ml_dtypes) where
    ``bfloat16``; TypeError naming any other dtype or a container whose meaning a plain array
    would lose (``check_array_container``)."""
    arr = np.asarray(check_array_container(_from_dlpack(x, name), name))
    if is_bfloat16(arr.dtype):
        if not bfloat16:
            raise TypeError(f"{name} must have dtype float16, float32 or float64, got dtype bfloat16: "
                            f"the noise variants and dropout_add compute in float16/32/64 only; "
                            f"pass {name}.astype(np.float32)")
        if not arr.dtype.isnative:
            return arr.astype(arr.dtype.newbyteorder("="))
        return arr if arr.flags.aligned else arr.copy()
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4, 8):     # any byte order
        floats = "float16, bfloat16, float32 or float64" if bfloat16 else "float16, float32 or float64"
        raise TypeError(f"{name} must have dtype {floats}, got dtype {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.aligned:              # e.g. np.frombuffer at an odd offset: the kernels need aligned data
        arr = arr.copy()
    return arr


def check_forward_dtype(dtype):
    """A backward's ``dtype`` argument (the forward's data dtype, whose rounding the noise
    took) as a float16/32/64 NumPy dtype; TypeError naming it otherwise."""
    empty = np.empty(0, dtype)
    if is_bfloat16(empty.dtype):
        raise TypeError("dtype must be float16, float32 or float64 (the forward's data dtype), got bfloat16: "
                        "the noise variants compute in float16/32/64 only")
    return as_float_array(empty, "dtype").dtype


# DLPack's device types (dlpack.h DLDeviceType); host memory is read in place, the rest refused.
_DLPACK_HOST = {1: "CPU", 3: "CUDA host (pinned)", 11: "ROCm host (pinned)"}
_DLPACK_DEVICES = {2: "CUDA", 4: "OpenCL", 7: "Vulkan", 8: "Metal", 9: "VPI", 10: "ROCm", 12: "an extension device",
                   13: "CUDA managed memory", 14: "oneAPI", 15: "WebGPU", 16: "Hexagon", 17: "MAIA"}


def _from_dlpack(x, name):
    """An object that offers only ``__dlpack__`` (no ``__array__``, no buffer) read as an
    ndarray without a copy; one living on a device other than the host is refused naming it."""
    if isinstance(x, np.ndarray) or not hasattr(x, "__dlpack__") or hasattr(x, "__array__"):
        return x
    try:
        memoryview(x)
        return x
    except TypeError:
        pass
    try:
        device_type, device_id = getattr(x, "__dlpack_device__", lambda: (1, 0))()
    except Exception as exc:    # a __dlpack_device__ of the wrong shape says nothing about where the data is
        device_type, device_id = None, repr(exc)
    what = f"{name} ({type(x).__module__}.{type(x).__qualname__})"
    if device_type not in _DLPACK_HOST:
        device = _DLPACK_DEVICES.get(device_type, f"DLPack device type {device_type}")
        raise TypeError(f"{what} lives on {device} (device {device_id}): fastdrop reads arrays in host memory; "
                        f"copy it to the host first (PyTorch: x.cpu(); CuPy: cupy.asnumpy(x))")
    try:
        return np.from_dlpack(x)
    except (BufferError, RuntimeError, TypeError, ValueError) as exc:
        raise TypeError(f"{what}, DLPack device {_DLPACK_HOST[device_type]}, cannot be read as a NumPy array "
                        f"in host memory: {exc}") from None


def check_out(out, x, given=None, name="out"):
    """``out`` validated against ``x`` (or, when None, a new array in x's memory order, as
    ``np.multiply`` allocates it (order "K"): Fortran-ordered for a Fortran-ordered x,
    C-ordered for a C-ordered one; the mask is by logical C-order index either way).

    ``x`` is the validated (native-byte-order) input and ``given`` the argument it came
    from: ``out`` must have x's shape and the dtype of either, so a byte-swapped array is
    its own valid ``out`` (the result is written back in its byte order) and every
    in-place call follows this one rule."""
    if out is None:
        return _memory.empty_like(x)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(out).__name__}")
    check_array_container(out, name)
    given_dtype = given.dtype if isinstance(given, np.ndarray) else x.dtype
    if out.shape != x.shape or out.dtype not in (x.dtype, given_dtype):
        raise ValueError(f"{name} must have shape {x.shape} and dtype {given_dtype}, "
                         f"got shape {out.shape} and dtype {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    if out.size > 1 and any(s == 0 and n > 1 for s, n in zip(out.strides, out.shape)):
        raise ValueError(f"{name} must not have zero strides (a broadcast view)")
    if has_internal_overlap(out.shape, out.strides, out.itemsize):
        raise ValueError(f"{name} has elements that share memory (strides {out.strides} for shape {out.shape}); "
                         f"pass an array whose elements are distinct")
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
    """True when a and b are views of the very same elements: element i of one is element i of
    the other (a smaller array with the same start and strides is not: it would be read after
    out's first rows overwrote it)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides)


# Past this many elements a layout that fails the nested-strides test is taken as overlapping
# rather than checked element by element.
_OVERLAP_LISTING_LIMIT = 1 << 20


def has_internal_overlap(shape, strides, itemsize):
    """True when two elements of an array (or tensor) of this shape and these byte strides share
    memory, as views made with ``as_strided`` or ``expand`` can; slices and transposes never do.
    Axes sorted by stride, each must step past all that the smaller ones span (the test NumPy
    and PyTorch use for the common layouts); the rare layouts that fail it are decided by
    listing the elements' byte offsets, or, past _OVERLAP_LISTING_LIMIT elements, taken as
    overlapping (a writer must never race itself)."""
    if math.prod(shape) <= 1:
        return False
    span = itemsize
    for stride, n in sorted((abs(s), n) for s, n in zip(strides, shape) if n > 1):
        if stride < span:
            break
        span += stride * (n - 1)
    else:
        return False
    if math.prod(shape) > _OVERLAP_LISTING_LIMIT:
        return True
    offsets = np.zeros(1, dtype=np.int64)
    for stride, n in zip(strides, shape):
        offsets = (offsets[:, None] + stride * np.arange(n, dtype=np.int64)).reshape(-1)
    offsets.sort()
    return bool(np.any(np.diff(offsets) < itemsize))


# --- rates ---------------------------------------------------------------------------------
def check_rate(p, name="p"):
    """``p`` as a float in [0, 1] or a float64 array of such values.

    TypeError for what is not a real number or an array of them (bools, timedeltas,
    strings, complex numbers, ...), ValueError for a value outside [0, 1] or NaN."""
    if is_real(p):
        value = float(p)
        if not 0.0 <= value <= 1.0:          # also rejects NaN
            raise ValueError(f"{name} must be a real number in [0, 1], got {p!r}")
        return value
    if isinstance(p, _NOT_NUMBERS):
        raise TypeError(f"{name} must be a real number in [0, 1], got {type(p).__name__} {p!r}")
    if isinstance(p, np.ndarray) or hasattr(type(p), "__array_ufunc__"):
        check_array_container(p, name)
    try:
        arr = np.asarray(p)
    except Exception:                        # objects NumPy cannot even wrap
        arr = np.asarray(None)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real number in [0, 1] or an array of them, got {p!r}")
    arr = arr.astype(np.float64)
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if bad.any():
        raise ValueError(f"{name} must be in [0, 1], got {float(arr[bad].ravel()[0])!r} in {name}")
    return float(arr) if arr.ndim == 0 else arr


def broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def check_rate_shape(p, noise_shape):
    """A checked rate (a float, or an array of rates) that broadcasts to the noise shape."""
    if not isinstance(p, float) and not broadcasts_to(p.shape, noise_shape):
        raise ValueError(f"p of shape {p.shape} cannot broadcast to the noise shape {noise_shape}")


def check_scalar_rate(p, name="p"):
    """``p`` as a float in [0, 1]: the variants with one rate take no arrays (TypeError)."""
    if not is_real(p):
        raise TypeError(f"{name} must be a real number in [0, 1], got {type(p).__name__} {p!r}")
    return check_rate(p, name)


def check_gaussian_rate(p, name="p"):
    """``p`` in [0, 1): Gaussian dropout's noise variance p / (1 - p) is infinite at 1."""
    p = check_scalar_rate(p, name)
    if p == 1.0:
        raise ValueError(f"{name} must be in [0, 1) for Gaussian dropout (the noise variance p/(1-p) "
                         f"is infinite at 1), got {p!r}")
    return p


# --- seeds and stream positions ------------------------------------------------------------
def resolve_seed(seed):
    """An int in [0, 2**64) from ``None`` (fresh entropy), an int, or NumPy's seeding objects
    as ``np.random.default_rng`` takes them: a ``Generator`` or a ``BitGenerator`` gives one
    64-bit key drawn from it (advancing it), a ``SeedSequence`` its first 64-bit word of state
    (``generate_state``, which does not change it)."""
    if seed is None:
        return secrets.randbits(64)
    if isinstance(seed, np.random.BitGenerator):
        seed = np.random.Generator(seed)         # draws from the bit generator itself, as default_rng(it) would
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 1 << 64, dtype=np.uint64))
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.generate_state(1, dtype=np.uint64)[0])
    if not is_integer(seed):
        raise TypeError(f"seed must be None, an int, or a numpy.random Generator, BitGenerator or SeedSequence, "
                        f"got {type(seed).__name__} {seed!r}")
    if not 0 <= int(seed) <= U64:
        raise ValueError(f"seed must be in [0, 2**64), got {int(seed)}")
    return int(seed)


_SEEDING_OBJECTS = (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)


def check_seed(seed):
    """``seed`` checked as ``resolve_seed`` checks it, without drawing from it.

    A Generator or BitGenerator comes back as it is: a call resolves it (draws its key)
    only once every argument has passed and it needs random decisions, so a call that
    raises, or that decides nothing (``training=False``, ``p == 0``), leaves it untouched
    (PyTorch's dropout draws nothing in eval mode or at p == 0 either).  An int comes back
    as an int in range, None as None (fresh entropy, drawn when needed)."""
    if seed is None or isinstance(seed, _SEEDING_OBJECTS):
        return seed
    return resolve_seed(seed)


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


# --- shapes --------------------------------------------------------------------------------
def _entries(value, name, what):
    """``value`` as a tuple, TypeError naming ``what`` when it is no sequence (a mapping or a
    set iterates its keys in an order that is not the axes')."""
    if isinstance(value, (str, bytes, collections.abc.Mapping, collections.abc.Set)):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    try:
        return tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be {what}, got {value!r}") from None


def check_shape(shape, name="shape"):
    """An int or a sequence of ints >= 0, as a tuple of ints."""
    what = "an int or a tuple of ints >= 0"
    entries = (shape,) if is_integer(shape) else _entries(shape, name, what)
    if not all(is_integer(n) for n in entries):
        raise TypeError(f"{name} must be {what}, got {shape!r}")
    if not all(n >= 0 for n in entries):
        raise ValueError(f"{name} must be {what}, got {shape!r}")
    if not all(n <= MAX_INDEX for n in entries):    # even an empty array's axis: NumPy's own error names none
        raise ValueError(f"{name} entries must be at most 2**62 (the stream's index range), got {shape!r}")
    return tuple(int(n) for n in entries)


def resolve_noise_shape(noise_shape, shape):
    """Keras semantics: same length as ``shape``, each entry the size, 1, or None."""
    if noise_shape is None:
        return tuple(shape)
    entries = _entries(noise_shape, "noise_shape", f"None or a tuple of length {len(shape)}")
    if len(entries) != len(shape):
        raise ValueError(f"noise_shape must have length {len(shape)} (x.ndim), got {noise_shape!r}")
    resolved = []
    for axis, (n, size) in enumerate(zip(entries, shape)):
        if n is None:
            n = size
        if not is_integer(n) or n not in (1, size):
            message = (f"noise_shape[{axis}] must be 1, None or x.shape[{axis}]={size}, got {n!r} "
                       f"in noise_shape={noise_shape!r}")
            raise (ValueError if is_integer(n) else TypeError)(message)
        resolved.append(int(n))
    return tuple(resolved)


def check_layer_noise_shape(noise_shape):
    """A layer's ``noise_shape`` before it sees an input: None, or entries that are None or ints >= 1."""
    if noise_shape is None:
        return None
    what = "None or a tuple of ints >= 1 and None"
    entries = _entries(noise_shape, "noise_shape", what)
    if not all(n is None or is_integer(n) for n in entries):
        raise TypeError(f"noise_shape must be {what}, got {noise_shape!r}")
    if not all(n is None or n >= 1 for n in entries):
        raise ValueError(f"noise_shape must be {what}, got {noise_shape!r}")
    return tuple(None if n is None else int(n) for n in entries)


def check_origin(origin, box_shape, global_shape):
    """A box's origin: one int >= 0 per axis, the box inside ``global_shape``."""
    what = f"a tuple of {len(global_shape)} ints >= 0"
    entries = _entries(origin, "origin", what)
    if not all(is_integer(o) for o in entries):
        raise TypeError(f"origin must be {what}, got {origin!r}")
    if len(entries) != len(global_shape) or not all(o >= 0 for o in entries):
        raise ValueError(f"origin must be {what}, got {origin!r}")
    origin = tuple(int(o) for o in entries)
    for axis, (o, b, n) in enumerate(zip(origin, box_shape, global_shape)):
        if o + b > n:
            raise ValueError(f"the box [{o}, {o + b}) on axis {axis} (origin={origin}, box shape "
                             f"{tuple(box_shape)}) does not fit in global_shape={global_shape}")
    return origin


# --- the family's own arguments ----------------------------------------------------------------
DATA_FORMATS = ("channels_first", "channels_last")
MAX_LOGIT = 50.0       # Concrete's float32 1 + exp(logit) stays finite: p within 2e-22 of 0 or 1


def check_data_format(data_format):
    return check_choice(data_format, "data_format", DATA_FORMATS)


def check_time_axis(time_axis):
    if not is_integer(time_axis):
        raise TypeError(f"time_axis must be an int, got {time_axis!r}")
    return int(time_axis)


def check_block_size(block_size):
    if not is_integer(block_size):
        raise TypeError(f"block_size must be an int >= 1, got {block_size!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be an int >= 1, got {block_size!r}")
    return int(block_size)


def check_logit(logit):
    """The drop-rate logit as a float with |logit| <= MAX_LOGIT."""
    if not is_real(logit):
        raise TypeError(f"logit must be {_LOGIT_RANGE}, got {type(logit).__name__} {logit!r}")
    if not -MAX_LOGIT <= float(logit) <= MAX_LOGIT:
        raise ValueError(f"logit must be {_LOGIT_RANGE}, got {logit!r}")
    return float(logit)


# formatted once: check_logit runs on every ConcreteDropout call (formatting it there took ~1.5 us)
_LOGIT_RANGE = f"a real number in [-{MAX_LOGIT:g}, {MAX_LOGIT:g}] (drop rate sigmoid(logit))"


def check_temperature(temperature):
    if not is_real(temperature):
        raise TypeError(f"temperature must be a finite real number > 0, got {type(temperature).__name__} "
                        f"{temperature!r}")
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite real number > 0, got {temperature!r}")
    return float(temperature)


# --- a dropout call --------------------------------------------------------------------------
def check_dropout_call(x, p, noise_shape, offset, training, out, *, scalar_rate=False):
    """The checked arguments of a dropout over a noise shape: (x, p, noise shape, offset,
    training, out), in the order the checks run, ``p`` a float when ``scalar_rate``."""
    given, x = x, as_float_array(x)
    p = check_scalar_rate(p) if scalar_rate else check_rate(p)
    shape = resolve_noise_shape(noise_shape, x.shape)
    check_rate_shape(p, shape)
    offset = check_offset(offset)
    check_index_range(offset, math.prod(shape))
    training = check_bool(training, "training")
    return x, p, shape, offset, training, check_out(out, x, given)


# --- the common call -------------------------------------------------------------------------
def is_plain_dropout_call(x, p, seed, training, noise_shape, offset, out):
    """True when a ``dropout`` call is the common one and already valid as given: an aligned
    C-contiguous native float ndarray, a float rate strictly inside (0, 1), an int seed and
    offset in range, no noise shape, training, and no ``out`` or one the kernel can write
    directly.  Every check of the general path then passes, so the caller may skip them
    (``tests/test_fuzz.py`` holds the two paths to the same bits); anything else is False
    and takes the general path, which raises where an argument is wrong."""
    return (is_common_input(x, p) and type(seed) is int and type(offset) is int
            and noise_shape is None and training is True
            and 0 <= seed <= U64 and 0 <= offset and offset + x.size <= MAX_INDEX
            and (out is None or _is_direct_out(out, x)))


def is_common_input(x, p, *, bfloat16=True):
    """The input half of the common call: an aligned C-contiguous non-empty native float
    ndarray (bfloat16 too, unless told) and a float rate strictly inside (0, 1), which the
    kernels take as they are (``is_plain_dropout_call``, and the layers' shortcut)."""
    return (type(x) is np.ndarray and type(p) is float and 0.0 < p < 1.0
            and (x.dtype in FLOAT_DTYPES or bfloat16 and is_bfloat16(x.dtype) and x.dtype.isnative)
            and x.flags.c_contiguous and x.flags.aligned and x.size > 0)


def is_shared_dropout_call(x, p, seed, training, noise_shape, offset, out):
    """True for ``is_plain_dropout_call``'s common call with a noise shape given as a tuple of
    ints, each 1 or x's size on its axis (what spatial_dropout, drop_path, variational_dropout
    and the layers pass): then ``resolve_noise_shape`` returns it as it is, and every other
    check of the general path passes as for the plain call (``tests/test_fuzz.py``)."""
    return (type(noise_shape) is tuple and is_plain_dropout_call(x, p, seed, training, None, offset, out)
            and len(noise_shape) == x.ndim
            and all(type(n) is int and (n == 1 or n == size) for n, size in zip(noise_shape, x.shape)))


def is_plain_dropout_add_call(x, residual, p, bias, seed, training, noise_shape, offset, out):
    """True when a ``dropout_add`` call is the common one and already valid as given:
    ``is_plain_dropout_call``'s x (float16/32/64), p, seed, offset and noise shape, a residual
    like x, no bias or an aligned C-contiguous one of x's dtype whose shape is x's last axes,
    and no ``out`` or one like x that is x, residual or bias or shares no memory with them.
    Every check of ``check_dropout_add_call`` then passes (``tests/test_fuzz.py`` holds the
    two paths to the same bits); anything else takes that general path."""
    if not (is_plain_dropout_call(x, p, seed, training, noise_shape, offset, None)
            and x.dtype in FLOAT_DTYPES and _is_like(residual, x)):
        return False
    if bias is not None and not (type(bias) is np.ndarray and bias.dtype == x.dtype and bias.flags.c_contiguous
                                 and bias.flags.aligned and bias.shape == x.shape[x.ndim - bias.ndim:]):
        return False
    return out is None or (_is_like(out, x) and out.flags.writeable
                           and all(out is a or not np.may_share_memory(out, a) for a in (x, residual, bias)
                                   if a is not None))


def _is_like(a, x):
    """a is an aligned C-contiguous ndarray of x's dtype and shape."""
    return (type(a) is np.ndarray and a.dtype == x.dtype and a.shape == x.shape and a.flags.c_contiguous
            and a.flags.aligned)


def _is_direct_out(out, x):
    """True when ``out`` takes the kernel's result as it is: x itself, or a separate array like x."""
    return _is_like(out, x) and out.flags.writeable and (out is x or not np.may_share_memory(out, x))


# --- dropout_add -------------------------------------------------------------------------------
def check_dropout_add_call(x, residual, p, bias, noise_shape, offset, training, out):
    """The checked arguments of ``dropout_add``: (x, residual, p, bias, noise shape, offset,
    training, out), checked in that order, each as ``check_dropout_call`` checks it.

    ``residual`` must have x's shape and dtype exactly (a skip connection adds two activations
    of one shape; what broadcasts belongs in ``bias``); ``bias`` is None or an array of x's
    dtype that broadcasts to x's shape (typically one value per feature).  ``out`` may be x
    or residual (in place) or a separate array; it may share memory with no input except by
    being that very array (the same data and strides)."""
    given, x = x, as_float_array(x, bfloat16=False)
    residual = check_residual(residual, x)
    p = check_rate(p)
    bias = check_bias(bias, x)
    shape = resolve_noise_shape(noise_shape, x.shape)
    check_rate_shape(p, shape)
    offset = check_offset(offset)
    check_index_range(offset, math.prod(shape))
    training = check_bool(training, "training")
    out = check_out(out, x, given)
    for name, value, remedy in (("residual", residual, "pass out=residual for in-place, or a separate array"),
                                ("bias", bias, "pass bias.copy(), or a separate out")):
        if value is not None and _overlaps(out, value) and not _same_layout(out, value):
            raise ValueError(f"out overlaps {name} partially; {remedy}")
    return x, residual, p, bias, shape, offset, training, out


def check_residual(residual, x):
    """``residual`` as a float array of x's shape and dtype (TypeError / ValueError naming it)."""
    residual = as_float_array(residual, "residual", bfloat16=False)
    if residual.dtype != x.dtype:
        raise TypeError(f"residual must have x's dtype {x.dtype}, got dtype {residual.dtype}")
    if residual.shape != x.shape:
        raise ValueError(f"residual must have x's shape {x.shape}, got shape {residual.shape}")
    return residual


def check_bias(bias, x):
    """``bias`` as None or a float array of x's dtype whose shape broadcasts to x's."""
    if bias is None:
        return None
    bias = as_float_array(bias, "bias", bfloat16=False)
    if bias.dtype != x.dtype:
        raise TypeError(f"bias must have x's dtype {x.dtype}, got dtype {bias.dtype}")
    check_bias_shape(bias.shape, x.shape, "bias of shape", "x's shape")
    return bias


def check_bias_shape(bias_shape, shape, name="bias_shape", target="grad's shape"):
    """``bias_shape`` (a shape, or None) as a tuple that broadcasts to ``shape`` (``target``)."""
    if bias_shape is None:
        return None
    bias_shape = check_shape(bias_shape, name)
    if len(bias_shape) > len(shape) or any(b not in (1, n) for b, n in zip(bias_shape[::-1], shape[::-1])):
        raise ValueError(f"{name} {bias_shape} does not broadcast to {target} {tuple(shape)}")
    return bias_shape


def check_grad_out(out, grad):
    """``dropout_add_grad``'s ``out``: not grad itself, which it returns as the residual's gradient."""
    if isinstance(out, np.ndarray) and _overlaps(out, grad):
        raise ValueError("out must not share memory with grad: dropout_add_grad returns grad itself as "
                         "the residual's gradient; pass out=None or a separate array")
