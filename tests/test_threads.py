"""Many Python threads calling fastdrop at once get exactly the serial results.

The kernels release the GIL, so these calls really overlap; any shared scratch buffer,
static state or racy counter would show up as a mismatch with the serial run.

``use_backend`` is context-local and a worker thread starts with an empty context, so every
worker enters the backend under test itself; otherwise it would run the process-wide one.

The last part: the default kernel thread count (FASTDROP_NUM_THREADS, OMP_NUM_THREADS, the
CPUs available) and threadpoolctl listing and limiting fastdrop's pool.
"""
import importlib.util
import os
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastdrop as fd
from fastdrop import _backend

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
                assert concurrent[name].tobytes() == expected.tobytes(), name          # bits, in C order
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


# ---- the default thread count and threadpoolctl ---------------------------------------------

needs_openmp = pytest.mark.skipif(not _backend.openmp(), reason="needs the compiled backend built with OpenMP")
CLEAN_ENV = {"FASTDROP_NUM_THREADS": "", "OMP_NUM_THREADS": "", "FASTDROP_BACKEND": "", "PYTHON_CPU_COUNT": ""}


def run_python(code, **env):
    """stdout of ``code`` in a fresh interpreter whose thread variables are cleared, then ``env``."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **CLEAN_ENV, **env})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def affinity_cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@needs_openmp
@pytest.mark.parametrize("env, expected", [
    ({}, "cpus"),
    ({"OMP_NUM_THREADS": "3"}, 3),
    ({"OMP_NUM_THREADS": " 5,2 "}, 5),                  # an OpenMP list: its first entry is the outer level
    ({"FASTDROP_NUM_THREADS": "2", "OMP_NUM_THREADS": "7"}, 2),
    ({"FASTDROP_NUM_THREADS": " ", "OMP_NUM_THREADS": "4"}, 4),
])
def test_default_thread_count_follows_the_environment(env, expected):
    got = run_python("import fastdrop; print(fastdrop.get_num_threads())", **env)
    assert int(got) == (min(affinity_cpus(), _backend.MAX_THREADS) if expected == "cpus" else expected)


@needs_openmp
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity")
def test_default_thread_count_is_the_cpus_available_to_the_process():
    cpu = sorted(os.sched_getaffinity(0))[0]
    code = f"import os; os.sched_setaffinity(0, {{{cpu}}}); import fastdrop; print(fastdrop.get_num_threads())"
    assert run_python(code) == "1"


@needs_openmp
@pytest.mark.parametrize("value", ["two", "0", "-1", "1025", ",4", "2.5"])
def test_unusable_omp_num_threads_warns_and_falls_back(value):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        n = _backend.default_num_threads({"OMP_NUM_THREADS": value})
    assert n == _backend.available_cpus()
    assert [str(w.message).split(" is not")[0] for w in caught] == [f"OMP_NUM_THREADS={value!r}"]
    assert caught[0].category is RuntimeWarning and "fastdrop ignores it" in str(caught[0].message)


def test_default_thread_count_without_openmp(monkeypatch):
    monkeypatch.setattr(_backend, "openmp", lambda: False)
    assert _backend.default_num_threads({"OMP_NUM_THREADS": "8"}) == 1


def test_available_cpus_is_bounded():
    assert 1 <= _backend.available_cpus() <= min(os.cpu_count() or 1, _backend.MAX_THREADS)


needs_threadpoolctl = pytest.mark.skipif(importlib.util.find_spec("threadpoolctl") is None,
                                         reason="threadpoolctl is not installed (the test extra has it)")


def _fastdrop_entries(info):
    return [entry for entry in info if entry["internal_api"] == "fastdrop"]


LIMITS_SCRIPT = """
import sys
{imports}
assert "threadpoolctl" in sys.modules
import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_info, threadpool_limits
mine = [e for e in threadpool_info() if e["internal_api"] == "fastdrop"]
assert len(mine) == 1, mine
assert mine[0]["user_api"] == "openmp" and mine[0]["num_threads"] == fastdrop.get_num_threads() == 3, mine
assert mine[0]["version"] == fastdrop.__version__ and mine[0]["isa"] == fastdrop.info()["isa"]
x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
ref = fastdrop.dropout(x, 0.5, seed=1)
with threadpool_limits(1, user_api="openmp"):
    assert fastdrop.get_num_threads() == 1
    assert np.array_equal(fastdrop.dropout(x, 0.5, seed=1), ref)
