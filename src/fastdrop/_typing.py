"""The types of the public API's arguments and results, for annotations (``numpy.typing``).

The annotations are checked by ``mypy --strict`` on a client script in CI
(.ci/typecheck_client.py); at run time every argument is still checked by
``fastdrop._validation``, whatever its static type.
"""
from typing import Any, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating[Any]]
"""A float16, float32 or float64 NumPy array (results are of the input's float dtype)."""

BoolArray = npt.NDArray[np.bool_]
"""A keep mask: True where an element is kept."""

Seed = Union[None, int, np.integer[Any], np.random.Generator, np.random.BitGenerator, np.random.SeedSequence]
"""None (fresh entropy), an int in [0, 2**64), or NumPy's seeding objects as ``default_rng`` takes them."""

Rate = Union[float, npt.ArrayLike]
"""A drop rate in [0, 1], or an array of them broadcastable to the noise shape."""

Shape = Union[int, Sequence[int]]
"""An array shape: an int or a sequence of ints >= 0."""

NoiseShape = Optional[Sequence[Optional[int]]]
"""Keras's noise_shape: one entry per axis of x, each x's size, 1 (shared) or None."""
