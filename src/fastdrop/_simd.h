/* fastdrop element loops: out[i] = keep ? x[i] * s : +0.0 over one block's decisions.
 *
 * Written with GCC/Clang vector types of FD_VBYTES bytes (_vec.h), which follow the target
 * flags of the ISA variant being compiled (SSE2 for the baseline, AVX2, AVX-512): the
 * same source gives every variant, and the compiler's auto-vectorizer is not trusted
 * with the mixed 16/32/64-bit widths.  A kept element is the IEEE product in x's dtype
 * (no FMA, no flush-to-zero), a dropped one is +0.0 by a bitwise select, so NaN and inf
 * drop to zero.  Scalar loops finish the tails and are the whole path elsewhere.
 */
#ifndef FASTDROP_SIMD_H
#define FASTDROP_SIMD_H
#include <stdint.h>
#include <string.h>
#include "_vec.h"
#include "_xoshiro.h"
#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

#if FD_VECTOR
typedef float fd_f32v FD_V(float, FD_L32);
typedef int32_t fd_i32v FD_V(int32_t, FD_L32);
typedef uint16_t fd_u16v32 FD_V(uint16_t, FD_L32);   /* FD_L32 decisions */
typedef int16_t fd_i16v32 FD_V(int16_t, FD_L32);
typedef int8_t fd_i8v32 FD_V(int8_t, FD_L32);
typedef uint8_t fd_u8v32 FD_V(uint8_t, FD_L32);
typedef uint8_t fd_u8v64 FD_V(uint8_t, FD_L64);
typedef double fd_f64v FD_V(double, FD_L64);
typedef int64_t fd_i64v FD_V(int64_t, FD_L64);
typedef uint16_t fd_u16v64 FD_V(uint16_t, FD_L64);
typedef int32_t fd_i32v64 FD_V(int32_t, FD_L64);
#endif

/* Vector stores, ordinary or non-temporal.  A streaming (non-temporal) store writes a whole
   line to memory without first reading it into the cache (the write-allocate read an
   ordinary store pays), so a destination that cannot stay in cache moves two streams of
   memory traffic instead of three.  Streaming stores are weakly ordered: a kernel that
   streamed ends each thread's part with fd_store_fence() (sfence).  The bits stored are the
   same either way.  fd_store_vec streams only where asked, and then dst must be aligned to
   FD_VBYTES (the walkers store the unaligned head of a segment with ordinary stores). */
#if FD_VECTOR && defined(__SSE2__)
#  define FD_STREAM 1
#  define FD_STREAM_ALIGN FD_VBYTES
#else
#  define FD_STREAM 0
#  define FD_STREAM_ALIGN 1
#endif

#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void fd_store_vec(void *dst, const void *v, size_t bytes, int stream) {
#if FD_STREAM
    if (stream) {
#  if defined(__AVX512F__)
        if (bytes == 64) {
            __m512i w;
            memcpy(&w, v, sizeof w);
            _mm512_stream_si512((void *)dst, w);
            return;
        }
#  endif
#  if defined(__AVX__)
        if (bytes == 32) {
            __m256i w;
            memcpy(&w, v, sizeof w);
            _mm256_stream_si256((__m256i *)dst, w);
            return;
        }
#  endif
        size_t b = 0;
        for (; b + 16 <= bytes; b += 16) {              /* 16-byte pieces: SSE2 */
            __m128i w;
            memcpy(&w, (const char *)v + b, sizeof w);
            _mm_stream_si128((__m128i *)((char *)dst + b), w);
        }
        for (; b < bytes; b += 4) {                     /* a vector of 8 bytes (SSE2's FD_L32 16-bit values) */
            int w;
            memcpy(&w, (const char *)v + b, sizeof w);
            _mm_stream_si32((int *)((char *)dst + b), w);
        }
        return;
    }
#else
    (void)stream;
#endif
    memcpy(dst, v, bytes);
}

/* `bytes` zero bytes at dst: streamed where asked (dst then aligned to FD_STREAM_ALIGN, as
   for fd_store_vec), so a dropped row costs what its kept neighbours' streamed stores do,
   not an ordinary store's write-allocate read; the tail under a vector by memset. */
static inline void fd_zero_bytes(void *dst, int64_t bytes, int stream) {
    int64_t b = 0;
#if FD_STREAM
    if (stream) {
        const fd_i32v zero = {0};
        for (; b + (int64_t)sizeof zero <= bytes; b += (int64_t)sizeof zero)
            fd_store_vec((char *)dst + b, &zero, sizeof zero, 1);
    }
#else
    (void)stream;
#endif
    if (b < bytes) memset((char *)dst + b, 0, (size_t)(bytes - b));
}

