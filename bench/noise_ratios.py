"""Gaussian dropout's time over its floor and NumPy's noise, from interleaved rounds in one
process (medians), float32, one thread: ``python bench/noise_ratios.py [elements] [rounds]``.

The floor is ``np.multiply(x, c)`` for a call that allocates its output and
``np.multiply(x, c, out=y)`` for one given ``out=`` (bench/NOTES.md, issue 12's targets).
"""
import sys
import time

import numpy as np

import fastdrop as fd


def main(n=1 << 24, rounds=9):
    fd.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    y = np.empty_like(x)
    c, sigma = np.float32(1.7), np.float32(np.sqrt(0.3 / 0.7))
    cases = {
        "floor": lambda: np.multiply(x, c),
        "floor-out": lambda: np.multiply(x, c, out=y),
        "gaussian": lambda: fd.gaussian_dropout(x, 0.3, seed=1),
        "gaussian-out": lambda: fd.gaussian_dropout(x, 0.3, seed=1, out=y),
        "gaussian-grad": lambda: fd.gaussian_dropout_grad(x, 0.3, seed=1),
        "numpy-noise": lambda: x * (1 + sigma * rng.standard_normal(x.shape, dtype=np.float32)),
    }
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    med = {name: float(np.median(t)) for name, t in times.items()}
    print(f"{n} float32 elements, {rounds} interleaved rounds, isa {fd.info()['isa']}, medians:")
    for name, t in med.items():
        print(f"  {name:14s} {t * 1e3:8.2f} ms")
    print(f"  gaussian / floor          {med['gaussian'] / med['floor']:.2f}")
    print(f"  gaussian-out / floor-out  {med['gaussian-out'] / med['floor-out']:.2f}")
    print(f"  gaussian-grad / floor     {med['gaussian-grad'] / med['floor']:.2f}")
    print(f"  numpy-noise / gaussian    {med['numpy-noise'] / med['gaussian']:.2f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
