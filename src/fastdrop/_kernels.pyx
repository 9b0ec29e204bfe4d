"""Compiled dropout kernels over the block streams of _xoshiro.h.

The def functions are thin: take raw pointers from arrays the functional API has
already validated, release the GIL, run a fused-type nogil kernel whose element loops
are the SIMD loops of _simd.h.  _numpy_backend.py is the bit-exact twin of every
function here.  setup.py compiles this file once per ISA variant (baseline, avx2,
avx512); ISA says which one this is.  Compiler directives live in setup.py.
"""
from cython.parallel cimport prange
from libc.stdint cimport INT64_MAX, int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.string cimport memset

cimport numpy as cnp
import numpy as np

from fastdrop._xoshiro cimport (FD_BLOCK_CHUNKS, FD_BLOCK_WORDS, FD_GROUP_CHUNKS, FD_GROUP_STEPS, FD_MAX_INDEX,
                                fd_apply_f16, fd_apply_f32, fd_apply_f64, fd_block, fd_block_t, fd_block_word,
                                fd_gen_seed, fd_gen_steps, fd_gen_t, fd_group_t, fd_half_to_float, fd_keep_u8,
                                fd_prefetch, fd_scale_f16, fd_scale_f32, fd_scale_f64, fd_select_rates_f16,
                                fd_select_rates_f32, fd_select_rates_f64)

cnp.import_array()

cdef extern from *:
    """
    #ifdef _OPENMP
    #define FD_OPENMP 1
    #else
    #define FD_OPENMP 0
    #endif
    /* The variant this copy of the source was compiled as, from its target flags. */
    #if defined(__AVX512F__)
    #define FD_ISA "avx512"
    #elif defined(__AVX2__)
    #define FD_ISA "avx2"
    #else
    #define FD_ISA "baseline"
    #endif
    /* Which variants this CPU (and OS: the checks include the saved vector state) runs. */
    #if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    static int fd_cpu_runs_avx2(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    }
    static int fd_cpu_runs_avx512(void) {
        return fd_cpu_runs_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    }
    #else
    static int fd_cpu_runs_avx2(void) { return 0; }
    static int fd_cpu_runs_avx512(void) { return 0; }
    #endif
    """
    int FD_OPENMP
    const char *FD_ISA
    int fd_cpu_runs_avx2()
    int fd_cpu_runs_avx512()

OPENMP = bool(FD_OPENMP)
ISA = FD_ISA.decode()


def cpu_isas():
    """The ISA variants this CPU can execute, slowest first (each may or may not be built)."""
    return ("baseline",) + (("avx2",) if fd_cpu_runs_avx2() else ()) + (("avx512",) if fd_cpu_runs_avx512() else ())


ctypedef fused real:
    float
    double
    uint16_t            # IEEE float16, handled as its bits

# What the block walker writes: dropout output in a float type, or keep bytes (uint8_t:
# the mask alone; x is not read).
ctypedef fused elem:
    float
    double
    uint16_t
    uint8_t

cdef enum:
    MAX_DIMS = 64
# Arrays larger than PREFETCH_MIN_BYTES (beyond L2) are prefetched PREFETCH_AHEAD elements
# ahead: the generator's bursts of arithmetic otherwise leave the memory pipe idle.
cdef int64_t PREFETCH_AHEAD = 2048
cdef int64_t PREFETCH_MIN_BYTES = 4 << 20
cdef int64_t PARALLEL_MIN_BLOCKS = 256    # below ~256K elements threads cost more than they save
MAX_INDEX = FD_MAX_INDEX


ctypedef struct rates_t:
    # The rates of a region (an array read in C order, element j its flat index) collapsed
    # into rows: element j is column j % inner of row j // inner; its threshold is
    # thr[base(row) + column * step] and its scale the same element of scale (x's dtype),
    # base(row) being the row's outer indices times stride.  Broadcast axes have stride 0,
    # so rates are never expanded.  One scalar rate is one endless row with step 0.
    const int32_t *thr
    const void *scale
    int64_t inner
    int64_t step
    int nouter
    int64_t dims[MAX_DIMS]
    int64_t stride[MAX_DIMS]


cdef inline int64_t seek_row(const rates_t *g, int64_t j, int64_t *idx, int64_t *col) noexcept nogil:
    """Set the cursor (outer indices idx, column col) to element j; returns its row's base."""
    cdef int64_t row = j // g.inner, base = 0
    cdef int a
    col[0] = j - row * g.inner
    for a in range(g.nouter - 1, -1, -1):
        idx[a] = row % g.dims[a]
        row = row // g.dims[a]
        base += idx[a] * g.stride[a]
    return base


