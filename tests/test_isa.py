"""Every ISA variant of the compiled kernels gives the bits of the NumPy backend, and the
variant table of ``_isa.py`` matches the build and the CPU checks.

Each variant this machine can execute runs in its own interpreter (``FASTDROP_ISA`` is
read at import), computes a fixed set of cases and saves them; the parent computes the
same cases on the NumPy backend and compares bit patterns.  float16 and bfloat16 cases
cover every one of the 65536 bit patterns of each (subnormals, inf, NaN) under scales that
round, overflow and stay exact.
"""
import os
import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest

import fastdrop
from fastdrop import _backend, _isa, _kernel_args

pytestmark = pytest.mark.skipif(not _backend.compiled_available(), reason="the compiled extension is not built")

ALL_HALVES = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
BFLOAT16 = ml_dtypes.bfloat16
ALL_BFLOATS = np.arange(1 << 16, dtype=np.uint16).view(BFLOAT16)
THREAD_CASE_SIZE = 700_001           # > the kernels' parallel threshold, not a whole number of blocks


def _cases():
    """(name, thunk) pairs; each thunk returns an array computed by the active backend."""
    rng = np.random.default_rng(2024)
    cases = []
    for dtype in (np.float16, np.float32, np.float64):       # sizes and offsets hit every vector tail
        for n, offset in ((1, 0), (17, 5), (1023, 1), (1024, 0), (5000, 1021), (70_001, 123_457)):
            x = (rng.standard_normal(n) * 1e3).astype(dtype)
            x[: min(n, 4)] = [np.inf, -np.nan, -0.0, np.finfo(dtype).smallest_subnormal][: min(n, 4)]
            for p in (0.5, 0.1, 0.999, 1e-6):
                cases.append((f"{np.dtype(dtype).name}-n{n}-o{offset}-p{p}",
                              lambda x=x, p=p, o=offset: fastdrop.dropout(x, p, seed=11, offset=o)))
    for p in (0.5, 0.3, 0.9, 0.999, 0.9999):   # scales 2, 1.43 (rounds), 10, 1000, 10000 (overflows)
        for seed in (1, 2):
            cases.append((f"float16-all-p{p}-s{seed}", lambda p=p, s=seed: fastdrop.dropout(ALL_HALVES, p, seed=s)))
        cases.append((f"float16-rows-p{p}", lambda p=p: fastdrop.dropout(
            ALL_HALVES.reshape(64, 1024), p, seed=3, noise_shape=(64, 1))))
    x4 = rng.standard_normal((4, 8, 9, 33)).astype(np.float32)
    cases.append(("spatial", lambda: fastdrop.dropout(x4, 0.25, seed=5, noise_shape=(4, 8, 1, 1))))
    cases.append(("per-feature-p", lambda: fastdrop.dropout(x4, np.linspace(0, 1, 33), seed=5)))
    cases.append(("mask", lambda: fastdrop.dropout_mask((3, 2051), 0.37, seed=9, offset=77)))
    cases.append(("packed", lambda: fastdrop.dropout_mask(10_000, 0.5, seed=9, packed=True)))
    cases.append(("apply-mask", lambda: fastdrop.apply_mask(
        x4, fastdrop.dropout_mask(x4.shape, 0.6, seed=1, packed=True), 0.6)))
    cases.append(("apply-mask-float16", lambda: fastdrop.apply_mask(
        ALL_HALVES[5:], fastdrop.dropout_mask(ALL_HALVES.size - 5, 0.3, seed=2), 0.3)))
    cases.append(("per-element-p-float16", lambda: fastdrop.dropout(
        ALL_HALVES[:3000], np.linspace(0, 0.999, 3000), seed=2)))
    for dtype in (np.float16, np.float32, np.float64):     # rates read in place: rows, broadcast axes, tails
        xr = (rng.standard_normal((37, 3, 77)) * 1e3).astype(dtype)
        name = np.dtype(dtype).name
        cases.append((f"{name}-rates-feature", lambda x=xr: fastdrop.dropout(x, np.linspace(0, 1, 77), seed=6,
                                                                            offset=999)))
        cases.append((f"{name}-rates-row", lambda x=xr: fastdrop.dropout(x, np.linspace(0, 1, 37)[:, None, None],
                                                                        seed=6)))
        cases.append((f"{name}-rates-middle", lambda x=xr: fastdrop.dropout(x, np.array([0.2, 0.5, 0.9])[:, None],
                                                                           seed=6)))
        cases.append((f"{name}-rates-shared", lambda x=xr: fastdrop.dropout(x, np.linspace(0, 1, 77), seed=6,
                                                                           noise_shape=(1, None, None))))
        cases.append((f"{name}-rates-box", lambda x=xr: fastdrop.dropout_box(
            x[5:30, 1:, 10:70], np.linspace(0, 1, 77), seed=6, global_shape=x.shape, origin=(5, 1, 10))))
        cases.append((f"{name}-apply-mask-rates", lambda x=xr: fastdrop.apply_mask(
            x, fastdrop.dropout_mask((37, 1, 77), 0.5, seed=2), np.linspace(0, 1, 77))))
    cases.append(("mask-rates", lambda: fastdrop.dropout_mask((5, 2051), np.linspace(0, 1, 2051), seed=9, offset=3)))
    cases.append(("words", lambda: _backend.kernels().fill_words(7, 1000, np.empty(3000, dtype=np.uint64))))
    cases.extend(_family_cases(rng))
    cases.extend(_activity_cases(rng))
    cases.extend(_shared_mask_cases(rng))
    xt = rng.standard_normal(THREAD_CASE_SIZE).astype(np.float32)
    cases.append(("threads", lambda: fastdrop.dropout(xt, 0.5, seed=4, offset=333)))
    cases.append(("threads-rates", lambda: fastdrop.dropout(xt[:700_000].reshape(-1, 1000), np.linspace(0, 1, 1000),
                                                            seed=4, offset=333)))
    for dtype in (np.float16, np.float32, np.float64):      # Gaussian noise: odd lengths, offsets, vector tails
        for n, offset in ((1, 0), (63, 7), (257, 255), (5000, 1021)):
            xg = (rng.standard_normal(n) * 1e3).astype(dtype)
            xg[: min(n, 3)] = [np.inf, -np.nan, np.finfo(dtype).smallest_subnormal][: min(n, 3)]
            cases.append((f"{np.dtype(dtype).name}-gaussian-n{n}-o{offset}",
                          lambda x=xg, o=offset: fastdrop.gaussian_dropout(x, 0.3, seed=8, offset=o)))
            cases.append((f"{np.dtype(dtype).name}-gaussian-grad-n{n}-o{offset}",
                          lambda x=xg, o=offset: fastdrop.gaussian_dropout_grad(x, 0.3, seed=8, offset=o,
                                                                                dtype=np.float16)))
    cases.append(("gaussian-threads", lambda: fastdrop.gaussian_dropout(xt, 0.6, seed=4, offset=333)))
    cases.extend(_concrete_cases(rng, xt))
    cases.extend(_bfloat16_cases(rng))
    return cases


