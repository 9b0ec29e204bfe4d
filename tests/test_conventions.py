"""The conventions NumPy and Keras users bring: seeds as NumPy's seeding objects, outputs
in the input's memory order, ``layer(x, training=...)`` per call."""
import numpy as np
import pytest

import fastdrop as fd
from fastdrop._validation import resolve_seed

X = np.random.default_rng(0).standard_normal((6, 5, 4)).astype(np.float32)
LAYERS = [lambda: fd.Dropout(0.5, seed=3), lambda: fd.SpatialDropout1D(0.5, seed=3),
          lambda: fd.AlphaDropout(0.3, seed=3), lambda: fd.GaussianDropout(0.3, seed=3),
          lambda: fd.DropPath(0.5, seed=3), lambda: fd.VariationalDropout(0.5, seed=3),
          lambda: fd.ConcreteDropout(0.2, seed=3), lambda: fd.AdaptiveDropout(0.5, seed=3)]


# -- seeds ---------------------------------------------------------------------------------
def test_seed_sequence_gives_its_first_64_bit_word_and_is_not_changed():
    seq = np.random.SeedSequence(1234)
    word = int(np.random.SeedSequence(1234).generate_state(1, dtype=np.uint64)[0])
    assert resolve_seed(seq) == resolve_seed(seq) == word
    assert np.array_equal(fd.dropout(X, 0.5, seed=seq), fd.dropout(X, 0.5, seed=word))


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.Philox, np.random.MT19937, np.random.SFC64])
def test_bit_generator_draws_one_key_as_its_generator_would(bit_generator):
    # Drawing from a BitGenerator is drawing from default_rng(it): the same key, the same advance.
    bits, twin = bit_generator(7), bit_generator(7)
    keys = [resolve_seed(bits), resolve_seed(bits)]
    rng = np.random.default_rng(twin)
    assert keys == [int(rng.integers(0, 1 << 64, dtype=np.uint64)) for _ in range(2)]
    assert keys[0] != keys[1]
    y = fd.dropout(X, 0.5, seed=bit_generator(7))
    assert np.array_equal(y, fd.dropout(X, 0.5, seed=keys[0]))


def test_layers_and_the_family_take_seeding_objects():
    seq = np.random.SeedSequence(5)
    assert fd.Dropout(0.5, seed=seq).seed == resolve_seed(np.random.SeedSequence(5))
    assert np.array_equal(fd.alpha_dropout(X, 0.2, seed=np.random.PCG64(1)),
                          fd.alpha_dropout(X, 0.2, seed=np.random.default_rng(np.random.PCG64(1))))


@pytest.mark.parametrize("seed, name", [(np.random.RandomState(0), "RandomState"), (1.5, "float")])
def test_other_seeds_are_refused_naming_what_is_taken(seed, name):
    with pytest.raises(TypeError, match=rf"seed must be None, an int, or a numpy.random Generator, BitGenerator or "
                                        rf"SeedSequence, got {name}"):
        fd.dropout(X, 0.5, seed=seed)


# -- memory order --------------------------------------------------------------------------
CALLS = {
    "dropout": lambda x: fd.dropout(x, 0.5, seed=9),
    "dropout per-feature p": lambda x: fd.dropout(x, np.linspace(0.1, 0.9, x.shape[-1]), seed=9),
    "dropout noise_shape": lambda x: fd.dropout(x, 0.5, seed=9, noise_shape=(None, 1, None)),
    "dropout p=0": lambda x: fd.dropout(x, 0.0, seed=9),
    "dropout eval": lambda x: fd.dropout(x, 0.5, seed=9, training=False),
    "alpha_dropout": lambda x: fd.alpha_dropout(x, 0.3, seed=9),
    "gaussian_dropout": lambda x: fd.gaussian_dropout(x, 0.3, seed=9),
    "spatial_dropout": lambda x: fd.spatial_dropout(x, 0.5, seed=9),
    "dropout_box": lambda x: fd.dropout_box(x, 0.5, seed=9, global_shape=(8, 5, 4), origin=(2, 0, 0)),
}


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_output_keeps_the_memory_order_of_x_and_the_same_bits(backend, call, dtype):
    x_c = X.astype(dtype)
    x_f = np.asfortranarray(x_c)
    y_c, y_f = CALLS[call](x_c), CALLS[call](x_f)
    assert y_c.flags.c_contiguous and y_f.flags.f_contiguous, (y_c.flags, y_f.flags)
    # The mask is by logical C-order index: the same values whatever the layout.
    assert np.array_equal(y_c, y_f, equal_nan=True)


def test_other_layouts_follow_np_multiply():
    x = np.asfortranarray(X)[:, ::2]                 # neither C- nor F-contiguous
    y = fd.dropout(x, 0.5, seed=2)
    assert y.strides == np.multiply(x, 2).strides
    assert np.array_equal(y, fd.dropout(np.ascontiguousarray(x), 0.5, seed=2))


# -- training per call ---------------------------------------------------------------------
@pytest.mark.parametrize("make", LAYERS)
def test_training_false_per_call_is_inference_and_leaves_the_counter(make):
    layer, reference = make(), make().eval()
    assert layer.training
    assert np.array_equal(layer(X, training=False), reference(X))
    assert layer.counter == 0 and layer.training
    trained = make()
    assert np.array_equal(layer(X), trained(X))          # the sequence of training masks is unchanged


@pytest.mark.parametrize("make", LAYERS)
def test_training_true_per_call_in_eval_mode_draws_the_next_mask(make):
    layer, trained = make().eval(), make()
    assert np.array_equal(layer(X, training=True), trained(X))
    assert layer.counter == 1 and not layer.training
    assert np.array_equal(layer.forward(X, training=True), trained.forward(X))


def test_training_per_call_must_be_a_bool():
    layer = fd.Dropout(0.5, seed=1)
    with pytest.raises(TypeError, match="training must be a bool, got 'no'"):
        layer(X, training="no")
    assert layer.counter == 0
