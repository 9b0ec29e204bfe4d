"""dropout_add against its floor, np.add(x, residual, out=y), side by side in one process.

Run: ``python bench/dropout_add_ratios.py [--rounds N] [--threads T]``.  For each case the
implementations run in interleaved rounds on the same preallocated arrays (each round one
timed call of each, in a shuffled order); the table gives medians over rounds and the ratio of medians.
Speed lives here and in bench/test_bench_dropout_add.py only: nothing asserts a time.
"""
import argparse
import random
import statistics
import time

import numpy as np

import fastdrop

SIZES = {"64K": 1 << 16, "1M": 1 << 20, "16M": 1 << 24}
FEATURES = 1024                 # the bias: one value per feature of (size / FEATURES, FEATURES)


def implementations(dtype, size):
    """{name: callable} on fixed arrays of one case: the floor, the fused call with and without
    a bias, and the unfused NumPy composition it replaces."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((size // FEATURES, FEATURES)).astype(dtype)
    residual = rng.standard_normal(x.shape).astype(dtype)
    bias = rng.standard_normal(FEATURES).astype(dtype)
    y = np.empty_like(x)
    return {
        "np.add": lambda: np.add(x, residual, out=y),
        "dropout_add": lambda: fastdrop.dropout_add(x, residual, 0.1, seed=1, out=y),
        "dropout_add+bias": lambda: fastdrop.dropout_add(x, residual, 0.1, bias=bias, seed=1, out=y),
        "unfused": lambda: np.add(residual, fastdrop.dropout(x + bias, 0.1, seed=1), out=y),
    }


def measure(funcs, rounds):
    """Median seconds per call of each callable, over interleaved rounds in an order shuffled
    each round (in a fixed order a call's place after another moved it by up to 10%)."""
    times = {name: [] for name in funcs}
    order = list(funcs.items())
    for f in funcs.values():
        f()                                         # warm: page faults, caches
    for _ in range(rounds):
        random.shuffle(order)
        for name, f in order:
            start = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", default="64K,1M,16M")
    args = parser.parse_args(argv)
    fastdrop.set_num_threads(args.threads)
    print(f"isa {fastdrop.info()['isa']}, {args.threads} thread(s), {args.rounds} interleaved rounds, medians")
    print(f"{'dtype':8} {'size':>5} {'np.add ms':>10} {'fused/add':>10} {'+bias/add':>10} {'unfused/add':>12}")
    for dtype in ("float32", "float64"):
        for size in args.sizes.split(","):
            t = measure(implementations(dtype, SIZES[size]), args.rounds)
            floor = t["np.add"]
            print(f"{dtype:8} {size:>5} {floor * 1e3:10.3f} {t['dropout_add'] / floor:10.2f} "
                  f"{t['dropout_add+bias'] / floor:10.2f} {t['unfused'] / floor:12.2f}")


if __name__ == "__main__":
    main()
