/* The interface between the Python entry points (_kernels.pyx) and the kernels of each ISA
 * variant (_walkers.c).
 *
 * _walkers.c is compiled once per variant of _isa.py, with that variant's target flags and
 * -DFD_VARIANT=<name>; each object exports one symbol, the table fd_kernels_<name> of
 * pointers to its kernels.  The entry points validate their arguments, describe the arrays
 * in the plain C terms below, release the GIL and call through the table of the variant in
 * use.  The kernels assume valid arguments: they check nothing.
 */
#ifndef FASTDROP_WALKERS_H
#define FASTDROP_WALKERS_H
#include <stdint.h>

#define FD_MAX_DIMS 64

/* What an element is: dropout in a float type (FD_BF16: bfloat16, as ml_dtypes stores it),
   or a keep byte (0/1: the mask alone).  The noise kernels (gaussian_flat, concrete_*) and
   dropout_add take float16/32/64 only. */
typedef enum { FD_F16, FD_F32, FD_F64, FD_KEEP, FD_BF16 } fd_kind_t;

/* The bytes of one element of a kind. */
static inline int64_t fd_kind_bytes(fd_kind_t kind) {
    return kind == FD_F16 || kind == FD_BF16 ? 2 : kind == FD_F32 ? 4 : kind == FD_F64 ? 8 : 1;
}

/* The rates of a region (an array read in C order, element j its flat index) collapsed into
   rows: element j is column j % inner of row j // inner; its threshold is
   thr[base(row) + column * step] and its scale the same element of scale (x's dtype; the
   16-bit formats as their bits), base(row) being the row's outer indices times stride.  Broadcast axes have
   stride 0, so rates are never expanded.  One scalar rate is one endless row with step 0. */
typedef struct {
    const int32_t *thr;
    const void *scale;
    int64_t inner;
    int64_t step;
    int nouter;
    int64_t dims[FD_MAX_DIMS];
    int64_t stride[FD_MAX_DIMS];
} fd_rates_t;

