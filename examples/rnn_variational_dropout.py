"""An Elman RNN reads each digit row by row (8 steps of 8 pixels): variational vs per-step dropout.

    python examples/rnn_variational_dropout.py [--quick] [--p 0.1] [--seed 0]

``fastdrop.demo.rnn.ElmanRNN`` (the demo kit's RNN) applies dropout to the inputs and to the hidden state fed back
at each step. Variational dropout (Gal and Ghahramani 2016, fastdrop's
VariationalDropout) draws one mask per sequence and holds it over all 8 steps; per-step
dropout draws a fresh mask at every step (plain Dropout on the input sequence, and one
Dropout layer per step on the state). The last hidden state goes through Dense(128 -> 10).
All variants start from the same weights and see the same batches.

Measured (seed 0, 80 epochs, hidden 128): p=0.1 test accuracy 0.938 without dropout,
0.957 per-step, 0.947 variational; at p=0.2 0.924 per-step, 0.935 variational; at p=0.25
with 64 hidden units and 40 epochs both variants underfit badly (0.79 and 0.69). With 8
steps and 300 sequences the ranking of the two schemes is within seed noise; the
example shows the mechanics of both masks through backpropagation through time.
"""
import argparse
import sys

import numpy as np

import fastdrop as fd
from fastdrop import _cli_args
from fastdrop.demo import run_script
from fastdrop.demo.data import load_digits_split
from fastdrop.demo.nn import DTYPE, SGD, Dense, Layer, Sequential
from fastdrop.demo.rnn import ElmanRNN
from fastdrop.demo.train import fit
from fastdrop.functional import derive_seed

HIDDEN = 128


class PerStepDropout(Layer):
    """Recurrent dropout with a new mask at every step, in VariationalDropout's step API.

    Step t of every sequence uses its own Dropout layer, so each layer's backward (which
    replays the mask of its last forward) is exactly step t's; backpropagation through
    time visits the steps in reverse order.
    """

    def __init__(self, p, seed):
        self.p, self.seed = p, seed
        self.children = []              # the Dropout layer of step t, made when step t first runs
        self._t = 0

    def start_sequence(self):
        self._t = 0
        return self

    def step(self, h):
        if self._t == len(self.children):
            self.children.append(fd.Dropout(self.p, seed=derive_seed(self.seed, self._t)).train(self.training))
        out = self.children[self._t](h)
        self._t += 1
        return out

    def step_backward(self, grad):
        self._t -= 1
        return self.children[self._t].backward(grad)


class RowReader(Layer):
    """(N, 64) pixels -> the RNN over the 8 rows -> the last hidden state (N, HIDDEN)."""

    def __init__(self, rnn):
        self.rnn = rnn
        self.children = (rnn,)          # train()/eval() and parameters() reach the RNN

    def forward(self, x):
        self._states = self.rnn(x.reshape(-1, 8, 8))
        return self._states[:, -1].astype(DTYPE)

    def backward(self, gy):
        grad_states = np.zeros_like(self._states)
        grad_states[:, -1] = gy
        self.rnn.backward(grad_states)


def build(scheme, p, seed):
    rnn = ElmanRNN(8, HIDDEN, dropout=p if scheme == "variational" else 0.0,
                   recurrent_dropout=p if scheme == "variational" else 0.0, seed=seed)
    if scheme == "per-step":
        rnn.input_dropout = fd.Dropout(p, seed=derive_seed(seed, 1))      # a mask per pixel per step
        rnn.recurrent_dropout = PerStepDropout(p, derive_seed(seed, 2))
    return Sequential(RowReader(rnn), Dense(HIDDEN, 10, np.random.default_rng(seed)))


def run(args):
    data = load_digits_split(train_size=300, seed=args.seed)
    epochs = 10 if args.quick else 80
    print(f"{len(data.y_train)} training / {len(data.y_test)} test digits read as 8 rows of 8 pixels, "
          f"{epochs} epochs, dropout p={args.p} on inputs and recurrent state")
    for scheme in ("no dropout", "per-step", "variational"):
        model = build(scheme, args.p, args.seed)
        optimizer = SGD(model.parameters(), lr=0.02, momentum=0.9)
        history = fit(model, optimizer, data, epochs=epochs, batch_size=32, rng=np.random.default_rng(args.seed + 1))
        print(f"{scheme:<12} {history.summary()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 epochs instead of 80")
    parser.add_argument("--p", type=_cli_args.rate, default=0.1,
                        help="drop rate on the inputs and on the recurrent state")
    parser.add_argument("--seed", type=_cli_args.seed, default=0)
    sys.exit(run_script("rnn_variational_dropout.py", run, parser.parse_args()))
