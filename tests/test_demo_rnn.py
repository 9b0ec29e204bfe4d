"""The demo kit's Elman RNN (``fastdrop.demo.rnn``): BPTT gradients, one dropout mask per sequence, state."""
import copy

import numpy as np
import pytest

from fastdrop.demo.rnn import ElmanRNN

RNG = np.random.default_rng(1234)


def finite_difference(f, x, gy, eps=1e-6):
    """d(sum(f(x) * gy))/dx by central differences, one element at a time (float64)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        grad[i] = (np.sum(f(xp) * gy) - np.sum(f(xm) * gy)) / (2 * eps)
    return grad


def test_elman_rnn_gradients_match_finite_differences():
    rnn = ElmanRNN(3, 4, dropout=0.3, recurrent_dropout=0.4, seed=5)
    x = RNG.standard_normal((2, 5, 3))
    g = RNG.standard_normal((2, 5, 4))
    masks = copy.deepcopy({"input": rnn.input_dropout.__getstate__(), "state": rnn.recurrent_dropout.__getstate__()})

    def replay(z):
        rnn.input_dropout.__dict__.update(copy.deepcopy(masks["input"]))
        rnn.recurrent_dropout.__dict__.update(copy.deepcopy(masks["state"]))
        return rnn(z)

    def loss():
        return np.sum(replay(x) * g)
    loss()
    gx = rnn.backward(g)
    grads = copy.deepcopy(rnn.grads)
    np.testing.assert_allclose(gx, finite_difference(replay, x, g), atol=1e-8)
    for name, param in rnn.params.items():
        analytic = grads[name]
        assert np.count_nonzero(analytic) > 0
        numeric = np.zeros_like(param)
        for i in np.ndindex(param.shape):
            old = param[i]
            param[i] = old + 1e-6
            up = loss()
            param[i] = old - 1e-6
            down = loss()
            param[i] = old
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(analytic, numeric, atol=1e-8)


def test_elman_rnn_applies_one_mask_per_sequence_to_inputs_and_state():
    rnn = ElmanRNN(6, 5, dropout=0.5, recurrent_dropout=0.5, seed=1)
    x = RNG.standard_normal((3, 8, 6))
    rnn(x)
    xd, hs, hds = rnn._cache
    in_mask = xd != 0
    assert all(np.array_equal(in_mask[:, t], in_mask[:, 0]) for t in range(8))
    state_mask = hds[:, 1:] != 0                           # step 0 sees the zero initial state
    assert all(np.array_equal(state_mask[:, t], state_mask[:, 0]) for t in range(7))
    assert 0 < state_mask[:, 0].sum() < state_mask[:, 0].size
    rnn.eval()
    a, b = rnn(x), rnn(x)
    assert np.array_equal(a, b)


def test_elman_rnn_errors():
    with pytest.raises(ValueError, match=r"hidden_size must be an int >= 1, got 0"):
        ElmanRNN(3, 0)
    rnn = ElmanRNN(3, 4, seed=0)
    with pytest.raises(RuntimeError, match="ElmanRNN.backward called before any forward"):
        rnn.backward(np.ones((1, 2, 4)))
    with pytest.raises(ValueError, match=r"ElmanRNN expects input of rank 3 \(N, T, 3\), got shape \(2, 4\)"):
        rnn(np.ones((2, 4)))


def test_elman_rnn_writes_gradients_in_place():
    rnn = ElmanRNN(3, 4, dropout=0.2, recurrent_dropout=0.2, seed=1)
    held = dict(rnn.grads)                       # what an optimizer would keep
    x = RNG.standard_normal((2, 5, 3))
    for _ in range(2):
        rnn.backward(np.ones_like(rnn(x)))
        assert all(rnn.grads[k] is held[k] for k in held)
    first = {k: v.copy() for k, v in held.items()}
    rnn.backward(np.ones((2, 5, 4)))             # the same forward again: replaced, not summed
    assert all(np.array_equal(first[k], held[k]) and np.any(held[k]) for k in held)


def test_elman_rnn_reports_its_mode():
    rnn = ElmanRNN(3, 4, dropout=0.2, seed=1)
    assert rnn.training
    assert not rnn.eval().training and not rnn.recurrent_dropout.training
    assert rnn.train().training
