"""Compiled dropout kernels over the block streams of _xoshiro.h.

The def functions are thin: take raw pointers from arrays the functional API has
already validated, release the GIL, run a fused-type nogil kernel whose element loops
are the SIMD loops of _simd.h.  _numpy_backend.py is the bit-exact twin of every
function here.  setup.py compiles this file once per ISA variant (baseline, avx2,
avx512); ISA says which one this is.  Compiler directives live in setup.py.
"""
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memset

cimport numpy as cnp
import numpy as np

from fastdrop._xoshiro cimport (FD_BLOCK_CHUNKS, FD_BLOCK_WORDS, FD_GROUP_CHUNKS, FD_GROUP_STEPS, fd_apply_f16,
                                fd_apply_f32, fd_apply_f64, fd_block, fd_block_t, fd_block_word, fd_gen_seed,
                                fd_gen_steps, fd_gen_t, fd_group_t, fd_half_to_float, fd_keep_u8, fd_prefetch, fd_scale_f16, fd_scale_f32,
                                fd_scale_f64, fd_select_f16, fd_select_f32, fd_select_f64)

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

cdef enum:
    MAX_DIMS = 64
# Arrays larger than PREFETCH_MIN_BYTES (beyond L2) are prefetched PREFETCH_AHEAD elements
# ahead: the generator's bursts of arithmetic otherwise leave the memory pipe idle.
cdef int64_t PREFETCH_AHEAD = 2048
cdef int64_t PREFETCH_MIN_BYTES = 4 << 20
cdef int64_t PARALLEL_MIN_BLOCKS = 256    # below ~256K elements threads cost more than they save


