"""``fastdrop bench``: fastdrop against the memory-bandwidth floor, NumPy and PyTorch.

For each dtype and size it times, side by side in this process, ``np.multiply(x, c,
out=y)`` (the floor: one read and one write of every element), ``np.copyto(y, x)`` (the
copy floor: beyond the last-level cache glibc's copy skips the write-allocate read of
``y`` with streaming stores, as fastdrop's kernels do), ``fastdrop.dropout`` on
the compiled backend, the same call on the NumPy backend, a naive NumPy dropout
(``rng.random(n) < keep`` then ``x * m / keep``) and PyTorch's ``F.dropout`` when torch is
installed.  The implementations run in interleaved rounds (each round times each once),
so a load change on the machine hits them all; the table shows the median ns per element
and the median over rounds of the per-round time ratios.  The performance targets follow,
read off the table where it has their case, plus three cases of their own: the
1K-element call overhead, spatial dropout, two threads against one.  ``--large`` adds
64M-element float32 and float64 arrays (256 and 512 MiB), timed against both floors with
one thread and with two (fastdrop's two threads against a two-threaded copy of the same
arrays, one half per thread).

The pytest-benchmark suites in ``bench/`` time the same callables (``implementations``).
"""
import argparse
import concurrent.futures
import json
import os
import platform
import sys
import time

import numpy as np

import fastdrop
from fastdrop import _cli_args
from fastdrop._progress import ProgressBar

P = 0.5
SEED = 1234
DTYPES = ("float16", "float32", "float64")
DEFAULT_SIZES = (1 << 10, 1 << 16, 1 << 20, 1 << 24)
SPATIAL_SHAPE = (64, 128, 32, 32)
_SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
# Calls are batched so each timed sample lasts at least this: long enough that refilling
# the caches after the other implementations ran (torch and the NumPy versions allocate
# and touch a lot) is amortized; with 0.2 ms samples 64K float32 read 4x the floor, not 2.7x.
_SAMPLE_SECONDS = 1e-2
_SETTLE_SECONDS = 2e-2           # untimed calls before each timed batch (time_interleaved)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def naive_dropout(x, p, rng):
    """The textbook NumPy dropout: a float mask, then multiply and divide."""
    keep = 1.0 - p
    mask = rng.random(x.shape, dtype=np.float32) < keep
    return x * mask / keep


def implementations(x, out, p=P, torch=None):
    """{name: zero-argument callable} computing dropout of ``x`` (or the floor) for one case.

    ``floor`` is ``np.multiply(x, c, out=out)``; ``fastdrop`` the active backend (the
    compiled one unless FASTDROP_BACKEND or set_backend chose otherwise); ``numpy-backend``
    fastdrop's pure NumPy twin; ``naive`` the textbook NumPy dropout; ``torch`` PyTorch's
    CPU ``F.dropout`` when ``torch`` (the module) is given."""
    scale = x.dtype.type(1.0 / (1.0 - p))
    rng = np.random.default_rng(SEED)

    def floor():
        return np.multiply(x, scale, out=out)

    def copy():
        return np.copyto(out, x)

    def fast():
        return fastdrop.dropout(x, p, seed=SEED, out=out)

    def numpy_backend():
        with fastdrop.use_backend("numpy"):
            return fastdrop.dropout(x, p, seed=SEED, out=out)

    funcs = {"floor": floor, "copy": copy, "fastdrop": fast, "numpy-backend": numpy_backend,
             "naive": lambda: naive_dropout(x, p, rng)}
    if torch is not None and x.dtype.kind == "f":       # torch.from_numpy takes no bfloat16 (bench --torch does)
        t = torch.from_numpy(x)
        functional = torch.nn.functional
        funcs["torch"] = lambda: functional.dropout(t, p, training=True)
    return funcs


def _parse_size(text):
    number = text.strip().upper()
    try:
        value = int(number[:-1]) * _SUFFIX[number[-1]] if number and number[-1] in _SUFFIX else int(number)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers with an optional K/M/G suffix, "
                                         f"got {text!r}")
    return value


def _size_list(text):
    return tuple(_parse_size(t) for t in text.split(","))


OPTIONAL_DTYPES = ("bfloat16",)          # asked for by name: ml_dtypes.bfloat16


def _dtype_list(text):
    names = tuple(t.strip() for t in text.split(","))
    for name in names:
        if name not in DTYPES + OPTIONAL_DTYPES:
            raise argparse.ArgumentTypeError(f"dtypes must be among {', '.join(DTYPES + OPTIONAL_DTYPES)}, "
                                             f"got {name!r}")
        if name == "bfloat16":
            try:
                import ml_dtypes  # noqa: F401  (registers np.dtype("bfloat16"))
            except ImportError:
                raise argparse.ArgumentTypeError("dtype bfloat16 needs ml_dtypes: pip install ml_dtypes") from None
    return names


def _label(n):
    for suffix, unit in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def _batch(f):
    """How many calls of f make one timed sample of at least _SAMPLE_SECONDS."""
    t0 = time.perf_counter()
    f()
    once = time.perf_counter() - t0
    return max(1, int(_SAMPLE_SECONDS / max(once, 1e-9)))


def time_interleaved(funcs, budget, min_rounds=3, max_rounds=200):
    """Time each callable once per round, round after round, until ``budget`` seconds have
    passed (and at least ``min_rounds``).  Returns ({name: [seconds per call]}, rounds).

    Each timed batch follows _SETTLE_SECONDS (at most a tenth of the budget) of untimed calls
    of the same callable, at least one: after anything that is not memory-bound (a sleep, a
    Python loop, torch's scalar dropout) the VMs here run memory-bound calls up to 2.5x slower
    for the next 2-15 ms (bench/NOTES.md, "The ramp after a pause"), which would charge
    whichever implementation runs after a slow compute-bound one with the machine's wake-up
    instead of its own time."""
    for f in funcs.values():       # warm-up: page faults, lazy imports, caches
        f()
    batches = {name: _batch(f) for name, f in funcs.items()}
    settle_seconds = min(_SETTLE_SECONDS, budget / 10)      # tiny budgets (tests) stay tiny
    samples = {name: [] for name in funcs}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or (rounds < max_rounds and time.perf_counter() - start < budget):
        for name, f in funcs.items():
            number = batches[name]
            settle = time.perf_counter() + settle_seconds
            while True:
                f()
                if time.perf_counter() >= settle:
                    break
            t0 = time.perf_counter()
            for _ in range(number):
                f()
            samples[name].append((time.perf_counter() - t0) / number)
        rounds += 1
    return samples, rounds


