"""The compiled kernels' entry points: one ``Kernels`` object per ISA variant linked in.

The element loops and the block and run walkers are C (``_walkers.c``), compiled once per
variant of ``_isa.py``; each variant's object exports a table of function pointers
(``_walkers.h``), and a ``Kernels`` object calls through one of them.  Its methods are thin:
check the arguments (``_kernel_args``, the NumPy backend's checks), describe the arrays in
C terms, release the GIL, call the kernel.  ``_backend`` picks the variant;
``_numpy_backend.py`` is the bit-exact twin of every method.  Compiler directives live in
setup.py.
"""
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport INT64_MAX, int32_t, int64_t, uint8_t, uint16_t, uint64_t

cimport numpy as cnp
import numpy as np

from fastdrop._walkers cimport FD_BF16, FD_F16, FD_F32, FD_F64, FD_KEEP, FD_MAX_DIMS, fd_kernels_t, fd_kind_t, fd_rates_t
from fastdrop._cpu cimport FD_NFEATURES, fd_cpu_feature_t, fd_cpu_features
from fastdrop._xoshiro cimport (FD_BLOCK_CHUNKS, FD_BLOCK_WORDS, FD_CHUNK_BITS, FD_CHUNKS_PER_WORD, FD_GOLDEN,
                                FD_LANES, FD_MAX_INDEX, FD_MIX_MULTIPLIER0, FD_MIX_MULTIPLIER1, FD_MIX_SHIFT0,
                                FD_MIX_SHIFT1, FD_MIX_SHIFT2, FD_STEPS, FD_SUM_BLOCK, FD_SUM_LANES)

from fastdrop import _kernel_args

cnp.import_array()

cdef extern from "_exact_sum.h" nogil:
    double fd_exact_sum(const double *terms, int64_t n)

cdef extern from *:
    """
    #ifdef _OPENMP
    #define FD_OPENMP 1
    #else
    #define FD_OPENMP 0
    #endif
    #define FD_TABLE_ENTRY(variant) &FD_TABLE(variant),
    static const fd_kernels_t *const fd_built[] = {FD_BUILT(FD_TABLE_ENTRY)};
    #define FD_NBUILT ((int)(sizeof fd_built / sizeof fd_built[0]))
    static const fd_kernels_t *fd_built_table(int i) { return fd_built[i]; }
    /* _simd.h's streaming threshold, one for every variant: no output streams until
       _backend sets it from the cache size at import. */
    int64_t fd_streaming_min_bytes = INT64_MAX;
    #if defined(__GNUC__)
    static void fd_set_streaming_min_bytes(int64_t b) { __atomic_store_n(&fd_streaming_min_bytes, b, __ATOMIC_RELAXED); }
    static int64_t fd_get_streaming_min_bytes(void) { return __atomic_load_n(&fd_streaming_min_bytes, __ATOMIC_RELAXED); }
    #else
    static void fd_set_streaming_min_bytes(int64_t b) { fd_streaming_min_bytes = b; }
    static int64_t fd_get_streaming_min_bytes(void) { return fd_streaming_min_bytes; }
    #endif
    """
    int FD_OPENMP
    int FD_NBUILT
    const fd_kernels_t *fd_built_table(int i)
    void fd_set_streaming_min_bytes(int64_t b) nogil
    int64_t fd_get_streaming_min_bytes() nogil

