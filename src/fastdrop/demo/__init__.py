"""``fastdrop demo``: dropout doing its job on real data, trained end to end on fastdrop layers.

An over-parameterised MLP learns a few hundred of scikit-learn's bundled handwritten
digits with dropout rates 0, 0.2, 0.5 and 0.8, three seeds each. The table on stdout
shows, per rate, train and test accuracy and the generalisation gap; ``--plot DIR``
writes the figures. Needs the ``demo`` extra (scikit-learn, matplotlib).

This subpackage also holds the small NumPy network kit (:mod:`fastdrop.demo.nn`) and the
training loop (:mod:`fastdrop.demo.train`) that ``examples/`` build on. The core package
never imports it.
"""
import argparse
import dataclasses
import os
import sys
import time

from .. import _cli_args
from .data import MissingExtra

__all__ = ["main", "run_script", "MissingExtra"]


def _parser():
    parser = argparse.ArgumentParser(
        prog="fastdrop demo",
        description="Train an over-parameterised MLP on the bundled digits with dropout rates "
                    "0, 0.2, 0.5, 0.8 (3 seeds each) and print train/test accuracy and the gap.")
    parser.add_argument("--seed", type=_cli_args.seed, default=0, help="seeds the split, the weights, the batches "
                        "and the dropout masks; the same seed prints the same tables (default 0)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 seeds, 12 epochs")
    parser.add_argument("--plot", metavar="DIR", type=_cli_args.output_dir,
                        help="write the figures as PNG files into DIR (created if needed)")
    parser.add_argument("--epochs", type=_cli_args.positive, help="epochs per run (default 60, --quick 12)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    return parser


def main(argv=None):
    return run_script("fastdrop demo", _run, _parser().parse_args(argv))


def run_script(name, body, args):
    """``body(args)`` with single-threaded BLAS; a missing extra prints one line and gives 2.

    The entry point of ``fastdrop demo`` and of the scripts in ``examples/``.
    """
    from .train import single_threaded_blas
    try:
        with single_threaded_blas():
            return body(args) or 0
    except MissingExtra as missing:
        print(f"{name}: {missing}", file=sys.stderr)
        return 2


def _run(args):
    from . import experiment
    from .data import require

    plt = None
    if args.plot:               # a missing matplotlib fails before training, not after
        from .plots import pyplot
        plt = pyplot()
    require("sklearn.datasets", "the digits data")

    config = experiment.QUICK if args.quick else experiment.Config()
    config = dataclasses.replace(config, seed=args.seed, epochs=args.epochs or config.epochs)
    started = time.perf_counter()
    split = experiment.load(config)
    print(config.describe(split))
    print()
    runs = experiment.run_all(config, split, progress=not args.no_progress)
    rows = experiment.summarize(runs, config.rates)
    print(experiment.format_table(rows, config.seeds))
    print()
    best = experiment.best_run(runs)
    counts = experiment.best_confusion(best, split)
    print(f"confusion matrix of the best run (p={best.rate}, seed {best.seed_index}: "
          f"test accuracy {best.test_acc:.3f}) on the {len(split.y_test)} test images")
    print(experiment.format_confusion(counts))
    if plt is not None:
        print()
        os.makedirs(args.plot, exist_ok=True)       # checked when parsed, created now that there is output
        for path in _plots(plt, args.plot, runs, rows, best, counts, split):
            print(f"wrote {path}")
    print(f"fastdrop demo: {len(runs)} runs in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def _plots(plt, directory, runs, rows, best, counts, split):
    from . import experiment, plots

    # Learning curves of no dropout against the rate with the best mean test accuracy.
    with_rate = max((row for row in rows if row[0] > 0), key=lambda row: row[1]["test acc"][0],
                    default=rows[-1])[0]
    order = split.y_test.argsort(kind="stable")[::len(split.y_test) // 48][:48]   # 48 test images, by label
    panels = [(rate, *experiment.hidden_activations(next(r for r in runs if r.rate == rate),
                                                    split.X_test[order], n_units=64))
              for rate in sorted({r.rate for r in runs})]
    return [
        plots.learning_curves(plt, runs, directory, with_rate),
        plots.accuracy_vs_rate(plt, rows, directory),
        plots.confusion_heatmap(plt, counts, directory,
                                f"best run: p={best.rate}, test accuracy {best.test_acc:.3f}"),
        plots.hidden_activations(plt, panels, directory),
    ]