/* Make this thread's streaming stores globally visible before it reports its part done. */
static inline void fd_store_fence(void) {
#if FD_STREAM
    _mm_sfence();
#endif
}

/* The smallest output, in bytes, that a kernel call writes with streaming stores: outputs
   that cannot stay in the last-level cache.  Defined once for all variants by the Python
   entry points (_kernels.pyx: set_streaming_threshold), read once per kernel call. */
extern int64_t fd_streaming_min_bytes;

/* Whether a call writing `bytes` of output streams its stores. */
static inline int fd_streams(int64_t bytes) {
#if FD_STREAM
    return bytes >= __atomic_load_n(&fd_streaming_min_bytes, __ATOMIC_RELAXED);
#else
    (void)bytes;
    return 0;
#endif
}

/* How many of n elements of `size` bytes at out precede the first FD_STREAM_ALIGN boundary:
   a streaming segment stores them with ordinary stores, then the rest from that boundary. */
static inline int64_t fd_stream_head(const void *out, int64_t size, int64_t n) {
    int64_t h = (int64_t)((FD_STREAM_ALIGN - ((uintptr_t)out & (FD_STREAM_ALIGN - 1))) & (FD_STREAM_ALIGN - 1)) / size;
    return h < n ? h : n;
}

/* Keep masks (-1 kept, 0 dropped) of the next FD_L32 (or FD_L64) decisions, compared as
   signed integers: chunk in [0, 65535], thr in [0, 65536].  The widening loads are
   intrinsics where GCC's generic __builtin_convertvector lowering is slow (it went
   through scalar registers for 4 x u16 -> 4 x i64 on AVX2). */
#if FD_VECTOR
/* The next FD_L32 decisions widened to 32-bit lanes. */
static inline fd_i32v fd_widen32(const uint16_t *chunk) {
#  if FD_VBYTES == 64
    __m256i in;
    memcpy(&in, chunk, sizeof in);
    return (fd_i32v)_mm512_cvtepu16_epi32(in);
#  elif FD_VBYTES == 32
    __m128i in;
    memcpy(&in, chunk, sizeof in);
    return (fd_i32v)_mm256_cvtepu16_epi32(in);
#  elif defined(__SSE2__)
    return (fd_i32v)_mm_unpacklo_epi16(_mm_loadl_epi64((const __m128i *)chunk), _mm_setzero_si128());
#  else
    fd_u16v32 in;
    memcpy(&in, chunk, sizeof in);
    return __builtin_convertvector(in, fd_i32v);
#  endif
}

/* |x| of the FD_L64 float32 values at p, widened (exactly) to float64: the sign is cleared
   on the floats (one narrow operation) before the conversion, which gives the same doubles.
   GCC 12 lowered __builtin_convertvector of 8 floats to 8 doubles as two 4-wide conversions
   joined by an extract and an insert (AdaptiveDropout's sums of |x| then cost 0.7x the plain
   kernel's time on 10K elements); the intrinsic is one conversion. */
static inline fd_f64v fd_abs_widen_f32(const char *p) {
#  if FD_VBYTES == 64
    __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN));
    return (fd_f64v)_mm512_cvtps_pd(_mm256_andnot_ps(sign, _mm256_loadu_ps((const float *)p)));
#  elif FD_VBYTES == 32
    __m128 sign = _mm_castsi128_ps(_mm_set1_epi32(INT32_MIN));
    return (fd_f64v)_mm256_cvtps_pd(_mm_andnot_ps(sign, _mm_loadu_ps((const float *)p)));
#  elif defined(__SSE2__)
    __m128 sign = _mm_castsi128_ps(_mm_set1_epi32(INT32_MIN));
    return (fd_f64v)_mm_cvtps_pd(_mm_andnot_ps(sign, _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)p))));
#  else
    typedef float f32v64 FD_V(float, FD_L64);
    typedef int32_t i32v64 FD_V(int32_t, FD_L64);
    f32v64 f;
    memcpy(&f, p, sizeof f);
    return __builtin_convertvector((f32v64)((i32v64)f & INT32_MAX), fd_f64v);
#  endif
}

/* Keep bytes (nonzero: kept) of the next FD_L32 elements as all-ones or zero 32-bit lanes,
   and of the next FD_L64 as 64-bit lanes, FD_L32 as 16-bit lanes: widening loads, as for the
   decisions (GCC's __builtin_convertvector of bytes went through scalar registers). */
