"""Process-wide state under attack: forks after the OpenMP pool started, overlapping
overrides in threads and asyncio tasks, and thread counts of exotic types.

Every fork test runs in a fresh interpreter with a timeout, in its own process group that
is killed on timeout: a regression (a child waiting forever for the OpenMP workers its
parent's pool lost in the fork) fails the test instead of hanging the suite, and a
poisoned OpenMP state never reaches this process.
"""
import asyncio
import decimal
import fractions
import inspect
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastdrop as fd
from fastdrop import _backend, _numpy_backend

pytestmark = pytest.mark.adversarial

needs_compiled = pytest.mark.skipif(not _backend.compiled_available(), reason="needs the compiled backend")
needs_openmp = pytest.mark.skipif(not _backend.openmp(), reason="needs the compiled backend built with OpenMP")

TIMEOUT = 180           # per script; a healthy one takes a few seconds even on a loaded machine

# Shared by every script: a large input (far above the kernels' parallel threshold of 256
# blocks of 1024 elements), its digest, and fork/wait with a deadline.
PRELUDE = '''
import hashlib, os, signal, sys, time
import numpy as np
import fastdrop as fd
from fastdrop import _backend

X = np.random.default_rng(11).standard_normal(1 << 20).astype(np.float32)

def digest(seed):
    """The bytes of one multi-threaded-size dropout call, hashed (equal digests = equal bits)."""
    return hashlib.sha256(fd.dropout(X, 0.5, seed=seed).tobytes()).hexdigest()

def wait(pid, deadline=60):
    """The exit code of child ``pid``; a child still running after ``deadline`` s is killed (code -9)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -9

def in_child(check):
    """Fork; the child exits 0 when ``check()`` is true, 1 when false, 2 on an exception."""
    pid = os.fork()
    if pid == 0:
        try:
            code = 0 if check() else 1
        except BaseException as exc:
            print("child failed:", repr(exc), file=sys.stderr, flush=True)
            code = 2
        os._exit(code)
    return wait(pid)
'''


def run_script(tmp_path, body, **env):
    """Run PRELUDE + body as a script file (spawn needs an importable __main__); return stdout."""
    script = tmp_path / "script.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "FASTDROP_NUM_THREADS": "1", **env},
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)         # the script and every child it forked
        out, err = proc.communicate()
        pytest.fail(f"timed out after {TIMEOUT} s (a hang after fork?)\n{out}\n{err}")
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{out}\n{err}"
    return out


# ---- os.fork ------------------------------------------------------------------------------

@needs_openmp
@pytest.mark.parametrize("parent_threads", [1, 2])
def test_os_fork_child_after_the_pool_started(tmp_path, parent_threads):
    """The parent's large call starts the OpenMP pool (with 2 threads); the forked child runs
    large calls with the inherited count and with 2 threads, forks a grandchild that does the
    same, and every result has the parent's bits; the parent's pool works again afterwards."""
    out = run_script(tmp_path, f'''
        fd.set_num_threads({parent_threads})
        ref = digest(1)
        ref2 = digest(2)

        def grandchild():
            return fd.get_num_threads() == 2 and digest(1) == ref

        def child():
            inherited = fd.get_num_threads() == {parent_threads} and digest(1) == ref
            fd.set_num_threads(2)
            return inherited and digest(2) == ref2 and in_child(grandchild) == 0

        assert in_child(child) == 0, "child"
        assert digest(1) == ref and fd.get_num_threads() == {parent_threads}, "parent after the fork"
        assert in_child(child) == 0, "second child"
        print("ok")
    ''')
    assert out.strip() == "ok"


@needs_openmp
def test_os_fork_inside_use_num_threads_block(tmp_path):
    """A fork inside ``use_num_threads(2)``: the child is inside the same block, runs with 2
    threads, and leaving the block there restores the process-wide count."""
    out = run_script(tmp_path, '''
        ref = digest(3)

        def child():
            inside = fd.get_num_threads() == 2 and digest(3) == ref
            block.__exit__(None, None, None)
            return inside and fd.get_num_threads() == 1 and digest(3) == ref

        block = fd.use_num_threads(2)
        block.__enter__()
        digest(3)                                  # starts the pool of this thread
        assert in_child(child) == 0
        block.__exit__(None, None, None)
        assert fd.get_num_threads() == 1
        print("ok")
    ''')
    assert out.strip() == "ok"


