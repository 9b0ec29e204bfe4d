"""Streaming (non-temporal) stores: the threshold, its checks, and the same bits either way.

The compiled kernels write outputs of at least ``get_streaming_threshold()`` bytes with
streaming stores (the unaligned head of each segment with ordinary ones, every thread
fenced).  tests/test_isa.py runs all kernel cases on every ISA variant with the threshold
at 0; here the API, the environment variable and unaligned outputs in this process.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastdrop as fd
from fastdrop import _backend

compiled = pytest.mark.skipif(not _backend.compiled_available(), reason="the compiled extension is not built")


@pytest.fixture
def threshold():
    before = fd.get_streaming_threshold()
    yield
    fd.set_streaming_threshold(before)


def test_default_is_half_the_last_level_cache(threshold):
    fd.set_streaming_threshold(None)
    cache = _backend.last_level_cache_bytes()
    expected = cache // 2 if cache else _backend.STREAMING_FALLBACK_BYTES
    assert fd.get_streaming_threshold() == expected


@compiled
def test_the_compiled_kernels_follow_the_setting(threshold):
    import fastdrop._kernels as kernels
    fd.set_streaming_threshold(12345)
    assert fd.get_streaming_threshold() == 12345 == kernels.streaming_threshold()
    fd.set_streaming_threshold(np.int64(0))
    assert fd.get_streaming_threshold() == 0 == kernels.streaming_threshold()


@pytest.mark.parametrize("value, exc, message", [
    (-1, ValueError, "nbytes must be an integer in [0, 9223372036854775807], got -1"),
    (1 << 63, ValueError, f"nbytes must be an integer in [0, 9223372036854775807], got {1 << 63}"),
    (1.5, TypeError, "nbytes must be an integer in [0, 9223372036854775807], got float 1.5"),
    (True, TypeError, "nbytes must be an integer in [0, 9223372036854775807], got bool True"),
    ("64M", TypeError, "nbytes must be an integer in [0, 9223372036854775807], got str '64M'"),
])
def test_bad_thresholds_are_refused_and_change_nothing(threshold, value, exc, message):
    before = fd.get_streaming_threshold()
    with pytest.raises(exc) as info:
        fd.set_streaming_threshold(value)
    assert str(info.value) == message
    assert fd.get_streaming_threshold() == before


def _import_with(value):
    return subprocess.run([sys.executable, "-c", "import fastdrop; print(fastdrop.get_streaming_threshold())"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FASTDROP_STREAMING_THRESHOLD": value})


def test_the_environment_variable_sets_it():
    r = _import_with(" 4096 ")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "4096"


@pytest.mark.parametrize("value", ["-5", "1.5", "64M", "+7", str(1 << 63)])
def test_a_bad_environment_variable_is_an_error_naming_it(value):
    r = _import_with(value)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: ") and "FASTDROP_STREAMING_THRESHOLD" in last and repr(value) in last


def test_cache_size_read_from_sys(tmp_path, monkeypatch):
    for index, size in (("index0", "48K"), ("index2", "1280K"), ("index3", "49152K")):
        (tmp_path / index).mkdir()
        (tmp_path / index / "size").write_text(size + "\n")
    (tmp_path / "uevent").write_text("")
    monkeypatch.setattr(_backend, "_CACHE_DIR", str(tmp_path))
    assert _backend.last_level_cache_bytes() == 49152 << 10
    assert _backend.default_streaming_threshold() == 24576 << 10
    monkeypatch.setattr(_backend, "_CACHE_DIR", str(tmp_path / "missing"))
    assert _backend.last_level_cache_bytes() is None
    assert _backend.default_streaming_threshold() == _backend.STREAMING_FALLBACK_BYTES


def _calls(x, out):
    """Every kernel that writes a full output, into ``out`` (a view of any alignment)."""
    rows = x.reshape(8, -1)
    x4 = x.reshape(4, 8, 16, -1)
    return {
        "dropout": lambda: fd.dropout(x, 0.3, seed=2, offset=5, out=out),
        "per-feature": lambda: fd.dropout(rows, np.linspace(0, 0.9, rows.shape[1]), seed=2,
                                          out=out.reshape(rows.shape)),
        "alpha": lambda: fd.alpha_dropout(x, 0.3, seed=2, out=out),
        "variational": lambda: fd.variational_dropout(x4.reshape(4, 8, -1), 0.3, seed=2,
                                                      out=out.reshape(4, 8, -1)),
        "spatial": lambda: fd.spatial_dropout(x4, 0.3, seed=2, out=out.reshape(x4.shape)),
        "dropblock": lambda: fd.dropblock2d(x4, 0.2, 3, seed=2, out=out.reshape(x4.shape)),
        "apply-mask": lambda: fd.apply_mask(x, fd.dropout_mask(x.shape, 0.4, seed=1), 0.4, out=out),
    }


@compiled
@pytest.mark.parametrize("shift", [0, 1, 3])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_streamed_outputs_at_any_alignment_are_the_numpy_backends_bits(threshold, dtype, shift):
    n = 4 * 8 * 16 * 2049                 # odd rows (segments end off vector boundaries), > the threads threshold
    x = np.random.default_rng(3).standard_normal(n).astype(dtype)
    expected = {}
    with fd.use_backend("numpy"):
        for name, call in _calls(x, np.empty_like(x)).items():
            expected[name] = np.array(call()).reshape(-1)
    buffer = np.zeros(n + 8, dtype)
    out = buffer[shift:shift + n]         # element-aligned, not vector-aligned
    for threads in (1, 2):
        for nbytes in (0, 1 << 62):
            fd.set_streaming_threshold(nbytes)
            with fd.use_num_threads(threads):
                for name, call in _calls(x, out).items():
                    out[...] = 0
                    call()
                    assert np.array_equal(out.view(f"u{x.itemsize}"), expected[name].view(f"u{x.itemsize}")), \
                        (name, threads, nbytes)
    assert not buffer[:shift].any() and not buffer[shift + n:].any()      # nothing written outside out


@compiled
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_one_rate_runs_at_every_offset_length_and_alignment_are_the_numpy_backends_bits(threshold, dtype):
    """The one-rate walk aligns its vectors to the output and carries decisions across
    groups (256) and blocks (1024): runs starting anywhere in a group or block, shorter or
    longer than a vector, a group or a block, into outputs shifted by 0-17 elements."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(6000).astype(dtype)
    buffer = np.zeros(6000 + 32, dtype)
    for offset in (0, 1, 250, 255, 256 + 13, 1023, 5 * 1024 + 1000):
        for n in (1, 7, 31, 33, 257, 1024 + 5, 5000):
            with fd.use_backend("numpy"):
                expected = fd.dropout(x[:n], 0.3, seed=9, offset=offset)
            for shift in (0, 1, 3, 7, 8, 17):
                out = buffer[shift:shift + n]
                for nbytes in (0, 1 << 62):
                    fd.set_streaming_threshold(nbytes)
                    buffer[...] = 0
                    fd.dropout(x[:n], 0.3, seed=9, offset=offset, out=out)
                    assert np.array_equal(out.view(f"u{x.itemsize}"), expected.view(f"u{x.itemsize}")), \
                        (offset, n, shift, nbytes)
                    assert not buffer[:shift].any() and not buffer[shift + n:].any()


