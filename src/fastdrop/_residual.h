/* dropout_add's element loops: out[i] = residual[i] + dropout(x[i] + bias[i]) in one pass.
 *
 * Each operation is rounded in x's dtype, in the order of the NumPy composition that
 * _numpy_backend.dropout_add computes: h = x + bias (skipped without a bias), the dropout
 * select(keep, h * scale, +0.0) exactly as _simd.h's fd_select_* (the IEEE product in x's
 * dtype, a bitwise AND, so NaN and inf drop to +0.0), then residual + that.  No FMA
 * (-ffp-contract=off).  float16 is computed as NumPy's half loops do: each operation in
 * float32 on the widened halves and rounded back to half (the product of two halves is
 * exact in float32; a float32 sum rounded to half is the correctly rounded half sum, as
 * 24 >= 2 * 11 + 2 bits), with F16C/AVX-512 conversions where the variant has them.
 *
 * The loops are written once per dtype as always-inline bodies with the layout of the
 * rates and the bias as constant arguments; fd_dropout_add_<dtype> picks the copy:
 *   rates: FD_RA_SCALAR (one rate for the run, step 0), FD_RA_ROW (step 1), FD_RA_STRIDED;
 *   bias:  FD_BI_NONE, FD_BI_SCALAR (one value for the run, step 0), FD_BI_ROW (step 1),
 *          FD_BI_STRIDED.
 * The strided layouts take the scalar loop; the others are vector loops with scalar tails,
 * whose vectors stream where the caller asks (out then aligned to FD_STREAM_ALIGN; the tail
 * takes ordinary stores).
 */
#ifndef FASTDROP_RESIDUAL_H
#define FASTDROP_RESIDUAL_H
#include <stdint.h>
#include <string.h>
#include "_simd.h"

#if defined(__GNUC__)
#  define FD_RESIDUAL_INLINE static inline __attribute__((always_inline))
#else
#  define FD_RESIDUAL_INLINE static inline
#endif

enum { FD_RA_SCALAR, FD_RA_ROW, FD_RA_STRIDED };
enum { FD_BI_NONE, FD_BI_SCALAR, FD_BI_ROW, FD_BI_STRIDED };

static inline int fd_rates_layout(int64_t step) {
    return step == 0 ? FD_RA_SCALAR : step == 1 ? FD_RA_ROW : FD_RA_STRIDED;
}

static inline int fd_bias_layout(const void *bias, int64_t step) {
    return !bias ? FD_BI_NONE : step == 0 ? FD_BI_SCALAR : step == 1 ? FD_BI_ROW : FD_BI_STRIDED;
}

/* One body for float32 and float64: they differ only in these types and keep functions. */
#if FD_VECTOR
#  define FD_DADD_VECTOR_LOOP(T, V, I, L, keep, keepv)                                      \
    if (rl != FD_RA_STRIDED && bl != FD_BI_STRIDED) {                                       \
        for (; i + (L) <= n; i += (L)) {                                                    \
            V v, rv, sv, bv;                                                                \
            I m;                                                                            \
            memcpy(&v, x + i, sizeof v);                                                    \
            if (bl == FD_BI_SCALAR) v = v + b0;                                             \
            if (bl == FD_BI_ROW) {                                                          \
                memcpy(&bv, b + i, sizeof bv);                                              \
                v = v + bv;                                                                 \
            }                                                                               \
            if (rl == FD_RA_SCALAR) {                                                       \
                v = v * s0;                                                                 \
                m = keep(chunk + i, t0);                                                    \
            } else {                                                                        \
                memcpy(&sv, s + i, sizeof sv);                                              \
                v = v * sv;                                                                 \
                m = keepv(chunk + i, thr + i);                                              \
            }                                                                               \
            memcpy(&rv, r + i, sizeof rv);                                                  \
            rv = rv + (V)((I)v & m);                                                        \
            fd_store_vec(out + i, &rv, sizeof rv, stream);                                  \
        }                                                                                   \
    }
