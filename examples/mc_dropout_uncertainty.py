"""Monte Carlo dropout: keep dropout on at inference and read uncertainty from the spread.

    python examples/mc_dropout_uncertainty.py [--quick] [--samples 100] [--plot DIR] [--seed 0]

An MLP with dropout (p=0.5) is trained on 300 digits. At inference the Dropout layer
stays in training mode and each test image goes through T different masks (Gal and
Ghahramani 2016): the mean of the T softmax outputs is the prediction, their standard
deviation (of the predicted class) and the entropy of the mean are its uncertainty.
Both should be low on clean test digits and higher on corrupted digits and on inputs
that are not digits at all.
"""
import argparse
import sys

import numpy as np

import fastdrop as fd
from fastdrop import _cli_args
from fastdrop.demo import run_script
from fastdrop.demo.data import load_digits_split
from fastdrop.demo.nn import DTYPE, SGD, Dense, ReLU, Sequential, softmax
from fastdrop.demo.train import fit


def mc_predict(model, X, samples):
    """Mean and standard deviation over ``samples`` dropout masks of the class probabilities (N, 10)."""
    model.train()                                   # dropout on: a new mask per forward
    probs = np.stack([softmax(model(X).astype(np.float64)) for _ in range(samples)])   # (T, N, 10)
    return probs.mean(axis=0), probs.std(axis=0)


def entropy(p):
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)


def input_sets(data, rng):
    """Clean test digits, the same digits corrupted, and images that are not digits."""
    clean = data.X_test
    noisy = np.clip(clean + rng.normal(0, 0.4, clean.shape), 0, 1).astype(DTYPE)
    occluded = clean.reshape(-1, 8, 8).copy()
    occluded[:, 2:6, 2:6] = 1.0                     # an ink blot over the centre of each digit
    noise = rng.uniform(0, 1, clean.shape).astype(DTYPE)
    return {
        "clean test digits": (clean, data.y_test),
        "digits + noise (sd 0.4)": (noisy, data.y_test),
        "digits, centre blotted": (occluded.reshape(clean.shape), data.y_test),
        "uniform noise images": (noise, None),
    }


def run(args):
    data = load_digits_split(train_size=300, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    model = Sequential(Dense(64, 512, rng), ReLU(), fd.Dropout(0.5, seed=args.seed), Dense(512, 10, rng))
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
    epochs = 10 if args.quick else 60
    fit(model, optimizer, data, epochs=epochs, batch_size=32, rng=rng)
    samples = args.samples or (20 if args.quick else 100)
    print(f"MLP 64-512-10 with Dropout(0.5), {epochs} epochs on {len(data.y_train)} digits; "
          f"{samples} dropout masks per input at inference")
    print(f"{'input set':<26}{'accuracy':>9}{'mean std':>10}{'mean entropy':>14}")
    results = {}
    for name, (X, y) in input_sets(data, np.random.default_rng(args.seed + 1)).items():
        mean, spread = mc_predict(model, X, samples)
        std = spread[np.arange(len(X)), mean.argmax(axis=1)]      # of the predicted class
        acc = f"{(mean.argmax(axis=1) == y).mean():.3f}" if y is not None else "-"
        results[name] = (std, entropy(mean), mean, spread)
        print(f"{name:<26}{acc:>9}{std.mean():>10.3f}{entropy(mean).mean():>14.3f}")
    if args.plot:
        print(f"wrote {plot(results, args.plot)}")


def plot(results, directory):
    from fastdrop.demo.plots import pyplot, save
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    bins = np.linspace(0, max(r[0].max() for r in results.values()), 30)
    for name, (std, ent, _, _) in results.items():
        axes[0].hist(std, bins=bins, histtype="step", density=True, label=name)
        axes[1].hist(ent, bins=30, histtype="step", density=True, label=name)
    axes[0].set_xlabel("std of the predicted class's probability over masks")
    axes[1].set_xlabel("entropy of the mean prediction (nats)")
    axes[0].legend(fontsize=8)
    for ax in axes[:2]:
        ax.set_ylabel("density")
    names = list(results)
    for offset, name in ((-0.2, names[0]), (0.2, names[-1])):
        mean, spread = results[name][2][0], results[name][3][0]
        axes[2].bar(np.arange(10) + offset, mean, yerr=spread, capsize=2, width=0.4, label=f"{name}, first image")
    axes[2].set_xticks(range(10))
    axes[2].set_xlabel("class")
    axes[2].set_ylabel("probability: mean +- std over masks")
    axes[2].legend(fontsize=8)
    return save(fig, directory, "mc_dropout_uncertainty.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 epochs and (unless --samples says) 20 masks")
    parser.add_argument("--samples", type=_cli_args.positive,
                        help="dropout masks per input (T; default 100, --quick 20)")
    parser.add_argument("--plot", metavar="DIR", type=_cli_args.output_dir,
                        help="write mc_dropout_uncertainty.png into DIR (created if needed)")
    parser.add_argument("--seed", type=_cli_args.seed, default=0)
    sys.exit(run_script("mc_dropout_uncertainty.py", run, parser.parse_args()))
