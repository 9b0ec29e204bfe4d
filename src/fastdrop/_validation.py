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


def _bounds_text(low, high):
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def check_int(value, name, *, low=None, high=None, what=None):
    """``value`` as an int within [low, high] (either bound may be None)."""
    what = what or f"an integer{_bounds_text(low, high)}"
    if not is_integer(value):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def check_real(value, name, *, low=None, high=None, finite=True, what=None):
    """``value`` as a float within [low, high]; NaN is refused, and inf too when ``finite``."""
    what = what or f"a {'finite ' if finite else ''}real number{_bounds_text(low, high)}"
    if not is_real(value):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    number = float(value)
    if (math.isnan(number) or (finite and math.isinf(number)) or (low is not None and number < low)
            or (high is not None and number > high)):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return number


def check_bool(value, name):
    """``value`` as a bool: only True and False (Python or NumPy) are accepted, never a truthy object."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_choice(value, name, choices):
    """``value`` when it is one of ``choices`` (strings), else ValueError listing them."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, choices))}, got {type(value).__name__} "
                        f"{value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