assert fastdrop.get_num_threads() == 3
with threadpool_limits(2):
    assert fastdrop.get_num_threads() == 2
with ThreadpoolController().select(internal_api="fastdrop").limit(limits=1):
    assert fastdrop.get_num_threads() == 1
with threadpool_limits(1, user_api="blas"):
    assert fastdrop.get_num_threads() == 3
with fastdrop.use_num_threads(2), threadpool_limits(1):
    assert fastdrop.get_num_threads() == 2        # a use_num_threads block overrides in its context
assert fastdrop.get_num_threads() == 3
print("ok")
"""


@needs_openmp
@needs_threadpoolctl
@pytest.mark.parametrize("imports", [
    "import threadpoolctl\nimport fastdrop",
    "import fastdrop\nimport threadpoolctl",
    "import fastdrop, importlib.util\nassert importlib.util.find_spec('threadpoolctl')\nimport threadpoolctl",
])
def test_threadpoolctl_lists_and_limits_fastdrop(imports):
    """threadpoolctl imported before or after fastdrop sees its pool and limits it."""
    assert run_python(LIMITS_SCRIPT.format(imports=imports), FASTDROP_NUM_THREADS="3") == "ok"


def test_import_fastdrop_does_not_import_threadpoolctl():
    code = "import sys, fastdrop; print('threadpoolctl' in sys.modules)"
    assert run_python(code) == "False"


@needs_openmp
@needs_threadpoolctl
def test_threadpoolctl_module_is_left_as_imported():
    code = ("import fastdrop, inspect, sys, threadpoolctl\n"
            "print(type(threadpoolctl.__loader__).__name__, type(threadpoolctl.__spec__.loader).__name__,"
            " bool(inspect.getsource(threadpoolctl)),"
            " any(type(f).__name__ == '_ThreadpoolctlHook' for f in sys.meta_path))")
    assert run_python(code) == "SourceFileLoader SourceFileLoader True False"


@needs_openmp
def test_threadpoolctl_limits_above_the_maximum_are_capped():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = fd.get_num_threads()
    try:
        with threadpoolctl.threadpool_limits(_backend.MAX_THREADS + 5, user_api="openmp"):
            assert fd.get_num_threads() == _backend.MAX_THREADS
        assert fd.get_num_threads() == before
        assert _fastdrop_entries(threadpoolctl.threadpool_info())[0]["num_threads"] == before
    finally:
        fd.set_num_threads(before)

NUM_THREADS_OR = """
import fastdrop
assert fastdrop.get_num_threads(default=3) == 3, "no choice made: the integration's count"
with fastdrop.use_num_threads(2):
    assert fastdrop.get_num_threads(default=3) == 2, "a use_num_threads block wins"
assert fastdrop.get_num_threads(default=5000) == 1024
fastdrop.set_num_threads(1)
assert fastdrop.get_num_threads(default=3) == 1, "set_num_threads wins, even when it sets the default"
"""


def test_get_num_threads_default_yields_to_a_chosen_count():
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "FASTDROP_NUM_THREADS"}
    subprocess.run([sys.executable, "-c", NUM_THREADS_OR], check=True, timeout=120, env=env)
    env["FASTDROP_NUM_THREADS"] = "1"
    code = "import fastdrop; assert fastdrop.get_num_threads(default=3) == 1, 'the environment chose 1'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)
