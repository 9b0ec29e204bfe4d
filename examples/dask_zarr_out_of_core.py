"""Out-of-core dropout: a float32 array on disk (zarr), dropped out chunk by chunk with Dask.

The array is several times larger than one chunk and is never held in memory whole:
Dask streams chunks from the input store through ``fastdrop.dask.dropout`` into an
output store.  A random sample of chunks is then checked, bit for bit, against the
in-memory functional API: each row of a chunk must equal ``fd.dropout(row, p, seed=seed,
offset=<the row's flat index in the whole array>)``, which is what ``fd.dropout`` of the
whole array gives there.

    python examples/dask_zarr_out_of_core.py            # 256 MiB array in 8 MiB chunks
    python examples/dask_zarr_out_of_core.py --quick    # a small array, also checked whole

Needs ``pip install "fastdrop[dask]"``.
"""
import argparse
import os
import sys
import tempfile
import time

import dask
import dask.array as da
import numpy as np
import zarr

import fastdrop as fd
import fastdrop.dask as fdd
from fastdrop import _cli_args


def layout(quick):
    """(array shape, chunk shape) of the run."""
    return ((512, 384), (128, 96)) if quick else ((4096, 16384), (1024, 2048))


def n_chunks(quick):
    shape, chunks = layout(quick)
    return int(np.prod([n // c for n, c in zip(shape, chunks)]))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 0.75 MiB array in 16 chunks (for tests)")
    parser.add_argument("--dir", type=_cli_args.output_dir,
                        help="directory for the zarr stores (default: a temporary one, removed after)")
    parser.add_argument("--p", type=_cli_args.rate, default=0.3, help="drop rate (default 0.3)")
    parser.add_argument("--seed", type=_cli_args.seed, default=2024, help="the seed every chunk shares (default 2024)")
    parser.add_argument("--sample", type=_cli_args.positive, default=6,
                        help=f"chunks verified against in-memory (default 6; the array has {n_chunks(False)}, "
                             f"{n_chunks(True)} with --quick)")
    args = parser.parse_args(argv)
    if args.sample > n_chunks(args.quick):
        parser.error(f"argument --sample: must be at most the {n_chunks(args.quick)} chunks of the array, "
                     f"got {args.sample}")
    return args


def write_input(path, shape, chunks, seed):
    """Standard normals written to disk chunk by chunk (never materialized whole)."""
    source = da.random.default_rng(seed).standard_normal(shape, chunks=chunks, dtype=np.float32)
    source.to_zarr(path, overwrite=True)


def verify_chunk(source, result, region, p, seed):
    """True when every row of the chunk equals the in-memory dropout of that row at its global offset."""
    rows, cols = region
    block_in, block_out = source[rows, cols], result[rows, cols]
    for i, row in enumerate(range(rows.start, rows.stop)):
        expected = fd.dropout(block_in[i], p, seed=seed, offset=row * source.shape[1] + cols.start)
        if expected.tobytes() != block_out[i].tobytes():
            return False
    return True


def run(directory, args):
    shape, chunks = layout(args.quick)
    in_path, out_path = os.path.join(directory, "input.zarr"), os.path.join(directory, "dropped.zarr")
    write_input(in_path, shape, chunks, seed=1)
    source = zarr.open_array(in_path, mode="r")
    nbytes, chunk_bytes = source.nbytes, int(np.prod(chunks)) * 4
    print(f"input: {shape} float32 ({nbytes / 2**20:.2f} MiB) stored with zarr in {in_path}, "
          f"chunks {chunks} = {chunk_bytes / 2**20:.2f} MiB ({nbytes // chunk_bytes} chunks)")

    start = time.perf_counter()
    lazy = fdd.dropout(da.from_zarr(in_path), args.p, seed=args.seed)
    lazy.to_zarr(out_path, overwrite=True)            # computes chunk by chunk, writes each one back
    seconds = time.perf_counter() - start
    print(f"dropout p={args.p} seed={args.seed}: read, dropped out and written in {seconds:.2f} s "
          f"({nbytes / 2**20 / seconds:.0f} MiB/s, backend {fd.backend()})")

    result = zarr.open_array(out_path, mode="r")
    grid = [range(0, n, c) for n, c in zip(shape, chunks)]
    every_chunk = [(slice(r, r + chunks[0]), slice(c, c + chunks[1])) for r in grid[0] for c in grid[1]]
    rng = np.random.default_rng(0)
    sample = [every_chunk[i] for i in rng.choice(len(every_chunk), args.sample, replace=False)]
    good = sum(verify_chunk(source, result, region, args.p, args.seed) for region in sample)
    print(f"verified {good} of {len(sample)} sampled chunks: "
          f"{'identical to in-memory fd.dropout' if good == len(sample) else 'MISMATCH'}")
    ok = good == len(sample)
    if args.quick:
        whole = fd.dropout(source[...], args.p, seed=args.seed)
        same = whole.tobytes() == result[...].tobytes()
        print(f"quick mode, whole array: {'identical to in-memory' if same else 'MISMATCH with'} fd.dropout")
        ok = ok and same
    return ok


def main(argv=None):
    args = parse_args(argv)
    dask.config.set(scheduler="threads")
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
        return 0 if run(args.dir, args) else 1
    with tempfile.TemporaryDirectory(prefix="fastdrop-zarr-") as directory:
        return 0 if run(directory, args) else 1


if __name__ == "__main__":
    sys.exit(main())