def _median_ratio(num, den):
    return float(np.median(np.asarray(num) / np.asarray(den)))


def _case(dtype, n, budget, torch):
    x = np.random.default_rng(0).standard_normal(n).astype(dtype)
    out = np.empty_like(x)
    samples, rounds = time_interleaved(implementations(x, out, torch=torch), budget)
    fast = samples["fastdrop"]
    return {
        "dtype": dtype, "size": n, "rounds": rounds,
        "ns_per_element": {name: float(np.median(s)) * 1e9 / n for name, s in samples.items()},
        "fastdrop_over_floor": _median_ratio(fast, samples["floor"]),
        "fastdrop_over_copy": _median_ratio(fast, samples["copy"]),
        "speedup": {name: _median_ratio(s, fast) for name, s in samples.items()
                    if name not in ("floor", "copy", "fastdrop")},
    }


def _target_cases(budget, threads):
    """The target cases that are not plain forward calls, each {case, ratio, target, met}."""
    cases = []
    x = np.random.default_rng(0).standard_normal(1024).astype(np.float32)
    scale = np.float32(2.0)
    samples, _ = time_interleaved({"fastdrop": lambda: fastdrop.dropout(x, P, seed=SEED),
                                   "np.multiply(x, c)": lambda: np.multiply(x, scale)}, budget)
    ratio = _median_ratio(samples["fastdrop"], samples["np.multiply(x, c)"])
    cases.append({"case": "float32 1K call: fastdrop.dropout(x) / np.multiply(x, c)", "ratio": ratio,
                  "target": "<= 6", "met": ratio <= 6})
    xs = np.random.default_rng(0).standard_normal(SPATIAL_SHAPE, dtype=np.float32)
    out = np.empty_like(xs)
    noise = SPATIAL_SHAPE[:2] + (1, 1)
    samples, _ = time_interleaved({
        "fastdrop": lambda: fastdrop.dropout(xs, P, seed=SEED, noise_shape=noise, out=out),
        "floor": lambda: np.multiply(xs, scale, out=out)}, budget)
    ratio = _median_ratio(samples["fastdrop"], samples["floor"])
    cases.append({"case": f"spatial {SPATIAL_SHAPE} float32: fastdrop / floor", "ratio": ratio,
                  "target": "<= 1.2", "met": ratio <= 1.2})
    many = max(threads, 2)
    x1 = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
    out1 = np.empty_like(x1)

    def with_threads(n):
        def call():
            fastdrop.set_num_threads(n)
            return fastdrop.dropout(x1, P, seed=SEED, out=out1)
        return call
    samples, _ = time_interleaved({"one": with_threads(1), "many": with_threads(many)}, budget)
    ratio = _median_ratio(samples["one"], samples["many"])
    cases.append({"case": f"float32 1M: 1 thread / {many} threads", "ratio": ratio,
                  "target": ">= 1.6", "met": ratio >= 1.6})
    return cases


# --- fastdrop bench --large: arrays beyond the last-level cache ----------------------------------
LARGE_SIZE = 1 << 26                       # 64M elements: 256 MiB of float32, 512 MiB of float64
LARGE_DTYPES = ("float32", "float64")
LARGE_TARGET = 1.15                        # fastdrop / np.copyto, one thread and two


def threaded_copy(x, out, pool):
    """``np.copyto(out, x)`` as two halves copied at once by the two threads of ``pool``
    (NumPy releases the GIL while it copies): the two-thread copy floor."""
    half = x.size // 2
    parts = [pool.submit(np.copyto, out[:half], x[:half]), pool.submit(np.copyto, out[half:], x[half:])]
    for part in parts:
        part.result()


def _large_case(dtype, n, budget, pool):
    """One large array against both floors with one thread, and against the two-thread copy
    with fastdrop on two threads."""
    x = np.random.default_rng(0).standard_normal(n).astype(dtype)
    out = np.empty_like(x)
    scale = x.dtype.type(1.0 / (1.0 - P))

    def fast(threads):
        def call():
            with fastdrop.use_num_threads(threads):
                return fastdrop.dropout(x, P, seed=SEED, out=out)
        return call
    funcs = {"floor": lambda: np.multiply(x, scale, out=out), "copy": lambda: np.copyto(out, x),
             "copy 2 threads": lambda: threaded_copy(x, out, pool), "fastdrop": fast(1), "fastdrop 2 threads": fast(2)}
    samples, rounds = time_interleaved(funcs, budget)
    ratios = {"fastdrop / floor": _median_ratio(samples["fastdrop"], samples["floor"]),
              "fastdrop / copy": _median_ratio(samples["fastdrop"], samples["copy"]),
              "fastdrop 2 threads / copy 2 threads": _median_ratio(samples["fastdrop 2 threads"],
                                                                   samples["copy 2 threads"]),
              "copy speedup, 2 threads": _median_ratio(samples["copy"], samples["copy 2 threads"]),
              "fastdrop speedup, 2 threads": _median_ratio(samples["fastdrop"], samples["fastdrop 2 threads"])}
    return {"dtype": dtype, "size": n, "rounds": rounds,
            "ns_per_element": {name: float(np.median(s)) * 1e9 / n for name, s in samples.items()},
            "ratios": ratios}


def large_targets(cases):
    """The targets of the large cases, each {case, ratio, target, met}: fastdrop within
    LARGE_TARGET of the copy floor with one thread and with two."""
    rows = []
    for c in cases:
        name = f"{c['dtype']} {_label(c['size'])}"
        for what, label in (("fastdrop / copy", "fastdrop / np.copyto"),
                            ("fastdrop 2 threads / copy 2 threads", "2 threads: fastdrop / 2-thread copy")):
            ratio = c["ratios"][what]
            rows.append({"case": f"{name}: {label}", "ratio": ratio, "target": f"<= {LARGE_TARGET}",
                         "met": ratio <= LARGE_TARGET})
    return rows


