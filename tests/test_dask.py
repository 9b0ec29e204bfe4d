"""Chunked and distributed dropout on Dask (issue 6): lazy, and the in-memory bits exactly."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastdrop as fd
from fastdrop import _backend

da = pytest.importorskip("dask.array")
fdd = pytest.importorskip("fastdrop.dask")

ROOT = Path(__file__).resolve().parents[1]
FLOATS = [np.float16, np.float32, np.float64]


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def data(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_importing_fastdrop_never_imports_dask():
    code = ("import sys, fastdrop, fastdrop.box; "
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'zarr')); "
            "print(loaded); sys.exit(1 if loaded else 0)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("chunks", [(4, 9, 5), (1, 1, 1), (13, 11, 7), (5, 11, 7), ((3, 10), (2, 2, 7), (6, 1))])
@pytest.mark.parametrize("noise_shape", [None, (None, 1, None), (1, 11, 1), (1, 1, 1)])
def test_equals_in_memory_dropout(backend, dtype, chunks, noise_shape):
    x = data((13, 11, 7), dtype)
    got = fdd.dropout(da.from_array(x, chunks=chunks), 0.4, seed=99, noise_shape=noise_shape).compute()
    assert same_bits(got, fd.dropout(x, 0.4, seed=99, noise_shape=noise_shape))


@st.composite
def chunkings(draw, shape):
    """A random chunking of ``shape``: sizes per axis that sum to the axis length."""
    out = []
    for n in shape:
        cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=4))) if n > 1 else []
        out.append(tuple(b - a for a, b in zip([0] + cuts, cuts + [n])))
    return tuple(out)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=chunkings((9, 14, 6)), second=chunkings((9, 14, 6)), offset=st.integers(0, 3000))
def test_rechunking_never_changes_the_result(first, second, offset):
    x = data((9, 14, 6), np.float64, seed=2)
    darr = da.from_array(x, chunks=first)
    a = fdd.dropout(darr, 0.5, seed=7, offset=offset).compute(scheduler="sync")
    b = fdd.dropout(darr.rechunk(second), 0.5, seed=7, offset=offset).compute(scheduler="sync")
    assert same_bits(a, b)
    assert same_bits(a, fd.dropout(x, 0.5, seed=7, offset=offset))


def test_lazy_nothing_computed_on_call(monkeypatch):
    calls = []
    monkeypatch.setattr(fdd, "dropout_box", lambda *a, **k: calls.append(1) or fd.dropout_box(*a, **k))

    def produce(block, block_info=None):
        calls.append(0)
        return block

    source = da.map_blocks(produce, da.ones((6, 6), chunks=3, dtype=np.float32), meta=np.empty((0, 0), np.float32))
    result = fdd.dropout(source, 0.5, seed=1)
    assert calls == [] and result.shape == (6, 6) and result.dtype == np.float32
    result.compute(scheduler="sync")
    assert calls.count(0) == 4 and calls.count(1) == 4


@pytest.mark.parametrize("p_kind", ["numpy", "dask"])
def test_per_element_rates(backend, p_kind):
    x = data((10, 12, 3), np.float32)
    p = np.random.default_rng(3).random((12, 1))
    rates = da.from_array(p, chunks=(5, 1)) if p_kind == "dask" else p
    got = fdd.dropout(da.from_array(x, chunks=(4, 5, 2)), rates, seed=5).compute()
    assert same_bits(got, fd.dropout(x, p, seed=5))


def test_per_element_rates_with_noise_shape(backend):
    x = data((6, 8, 5), np.float64)
    p = np.linspace(0.05, 0.95, 8).reshape(8, 1)
    got = fdd.dropout(da.from_array(x, chunks=(4, 3, 2)), p, seed=5, noise_shape=(1, None, 1)).compute()
    assert same_bits(got, fd.dropout(x, p, seed=5, noise_shape=(1, None, 1)))


def test_seed_none_draws_one_seed_once_on_the_client(monkeypatch):
    drawn = []
    monkeypatch.setattr("fastdrop._validation.secrets.randbits", lambda bits: drawn.append(bits) or 123456789)
    x = data((20, 30))
    result = fdd.dropout(da.from_array(x, chunks=(7, 8)), 0.5)
    assert drawn == [64]
    assert same_bits(result.compute(), fd.dropout(x, 0.5, seed=123456789))
    assert drawn == [64]                                      # no chunk drew its own seed
    assert same_bits(result.compute(), result.compute())


def test_generator_seed_is_drawn_once():
    x = data((20, 30))
    got = fdd.dropout(da.from_array(x, chunks=(7, 8)), 0.3, seed=np.random.default_rng(8)).compute()
    assert same_bits(got, fd.dropout(x, 0.3, seed=np.random.default_rng(8)))


def test_backward_is_the_same_call_on_the_gradient():
    x = data((16, 9), np.float64)
    darr = da.from_array(x, chunks=(5, 4))
    y = fdd.dropout(darr, 0.25, seed=4).compute()
    grad = fdd.dropout(da.ones_like(darr), 0.25, seed=4).compute()      # d sum(y) / dx
    assert same_bits(grad, np.where(y != 0, 1 / 0.75, 0.0))
    assert np.array_equal(y, x * grad)                                 # equal up to the sign of zeros


def test_p_zero_copies_p_one_zeroes_and_byte_swapped_input():
    x = data((8, 8), np.float32)
    darr = da.from_array(x, chunks=3)
    assert same_bits(fdd.dropout(darr, 0.0, seed=1).compute(), x)
    assert same_bits(fdd.dropout(darr, 1.0, seed=1).compute(), np.zeros_like(x))
    swapped = fdd.dropout(da.from_array(x.astype(">f4"), chunks=3), 0.5, seed=1)
    assert swapped.dtype == np.float32 and same_bits(swapped.compute(), fd.dropout(x, 0.5, seed=1))


@pytest.mark.parametrize("data_format,shape", [("channels_first", (4, 6, 5, 5)), ("channels_last", (4, 5, 5, 6)),
                                               ("channels_first", (3, 4, 7)), ("channels_last", (2, 3, 3, 3, 4))])
def test_spatial_dropout_equals_in_memory(backend, data_format, shape):
    x = data(shape, np.float32) + 5.0                         # no zeros in the input
    got = fdd.spatial_dropout(da.from_array(x, chunks=2), 0.5, seed=6, data_format=data_format).compute()
    assert same_bits(got, fd.spatial_dropout(x, 0.5, seed=6, data_format=data_format))
    maps = np.moveaxis(got, 1 if data_format == "channels_first" else -1, 1)
    maps = maps.reshape(maps.shape[0] * maps.shape[1], -1)   # one row per (sample, channel)
    assert set((maps == 0).all(axis=1) | (maps != 0).all(axis=1)) == {True}     # each map all or nothing
    assert 0 < (maps == 0).all(axis=1).sum() < len(maps)


@pytest.mark.parametrize("call,error,match", [
    (lambda: fdd.dropout(np.ones(4), 0.5, seed=1), TypeError,
     r"darr must be a dask.array.Array, got numpy.ndarray"),
    (lambda: fdd.dropout([1.0, 2.0], 0.5, seed=1), TypeError, r"darr must be a dask.array.Array, got builtins.list"),
    (lambda: fdd.dropout(da.ones(4, dtype=np.int32), 0.5, seed=1), TypeError,
     r"darr must have dtype float16, bfloat16, float32 or float64, got dtype int32"),
    (lambda: fdd.dropout(da.ones((4, 6), chunks=2), 0.5, seed=1, noise_shape=(4, 3)), ValueError,
     r"noise_shape=\(4, 3\) cannot broadcast with darr of shape \(4, 6\) and chunks \(\(2, 2\), \(2, 2, 2\)\): "
     r"noise_shape\[1\] must be 1, None or x.shape\[1\]=6"),
    (lambda: fdd.dropout(da.ones((4, 6)), 0.5, seed=1, noise_shape=(4,)), ValueError,
     r"noise_shape=\(4,\) cannot broadcast with darr of shape \(4, 6\)"),
    (lambda: fdd.dropout(da.ones(6)[da.ones(6) > 0], 0.5, seed=1), ValueError,
     r"darr has unknown chunk sizes \(shape \(nan,\)\).*compute_chunk_sizes"),
    (lambda: fdd.dropout(da.ones(4), 1.5, seed=1), ValueError, r"p must be a real number in \[0, 1\], got 1.5"),
    (lambda: fdd.dropout(da.ones((4, 6)), np.full(4, 0.5), seed=1), ValueError,
     r"p of shape \(4,\) cannot broadcast to the noise shape \(4, 6\)"),
    (lambda: fdd.dropout(da.ones((4, 6)), da.ones(4) / 2, seed=1), ValueError,
     r"p of shape \(4,\) cannot broadcast to the noise shape \(4, 6\)"),
    (lambda: fdd.dropout(da.ones((4, 6)), da.ones(6, dtype=bool), seed=1), ValueError,
     r"p must be a real number in \[0, 1\] or an array of them, got an array of dtype bool"),
    (lambda: fdd.dropout(da.ones(4), 0.5, seed="x"), TypeError,
     r"seed must be None, an int, or a numpy.random Generator, BitGenerator or SeedSequence, got str 'x'"),
    (lambda: fdd.dropout(da.ones(4), 0.5, seed=-1), ValueError, r"seed must be in \[0, 2\*\*64\), got -1"),
    (lambda: fdd.dropout(da.ones(4), 0.5, seed=1, offset=-3), ValueError, r"offset must be an integer in .* got -3"),
    (lambda: fdd.spatial_dropout(np.ones((2, 2, 2)), 0.5, seed=1), TypeError, r"darr must be a dask.array.Array"),
    (lambda: fdd.spatial_dropout(da.ones((2, 2)), 0.5, seed=1), ValueError,
     r"spatial_dropout expects input of rank >= 3 \(N, C, \*spatial\), got shape \(2, 2\)"),
    (lambda: fdd.spatial_dropout(da.ones((2, 2, 2)), 0.5, seed=1, data_format="NCHW"), ValueError,
     r"data_format must be 'channels_first' or 'channels_last', got 'NCHW'"),
])
def test_bad_input_is_named_on_call(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_dask_rates_out_of_range_raise_when_computed():
    lazy = fdd.dropout(da.ones((4, 6), chunks=2), da.full(6, 1.5, chunks=3), seed=1)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5 in p"):
        lazy.compute(scheduler="sync")


def test_distributed_cluster_matches_in_memory_on_the_compiled_backend():
    psutil = pytest.importorskip("psutil")
    distributed = pytest.importorskip("distributed")
    x = data((240, 130, 3), np.float32, seed=5)
    darr = da.from_array(x, chunks=(50, 40, 3))
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        workers = [psutil.Process(pid) for pid in client.run(os.getpid).values()]
        backends = client.run(lambda: fd.backend())
        addresses = sorted(backends)
        with distributed.get_task_stream(client) as stream:
            lazy = fdd.dropout(darr, 0.3, seed=2024, noise_shape=(None, None, 1))
            # Each half on its own worker, so both surely run chunks whatever the load.
            halves = [client.compute(lazy[:100], workers=[addresses[0]], allow_other_workers=False),
                      client.compute(lazy[100:], workers=[addresses[1]], allow_other_workers=False)]
            got = np.concatenate([h.result() for h in halves])
            spatial = fdd.spatial_dropout(darr.reshape(240, 130, 3, 1), 0.5, seed=1).compute()
        ran_dropout_on = {task["worker"] for task in stream.data if task["key"][0].startswith("fastdrop-dropout")}
    assert len({w.pid for w in workers}) == 2 and os.getpid() not in {w.pid for w in workers}
    forced = os.environ.get("FASTDROP_BACKEND", "").strip().lower()       # the workers inherit it
    expected_backend = forced or ("cython" if _backend.compiled_available() else "numpy")
    assert list(backends.values()) == [expected_backend] * 2
    assert ran_dropout_on == set(backends)                      # both workers did part of the work
    assert same_bits(got, fd.dropout(x, 0.3, seed=2024, noise_shape=(None, None, 1)))
    assert same_bits(spatial, fd.spatial_dropout(x.reshape(240, 130, 3, 1), 0.5, seed=1))
    _, alive = psutil.wait_procs(workers, timeout=120)     # the worker processes ended with the cluster
    assert alive == []


def test_out_of_core_zarr_example_quick(tmp_path):
    pytest.importorskip("zarr")
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "dask_zarr_out_of_core.py"), "--quick",
                          "--dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "verified" in run.stdout and "identical to in-memory" in run.stdout


@pytest.mark.parametrize("x", [np.float32(3.0), np.zeros((0, 5)), np.ones((1, 1, 1), np.float16)],
                         ids=["0-d", "empty", "single"])
def test_degenerate_shapes(x):
    darr = da.from_array(x, chunks=2)
    got = fdd.dropout(darr, 0.5, seed=3).compute()
    assert same_bits(np.asarray(got), fd.dropout(x, 0.5, seed=3))


@pytest.mark.parametrize("p", [np.full(7, 0.3), 1.5, "0.3"])
def test_a_call_that_raises_leaves_a_generator_seed_as_it_was(p):
    g = np.random.default_rng(5)
    before = g.bit_generator.state
    with pytest.raises((TypeError, ValueError)):
        fdd.dropout(da.ones((4, 6), chunks=2), p, seed=g)
    assert g.bit_generator.state == before