#else
#  define FD_DADD_VECTOR_LOOP(T, V, I, L, keep, keepv)
#endif

#define FD_DADD_BODY(name, T, U, V, I, L, keep, keepv)                                                      \
    FD_RESIDUAL_INLINE void fd_dadd_body_##name(const uint16_t *chunk, const int32_t *thr, const T *s,        \
                                                int64_t step, const T *b, int64_t bstep, const T *x,         \
                                                const T *r, T *out, int64_t n, int rl, int bl, int stream) { \
        int64_t i = 0;                                                                                       \
        int32_t t0 = thr[0];                                                                                 \
        T s0 = s[0], b0 = bl == FD_BI_NONE ? (T)0 : b[0];                                                    \
        (void)t0;                                                                                            \
        (void)s0;                                                                                            \
        (void)b0;                                                                                            \
        (void)stream;                                                                                        \
        FD_DADD_VECTOR_LOOP(T, V, I, L, keep, keepv)                                                         \
        for (; i < n; i++) {                                                                                 \
            T v = x[i], d;                                                                                   \
            U bits;                                                                                          \
            if (bl != FD_BI_NONE) v = v + b[i * bstep];                                                      \
            v = v * s[i * step];                                                                             \
            memcpy(&bits, &v, sizeof bits);                                                                  \
            bits &= (U)0 - (U)((int32_t)chunk[i] < thr[i * step]);                                           \
            memcpy(&d, &bits, sizeof d);                                                                     \
            out[i] = r[i] + d;                                                                               \
        }                                                                                                    \
    }
FD_DADD_BODY(f32, float, uint32_t, fd_f32v, fd_i32v, FD_L32, fd_keep32, fd_keep32v)
FD_DADD_BODY(f64, double, uint64_t, fd_f64v, fd_i64v, FD_L64, fd_keep64, fd_keep64v)

#if FD_HALF_SIMD
/* FD_L32 halves widened to floats, and floats rounded to halves (nearest even). */
static inline fd_f32v fd_half_load_v(const uint16_t *h) {
    fd_f32v f;
#  if FD_VBYTES == 64
    __m256i in;
    memcpy(&in, h, sizeof in);
    __m512 w = _mm512_cvtph_ps(in);
#  else
    __m128i in;
    memcpy(&in, h, sizeof in);
    __m256 w = _mm256_cvtph_ps(in);
#  endif
    memcpy(&f, &w, sizeof f);
    return f;
}