def _bfloat16_cases(rng):
    """bfloat16 through every kernel that takes it, each result as its uint16 bits (np.savez
    keeps no ml_dtypes dtype): all 65536 patterns under scales that round and stay exact,
    every vector tail and offset, rows, rates, given masks, shared masks, alpha, DropBlock,
    and enough elements for threads."""
    cases = []

    def add(name, f):
        cases.append((f"bfloat16-{name}", lambda: np.asarray(f()).view(np.uint16)))

    for n, offset in ((1, 0), (17, 5), (1023, 1), (1024, 0), (5000, 1021), (THREAD_CASE_SIZE, 123_457)):
        x = ALL_BFLOATS[rng.integers(0, 1 << 16, n)]
        for p in (0.5, 0.1, 0.999):
            add(f"n{n}-o{offset}-p{p}", lambda x=x, p=p, o=offset: fastdrop.dropout(x, p, seed=11, offset=o))
            add(f"alpha-n{n}-o{offset}-p{p}", lambda x=x, p=p, o=offset: fastdrop.alpha_dropout(x, p, seed=8, offset=o))
    for p in (0.5, 1 / 3, 0.2, 0.3, 0.9, 0.999, 0.9999):     # scales 1.5 and 1.25: products that tie
        add(f"all-p{p}", lambda p=p: fastdrop.dropout(ALL_BFLOATS, p, seed=1))
        add(f"rows-p{p}", lambda p=p: fastdrop.dropout(ALL_BFLOATS.reshape(64, 1024), p, seed=3, noise_shape=(64, 1)))
    add("alpha-all", lambda: fastdrop.alpha_dropout(ALL_BFLOATS, 0.3, seed=2))
    add("apply-mask", lambda: fastdrop.apply_mask(ALL_BFLOATS[5:], fastdrop.dropout_mask(ALL_BFLOATS.size - 5, 0.3,
                                                                                          seed=2), 0.3))
    add("per-element-p", lambda: fastdrop.dropout(ALL_BFLOATS[:3000], np.linspace(0, 0.999, 3000), seed=2))
    xr = ALL_BFLOATS[rng.integers(0, 1 << 16, 37 * 3 * 77)].reshape(37, 3, 77)
    add("rates-feature", lambda: fastdrop.dropout(xr, np.linspace(0, 1, 77), seed=6, offset=999))
    add("rates-row", lambda: fastdrop.dropout(xr, np.linspace(0, 1, 37)[:, None, None], seed=6))
    add("rates-middle", lambda: fastdrop.dropout(xr, np.array([0.2, 0.5, 0.9])[:, None], seed=6))
    add("rates-shared", lambda: fastdrop.dropout(xr, np.linspace(0, 1, 77), seed=6, noise_shape=(1, None, None)))
    add("apply-mask-rates", lambda: fastdrop.apply_mask(xr, fastdrop.dropout_mask((37, 1, 77), 0.5, seed=2),
                                                        np.linspace(0, 1, 77)))
    add("variational-all", lambda: fastdrop.variational_dropout(ALL_BFLOATS.reshape(4, 4, 4096), 0.3, seed=2))
    for shape in ((3, 5, 17), (2, 3, 2049), (5, 2, 1)):
        xv = ALL_BFLOATS[rng.integers(0, 1 << 16, int(np.prod(shape)))].reshape(shape)
        add(f"variational-{shape}", lambda x=xv: fastdrop.variational_dropout(x, 0.4, seed=12, time_axis=1,
                                                                              offset=1021))
    x4 = ALL_BFLOATS[rng.integers(0, 1 << 16, 3 * 4 * 5 * 19)].reshape(3, 4, 5, 19)
    add("spatial", lambda: fastdrop.spatial_dropout(x4, 0.3, seed=2))
    add("spatial-last", lambda: fastdrop.spatial_dropout(x4, 0.3, seed=2, data_format="channels_last"))
    add("dropblock", lambda: fastdrop.dropblock2d(x4, 0.3, 3, seed=3, offset=17))
    add("drop-path", lambda: fastdrop.drop_path(x4, 0.5, seed=3))
    xt = ALL_BFLOATS[rng.integers(0, 1 << 16, 8 * 40 * 3001)].reshape(8, 40, 3001)     # > the parallel threshold
    add("threads", lambda: fastdrop.dropout(xt, 0.5, seed=4, offset=333))
    add("threads-rates", lambda: fastdrop.dropout(xt, np.linspace(0, 1, 3001), seed=4))
    add("threads-variational", lambda: fastdrop.variational_dropout(xt, 0.5, seed=4, offset=333))
    add("threads-alpha", lambda: fastdrop.alpha_dropout(xt, 0.5, seed=4, offset=333))
    return cases


