/* The fused kernels of the dropout family (included by _walkers.c, compiled per ISA variant).
 *
 * Alpha dropout's element loops: out = kept ? x * a + b : d, each operation rounded in x's
 * dtype (the product, then the sum: no FMA), which are the bits of the NumPy composition
 * (x * a masked to 0) + (kept ? b : d) that _numpy_backend.alpha_flat also computes; the
 * walk over the stream is plain dropout's (_walkers.c: plain_span).
 *
 * DropBlock's keep mask: per (n, c) map, corners drawn from the stream words, dilated right
 * then down into keep bytes with O(W) scratch per thread, the kept count returned.
 */
#ifndef FASTDROP_FUSED_H
#define FASTDROP_FUSED_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "_walkers.h"
#include "_simd.h"

/* --- alpha dropout ------------------------------------------------------------------------ */
/* fd_alpha_<name>: n elements with coefficients c = (a, b, d), FD vectors of L lanes (float
   type V, integer type I of the keep masks from keep(chunk, thr)), scalar loop for the tail.
   One definition for float32 and float64: they differ only in these types. */
#if FD_VECTOR
#  define FD_ALPHA_VECTOR_LOOP(T, V, I, L, keep)                                  \
    {                                                                             \
        V dd = (V){0} + d;                                                        \
        I dv = (I)dd;                                                             \
        for (; i + (L) <= n; i += (L)) {                                          \
            V v;                                                                  \
            memcpy(&v, x + i, sizeof v);                                          \
            v = v * a;                                                            \
            v = v + b;                                                            \
            I m = keep(chunk + i, thr);                                           \
            I bits = ((I)v & m) | (dv & ~m);                                      \
            fd_store_vec(out + i, &bits, sizeof bits, stream);                    \
        }                                                                         \
    }
#else
#  define FD_ALPHA_VECTOR_LOOP(T, V, I, L, keep)
#endif
#define FD_ALPHA_KERNEL(name, T, V, I, L, keep)                                                     \
    static inline void fd_alpha_##name(const uint16_t *chunk, int32_t thr, const T *c, const T *x,  \
                                       T *out, int64_t n, int stream) {                             \
        T a = c[0], b = c[1], d = c[2];                                                             \
        int64_t i = 0;                                                                              \
        FD_ALPHA_VECTOR_LOOP(T, V, I, L, keep)                                                      \
        for (; i < n; i++) {                                                                        \
            T v = x[i] * a;                                                                         \
            v = v + b;                                                                              \
            out[i] = (int32_t)chunk[i] < thr ? v : d;                                               \
        }                                                                                           \
    }
FD_ALPHA_KERNEL(f32, float, fd_f32v, fd_i32v, FD_L32, fd_keep32)
FD_ALPHA_KERNEL(f64, double, fd_f64v, fd_i64v, FD_L64, fd_keep64)

/* The 16-bit formats as bits: the product and the sum each rounded to the format, as NumPy's
   float16 and ml_dtypes' bfloat16 loops do (float32 arithmetic on the widened values, one
   rounding back per operation). */
#if FD_HALF_SIMD
/* FD_L32 halves h -> float(h) + b -> half, rounded to nearest even by the F16C/AVX-512
   conversion, as fd_float_to_half rounds the scalar sum. */
