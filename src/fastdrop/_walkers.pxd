# Cython view of _walkers.h.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t

cdef extern from "_walkers.h" nogil:
    enum:
        FD_MAX_DIMS
    ctypedef enum fd_kind_t:
        FD_F16
        FD_F32
        FD_F64
        FD_KEEP
        FD_BF16
    ctypedef struct fd_rates_t:
        const int32_t *thr
        const void *scale
        int64_t inner
        int64_t step
        int nouter
        int64_t dims[FD_MAX_DIMS]
        int64_t stride[FD_MAX_DIMS]
    ctypedef struct fd_kernels_t:
        const char *name
        void (*dropout_rows)(uint64_t key, const int64_t *starts, int64_t nrows, int64_t rowlen,
                             const fd_rates_t *rates, fd_kind_t kind, const void *x, int64_t xstride,
                             void *out, int64_t ostride, int nthreads) noexcept nogil
        void (*apply_rows)(fd_kind_t kind, const void *x, void *out, const uint8_t *keep, const void *scale,
                           int ndim, const int64_t *dims, const int64_t *kstride, const int64_t *sstride,
                           int64_t nrows) noexcept nogil
        void (*fill_words)(uint64_t key, int64_t first_word, uint64_t *out, int64_t n) noexcept nogil
        # the dropout family's fused kernels (_fused.h)
        void (*alpha_flat)(uint64_t key, int64_t offset, int64_t n, int32_t thr, fd_kind_t kind, const void *c,
                           const void *x, void *out, int nthreads) noexcept nogil
        int64_t (*dropblock_keep)(uint64_t key, int64_t offset, int64_t n, int64_t c, int64_t h, int64_t w,
                                  int64_t b, uint64_t thr53, uint8_t *keep, const int64_t *strides,
                                  int nthreads) noexcept nogil
        void (*gaussian_flat)(uint64_t key, int64_t offset, float sigma, int half_noise, fd_kind_t kind,
                              const void *x, void *out, int64_t n, int nthreads) noexcept nogil
        void (*dropout_shared)(uint64_t key, int64_t offset, int64_t outer, int64_t shared, int64_t inner,
                               int32_t thr, fd_kind_t kind, const void *scale, const void *x, void *out,
                               int nthreads) noexcept nogil

        void (*concrete_flat)(uint64_t key, int64_t offset, float logit, float inv_t, fd_kind_t kind,
                              const void *x, void *out, int64_t n, int nthreads) noexcept nogil
        void (*concrete_grad_flat)(uint64_t key, int64_t offset, float logit, float inv_t, fd_kind_t gkind,
                                   fd_kind_t xkind, const void *x, const void *g, void *out, double *partials,
                                   int64_t n, int nthreads) noexcept nogil

        # dropout_add (_residual.h)
        void (*dropout_add)(uint64_t key, int64_t offset, int64_t n, const fd_rates_t *rates, const fd_rates_t *bias,
                            fd_kind_t kind, const void *x, const void *residual, void *out, int nthreads) noexcept nogil

        # dropout and the sums of |x| (AdaptiveDropout's activity)
        void (*dropout_abs_flat)(uint64_t key, int64_t offset, int64_t n, int32_t thr, fd_kind_t kind,
                                 const void *scale, const void *x, void *out, double *partials,
                                 int nthreads) noexcept nogil
        void (*abs_sums)(int64_t offset, int64_t n, fd_kind_t kind, const void *x, double *partials,
                         int nthreads) noexcept nogil
