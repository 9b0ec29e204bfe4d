"""The MNIST-1D experiment: the authors' reference models and training loop, with and without dropout.

MNIST-1D (Greydanus and Kobak, "Scaling Down Deep Learning with MNIST-1D", ICML 2024):
4000 training and 1000 test signals of length 40, 10 classes, generated locally by the
authors' ``mnist1d`` package. The models and the loop are those of the authors'
``notebooks/models.py`` and ``notebooks/train.py``: PyTorch's default initialisation,
Adam at learning rate 0.01, batches of 100 taken in order, 6000 steps, cross-entropy.
fastdrop's layers add dropout after the hidden activations; every rate of a model starts
from the same weights and sees the same batches (paired runs).
"""
import time
import zlib
from dataclasses import dataclass

import numpy as np

import fastdrop as fd
from fastdrop.functional import derive_seed

from .data import N_CLASSES, load_mnist1d
from .experiment import Run, mean_and_spread
from .nn import Adam, Conv1D, Dense, Flatten, ReLU, Reshape, Residual, Sequential, Timed
from .train import fit

# The paper's table of test accuracy (Greydanus and Kobak 2024).
PAPER = {"logistic regression": 0.32, "MLP": 0.68, "CNN": 0.94, "GRU": 0.91, "human": 0.96}
PAPER_SOURCE = "Greydanus and Kobak, ICML 2024, table of test accuracies"


@dataclass(frozen=True)
class Model:
    key: str
    name: str
    title: str
    paper: object           # the paper's test accuracy for this architecture, or None
    note: str               # what the authors' own code prints, or why there is no figure


MODELS = {
    "mlp": Model("mlp", "reference MLP", "reference MLP 40-100-100-10, residual (the authors' MLPBase)", PAPER["MLP"],
                 "the authors' own notebooks print 64.6-66.0% at step 6000"),
    "wide-mlp": Model("wide-mlp", "wide MLP", "wide MLP 40-512-512-10, residual (MLPBase with 512 hidden units)", None,
                      "not in the paper"),
    "cnn": Model("cnn", "ConvBase", "ConvBase: 3 conv layers (25 channels, kernels 5/3/3, stride 2, padding 1) + linear 125-10",
                 PAPER["CNN"], "the authors' own notebooks print 92.3-92.5% at step 6000"),
}


@dataclass(frozen=True)
class Variant:
    """One model with one kind of dropout at one rate ("none" and rate 0: no dropout layer at all)."""
    model: str
    dropout: str = "none"           # "none", "Dropout" or "SpatialDropout1D"
    rate: float = 0.0

    @property
    def label(self):
        return "no dropout" if self.dropout == "none" else f"{self.dropout}({self.rate:g})"

    def dropout_seed(self, base, seed_index):
        """The dropout seed of this variant's run ``seed_index``: it depends on the variant
        itself, not on its place in a sweep, so a run of the default sweep is the same run
        in --full and with fewer --seeds."""
        variant = zlib.crc32(f"{self.model}/{self.label}".encode())
        return int(np.random.SeedSequence([base, seed_index, variant]).generate_state(1, np.uint64)[0])


def _sweep(model, kinds, rates):
    return (Variant(model),) + tuple(Variant(model, kind, rate) for kind in kinds for rate in rates)


DEFAULT_VARIANTS = _sweep("cnn", ("Dropout", "SpatialDropout1D"), (0.1,)) + _sweep("mlp", ("Dropout",), (0.2,))
FULL_VARIANTS = (_sweep("mlp", ("Dropout",), (0.1, 0.2, 0.5)) + _sweep("wide-mlp", ("Dropout",), (0.1, 0.2, 0.5))
                 + _sweep("cnn", ("Dropout", "SpatialDropout1D"), (0.1, 0.2, 0.5)))


@dataclass(frozen=True)
class Config:
    """What is trained. The defaults are the README's numbers."""
    variants: tuple = DEFAULT_VARIANTS
    seeds: int = 3
    steps: int = 6000
    batch_size: int = 100
    lr: float = 1e-2
    eval_every: int = 250
    seed: int = 0

    @property
    def models(self):
        return list(dict.fromkeys(v.model for v in self.variants))

    def describe(self, split, source):
        return (f"MNIST-1D (Greydanus and Kobak, ICML 2024): {len(split.y_train)} training / {len(split.y_test)} "
                f"test signals of length {split.X_train.shape[1]}, {N_CLASSES} classes, {source}.\n"
                f"The authors' reference models and loop: PyTorch's default init, Adam (lr {self.lr}), batches of "
                f"{self.batch_size} in order, {self.steps} steps, cross-entropy; fastdrop dropout after each hidden "
                f"activation. {self.seeds} seed{'s' if self.seeds > 1 else ''} per variant, paired: the same initial "
                f"weights and batches for every rate of a model.")


