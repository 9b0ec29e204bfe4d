"""Several builds of the compiled kernels side by side in one process: dropout_add, dropout or
dropout_abs_flat (dropout with AdaptiveDropout's sums of |x|), at 16M elements by default.

Run: ``python bench/ab_builds.py OLD.so NEW.so [...] [--kernel dropout_add|dropout|dropout_abs]
[--dtype float32] [--bias] [--rounds 31] [--size N] [--repeat R]``.
Each ``_kernels`` .so (a copy of ``src/fastdrop/_kernels*.so`` from one build) is loaded as
a package of its own, so the builds run in one process on the same arrays: NumPy's layout
(16 bytes past a 64-byte line), one thread, the streaming threshold of the installed
fastdrop.  Each round calls the floor (``np.add(x, residual, out=y)`` for dropout_add;
``np.multiply(x, c, out=y)`` and ``np.copyto(y, x)`` for dropout) and every build's kernel once, in an order shuffled each round (in a fixed order a call's place after another
moved it by up to 10%), ``--repeat`` times in a row for small sizes; the table gives medians
and quartiles over rounds.  The builds must
agree bit for bit.  bench/NOTES.md (ninth session) has figures from this.
"""
import argparse
import importlib
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

import fastdrop

FEATURES = 1024


def load_builds(paths, where):
    """{label: Kernels of the variant} for each .so, copied into where as package build<i>."""
    sys.path.insert(0, str(where))
    builds = {}
    for i, path in enumerate(paths):
        package = where / f"build{i}"
        package.mkdir()
        (package / "__init__.py").touch()
        shutil.copy(path, package / pathlib.Path(path).name)
        builds[f"{i}:{pathlib.Path(path).parent.name}"] = importlib.import_module(f"build{i}._kernels")
    return builds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="+", help="paths of _kernels .so files")
    parser.add_argument("--kernel", default="dropout_add", choices=["dropout_add", "dropout", "dropout_abs"])
    parser.add_argument("--dtype", default="float32", choices=["float16", "float32", "float64"])
    parser.add_argument("--bias", action="store_true", help="with a per-feature bias")
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--size", type=int, default=1 << 24)
    parser.add_argument("--repeat", type=int, default=1, help="calls per timing (for small sizes)")
    parser.add_argument("--isa", default=fastdrop.info()["isa"])
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.size // FEATURES, FEATURES)).astype(dtype)
    residual = rng.standard_normal(x.shape).astype(dtype)
    bias = rng.standard_normal(FEATURES).astype(dtype) if args.bias else None
    y = np.empty_like(x)
    partials = np.empty(-(-x.size // 1024))         # dropout_abs: one per sum block (offset 0)
    threshold, scale = int(0.9 * 65536), dtype.type(1 / 0.9)
    with tempfile.TemporaryDirectory() as where:
        builds = load_builds(args.builds, pathlib.Path(where))
        if args.kernel == "dropout_add":
            funcs = {"np.add": lambda: np.add(x, residual, out=y)}
        else:
            flat, out = x.reshape(-1), y.reshape(-1)
            funcs = {"np.multiply": lambda: np.multiply(x, scale, out=y), "np.copyto": lambda: np.copyto(y, x)}
        for label, module in builds.items():
            module.set_streaming_threshold(fastdrop.get_streaming_threshold())
            kernels = module.VARIANTS[args.isa]
            if args.kernel == "dropout_add":
                funcs[label] = (lambda k=kernels: k.dropout_add(1, 0, threshold, scale, bias, x, residual, y, 1))
            elif args.kernel == "dropout":
                funcs[label] = (lambda k=kernels: k.dropout_flat(1, 0, threshold, scale, flat, out, 1))
            else:
                if len(funcs) == 2:                         # the plain kernel of the first build, for reference
                    funcs[f"{label} plain"] = (lambda k=kernels: k.dropout_flat(1, 0, threshold, scale, flat, out, 1))
                funcs[label] = (lambda k=kernels: k.dropout_abs_flat(1, 0, threshold, scale, flat, out, partials, 1))
        results = {}
        for label, f in funcs.items():
            f()                                             # warm: page faults, caches
            results[label] = (y.copy(), partials.copy())
        for label in list(builds)[1:]:
            for got, first in zip(results[label], results[next(iter(builds))]):
                if not np.array_equal(got.view(f"u{got.itemsize}"), first.view(f"u{first.itemsize}")):
                    raise SystemExit(f"{label} gives other bits than the first build")
        times = {label: [] for label in funcs}
        order = list(funcs)
        for _ in range(args.rounds):
            rng.shuffle(order)
            for label in order:
                f = funcs[label]
                start = time.perf_counter()
                for _ in range(args.repeat):
                    f()
                times[label].append((time.perf_counter() - start) / args.repeat)
    floor_name = next(iter(times))
    floor = statistics.median(times[floor_name])
    print(f"{args.kernel} {args.dtype} {args.size} elements{' + bias' if args.bias else ''}, isa {args.isa}, "
          f"{args.rounds} shuffled rounds; us: median (quartiles), and the median over {floor_name}'s")
    for label, t in times.items():
        q1, _, q3 = statistics.quantiles(t, n=4)
        print(f"{label:24} {statistics.median(t) * 1e6:10.2f} ({q1 * 1e6:.2f}-{q3 * 1e6:.2f})  "
              f"{statistics.median(t) / floor:.3f}x")


if __name__ == "__main__":
    main()