static inline fd_i32v fd_kept32(const uint8_t *keep) {
#  if FD_VBYTES == 64
    return (fd_i32v)_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)keep)) != 0;
#  elif FD_VBYTES == 32
    return (fd_i32v)_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)keep)) != 0;
#  elif defined(__SSE2__)
    int32_t four;
    memcpy(&four, keep, sizeof four);
    __m128i z = _mm_setzero_si128();
    return (fd_i32v)_mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(four), z), z) != 0;
#  else
    fd_u8v32 k;
    memcpy(&k, keep, sizeof k);
    return __builtin_convertvector(k, fd_i32v) != 0;
#  endif
}

static inline fd_i64v fd_kept64(const uint8_t *keep) {
#  if FD_VBYTES == 64
    return (fd_i64v)_mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)keep)) != 0;
#  elif FD_VBYTES == 32
    int32_t four;
    memcpy(&four, keep, sizeof four);
    return (fd_i64v)_mm256_cvtepu8_epi64(_mm_cvtsi32_si128(four)) != 0;
#  elif defined(__SSE2__)       /* no 64-bit compare: compare 2 x i32, duplicate each mask */
    __m128i z = _mm_setzero_si128();
    __m128i c = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(keep[0] | keep[1] << 8), z), z);
    __m128i m = _mm_cmpgt_epi32(c, z);
    return (fd_i64v)_mm_unpacklo_epi32(m, m);
#  else
    fd_u8v64 k;
    memcpy(&k, keep, sizeof k);
    return __builtin_convertvector(k, fd_i64v) != 0;
#  endif
}

static inline fd_i16v32 fd_kept16(const uint8_t *keep) {
    fd_i16v32 h;
#  if FD_VBYTES == 64
    __m256i w = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)keep));
#  elif FD_VBYTES == 32
    __m128i w = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)keep));
#  elif defined(__SSE2__)
    int32_t four;
    memcpy(&four, keep, sizeof four);
    __m128i w = _mm_unpacklo_epi8(_mm_cvtsi32_si128(four), _mm_setzero_si128());
#  else
    fd_u8v32 w8;
    memcpy(&w8, keep, sizeof w8);
    fd_i16v32 w = __builtin_convertvector(w8, fd_i16v32);
#  endif
    memcpy(&h, &w, sizeof h);
    return h != 0;
}

static inline fd_i32v fd_keep32(const uint16_t *chunk, int32_t thr) {
    return fd_widen32(chunk) < thr;
}

/* Against a threshold per decision, thr[0 .. FD_L32). */
static inline fd_i32v fd_keep32v(const uint16_t *chunk, const int32_t *thr) {
    fd_i32v t;
    memcpy(&t, thr, sizeof t);
    return fd_widen32(chunk) < t;
}

static inline fd_i64v fd_keep64(const uint16_t *chunk, int32_t thr) {
#  if FD_VBYTES == 64
    return (fd_i64v)_mm512_cvtepu16_epi64(_mm_loadu_si128((const __m128i *)chunk)) < (int64_t)thr;
#  elif FD_VBYTES == 32
    return (fd_i64v)_mm256_cvtepu16_epi64(_mm_loadl_epi64((const __m128i *)chunk)) < (int64_t)thr;
#  elif defined(__SSE2__)       /* no 64-bit compare: compare 2 x i32, duplicate each mask */
    int32_t two;
    memcpy(&two, chunk, sizeof two);
    __m128i c = _mm_unpacklo_epi16(_mm_cvtsi32_si128(two), _mm_setzero_si128());
    __m128i m = _mm_cmpgt_epi32(_mm_set1_epi32(thr), c);
    return (fd_i64v)_mm_unpacklo_epi32(m, m);
#  else
    fd_u16v64 in;
    memcpy(&in, chunk, sizeof in);
    return __builtin_convertvector(in, fd_i64v) < (int64_t)thr;
#  endif
}

/* Against a threshold per decision, thr[0 .. FD_L64). */
static inline fd_i64v fd_keep64v(const uint16_t *chunk, const int32_t *thr) {
#  if FD_VBYTES == 64
    __m256i t;
    memcpy(&t, thr, sizeof t);
    return (fd_i64v)_mm512_cvtepu16_epi64(_mm_loadu_si128((const __m128i *)chunk)) < (fd_i64v)_mm512_cvtepi32_epi64(t);
#  elif FD_VBYTES == 32
    return (fd_i64v)_mm256_cvtepu16_epi64(_mm_loadl_epi64((const __m128i *)chunk))
        < (fd_i64v)_mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)thr));