static inline fd_i16v32 fd_half_round_v(fd_f32v f) {
    fd_i16v32 h;
#  if FD_VBYTES == 64
    __m512 w;
    memcpy(&w, &f, sizeof w);
    __m256i r = _mm512_cvtps_ph(w, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#  else
    __m256 w;
    memcpy(&w, &f, sizeof w);
    __m128i r = _mm256_cvtps_ph(w, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#  endif
    memcpy(&h, &r, sizeof h);
    return h;
}

static inline fd_f32v fd_half_widen_v(fd_i16v32 h) {
    uint16_t lanes[FD_L32];
    memcpy(lanes, &h, sizeof lanes);
    return fd_half_load_v(lanes);
}
#endif

/* float16 as its bits; the scale of a scalar rate is s0 (a float, exactly a half value). */
FD_RESIDUAL_INLINE void fd_dadd_body_f16(const uint16_t *chunk, const int32_t *thr, const uint16_t *s, int64_t step,
                                         const uint16_t *b, int64_t bstep, const uint16_t *x, const uint16_t *r,
                                         uint16_t *out, int64_t n, int rl, int bl, int stream) {
    int64_t i = 0;
    (void)stream;
#if FD_HALF_SIMD
    if (rl != FD_RA_STRIDED && bl != FD_BI_STRIDED) {
        int32_t t0 = thr[0];
        float s0 = fd_half_to_float(s[0]), b0 = bl == FD_BI_NONE ? 0.0f : fd_half_to_float(b[0]);
        for (; i + FD_L32 <= n; i += FD_L32) {
            fd_f32v v = fd_half_load_v(x + i);
            fd_i32v m;
            if (bl == FD_BI_SCALAR) v = fd_half_widen_v(fd_half_round_v(v + b0));
            if (bl == FD_BI_ROW) v = fd_half_widen_v(fd_half_round_v(v + fd_half_load_v(b + i)));
            if (rl == FD_RA_SCALAR) {
                v = v * s0;
                m = fd_keep32(chunk + i, t0);
            } else {
                v = v * fd_half_load_v(s + i);
                m = fd_keep32v(chunk + i, thr + i);
            }
            fd_i16v32 dropped = fd_half_round_v(v) & __builtin_convertvector(m, fd_i16v32);
            fd_i16v32 y = fd_half_round_v(fd_half_load_v(r + i) + fd_half_widen_v(dropped));
            fd_store_vec(out + i, &y, sizeof y, stream);
        }
    }
#endif
    for (; i < n; i++) {
        uint16_t h = x[i];
        if (bl != FD_BI_NONE) h = fd_float_to_half(fd_half_to_float(h) + fd_half_to_float(b[i * bstep]));
        uint16_t d = fd_half_mul(h, fd_half_to_float(s[i * step]))
            & (uint16_t)(0u - (uint32_t)((int32_t)chunk[i] < thr[i * step]));
        out[i] = fd_float_to_half(fd_half_to_float(r[i]) + fd_half_to_float(d));
    }
}

/* The body with the layouts as constants: one specialised copy per combination. */
#define FD_DADD_DISPATCH(name, T)                                                                            \
    FD_RESIDUAL_INLINE void fd_dropout_add_##name(const uint16_t *chunk, const int32_t *thr, const T *s,      \
                                             int64_t step, const T *b, int64_t bstep, const T *x,            \
                                             const T *r, T *out, int64_t n, int stream) {                    \
        int rl = fd_rates_layout(step), bl = fd_bias_layout(b, bstep);                                       \
        if (rl == FD_RA_STRIDED || bl == FD_BI_STRIDED) {                                                    \
            fd_dadd_body_##name(chunk, thr, s, step, b, bstep, x, r, out, n, FD_RA_STRIDED, FD_BI_STRIDED, 0); \
            return;                                                                                          \
        }                                                                                                    \
        switch (rl * 4 + bl) {                                                                               \
        case FD_RA_SCALAR * 4 + FD_BI_NONE:                                                                  \
            fd_dadd_body_##name(chunk, thr, s, 0, b, 0, x, r, out, n, FD_RA_SCALAR, FD_BI_NONE, stream); break; \
        case FD_RA_SCALAR * 4 + FD_BI_SCALAR:                                                                \
            fd_dadd_body_##name(chunk, thr, s, 0, b, 0, x, r, out, n, FD_RA_SCALAR, FD_BI_SCALAR, stream); break; \
        case FD_RA_SCALAR * 4 + FD_BI_ROW:                                                                   \
            fd_dadd_body_##name(chunk, thr, s, 0, b, 1, x, r, out, n, FD_RA_SCALAR, FD_BI_ROW, stream); break; \
        case FD_RA_ROW * 4 + FD_BI_NONE:                                                                     \
            fd_dadd_body_##name(chunk, thr, s, 1, b, 0, x, r, out, n, FD_RA_ROW, FD_BI_NONE, stream); break; \
        case FD_RA_ROW * 4 + FD_BI_SCALAR:                                                                   \
            fd_dadd_body_##name(chunk, thr, s, 1, b, 0, x, r, out, n, FD_RA_ROW, FD_BI_SCALAR, stream); break; \
        default:                                                                                             \
            fd_dadd_body_##name(chunk, thr, s, 1, b, 1, x, r, out, n, FD_RA_ROW, FD_BI_ROW, stream); break;  \
        }                                                                                                    \
    }
FD_DADD_DISPATCH(f16, uint16_t)
FD_DADD_DISPATCH(f32, float)
FD_DADD_DISPATCH(f64, double)
#endif
