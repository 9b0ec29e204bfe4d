"""The demo's figures (matplotlib, file output only: the Agg backend, no display needed)."""
import os

import numpy as np

from .data import require


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or MissingExtra."""
    matplotlib = require("matplotlib", "--plot")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "--plot")


def _save(fig, directory, name):
    import matplotlib.pyplot as plt     # already imported by _pyplot: this only names it
    path = os.path.join(directory, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)                      # pyplot keeps every open figure otherwise
    return path


def learning_curves(plt, runs, directory, with_rate):
    """Train and test loss per epoch (mean over seeds) without dropout and with ``with_rate``."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, rate in zip(axes, (0.0, with_rate)):
        mine = [r for r in runs if r.rate == rate]
        epochs = np.arange(1, len(mine[0].history.train_loss) + 1)
        for name, style in (("train", "-"), ("test", "--")):
            curves = np.array([getattr(r.history, f"{name}_loss") for r in mine])
            ax.plot(epochs, curves.mean(axis=0), style, label=f"{name} loss")
            ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), alpha=0.2)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title("without dropout" if rate == 0 else f"dropout p={rate}")
        ax.legend()
    axes[0].set_ylabel("cross-entropy, eval mode\n(mean; band: min..max over seeds)")
    return _save(fig, directory, "learning_curves.png")


def accuracy_vs_rate(plt, rows, directory):
    rates = [rate for rate, _ in rows]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name in ("train acc", "test acc"):
        mean = [stats[name][0] for _, stats in rows]
        std = [stats[name][1] for _, stats in rows]
        ax.errorbar(rates, mean, yerr=std, marker="o", capsize=3, label=name)
    ax.set_xlabel("dropout rate p")
    ax.set_ylabel("accuracy (mean +- std over seeds)")
    ax.set_xticks(rates)
    ax.legend()
    ax.set_title("accuracy against dropout rate")
    return _save(fig, directory, "accuracy_vs_rate.png")


def confusion_heatmap(plt, counts, directory, title):
    fig, ax = plt.subplots(figsize=(5.5, 5))
    image = ax.imshow(counts, cmap="Blues")
    for (i, j), c in np.ndenumerate(counts):
        ax.text(j, i, str(c), ha="center", va="center", fontsize=7,
                color="white" if c > counts.max() / 2 else "black")
    ax.set_xticks(range(counts.shape[1]))
    ax.set_yticks(range(counts.shape[0]))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, directory, "confusion_matrix.png")


def hidden_activations(plt, panels, directory):
    """``panels``: (rate, eval activations, training activations) per rate, (images, units) each.

    Top row: what each network computes at inference. Bottom row: the same images in
    training mode, after the dropout layer: the zeroed units and the 1/(1-p) scaling.
    """
    fig, axes = plt.subplots(2, len(panels), figsize=(3.2 * len(panels), 6.2), squeeze=False)
    for col, (rate, at_eval, at_train) in enumerate(panels):
        for row, (acts, mode) in enumerate(((at_eval, "inference"), (at_train, "training, after dropout"))):
            ax = axes[row, col]
            ax.imshow(acts, aspect="auto", cmap="magma", interpolation="nearest",
                      vmin=0, vmax=max(float(np.percentile(acts, 99)), 1e-6))
            ax.set_title(f"p={rate}: {mode}", fontsize=9)
            ax.set_xlabel("hidden unit")
            if col == 0:
                ax.set_ylabel("test image")
    return _save(fig, directory, "hidden_activations.png")