OPENMP = bool(FD_OPENMP)
MAX_INDEX = FD_MAX_INDEX
# The stream layout as compiled; fastdrop._stream defines it (tests hold the two equal).
STREAM_LAYOUT = {
    "lanes": FD_LANES, "steps": FD_STEPS, "block_words": FD_BLOCK_WORDS, "chunk_bits": FD_CHUNK_BITS,
    "chunks_per_word": FD_CHUNKS_PER_WORD, "block_chunks": FD_BLOCK_CHUNKS, "golden": FD_GOLDEN,
    "mix_shifts": (FD_MIX_SHIFT0, FD_MIX_SHIFT1, FD_MIX_SHIFT2),
    "mix_multipliers": (FD_MIX_MULTIPLIER0, FD_MIX_MULTIPLIER1), "max_index": FD_MAX_INDEX,
}
# The reducing kernels' partial sums as compiled; fastdrop._kernel_args defines them.
SUM_LAYOUT = {"sum_block": FD_SUM_BLOCK, "sum_lanes": FD_SUM_LANES}
cdef int64_t CHUNK_RANGE = 1 << FD_CHUNK_BITS
# dropout_abs_flat's partial sums without a partials array: on the stack up to this many
# blocks (256K elements, 2 KiB), allocated beyond.
cdef enum:
    SCRATCH_SUMS = 256
cdef object INTEGER = np.integer
cdef object REAL_SCALARS = _kernel_args.REAL_SCALARS


def cpu_features():
    """{feature: bool} for every CPU feature an ISA variant may need, as this CPU and OS report it."""
    cdef fd_cpu_feature_t features[FD_NFEATURES]
    fd_cpu_features(features)
    return {features[i].name.decode(): bool(features[i].supported) for i in range(FD_NFEATURES)}


cdef fd_kind_t float_kind(cnp.ndarray a) noexcept:
    """The kernel kind of a float array (its dtype is checked already: float16/32/64, or
    bfloat16, whose type number ml_dtypes registers at run time)."""
    cdef int typenum = cnp.PyArray_TYPE(a)
    if typenum == cnp.NPY_FLOAT32:
        return FD_F32
    if typenum == cnp.NPY_FLOAT64:
        return FD_F64
    if typenum == cnp.NPY_FLOAT16:
        return FD_F16
    return FD_BF16


cdef uint16_t bits16(scale, kind) except? 0:
    """The bits of scale rounded to a 16-bit float type (np.float16 or bfloat16)."""
    return (scale if type(scale) is kind else kind(scale)).view("u2")


cdef union scale_value_t:
    float f32
    double f64
    uint16_t u16


cdef const void *scale_in(scale_value_t *value, scale, fd_kind_t kind, x) except NULL:
    """One scale value of x's float kind in *value (the 16-bit formats as their bits); returns
    a pointer to it, as the kernels take a scale."""
    if kind == FD_F32:
        value.f32 = scale
    elif kind == FD_F64:
        value.f64 = scale
    else:
        value.u16 = bits16(scale, x.dtype.type)
    return <const void *>value


cdef inline void *data(cnp.ndarray a) noexcept:
    return cnp.PyArray_DATA(a)


cdef int BFLOAT16_TYPENUM = -1      # ml_dtypes registers bfloat16's type number at run time: learnt once seen


cdef bint is_bfloat16_typenum(int typenum, cnp.ndarray a):
    global BFLOAT16_TYPENUM
    if typenum == BFLOAT16_TYPENUM:
        return True
    if BFLOAT16_TYPENUM < 0 and cnp.PyTypeNum_ISUSERDEF(typenum) and _kernel_args.is_bfloat16(a.dtype):
        BFLOAT16_TYPENUM = typenum
        return True
    return False


cdef bint common_call(int64_t offset, thr, scale, x, out, int ndim):
    """True for the arguments the Python layer's common calls give dropout_flat (ndim 1) and
    dropout_shared (ndim 3), all valid: native float (or bfloat16) C-contiguous aligned x of
    that rank, a writeable out like it, an integer threshold in range, a real scale, the
    decisions (x's size, or outer * inner) in the index range.  Anything else goes to
    _kernel_args."""
    cdef cnp.ndarray xa
    if not common_arrays(x, out):
        return False
    xa = x
    if xa.ndim != ndim:
        return False
    return common_rate(offset, thr, scale, xa, xa.shape[0] if ndim == 1 else xa.shape[0] * xa.shape[2])