QUICK = Config(seeds=2, steps=1000)


@dataclass
class Mnist1dRun(Run):
    variant: Variant = None
    train_seconds: float = 0.0          # the whole fit, evaluations included
    dropout_seconds: float = 0.0        # of which in fastdrop's dropout layers (forward and backward)


def _dropout_layer(variant, seed):
    if variant.dropout == "Dropout":
        return fd.Dropout(variant.rate, seed=seed)
    if variant.dropout == "SpatialDropout1D":       # one decision per (signal, channel), all positions
        return fd.SpatialDropout1D(variant.rate, data_format="channels_last", seed=seed)
    raise ValueError(f"unknown dropout {variant.dropout!r}")


def build(variant, rng, dropout_seed):
    """(model, its Timed dropout layers): the variant's network, weights drawn from ``rng``.

    The weights are drawn in the same order whatever the dropout, so paired runs start
    from the same network. Layer i's dropout masks come from ``derive_seed(dropout_seed, i)``.
    """
    timed = []

    def after_activation():
        if variant.dropout == "none":
            return []
        timed.append(Timed(_dropout_layer(variant, derive_seed(dropout_seed, len(timed)))))
        return [timed[-1]]

    if variant.model in ("mlp", "wide-mlp"):
        hidden = 100 if variant.model == "mlp" else 512
        # MLPBase: h = relu(L1 x); h = h + relu(L2 h); out = L3 h.
        model = Sequential(Dense(40, hidden, rng, init="torch"), ReLU(), *after_activation(),
                           Residual(Sequential(Dense(hidden, hidden, rng, init="torch"), ReLU(), *after_activation())),
                           Dense(hidden, N_CLASSES, rng, init="torch"))
    elif variant.model == "cnn":
        # ConvBase, channels last: lengths 40 -> 19 -> 10 -> 5, then 5 x 25 = 125 features.
        model = Sequential(Reshape(40, 1),
                           Conv1D(1, 25, 5, rng, stride=2, padding=1), ReLU(), *after_activation(),
                           Conv1D(25, 25, 3, rng, stride=2, padding=1), ReLU(), *after_activation(),
                           Conv1D(25, 25, 3, rng, stride=2, padding=1), ReLU(), *after_activation(),
                           Flatten(), Dense(125, N_CLASSES, rng, init="torch"))
    else:
        raise ValueError(f"unknown model {variant.model!r}")
    return model, timed


def load(directory):
    """(Split, cache path, generated now): MNIST-1D from the cache in ``directory``, made there first if needed."""
    return load_mnist1d(directory)


def jobs(config):
    """(config, variant, seed index) of every run, models and variants in the config's order."""
    return [(config, variant, seed_index) for variant in config.variants for seed_index in range(config.seeds)]


def job_label(job, index, total):
    _, variant, seed_index = job
    return f"run {index + 1:2d}/{total} {variant.model} {variant.label} seed {seed_index}"


def train_run(job, split, progress):
    """Train one (variant, seed index); the result depends on nothing else."""
    config, variant, seed_index = job
    init = np.random.default_rng(np.random.SeedSequence([config.seed, seed_index]))
    model, timed = build(variant, init, variant.dropout_seed(config.seed, seed_index))
    optimizer = Adam(model.parameters(), lr=config.lr)
    start = time.perf_counter()
    history = fit(model, optimizer, split, batch_size=config.batch_size, steps=config.steps,
                  eval_every=config.eval_every, progress=progress)
    seconds = time.perf_counter() - start
    return Mnist1dRun(variant.rate, seed_index, model, history, variant=variant, train_seconds=seconds,
                      dropout_seconds=sum(t.seconds for t in timed))


# -- results ---------------------------------------------------------------------------------

