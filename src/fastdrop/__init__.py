"""fastdrop: bit-reproducible, memory-bandwidth-fast dropout for NumPy."""
__version__ = "0.1.0"

from ._backend import (backend, get_num_threads, set_backend, set_num_threads, use_backend,  # noqa: E402
                       use_num_threads)
from .functional import apply_mask, dropout, dropout_mask, effective_keep  # noqa: E402
from .box import dropout_box, dropout_mask_box  # noqa: E402
from .info import info  # noqa: E402

__all__ = [
    "apply_mask", "backend", "dropout", "dropout_box", "dropout_mask", "dropout_mask_box", "effective_keep",
    "get_num_threads", "info", "set_backend", "set_num_threads", "use_backend", "use_num_threads", "__version__",
]

# Streaming stores of the compiled kernels (outputs of half the last-level cache and more).
from ._backend import get_streaming_threshold, set_streaming_threshold  # noqa: E402

__all__ += ["get_streaming_threshold", "set_streaming_threshold"]

# The dropout family: functional twins and layers, each module listing its names in __all__.
from . import family, layers  # noqa: E402
from .family import *  # noqa: E402,F403
from .layers import *  # noqa: E402,F403

__all__ += family.__all__ + layers.__all__

# dropout on a residual branch, fused with the add
from . import residual  # noqa: E402
from .residual import *  # noqa: E402,F403

__all__ += residual.__all__

# The integrations load on first use (``fd.dask``, ``fd.demo``): ``import fastdrop`` imports
# none of the optional extras, and a missing extra says which one to install.
_LAZY_SUBMODULES = ("dask", "demo")


def __getattr__(name):
    if name not in _LAZY_SUBMODULES:
        raise AttributeError(f"module 'fastdrop' has no attribute {name!r}")
    import importlib
    return importlib.import_module(f"fastdrop.{name}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