def _concrete_cases(rng, xt):
    """Concrete dropout forward and backward (its d/dx, and the rate gradient's partial sums
    straight from the kernel) over odd lengths, offsets inside sum blocks, mixed dtypes,
    saturated ends (logit 40 at t = 0.1, -50 at t = 0.01, t = 1e-300) and the thread split, with
    exp(a) from ln and exp and as a power (inv_t a whole number up to 128; 129 is not one)."""
    cases = []
    for dtype in (np.float16, np.float32, np.float64):
        name = np.dtype(dtype).name
        for n, offset in ((1, 0), (63, 7), (1025, 1023), (5000, 1021)):
            x = (rng.standard_normal(n) * 1e3).astype(dtype)
            x[: min(n, 3)] = [np.inf, -np.nan, np.finfo(dtype).smallest_subnormal][: min(n, 3)]
            g = rng.standard_normal(n).astype(dtype)
            for t in (0.3, 0.1):        # ln and exp; a power (inv_t 10)
                cases.append((f"concrete-{name}-n{n}-o{offset}-t{t}",
                              lambda x=x, o=offset, t=t: fastdrop.concrete_dropout(x, -1.0, temperature=t, seed=8,
                                                                                   offset=o)))
            cases.append((f"concrete-grad-{name}-n{n}-o{offset}",
                          lambda x=x, g=g, o=offset: fastdrop.concrete_dropout_grad(x, g, 0.7, seed=8, offset=o)[0]))
            for logit, inv_t in ((-1.0, 1 / 0.3), (-1.0, 10.0), (0.5, 128.0), (0.5, 129.0), (40.0, 10.0),
                                 (-50.0, 100.0), (0.0, 3e38)):
                cases.append((f"concrete-partials-{name}-n{n}-o{offset}-l{logit}-i{inv_t}",
                              lambda x=x.astype(np.float32), g=g, o=offset, lg=logit, it=inv_t: _partials(
                                  o, lg, it, x, g)))
    for logit, t in ((40.0, 0.1), (-50.0, 0.01), (0.0, 1e-300), (2.5, 5.0)):
        cases.append((f"concrete-ends-l{logit}-t{t}", lambda lg=logit, t=t: fastdrop.concrete_dropout(
            xt[:70_001], lg, temperature=t, seed=3)))
    gt = rng.standard_normal(xt.size).astype(np.float32)
    cases.append(("concrete-threads", lambda: fastdrop.concrete_dropout(xt, -0.8, seed=4, offset=333)))
    cases.append(("concrete-grad-threads", lambda: fastdrop.concrete_dropout_grad(xt, gt, -0.8, seed=4, offset=333)[0]))
    cases.append(("concrete-grad-logit-threads", lambda: np.array(
        [fastdrop.concrete_dropout_grad(xt, gt, -0.8, seed=4, offset=333)[1]])))
    return cases