# Performance targets read off the main table: (dtype, size, what, bound); what is
# "floor" (fastdrop / floor <= bound) or an implementation (its time / fastdrop's >= bound),
# or "numpy-backend/naive" (<= bound).
TABLE_TARGETS = (
    ("float32", 1 << 24, "floor", 1.25), ("float64", 1 << 24, "floor", 1.25),
    ("float32", 1 << 16, "floor", 2.5),
    ("float32", 1 << 20, "torch", 25), ("float32", 1 << 24, "torch", 25),
    ("float32", 1 << 20, "naive", 15), ("float32", 1 << 24, "naive", 7),
    ("float32", 1 << 20, "numpy-backend/naive", 2), ("float32", 1 << 24, "numpy-backend/naive", 2),
)


def table_targets(cases):
    """The TABLE_TARGETS whose case was run, each {case, ratio, target, met}."""
    found = {(c["dtype"], c["size"]): c for c in cases}
    rows = []
    for dtype, size, what, bound in TABLE_TARGETS:
        c = found.get((dtype, size))
        if c is None or (what in ("torch", "naive") and what not in c["speedup"]):
            continue
        name = f"{dtype} {_label(size)}"
        if what == "floor":
            rows.append({"case": f"{name}: fastdrop / floor", "ratio": c["fastdrop_over_floor"],
                         "target": f"<= {bound}", "met": c["fastdrop_over_floor"] <= bound})
        elif what == "numpy-backend/naive":
            ns = c["ns_per_element"]
            ratio = ns["numpy-backend"] / ns["naive"]
            rows.append({"case": f"{name}: numpy backend / naive NumPy dropout", "ratio": ratio,
                         "target": f"<= {bound}", "met": ratio <= bound})
        else:
            ratio = c["speedup"][what]
            rows.append({"case": f"{name}: {what} / fastdrop", "ratio": ratio, "target": f">= {bound}",
                         "met": ratio >= bound})
    return rows


def run(sizes=DEFAULT_SIZES, dtypes=DTYPES, threads=1, budget=1.0, targets=True, progress=None, large=False,
        large_size=LARGE_SIZE):
    """All cases as a dict (what ``--json`` writes); ``large`` adds the ``large_size``
    float32 and float64 cases."""
    torch = _torch()
    before = fastdrop.get_num_threads()
    fastdrop.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    steps = len(sizes) * len(dtypes) + (1 if targets else 0) + (len(LARGE_DTYPES) if large else 0)
    bar = ProgressBar(steps, "fastdrop bench", progress) if progress else None
    try:
        cases = []
        for n in sizes:
            for dtype in dtypes:
                if bar:
                    bar.update(bar.done + 1, f"{dtype} {_label(n)}")
                cases.append(_case(dtype, n, budget, torch))
        large_cases = []
        if large:
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                for dtype in LARGE_DTYPES:
                    if bar:
                        bar.update(bar.done + 1, f"{dtype} {_label(large_size)}, 1 and 2 threads")
                    large_cases.append(_large_case(dtype, large_size, budget, pool))
        if bar and targets:
            bar.update(bar.done + 1, "target cases")
        extra = _target_cases(budget, threads) if targets else []
    finally:
        if bar:
            bar.close()
        fastdrop.set_num_threads(before)
    d = fastdrop.info()
    return {
        "fastdrop": d["version"], "backend": d["backend"], "isa": d["isa"], "openmp": d["openmp"],
        "threads": threads, "p": P, "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "machine": {"processor": _cpu_name(), "machine": platform.machine(), "cpus": os.cpu_count(),
                    "load_average": _load_average(), "python": platform.python_version(),
                    "last_level_cache_bytes": fastdrop._backend.last_level_cache_bytes()},
        "streaming_threshold_bytes": fastdrop.get_streaming_threshold(),
        "budget_seconds_per_case": budget, "cases": cases, "large": large_cases,
        "targets": table_targets(cases) + large_targets(large_cases) + extra,
    }



# --- fastdrop bench --family -------------------------------------------------------------------
FAMILY_SHAPE = (64, 128, 32, 32)          # 8M float32 elements: a conv feature map batch
LAYER_SHAPE = (100, 100)                  # 10K elements: where a layer's Python overhead shows
SELU_ALPHA_PRIME = fastdrop.family.SELU_ALPHA_PRIME
# variant: (p, fastdrop / floor target); the floor allocates its output, as the calls do.
FAMILY_TARGETS = {"alpha_dropout": (0.3, 1.3), "drop_path": (0.3, 1.1), "spatial_dropout": (0.3, 1.1),
                  "variational_dropout": (0.3, 1.1), "dropblock2d": (0.1, 3.0)}
# The noise variants (one stream word per element, float32 transforms): their own target.
NOISE_TARGETS = {"gaussian_dropout": (0.3, 3.0), "concrete_dropout": (0.1, 4.0)}
FAMILY_TARGETS.update(NOISE_TARGETS)
CONCRETE_TEMPERATURE = 0.1
DROPBLOCK_SIZE = 7
LAYER_TARGET = 1.2


def naive_family(variant, x, p, rng):
    """(forward, backward) of the NumPy code one writes without fastdrop: the mask drawn with
    ``numpy.random.Generator`` and kept by forward for backward."""
    if variant in NOISE_TARGETS:
        return _naive_noise(variant, x, p, rng)
    state = {}
    if variant == "alpha_dropout":
        a = ((1 - p) * (1 + p * SELU_ALPHA_PRIME ** 2)) ** -0.5
        b = -a * SELU_ALPHA_PRIME * p

        def forward():
            state["keep"] = keep = rng.random(x.shape, dtype=np.float32) >= p
            return np.where(keep, x * np.float32(a) + np.float32(b), np.float32(a * SELU_ALPHA_PRIME + b))

        def backward():
            return np.where(state["keep"], x * np.float32(a), np.float32(0))
        return forward, backward
    if variant == "dropblock2d":
        def draw():
            n, c, h, w = x.shape
            k = DROPBLOCK_SIZE
            gamma = p * h * w / (k * k * (h - k + 1) * (w - k + 1))
            corners = rng.random((n, c, h - k + 1, w - k + 1), dtype=np.float32) < gamma
            dropped = np.zeros(x.shape, dtype=bool)
            for di in range(k):                  # the b**2 shifted ORs a textbook version does
                for dj in range(k):
                    dropped[:, :, di:di + h - k + 1, dj:dj + w - k + 1] |= corners
            mask = (~dropped).astype(np.float32)
            return mask * np.float32(mask.size / max(mask.sum(), 1.0))
    else:
        shape = _mask_shape(variant, x.shape)

        def draw():
            return (rng.random(shape, dtype=np.float32) >= p) * np.float32(1 / (1 - p))

    def forward():
        state["mask"] = draw()
        return x * state["mask"]

    def backward():
        return x * state["mask"]
    return forward, backward