#  elif defined(__SSE2__)
    int32_t two;
    memcpy(&two, chunk, sizeof two);
    __m128i c = _mm_unpacklo_epi16(_mm_cvtsi32_si128(two), _mm_setzero_si128());
    __m128i m = _mm_cmpgt_epi32(_mm_loadl_epi64((const __m128i *)thr), c);
    return (fd_i64v)_mm_unpacklo_epi32(m, m);
#  else
    fd_u16v64 in;
    fd_i32v64 t;
    memcpy(&in, chunk, sizeof in);
    memcpy(&t, thr, sizeof t);
    return __builtin_convertvector(in, fd_i64v) < __builtin_convertvector(t, fd_i64v);
#  endif
}
#endif

static inline void fd_select_f32(const uint16_t *chunk, int32_t thr, float s,
                                 const float *x, float *out, int64_t n, int stream) {
    int64_t i = 0;
#if FD_VECTOR
    for (; i + FD_L32 <= n; i += FD_L32) {
        fd_f32v v;
        memcpy(&v, x + i, sizeof v);
        fd_i32v bits = (fd_i32v)(v * s) & fd_keep32(chunk + i, thr);
        fd_store_vec(out + i, &bits, sizeof bits, stream);
    }
#endif
    for (; i < n; i++) {
        float v = x[i] * s;
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        bits &= 0u - (uint32_t)((int32_t)chunk[i] < thr);
        memcpy(out + i, &bits, sizeof bits);
    }
}

static inline void fd_select_f64(const uint16_t *chunk, int32_t thr, double s,
                                 const double *x, double *out, int64_t n, int stream) {
    int64_t i = 0;
#if FD_VECTOR
    for (; i + FD_L64 <= n; i += FD_L64) {
        fd_f64v v;
        memcpy(&v, x + i, sizeof v);
        fd_i64v bits = (fd_i64v)(v * s) & fd_keep64(chunk + i, thr);
        fd_store_vec(out + i, &bits, sizeof bits, stream);
    }
#endif
    for (; i < n; i++) {
        double v = x[i] * s;
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        bits &= 0u - (uint64_t)((int32_t)chunk[i] < thr);
        memcpy(out + i, &bits, sizeof bits);
    }
}

#if defined(__F16C__) && FD_VECTOR && FD_VBYTES >= 32
/* FD_L32 halves -> floats -> product -> halves, converted by the F16C/AVX-512 hardware
   with round-to-nearest-even: the float product of two halves is exact, so this is the
   correctly rounded half product, the bits NumPy's float16 multiply gives. */