@compiled
@pytest.mark.parametrize("threads", [2, 3])
def test_one_rate_runs_split_between_threads_are_the_numpy_backends_bits(threshold, threads):
    """Each thread walks its own span of whole blocks: spans that start with a partial
    vector and end with one, at an offset inside a block, streamed or not."""
    n = 300 * 1024 + 77                        # past the parallel threshold (256 blocks)
    x = np.random.default_rng(6).standard_normal(n).astype(np.float32)
    with fd.use_backend("numpy"):
        expected = fd.dropout(x, 0.4, seed=11, offset=517)
    buffer = np.zeros(n + 8, np.float32)
    out = buffer[3:3 + n]
    for nbytes in (0, 1 << 62):
        fd.set_streaming_threshold(nbytes)
        out[...] = 0
        with fd.use_num_threads(threads):
            fd.dropout(x, 0.4, seed=11, offset=517, out=out)
        assert np.array_equal(out.view(np.uint32), expected.view(np.uint32)), nbytes


@compiled
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_streamed_masks_with_rows_of_any_length_and_alignment_are_the_numpy_backends_bits(threshold, dtype):
    """A streamed apply_rows (a given mask, or one decision per row) stores each row's
    unaligned head with ordinary stores: rows shorter and longer than a vector and than 4 KB,
    outputs shifted by 0-17 elements, with nothing written outside the output."""
    import ml_dtypes
    dtype = np.dtype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    rng = np.random.default_rng(8)
    for shape in ((3, 5, 1), (7, 3, 333), (2, 2, 2049), (1, 3, 5000)):
        x = rng.standard_normal(shape).astype(dtype)
        n = x.size
        buffer = np.zeros(n + 32, dtype)
        calls = {
            "row-mask": lambda out: fd.dropout(x, 0.4, seed=3, noise_shape=shape[:2] + (1,), out=out),
            "given-mask": lambda out: fd.apply_mask(x, fd.dropout_mask(shape, 0.4, seed=3), 0.4, out=out),
            "rates": lambda out: fd.apply_mask(x, fd.dropout_mask((1, shape[1], shape[2]), 0.4, seed=3),
                                               np.linspace(0, 0.9, shape[2]), out=out),
        }
        for name, call in calls.items():
            with fd.use_backend("numpy"):
                expected = call(np.empty(shape, dtype))
            for shift in (0, 1, 3, 8, 17):
                out = buffer[shift:shift + n].reshape(shape)
                for nbytes in (0, 1 << 62):
                    fd.set_streaming_threshold(nbytes)
                    buffer[...] = 0
                    call(out)
                    assert np.array_equal(out.view(f"u{dtype.itemsize}"), expected.view(f"u{dtype.itemsize}")), \
                        (shape, name, shift, nbytes)
                    assert not buffer.view(f"u{dtype.itemsize}")[:shift].any()
                    assert not buffer.view(f"u{dtype.itemsize}")[shift + n:].any()


