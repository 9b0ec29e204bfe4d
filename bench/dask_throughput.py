"""Throughput of ``fastdrop.dask.dropout`` against ``np.multiply`` on the same chunks.

    python bench/dask_throughput.py                  # 2 GiB float32, threaded + 2-worker cluster
    python bench/dask_throughput.py --gib 0.25 --repeat 1

The input is generated and persisted first (in this process for the threaded scheduler,
on the workers for the cluster), so each timing is one pass over persisted chunks whose
output is persisted too: ``np.multiply(chunk, 2)`` is the floor any chunked elementwise
operation pays (read one array, write one).  Two chunk layouts: whole rows (each chunk
is one contiguous run of the array, the fused one-pass kernel) and square tiles (one run
per tile row: mask rows, then apply).  Prints a Markdown table; best of ``--repeat``.
"""
import argparse
import sys
import time

import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, wait

import fastdrop as fd
import fastdrop.dask as fdd
from fastdrop import _cli_args

CHUNK_MIB = 64


def layouts(gib):
    """(name, shape, chunks) of a float32 array of ``gib`` GiB in 64 MiB chunks."""
    width = 32768
    rows = int(gib * 2**30) // (4 * width)
    chunk_rows = CHUNK_MIB * 2**20 // (4 * width)
    tile = int(np.sqrt(CHUNK_MIB * 2**20 // 4))
    return [("rows", (rows, width), (chunk_rows, width)), ("tiles", (rows, width), (tile, tile))]


# Run ``i`` gets its own constant or seed: a cluster would otherwise hand back results it
# still holds under the same task names instead of computing them again.
OPERATIONS = {
    "np.multiply": lambda x, i: da.map_blocks(np.multiply, x, np.float32(2.0 + i), dtype=x.dtype),
    "fastdrop.dask.dropout": lambda x, i: fdd.dropout(x, 0.5, seed=i),
}


def best_time(run, repeat):
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - start)
    return min(times)


def measure(scheduler, persist, repeat, gib):
    """Rows of (scheduler, layout, operation, seconds, GiB/s)."""
    rows = []
    for layout, shape, chunks in layouts(gib):
        x = persist(da.random.default_rng(0).random(shape, dtype=np.float32, chunks=chunks))
        for name, operation in OPERATIONS.items():
            seconds = best_time(lambda i: persist(operation(x, i)), repeat)
            rows.append((scheduler, layout, chunks, name, seconds, x.nbytes / 2**30 / seconds))
        del x
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=_cli_args.real(CHUNK_MIB / 1024), default=2.0,
                        help=f"array size in GiB, at least one {CHUNK_MIB} MiB chunk (default 2)")
    parser.add_argument("--repeat", type=_cli_args.positive, default=3, help="timings per case, best kept (default 3)")
    parser.add_argument("--skip-cluster", action="store_true", help="threaded scheduler only")
    args = parser.parse_args(argv)

    results = []
    with dask.config.set(scheduler="threads"):
        results += measure("threads", lambda a: a.persist(), args.repeat, args.gib)
    if not args.skip_cluster:
        with LocalCluster(processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            worker_backends = sorted(set(client.run(lambda: fd.backend()).values()))

            def on_workers(a):
                persisted = client.persist(a)
                wait(persisted)
                return persisted
            results += measure("2-worker cluster", on_workers, args.repeat, args.gib)
        print(f"workers' backend: {', '.join(worker_backends)}")
    print(f"fastdrop {fd.__version__}, backend {fd.backend()}, isa {fd.info()['isa']}, "
          f"{args.gib:g} GiB float32, 64 MiB chunks, p=0.5, best of {args.repeat}\n")
    print("| scheduler | chunks | operation | seconds | GiB/s |")
    print("|---|---|---|---|---|")
    for scheduler, layout, chunks, name, seconds, rate in results:
        print(f"| {scheduler} | {layout} {chunks} | `{name}` | {seconds:.2f} | {rate:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