def _partials(offset, logit, inv_t, x, g):
    """The rate gradient's partial sums of the active backend's kernel (x float32, g any dtype)."""
    partials = np.empty(_kernel_args.sum_blocks(offset, g.size))
    _backend.kernels().concrete_grad_flat(1234, offset, logit, inv_t, x, g, np.empty_like(g), partials)
    return partials


def _abs_kernel(offset, x, thr=40000, scale=1.7):
    """dropout_abs_flat's output, partials and total on the active backend, side by side as
    uint64; the total without a partials array (the kernel's own scratch) must be the same."""
    partials = np.empty(_kernel_args.sum_blocks(offset, x.size))
    out = np.empty_like(x)
    total = _backend.kernels().dropout_abs_flat(77, offset, thr, scale, x, out, partials)
    scratch_out = np.empty_like(x)
    scratch_total = _backend.kernels().dropout_abs_flat(77, offset, thr, scale, x, scratch_out)
    assert scratch_out.tobytes() == out.tobytes()
    assert np.float64(scratch_total).tobytes() == np.float64(total).tobytes()
    return np.concatenate([out.view(f"u{x.itemsize}").astype(np.uint64), partials.view(np.uint64),
                           np.array([total]).view(np.uint64)])


def _activity_cases(rng):
    """AdaptiveDropout's mean |x|: the fused kernel over every lane and block head, the sums
    alone (bfloat16 too), enough blocks for threads, and a layer's rates after some steps."""
    cases = []
    for dtype in (np.float16, np.float32, np.float64):
        name = np.dtype(dtype).name
        for n, offset in ((1, 0), (17, 5), (1023, 1), (1024, 0), (5000, 1021), (THREAD_CASE_SIZE, 333)):
            x = (rng.standard_normal(n) * 1e3).astype(dtype)
            x[: min(n, 4)] = [-np.inf, np.nan, -0.0, np.finfo(dtype).smallest_subnormal][: min(n, 4)]
            finite = np.abs(x[4:]) + dtype(1)
            cases.append((f"abs-{name}-n{n}-o{offset}", lambda x=x, o=offset: _abs_kernel(o, x)))
            cases.append((f"abs-finite-{name}-n{n}-o{offset}", lambda x=finite, o=offset: _abs_kernel(o, x)))
    xb = (rng.standard_normal(5000) * 3).astype(BFLOAT16)
    cases.append(("abs-sums-bfloat16", lambda: _backend.kernels().abs_sums(1021, xb, np.empty(6))))
    xl = (rng.standard_normal((64, 3000)) * 0.6).astype(np.float32)

    def adaptive_rates():
        layer = fastdrop.AdaptiveDropout(0.5, adapt_rate=0.05, low=0.45, high=0.5, seed=3)
        rates = [layer.p]
        for step in range(6):
            layer(xl * np.float32(0.8 + 0.08 * step))
            rates.append(layer.p)
        return np.array(rates)
    cases.append(("adaptive-rates", adaptive_rates))
    return cases


