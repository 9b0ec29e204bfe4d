"""The demo's figures (matplotlib, file output only: the Agg backend, no display needed)."""
import os

import numpy as np

from .data import require


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or MissingExtra."""
    matplotlib = require("matplotlib", "--plot")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "--plot")


def save(fig, directory, name):
    """Lay out ``fig``, write it as ``directory/name`` (the directory made if needed), close it;
    returns the path."""
    import matplotlib.pyplot as plt     # already imported by pyplot(): this only names it
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    if fig.get_layout_engine() is None:      # a figure made with a layout (constrained) keeps it
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
    return save(fig, directory, "learning_curves.png")


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
    return save(fig, directory, "accuracy_vs_rate.png")


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
    fig.colorbar(image, ax=ax, shrink=0.8).set_label("test images")
    return save(fig, directory, "confusion_matrix.png")


def hidden_activations(plt, panels, directory):
    """``panels``: (rate, eval activations, training activations) per rate, (images, units) each.

    Top row: what each network computes at inference. Bottom row: the same images in
    training mode, after the dropout layer: the zeroed units and the 1/(1-p) scaling.
    Every panel shares one colour scale (0 to the 99.5th percentile of all of them), shown
    by one labelled colorbar, so brightness compares across rates and modes.
    """
    top = float(np.percentile(np.concatenate([a.ravel() for _, *pair in panels for a in pair]), 99.5)) or 1e-6
    fig, axes = plt.subplots(2, len(panels), figsize=(3.2 * len(panels) + 1, 6.2), squeeze=False,
                             layout="constrained")
    for col, (rate, at_eval, at_train) in enumerate(panels):
        for row, (acts, mode) in enumerate(((at_eval, "inference"), (at_train, "training, after dropout"))):
            ax = axes[row, col]
            image = ax.imshow(acts, aspect="auto", cmap="magma", interpolation="nearest", vmin=0, vmax=top)
            ax.set_title(f"p={rate}: {mode}", fontsize=9)
            ax.set_xlabel("hidden unit")
            if col == 0:
                ax.set_ylabel("test image")
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.9, extend="max")
    bar.set_label("activation after ReLU (and dropout: 0 or x/(1-p)); one scale for all panels")
    return save(fig, directory, "hidden_activations.png")


def _mean_and_band(curves):
    curves = np.asarray(curves)
    return curves.mean(axis=0), curves.min(axis=0), curves.max(axis=0)


def _paper_line(ax, model):
    if model.paper is not None:
        ax.axhline(model.paper, color="black", linestyle=":", linewidth=1.2,
                   label=f"paper: {100 * model.paper:.0f}%")


def mnist1d_learning_curves(plt, runs, config, directory):
    """Test (solid) and train (dashed) accuracy against the step, per model and variant."""
    from .mnist1d import MODELS

    fig, axes = plt.subplots(1, len(config.models), figsize=(5.5 * len(config.models), 4.2), squeeze=False)
    for ax, key in zip(axes[0], config.models):
        for index, variant in enumerate(v for v in config.variants if v.model == key):
            mine = [r for r in runs if r.variant == variant]
            steps = mine[0].history.at
            color = f"C{index}"
            mean, low, high = _mean_and_band([r.history.test_acc for r in mine])
            ax.plot(steps, mean, color=color, label=f"{variant.label}: test")
            ax.fill_between(steps, low, high, color=color, alpha=0.2)
            ax.plot(steps, _mean_and_band([r.history.train_acc for r in mine])[0], "--", color=color,
                    linewidth=1, label=f"{variant.label}: train")
        _paper_line(ax, MODELS[key])
        ax.set_title(MODELS[key].name)
        ax.set_xlabel("training step")
        ax.set_ylim(top=1.0)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("accuracy, eval mode\n(mean; band: min..max over seeds)")
    return save(fig, directory, "learning_curves.png")


def mnist1d_accuracy_vs_rate(plt, tables, directory):
    """Test (solid) and train (dashed) accuracy against the rate per model and dropout kind,
    with the paper's figure for the architecture as a reference line."""
    from .mnist1d import MODELS

    fig, axes = plt.subplots(1, len(tables), figsize=(4.8 * len(tables), 4), squeeze=False)
    for ax, (key, rows) in zip(axes[0], tables.items()):
        baseline = [stats for variant, stats in rows if variant.dropout == "none"]
        kinds = list(dict.fromkeys(v.dropout for v, _ in rows if v.dropout != "none"))
        for index, kind in enumerate(kinds):
            points = [(0.0, s) for s in baseline] + [(v.rate, s) for v, s in rows if v.dropout == kind]
            rates = [rate for rate, _ in points]
            for name, style in (("test acc", "-o"), ("train acc", "--")):
                ax.errorbar(rates, [s[name][0] for _, s in points], yerr=[s[name][1] for _, s in points],
                            fmt=style, color=f"C{index}", capsize=3, markersize=4,
                            label=f"{kind}: {name.split()[0]}")
        _paper_line(ax, MODELS[key])
        ax.set_title(MODELS[key].name)
        ax.set_xlabel("dropout rate p")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("accuracy at the last step\n(mean +- std over seeds)")
    return save(fig, directory, "accuracy_vs_rate.png")


