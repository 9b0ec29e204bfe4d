"""Many Python threads calling fastdrop at once get exactly the serial results.

The kernels release the GIL, so these calls really overlap; any shared scratch buffer,
static state or racy counter would show up as a mismatch with the serial run.

``use_backend`` is context-local and a worker thread starts with an empty context, so every
worker enters the backend under test itself; otherwise it would run the process-wide one.
"""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastdrop as fd

N_THREADS = 8
ROUNDS = 4


def jobs():
    """(name, callable) pairs covering the functional entry points, the box and the family's
    stream-word (Gaussian) and fused (alpha) paths."""
    rng = np.random.default_rng(7)
    x32 = rng.standard_normal((300, 1100), dtype=np.float32)       # > 256 blocks: the parallel path
    x64 = rng.standard_normal((64, 33, 17))
    x16 = rng.standard_normal(70_001).astype(np.float16)
    xt = rng.standard_normal((500, 400), dtype=np.float32).T        # non-contiguous input
    p_rows = rng.uniform(0, 1, (64, 1, 1))
    packed = fd.dropout_mask(x16.shape, 0.3, seed=5, packed=True)
    out = []
    for k in range(3 * N_THREADS):
        seed = 1000 + k
        out += [
            (f"f32-{k}", lambda s=seed: fd.dropout(x32, 0.5, seed=s)),
            (f"f64-noise-{k}", lambda s=seed: fd.dropout(x64, 0.2, seed=s, noise_shape=(None, 1, None))),
            (f"f64-rates-{k}", lambda s=seed: fd.dropout(x64, p_rows, seed=s, offset=s)),
            (f"f16-offset-{k}", lambda s=seed: fd.dropout(x16, 0.9, seed=s, offset=3 * s)),
            (f"transposed-{k}", lambda s=seed: fd.dropout(xt, 0.1, seed=s)),
            (f"mask-{k}", lambda s=seed: fd.dropout_mask((257, 1031), 0.5, seed=s, packed=True)),
            (f"apply-{k}", lambda: fd.apply_mask(x16, packed, 0.3)),
            (f"box-{k}", lambda s=seed: fd.dropout_box(x32[100:250, 7:900], 0.5, seed=s, global_shape=x32.shape,
                                                       origin=(100, 7))),
            (f"gaussian-{k}", lambda s=seed: fd.gaussian_dropout(x64, 0.3, seed=s)),
            (f"alpha-{k}", lambda s=seed: fd.alpha_dropout(x32, 0.2, seed=s)),
        ]
    return out


def run_concurrently(calls, backend):
    """Run every call on N_THREADS threads on ``backend`` that all start together."""
    barrier = threading.Barrier(N_THREADS)

    def worker(chunk):
        with fd.use_backend(backend):
            barrier.wait()
            return [(name, call()) for name, call in chunk]

    chunks = [calls[i::N_THREADS] for i in range(N_THREADS)]
    with ThreadPoolExecutor(N_THREADS) as pool:
        return dict(pair for result in pool.map(worker, chunks) for pair in result)


@pytest.mark.parametrize("kernel_threads", [1, 2])
def test_concurrent_functional_calls_equal_serial(backend, kernel_threads):
    calls = jobs()
    serial = {name: call() for name, call in calls}
    previous = fd.get_num_threads()
    fd.set_num_threads(kernel_threads)          # OpenMP teams nested inside Python threads
    try:
        for _ in range(ROUNDS if backend == "cython" else 1):
            concurrent = run_concurrently(calls, backend)
            assert concurrent.keys() == serial.keys()
            for name, expected in serial.items():
                assert concurrent[name].dtype == expected.dtype
                assert np.array_equal(concurrent[name].view(np.uint8), expected.view(np.uint8)), name
    finally:
        fd.set_num_threads(previous)


def test_concurrent_in_place_calls_on_disjoint_rows(backend):
    """Threads writing in place into disjoint rows of one array, via offset, equal one whole call."""
    x = np.random.default_rng(3).standard_normal((N_THREADS * 8, 40_000), dtype=np.float32)
    expected = fd.dropout(x, 0.4, seed=99)
    work = x.copy()
    rows = np.array_split(np.arange(work.shape[0]), N_THREADS)

    def part(r):
        block = work[r[0]:r[-1] + 1]
        with fd.use_backend(backend):
            fd.dropout(block, 0.4, seed=99, offset=int(r[0]) * work.shape[1], out=block)

    with ThreadPoolExecutor(N_THREADS) as pool:
        list(pool.map(part, rows))
    assert np.array_equal(work, expected)


def test_one_layer_per_thread_equals_serial(backend):
    """One layer per thread is the supported way to train in threads."""
    x = np.random.default_rng(4).standard_normal((128, 512), dtype=np.float32)

    def train(seed):
        layer = fd.Dropout(0.3, seed=seed)
        outs = []
        with fd.use_backend(backend):
            for _ in range(5):
                y = layer(x)
                outs.append((y, layer.backward(np.ones_like(y))))
        return outs

    serial = [train(s) for s in range(N_THREADS)]
    with ThreadPoolExecutor(N_THREADS) as pool:
        concurrent = list(pool.map(train, range(N_THREADS)))
    for got, want in zip(concurrent, serial):
        for (y, g), (y0, g0) in zip(got, want):
            assert np.array_equal(y, y0) and np.array_equal(g, g0)


def test_shared_layer_counter_is_never_corrupted():
    """Threads sharing one layer: every forward k = 0..n-1 is used exactly once (the lock)."""
    import sys
    x = np.ones(256, np.float32)
    layer = fd.Dropout(0.5, seed=2024)
    calls = 500
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)           # switch threads as often as CPython allows
    try:
        with ThreadPoolExecutor(N_THREADS) as pool:
            outs = [y for ys in pool.map(lambda _: [layer(x) for _ in range(calls)], range(N_THREADS))
                    for y in ys]
    finally:
        sys.setswitchinterval(old)
    total = N_THREADS * calls
    assert layer.counter == total
    reference = fd.Dropout(0.5, seed=2024)
    expected = sorted(reference(x).tobytes() for _ in range(total))
    assert sorted(y.tobytes() for y in outs) == expected


def test_layer_pickles_and_copies_without_its_lock():
    import copy
    import pickle
    layer = fd.Dropout(0.3, seed=5)
    layer(np.ones(64))
    clones = [pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)]
    second = layer(np.ones(64))                # forward number 1
    for clone in clones:
        assert clone.counter == 1
        assert np.array_equal(clone(np.ones(64)), second)
        clone(np.ones(64))                     # the clone's lock works too


NUM_THREADS_OR = """
import fastdrop
from fastdrop import _backend
assert _backend.num_threads_or(3) == 3, "no choice made: the integration's count"
with fastdrop.use_num_threads(2):
    assert _backend.num_threads_or(3) == 2, "a use_num_threads block wins"
assert _backend.num_threads_or(5000) == _backend.MAX_THREADS
fastdrop.set_num_threads(1)
assert _backend.num_threads_or(3) == 1, "set_num_threads wins, even when it sets the default"
"""


def test_num_threads_or_prefers_a_chosen_count_over_the_integrations():
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "FASTDROP_NUM_THREADS"}
    subprocess.run([sys.executable, "-c", NUM_THREADS_OR], check=True, timeout=120, env=env)
    env["FASTDROP_NUM_THREADS"] = "1"
    code = "from fastdrop import _backend; assert _backend.num_threads_or(3) == 1, 'the environment chose 1'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)