@needs_openmp
@pytest.mark.parametrize("runtime", ["no omp_pause_resource_all", "pause refused"])
def test_fork_child_stays_single_threaded_when_the_pool_cannot_be_ended(tmp_path, runtime):
    """When the OpenMP runtime cannot end the pool before the fork, the child (and its own
    children) must run single-threaded, whatever the parent's count and overrides, refuse
    more threads, and still give the parent's bits."""
    fake = "None" if runtime == "no omp_pause_resource_all" else "lambda kind: -1"
    out = run_script(tmp_path, f'''
        _backend._omp_pause_resource_all = lambda: {fake}
        fd.set_num_threads(2)
        ref = digest(4)                            # the pool of this thread has started

        def refused(action):
            try:
                action()
            except RuntimeError as exc:
                return "forked from a process whose OpenMP runtime could not end its thread pool" in str(exc)
            return False

        def grandchild():
            return fd.get_num_threads() == 1 and digest(4) == ref and refused(lambda: fd.set_num_threads(2))

        def child():
            ok = fd.get_num_threads() == 1 and digest(4) == ref
            ok = ok and refused(lambda: fd.set_num_threads(2)) and refused(lambda: fd.use_num_threads(2).__enter__())
            fd.set_num_threads(1)
            with fd.use_num_threads(1):
                ok = ok and digest(4) == ref
            block.__exit__(None, None, None)       # the block inherited from the parent still closes
            return ok and fd.get_num_threads() == 1 and in_child(grandchild) == 0

        block = fd.use_num_threads(2)
        block.__enter__()
        assert in_child(child) == 0
        block.__exit__(None, None, None)
        assert digest(4) == ref and fd.get_num_threads() == 2, "the parent keeps its threads"
        print("ok")
    ''')
    assert out.strip() == "ok"


# ---- multiprocessing and concurrent.futures -----------------------------------------------

POOL_SCRIPT = '''
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

def work(seed):
    return fd.get_num_threads(), digest(seed)

if __name__ == "__main__":
    context = multiprocessing.get_context("{method}")
    fd.set_num_threads({parent_threads})
    seeds = list(range(20, 26))
    refs = [digest(s) for s in seeds]              # with 2 threads: the pool has started
    want = [({child_threads}, r) for r in refs]
    with context.Pool(2) as pool:
        assert pool.map_async(work, seeds).get(timeout=60) == want, "{method} Pool"
    with ProcessPoolExecutor(2, mp_context=context) as executor:
        assert list(executor.map(work, seeds, timeout=60)) == want, "{method} ProcessPoolExecutor"
    assert [digest(s) for s in seeds] == refs
    print("ok")
'''


@needs_openmp
@pytest.mark.parametrize("parent_threads", [1, 2])
def test_fork_pool_and_executor_match_the_parent(tmp_path, parent_threads):
    """Workers forked after the parent's pool started inherit its thread count and return its bits."""
    body = POOL_SCRIPT.format(method="fork", parent_threads=parent_threads, child_threads=parent_threads)
    assert run_script(tmp_path, body).strip() == "ok"


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_spawn_and_forkserver_workers_use_the_configured_threads(tmp_path, method):
    """Fresh workers read FASTDROP_NUM_THREADS, not the parent's later set_num_threads, and
    return the parent's bits."""
    body = POOL_SCRIPT.format(method=method, parent_threads=1, child_threads=2)
    assert run_script(tmp_path, body, FASTDROP_NUM_THREADS="2").strip() == "ok"


# ---- overlapping overrides in threads -----------------------------------------------------