def _family_cases(rng):
    """The family's fused kernels: alpha dropout over every half and vector tail, DropBlock's
    mask over odd maps, both layouts, blocks as large as the map, and enough maps for threads."""
    cases = []
    for dtype in (np.float16, np.float32, np.float64):
        name = np.dtype(dtype).name
        for n, offset in ((1, 0), (17, 5), (1023, 1), (5000, 1021), (THREAD_CASE_SIZE, 333)):
            x = (rng.standard_normal(n) * 3).astype(dtype)
            x[: min(n, 4)] = [np.inf, -np.nan, -0.0, np.finfo(dtype).smallest_subnormal][: min(n, 4)]
            for p in (0.5, 0.1, 0.999):
                cases.append((f"alpha-{name}-n{n}-o{offset}-p{p}",
                              lambda x=x, p=p, o=offset: fastdrop.alpha_dropout(x, p, seed=8, offset=o)))
        x4 = rng.standard_normal((3, 5, 13, 11)).astype(dtype)
        for block, p in ((1, 0.3), (3, 0.1), (5, 0.6), (11, 0.5), (7, 0.999)):
            cases.append((f"dropblock-{name}-b{block}-p{p}",
                          lambda x=x4, b=block, p=p: fastdrop.dropblock2d(x, p, b, seed=3, offset=17)))
            cases.append((f"dropblock-last-{name}-b{block}-p{p}", lambda x=x4, b=block, p=p: fastdrop.dropblock2d(
                np.ascontiguousarray(x.transpose(0, 2, 3, 1)), p, b, seed=3, data_format="channels_last")))
    cases.append(("alpha-all-halves", lambda: fastdrop.alpha_dropout(ALL_HALVES, 0.3, seed=2)))
    xb = rng.standard_normal((4, 64, 33, 31)).astype(np.float32)        # > the parallel threshold
    cases.append(("dropblock-threads", lambda: fastdrop.dropblock2d(xb, 0.2, 7, seed=6)))
    cases.append(("dropblock-threads-last", lambda: fastdrop.dropblock2d(xb, 0.2, 7, seed=6,
                                                                          data_format="channels_last")))
    return cases