cdef bint common_arrays(x, out):
    """x a native float (or bfloat16) C-contiguous aligned array, out a writeable one like it."""
    cdef cnp.ndarray xa, oa
    cdef int typenum
    if not (cnp.PyArray_Check(x) and cnp.PyArray_Check(out)):
        return False
    xa, oa = x, out
    typenum = cnp.PyArray_TYPE(xa)
    if not (typenum == cnp.NPY_FLOAT16 or typenum == cnp.NPY_FLOAT32 or typenum == cnp.NPY_FLOAT64
            or is_bfloat16_typenum(typenum, xa)):
        return False
    return (same_array_type(oa, xa) and cnp.PyArray_ISCARRAY_RO(xa)      # also native byte order
            and cnp.PyArray_ISCARRAY(oa))


cdef bint common_rate(int64_t offset, thr, scale, cnp.ndarray x, int64_t decisions):
    """An integer threshold in range, a real scale, decisions offset.. in the index range."""
    if not ((type(thr) is int or isinstance(thr, INTEGER)) and 0 <= thr <= CHUNK_RANGE):
        return False
    return ((isinstance(scale, REAL_SCALARS) or type(scale) is x.dtype.type)
            and offset >= 0 and offset <= FD_MAX_INDEX - decisions)


cdef bint common_partials(partials, int64_t offset, int64_t n):
    """partials a writeable aligned C-contiguous 1-D float64 array of one element per sum block
    of stream elements offset..offset + n (offset already checked to be >= 0)."""
    cdef cnp.ndarray pa
    if not cnp.PyArray_Check(partials):
        return False
    pa = partials
    return (cnp.PyArray_TYPE(pa) == cnp.NPY_FLOAT64 and pa.ndim == 1 and cnp.PyArray_ISCARRAY(pa)
            and pa.shape[0] == (((offset + n - 1) // FD_SUM_BLOCK - offset // FD_SUM_BLOCK + 1) if n else 0))


cdef bint same_array_type(cnp.ndarray a, cnp.ndarray like):
    """a has like's type number and shape."""
    cdef int axis
    if cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(like) or a.ndim != like.ndim:
        return False
    for axis in range(a.ndim):
        if a.shape[axis] != like.shape[axis]:
            return False
    return True


cdef bint common_add_call(int64_t offset, thr, scale, bias, x, residual, out):
    """True for the arguments the Python layer's common call gives dropout_add, all valid:
    common_call's x (float16/32/64, any rank), out, threshold, scale and decisions (x's
    size), with a residual like x, and no bias or an aligned native C-contiguous one of x's
    dtype whose shape is x's last axes.  Anything else goes to _kernel_args."""
    cdef cnp.ndarray xa, ra, ba
    cdef int axis, lead
    if not (common_arrays(x, out) and cnp.PyArray_Check(residual)):
        return False
    xa, ra = x, residual
    if (float_kind(xa) == FD_BF16 or not same_array_type(ra, xa) or not cnp.PyArray_ISCARRAY_RO(ra)
            or not common_rate(offset, thr, scale, xa, cnp.PyArray_SIZE(xa))):
        return False
    if bias is None:
        return True
    if not cnp.PyArray_Check(bias):
        return False
    ba = bias
    lead = xa.ndim - ba.ndim
    if cnp.PyArray_TYPE(ba) != cnp.PyArray_TYPE(xa) or lead < 0 or not cnp.PyArray_ISCARRAY_RO(ba):
        return False
    for axis in range(ba.ndim):
        if ba.shape[axis] != xa.shape[lead + axis]:
            return False
    return True


cdef int set_layout(fd_rates_t *g, cnp.ndarray a) except -1:
    """g's dims, strides (in elements), inner, step and nouter over array a, any strides in
    whole elements (broadcast views), axes of size 1 dropped and contiguous neighbours merged."""
    return set_layout_over(g, a, a.ndim, cnp.PyArray_DIMS(a))


cdef int set_layout_over(fd_rates_t *g, cnp.ndarray a, int ndim, const cnp.npy_intp *shape) except -1:
    """set_layout for a read as NumPy broadcasts it to shape (ndim axes, a.ndim <= ndim): its
    missing leading axes and its axes of size 1 have stride 0, so it is never expanded."""
    cdef int axis, lead = ndim - a.ndim, kept = 0
    cdef int64_t n, s
    for axis in range(ndim):
        n = shape[axis]
        s = 0 if axis < lead or a.shape[axis - lead] == 1 else a.strides[axis - lead] // a.itemsize
        if n == 1:
            continue
        if kept and g.stride[kept - 1] == s * n:      # merge with the previous axis
            g.dims[kept - 1] *= n
            g.stride[kept - 1] = s
            continue
        g.dims[kept] = n
        g.stride[kept] = s
        kept += 1
    if kept == 0:
        g.dims[0] = 1
        g.stride[0] = 0
        kept = 1
    g.inner = g.dims[kept - 1]
    g.step = g.stride[kept - 1]
    g.nouter = kept - 1
    return 0


cdef int set_rates(fd_rates_t *g, cnp.ndarray thr, cnp.ndarray scale) except -1:
    """g over thr (uint32) and scale (x's dtype, or None: a mask alone), checked arrays of one
    shape and layout in elements, any strides (broadcast views)."""
    set_layout(g, thr)
    g.thr = <const int32_t *>data(thr)
    g.scale = data(scale) if scale is not None else NULL
    return 0


cdef inline void set_scalar_rate(fd_rates_t *g, const int32_t *thr, const void *scale) noexcept:
    g.thr = thr
    g.scale = scale
    g.inner = INT64_MAX
    g.step = 0
    g.nouter = 0


cdef int set_values(fd_rates_t *g, cnp.ndarray values, cnp.ndarray like) except -1:
    """g over an array of values read as broadcast to the shape of like (any strides in whole
    elements), laid out as set_rates lays out the rates, its data in .scale (.thr unused)."""
    set_layout_over(g, values, like.ndim, cnp.PyArray_DIMS(like))
    g.thr = NULL
    g.scale = data(values)
    return 0


cdef class Kernels:
    """The kernels of one ISA variant (ISA names it); _numpy_backend is their twin."""
    cdef const fd_kernels_t *k
    cdef readonly str ISA
    cdef dict __dict__          # a kernel can be replaced on an instance (tests record calls)
    OPENMP = OPENMP
    MAX_INDEX = MAX_INDEX

    def __repr__(self):
        return f"<fastdrop compiled kernels, isa {self.ISA}>"

    cdef object rows(self, uint64_t key, const int64_t *starts, int64_t nrows, int64_t rowlen, thr, scale,
                     fd_kind_t kind, cnp.ndarray x, int64_t xstride, cnp.ndarray out, int64_t ostride, int nthreads):
        """Run the fused kernel (FD_KEEP: the mask alone, scale None) over checked arguments;
        strides are in elements."""
        cdef const void *xp = data(x)
        cdef void *op = data(out)
        cdef fd_rates_t g
        cdef int32_t t
        cdef scale_value_t sv
        if isinstance(thr, cnp.ndarray):
            set_rates(&g, thr, scale)
        else:
            t = thr
            set_scalar_rate(&g, &t, NULL if kind == FD_KEEP else scale_in(&sv, scale, kind, x))
        with nogil:
            self.k.dropout_rows(key, starts, nrows, rowlen, &g, kind, xp, xstride, op, ostride, nthreads)
        return out

    def dropout_flat(self, uint64_t key, int64_t offset, thr, scale, x, out, int nthreads=1):
        """Fused mask generation and scaling over C-contiguous 1-D arrays (out may be x)."""
        if not common_call(offset, thr, scale, x, out, 1):
            _kernel_args.check_dropout_flat(offset, thr, scale, x, out)
        return self.rows(key, &offset, 1, cnp.PyArray_DIM(x, 0), thr, scale, float_kind(x),
                         x, 0, out, 0, nthreads)

    def dropout_rows(self, uint64_t key, starts, thr, scale, x, out, int nthreads=1):
        """dropout_flat on each row of 2-D x and out (rows contiguous, any row stride); row r
        takes decisions starts[r], starts[r] + 1, ... (starts: int64, one per row).

        thr and scale are scalars, or per-element rates: a uint32 array and an array of x's
        dtype of one shape and layout (any strides: broadcast views), whose C-order elements
        are x's rows one after the other; then out is C-contiguous."""
        _kernel_args.check_dropout_rows(starts, thr, scale, x, out)
        return self.rows(key, <const int64_t *>data(starts), x.shape[0], x.shape[1], thr, scale,
                         float_kind(x), x, x.strides[0] // x.itemsize,
                         out, out.strides[0] // out.itemsize, nthreads)

    def keep_mask_rows(self, uint64_t key, starts, thr, out):
        """out[r, i] = 1 if element starts[r] + i is kept; out is C-contiguous uint8 (nrows, rowlen),
        thr an integer or a uint32 array of out's size (any shape and strides: a broadcast view)
        whose C-order elements are out's."""
        _kernel_args.check_keep_mask_rows(starts, thr, out)
        return self.rows(key, <const int64_t *>data(starts), out.shape[0], out.shape[1], thr, None, FD_KEEP,
                         out, out.shape[1], out, out.shape[1], 1)

    def fill_words(self, uint64_t key, int64_t first_word, out):
        """Fill the C-contiguous uint64 array out with stream words first_word, first_word + 1, ..."""
        _kernel_args.check_fill_words(first_word, out)
        cdef int64_t n = out.shape[0]
        cdef uint64_t *op = <uint64_t *>data(out)
        with nogil:
            self.k.fill_words(key, first_word, op, n)
        return out

    def apply_keep(self, x, keep, scale, out):
        """out = keep ? x * scale : 0 (keep bytes: nonzero is kept); keep (uint8) broadcasts to x,
        scale (a scalar, or an array of x's dtype such as a broadcast view) to keep: neither is
        expanded, both are read with strides."""
        cdef cnp.ndarray kview, sview
        kview, sview = _kernel_args.apply_keep_views(x, keep, scale, out)
        cdef int64_t dims[FD_MAX_DIMS]
        cdef int64_t kstride[FD_MAX_DIMS]
        cdef int64_t sstride[FD_MAX_DIMS]
        cdef int ndim = 0, a
        cdef int64_t nrows = 1, size, ks, ss
        for a in range(kview.ndim):
            size = kview.shape[a]
            if size == 1:
                continue
            ks = kview.strides[a]
            ss = sview.strides[a] // sview.itemsize
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
        cdef const void *xp = data(x)
        cdef void *op = data(out)
        cdef const void *sp = data(sview)
        cdef fd_kind_t kind = float_kind(x)
        with nogil:
            self.k.apply_rows(kind, xp, op, kp, sp, ndim, dims, kstride, sstride, nrows)
        return out


    def gaussian_flat(self, uint64_t key, int64_t offset, sigma, bint half_noise, x, out, int nthreads=1):
        """out = x * (1 + sigma * z) over C-contiguous 1-D arrays (out may be x), z the standard
        normal offset + i of the stream (word (offset + i) // 2; float32 arithmetic, _noise.h);
        the noise is rounded to float16 before the product where half_noise."""
        _kernel_args.check_gaussian_flat(offset, sigma, x, out)
        cdef float s = sigma
        cdef int64_t n = cnp.PyArray_DIM(x, 0)
        cdef fd_kind_t kind = float_kind(x)
        cdef const void *xp = data(x)
        cdef void *op = data(out)
        with nogil:
            self.k.gaussian_flat(key, offset, s, half_noise, kind, xp, op, n, nthreads)
        return out

    # --- the dropout family's fused kernels (_fused.h) ---
    def alpha_flat(self, uint64_t key, int64_t offset, thr, coef, x, out, int nthreads=1):
        """Alpha dropout over C-contiguous 1-D arrays (out may be x): element i kept (decision
        offset + i below thr) is x * a + b, dropped d, for coef = (a, b, d) rounded to x's dtype."""
        _kernel_args.check_alpha_flat(offset, thr, coef, x, out)
        cdef cnp.ndarray c = np.array(coef, dtype=x.dtype)
        cdef int32_t t = thr
        cdef int64_t n = cnp.PyArray_DIM(x, 0)
        cdef fd_kind_t kind = float_kind(x)
        cdef const void *cp = data(c)
        cdef const void *xp = data(x)
        cdef void *op = data(out)
        with nogil:
            self.k.alpha_flat(key, offset, n, t, kind, cp, xp, op, nthreads)
        return out

    def dropblock_keep(self, uint64_t key, int64_t offset, block, thr53, keep, int nthreads=1):
        """DropBlock's keep bytes into the uint8 (N, C, H, W) array keep (any strides), map
        n * C + c drawing its corners from words offset + (n * C + c) * (H-b+1) * (W-b+1) ...
        (drawn when word >> 11 < thr53); returns the kept count."""
        _kernel_args.check_dropblock_keep(offset, block, thr53, keep)
        cdef int64_t strides[4]
        cdef int64_t shape[4]
        cdef int a
        cdef uint64_t t = thr53
        cdef int64_t b = block, kept
        cdef uint8_t *kp = <uint8_t *>data(keep)
        for a in range(4):
            strides[a] = keep.strides[a]
            shape[a] = keep.shape[a]
        if keep.size == 0:
            return 0
        with nogil:
            kept = self.k.dropblock_keep(key, offset, shape[0], shape[1], shape[2], shape[3], b, t, kp,
                                         strides, nthreads)
        if kept < 0:
            raise MemoryError("dropblock_keep: no memory for a row of scratch")
        return int(kept)

    def dropout_shared(self, uint64_t key, int64_t offset, thr, scale, x, out, int nthreads=1):
        """Dropout of C-contiguous 3-D x, (outer, shared, inner), into out: element (a, t, f) is
        decided by stream element offset + a * inner + f for every t (a noise shape broadcast
        along the middle axis), kept x * scale, dropped +0."""
        if not common_call(offset, thr, scale, x, out, 3):
            _kernel_args.check_dropout_shared(offset, thr, scale, x, out)
        cdef int32_t t = thr
        cdef scale_value_t sv
        cdef fd_kind_t kind = float_kind(x)
        cdef const void *sp = scale_in(&sv, scale, kind, x)
        cdef int64_t outer = x.shape[0], shared = x.shape[1], inner = x.shape[2]
        cdef const void *xp = data(x)
        cdef void *op = data(out)
        with nogil:
            self.k.dropout_shared(key, offset, outer, shared, inner, t, kind, sp, xp, op, nthreads)

    # --- Concrete dropout (_noise.h) ---
    def concrete_flat(self, uint64_t key, int64_t offset, logit, inv_t, x, out, int nthreads=1):
        """out = x * dtype(w) over C-contiguous 1-D arrays (out may be x), w the relaxed keep
        weight of stream word offset + i for float32(logit) and float32(inv_t) (_noise.h)."""
        _kernel_args.check_concrete_flat(offset, logit, inv_t, x, out)
        cdef float lg = logit, it = inv_t
        cdef int64_t n = cnp.PyArray_DIM(x, 0)
        cdef fd_kind_t kind = float_kind(x)
        cdef const void *xp = data(x)
        cdef void *op = data(out)
        with nogil:
            self.k.concrete_flat(key, offset, lg, it, kind, xp, op, n, nthreads)
        return out

    def concrete_grad_flat(self, uint64_t key, int64_t offset, logit, inv_t, x, grad, out, partials, int nthreads=1):
        """out = grad * dtype(w) (grad's dtype) and partials[k] = the rate gradient's sum of
        (grad * x) * w * (p - drop * inv_t) over sum block offset // 1024 + k (_noise.h)."""
        _kernel_args.check_concrete_grad_flat(offset, logit, inv_t, x, grad, out, partials)
        cdef float lg = logit, it = inv_t
        cdef int64_t n = cnp.PyArray_DIM(grad, 0)
        cdef fd_kind_t gkind = float_kind(grad), xkind = float_kind(x)
        cdef const void *xp = data(x)
        cdef const void *gp = data(grad)
        cdef void *op = data(out)
        cdef double *pp = <double *>data(partials)
        with nogil:
            self.k.concrete_grad_flat(key, offset, lg, it, gkind, xkind, xp, gp, op, pp, n, nthreads)
        return out

    # --- dropout_add (_residual.h) ---
    def dropout_add(self, uint64_t key, int64_t offset, thr, scale, bias, x, residual, out, int nthreads=1):
        """out = residual + dropout(x + bias) over C-contiguous arrays of one shape (out may be x
        or residual), decision j (C order) being stream element offset + j, each operation
        rounded in x's dtype.  thr and scale are scalars or per-element rates of x's shape (as
        dropout_rows takes them); bias is None or an array of x's dtype that broadcasts to x's
        shape (any strides: a per-feature row, or a broadcast view), read in place."""
        if not common_add_call(offset, thr, scale, bias, x, residual, out):
            _kernel_args.check_dropout_add(offset, thr, scale, bias, x, residual, out)
        cdef fd_rates_t g
        cdef fd_rates_t gb
        cdef const fd_rates_t *bp = NULL
        cdef int32_t t
        cdef scale_value_t sv
        cdef fd_kind_t kind = float_kind(x)
        cdef int64_t n = cnp.PyArray_SIZE(x)
        if isinstance(thr, cnp.ndarray):
            set_rates(&g, thr, scale)
        else:
            t = thr
            set_scalar_rate(&g, &t, scale_in(&sv, scale, kind, x))
        if bias is not None:
            set_values(&gb, bias, x)
            bp = &gb
        cdef const void *xp = data(x)
        cdef const void *rp = data(residual)
        cdef void *op = data(out)
        with nogil:
            self.k.dropout_add(key, offset, n, &g, bp, kind, xp, rp, op, nthreads)
        return out


    # --- dropout and the sums of |x| (AdaptiveDropout's activity) ---
    def dropout_abs_flat(self, uint64_t key, int64_t offset, thr, scale, x, out, partials=None, int nthreads=1):
        """dropout_flat with one rate (out may be x); returns the sum of |x| (exact_sum of the
        partial sums: float64 partials[k] over sum block offset // 1024 + k, 16 lanes by stream
        index % 16, each in element order from +0, then the tree (l, l + 8), (l, l + 4),
        (l, l + 2), (0, 1); _xoshiro.h).  partials: where the partials go, or None: scratch
        of the call's own (on the stack up to SCRATCH_SUMS blocks)."""
        cdef int64_t n
        if not (common_call(offset, thr, scale, x, out, 1)
                and (partials is None or common_partials(partials, offset, cnp.PyArray_DIM(x, 0)))):
            _kernel_args.check_dropout_abs_flat(offset, thr, scale, x, out, partials)
        cdef int32_t t = thr
        cdef scale_value_t sv
        cdef fd_kind_t kind = float_kind(x)
        cdef const void *sp = scale_in(&sv, scale, kind, x)
        n = cnp.PyArray_DIM(x, 0)
        cdef const void *xp = data(x)
        cdef void *op = data(out)
        cdef int64_t nsums = ((offset + n - 1) // FD_SUM_BLOCK - offset // FD_SUM_BLOCK + 1) if n else 0
        cdef double scratch[SCRATCH_SUMS]
        cdef double *pp = scratch
        cdef double total
        if partials is not None:
            pp = <double *>data(partials)
        elif nsums > SCRATCH_SUMS:
            pp = <double *>PyMem_RawMalloc(nsums * sizeof(double))
            if pp == NULL:
                raise MemoryError(f"dropout_abs_flat: no memory for {nsums} partial sums")
        try:
            with nogil:
                self.k.dropout_abs_flat(key, offset, n, t, kind, sp, xp, op, pp, nthreads)
                total = fd_exact_sum(pp, nsums)
        finally:
            if pp != scratch and partials is None:
                PyMem_RawFree(pp)
        return total

    def abs_sums(self, int64_t offset, x, partials, int nthreads=1):
        """dropout_abs_flat's partials alone: the sums of |x| of C-contiguous 1-D x, element i
        being stream element offset + i."""
        _kernel_args.check_abs_sums(offset, x, partials)
        cdef int64_t n = cnp.PyArray_DIM(x, 0)
        cdef fd_kind_t kind = float_kind(x)
        cdef const void *xp = data(x)
        cdef double *pp = <double *>data(partials)
        with nogil:
            self.k.abs_sums(offset, n, kind, xp, pp, nthreads)
        return partials

    def exact_sum(self, terms):
        """The exactly rounded sum of the float64 terms (1-D, C-contiguous): their order does
        not matter; inf or nan as IEEE addition of the non-finite terms says (_exact_sum.h)."""
        _kernel_args.check_sum_terms(terms)
        cdef const double *tp = <const double *>data(terms)
        cdef int64_t n = cnp.PyArray_DIM(terms, 0)
        cdef double total
        with nogil:
            total = fd_exact_sum(tp, n)
        return total


cdef Kernels _kernels_of(const fd_kernels_t *table):
    cdef Kernels kernels = Kernels.__new__(Kernels)
    kernels.k = table
    kernels.ISA = table.name.decode()
    return kernels


# The variants linked into this module, slowest first: {name: Kernels}.
VARIANTS = {kernels.ISA: kernels for kernels in [_kernels_of(fd_built_table(i)) for i in range(FD_NBUILT)]}



# --- streaming stores (_simd.h) -------------------------------------------------------------------
def set_streaming_threshold(int64_t nbytes):
    """Kernel calls writing at least ``nbytes`` bytes of output use streaming stores, in every
    variant (``_backend.set_streaming_threshold`` checks the value and picks the default)."""
    fd_set_streaming_min_bytes(nbytes)


def streaming_threshold():
    """The output size in bytes from which kernel calls use streaming stores."""
    return fd_get_streaming_min_bytes()


# --- huge-page outputs (_memory.h) ----------------------------------------------------------------
cdef extern from "_memory.h":
    void *fd_huge_page_handler()

# NumPy takes a memory handler as a capsule named "mem_handler" (NEP 49); None off Linux.
cdef object HUGE_PAGE_HANDLER = (PyCapsule_New(fd_huge_page_handler(), "mem_handler", NULL)
                                 if fd_huge_page_handler() != NULL else None)
HUGE_PAGES = HUGE_PAGE_HANDLER is not None


def in_huge_pages(allocate, *args, **kwargs):
    """``allocate(*args, **kwargs)`` (``np.empty_like``, ``np.empty``) with the array data it
    allocates aligned to 2 MiB and advised for transparent huge pages (Linux: ``HUGE_PAGES``).
    The arrays own their memory as any other: NumPy frees them through the same handler.  The
    handler is NumPy's for this call only (it is context-local), so no other allocation of the
    program changes."""
    previous = cnp.PyDataMem_SetHandler(HUGE_PAGE_HANDLER)
    try:
        return allocate(*args, **kwargs)
    finally:
        cnp.PyDataMem_SetHandler(previous)