def choreograph(*scripts):
    """Run each script (a list of callables, one per phase, None to idle) on its own thread;
    every thread finishes phase k before any starts phase k + 1.  Returns, per thread, the
    value of each phase (None when idle), or raises the first exception a thread hit."""
    phases = max(map(len, scripts))
    barrier = threading.Barrier(len(scripts), timeout=60)
    results = [[None] * phases for _ in scripts]
    errors = []

    def run(script, out):
        try:
            for k in range(phases):
                step = script[k] if k < len(script) else None
                if step is not None:
                    out[k] = step()
                barrier.wait()
        except BaseException as exc:        # reported below; abort() frees the other threads
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=pair) for pair in zip(scripts, results)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    if errors:
        raise errors[0]
    return results


def leave(block):
    return lambda: block.__exit__(None, None, None)


@pytest.fixture
def restore_globals():
    backend, threads = fd.backend(), fd.get_num_threads()
    yield
    fd.set_backend(backend)
    fd.set_num_threads(threads)


X = np.random.default_rng(5).standard_normal((700, 800), dtype=np.float32)     # the parallel path


def seen():
    return fd.backend(), _backend.kernels(), _backend.isa(), fd.get_num_threads()


@needs_compiled
def test_overlapping_use_backend_blocks_in_two_threads(restore_globals):
    """A enters numpy, B enters cython, A leaves first, B last: the old process-wide
    save/restore left the process on numpy; each thread must see its own and the global stay."""
    fd.set_backend("cython")
    fd.set_num_threads(1)
    compiled, compiled_isa = _backend.kernels(), _backend.isa()
    a_block, b_block = fd.use_backend("numpy"), fd.use_backend("cython")
    drop = lambda: fd.dropout(X, 0.3, seed=8)       # noqa: E731
    #       phase 0            1                2     3     4               5     6               7
    a, b = choreograph(
        [a_block.__enter__, None,             seen, drop, leave(a_block), seen, None,           seen],
        [None,              b_block.__enter__, seen, drop, None,           seen, leave(b_block), seen],
    )
    assert a[2] == ("numpy", _numpy_backend, "numpy", 1)
    assert b[2] == b[5] == ("cython", compiled, compiled_isa, 1)
    assert a[5] == a[7] == b[7] == ("cython", compiled, compiled_isa, 1)     # the global, unchanged
    assert seen() == ("cython", compiled, compiled_isa, 1)
    np.testing.assert_array_equal(a[3].view(np.uint32), b[3].view(np.uint32))
    np.testing.assert_array_equal(a[3].view(np.uint32), drop().view(np.uint32))


def test_overlapping_use_num_threads_blocks_in_two_threads(restore_globals):
    fd.set_num_threads(1)
    a_block, b_block = fd.use_num_threads(2), fd.use_num_threads(3)
    get, drop = fd.get_num_threads, lambda: fd.dropout(X, 0.6, seed=9)     # noqa: E731
    #       phase 0            1                2    3     4               5    6               7
    a, b = choreograph(
        [a_block.__enter__, None,              get, drop, leave(a_block), get, None,           get],
        [None,              b_block.__enter__, get, drop, None,           get, leave(b_block), get],
    )
    assert (a[2], b[2]) == (2, 3)
    assert (a[5], b[5]) == (1, 3)                    # A has left its block, B is still in its own
    assert a[7] == b[7] == fd.get_num_threads() == 1
    np.testing.assert_array_equal(a[3].view(np.uint32), b[3].view(np.uint32))
    np.testing.assert_array_equal(a[3].view(np.uint32), drop().view(np.uint32))


def test_a_bystander_thread_never_sees_another_threads_override(restore_globals):
    fd.set_num_threads(1)
    before = seen()
    block_b, block_t = fd.use_backend("numpy"), fd.use_num_threads(2)
    #           phase 0           1                 2     3               4
    other, bystander = choreograph(
        [block_b.__enter__, block_t.__enter__, seen, leave(block_t), leave(block_b)],
        [None,              None,              seen, None,           None,           seen],
    )
    assert other[2] == ("numpy", _numpy_backend, "numpy", 2)
    assert bystander[2] == bystander[5] == seen() == before