cdef inline int64_t next_row(const rates_t *g, int64_t *idx, int64_t base) noexcept nogil:
    """Move the cursor to the next row (an odometer over the outer axes); returns its base."""
    cdef int a
    for a in range(g.nouter - 1, -1, -1):
        idx[a] += 1
        base += g.stride[a]
        if idx[a] < g.dims[a]:
            return base
        base -= idx[a] * g.stride[a]
        idx[a] = 0
    return base


cdef inline void select_segment(const uint16_t *chunk, const rates_t *g, int64_t r, const elem *x, elem *out,
                                int64_t n) noexcept nogil:
    """n elements of one row whose rates begin at offset r."""
    if elem is uint8_t:
        fd_keep_u8(chunk, g.thr + r, g.step, out, n)
    elif elem is float:
        fd_select_rates_f32(chunk, g.thr + r, <const float *>g.scale + r, g.step, x, out, n)
    elif elem is double:
        fd_select_rates_f64(chunk, g.thr + r, <const double *>g.scale + r, g.step, x, out, n)
    else:
        fd_select_rates_f16(chunk, g.thr + r, <const uint16_t *>g.scale + r, g.step, x, out, n)


cdef inline void dropout_block(uint64_t key, int64_t block, int64_t lo, int64_t n, int64_t j, const rates_t *g,
                               const elem *x, elem *out, bint prefetch) noexcept nogil:
    """Elements lo..lo+n of block `block`, region elements j..j+n (x and out point at
    element lo), one group of generator steps at a time (see FD_GROUP_STEPS), each group
    split where a row of rates ends."""
    cdef fd_gen_t gen
    cdef fd_group_t words
    cdef int64_t idx[MAX_DIMS]
    cdef int64_t col, base, group, start, a, b, take
    base = seek_row(g, j, idx, &col)
    fd_gen_seed(&gen, key, <uint64_t>block)
    for group in range((lo + n + FD_GROUP_CHUNKS - 1) // FD_GROUP_CHUNKS):
        fd_gen_steps(&gen, FD_GROUP_STEPS, words.word)
        start = group * FD_GROUP_CHUNKS
        if start + FD_GROUP_CHUNKS <= lo:
            continue
        a = max(lo, start)
        b = min(lo + n, start + FD_GROUP_CHUNKS)
        if prefetch:
            fd_prefetch(x + (a - lo) + PREFETCH_AHEAD, (b - a) * sizeof(elem), 0)
            fd_prefetch(out + (a - lo) + PREFETCH_AHEAD, (b - a) * sizeof(elem), 1)
        while a < b:
            take = min(b - a, g.inner - col)
            select_segment(&words.chunk[a - start], g, base + col * g.step, x + (a - lo), out + (a - lo), take)
            a += take
            col += take
            if col == g.inner:
                col = 0
                base = next_row(g, idx, base)


cdef inline void range_block(uint64_t key, int64_t first, int64_t head, int64_t n, int64_t k, int64_t j0,
                             const rates_t *g, const elem *x, elem *out, bint prefetch) noexcept nogil:
    """The part of a run in its k-th block.  The run starts at decision head of block first;
    positions are relative to the run, so no index past the run's start plus its length
    is ever formed (no int64 overflow whatever the offset)."""
    cdef int64_t lo = max(k * FD_BLOCK_CHUNKS - head, 0)
    cdef int64_t hi = min(k * FD_BLOCK_CHUNKS - head + FD_BLOCK_CHUNKS, n)
    dropout_block(key, first + k, head + lo - k * FD_BLOCK_CHUNKS, hi - lo, j0 + lo, g, x + lo, out + lo, prefetch)


cdef void dropout_range(uint64_t key, int64_t offset, int64_t n, int64_t j0, const rates_t *g,
                        const elem *x, elem *out, int nthreads) noexcept nogil:
    """Stream elements offset..offset+n, which are region elements j0..j0+n."""
    cdef int64_t first = offset // FD_BLOCK_CHUNKS
    cdef int64_t head = offset - first * FD_BLOCK_CHUNKS
    cdef int64_t nblocks = (head + n - 1) // FD_BLOCK_CHUNKS + 1
    cdef int64_t k
    cdef bint prefetch = False
    if n <= 0:
        return
    if elem is not uint8_t:
        prefetch = n * <int64_t>sizeof(elem) > PREFETCH_MIN_BYTES
    if nthreads > 1 and nblocks > PARALLEL_MIN_BLOCKS:
        for k in prange(nblocks, schedule="static", num_threads=nthreads):
            range_block(key, first, head, n, k, j0, g, x, out, prefetch)
    else:
        for k in range(nblocks):
            range_block(key, first, head, n, k, j0, g, x, out, prefetch)


cdef inline void apply_row(const uint8_t *keep, const real *s, int64_t s_step, const real *x, real *out,
                           int64_t n) noexcept nogil:
    if real is float:
        fd_apply_f32(keep, s, s_step, x, out, n)
    elif real is double:
        fd_apply_f64(keep, s, s_step, x, out, n)
    else:
        fd_apply_f16(keep, s, s_step, x, out, n)


cdef inline void scale_row(real s, const real *x, real *out, int64_t n) noexcept nogil:
    if real is float:
        fd_scale_f32(s, x, out, n)
    elif real is double:
        fd_scale_f64(s, x, out, n)
    else:
        fd_scale_f16(fd_half_to_float(s), x, out, n)


cdef void apply_rows(const real *x, real *out, const uint8_t *keep, const real *scale, int ndim,
                     const int64_t *dims, const int64_t *kstride, const int64_t *sstride, int64_t nrows) noexcept nogil:
    """out = keep ? x * scale : 0 over collapsed dims; the last dim is one contiguous row of x.
    keep and scale are read with their strides (0 on broadcast axes)."""
    cdef int64_t inner = dims[ndim - 1], ks = kstride[ndim - 1], ss = sstride[ndim - 1]
    cdef int64_t r, rest, kb, sb, i
    cdef int a
    for r in range(nrows):
        rest = r
        kb = 0
        sb = 0
        for a in range(ndim - 2, -1, -1):
            i = rest % dims[a]
            kb = kb + i * kstride[a]
            sb = sb + i * sstride[a]
            rest = rest // dims[a]
        if ks == 0:             # the row shares one decision, hence one scale (apply_keep checks this)
            if keep[kb]:
                scale_row(scale[sb], &x[r * inner], &out[r * inner], inner)
            else:
                memset(&out[r * inner], 0, inner * sizeof(real))
        else:                   # keep is C-contiguous: its last varying axis has stride 1
            apply_row(&keep[kb], &scale[sb], ss, &x[r * inner], &out[r * inner], inner)


cdef inline void *data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


cdef int check_runs(const int64_t *starts, int64_t nrows, int64_t rowlen) except -1:
    """Every run's stream indices in [0, 2**62): the public API checks this first; here it
    keeps a direct call from wrapping int64 arithmetic and writing out of bounds."""
    cdef int64_t r
    for r in range(nrows):
        if starts[r] < 0 or rowlen > FD_MAX_INDEX or starts[r] > FD_MAX_INDEX - rowlen:
            raise ValueError(f"stream elements [{starts[r]}, {starts[r]} + {rowlen}) leave the index range [0, 2**62)")
    return 0


cdef int set_rates(rates_t *g, cnp.ndarray thr, cnp.ndarray scale, int scale_type, int64_t size) except -1:
    """g over thr (uint32) and scale (of scale_type, or None: a mask alone), arrays of one
    shape and layout in elements, any strides (broadcast views), with size elements."""
    cdef int a, ndim = 0
    cdef int64_t n, s
    if cnp.PyArray_TYPE(thr) != cnp.NPY_UINT32 or cnp.PyArray_SIZE(thr) != size:
        raise ValueError(f"thr must be a uint32 array of {size} elements, got {thr.dtype} of {thr.size}")
    if scale is not None and (cnp.PyArray_TYPE(scale) != scale_type or scale.ndim != thr.ndim):
        raise ValueError(f"scale must be an array of x's dtype and thr's shape, got {scale.dtype} {scale.ndim}-d")
    for a in range(thr.ndim):
        n = thr.shape[a]
        s = thr.strides[a] // 4
        if scale is not None and (scale.shape[a] != n or scale.strides[a] != s * scale.itemsize):
            raise ValueError("scale must have thr's shape and layout (in elements)")
        if n == 1:
            continue
        if thr.strides[a] % 4:
            raise ValueError("thr must be aligned")
        if ndim and g.stride[ndim - 1] == s * n:      # merge with the previous axis
            g.dims[ndim - 1] *= n
            g.stride[ndim - 1] = s
            continue
        g.dims[ndim] = n
        g.stride[ndim] = s
        ndim += 1
    if ndim == 0:
        g.dims[0] = 1
        g.stride[0] = 0
        ndim = 1
    g.thr = <const int32_t *>data(thr)
    g.scale = data(scale) if scale is not None else NULL
    g.inner = g.dims[ndim - 1]
    g.step = g.stride[ndim - 1]
    g.nouter = ndim - 1
    return 0


cdef inline void set_scalar_rate(rates_t *g, const int32_t *thr, const void *scale) noexcept:
    g.thr = thr
    g.scale = scale
    g.inner = INT64_MAX
    g.step = 0
    g.nouter = 0


cdef object dropout_rows_typed(uint64_t key, const int64_t *starts, int64_t nrows, int64_t rowlen, thr, scale,
                               cnp.ndarray x, int64_t xstride, cnp.ndarray out, int64_t ostride, int nthreads):
    """Dispatch on x's dtype; strides are in elements."""
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef const void *xp = data(x)
    cdef void *op = data(out)
    cdef rates_t g
    cdef int32_t t
    cdef float s32
    cdef double s64
    cdef uint16_t s16
    check_runs(starts, nrows, rowlen)
    if isinstance(thr, cnp.ndarray):
        set_rates(&g, thr, scale, typenum, nrows * rowlen)
    else:
        t = thr
        if typenum == cnp.NPY_FLOAT32:
            s32 = scale
            set_scalar_rate(&g, &t, &s32)
        elif typenum == cnp.NPY_FLOAT64:
            s64 = scale
            set_scalar_rate(&g, &t, &s64)
        else:
            s16 = scale.view("u2")
            set_scalar_rate(&g, &t, &s16)
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            dropout_rows_impl(key, starts, nrows, rowlen, &g, <const float *>xp, xstride, <float *>op, ostride,
                              nthreads)
    elif typenum == cnp.NPY_FLOAT64:
        with nogil:
            dropout_rows_impl(key, starts, nrows, rowlen, &g, <const double *>xp, xstride, <double *>op, ostride,
                              nthreads)
    else:
        with nogil:
            dropout_rows_impl(key, starts, nrows, rowlen, &g, <const uint16_t *>xp, xstride, <uint16_t *>op,
                              ostride, nthreads)
    return out


cdef void dropout_rows_impl(uint64_t key, const int64_t *starts, int64_t nrows, int64_t rowlen, const rates_t *g,
                            const elem *x, int64_t xstride, elem *out, int64_t ostride, int nthreads) noexcept nogil:
    """Row r: the fused kernel over decisions starts[r].. (threads split rows, or one long row);
    row r is region elements r * rowlen.. of the rates."""
    cdef int64_t r
    if nthreads > 1 and nrows > 1 and nrows * rowlen >= PARALLEL_MIN_BLOCKS * FD_BLOCK_CHUNKS:
        for r in prange(nrows, schedule="static", num_threads=nthreads):
            dropout_range(key, starts[r], rowlen, r * rowlen, g, x + r * xstride, out + r * ostride, 1)
    else:
        for r in range(nrows):
            dropout_range(key, starts[r], rowlen, r * rowlen, g, x + r * xstride, out + r * ostride, nthreads)


def dropout_flat(uint64_t key, int64_t offset, int32_t thr, scale, cnp.ndarray x, cnp.ndarray out,
                 int nthreads=1):
    """Fused mask generation and scaling over C-contiguous 1-D arrays (out may be x)."""
    return dropout_rows_typed(key, &offset, 1, x.shape[0], thr, scale, x, 0, out, 0, nthreads)


def dropout_rows(uint64_t key, cnp.ndarray starts, thr, scale, cnp.ndarray x, cnp.ndarray out,
                 int nthreads=1):
    """dropout_flat on each row of 2-D x and out (rows contiguous, any row stride); row r
    takes decisions starts[r], starts[r] + 1, ... (starts: int64, one per row).

    thr and scale are scalars, or per-element rates: a uint32 array and an array of x's
    dtype of one shape and layout (any strides: broadcast views), whose C-order elements
    are x's rows one after the other; then out is C-contiguous."""
    return dropout_rows_typed(key, <const int64_t *>data(starts), x.shape[0], x.shape[1], thr, scale,
                              x, x.strides[0] // x.itemsize, out, out.strides[0] // out.itemsize, nthreads)


def keep_mask_rows(uint64_t key, cnp.ndarray starts, thr, cnp.ndarray out):
    """out[r, i] = 1 if element starts[r] + i is kept; out is C-contiguous uint8 (nrows, rowlen),
    thr an int or a uint32 array of out's size (any shape and strides: a broadcast view)
    whose C-order elements are out's."""
    cdef int64_t nrows = out.shape[0], rowlen = out.shape[1]
    cdef const int64_t *sp = <const int64_t *>data(starts)
    cdef uint8_t *op = <uint8_t *>data(out)
    cdef rates_t g
    cdef int32_t t
    check_runs(sp, nrows, rowlen)
    if isinstance(thr, cnp.ndarray):
        set_rates(&g, thr, None, 0, nrows * rowlen)
    else:
        t = thr
        set_scalar_rate(&g, &t, NULL)
    with nogil:
        dropout_rows_impl(key, sp, nrows, rowlen, &g, op, rowlen, op, rowlen, 1)
    return out


def fill_words(uint64_t key, int64_t first_word, cnp.ndarray out):
    """Fill the uint64 array out with stream words first_word, first_word + 1, ..."""
    cdef int64_t n = out.shape[0], pos = 0, w, blk, take, i
    cdef uint64_t *op = <uint64_t *>data(out)
    cdef fd_block_t b
    check_runs(&first_word, 1, n)
    with nogil:
        while pos < n:
            w = first_word + pos
            blk = w // FD_BLOCK_WORDS
            fd_block(key, <uint64_t>blk, &b)
            take = min(n - pos, FD_BLOCK_WORDS - (w - blk * FD_BLOCK_WORDS))
            for i in range(take):
                op[pos + i] = fd_block_word(&b, w - blk * FD_BLOCK_WORDS + i)
            pos += take
    return out


def apply_keep(cnp.ndarray x, cnp.ndarray keep, scale, cnp.ndarray out):
    """out = keep ? x * scale : 0 (keep bytes: nonzero is kept); keep (uint8) broadcasts to x,
    scale (a scalar, or an array of x's dtype such as a broadcast view) to keep: neither is
    expanded, both are read with strides."""
    cdef int64_t dims[MAX_DIMS]
    cdef int64_t kstride[MAX_DIMS]
    cdef int64_t sstride[MAX_DIMS]
    cdef int ndim = 0, a
    cdef int64_t nrows = 1, size, ks, ss
    shape = (<object>x).shape
    cdef cnp.ndarray kview = np.broadcast_to(np.ascontiguousarray(keep), shape)
    cdef cnp.ndarray sview = np.broadcast_to(np.asarray(scale, dtype=x.dtype), shape)
    for a in range(x.ndim):
        size = x.shape[a]
        if size == 1:
            continue
        ks = kview.strides[a]
        ss = sview.strides[a] // sview.itemsize
        if ks == 0 and ss != 0:
            raise ValueError("scale must broadcast to keep's shape (one scale per decision)")
        if ndim and kstride[ndim - 1] == ks * size and sstride[ndim - 1] == ss * size:   # merge with the previous axis
            dims[ndim - 1] *= size
            kstride[ndim - 1] = ks
            sstride[ndim - 1] = ss
            continue
        dims[ndim] = size
        kstride[ndim] = ks
        sstride[ndim] = ss
        ndim += 1
    if ndim == 0:
        dims[0] = 1
        kstride[0] = 0
        sstride[0] = 0
        ndim = 1
    for a in range(ndim - 1):
        nrows *= dims[a]
    cdef const uint8_t *kp = <const uint8_t *>data(kview)
    cdef void *xp = data(x)
    cdef void *op = data(out)
    cdef void *sp = data(sview)
    cdef int typenum = cnp.PyArray_TYPE(x)
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            apply_rows(<const float *>xp, <float *>op, kp, <const float *>sp, ndim, dims, kstride, sstride, nrows)
    elif typenum == cnp.NPY_FLOAT64:
        with nogil:
            apply_rows(<const double *>xp, <double *>op, kp, <const double *>sp, ndim, dims, kstride, sstride, nrows)
    else:
        with nogil:
            apply_rows(<const uint16_t *>xp, <uint16_t *>op, kp, <const uint16_t *>sp, ndim, dims, kstride, sstride,
                       nrows)
    return out