cdef inline void dropout_block(uint64_t key, int64_t block, int64_t lo, int64_t n, int32_t thr,
                               real s, const real *x, real *out, bint prefetch) noexcept nogil:
    """Elements lo..lo+n of block `block` (x and out point at element lo), one group of
    generator steps at a time (see FD_GROUP_STEPS)."""
    cdef fd_gen_t g
    cdef fd_group_t words
    cdef int64_t group, start, a, b
    fd_gen_seed(&g, key, <uint64_t>block)
    for group in range((lo + n + FD_GROUP_CHUNKS - 1) // FD_GROUP_CHUNKS):
        fd_gen_steps(&g, FD_GROUP_STEPS, words.word)
        start = group * FD_GROUP_CHUNKS
        if start + FD_GROUP_CHUNKS <= lo:
            continue
        a = max(lo, start)
        b = min(lo + n, start + FD_GROUP_CHUNKS)
        if prefetch:
            fd_prefetch(x + (a - lo) + PREFETCH_AHEAD, (b - a) * sizeof(real), 0)
            fd_prefetch(out + (a - lo) + PREFETCH_AHEAD, (b - a) * sizeof(real), 1)
        if real is float:
            fd_select_f32(&words.chunk[a - start], thr, s, x + (a - lo), out + (a - lo), b - a)
        elif real is double:
            fd_select_f64(&words.chunk[a - start], thr, s, x + (a - lo), out + (a - lo), b - a)
        else:
            fd_select_f16(&words.chunk[a - start], thr, fd_half_to_float(s), x + (a - lo), out + (a - lo), b - a)


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


cdef void dropout_range(uint64_t key, int64_t offset, int64_t n, int32_t thr, real s,
                        const real *x, real *out, int nthreads) noexcept nogil:
    cdef int64_t first = offset // FD_BLOCK_CHUNKS
    cdef int64_t last = (offset + n - 1) // FD_BLOCK_CHUNKS
    cdef int64_t blk, lo, hi
    cdef bint prefetch = n * <int64_t>sizeof(real) > PREFETCH_MIN_BYTES
    if nthreads > 1 and last - first >= PARALLEL_MIN_BLOCKS:
        for blk in prange(first, last + 1, schedule="static", num_threads=nthreads):
            lo = max(offset, blk * FD_BLOCK_CHUNKS)
            hi = min(offset + n, (blk + 1) * FD_BLOCK_CHUNKS)
            dropout_block(key, blk, lo - blk * FD_BLOCK_CHUNKS, hi - lo, thr, s, x + (lo - offset), out + (lo - offset),
                          prefetch)
    else:
        for blk in range(first, last + 1):
            lo = max(offset, blk * FD_BLOCK_CHUNKS)
            hi = min(offset + n, (blk + 1) * FD_BLOCK_CHUNKS)
            dropout_block(key, blk, lo - blk * FD_BLOCK_CHUNKS, hi - lo, thr, s, x + (lo - offset), out + (lo - offset),
                          prefetch)


cdef void keep_range(uint64_t key, int64_t offset, int64_t n, const uint32_t *thr, int64_t thr_step,
                     uint8_t *out) noexcept nogil:
    cdef fd_block_t b
    cdef int64_t blk, lo, hi, base
    for blk in range(offset // FD_BLOCK_CHUNKS, (offset + n - 1) // FD_BLOCK_CHUNKS + 1):
        fd_block(key, <uint64_t>blk, &b)
        lo = max(offset, blk * FD_BLOCK_CHUNKS)
        hi = min(offset + n, (blk + 1) * FD_BLOCK_CHUNKS)
        base = blk * FD_BLOCK_CHUNKS
        fd_keep_u8(&b.chunk[lo - base], <const int32_t *>thr + (lo - offset) * thr_step, thr_step,
                   out + (lo - offset), hi - lo)


cdef void apply_rows(const real *x, real *out, const uint8_t *keep, const real *scale, int64_t scale_step,
                     int ndim, const int64_t *dims, const int64_t *kstride, int64_t nrows) noexcept nogil:
    """out = keep ? x * scale : 0 over collapsed dims; the last dim is one contiguous row."""
    cdef int64_t inner = dims[ndim - 1], ks = kstride[ndim - 1]
    cdef int64_t r, rest, kb, a
    for r in range(nrows):
        rest = r
        kb = 0
        for a in range(ndim - 2, -1, -1):
            kb = kb + (rest % dims[a]) * kstride[a]
            rest = rest // dims[a]
        if ks == 0:
            if keep[kb]:
                scale_row(scale[kb * scale_step], &x[r * inner], &out[r * inner], inner)
            else:
                memset(&out[r * inner], 0, inner * sizeof(real))
        else:                   # keep is C-contiguous: its last varying axis has stride 1
            apply_row(&keep[kb], &scale[kb * scale_step], scale_step, &x[r * inner], &out[r * inner], inner)


cdef inline void *data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


cdef void dropout_rows_impl(uint64_t key, const int64_t *starts, int64_t nrows, int64_t rowlen, int32_t thr, real s,
                            const real *x, int64_t xstride, real *out, int64_t ostride, int nthreads) noexcept nogil:
    """Row r: the fused kernel over decisions starts[r].. (threads split rows, or one long row)."""
    cdef int64_t r
    if nthreads > 1 and nrows > 1 and nrows * rowlen >= PARALLEL_MIN_BLOCKS * FD_BLOCK_CHUNKS:
        for r in prange(nrows, schedule="static", num_threads=nthreads):
            dropout_range(key, starts[r], rowlen, thr, s, x + r * xstride, out + r * ostride, 1)
    else:
        for r in range(nrows):
            dropout_range(key, starts[r], rowlen, thr, s, x + r * xstride, out + r * ostride, nthreads)


cdef object dropout_rows_typed(uint64_t key, const int64_t *starts, int64_t nrows, int64_t rowlen, int32_t thr,
                               scale, cnp.ndarray x, int64_t xstride, cnp.ndarray out, int64_t ostride, int nthreads):
    """Dispatch on x's dtype; strides are in elements."""
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef void *xp = data(x)
    cdef void *op = data(out)
    cdef float s32
    cdef double s64
    cdef uint16_t s16
    if typenum == cnp.NPY_FLOAT32:
        s32 = scale
        with nogil:
            dropout_rows_impl(key, starts, nrows, rowlen, thr, s32, <const float *>xp, xstride, <float *>op, ostride,
                              nthreads)
    elif typenum == cnp.NPY_FLOAT64:
        s64 = scale
        with nogil:
            dropout_rows_impl(key, starts, nrows, rowlen, thr, s64, <const double *>xp, xstride, <double *>op, ostride,
                              nthreads)
    else:
        s16 = scale.view("u2")
        with nogil:
            dropout_rows_impl(key, starts, nrows, rowlen, thr, s16, <const uint16_t *>xp, xstride, <uint16_t *>op,
                              ostride, nthreads)
    return out


def dropout_flat(uint64_t key, int64_t offset, int32_t thr, scale, cnp.ndarray x, cnp.ndarray out,
                 int nthreads=1):
    """Fused mask generation and scaling over C-contiguous 1-D arrays (out may be x)."""
    return dropout_rows_typed(key, &offset, 1, x.shape[0], thr, scale, x, 0, out, 0, nthreads)


def dropout_rows(uint64_t key, cnp.ndarray starts, int32_t thr, scale, cnp.ndarray x, cnp.ndarray out,
                 int nthreads=1):
    """dropout_flat on each row of 2-D x and out (rows contiguous, any row stride); row r
    takes decisions starts[r], starts[r] + 1, ... (starts: int64, one per row)."""
    return dropout_rows_typed(key, <const int64_t *>data(starts), x.shape[0], x.shape[1], thr, scale,
                              x, x.strides[0] // x.itemsize, out, out.strides[0] // out.itemsize, nthreads)


def keep_mask_rows(uint64_t key, cnp.ndarray starts, thr, cnp.ndarray out):
    """out[r, i] = 1 if element starts[r] + i is kept; thr is an int or a uint32 array like out."""
    cdef int64_t nrows = out.shape[0], rowlen = out.shape[1], r
    cdef uint32_t thr_scalar = 0
    cdef const uint32_t *tp = &thr_scalar
    cdef int64_t tstep = 0
    cdef const int64_t *sp = <const int64_t *>data(starts)
    cdef uint8_t *op = <uint8_t *>data(out)
    cdef cnp.ndarray thr_arr
    if isinstance(thr, int):
        thr_scalar = thr
    else:
        thr_arr = thr
        tp = <const uint32_t *>data(thr_arr)
        tstep = 1
    with nogil:
        for r in range(nrows):
            keep_range(key, sp[r], rowlen, tp + r * rowlen * tstep, tstep, op + r * rowlen)
    return out


def fill_words(uint64_t key, int64_t first_word, cnp.ndarray out):
    """Fill the uint64 array out with stream words first_word, first_word + 1, ..."""
    cdef int64_t n = out.shape[0], pos = 0, w, blk, take, i
    cdef uint64_t *op = <uint64_t *>data(out)
    cdef fd_block_t b
    with nogil:
        while pos < n:
            w = first_word + pos
            blk = w // FD_BLOCK_WORDS
            fd_block(key, <uint64_t>blk, &b)
            take = min(n - pos, (blk + 1) * FD_BLOCK_WORDS - w)
            for i in range(take):
                op[pos + i] = fd_block_word(&b, w - blk * FD_BLOCK_WORDS + i)
            pos += take
    return out


def apply_keep(cnp.ndarray x, cnp.ndarray keep, scale, cnp.ndarray out):
    """out = keep ? x * scale : 0; keep (uint8) and scale (scalar or array) have the noise shape."""
    cdef int64_t dims[MAX_DIMS]
    cdef int64_t kstride[MAX_DIMS]
    cdef int ndim = 0, a
    cdef int64_t nrows = 1, size, ks
    for a in range(x.ndim):
        size = x.shape[a]
        if size == 1:
            continue
        ks = keep.strides[a] if keep.shape[a] != 1 else 0
        if ndim and kstride[ndim - 1] == ks * size:      # merge with the previous axis
            dims[ndim - 1] *= size
            kstride[ndim - 1] = ks
            continue
        dims[ndim] = size
        kstride[ndim] = ks
        ndim += 1
    if ndim == 0:
        dims[0] = 1
        kstride[0] = 0
        ndim = 1
    for a in range(ndim - 1):
        nrows *= dims[a]
    cdef cnp.ndarray scale_arr = np.ascontiguousarray(scale, dtype=x.dtype)
    cdef int64_t sstep = 1 if np.ndim(scale) else 0     # ascontiguousarray makes 0-d into (1,)
    cdef const uint8_t *kp = <const uint8_t *>data(keep)
    cdef void *xp = data(x)
    cdef void *op = data(out)
    cdef void *sp = data(scale_arr)
    cdef int typenum = cnp.PyArray_TYPE(x)
    if typenum == cnp.NPY_FLOAT32:
        with nogil:
            apply_rows(<const float *>xp, <float *>op, kp, <const float *>sp, sstep, ndim, dims, kstride, nrows)
    elif typenum == cnp.NPY_FLOAT64:
        with nogil:
            apply_rows(<const double *>xp, <double *>op, kp, <const double *>sp, sstep, ndim, dims, kstride, nrows)
    else:
        with nogil:
            apply_rows(<const uint16_t *>xp, <uint16_t *>op, kp, <const uint16_t *>sp, sstep, ndim, dims, kstride,
                       nrows)
    return out
