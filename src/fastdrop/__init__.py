"""fastdrop: bit-reproducible, memory-bandwidth-fast dropout for NumPy."""
__version__ = "0.1.0"

from ._backend import backend, get_num_threads, set_backend, set_num_threads, use_backend  # noqa: E402
from .functional import apply_mask, dropout, dropout_mask, effective_keep  # noqa: E402
from .info import info  # noqa: E402

__all__ = [
    "apply_mask", "backend", "dropout", "dropout_mask", "effective_keep", "get_num_threads", "info",
    "set_backend", "set_num_threads", "use_backend", "__version__",
]