typedef struct {
    const char *name;               /* the variant, as in _isa.py */
    /* Row r of x (rowlen elements, rows xstride elements apart) through the fused kernel into
       row r of out, its decisions being stream elements starts[r], starts[r] + 1, ... and its
       rates region elements r * rowlen ...; FD_KEEP writes keep bytes and reads no x.  Threads
       split rows, or the blocks of one long row (static schedule on block boundaries). */
    void (*dropout_rows)(uint64_t key, const int64_t *starts, int64_t nrows, int64_t rowlen,
                         const fd_rates_t *rates, fd_kind_t kind, const void *x, int64_t xstride,
                         void *out, int64_t ostride, int nthreads);
    /* out = keep ? x * scale : 0 over collapsed dims (ndim >= 1); the last dim is one
       contiguous row of x and out, C-contiguous over nrows rows; keep and scale are read with
       their strides in elements (0 on broadcast axes; kstride[ndim - 1] is 0 or 1, and where
       it is 0 so is sstride[ndim - 1]). */
    void (*apply_rows)(fd_kind_t kind, const void *x, void *out, const uint8_t *keep, const void *scale,
                       int ndim, const int64_t *dims, const int64_t *kstride, const int64_t *sstride,
                       int64_t nrows);
    /* Stream words first_word .. first_word + n into out. */
    void (*fill_words)(uint64_t key, int64_t first_word, uint64_t *out, int64_t n);
    /* The dropout family's fused kernels (element loops in _fused.h and _noise.h). */
    /* Alpha dropout of C-contiguous x (n elements of a float kind) into out, decision i
       being stream element offset + i: kept x * c[0] + c[1], dropped c[2] (x's dtype; the
       16-bit formats as bits); walked as plain dropout is (_walkers.c: plain_span). */
    void (*alpha_flat)(uint64_t key, int64_t offset, int64_t n, int32_t thr, fd_kind_t kind, const void *c,
                       const void *x, void *out, int nthreads);
    /* DropBlock's keep bytes of n x c maps of h x w (block b, corner words from offset, drawn
       when word >> 11 < thr53) at byte strides[0..3] of (n, c, h, w); returns the kept
       count (-1: out of memory). */
    int64_t (*dropblock_keep)(uint64_t key, int64_t offset, int64_t n, int64_t c, int64_t h, int64_t w, int64_t b,
                              uint64_t thr53, uint8_t *keep, const int64_t *strides, int nthreads);
    /* out[i] = x[i] * (1 + sigma * z) over n elements of a C-contiguous kind (F16/F32/F64),
       z the standard normal offset + i of the stream, from word (offset + i) / 2 (_noise.h);
       the noise is rounded to float16 first where half_noise.  Threads split blocks of words. */
    void (*gaussian_flat)(uint64_t key, int64_t offset, float sigma, int half_noise, fd_kind_t kind,
                          const void *x, void *out, int64_t n, int nthreads);
    /* Dropout of C-contiguous x viewed as (outer, shared, inner) into out, element (a, t, f)
       decided by stream element offset + a * inner + f (one decision shared by every t):
       kept x * scale, dropped +0; scale points at one value of x's dtype (16-bit formats: bits). */
    void (*dropout_shared)(uint64_t key, int64_t offset, int64_t outer, int64_t shared, int64_t inner,
                           int32_t thr, fd_kind_t kind, const void *scale, const void *x, void *out,
                           int nthreads);

    /* Concrete dropout over n elements (_noise.h), element i using stream word offset + i:
       out = x * kind(w) of C-contiguous x and out (kind F16/F32/F64). */
    void (*concrete_flat)(uint64_t key, int64_t offset, float logit, float inv_t, fd_kind_t kind, const void *x,
                          void *out, int64_t n, int nthreads);
    /* Its backward: out = g * gkind(w) (out of g's kind), partials[k] the rate gradient's
       partial sum over sum block offset / 1024 + k ((offset + n - 1) / 1024 - offset / 1024 + 1
       of them); x of xkind, all C-contiguous.  Threads split sum blocks. */
    void (*concrete_grad_flat)(uint64_t key, int64_t offset, float logit, float inv_t, fd_kind_t gkind,
                               fd_kind_t xkind, const void *x, const void *g, void *out, double *partials,
                               int64_t n, int nthreads);

    /* out[j] = residual[j] + dropout(x[j] + bias[j]) over n elements of C-contiguous x,
       residual and out of one kind (F16/F32/F64; out may be x or residual), decision j being
       stream element offset + j, each operation rounded in x's dtype (_residual.h).  rates
       as dropout_rows's over the region of the n elements; bias is NULL, or the bias values
       read as rates are: a region of x's dtype in .scale, with .dims/.stride/.inner/.step
       (.thr unused).  Threads split blocks (static schedule on block boundaries). */
    void (*dropout_add)(uint64_t key, int64_t offset, int64_t n, const fd_rates_t *rates, const fd_rates_t *bias,
                        fd_kind_t kind, const void *x, const void *residual, void *out, int nthreads);

    /* Dropout with one rate of C-contiguous x (n elements of a float kind, decision i being
       stream element offset + i; scale points at one value of x's dtype, 16-bit formats as
       bits) into out (which may be x), and partials[k] the sum of |x| (float64) over sum
       block offset / FD_SUM_BLOCK + k (_xoshiro.h).  Threads split sum blocks. */
    void (*dropout_abs_flat)(uint64_t key, int64_t offset, int64_t n, int32_t thr, fd_kind_t kind, const void *scale,
                             const void *x, void *out, double *partials, int nthreads);
    /* Those partial sums of |x| alone. */
    void (*abs_sums)(int64_t offset, int64_t n, fd_kind_t kind, const void *x, double *partials, int nthreads);
} fd_kernels_t;

#define FD_CAT_(a, b) a##b
#define FD_CAT(a, b) FD_CAT_(a, b)
#define FD_TABLE(variant) FD_CAT(fd_kernels_, variant)

/* The variants linked into the module, slowest first, as an X-macro: setup.py defines
   FD_BUILT(X) as X(baseline) X(avx2) ... from the variants it compiled.  A build that does
   not define it (a compiler without function-like -D macros) links the baseline alone. */
#ifndef FD_BUILT
#define FD_BUILT(X) X(baseline)
#endif
#define FD_DECLARE_TABLE(variant) extern const fd_kernels_t FD_TABLE(variant);
FD_BUILT(FD_DECLARE_TABLE)
#endif
