"""Chunked dropout on Dask's threaded scheduler against ``np.multiply`` on the same chunks,
and the box entry point against ``fd.dropout`` of an array of the box's size.

    python -m pytest bench/test_bench_dask.py --benchmark-group-by=group

The 2 GiB and 2-worker-cluster figures of the README come from bench/dask_throughput.py.
"""
import numpy as np
import pytest

import fastdrop as fd

da = pytest.importorskip("dask.array")
fdd = pytest.importorskip("fastdrop.dask")

SHAPE = (4096, 4096)                       # float32, 64 MiB
LAYOUTS = {"rows": (512, 4096), "tiles": (1024, 2048)}     # 8 MiB chunks


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).random(SHAPE, dtype=np.float32)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("operation", ["np.multiply", "fastdrop.dask.dropout"])
def test_chunked_threads(benchmark, x, layout, operation):
    benchmark.group = f"dask threads, 64 MiB float32 in 8 MiB {layout}"
    darr = da.from_array(x, chunks=LAYOUTS[layout])
    if operation == "np.multiply":
        lazy = da.map_blocks(np.multiply, darr, np.float32(2.0), dtype=darr.dtype)
    else:
        lazy = fdd.dropout(darr, 0.5, seed=1)
    result = benchmark(lambda: lazy.persist(scheduler="threads"))
    assert result.shape == SHAPE


@pytest.mark.parametrize("case", ["fd.dropout", "dropout_box tile", "dropout_box short runs"])
def test_box_against_in_memory(benchmark, x, case):
    benchmark.group = "one 16 MiB box against fd.dropout of the same size"
    box = x[:1024]
    out = np.empty_like(box)
    if case == "fd.dropout":
        run = lambda: fd.dropout(box, 0.5, seed=1, out=out)  # noqa: E731
    elif case == "dropout_box tile":          # runs of 4096: the fused kernel once per run
        run = lambda: fd.dropout_box(box, 0.5, seed=1, global_shape=(8192, 32768), origin=(2048, 4096),  # noqa: E731
                                     out=out)
    else:                                     # runs of 64: the mask built in one call, then applied
        small = box.reshape(65536, 64)
        run = lambda: fd.dropout_box(small, 0.5, seed=1, global_shape=(65536, 1024), origin=(0, 64),  # noqa: E731
                                     out=out.reshape(65536, 64))
    benchmark(run)
    assert np.count_nonzero(out) > 0
