"""The data sets: scikit-learn's bundled 8x8 digits, split by a seed, and MNIST-1D, generated locally."""
import hashlib
import importlib
import importlib.metadata
import json
import os
import random
import tempfile
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
    X_train: np.ndarray     # (n_train, features) float32 (digits: 64 pixels in [0, 1])
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


CACHE_ENV = "FASTDROP_CACHE_DIR"


def cache_directory():
    """Where generated data is kept: ``$FASTDROP_CACHE_DIR``, else ``$XDG_CACHE_HOME/fastdrop``,
    else ``~/.cache/fastdrop``."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastdrop")


def mnist1d_arguments():
    """The authors' default dataset arguments (``mnist1d.data.get_dataset_args()``) as a dict."""
    data = require("mnist1d.data", "MNIST-1D")
    return dict(data.get_dataset_args(as_dict=True))


def mnist1d_cache_path(directory, arguments):
    """``DIR/mnist1d-<hash>.npz``: the hash covers the generator's arguments and the package
    version, so other arguments or another mnist1d release never read a stale file."""
    version = importlib.metadata.version("mnist1d")
    # The download URL is not an argument of the generated data.
    key = json.dumps({"mnist1d": version, **{k: v for k, v in arguments.items() if k != "url"}}, sort_keys=True)
    return os.path.join(directory, f"mnist1d-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz")


def load_mnist1d(directory=None):
    """(Split, path, generated) of MNIST-1D: 4000 training and 1000 test signals of length 40, float32.

    The data is made locally by the authors' generator,
    ``mnist1d.data.make_dataset(get_dataset_args())``, never downloaded, and cached in
    ``directory`` (default :func:`cache_directory`) so later runs skip the ~12 s it takes.
    ``generated`` tells whether this call made it.
    """
    arguments = mnist1d_arguments()
    directory = cache_directory() if directory is None else directory
    path = mnist1d_cache_path(directory, arguments)
    if not os.path.exists(path):
        _generate_mnist1d(arguments, path)
        generated = True
    else:
        generated = False
    with np.load(path) as stored:
        split = Split(*(stored[name] for name in ("X_train", "y_train", "X_test", "y_test")))
    return split, path, generated


def _generate_mnist1d(arguments, path):
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    # make_dataset seeds NumPy's and Python's global generators: put them back afterwards,
    # so generating the data changes nothing else in the process.
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        dataset = make_dataset(ObjectView(dict(arguments)))
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # Written under a temporary name and renamed, so a run stopped halfway, or two runs at
    # once, never leave a truncated file under the cache's name.
    handle, partial = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".npz.partial")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, X_train=dataset["x"].astype(DTYPE), y_train=dataset["y"].astype(np.int64),
                     X_test=dataset["x_test"].astype(DTYPE), y_test=dataset["y_test"].astype(np.int64))
        os.replace(partial, path)
    except BaseException:
        os.remove(partial)
        raise
