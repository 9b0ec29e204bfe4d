"""The digits experiment (``fastdrop demo --data digits``): one MLP trained per (dropout rate, seed),
and the summaries and tables the MNIST-1D experiment shares."""
from dataclasses import dataclass

import numpy as np

import fastdrop as fd

from .data import N_CLASSES, load_digits_split
from .nn import SGD, Dense, ReLU, Sequential
from .._progress import ProgressBar
from .train import fit, predict_logits

RATES = (0.0, 0.2, 0.5, 0.8)


@dataclass(frozen=True)
class Config:
    """What is trained. The defaults are the README's numbers."""
    rates: tuple = RATES
    seeds: int = 3
    train_size: int = 300
    hidden: int = 1024
    epochs: int = 60
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    seed: int = 0

    def describe(self, split):
        return (f"MLP 64-{self.hidden}-{N_CLASSES} (Dense, ReLU, Dropout(p), Dense) on the scikit-learn digits: "
                f"{len(split.y_train)} training / {len(split.y_test)} test images (split seed {self.seed}); "
                f"{self.epochs} epochs of SGD (batch {self.batch_size}, lr {self.lr}, momentum {self.momentum}); "
                f"{self.seeds} seed{'s' if self.seeds > 1 else ''} per rate")


QUICK = Config(seeds=2, epochs=12)


@dataclass
class Run:
    rate: float
    seed_index: int
    model: Sequential
    history: object

    @property
    def train_acc(self):
        return self.history.train_acc[-1]

    @property
    def test_acc(self):
        return self.history.test_acc[-1]

    @property
    def gap(self):
        return self.train_acc - self.test_acc


def build_mlp(n_in, hidden, rate, init_rng, dropout_seed):
    return Sequential(Dense(n_in, hidden, init_rng), ReLU(), fd.Dropout(rate, seed=dropout_seed),
                      Dense(hidden, N_CLASSES, init_rng))


def _seeds(config, seed_index, rate_index):
    """(init/shuffle Generator, dropout seed) for one run.

    Runs with the same seed index start from the same weights and see the same batches
    whatever their rate, so the rates are compared on paired runs; the dropout stream
    differs per (seed index, rate).
    """
    init = np.random.default_rng(np.random.SeedSequence([config.seed, seed_index]))
    dropout_seed = int(np.random.SeedSequence([config.seed, seed_index, rate_index]).generate_state(1, np.uint64)[0])
    return init, dropout_seed


def run_all(config, split, progress=True):
    """Train every (rate, seed) pair; returns the runs in (rate, seed) order."""
    runs = []
    total = len(config.rates) * config.seeds
    for rate_index, rate in enumerate(config.rates):
        for seed_index in range(config.seeds):
            rng, dropout_seed = _seeds(config, seed_index, rate_index)
            model = build_mlp(split.X_train.shape[1], config.hidden, rate, rng, dropout_seed)
            optimizer = SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
            bar = ProgressBar(config.epochs, f"run {len(runs) + 1:2d}/{total} p={rate:.1f} seed {seed_index}") \
                if progress else None
            history = fit(model, optimizer, split, epochs=config.epochs, batch_size=config.batch_size,
                          rng=rng, eval_every=1, progress=bar)
            runs.append(Run(rate, seed_index, model, history))
    return runs


def confusion_matrix(y_true, y_pred, n_classes=N_CLASSES):
    """counts[i, j] = number of images of class i predicted as j."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def best_run(runs):
    """The run with the highest final test accuracy (the first one on ties)."""
    return max(runs, key=lambda r: r.test_acc)


def mean_and_spread(values):
    """(mean, sample standard deviation) of ``values``; the spread of one value is 0."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarize(runs, rates):
    """Per rate: mean and sample standard deviation over seeds of train acc, test acc, gap, test loss."""
    rows = []
    for rate in rates:
        mine = [r for r in runs if r.rate == rate]
        columns = {
            "train acc": [r.train_acc for r in mine],
            "test acc": [r.test_acc for r in mine],
            "gap": [r.gap for r in mine],
            "test loss": [r.history.test_loss[-1] for r in mine],
        }
        rows.append((rate, {k: mean_and_spread(v) for k, v in columns.items()}))
    return rows


def format_table(rows, n_seeds):
    names = ("train acc", "test acc", "gap", "test loss")
    header = f"{'rate':>5}  " + "  ".join(f"{n:>16}" for n in names)
    lines = [f"per rate: mean +- standard deviation over {n_seeds} seed{'s' if n_seeds > 1 else ''} "
             f"(gap = train acc - test acc, both at the last epoch, without dropout at evaluation)",
             header, "-" * len(header)]
    for rate, stats in rows:
        lines.append(f"{rate:>5.1f}  " + "  ".join(f"{stats[n][0]:>8.3f} +-{stats[n][1]:.3f}" for n in names))
    return "\n".join(lines)


def format_confusion(counts):
    header = "true\\pred " + "".join(f"{j:>5d}" for j in range(counts.shape[1]))
    lines = [header] + [f"{i:>9d} " + "".join(f"{c:>5d}" for c in row) for i, row in enumerate(counts)]
    return "\n".join(lines)


def best_confusion(run, split):
    predictions = predict_logits(run.model, split.X_test).argmax(axis=1)
    return confusion_matrix(split.y_test, predictions)


def load(config):
    return load_digits_split(config.train_size, config.seed)


def hidden_activations(run, X, n_units):
    """Hidden ReLU activations of ``run``'s MLP on X: (at inference, in training after dropout)."""
    dense, relu, dropout = run.model.layers[:3]
    hidden = relu(dense(X))[:, :n_units]
    was_training = dropout.training
    dropout.train()
    after_dropout = dropout(hidden)
    if not was_training:
        dropout.eval()
    return hidden, after_dropout