def test_threads_started_inside_a_block_use_the_global_settings(restore_globals):
    """Before Python 3.14 (and on 3.14 without thread_inherit_context) a new thread starts with
    an empty context: the block's overrides do not reach it."""
    fd.set_num_threads(1)
    inherits = bool(getattr(sys.flags, "thread_inherit_context", 0))
    with fd.use_backend("numpy"), fd.use_num_threads(3):
        got = []
        t = threading.Thread(target=lambda: got.append((fd.backend(), fd.get_num_threads())))
        t.start()
        t.join(60)
    expected = ("numpy", 3) if inherits else (_backend._active[0], 1)
    assert got == [expected]


def test_nested_blocks_and_exceptions_restore_this_context(restore_globals):
    fd.set_num_threads(1)
    global_backend = fd.backend()
    with pytest.raises(KeyError):
        with fd.use_num_threads(4), fd.use_backend("numpy"):
            with fd.use_num_threads(2):
                assert fd.get_num_threads() == 2
            assert fd.get_num_threads() == 4 and fd.backend() == "numpy"
            raise KeyError("leave by an exception")
    assert (fd.backend(), fd.get_num_threads()) == (global_backend, 1)


# ---- asyncio ------------------------------------------------------------------------------

def test_overlapping_overrides_in_asyncio_tasks(restore_globals):
    """Tasks interleave at every await; each sees only its own override, a task created
    inside a block inherits it (a copy: the block ending later does not change it), and the
    globals are unchanged afterwards."""
    fd.set_num_threads(1)
    global_backend = fd.backend()

    async def main():
        entered, go_on = asyncio.Event(), asyncio.Event()

        async def a():
            with fd.use_backend("numpy"), fd.use_num_threads(2):
                entered.set()
                await go_on.wait()
                child = asyncio.ensure_future(observe_later())
                return seen(), fd.dropout(X, 0.4, seed=10), child

        async def b():
            await entered.wait()
            with fd.use_num_threads(3):
                inside = seen()
                go_on.set()
                await asyncio.sleep(0)
                inside_later = seen()
            return inside, inside_later, seen()

        async def observe_later():
            await asyncio.sleep(0.01)              # after a's blocks have ended
            return fd.backend(), fd.get_num_threads()

        (a_seen, a_out, child), (b_in, b_in_later, b_after) = await asyncio.gather(a(), b())
        return a_seen, a_out, await child, b_in, b_in_later, b_after, seen()

    a_seen, a_out, child, b_in, b_in_later, b_after, after = asyncio.run(main())
    assert a_seen == ("numpy", _numpy_backend, "numpy", 2)
    assert child == ("numpy", 2)
    assert b_in[0] == b_in_later[0] == global_backend and b_in[3] == b_in_later[3] == 3
    assert b_after[0] == global_backend and b_after[3] == 1
    assert after == b_after and fd.get_num_threads() == 1
    np.testing.assert_array_equal(a_out.view(np.uint32), fd.dropout(X, 0.4, seed=10).view(np.uint32))


# ---- the global setters -------------------------------------------------------------------

def test_global_setters_reach_every_thread_without_an_override(restore_globals):
    fd.set_num_threads(1)
    with fd.use_num_threads(4):
        t = threading.Thread(target=lambda: (fd.set_backend("numpy"), fd.set_num_threads(2)))
        t.start()
        t.join(60)
        assert fd.backend() == "numpy" and fd.get_num_threads() == 4       # this block's override stands
    assert fd.get_num_threads() == 2
    got = []
    t = threading.Thread(target=lambda: got.append(seen()))
    t.start()
    t.join(60)
    assert got == [("numpy", _numpy_backend, "numpy", 2)]


@needs_compiled
def test_set_backend_inside_a_block_shows_after_it(restore_globals):
    fd.set_backend("cython")
    with fd.use_backend("cython"):
        fd.set_backend("numpy")
        assert fd.backend() == "cython"             # the block's override stands
    assert fd.backend() == "numpy"                  # leaving restores this context's override, not a saved global


# ---- exotic thread counts -----------------------------------------------------------------

WRONG_TYPES = [True, False, np.bool_(True), np.timedelta64(2), np.datetime64("2024-01-01"), 2.0, np.float64(2),
               1.5, "2", b"2", None, fractions.Fraction(2), decimal.Decimal(2), 2 + 0j, [2], np.array(2)]