def _shared_mask_cases(rng):
    """Masks shared along a middle axis (variational dropout, channels_last spatial dropout)
    or along the trailing axes (drop_path, channels_first spatial dropout), one kernel pass:
    rows shorter and longer than a piece of columns, short rows, vector tails, every half
    under the select, and enough elements for threads."""
    cases = []
    for dtype in (np.float16, np.float32, np.float64):
        name = np.dtype(dtype).name
        for shape in ((3, 5, 17), (2, 3, 2049), (1, 4, 4100), (5, 2, 1)):
            x = (rng.standard_normal(shape) * 1e3).astype(dtype)
            x.reshape(-1)[:3] = [np.inf, -np.nan, np.finfo(dtype).smallest_subnormal]
            for axis in (0, 1):
                cases.append((f"variational-{name}-{shape}-t{axis}", lambda x=x, a=axis: fastdrop.variational_dropout(
                    x, 0.4, seed=12, time_axis=a, offset=1021)))
        x4 = rng.standard_normal((3, 4, 5, 19)).astype(dtype)
        cases.append((f"spatial-last-{name}", lambda x=x4: fastdrop.spatial_dropout(x, 0.3, seed=2,
                                                                                 data_format="channels_last")))
        # leading noise shapes (drop_path, channels_first spatial): rows of one decision shorter
        # and longer than SHORT_ROW (128), more samples than a piece (2048 decisions), samples
        # longer than an expansion (16384 elements) of short rows
        for shape in ((7, 3, 4), (4, 3, 127), (4, 3, 128), (3, 2, 129), (50, 50, 3), (2, 3, 5000)):
            x = (rng.standard_normal(shape) * 1e3).astype(dtype)
            x.reshape(-1)[:2] = [np.inf, -np.nan]
            cases.append((f"spatial-first-{name}-{shape}", lambda x=x: fastdrop.spatial_dropout(x, 0.4, seed=3,
                                                                                             offset=5)))
            cases.append((f"drop-path-{name}-{shape}", lambda x=x: fastdrop.drop_path(x, 0.4, seed=3)))
        for shape in ((700, 3, 5), (2, 300, 100), (3, 2000, 3), (4, 5, 127)):
            x = (rng.standard_normal(shape) * 1e3).astype(dtype)
            cases.append((f"variational-short-{name}-{shape}", lambda x=x: fastdrop.variational_dropout(
                x, 0.4, seed=12, offset=1021)))
    cases.append(("variational-all-halves", lambda: fastdrop.variational_dropout(
        ALL_HALVES.reshape(4, 4, 4096), 0.3, seed=2)))
    xl = rng.standard_normal((128, 64, 7, 7)).astype(np.float32)     # short rows, > the parallel threshold
    cases.append(("spatial-first-threads", lambda: fastdrop.spatial_dropout(xl, 0.5, seed=4, offset=333)))
    xs = rng.standard_normal((8, 40, 3001)).astype(np.float32)       # > the parallel threshold
    cases.append(("variational-threads", lambda: fastdrop.variational_dropout(xs, 0.5, seed=4, offset=333)))
    return cases


def _bits(a):
    a = np.asarray(a)
    return a.view(f"u{a.itemsize}") if a.dtype.kind == "f" else a


def _best_built():
    """The variant fastdrop should load here: the best one the CPU runs that is built."""
    return [isa for isa in _backend.runnable_isas() if isa in _backend.built_isas()][-1]


_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import fastdrop
    sys.path.insert(0, {tests!r})
    from test_isa import _cases
    fastdrop.set_num_threads(int(sys.argv[2]))
    assert fastdrop.backend() == "cython"
    np.savez(sys.argv[1], isa=fastdrop.info()["isa"], **{{name: f() for name, f in _cases()}})
