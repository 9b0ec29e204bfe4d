"""``fastdrop demo``: dropout doing its job on real data, trained end to end on fastdrop layers.

By default the reference models of MNIST-1D (Greydanus and Kobak, ICML 2024), a benchmark
nobody here wrote, trained as the authors train them, with and without dropout, next to
the paper's figures: the table on stdout shows, per model and dropout variant, train and
test accuracy, the gap and the paired change against no dropout. ``--data digits`` runs
the earlier demo, an over-parameterised MLP on a few hundred of scikit-learn's bundled
8x8 digits. ``--plot DIR`` writes the figures. Needs the ``demo`` extra (mnist1d, scipy,
scikit-learn, matplotlib).

This subpackage also holds the small NumPy network kit (:mod:`fastdrop.demo.nn`,
:mod:`fastdrop.demo.rnn`) and the training loop (:mod:`fastdrop.demo.train`) that
``examples/`` build on. The core package never imports it.
"""
import argparse
import dataclasses
import os
import sys
import time

from .. import _cli_args
from .data import MissingExtra, cache_directory

__all__ = ["main", "run_script", "MissingExtra"]

MNIST1D_ONLY = ("--full", "--steps", "--workers", "--data-dir")


def _parser():
    parser = argparse.ArgumentParser(
        prog="fastdrop demo",
        description="Train networks with and without fastdrop's dropout and print what dropout changes: by "
                    "default the reference models of MNIST-1D (Greydanus and Kobak, ICML 2024) next to the "
                    "paper's figures, or (--data digits) an MLP on scikit-learn's 8x8 digits.")
    parser.add_argument("--data", choices=("mnist1d", "digits"), default="mnist1d",
                        help="mnist1d (default): ConvBase and the reference MLP of MNIST-1D; digits: the 64-1024-10 "
                             "MLP on 300 bundled digits at rates 0, 0.2, 0.5, 0.8")
    parser.add_argument("--seed", type=_cli_args.seed, default=0, help="seeds the weights, the dropout masks and "
                        "(digits) the split and batches; the same seed prints the same tables (default 0)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="a smoke run: 2 seeds; MNIST-1D 1000 steps, digits 12 epochs")
    size.add_argument("--full", action="store_true",
                      help="MNIST-1D: the whole sweep, the reference MLP, a wide MLP (512 units) and ConvBase at "
                           "rates 0, 0.1, 0.2, 0.5 (ConvBase with Dropout and SpatialDropout1D)")
    parser.add_argument("--seeds", type=_cli_args.positive, help="seeds per rate or variant (default 3, --quick 2)")
    parser.add_argument("--steps", type=_cli_args.positive,
                        help="MNIST-1D: training steps per run (default 6000 as in the reference, --quick 1000)")
    parser.add_argument("--epochs", type=_cli_args.positive, help="digits: epochs per run (default 60, --quick 12)")
    parser.add_argument("--workers", type=_cli_args.integer(1, 64),
                        help="MNIST-1D: worker processes training runs side by side, one BLAS thread each "
                             "(default: 2, or 1 on a 1-CPU machine); the results do not depend on it")
    parser.add_argument("--data-dir", metavar="DIR", type=_cli_args.output_dir,
                        help="MNIST-1D: where the generated data is cached (default: $FASTDROP_CACHE_DIR, else "
                             "$XDG_CACHE_HOME/fastdrop, else ~/.cache/fastdrop)")
    parser.add_argument("--plot", metavar="DIR", type=_cli_args.output_dir,
                        help="write the figures as PNG files into DIR (created if needed)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    return parser


def _parse(argv):
    parser = _parser()
    args = parser.parse_args(argv)
    given = {option for option in MNIST1D_ONLY
             if getattr(args, option[2:].replace("-", "_")) not in (None, False)}
    if args.data == "digits" and given:
        parser.error(f"argument {sorted(given)[0]}: applies to --data mnist1d only")
    if args.data == "mnist1d":
        if args.epochs is not None:
            parser.error("argument --epochs: applies to --data digits only (MNIST-1D runs --steps)")
        if args.data_dir is None:           # the default cache is an output path too: checked now
            try:
                args.data_dir = _cli_args.output_dir(cache_directory())
            except argparse.ArgumentTypeError as error:
                parser.error(f"argument --data-dir: the default cache directory: {error}; pass --data-dir DIR")
    return args


def main(argv=None):
    args = _parse(argv)
    return run_script("fastdrop demo", _run_digits if args.data == "digits" else _run_mnist1d, args)


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


def _pyplot_if_plotting(args):
    """matplotlib.pyplot when --plot is given, else None: a missing matplotlib fails before
    training, not after."""
    if not args.plot:
        return None
    from .plots import pyplot
    return pyplot()


def _write_figures(directory, draw):
    """Create ``directory`` (checked when parsed, created now that there is output), call
    ``draw()`` and print the paths it returns."""
    print()
    os.makedirs(directory, exist_ok=True)
    for path in draw():
        print(f"wrote {path}")


def _run_digits(args):
    from . import experiment
    from .data import require

    plt = _pyplot_if_plotting(args)
    require("sklearn.datasets", "the digits data")

    config = experiment.QUICK if args.quick else experiment.Config()
    config = dataclasses.replace(config, seed=args.seed, epochs=args.epochs or config.epochs,
                                 seeds=args.seeds or config.seeds)
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
        _write_figures(args.plot, lambda: _digits_plots(plt, args.plot, runs, rows, best, counts, split))
    print(f"fastdrop demo: {len(runs)} runs in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def _digits_plots(plt, directory, runs, rows, best, counts, split):
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


def _run_mnist1d(args):
    from . import experiment, mnist1d, parallel
    from .data import require

    plt = _pyplot_if_plotting(args)
    require("mnist1d.data", "MNIST-1D")

    config = mnist1d.QUICK if args.quick else mnist1d.Config()
    if args.full:
        config = dataclasses.replace(config, variants=mnist1d.FULL_VARIANTS)
    config = dataclasses.replace(config, seed=args.seed, seeds=args.seeds or config.seeds,
                                 steps=args.steps or config.steps)
    workers = args.workers or min(2, os.cpu_count() or 1)
    started = time.perf_counter()
    split, path, generated = mnist1d.load(args.data_dir)
    source = f"{'generated now' if generated else 'generated earlier'} by the authors' mnist1d package, cached in {path}"
    print(config.describe(split, source))
    print()
    jobs = mnist1d.jobs(config)
    runs = parallel.run_jobs(mnist1d.train_run, jobs, split, workers=workers,
                             labels=[mnist1d.job_label(job, i, len(jobs)) for i, job in enumerate(jobs)],
                             totals=[config.steps] * len(jobs), progress=not args.no_progress)
    trained = time.perf_counter()
    tables = mnist1d.summarize(runs, config)
    print(mnist1d.format_tables(tables, config))
    print()
    best = experiment.best_run(runs)
    counts = experiment.best_confusion(best, split)
    print(f"confusion matrix of the best run ({mnist1d.MODELS[best.variant.model].name}, "
          f"{best.variant.label}, seed {best.seed_index}: test accuracy {best.test_acc:.3f}) "
          f"on the {len(split.y_test)} test signals")
    print(experiment.format_confusion(counts))
    if plt is not None:
        from .plots import mnist1d_figures
        _write_figures(args.plot, lambda: mnist1d_figures(plt, args.plot, runs, tables, config, best, counts, split))
    print(mnist1d.format_timing(runs, trained - started, workers), file=sys.stderr)
    print(f"fastdrop demo: {len(runs)} runs in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0