static inline fd_i16v32 fd_half_mul_v(const uint16_t *x, float s) {
    fd_i16v32 h;
#  if FD_VBYTES == 64
    __m256i in;
    memcpy(&in, x, sizeof in);
    __m256i r = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_cvtph_ps(in), _mm512_set1_ps(s)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#  else
    __m128i in;
    memcpy(&in, x, sizeof in);
    __m128i r = _mm256_cvtps_ph(_mm256_mul_ps(_mm256_cvtph_ps(in), _mm256_set1_ps(s)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#  endif
    memcpy(&h, &r, sizeof h);
    return h;
}

/* The same with a half scale per element, s[0 .. FD_L32). */
static inline fd_i16v32 fd_half_mul_vv(const uint16_t *x, const uint16_t *s) {
    fd_i16v32 h;
#  if FD_VBYTES == 64
    __m256i in, sc;
    memcpy(&in, x, sizeof in);
    memcpy(&sc, s, sizeof sc);
    __m256i r = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_cvtph_ps(in), _mm512_cvtph_ps(sc)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#  else
    __m128i in, sc;
    memcpy(&in, x, sizeof in);
    memcpy(&sc, s, sizeof sc);
    __m128i r = _mm256_cvtps_ph(_mm256_mul_ps(_mm256_cvtph_ps(in), _mm256_cvtph_ps(sc)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#  endif
    memcpy(&h, &r, sizeof h);
    return h;
}
#  define FD_HALF_SIMD 1
#else
#  define FD_HALF_SIMD 0
#endif

/* Per-element rates: decision i is kept when chunk[i] < thr[i * step] and then scaled by
   s[i * step]; step is 0 (one rate over the run: the scalar loops above) or 1 (a row of
   rates, as a per-feature p gives); any other stride takes the scalar loop. */
static inline void fd_select_rates_f32(const uint16_t *chunk, const int32_t *thr, const float *s, int64_t step,
                                       const float *x, float *out, int64_t n, int stream) {
    int64_t i = 0;
    if (step == 0) {
        fd_select_f32(chunk, thr[0], s[0], x, out, n, stream);
        return;
    }
#if FD_VECTOR
    for (; step == 1 && i + FD_L32 <= n; i += FD_L32) {
        fd_f32v v, sv;
        memcpy(&v, x + i, sizeof v);
        memcpy(&sv, s + i, sizeof sv);
        fd_i32v bits = (fd_i32v)(v * sv) & fd_keep32v(chunk + i, thr + i);
        fd_store_vec(out + i, &bits, sizeof bits, stream);
    }
#endif
    for (; i < n; i++) {
        float v = x[i] * s[i * step];
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        bits &= 0u - (uint32_t)((int32_t)chunk[i] < thr[i * step]);
        memcpy(out + i, &bits, sizeof bits);
    }
}

static inline void fd_select_rates_f64(const uint16_t *chunk, const int32_t *thr, const double *s, int64_t step,
                                       const double *x, double *out, int64_t n, int stream) {
    int64_t i = 0;
    if (step == 0) {
        fd_select_f64(chunk, thr[0], s[0], x, out, n, stream);
        return;
    }
#if FD_VECTOR
    for (; step == 1 && i + FD_L64 <= n; i += FD_L64) {
        fd_f64v v, sv;
        memcpy(&v, x + i, sizeof v);
        memcpy(&sv, s + i, sizeof sv);
        fd_i64v bits = (fd_i64v)(v * sv) & fd_keep64v(chunk + i, thr + i);
        fd_store_vec(out + i, &bits, sizeof bits, stream);
    }
#endif
    for (; i < n; i++) {
        double v = x[i] * s[i * step];
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        bits &= 0u - (uint64_t)((int32_t)chunk[i] < thr[i * step]);
        memcpy(out + i, &bits, sizeof bits);
    }
}

/* out[i] = x[i] * s for a whole row (a kept row of a shared mask). */
static inline void fd_scale_f32(float s, const float *x, float *out, int64_t n, int stream) {
    int64_t i = 0;
#if FD_VECTOR
    for (; i + FD_L32 <= n; i += FD_L32) {
        fd_f32v v;
        memcpy(&v, x + i, sizeof v);
        v *= s;
        fd_store_vec(out + i, &v, sizeof v, stream);
    }
#endif
    for (; i < n; i++) out[i] = x[i] * s;
}

static inline void fd_scale_f64(double s, const double *x, double *out, int64_t n, int stream) {
    int64_t i = 0;
#if FD_VECTOR
    for (; i + FD_L64 <= n; i += FD_L64) {
        fd_f64v v;
        memcpy(&v, x + i, sizeof v);
        v *= s;
        fd_store_vec(out + i, &v, sizeof v, stream);
    }
#endif
    for (; i < n; i++) out[i] = x[i] * s;
}

/* out[i] = keep[i] ? x[i] * s[i * s_step] : +0.0 for keep bytes (a given or shared mask,
   nonzero = kept); s_step is 0 (one scale), 1 (a scale per element) or any stride (the
   scalar loop). */
static inline void fd_apply_f32(const uint8_t *keep, const float *s, int64_t s_step,
                                const float *x, float *out, int64_t n, int stream) {
    int64_t i = 0;
#if FD_VECTOR
    fd_f32v s0 = (fd_f32v){0} + s[0];
    for (; (s_step == 0 || s_step == 1) && i + FD_L32 <= n; i += FD_L32) {
        fd_f32v v, sv = s0;
        memcpy(&v, x + i, sizeof v);
        if (s_step) memcpy(&sv, s + i, sizeof sv);
        fd_i32v bits = (fd_i32v)(v * sv) & fd_kept32(keep + i);
        fd_store_vec(out + i, &bits, sizeof bits, stream);
    }
#endif
    for (; i < n; i++) {
        float v = x[i] * s[i * s_step];
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        bits &= 0u - (uint32_t)(keep[i] != 0);
        memcpy(out + i, &bits, sizeof bits);
    }
}

static inline void fd_apply_f64(const uint8_t *keep, const double *s, int64_t s_step,
                                const double *x, double *out, int64_t n, int stream) {
    int64_t i = 0;
#if FD_VECTOR
    fd_f64v s0 = (fd_f64v){0} + s[0];
    for (; (s_step == 0 || s_step == 1) && i + FD_L64 <= n; i += FD_L64) {
        fd_f64v v, sv = s0;
        memcpy(&v, x + i, sizeof v);
        if (s_step) memcpy(&sv, s + i, sizeof sv);
        fd_i64v bits = (fd_i64v)(v * sv) & fd_kept64(keep + i);
        fd_store_vec(out + i, &bits, sizeof bits, stream);
    }
#endif
    for (; i < n; i++) {
        double v = x[i] * s[i * s_step];
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        bits &= 0u - (uint64_t)(keep[i] != 0);
        memcpy(out + i, &bits, sizeof bits);
    }
}

/* Ask for the cache lines of [p, p + bytes) ahead of use into L2, not L1 (prefetcht2):
   the streaming walks' reads.  On AMD Zen 4 a float32 streaming dropout at 16M ran
   0.71-0.81x np.multiply's time so, against 1.16-1.41x with fd_prefetch's prefetcht0 at
   8-32 KiB ahead (bench/NOTES.md); a likely reason is that requests into L2 do not hold
   L1's few miss buffers, which the streaming stores need too. */
static inline void fd_prefetch_l2(const void *p, int64_t bytes) {
#if defined(__GNUC__)
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch((const char *)p + b, 0, 1);
#endif
}

/* Ask for the cache lines of [p, p + bytes) ahead of use (read, or write: prefetchw). */
static inline void fd_prefetch(const void *p, int64_t bytes, int write) {
#if defined(__GNUC__)
    for (int64_t b = 0; b < bytes; b += 64) {
        if (write) __builtin_prefetch((const char *)p + b, 1, 3);
        else __builtin_prefetch((const char *)p + b, 0, 3);
    }
#endif
}

/* out[i] = chunk[i] < thr[i * thr_step] as 0/1 bytes; thr_step is 0 (one rate), 1, or any
   stride (the scalar loop). */
static inline void fd_keep_u8(const uint16_t *chunk, const int32_t *thr, int64_t thr_step, uint8_t *out, int64_t n) {
    int64_t i = 0;
#if FD_VECTOR
    for (; (thr_step == 0 || thr_step == 1) && i + FD_L32 <= n; i += FD_L32) {
        fd_i32v keep = thr_step ? fd_keep32v(chunk + i, thr + i) : fd_keep32(chunk + i, thr[0]);
        fd_i8v32 bytes = __builtin_convertvector(keep, fd_i8v32) & 1;
        memcpy(out + i, &bytes, sizeof bytes);
    }
#endif
    for (; i < n; i++) out[i] = (int32_t)chunk[i] < thr[i * thr_step];
}
/* out[i] = x[i] * s with its bits ANDed with mask[i] (all ones: kept, zero: dropped), for a
   mask decided once and shared by many rows (a noise shape broadcast along a middle axis):
   the select of fd_select_* without comparing decisions again. */
static inline void fd_masked_f32(const int32_t *mask, float s, const float *x, float *out, int64_t n, int stream) {
    int64_t i = 0;
#if FD_VECTOR
    for (; i + FD_L32 <= n; i += FD_L32) {
        fd_f32v v;
        fd_i32v m;
        memcpy(&v, x + i, sizeof v);
        memcpy(&m, mask + i, sizeof m);
        fd_i32v bits = (fd_i32v)(v * s) & m;
        fd_store_vec(out + i, &bits, sizeof bits, stream);
    }
#endif
    for (; i < n; i++) {
        float v = x[i] * s;
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        bits &= (uint32_t)mask[i];
        memcpy(out + i, &bits, sizeof bits);
    }
}

static inline void fd_masked_f64(const int64_t *mask, double s, const double *x, double *out, int64_t n,
                                 int stream) {
    int64_t i = 0;
#if FD_VECTOR
    for (; i + FD_L64 <= n; i += FD_L64) {
        fd_f64v v;
        fd_i64v m;
        memcpy(&v, x + i, sizeof v);
        memcpy(&m, mask + i, sizeof m);
        fd_i64v bits = (fd_i64v)(v * s) & m;
        fd_store_vec(out + i, &bits, sizeof bits, stream);
    }
#endif
    for (; i < n; i++) {
        double v = x[i] * s;
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        bits &= (uint64_t)mask[i];
        memcpy(out + i, &bits, sizeof bits);
    }
}

/* --- the 16-bit formats, as their bits: float16 and bfloat16 --------------------------------
   Their products are NumPy's: float32 arithmetic on the widened values (the product of two
   16-bit values is exact in float32), rounded back to nearest even.  float16 converts with
   the F16C/AVX-512 instructions where the variant has them (FD_HALF_SIMD), else with the
   scalar loops; bfloat16 is integer work on any vector width (FD_VECTOR): widening is a
   shift, rounding an add of 0x7FFF plus the kept bit's parity, NaN made quiet as
   fd_float_to_bf16 does.  (AVX-512 BF16's vcvtneps2bf16 is not used: it flushes subnormal
   inputs to zero, which NumPy's bfloat16 does not.) */
#if FD_VECTOR
typedef uint32_t fd_u32v FD_V(uint32_t, FD_L32);

/* FD_L32 bfloat16 values from memory as floats (exact: the widening load of fd_widen32, shifted). */
static inline fd_f32v fd_bf16_load_v(const uint16_t *x) {
    return (fd_f32v)((fd_u32v)fd_widen32(x) << 16);
}

/* Floats rounded to bfloat16, each in the low half of its 32-bit lane: kept in 32-bit lanes
   so that a keep mask of fd_keep32 applies before the one narrowing to 16 bits. */
static inline fd_u32v fd_bf16_round32_v(fd_f32v f) {
    fd_u32v u = (fd_u32v)f;
    fd_u32v nan = (fd_u32v)((fd_i32v)(u & 0x7FFFFFFFu) > 0x7F800000);  /* signed: one compare on AVX2 and SSE2 */
    fd_u32v rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16, quiet = ((u >> 16) & 0x8000u) | 0x7FC0u;
    return (rounded & ~nan) | (quiet & nan);
}

static inline fd_i16v32 fd_bf16_narrow_v(fd_u32v h) {
    return __builtin_convertvector(h, fd_i16v32);
}

static inline fd_i16v32 fd_bf16_mul_v(const uint16_t *x, float s) {
    return fd_bf16_narrow_v(fd_bf16_round32_v(fd_bf16_load_v(x) * s));
}

/* The same with a bfloat16 scale per element, s[0 .. FD_L32). */
static inline fd_i16v32 fd_bf16_mul_vv(const uint16_t *x, const uint16_t *s) {
    return fd_bf16_narrow_v(fd_bf16_round32_v(fd_bf16_load_v(x) * fd_bf16_load_v(s)));
}

/* The products where keep (fd_keep32's lanes) is set, +0 elsewhere. */
static inline fd_i16v32 fd_bf16_select_v(const uint16_t *x, float s, fd_i32v keep) {
    return fd_bf16_narrow_v(fd_bf16_round32_v(fd_bf16_load_v(x) * s) & (fd_u32v)keep);
}

static inline fd_i16v32 fd_bf16_select_vv(const uint16_t *x, const uint16_t *s, fd_i32v keep) {
    return fd_bf16_narrow_v(fd_bf16_round32_v(fd_bf16_load_v(x) * fd_bf16_load_v(s)) & (fd_u32v)keep);
}
#endif

#if FD_HALF_SIMD
static inline fd_i16v32 fd_half_select_v(const uint16_t *x, float s, fd_i32v keep) {
    return fd_half_mul_v(x, s) & __builtin_convertvector(keep, fd_i16v32);
}

static inline fd_i16v32 fd_half_select_vv(const uint16_t *x, const uint16_t *s, fd_i32v keep) {
    return fd_half_mul_vv(x, s) & __builtin_convertvector(keep, fd_i16v32);
}
#endif

/* FD_VEC16_<format>(code): the code of a vector loop where the variant has that format's
   vector arithmetic, nothing where only the scalar loops run. */
#if FD_HALF_SIMD
#  define FD_VEC16_f16(...) __VA_ARGS__
#else
#  define FD_VEC16_f16(...)
#endif
#if FD_VECTOR
#  define FD_VEC16_bf16(...) __VA_ARGS__
#else
#  define FD_VEC16_bf16(...)
#endif

/* The element loops of a 16-bit format F, as the float32/float64 ones above: MULV(x, s) and
   MULVV(x, s) multiply FD_L32 values by a float or by a vector of scales of the format,
   SELV(x, s, keep) and SELVV(x, s, keep) keep those products where fd_keep32's lanes say,
   MUL(h, s) multiplies one value, TOF(h) widens one.  Scales are floats holding values of
   the format. */
#define FD_LOOPS16(F, MULV, MULVV, SELV, SELVV, MUL, TOF)                                                  \
    static inline void fd_select_##F(const uint16_t *chunk, int32_t thr, float s, const uint16_t *x,        \
                                     uint16_t *out, int64_t n, int stream) {                                \
        int64_t i = 0;                                                                                      \
        FD_VEC16_##F(for (; i + FD_L32 <= n; i += FD_L32) {                                                 \
            fd_i16v32 bits = SELV(x + i, s, fd_keep32(chunk + i, thr));                                     \
            fd_store_vec(out + i, &bits, sizeof bits, stream);                                              \
        })                                                                                                  \
        for (; i < n; i++) out[i] = MUL(x[i], s) & (uint16_t)(0u - (uint32_t)((int32_t)chunk[i] < thr));   \
    }                                                                                                       \
    /* Per-element rates, as fd_select_rates_f32. */                                                        \
    static inline void fd_select_rates_##F(const uint16_t *chunk, const int32_t *thr, const uint16_t *s,    \
                                           int64_t step, const uint16_t *x, uint16_t *out, int64_t n,       \
                                           int stream) {                                                    \
        int64_t i = 0;                                                                                      \
        if (step == 0) {                                                                                    \
            fd_select_##F(chunk, thr[0], TOF(s[0]), x, out, n, stream);                                     \
            return;                                                                                         \
        }                                                                                                   \
        FD_VEC16_##F(for (; step == 1 && i + FD_L32 <= n; i += FD_L32) {                                    \
            fd_i16v32 bits = SELVV(x + i, s + i, fd_keep32v(chunk + i, thr + i));                           \
            fd_store_vec(out + i, &bits, sizeof bits, stream);                                              \
        })                                                                                                  \
        for (; i < n; i++)                                                                                  \
            out[i] = MUL(x[i], TOF(s[i * step])) & (uint16_t)(0u - (uint32_t)((int32_t)chunk[i] < thr[i * step])); \
    }                                                                                                       \
    /* A whole row times s (a kept row of a shared mask). */                                                \
    static inline void fd_scale_##F(float s, const uint16_t *x, uint16_t *out, int64_t n, int stream) {     \
        int64_t i = 0;                                                                                      \
        FD_VEC16_##F(for (; i + FD_L32 <= n; i += FD_L32) {                                                 \
            fd_i16v32 h = MULV(x + i, s);                                                                   \
            fd_store_vec(out + i, &h, sizeof h, stream);                                                    \
        })                                                                                                  \
        for (; i < n; i++) out[i] = MUL(x[i], s);                                                           \
    }                                                                                                       \
    /* Keep bytes, as fd_apply_f32. */                                                                      \
    static inline void fd_apply_##F(const uint8_t *keep, const uint16_t *s, int64_t s_step,                 \
                                    const uint16_t *x, uint16_t *out, int64_t n, int stream) {              \
        int64_t i = 0;                                                                                      \
        FD_VEC16_##F(float s0 = TOF(s[0]);                                                                  \
        for (; (s_step == 0 || s_step == 1) && i + FD_L32 <= n; i += FD_L32) {                              \
            fd_i16v32 h = s_step ? MULVV(x + i, s + i) : MULV(x + i, s0);                                   \
            fd_i16v32 bits = h & fd_kept16(keep + i);                                                       \
            fd_store_vec(out + i, &bits, sizeof bits, stream);                                              \
        })                                                                                                  \
        for (; i < n; i++)                                                                                  \
            out[i] = MUL(x[i], TOF(s[i * s_step])) & (uint16_t)(0u - (uint32_t)(keep[i] != 0));             \
    }                                                                                                       \
    /* A mask decided once and shared by many rows, as fd_masked_f32. */                                    \
    static inline void fd_masked_##F(const int16_t *mask, float s, const uint16_t *x, uint16_t *out,        \
                                     int64_t n, int stream) {                                               \
        int64_t i = 0;                                                                                      \
        FD_VEC16_##F(for (; i + FD_L32 <= n; i += FD_L32) {                                                 \
            fd_i16v32 m;                                                                                    \
            memcpy(&m, mask + i, sizeof m);                                                                 \
            fd_i16v32 bits = MULV(x + i, s) & m;                                                            \
            fd_store_vec(out + i, &bits, sizeof bits, stream);                                              \
        })                                                                                                  \
        for (; i < n; i++) out[i] = MUL(x[i], s) & (uint16_t)mask[i];                                       \
    }
FD_LOOPS16(f16, fd_half_mul_v, fd_half_mul_vv, fd_half_select_v, fd_half_select_vv, fd_half_mul, fd_half_to_float)
FD_LOOPS16(bf16, fd_bf16_mul_v, fd_bf16_mul_vv, fd_bf16_select_v, fd_bf16_select_vv, fd_bf16_mul, fd_bf16_to_float)
#endif
