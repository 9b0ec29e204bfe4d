"""The digits: scikit-learn's bundled 8x8 handwritten digits, split by a seed."""
import importlib
from dataclasses import dataclass

import numpy as np

from .nn import DTYPE

N_CLASSES = 10


class MissingExtra(ImportError):
    """An optional dependency of the demo is not installed; the message says what to run."""


def require(module, purpose):
    """Import ``module`` or raise MissingExtra with the one line that fixes it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = {"sklearn": "scikit-learn"}.get(module.split(".")[0], module.split(".")[0])
        raise MissingExtra(f"{purpose} needs {package}, which is not installed: "
                           f'pip install "fastdrop[demo]"') from None


@dataclass
class Split:
    X_train: np.ndarray     # (n_train, 64) float32 in [0, 1]
    y_train: np.ndarray     # (n_train,) int64 labels 0..9
    X_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(train_size, seed):
    """``train_size`` random images for training, all the other of the 1797 for testing.

    Pixels (0..16 ink levels) are scaled to [0, 1]. The split depends only on ``seed``.
    """
    datasets = require("sklearn.datasets", "the digits data")
    digits = datasets.load_digits()
    X = (digits.data / 16.0).astype(DTYPE)
    y = digits.target.astype(np.int64)
    if not 0 < train_size < len(y):
        raise ValueError(f"train_size must be in [1, {len(y) - 1}], got {train_size}")
    order = np.random.default_rng(seed).permutation(len(y))
    train, test = order[:train_size], order[train_size:]
    return Split(X[train], y[train], X[test], y[test])