static inline fd_i16v32 fd_half_add_v(fd_i16v32 h, float b) {
    fd_i16v32 out;
#  if FD_VBYTES == 64
    __m256i in;
    memcpy(&in, &h, sizeof in);
    __m256i r = _mm512_cvtps_ph(_mm512_add_ps(_mm512_cvtph_ps(in), _mm512_set1_ps(b)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#  else
    __m128i in;
    memcpy(&in, &h, sizeof in);
    __m128i r = _mm256_cvtps_ph(_mm256_add_ps(_mm256_cvtph_ps(in), _mm256_set1_ps(b)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#  endif
    memcpy(&out, &r, sizeof out);
    return out;
}
#endif

/* A 16-bit format F (_simd.h's FD_LOOPS16): MULV and ADDV multiply FD_L32 values by a float
   and add a float to them, each rounded to F; MUL, TOF and FROMF the scalar product,
   widening and rounding. */
#define FD_ALPHA16(F, MULV, ADDV, MUL, TOF, FROMF)                                                          \
    static inline void fd_alpha_##F(const uint16_t *chunk, int32_t thr, const uint16_t *c, const uint16_t *x, \
                                    uint16_t *out, int64_t n, int stream) {                                  \
        float a = TOF(c[0]), b = TOF(c[1]);                                                                  \
        int64_t i = 0;                                                                                       \
        (void)stream;                                                                                        \
        FD_VEC16_##F(fd_i16v32 dv = (fd_i16v32){0} + (int16_t)c[2];                                         \
        for (; i + FD_L32 <= n; i += FD_L32) {                                                               \
            fd_i16v32 v = ADDV(MULV(x + i, a), b);                                                           \
            fd_i16v32 m = __builtin_convertvector(fd_keep32(chunk + i, thr), fd_i16v32);                     \
            fd_i16v32 bits = (v & m) | (dv & ~m);                                                            \
            fd_store_vec(out + i, &bits, sizeof bits, stream);                                               \
        })                                                                                                   \
        for (; i < n; i++) out[i] = (int32_t)chunk[i] < thr ? FROMF(TOF(MUL(x[i], a)) + b) : c[2];           \
    }
#if FD_VECTOR
static inline fd_i16v32 fd_bf16_add_v(fd_i16v32 h, float b) {
    uint16_t lanes[FD_L32];
    memcpy(lanes, &h, sizeof lanes);
    return fd_bf16_narrow_v(fd_bf16_round32_v(fd_bf16_load_v(lanes) + b));
}
#endif
FD_ALPHA16(f16, fd_half_mul_v, fd_half_add_v, fd_half_mul, fd_half_to_float, fd_float_to_half)
FD_ALPHA16(bf16, fd_bf16_mul_v, fd_bf16_add_v, fd_bf16_mul, fd_bf16_to_float, fd_float_to_bf16)

static inline void fd_alpha_kind(fd_kind_t kind, const uint16_t *chunk, int32_t thr, const void *c,
                                 const char *x, char *out, int64_t n, int stream) {
    switch (kind) {
    case FD_F16: fd_alpha_f16(chunk, thr, c, (const uint16_t *)x, (uint16_t *)out, n, stream); break;
    case FD_BF16: fd_alpha_bf16(chunk, thr, c, (const uint16_t *)x, (uint16_t *)out, n, stream); break;
    case FD_F32: fd_alpha_f32(chunk, thr, c, (const float *)x, (float *)out, n, stream); break;
    case FD_F64: fd_alpha_f64(chunk, thr, c, (const double *)x, (double *)out, n, stream); break;
    case FD_KEEP: break;
    }
}

/* --- DropBlock ------------------------------------------------------------------------------ */
/* Stream words read in order, one block generated at a time. */
typedef struct {
    uint64_t key;
    int64_t block, at;          /* the block in b, the next word's index in it */
    fd_block_t b;
} fd_word_cursor_t;

static inline void fd_cursor_seek(fd_word_cursor_t *cur, int64_t w) {
    int64_t blk = w / FD_BLOCK_WORDS;
    if (blk != cur->block) {
        fd_block(cur->key, (uint64_t)blk, &cur->b);
        cur->block = blk;
    }
    cur->at = w - blk * FD_BLOCK_WORDS;
}

static inline uint64_t fd_cursor_next(fd_word_cursor_t *cur) {
    if (cur->at == FD_BLOCK_WORDS) {
        cur->block++;
        fd_block(cur->key, (uint64_t)cur->block, &cur->b);
        cur->at = 0;
    }
    return fd_block_word(&cur->b, cur->at++);
}

/* Consume the cursor's next words up to the first drawn one ((word >> 11) < thr53) among the
   next n, that one included; returns its position, or n when none of the n is drawn.  Draws
   are rare (gamma ~ p / b**2), so most rows of corners are this scan alone. */
static inline int64_t fd_cursor_find_drawn(fd_word_cursor_t *cur, int64_t n, uint64_t thr53) {
    int64_t j = 0;
    while (j < n) {
        if (cur->at == FD_BLOCK_WORDS) {
            cur->block++;
            fd_block(cur->key, (uint64_t)cur->block, &cur->b);
            cur->at = 0;
        }
        int64_t end = cur->at + (n - j < FD_BLOCK_WORDS - cur->at ? n - j : FD_BLOCK_WORDS - cur->at);
        while (cur->at < end) {
            uint64_t word = fd_block_word(&cur->b, cur->at++);
            if ((word >> 11) < thr53) return j;
            j++;
        }
    }
    return n;
}

/* Keep bytes of one output row: element j is kept unless a corner row after `edge` covers it. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int64_t fd_keep_row(uint8_t *row, const int64_t *last, int64_t edge, int64_t w, int64_t sw) {
    int64_t kept = 0;
    for (int64_t j = 0; j < w; j++) {
        uint8_t k = last[j] <= edge;
        row[j * sw] = k;
        kept += k;
    }
    return kept;
}

/* One map whose corners (hv x wv, C order) are the cursor's next words: corner (i, j) is
   drawn when its word >> 11 < thr53, and drops the b x b square below and right of it.
   Row i of the corners is dilated right as it is read (covered while the last drawn column
   is within b - 1), and last[j] keeps the last corner row covering column j, so output
   row i is dropped at j when last[j] > i - b.  Returns the kept count. */
static inline int64_t fd_dropblock_map(fd_word_cursor_t *cur, int64_t h, int64_t w, int64_t b, uint64_t thr53,
                                       int64_t *last, uint8_t *keep, int64_t sh, int64_t sw) {
    int64_t hv = h - b + 1, wv = w - b + 1, kept = 0;
    for (int64_t j = 0; j < w; j++) last[j] = -b;
    for (int64_t i = 0; i < h; i++) {
        if (i < hv) {
            int64_t col = -b, j = fd_cursor_find_drawn(cur, wv, thr53);     /* before it nothing is covered */
            if (j < wv) {
                col = j;
                last[j++] = i;
                for (; j < wv; j++) {
                    if ((fd_cursor_next(cur) >> 11) < thr53) col = j;
                    if (col > j - b) last[j] = i;
                }
            }
            for (; j < w && col > j - b; j++) last[j] = i;
        }
        /* a contiguous row (channels_first) gets its own copy of the loop, which vectorizes */
        kept += sw == 1 ? fd_keep_row(keep + i * sh, last, i - b, w, 1) : fd_keep_row(keep + i * sh, last, i - b, w, sw);
    }
    return kept;
}

/* The keep bytes of DropBlock over nmaps = N * C maps of h x w; map m = n * C + c takes
   corner words offset + m * hv * wv ...; keep is addressed with strides in bytes (any
   layout: channels_last is the NCHW view of an NHWC mask).  Returns the kept count, or -1
   when a thread's scratch row cannot be allocated. */
static int64_t fd_dropblock_keep(uint64_t key, int64_t offset, int64_t n, int64_t c, int64_t h, int64_t w,
                                 int64_t b, uint64_t thr53, uint8_t *keep, const int64_t *strides, int nthreads) {
    int64_t nmaps = n * c, corners = (h - b + 1) * (w - b + 1), kept = 0;
    int failed = 0;
    int parallel = nthreads > 1 && nmaps > 1 && nmaps * h * w >= ((int64_t)1 << 18);
    #pragma omp parallel num_threads(parallel ? nthreads : 1) reduction(+:kept)
    {
        fd_word_cursor_t cur;
        int64_t *last = malloc((size_t)w * sizeof *last);
        cur.key = key;
        cur.block = -1;
        if (!last) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(static)
        for (int64_t m = 0; m < nmaps; m++) {
            if (!last) continue;
            uint8_t *map = keep + (m / c) * strides[0] + (m % c) * strides[1];
            fd_cursor_seek(&cur, offset + m * corners);
            kept += fd_dropblock_map(&cur, h, w, b, thr53, last, map, strides[2], strides[3]);
        }
        free(last);
    }
    return failed ? -1 : kept;
}
#endif