OUT_OF_RANGE = [0, -1, 1025, 2**40, np.int64(0), np.uint64(2**63), np.int8(-3)]


@pytest.mark.parametrize("n, error, got",
                         [pytest.param(n, TypeError, f"{type(n).__name__} ", id=f"{type(n).__name__}-{n!r}")
                          for n in WRONG_TYPES]
                         + [pytest.param(n, ValueError, f"{int(n)}$", id=f"{type(n).__name__}-{n!r}")
                            for n in OUT_OF_RANGE])
def test_bad_thread_counts_are_refused_and_change_nothing(n, error, got, restore_globals):
    """A wrong type is a TypeError, a wrong value a ValueError; both name the value."""
    fd.set_num_threads(1)
    message = r"num_threads must be an integer in \[1, 1024\], got " + got
    with pytest.raises(error, match=message):
        fd.set_num_threads(n)
    with pytest.raises(error, match=message):
        with fd.use_num_threads(n):
            pass
    assert fd.get_num_threads() == 1


@pytest.mark.parametrize("n", [np.int8(3), np.uint16(2), np.int64(1024), 1])
def test_numpy_integer_thread_counts_are_plain_ints(n, restore_globals):
    fd.set_num_threads(n)
    assert fd.get_num_threads() == n and type(fd.get_num_threads()) is int
    with fd.use_num_threads(n):
        assert fd.get_num_threads() == n and type(fd.get_num_threads()) is int