def _naive_noise(variant, x, p, rng):
    """(forward, backward) of the NumPy noise variants: the noise drawn with
    ``numpy.random.Generator`` in float32 and kept by forward; Concrete's backward also sums
    its rate gradient, as ``concrete_dropout_grad`` does."""
    state = {}
    if variant == "gaussian_dropout":
        sigma = np.float32(np.sqrt(p / (1 - p)))

        def forward():
            state["noise"] = noise = 1 + sigma * rng.standard_normal(x.shape, dtype=np.float32)
            return x * noise

        def backward():
            return x * state["noise"]
        return forward, backward
    logit, t = np.float32(np.log(p / (1 - p))), np.float32(CONCRETE_TEMPERATURE)

    def forward():
        u = rng.random(x.shape, dtype=np.float32)
        with np.errstate(divide="ignore", over="ignore"):        # u == 0 happens: drop = 0 there
            drop = 1 / (1 + np.exp(-(logit + np.log(u) - np.log1p(-u)) / t))
        state["drop"], state["w"] = drop, (1 - drop) / np.float32(1 - p)
        return x * state["w"]

    def backward():
        w = state["w"]
        return x * w, float(np.sum(x * x * w * (np.float32(p) - state["drop"] / t), dtype=np.float64))
    return forward, backward


def _mask_shape(variant, shape):
    return {"drop_path": shape[:1] + (1,) * (len(shape) - 1), "spatial_dropout": shape[:2] + (1, 1),
            "variational_dropout": (shape[0], 1) + shape[2:]}[variant]


def family_calls(variant, x, p):
    """(forward, backward) of fastdrop's functional variant on x with a fixed seed."""
    kw = {"seed": SEED}
    if variant == "gaussian_dropout":
        return (lambda: fastdrop.gaussian_dropout(x, p, **kw)), (lambda: fastdrop.gaussian_dropout_grad(x, p, **kw))
    if variant == "concrete_dropout":
        logit, t = float(np.log(p / (1 - p))), CONCRETE_TEMPERATURE
        return (lambda: fastdrop.concrete_dropout(x, logit, temperature=t, **kw),
                lambda: fastdrop.concrete_dropout_grad(x, x, logit, temperature=t, **kw))
    if variant == "alpha_dropout":
        return (lambda: fastdrop.alpha_dropout(x, p, **kw)), (lambda: fastdrop.alpha_dropout_grad(x, p, **kw))
    if variant == "dropblock2d":
        call = lambda: fastdrop.dropblock2d(x, p, DROPBLOCK_SIZE, **kw)    # noqa: E731
    else:
        call = lambda: getattr(fastdrop, variant)(x, p, **kw)              # noqa: E731
    return call, call              # the exact backward is the same call on the gradient


def _torch_family(variant, x, p, torch):
    """PyTorch's forward of the variant, where it has one (its backward needs autograd)."""
    if torch is None:
        return None
    t = torch.from_numpy(x)
    functional = torch.nn.functional
    return {"alpha_dropout": lambda: functional.alpha_dropout(t, p, training=True),
            "spatial_dropout": lambda: functional.dropout2d(t, p, training=True)}.get(variant)


def _family_case(variant, x, budget, torch):
    p, target = FAMILY_TARGETS[variant]
    scale = x.dtype.type(1.0 / (1.0 - p))
    rows = []
    naive = naive_family(variant, x, p, np.random.default_rng(SEED))
    for direction, fast, slow in zip(("forward", "backward"), family_calls(variant, x, p), naive):
        funcs = {"floor": lambda: np.multiply(x, scale), "fastdrop": fast, "naive": slow}
        extra = _torch_family(variant, x, p, torch) if direction == "forward" else None
        if extra is not None:
            funcs["torch"] = extra
        samples, rounds = time_interleaved(funcs, budget)
        ratio = _median_ratio(samples["fastdrop"], samples["floor"])
        rows.append({"variant": variant, "direction": direction, "p": p, "rounds": rounds,
                     "ns_per_element": {k: float(np.median(v)) * 1e9 / x.size for k, v in samples.items()},
                     "fastdrop_over_floor": ratio,
                     "speedup": {k: _median_ratio(v, samples["fastdrop"]) for k, v in samples.items()
                                 if k not in ("floor", "fastdrop")},
                     "target": f"<= {target}", "met": ratio <= target})
    return rows


def layer_pairs():
    """{layer name: (layer, inputs, functional forward, functional backward)} at LAYER_SHAPE's
    10K elements, for every layer: the functional calls take the inputs (the forward) or the
    output's gradient (the backward; None: the forward's call), with the fixed seed the
    layer's derived one stands for."""
    x = np.random.default_rng(0).standard_normal(LAYER_SHAPE).astype(np.float32)
    x3, x4, x5 = x.reshape(10, 10, 100), x.reshape(10, 4, 25, 10), x.reshape(10, 4, 5, 5, 10)
    residual, bias = np.ones_like(x), np.zeros(x.shape[-1], np.float32)
    fam, lay, s = fastdrop.family, fastdrop.layers, SEED
    logit = float(np.log(0.1) - np.log1p(-0.1))          # ConcreteDropout(0.1)'s
    return {
        "Dropout": (lay.Dropout(0.3, seed=s), (x,), lambda v: fastdrop.dropout(v, 0.3, seed=s), None),
        "SpatialDropout1D": (lay.SpatialDropout1D(0.3, seed=s), (x3,), lambda v: fam.spatial_dropout(v, 0.3, seed=s),
                             None),
        "SpatialDropout2D": (lay.SpatialDropout2D(0.3, seed=s), (x4,), lambda v: fam.spatial_dropout(v, 0.3, seed=s),
                             None),
        "SpatialDropout3D": (lay.SpatialDropout3D(0.3, seed=s), (x5,), lambda v: fam.spatial_dropout(v, 0.3, seed=s),
                             None),
        "AlphaDropout": (lay.AlphaDropout(0.3, seed=s), (x,), lambda v: fam.alpha_dropout(v, 0.3, seed=s),
                         lambda g: fam.alpha_dropout_grad(g, 0.3, seed=s)),
        "GaussianDropout": (lay.GaussianDropout(0.3, seed=s), (x,), lambda v: fam.gaussian_dropout(v, 0.3, seed=s),
                            lambda g: fam.gaussian_dropout_grad(g, 0.3, seed=s)),
        "VariationalDropout": (lay.VariationalDropout(0.3, seed=s), (x3,),
                               lambda v: fam.variational_dropout(v, 0.3, seed=s), None),
        "ConcreteDropout": (lay.ConcreteDropout(0.1, seed=s), (x,), lambda v: fam.concrete_dropout(v, logit, seed=s),
                            lambda g: fam.concrete_dropout_grad(x, g, logit, seed=s)[0]),
        # the layer also adapts its rate to the input's mean |x| each training forward: O(n) more work
        "AdaptiveDropout": (lay.AdaptiveDropout(0.5, seed=s), (x,), lambda v: fastdrop.dropout(v, 0.5, seed=s), None),
        "DropPath": (lay.DropPath(0.3, seed=s), (x4,), lambda v: fam.drop_path(v, 0.3, seed=s), None),
        "DropBlock2D": (lay.DropBlock2D(0.1, 3, seed=s), (x4,), lambda v: fam.dropblock2d(v, 0.1, 3, seed=s), None),
        "DropoutAdd": (lay.DropoutAdd(0.3, seed=s), (x, residual, bias),
                       lambda v, r, b: fastdrop.dropout_add(v, r, 0.3, bias=b, seed=s),
                       lambda g: fastdrop.dropout_add_grad(g, 0.3, seed=s, bias_shape=bias.shape)),
    }