""")


def _run(code, *args, **env):
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FASTDROP_BACKEND": "", "FASTDROP_NUM_THREADS": "",
                               "FASTDROP_STREAMING_THRESHOLD": "", **env})


@pytest.fixture(scope="module")
def oracle():
    with fastdrop.use_backend("numpy"):
        return {name: _bits(f()) for name, f in _cases()}


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_variant_matches_numpy_backend(isa, threads, oracle, tmp_path):
    if isa not in _backend.runnable_isas():
        pytest.skip(f"this CPU cannot run the {isa} variant")
    if isa not in _backend.built_isas():
        pytest.skip(f"this CPU runs the {isa} variant but it is not built (setup.py skipped it: see the build log)")
    out = tmp_path / "cases.npz"
    r = _run(_CHILD.format(tests=os.path.dirname(__file__)), str(out), str(threads), FASTDROP_ISA=isa)
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    assert str(got["isa"]) == isa
    for name, expected in oracle.items():
        assert np.array_equal(_bits(got[name]), expected), f"{isa} differs from the NumPy backend on {name}"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_streaming_stores_give_the_same_bits(isa, threads, oracle, tmp_path):
    """With the streaming threshold at 0 every output of every kernel is written with
    streaming stores (unaligned heads with ordinary ones, fenced): the same bits."""
    if isa not in _backend.runnable_isas() or isa not in _backend.built_isas():
        pytest.skip(f"the {isa} variant is not runnable or not built here")
    out = tmp_path / "cases.npz"
    r = _run(_CHILD.format(tests=os.path.dirname(__file__)), str(out), str(threads), FASTDROP_ISA=isa,
             FASTDROP_STREAMING_THRESHOLD="0")
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    for name, expected in oracle.items():
        assert np.array_equal(_bits(got[name]), expected), f"{isa} streaming differs from the NumPy backend on {name}"


def test_float16_kept_values_are_numpy_products():
    """The oracle itself: kept halves are NumPy's float16 product, dropped are +0."""
    for p in (0.5, 0.999, 0.9999):
        y = fastdrop.dropout(ALL_HALVES, p, seed=1)
        keep = fastdrop.dropout_mask(ALL_HALVES.shape, p, seed=1)
        with np.errstate(over="ignore", invalid="ignore"):
            expected = np.where(keep, ALL_HALVES * np.float16(1 / (1 - p)), np.float16(0))
        assert np.array_equal(_bits(y), _bits(expected))


def test_bfloat16_kept_values_are_ml_dtypes_products():
    """The oracle itself: kept bfloat16 values are ml_dtypes' product x * bfloat16(1 / (1 - p))
    (float32 arithmetic rounded to nearest even, NaN made quiet), dropped are +0; alpha dropout
    rounds the product, then the sum."""
    for p in (0.5, 1 / 3, 0.2, 0.3, 0.999, 0.9999):         # 1 / 3 and 0.2: scales 1.5 and 1.25, products that tie
        y = fastdrop.dropout(ALL_BFLOATS, p, seed=1)
        keep = fastdrop.dropout_mask(ALL_BFLOATS.shape, p, seed=1).astype(bool)
        with np.errstate(over="ignore", invalid="ignore"):
            product = (ALL_BFLOATS.astype(np.float32) * np.float32(BFLOAT16(1 / (1 - p)))).astype(BFLOAT16)
        expected = np.where(keep, product.view(np.uint16), np.uint16(0))
        assert np.array_equal(y.view(np.uint16), expected)
        assert y.dtype == BFLOAT16


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_thread_count_does_not_change_bits(dtype):
    x = np.random.default_rng(0).standard_normal(THREAD_CASE_SIZE).astype(dtype)
    before = fastdrop.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3, 8):
            fastdrop.set_num_threads(n)
            results.append(_bits(fastdrop.dropout(x, 0.3, seed=8, offset=1000)))
    finally:
        fastdrop.set_num_threads(before)
    for r in results[1:]:
        assert np.array_equal(r, results[0])


def test_isa_reports_the_loaded_variant():
    expected = os.environ.get("FASTDROP_ISA") or _best_built()
    assert fastdrop.info()["isa"] == _backend.isa() == _backend.kernels().ISA == expected
    with fastdrop.use_backend("numpy"):
        assert fastdrop.info()["isa"] == "numpy"