@pytest.mark.parametrize("env, message", [
    ({"FASTDROP_NUM_THREADS": "2_0"}, "ValueError: FASTDROP_NUM_THREADS must be an integer >= 1, got '2_0'"),
    ({"FASTDROP_NUM_THREADS": "+2"}, "ValueError: FASTDROP_NUM_THREADS must be an integer >= 1, got '+2'"),
    ({"FASTDROP_NUM_THREADS": "2.0"}, "ValueError: FASTDROP_NUM_THREADS must be an integer >= 1, got '2.0'"),
    ({"FASTDROP_NUM_THREADS": "-1"}, "ValueError: FASTDROP_NUM_THREADS must be an integer >= 1, got '-1'"),
    ({"FASTDROP_NUM_THREADS": " 2000"}, "ValueError: num_threads must be an integer in [1, 1024], got 2000 "
                                        "(from the environment variable FASTDROP_NUM_THREADS=' 2000')"),
    ({"FASTDROP_BACKEND": "Torch"}, "ValueError: backend must be one of ('cython', 'numpy'), got 'torch' "
                                    "(from the environment variable FASTDROP_BACKEND='Torch')"),
])
def test_environment_errors_name_the_variable_and_its_value(env, message):
    proc = subprocess.run([sys.executable, "-c", "import fastdrop"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FASTDROP_BACKEND": "", "FASTDROP_NUM_THREADS": "", **env})
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == message


# ---- a Generator seed: drawn from only by a call that passes and draws ----------------------

X4 = np.ones((2, 3, 4, 5), np.float32)
BOX = dict(global_shape=(4, 3, 4, 5), origin=(2, 0, 0, 0))

# Every public function with a seed= argument: (positional arguments, keyword arguments of a
# valid training call).
SEEDED = {
    "dropout": ((X4,), dict(p=0.5)),
    "dropout_mask": ((X4.shape,), dict(p=0.5)),
    "dropout_add": ((X4, X4), dict(p=0.5)),
    "dropout_add_grad": ((X4,), dict(p=0.5)),
    "classic_dropout": ((X4,), dict(p=0.5)),
    "spatial_dropout": ((X4,), dict(p=0.5)),
    "variational_dropout": ((X4,), dict(p=0.5)),
    "drop_path": ((X4,), dict(p=0.5)),
    "alpha_dropout": ((X4,), dict(p=0.5)),
    "alpha_dropout_grad": ((X4,), dict(p=0.5)),
    "gaussian_dropout": ((X4,), dict(p=0.5)),
    "gaussian_dropout_grad": ((X4,), dict(p=0.5)),
    "dropblock2d": ((X4,), dict(p=0.5, block_size=2)),
    "concrete_dropout": ((X4,), dict(logit=-1.0)),
    "concrete_dropout_grad": ((X4, X4), dict(logit=-1.0)),
    "dropout_box": ((X4[:2],), dict(p=0.5, **BOX)),
    "dropout_mask_box": ((X4.shape,), dict(p=0.5, **BOX)),
}
INT_SEEDS_ONLY = {"derive_seed", "stream_key"}      # a resolved int seed, never a Generator
PER_ELEMENT_RATES = {"dropout", "dropout_mask", "dropout_add", "dropout_add_grad", "spatial_dropout",
                     "variational_dropout", "drop_path", "dropout_box", "dropout_mask_box"}


def parameters(name):
    return inspect.signature(getattr(fd, name)).parameters


def failing_calls(name):
    """Keyword overrides each of which makes ``name``'s call fail its checks: a rate that does
    not broadcast to the noise shape (checked last of all), a bad offset, training or out."""
    bad = [dict(offset=-1)]
    if name in PER_ELEMENT_RATES:
        bad.append(dict(p=np.full(7, 0.3)))
    elif "p" in parameters(name):
        bad.append(dict(p=1.5))
    else:
        bad.append(dict(logit=60.0))
    if "training" in parameters(name):
        bad.append(dict(training="yes"))
    if "out" in parameters(name):
        bad.append(dict(out=np.empty(3, np.float32)))
    return [pytest.param(name, b, id=f"{name}-{next(iter(b))}") for b in bad]


def call(name, seed, **overrides):
    args, kwargs = SEEDED[name]
    return getattr(fd, name)(*args, seed=seed, **{**kwargs, **overrides})


def test_the_table_has_every_public_function_with_a_seed():
    seeded = {name for name in fd.__all__ if inspect.isfunction(getattr(fd, name)) and "seed" in parameters(name)}
    assert seeded - INT_SEEDS_ONLY == set(SEEDED)


@pytest.mark.parametrize("name, bad", [case for name in SEEDED for case in failing_calls(name)])
def test_a_failed_call_leaves_a_generator_seed_as_it_was(name, bad):
    for make in (np.random.default_rng, np.random.PCG64):
        seed = make(0)
        state = (seed if make is np.random.PCG64 else seed.bit_generator).state
        with pytest.raises((TypeError, ValueError)):
            call(name, seed, **bad)
        assert (seed if make is np.random.PCG64 else seed.bit_generator).state == state


def eval_and_zero_rate_calls():
    cases = []
    for name in SEEDED:
        if "training" in parameters(name):
            cases.append(pytest.param(name, dict(training=False), id=f"{name}-eval"))
        if "p" in parameters(name):
            cases.append(pytest.param(name, dict(p=0.0), id=f"{name}-p0"))
    return cases


@pytest.mark.parametrize("name, overrides", eval_and_zero_rate_calls())
def test_eval_and_p_zero_draw_nothing_from_a_generator_seed(name, overrides):
    """As in PyTorch: no random decision, nothing drawn; the result is the int seed's."""
    g = np.random.default_rng(0)
    state = g.bit_generator.state
    got = call(name, g, **overrides)
    assert g.bit_generator.state == state
    want = call(name, 12345, **overrides)
    for a, b in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", [name for name in SEEDED if "training" in parameters(name)])
def test_eval_still_checks_the_seed(name):
    with pytest.raises(TypeError, match=r"seed must be None, an int, or a numpy.random Generator, BitGenerator "
                                        r"or SeedSequence, got str '7'"):
        call(name, "7", training=False)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\), got -1"):
        call(name, -1, training=False)


@pytest.mark.parametrize("name", SEEDED)
def test_a_training_call_draws_one_key_from_a_generator_seed(name):
    """The other side: the tests above would pass for a function that never drew at all."""
    g, twin = np.random.default_rng(0), np.random.default_rng(0)
    state = g.bit_generator.state
    got = call(name, g)
    assert g.bit_generator.state != state
    key = int(twin.integers(0, 1 << 64, dtype=np.uint64))
    assert g.bit_generator.state == twin.bit_generator.state          # exactly one key drawn
    want = call(name, key)
    for a, b in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        assert np.array_equal(a, b)