def _layer_case(name, layer, inputs, forward, backward, budget):
    """The layer's forward, its backward (after one forward: backward pairs with the last
    forward and may be repeated) and the pair, each against the functional calls it wraps."""
    backward = backward or forward
    grad = np.ones_like(inputs[0])
    layer.forward(*inputs)
    funcs = {"layer forward": lambda: layer.forward(*inputs), "functional forward": lambda: forward(*inputs),
             "layer backward": lambda: layer.backward(grad), "functional backward": lambda: backward(grad),
             "layer": lambda: layer.backward(layer.forward(*inputs)),
             "functional": lambda: backward(forward(*inputs))}
    samples, rounds = time_interleaved(funcs, budget)
    ratios = {what: _median_ratio(samples[f"layer {what}"], samples[f"functional {what}"])
              for what in ("forward", "backward")}
    ratios["pair"] = _median_ratio(samples["layer"], samples["functional"])
    return {"layer": name, "size": inputs[0].size, "rounds": rounds,
            "us": {k: float(np.median(v)) * 1e6 for k, v in samples.items()},
            "ratios": ratios, "ratio": ratios["pair"], "target": f"<= {LAYER_TARGET}",
            "met": all(r <= LAYER_TARGET for r in ratios.values())}


def run_family(threads=1, budget=1.0, progress=None, shape=FAMILY_SHAPE):
    """The family table on float32 ``shape`` (N, C, H, W) and the layer overhead table as a
    dict (what ``--json`` writes)."""
    torch = _torch()
    before = fastdrop.get_num_threads()
    fastdrop.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    pairs = layer_pairs()
    bar = ProgressBar(len(FAMILY_TARGETS) + len(pairs), "fastdrop bench --family", progress) if progress else None
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    views = {"variational_dropout": x.reshape(shape[0], shape[1], -1)}   # (N, T, F)
    try:
        variants = []
        for variant in FAMILY_TARGETS:
            if bar:
                bar.update(bar.done + 1, variant)
            variants += _family_case(variant, views.get(variant, x), budget, torch)
        layers = []
        for name, (layer, inputs, forward, backward) in pairs.items():
            if bar:
                bar.update(bar.done + 1, name)
            layers.append(_layer_case(name, layer, inputs, forward, backward, budget))
    finally:
        if bar:
            bar.close()
        fastdrop.set_num_threads(before)
    d = fastdrop.info()
    return {"fastdrop": d["version"], "backend": d["backend"], "isa": d["isa"], "threads": threads,
            "shape": tuple(shape), "dtype": "float32", "numpy": np.__version__,
            "torch": torch.__version__ if torch is not None else None,
            "machine": {"processor": _cpu_name(), "cpus": os.cpu_count(), "load_average": _load_average()},
            "budget_seconds_per_case": budget, "variants": variants, "layers": layers}


def format_family(result):
    impls = [k for k in ("naive", "torch") if any(k in r["speedup"] for r in result["variants"])]
    lines = _header(result, "bench --family", f"{result['dtype']} {tuple(result['shape'])}") + [
        "fd/floor: fastdrop's time over np.multiply(x, c)'s (both allocate the output), median of per-round",
        "ratios over interleaved rounds; X/fd: how many times faster fastdrop is than X.",
        "",
        f"{'variant':<20} {'pass':<8} {'p':>4} {'floor ns':>8} {'fd ns':>7} {'fd/floor':>8} "
        + " ".join(f"{k + '/fd':>9}" for k in impls) + f" {'target':>7} met",
    ]
    for r in result["variants"]:
        ns = r["ns_per_element"]
        lines.append(f"{r['variant']:<20} {r['direction']:<8} {r['p']:4.2f} {ns['floor']:8.3f} {ns['fastdrop']:7.3f} "
                     f"{r['fastdrop_over_floor']:8.2f} "
                     + " ".join(f"{r['speedup'][k]:9.1f}" if k in r["speedup"] else f"{'-':>9}" for k in impls)
                     + f" {r['target']:>7} {'yes' if r['met'] else 'NO'}")
    lines += ["", f"each layer against the functional calls it wraps, {LAYER_SHAPE[0] * LAYER_SHAPE[1]} float32 "
                  f"elements: forward, backward, and forward+backward (us, and layer/functional)",
              f"{'layer':<20} {'fwd us':>7} {'func':>6} {'ratio':>6} {'bwd us':>7} {'func':>6} {'ratio':>6} "
              f"{'pair us':>8} {'func':>6} {'ratio':>6} {'target':>7} met"]
    for r in result["layers"]:
        us, ratio = r["us"], r["ratios"]
        lines.append(f"{r['layer']:<20} {us['layer forward']:7.1f} {us['functional forward']:6.1f} "
                     f"{ratio['forward']:6.2f} {us['layer backward']:7.1f} {us['functional backward']:6.1f} "
                     f"{ratio['backward']:6.2f} {us['layer']:8.1f} {us['functional']:6.1f} {ratio['pair']:6.2f} "
                     f"{r['target']:>7} {'yes' if r['met'] else 'NO'}")
    return "\n".join(lines)