def test_invalid_isa_is_an_error():
    r = _run("import fastdrop", FASTDROP_ISA="sse9")
    assert r.returncode != 0
    assert "ValueError: FASTDROP_ISA must be one of baseline, avx2, avx512, got 'sse9'" in r.stderr


def test_isa_the_cpu_cannot_run_is_an_error():
    code = ("import importlib, os, fastdrop, fastdrop._kernels as k\n"
            "k.cpu_features = lambda: {}\n"
            "os.environ['FASTDROP_ISA'] = 'avx512'\n"
            "importlib.reload(fastdrop._backend)")
    r = _run(code)
    assert r.returncode != 0
    assert "ImportError: FASTDROP_ISA=avx512: this CPU cannot run it (it runs baseline)" in r.stderr


def test_isa_not_built_is_an_error():
    if "avx2" not in _backend.runnable_isas():
        pytest.skip("this CPU cannot run the avx2 variant")
    code = "import importlib, fastdrop, fastdrop._kernels as k\nk.VARIANTS.pop('avx2')\nimportlib.reload(fastdrop._backend)"
    r = _run(code, FASTDROP_ISA="avx2")
    assert r.returncode != 0
    assert "ImportError: FASTDROP_ISA=avx2: that variant is not built on this platform" in r.stderr


def test_default_falls_back_past_a_variant_not_built():
    code = ("import importlib, fastdrop, fastdrop._kernels as k\nk.VARIANTS.pop('avx512', None)\n"
            "importlib.reload(fastdrop._backend); print(fastdrop.info()['isa'])")
    r = _run(code, FASTDROP_ISA="")
    assert r.returncode == 0, r.stderr
    expected = [isa for isa in _backend.runnable_isas() if isa in _backend.built_isas() and isa != "avx512"][-1]
    assert r.stdout.strip() == expected


# --- the variant table: build flags, CPU checks and the choice at import agree ------------

def test_every_instruction_flag_is_guarded_by_a_feature_check():
    for variant in _isa.VARIANTS:
        for flag in variant.flags:
            assert flag.startswith("-m") and flag[2:] in variant.features, (
                f"{variant.name}: {flag} enables instructions no CPU check of the variant guards")
        for flag in variant.tuning:      # code generation only: no instruction set enabled
            assert flag.startswith(("-mprefer-vector-width=", "-mtune=")), f"{variant.name}: {flag} is not tuning-only"


def test_every_required_feature_is_known_to_the_cpu_checker():
    import fastdrop._kernels as k
    known = set(k.cpu_features())
    for variant in _isa.VARIANTS:
        assert set(variant.features) <= known, f"{variant.name} needs features the C checker does not test"


def test_variants_are_ordered_and_nested():
    """Slowest first, each needing at least its predecessor's features: "the best runnable" is the last one."""
    assert _isa.VARIANTS[0].name == "baseline" and not _isa.VARIANTS[0].features
    for slower, faster in zip(_isa.VARIANTS, _isa.VARIANTS[1:]):
        assert set(slower.features) <= set(faster.features)


def test_built_variants_are_table_variants_with_the_baseline():
    built = _backend.built_isas()
    assert built[0] == "baseline" and list(built) == [isa for isa in _isa.NAMES if isa in built]
    assert all(_backend.variant(isa).ISA == isa for isa in built)


def test_the_variant_chosen_at_import_is_the_best_the_cpu_runs():
    import fastdrop._kernels as k
    features = k.cpu_features()
    best = [v.name for v in _isa.VARIANTS if all(features[f] for f in v.features) and v.name in k.VARIANTS][-1]
    r = _run("import fastdrop; print(fastdrop.info()['isa'])", FASTDROP_ISA="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == best


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="no /proc/cpuinfo to compare with")
def test_cpu_features_agree_with_the_kernel():
    import fastdrop._kernels as k
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    if flags is None:
        pytest.skip("/proc/cpuinfo lists no flags (not x86)")
    for feature, supported in k.cpu_features().items():
        assert supported == (feature in flags), feature
