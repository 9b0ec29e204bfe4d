"""Argument checks shared by every public function, layer and command of fastdrop.

One rule everywhere: an argument of the wrong type raises TypeError, one of the right
type with a wrong value raises ValueError, and the message names the argument and the
value.  Python and NumPy integers and reals are accepted; bools are not numbers here,
and neither are ``np.timedelta64`` (NumPy makes it a subclass of ``np.signedinteger``,
so ``numbers.Integral`` alone lets it through) nor ``np.datetime64``.
"""
import math
import numbers

import numpy as np

_NOT_NUMBERS = (bool, np.bool_, np.timedelta64, np.datetime64)


def is_integer(value):
    """True for Python and NumPy integers; False for bools, timedeltas and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, _NOT_NUMBERS)


def is_real(value):
    """True for Python and NumPy integers and floats (and other ``numbers.Real``); False for
    bools, timedeltas, datetimes, complex numbers and everything else."""
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