def _load_average():
    """The 1-minute load average after the run (None where the OS has none): other
    processes on the machine change every figure, threads most."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _header(result, command, case):
    """The lines naming the run: what ran where (backend, ISA, threads, versions, CPU, load,
    the streaming threshold where the run reports it)."""
    lines = [f"fastdrop {result['fastdrop']} {command}: backend {result['backend']}, isa {result['isa']}, "
             f"threads {result['threads']}, {case}; numpy {result['numpy']}"
             + (f", torch {result['torch']}" if result["torch"] else ", torch not installed"),
             f"{result['machine']['processor']}, {result['machine']['cpus']} CPUs, "
             f"load average {result['machine']['load_average']} after the run"]
    if "streaming_threshold_bytes" in result:
        cache = result["machine"].get("last_level_cache_bytes")
        lines.append(f"streaming stores for outputs of >= {_bytes_label(result['streaming_threshold_bytes'])} "
                     f"(last-level cache: {_bytes_label(cache) if cache else 'not reported'})")
    return lines


def _bytes_label(n):
    for suffix, unit in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {suffix}"
    return f"{n} B"


def format_table(result):
    impls = [k for k in ("numpy-backend", "naive", "torch") if any(k in c["speedup"] for c in result["cases"])]
    lines = _header(result, "bench", f"p={result['p']}") + [
        "ns/element: median over interleaved rounds. fd/floor: fastdrop's time over np.multiply(x, c, out=y)'s",
        "(lower is better, 1.0 is the bandwidth floor); fd/copy: over np.copyto(y, x)'s (the copy floor: no",
        "write-allocate read beyond the cache); X/fd: how many times faster fastdrop is than X.",
        "",
        f"{'dtype':<8} {'size':>5} {'floor':>7} {'copy':>7} {'fastdrop':>8} {'fd/floor':>8} {'fd/copy':>7} "
        + " ".join(f"{k + '/fd':>{max(9, len(k) + 3)}}" for k in impls),
    ]
    for c in result["cases"]:
        ns = c["ns_per_element"]
        row = f"{c['dtype']:<8} {_label(c['size']):>5} {ns['floor']:7.3f} {ns['copy']:7.3f} {ns['fastdrop']:8.3f} " \
              f"{c['fastdrop_over_floor']:8.2f} {c['fastdrop_over_copy']:7.2f} "
        row += " ".join(f"{c['speedup'][k]:>{max(9, len(k) + 3)}.1f}" if k in c["speedup"]
                        else f"{'-':>{max(9, len(k) + 3)}}" for k in impls)
        lines.append(row)
    if result["large"]:
        lines += ["", "beyond the last-level cache, out= preallocated (ns/element; ratios: medians of per-round ratios)",
                  f"{'dtype':<8} {'size':>5} {'floor':>7} {'copy':>7} {'fd':>7} {'fd/copy':>7} {'copy2':>7} {'fd2':>7} "
                  f"{'fd2/copy2':>9} {'copy 1/2':>8} {'fd 1/2':>7}"]
        for c in result["large"]:
            ns, r = c["ns_per_element"], c["ratios"]
            lines.append(f"{c['dtype']:<8} {_label(c['size']):>5} {ns['floor']:7.3f} {ns['copy']:7.3f} "
                         f"{ns['fastdrop']:7.3f} {r['fastdrop / copy']:7.2f} {ns['copy 2 threads']:7.3f} "
                         f"{ns['fastdrop 2 threads']:7.3f} {r['fastdrop 2 threads / copy 2 threads']:9.2f} "
                         f"{r['copy speedup, 2 threads']:8.2f} {r['fastdrop speedup, 2 threads']:7.2f}")
    if result["targets"]:
        lines += ["", f"{'performance targets (single thread unless said)':<62} {'ratio':>6}  {'target':<7} met"]
        lines += [f"{t['case']:<62} {t['ratio']:6.2f}  {t['target']:<7} {'yes' if t['met'] else 'NO'}"
                  for t in result["targets"]]
    return "\n".join(lines)


def plot(result, path):
    """ns/element against size, log-log, one panel per dtype, the floor as a dashed line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = list(dict.fromkeys(c["dtype"] for c in result["cases"]))
    fig, axes = plt.subplots(1, len(dtypes), figsize=(4.5 * len(dtypes), 4), squeeze=False)
    for ax, dtype in zip(axes[0], dtypes):
        cases = [c for c in result["cases"] if c["dtype"] == dtype]
        sizes = [c["size"] for c in cases]
        for name in cases[0]["ns_per_element"]:
            style = {"color": "black", "linestyle": "--"} if name == "floor" else {"marker": "o"}
            ax.plot(sizes, [c["ns_per_element"][name] for c in cases], label=name, **style)
        ax.set(xscale="log", yscale="log", xlabel="elements", title=dtype)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("ns per element")
    axes[0][0].legend(fontsize="small")
    fig.suptitle(f"fastdrop {result['fastdrop']} ({result['isa']}, {result['threads']} thread(s)) "
                 f"on {result['machine']['processor']}", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _physical_memory():
    """Bytes of RAM, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _bytes_needed(n, dtype):
    """A lower bound of one case's peak memory: x, out, and the naive dropout's float32
    draws and bool mask, alive together."""
    return n * (2 * np.dtype(dtype).itemsize + 5)


def _check_plot_format(parser, path):
    from matplotlib.backend_bases import FigureCanvasBase
    formats = FigureCanvasBase.get_supported_filetypes()
    extension = os.path.splitext(path)[1][1:].lower()
    if extension and extension not in formats:      # no extension: matplotlib writes PNG
        parser.error(f"argument --plot: matplotlib cannot write {extension!r} files, got {path!r} "
                     f"(it writes {', '.join(sorted(formats))})")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastdrop bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_size_list, default=DEFAULT_SIZES,
                        help="comma-separated element counts, K/M/G suffixes allowed (default 1K,64K,1M,16M)")
    parser.add_argument("--dtypes", type=_dtype_list, default=DTYPES, help="default float16,float32,float64; bfloat16 too (with ml_dtypes)")
    parser.add_argument("--threads", type=_cli_args.threads, default=1,
                        help=f"threads for fastdrop and torch, 1 to {_cli_args.MAX_THREADS} (default 1)")
    parser.add_argument("--budget", type=_cli_args.real(0, open_low=True), default=1.0,
                        help="seconds of timing rounds per case (at least 3 rounds; default 1.0)")
    parser.add_argument("--no-targets", action="store_true",
                        help="skip the extra target cases (1K call, spatial, threads)")
    parser.add_argument("--large", action="store_true",
                        help=f"add {_label(LARGE_SIZE)}-element float32 and float64 arrays (beyond the last-level "
                             f"cache) against np.multiply and np.copyto, with 1 and 2 threads (~1.5 GiB of memory)")
    parser.add_argument("--family", action="store_true",
                        help=f"the dropout family instead: each variant's forward and backward on float32 "
                             f"{FAMILY_SHAPE} against the floor and naive NumPy, and every layer against its "
                             f"functional twin at {LAYER_SHAPE[0] * LAYER_SHAPE[1]} elements (--sizes, --dtypes "
                             f"and --no-targets do not apply)")
    parser.add_argument("--torch", action="store_true",
                        help="fastdrop.torch against torch.nn.Dropout instead: forward and forward+backward at "
                             "1M and 16M float32, the MLP training step with torch's dropout, fastdrop's and none "
                             "(needs PyTorch; --sizes, --dtypes and --no-targets do not apply)")
    parser.add_argument("--json", metavar="FILE", type=_cli_args.output_file, help="write the raw numbers as JSON")
    parser.add_argument("--plot", metavar="FILE.png", type=_cli_args.output_file,
                        help="draw ns/element against size (needs matplotlib)")
    args = parser.parse_args(argv)
    # Everything that could fail after the timing is checked here, before it.
    memory = _physical_memory()
    largest = max(args.sizes)
    widest = max(args.dtypes, key=lambda d: np.dtype(d).itemsize)
    if args.large and args.family:
        parser.error("argument --large: adds cases to the size sweep, which --family does not run")
    if args.large and memory is not None and 2 * LARGE_SIZE * 8 > memory:
        parser.error(f"argument --large: needs {2 * LARGE_SIZE * 8 / 2**30:.1f} GiB, more than this machine's "
                     f"{memory / 2**30:.1f} GiB of memory")
    if memory is not None and _bytes_needed(largest, widest) > memory:
        parser.error(f"argument --sizes: {_label(largest)} elements of {widest} need at least "
                     f"{_bytes_needed(largest, widest) / 2**30:.1f} GiB, more than this machine's "
                     f"{memory / 2**30:.1f} GiB of memory")
    if args.torch and args.family:
        parser.error("argument --torch: not allowed with argument --family")
    if args.torch and _torch() is None:
        parser.error("argument --torch: needs PyTorch, which is not installed: pip install fastdrop[torch]")
    if args.plot and args.torch:
        parser.error(f"argument --plot: draws the size sweep, which --torch does not run, got {args.plot!r}")
    if args.plot and args.family:
        parser.error(f"argument --plot: draws the size sweep, which --family does not run, got {args.plot!r}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error(f"argument --plot: needs matplotlib, which is not installed, got {args.plot!r}: "
                         f"pip install matplotlib")
        _check_plot_format(parser, args.plot)
        if args.json and os.path.realpath(args.json) == os.path.realpath(args.plot):
            parser.error(f"argument --plot: the same file as --json, got {args.plot!r}")
    if args.torch:
        result = run_torch(args.threads, args.budget, progress=sys.stderr)
        print(format_torch(result))
    elif args.family:
        result = run_family(args.threads, args.budget, progress=sys.stderr)
        print(format_family(result))
    else:
        result = run(args.sizes, args.dtypes, args.threads, args.budget, not args.no_targets, progress=sys.stderr,
                     large=args.large)
        print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.plot:
        plot(result, args.plot)
    return 0


# --- fastdrop bench --torch ----------------------------------------------------------------------
TORCH_SIZES = (1 << 20, 1 << 24)
TORCH_DTYPES = ("float32", "bfloat16")
MLP_WIDTHS = (784, 2048, 2048, 10)         # the MLP of the training-step case: dropout after each hidden layer
MLP_BATCH = 256
MLP_LR = 0.01
TORCH_TARGETS = {"forward": 25.0, "forward+backward": 8.0}      # x faster than nn.Dropout at 1M float32
MLP_STEP_TARGET = 1.10                      # the step with torch's dropout over the step with fastdrop's
SAVED_BYTES_TARGET = 4.0                    # autograd bytes saved less per dropped element


def torch_dropout_calls(n, torch, p=P, dtype="float32"):
    """{"forward": {impl: f}, "forward+backward": {impl: f}} for torch.nn.Dropout ("torch") and
    fastdrop.torch.Dropout ("fastdrop") on n elements of ``dtype`` (a torch dtype's name);
    forward+backward returns the input's gradient (torch.autograd.grad, so no accumulation
    pass is timed)."""
    import fastdrop.torch as ft
    x = torch.randn(n, generator=torch.Generator().manual_seed(SEED)).to(getattr(torch, dtype))
    xg = x.clone().requires_grad_()
    g = torch.ones(n, dtype=x.dtype)
    modules = {"torch": torch.nn.Dropout(p), "fastdrop": ft.Dropout(p)}

    def forward(module):
        return lambda: module(x)

    def forward_backward(module):
        return lambda: torch.autograd.grad(module(xg), xg, g)
    return {"forward": {k: forward(m) for k, m in modules.items()},
            "forward+backward": {k: forward_backward(m) for k, m in modules.items()}}


def mlp_models(torch, p=P):
    """{"torch", "fastdrop", "none": the MLP of MLP_WIDTHS with torch's dropout, fastdrop's or
    none after each hidden ReLU}, all with the same initial weights."""
    import fastdrop.torch as ft
    layers = {"torch": torch.nn.Dropout, "fastdrop": ft.Dropout, "none": lambda p: torch.nn.Identity()}
    torch.manual_seed(SEED)
    models = {}
    for name, dropout in layers.items():
        parts = []
        for i, (a, b) in enumerate(zip(MLP_WIDTHS, MLP_WIDTHS[1:])):
            parts.append(torch.nn.Linear(a, b))
            if i < len(MLP_WIDTHS) - 2:
                parts += [torch.nn.ReLU(), dropout(p)]
        models[name] = torch.nn.Sequential(*parts)
    for model in models.values():
        model.load_state_dict(models["torch"].state_dict())
    return models


def mlp_steps(torch, p=P):
    """{name: one SGD training step of that MLP on a fixed batch} (see mlp_models)."""
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(MLP_BATCH, MLP_WIDTHS[0], generator=gen)
    target = torch.randint(0, MLP_WIDTHS[-1], (MLP_BATCH,), generator=gen)

    def step(model):
        optimizer = torch.optim.SGD(model.parameters(), lr=MLP_LR)

        def once():
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), target).backward()
            optimizer.step()
        return once
    return {name: step(model) for name, model in mlp_models(torch, p).items()}


def mlp_saved_bytes(torch, p=P):
    """{name: bytes autograd saves for the backward of one MLP forward}, each storage once."""
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(MLP_BATCH, MLP_WIDTHS[0], generator=gen)
    result = {}
    for name, model in mlp_models(torch, p).items():
        storages = {}

        def pack(t):
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x).sum()
        result[name] = sum(storages.values())
    return result


def run_torch(threads=1, budget=1.0, progress=None, sizes=TORCH_SIZES, dtypes=TORCH_DTYPES):
    """fastdrop.torch against torch.nn.Dropout (forward, forward+backward at each size and
    dtype) and the MLP training step with torch's dropout, fastdrop's and none, as a dict."""
    torch = _torch()
    if torch is None:
        raise RuntimeError("fastdrop bench --torch needs PyTorch: pip install fastdrop[torch]")
    before, torch_before = fastdrop.get_num_threads(), torch.get_num_threads()
    fastdrop.set_num_threads(threads)
    torch.set_num_threads(threads)
    bar = ProgressBar(2 * len(sizes) * len(dtypes) + 2, "fastdrop bench --torch", progress) if progress else None
    try:
        cases = []
        for dtype in dtypes:
            for n in sizes:
                for direction, funcs in torch_dropout_calls(n, torch, dtype=dtype).items():
                    if bar:
                        bar.update(bar.done + 1, f"{direction} {dtype} {_label(n)}")
                    samples, rounds = time_interleaved(funcs, budget)
                    cases.append({"case": direction, "dtype": dtype, "size": n, "rounds": rounds,
                                  "ms": {k: float(np.median(v)) * 1e3 for k, v in samples.items()},
                                  "speedup": _median_ratio(samples["torch"], samples["fastdrop"])})
        if bar:
            bar.update(bar.done + 1, "MLP step")
        samples, rounds = time_interleaved(mlp_steps(torch), budget * 4)
        step = {"rounds": rounds, "ms": {k: float(np.median(v)) * 1e3 for k, v in samples.items()},
                "speedup": _median_ratio(samples["torch"], samples["fastdrop"])}
        if bar:
            bar.update(bar.done + 1, "MLP saved tensors")
        saved = mlp_saved_bytes(torch)
    finally:
        if bar:
            bar.close()
        fastdrop.set_num_threads(before)
        torch.set_num_threads(torch_before)
    dropped = MLP_BATCH * sum(MLP_WIDTHS[1:-1])          # elements through dropout per step
    targets = [{"case": f"{c['case']} vs nn.Dropout, float32 {_label(c['size'])}", "ratio": c["speedup"],
                "target": f">= {TORCH_TARGETS[c['case']]:g}", "met": c["speedup"] >= TORCH_TARGETS[c["case"]]}
               for c in cases if c["size"] == 1 << 20 and c["dtype"] == "float32"]
    # torch keeps 4 bytes per element through dropout; fastdrop one 8-byte seed per dropout call.
    saved_less = (saved["torch"] - saved["fastdrop"]) / (P * dropped)
    targets += [{"case": "MLP step with torch's dropout / with fastdrop's", "ratio": step["speedup"],
                 "target": f">= {MLP_STEP_TARGET:g}", "met": step["speedup"] >= MLP_STEP_TARGET},
                {"case": "autograd bytes saved less per dropped element (p * n)", "ratio": saved_less,
                 "target": f">= {SAVED_BYTES_TARGET:g}", "met": saved_less >= SAVED_BYTES_TARGET}]
    d = fastdrop.info()
    return {"fastdrop": d["version"], "backend": d["backend"], "isa": d["isa"], "threads": threads, "p": P,
            "numpy": np.__version__, "torch": torch.__version__,
            "machine": {"processor": _cpu_name(), "cpus": os.cpu_count(), "load_average": _load_average()},
            "budget_seconds_per_case": budget, "cases": cases, "mlp_step": step, "mlp_saved_bytes": saved,
            "elements_through_dropout": dropped, "targets": targets}


def format_torch(result):
    step, saved = result["mlp_step"], result["mlp_saved_bytes"]
    lines = _header(result, "bench --torch", f"p={result['p']}") + [
        "ms: median over interleaved rounds; torch/fd: median of per-round ratios (how many times faster).",
        "",
        f"{'case':<18} {'dtype':<8} {'size':>5} {'nn.Dropout ms':>13} {'fastdrop ms':>11} {'torch/fd':>8}",
    ]
    lines += [f"{c['case']:<18} {c['dtype']:<8} {_label(c['size']):>5} {c['ms']['torch']:13.3f} "
              f"{c['ms']['fastdrop']:11.3f} {c['speedup']:8.1f}" for c in result["cases"]]
    widths = "-".join(map(str, MLP_WIDTHS))
    lines += ["", f"MLP {widths}, batch {MLP_BATCH}, dropout {result['p']} after each hidden layer, SGD step",
              f"{'dropout':<10} {'step ms':>8} {'dropout share':>13} {'autograd saved MiB':>18}"]
    for name in ("torch", "fastdrop", "none"):
        share = (step["ms"][name] - step["ms"]["none"]) / step["ms"][name]
        lines.append(f"{name:<10} {step['ms'][name]:8.2f} {share:13.1%} {saved[name] / 2**20:18.2f}")
    through = result["elements_through_dropout"]
    lines.append(f"autograd keeps {saved['torch'] - saved['fastdrop']} bytes less with fastdrop's dropout: "
                 f"{(saved['torch'] - saved['fastdrop']) / through:.5f} per element through dropout "
                 f"({through}; torch's 4-byte noise, less fastdrop's 8-byte seed per call)")
    lines += ["", f"{'performance targets (threads as above)':<62} {'ratio':>6}  {'target':<7} met"]
    lines += [f"{t['case']:<62} {t['ratio']:6.2f}  {t['target']:<7} {'yes' if t['met'] else 'NO'}"
              for t in result["targets"]]
    return "\n".join(lines)