def summarize(runs, config):
    """{model key: [(variant, stats)]}; stats hold (mean, spread) of train acc, test acc, gap and,
    against the same seeds without dropout, "change" (paired differences of test accuracy),
    "better" (how many seeds gained), and "per seed" (the test accuracies)."""
    tables = {}
    for key in config.models:
        baseline = {r.seed_index: r.test_acc for r in runs if r.variant == Variant(key)}
        rows = []
        for variant in (v for v in config.variants if v.model == key):
            mine = sorted((r for r in runs if r.variant == variant), key=lambda r: r.seed_index)
            stats = {
                "train acc": mean_and_spread([r.train_acc for r in mine]),
                "test acc": mean_and_spread([r.test_acc for r in mine]),
                "gap": mean_and_spread([r.gap for r in mine]),
                "per seed": [r.test_acc for r in mine],
            }
            if variant.dropout != "none" and all(r.seed_index in baseline for r in mine):
                changes = [r.test_acc - baseline[r.seed_index] for r in mine]
                stats["change"] = mean_and_spread(changes)
                stats["better"] = sum(c > 0 for c in changes)
            rows.append((variant, stats))
        tables[key] = rows
    return tables


def format_tables(tables, config):
    lines = [f"Per variant: mean +- standard deviation over {config.seeds} seed{'s' if config.seeds > 1 else ''}, "
             f"at step {config.steps}, dropout off at evaluation. gap = train acc - test acc; change = test acc "
             f"minus that of the same seed without dropout (paired), with the number of seeds it improved.",
             f"The paper's figures: " + ", ".join(f"{name} {100 * acc:.0f}%" for name, acc in PAPER.items())
             + f" ({PAPER_SOURCE})."]
    header = (f"{'variant':<22}{'train acc':>15}{'test acc':>16}{'gap':>16}{'change in test acc':>25}"
              f"   test acc per seed")
    for key, rows in tables.items():
        model = MODELS[key]
        paper = f"{100 * model.paper:.0f}%" if model.paper is not None else "-"
        lines += ["", f"{model.title}", f"  paper: {paper} ({model.note})", header, "-" * len(header)]
        for variant, stats in rows:
            change = (f"{stats['change'][0]:+.3f} +-{stats['change'][1]:.3f} ({stats['better']}/{len(stats['per seed'])})"
                      if "change" in stats else "-")
            lines.append(f"{variant.label:<22}" + "".join(f"{stats[n][0]:>8.3f} +-{stats[n][1]:.3f}"
                                                          for n in ("train acc", "test acc", "gap"))
                         + f"{change:>25}   " + " ".join(f"{acc:.3f}" for acc in stats["per seed"]))
    return "\n".join(lines)


def format_timing(runs, wall_seconds, workers):
    """Seconds per run and the share of the training time spent in fastdrop's layers, per model."""
    lines = [f"time: {len(runs)} runs in {wall_seconds:.1f} s wall time on {workers} worker process"
             f"{'es' if workers > 1 else ''}"]
    for key in dict.fromkeys(r.variant.model for r in runs):
        mine = [r for r in runs if r.variant.model == key]
        dropped = [r for r in mine if r.variant.dropout != "none"]
        share = (f"; with dropout, {100 * np.mean([r.dropout_seconds / r.train_seconds for r in dropped]):.0f}% "
                 f"of a run's time is in fastdrop's dropout layers (forward + backward)" if dropped else "")
        lines.append(f"  {key}: {np.mean([r.train_seconds for r in mine]):.1f} s per run{share}")
    return "\n".join(lines)


def hidden_activations(run, X):
    """(at inference, in training after dropout) of the first hidden layer of ``run``'s model on X.

    MLPs: (signals, units); ConvBase: (signals, positions, channels). The training view
    applies the run's first dropout layer in training mode (a fresh mask) to the same
    activations; without dropout it equals the inference view.
    """
    layers = run.model.layers
    first_relu = next(i for i, layer in enumerate(layers) if isinstance(layer, ReLU))
    prefix = Sequential(*layers[:first_relu + 1])
    was_training = run.model.training
    prefix.eval()
    hidden = prefix(X)
    after = layers[first_relu + 1] if isinstance(layers[first_relu + 1], Timed) else None
    if after is None:
        dropped = hidden
    else:
        after.train()
        dropped = after(hidden)
    run.model.train(was_training)
    return hidden, dropped