def mnist1d_hidden_activations(plt, panels, directory):
    """``panels``: {model name: [(variant label, at inference, in training after dropout)]}.

    Two rows per model (inference; training mode after the dropout layer), one column
    per variant, all panels of a model on one colour scale with its colorbar: dropped
    units are 0, kept ones are scaled up by 1/(1-p).
    """
    columns = max(len(p) for p in panels.values())
    # The constrained layout places the colorbars that span a model's two rows.
    fig, axes = plt.subplots(2 * len(panels), columns, figsize=(3.3 * columns + 1, 2.7 * 2 * len(panels)),
                             squeeze=False, layout="constrained")
    for block, (name, model_panels) in enumerate(panels.items()):
        top = max(float(np.percentile(np.concatenate([a.ravel(), b.ravel()]), 99.5))
                  for _, a, b in model_panels) or 1e-6
        for col in range(columns):
            for row, mode in enumerate(("inference", "training, after dropout")):
                ax = axes[2 * block + row, col]
                if col >= len(model_panels):
                    ax.axis("off")
                    continue
                label, at_eval, at_train = model_panels[col]
                image = ax.imshow(at_eval if row == 0 else at_train, aspect="auto", cmap="magma",
                                  interpolation="nearest", vmin=0, vmax=top)
                ax.set_title(f"{name}, {label}:\n{mode}", fontsize=8)
                ax.tick_params(labelsize=7)
        bar = fig.colorbar(image, ax=axes[2 * block:2 * block + 2, :].ravel().tolist(), shrink=0.9)
        bar.set_label("activation after ReLU\n(and dropout: 0 or x/(1-p))", fontsize=8)
        signals = "MLP" in name        # MLP panels: signals by units; ConvBase: one signal's channels by positions
        for row in (2 * block, 2 * block + 1):
            axes[row, 0].set_ylabel("test signal (by class)" if signals else "channel", fontsize=8)
        for ax in axes[2 * block + 1, :len(model_panels)]:
            ax.set_xlabel("hidden unit (first 64)" if signals else "position", fontsize=8)
    path = os.path.join(directory, "hidden_activations.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def mnist1d_figures(plt, directory, runs, tables, config, best, counts, split):
    """Every figure of the MNIST-1D demo; returns their paths."""
    from .mnist1d import MODELS, hidden_activations

    order = split.y_test.argsort(kind="stable")[::len(split.y_test) // 40][:40]   # 40 test signals, by label
    panels = {}
    for key in config.models:
        model_panels = []
        for variant in (v for v in config.variants if v.model == key):
            run = next(r for r in runs if r.variant == variant and r.seed_index == 0)
            at_eval, at_train = hidden_activations(run, split.X_test[order])
            if key == "cnn":    # one signal: channels (rows) by positions (columns)
                at_eval, at_train = at_eval[0].T, at_train[0].T
            else:
                at_eval, at_train = at_eval[:, :64], at_train[:, :64]
            model_panels.append((variant.label, at_eval, at_train))
        panels[MODELS[key].name] = model_panels
    return [
        mnist1d_learning_curves(plt, runs, config, directory),
        mnist1d_accuracy_vs_rate(plt, tables, directory),
        confusion_heatmap(plt, counts, directory, f"best run: {MODELS[best.variant.model].name} "
                                                  f"{best.variant.label}, test accuracy {best.test_acc:.3f}"),
        mnist1d_hidden_activations(plt, panels, directory),
    ]
