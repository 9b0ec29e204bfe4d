"""The demo's core in one screen: an MLP with dropout on the bundled digits.

    python examples/mlp_digits.py [--quick] [--p 0.5] [--seed 0]

Dense(64 -> 1024), ReLU, fastdrop Dropout, Dense(1024 -> 10), softmax cross-entropy,
mini-batch SGD with momentum, trained once without dropout and once with rate --p on the
same 300 training images, from the same initial weights. ``fastdrop demo`` runs the
full experiment (four rates, three seeds, plots).
"""
import argparse
import sys

import numpy as np

import fastdrop as fd
from fastdrop import _cli_args
from fastdrop.demo import run_script
from fastdrop.demo.data import load_digits_split
from fastdrop.demo.nn import SGD, Dense, ReLU, Sequential
from fastdrop.demo.train import fit


def train(p, data, epochs, seed):
    """The History of one network trained with dropout rate p (measured with dropout off)."""
    rng = np.random.default_rng(seed)         # the same weights and batches for every p
    model = Sequential(Dense(64, 1024, rng), ReLU(), fd.Dropout(p, seed=seed), Dense(1024, 10, rng))
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
    # Each step: forward, softmax cross-entropy, backward through Dense, Dropout (the same
    # mask, regenerated from its seed), ReLU and Dense, then the SGD update.
    return fit(model, optimizer, data, epochs=epochs, batch_size=32, rng=rng)


def run(args):
    data = load_digits_split(train_size=300, seed=args.seed)
    epochs = 5 if args.quick else 60
    print(f"{len(data.y_train)} training / {len(data.y_test)} test digits, {epochs} epochs")
    for p in (0.0, args.p):
        history = train(p, data, epochs, args.seed)
        print(f"p={p:.2f}: {history.summary()}, gap {history.train_acc[-1] - history.test_acc[-1]:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 epochs instead of 60")
    parser.add_argument("--p", type=_cli_args.rate, default=0.5, help="the dropout rate to compare with no dropout")
    parser.add_argument("--seed", type=_cli_args.seed, default=0)
    sys.exit(run_script("mlp_digits.py", run, parser.parse_args()))