@compiled
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_streamed_dropout_add_at_any_alignment_offset_and_row_length_is_the_numpy_backends_bits(threshold, dtype):
    """dropout_add's streaming walk (float32 and float64; float16 keeps ordinary stores,
    bench/NOTES.md) follows out's alignment across groups, blocks and the rows
    of a per-feature bias or rate, where a vector across a row's end is made in a buffer and
    streamed whole: rows shorter and longer than a vector, runs starting inside a group or a
    block, outputs shifted by 0-17 elements, one thread and two (the last shape is past the
    threads threshold), in place on x, and nothing written outside the output."""
    rng = np.random.default_rng(12)
    for shape in ((5, 3), (9, 37), (4, 1027), (300, 1031)):
        x = rng.standard_normal(shape).astype(dtype)
        residual = rng.standard_normal(shape).astype(dtype)
        bias = np.linspace(-1, 1, shape[1]).astype(dtype)
        calls = {"plain": {"p": 0.3}, "feature-bias": {"p": 0.3, "bias": bias},
                 "scalar-bias": {"p": 0.3, "bias": dtype(0.5)},
                 "rates-and-bias": {"p": np.linspace(0, 0.9, shape[1]), "bias": bias}}
        buffer = np.zeros(x.size + 32, dtype)
        for offset in (0, 13, 1023):
            for name, kw in calls.items():
                with fd.use_backend("numpy"):
                    expected = fd.dropout_add(x, residual, seed=4, offset=offset, **kw)
                for shift in (0, 1, 3, 17):
                    out = buffer[shift:shift + x.size].reshape(shape)
                    for threads in (1, 2):
                        fd.set_streaming_threshold(0)
                        buffer[...] = 0
                        with fd.use_num_threads(threads):
                            fd.dropout_add(x, residual, seed=4, offset=offset, out=out, **kw)
                        assert np.array_equal(out.view(f"u{x.itemsize}"), expected.view(f"u{x.itemsize}")), \
                            (shape, offset, name, shift, threads)
                        assert not buffer[:shift].any() and not buffer[shift + x.size:].any()
        in_place = x.copy()
        fd.dropout_add(in_place, residual, 0.3, bias=bias, seed=4, out=in_place)
        with fd.use_backend("numpy"):
            expected = fd.dropout_add(x, residual, 0.3, bias=bias, seed=4)
        assert np.array_equal(in_place.view(f"u{x.itemsize}"), expected.view(f"u{x.itemsize}")), shape
