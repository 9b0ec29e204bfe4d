"""A client of fastdrop's public API, type-checked by CI with ``mypy --strict`` against the
installed package (its py.typed and inline annotations) and also run, so every call here
is a valid one.  A public function whose annotations are missing or wrong makes mypy fail
here: calls to unannotated functions are errors under --strict, and ``assert_type`` pins
the result types users see.
"""
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import numpy.typing as npt
from typing_extensions import assert_type

import fastdrop as fd
from fastdrop import box, family, functional, layers, residual

FloatArray = npt.NDArray[np.floating[Any]]

x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)

# The functional API, with every kind of seed.
y = fd.dropout(x, 0.5, seed=1)
assert_type(y, FloatArray)
assert_type(fd.dropout(x, 0.5, seed=np.random.SeedSequence(2), training=True, noise_shape=(None, 1), offset=3), FloatArray)
assert_type(fd.dropout(x, np.full(16, 0.3), seed=np.random.PCG64(3), out=np.empty_like(x)), FloatArray)
assert_type(fd.dropout([1.0, 2.0], 0.5, seed=np.random.default_rng(4)), FloatArray)
mask = fd.dropout_mask(x.shape, 0.5, seed=1)
assert_type(fd.apply_mask(x, mask, 0.5), FloatArray)
assert_type(fd.effective_keep(0.5), "float | npt.NDArray[np.float64]")
assert_type(functional.dropout(x), FloatArray)

# Boxes of a larger array.
assert_type(box.dropout_box(x[:4], 0.5, seed=5, global_shape=(16, 16), origin=(2, 0)), FloatArray)
assert_type(fd.dropout_mask_box((4, 16), 0.5, seed=5, global_shape=(16, 16), origin=(2, 0)), npt.NDArray[np.bool_])

# The family.
images = np.ones((2, 3, 8, 8), dtype=np.float64)
assert_type(fd.classic_dropout(x, 0.5, seed=1), FloatArray)
assert_type(fd.spatial_dropout(images, 0.5, seed=1, data_format="channels_first"), FloatArray)
assert_type(fd.variational_dropout(x[None], 0.5, seed=1, time_axis=1), FloatArray)
assert_type(fd.drop_path(x, 0.2, seed=1), FloatArray)
assert_type(fd.alpha_dropout(x, 0.1, seed=1), FloatArray)
assert_type(fd.alpha_dropout_grad(x, 0.1, seed=1), FloatArray)
assert_type(fd.gaussian_dropout(x, 0.1, seed=1), FloatArray)
assert_type(fd.gaussian_dropout_grad(x, 0.1, seed=1, dtype=np.float32), FloatArray)
assert_type(fd.dropblock2d(images, 0.1, 3, seed=1), FloatArray)
rate: float = fd.concrete_rate(0.0)
assert_type(fd.concrete_dropout(x, -1.0, seed=1), FloatArray)
grads: Tuple[FloatArray, float] = fd.concrete_dropout_grad(x, x, -1.0, seed=1)
penalty: Tuple[float, float, List[npt.NDArray[Any]]] = family.concrete_regularization(0.0, 16, [np.ones(3)])

# Dropout on a residual branch, fused with the add (and the bias before it).
bias = np.zeros(16, dtype=np.float32)
assert_type(fd.dropout_add(x, x.copy(), 0.5, bias=bias, seed=1, training=True, noise_shape=(None, 1), offset=2,
                           out=np.empty_like(x)), FloatArray)
assert_type(fd.dropout_add(x, x.copy(), np.full(16, 0.3), seed=np.random.default_rng(2)), FloatArray)
assert_type(fd.dropout_add_grad(x, 0.5, seed=1, noise_shape=(None, 1), offset=2, bias_shape=(16,)),
            Tuple[FloatArray, FloatArray, Optional[FloatArray]])
assert_type(residual.dropout_add_grad(x, 0.5, seed=1, out=np.empty_like(x))[2], Optional[FloatArray])

# Layers: construction, calls (per-call training), backward, modes, configs.
layer = fd.Dropout(0.5, seed=np.random.SeedSequence(7))
assert_type(layer.forward(x, training=True), FloatArray)
assert_type(layer.backward(x), FloatArray)
out: Any = layer(x, training=False)
assert_type(layer.train(False), fd.Dropout)
assert_type(layer.eval(), fd.Dropout)
config: Dict[str, Any] = layer.get_config()
assert_type(fd.Dropout.from_config(config), fd.Dropout)
seed: int = layer.seed
every: List[layers.DropoutLayer] = [
    fd.SpatialDropout1D(0.5, seed=1), fd.SpatialDropout2D(0.5, data_format="channels_last"), fd.SpatialDropout3D(0.5),
    fd.AlphaDropout(0.1), fd.GaussianDropout(0.1), fd.DropPath(0.1), fd.DropBlock2D(0.1, 3),
    fd.VariationalDropout(0.5, time_axis=1), fd.ConcreteDropout(0.2, temperature=0.1), fd.AdaptiveDropout(0.5),
]
variational = fd.VariationalDropout(0.5, seed=1).start_sequence()
assert_type(variational.step(x), FloatArray)
assert_type(variational.step_backward(x), FloatArray)
add = fd.DropoutAdd(0.5, noise_shape=(None, 1), seed=1)
assert_type(add(x, x.copy(), bias), FloatArray)
assert_type(add.forward(x, x.copy()), FloatArray)
assert_type(add.backward(x), Tuple[FloatArray, FloatArray, Optional[FloatArray]])
assert_type(fd.DropoutAdd.from_config(add.get_config()), fd.DropoutAdd)
assert_type(add.eval(), fd.DropoutAdd)
concrete = fd.ConcreteDropout(0.2, seed=1)
concrete.forward(x)
assert_type(concrete.p, float)
assert_type(concrete.regularization([np.ones(3)]), float)
assert_type(concrete.regularization_grad(), Tuple[float, List[npt.NDArray[Any]]])

# Backends, threads, the installation.
assert_type(fd.backend(), str)
with fd.use_backend("numpy"), fd.use_num_threads(1):
    assert_type(fd.get_num_threads(), int)
fd.set_backend(fd.backend())
fd.set_num_threads(fd.get_num_threads())
threshold: int = fd.get_streaming_threshold()
fd.set_streaming_threshold(0)
fd.set_streaming_threshold(None)
fd.set_streaming_threshold(threshold)
assert_type(fd.info(), Dict[str, Any])
assert_type(fd.__version__, str)
print(f"typecheck_client: ran against fastdrop {fd.__version__} ({fd.backend()})")
