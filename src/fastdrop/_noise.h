/* Gaussian noise from the block streams: two standard normals per stream word, computed with
 * correctly rounded IEEE float32 operations only (+, -, *, /, sqrt, int <-> float
 * conversions, integer bit operations) in a fixed order and without FMA (-ffp-contract=off),
 * so that every ISA variant, every thread count and the NumPy twin
 * (_numpy_backend.standard_normals, which spells the same steps in NumPy) give the same bits.
 * libm is never called: its log and cos differ between builds.
 *
 * Box-Muller on the word's halves: element e (the stream index of the element) is
 * sqrt(-2 ln u) cos(theta) of word e / 2 where e is even, sqrt(-2 ln u) sin(theta) where odd
 * (the two outputs of one Box-Muller pair are independent normals):
 *   u = (2 (hi >> 2) + 1) / 2**31 in (0, 1): a 31-bit odd integer, converted to float32
 *     (one rounding) and scaled by 2**-31 (exact); ln u = E ln 2 + ln m from the float's
 *     exponent E and mantissa m in [sqrt(2)/2, sqrt(2)), ln m = 2 atanh(s),
 *     s = (m - 1)/(m + 1), by its Taylor series to s**9 (|s| <= 0.172: truncation < 2e-9
 *     relative); |z| <= sqrt(62 ln 2) = 6.56.
 *   theta = 2 pi (octant + f) / 8: the octant is the top 3 bits of lo, f = (2g + 1) / 2**24
 *     with g the next 23 bits (exact), reflected to 1 - f (exact, in integers) in odd
 *     octants, so cos(theta) and sin(theta) are +-sin and +-cos of phi = f pi/4 in (0, pi/4),
 *     each a Taylor polynomial to phi**8 / phi**9 (truncation < 3e-8), both computed anyway.
 * Measured against float64 libm (tests/test_noise.py): see the README's "Gaussian noise".
 */
#ifndef FASTDROP_NOISE_H
#define FASTDROP_NOISE_H
#include <stdint.h>
#include <string.h>
#include "_simd.h"                  /* fd_prefetch */
#include "_vec.h"
#include "_xoshiro.h"

/* The constants as float32 bit-exact hex literals; _numpy_backend.py spells the same ones. */
#define FD_NZ_LN2_HI 0x1.62e4p-1f          /* 11 significant bits: E * LN2_HI is exact */
#define FD_NZ_LN2_LO 0x1.7f7d1cp-20f
#define FD_NZ_SQRT2 0x1.6a09e6p+0f
#define FD_NZ_L3 0x1.555556p-1f            /* 2/3, 2/5, 2/7, 2/9 */
#define FD_NZ_L5 0x1.99999ap-2f
#define FD_NZ_L7 0x1.24924ap-2f
#define FD_NZ_L9 0x1.c71c72p-3f
#define FD_NZ_C2 -0x1p-1f                  /* -1/2!, 1/4!, -1/6!, 1/8! */
#define FD_NZ_C4 0x1.555556p-5f
#define FD_NZ_C6 -0x1.6c16c2p-10f
#define FD_NZ_C8 0x1.a01a02p-16f
#define FD_NZ_S2 -0x1.555556p-3f           /* -1/3!, 1/5!, -1/7!, 1/9! */
#define FD_NZ_S4 0x1.111112p-7f
#define FD_NZ_S6 -0x1.a01a02p-13f
#define FD_NZ_S8 0x1.71de3ap-19f
#define FD_NZ_PHI 0x1.921fb6p-25f          /* pi/4 / 2**24 */

/* One transform, written once over nz_f/nz_i: FD_L32-lane vectors where GCC vector types
   exist (comparisons give -1/0 lanes), else scalars (NZ_TRUE turns 1/0 into -1/0). */
#if FD_VECTOR
typedef fd_f32v nz_f;
typedef fd_i32v nz_i;
typedef uint32_t nz_u FD_V(uint32_t, FD_L32);
#  define NZ_LANES FD_L32
#  define NZ_TRUE(c) (c)
#  define NZ_SHR(i, k) ((nz_i)((nz_u)(i) >> (k)))       /* logical shift right */
#  define NZ_SHL(i, k) ((nz_i)((nz_u)(i) << (k)))       /* shift left, modulo 2**32 */
#  define NZ_WRAP_ADD(i, c) ((nz_i)((nz_u)(i) + (uint32_t)(c)))   /* addition modulo 2**32 */
#  define NZ_TO_FLOAT(i) __builtin_convertvector(i, fd_f32v)
#  define NZ_TO_INT(f) __builtin_convertvector(f, fd_i32v)
#  define NZ_AS_INT(f) ((fd_i32v)(f))
#  define NZ_AS_FLOAT(i) ((fd_f32v)(i))
static inline nz_f nz_sqrt(nz_f a) {
#  if FD_VBYTES == 64
    return (nz_f)_mm512_sqrt_ps((__m512)a);
#  elif FD_VBYTES == 32
    return (nz_f)_mm256_sqrt_ps((__m256)a);
#  elif defined(__SSE2__)
    return (nz_f)_mm_sqrt_ps((__m128)a);
#  else
    for (int l = 0; l < NZ_LANES; l++) a[l] = __builtin_sqrtf(a[l]);
    return a;
#  endif
}
#else
typedef float nz_f;
typedef int32_t nz_i;
#  define NZ_LANES 1
#  define NZ_TRUE(c) (-(int32_t)(c))
#  define NZ_SHR(i, k) ((int32_t)((uint32_t)(i) >> (k)))
#  define NZ_SHL(i, k) ((int32_t)((uint32_t)(i) << (k)))
#  define NZ_WRAP_ADD(i, c) ((int32_t)((uint32_t)(i) + (uint32_t)(c)))
#  define NZ_TO_FLOAT(i) ((float)(i))
#  define NZ_TO_INT(f) ((int32_t)(f))
static inline int32_t nz_as_int(float f) { int32_t i; memcpy(&i, &f, sizeof i); return i; }
static inline float nz_as_float(int32_t i) { float f; memcpy(&f, &i, sizeof f); return f; }
#  define NZ_AS_INT(f) nz_as_int(f)
#  define NZ_AS_FLOAT(i) nz_as_float(i)
#  include <math.h>
static inline float nz_sqrt(float a) { return sqrtf(a); }   /* correctly rounded (IEEE 754) */
#endif

/* __builtin_shufflevector (Clang, GCC >= 12) splits words into halves in registers. */
#if FD_VECTOR && !FD_BIG_ENDIAN && (defined(__clang__) || __GNUC__ >= 12)
#  define NZ_SHUFFLE 1
#  if NZ_LANES == 16
#    define NZ_ZIP_LO 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#    define NZ_ZIP_HI 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#    define NZ_EVEN 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#    define NZ_ODD 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#  elif NZ_LANES == 8
#    define NZ_ZIP_LO 0, 8, 1, 9, 2, 10, 3, 11
#    define NZ_ZIP_HI 4, 12, 5, 13, 6, 14, 7, 15
#    define NZ_EVEN 0, 2, 4, 6, 8, 10, 12, 14
#    define NZ_ODD 1, 3, 5, 7, 9, 11, 13, 15
#  else
#    define NZ_ZIP_LO 0, 4, 1, 5
#    define NZ_ZIP_HI 2, 6, 3, 7
#    define NZ_EVEN 0, 2, 4, 6
#    define NZ_ODD 1, 3, 5, 7
#  endif
#else
#  define NZ_SHUFFLE 0
#endif

/* Vector groups.  Every transform below runs NZ_ILP independent vectors through each of its
   steps together: a step is one statement over k = 0 .. NZ_ILP - 1 (NZ_EACH), so the
   instructions of NZ_ILP dependency chains interleave in program order.  One vector's chain
   (a division, then the log's series; the exp's polynomial: 60-90 cycles of latency) is
   longer than the window of waiting operations some cores hold (AMD Zen 1's floating-point
   scheduler: about one chain at a time, one instruction per cycle); interleaved, NZ_ILP
   chains advance at once on every core (bench/NOTES.md has the measurements).  Each lane
   sees the same operations in the same order: the same bits.  The arrays are indexed by
   constants once NZ_EACH is unrolled, so the compiler keeps them in registers. */
#define NZ_ILP 4
#if defined(__GNUC__)
#  define NZ_INLINE static inline __attribute__((always_inline))
#  define NZ_EACH(...) do { _Pragma("GCC unroll 16") for (int k = 0; k < NZ_ILP; k++) { __VA_ARGS__; } } while (0)
#else
#  define NZ_INLINE static inline
#  define NZ_EACH(...) do { for (int k = 0; k < NZ_ILP; k++) { __VA_ARGS__; } } while (0)
#endif
#define NZ_GROUP (NZ_ILP * NZ_LANES)            /* words of one vector group */
_Static_assert(FD_GROUP_WORDS % NZ_GROUP == 0, "the transforms take whole groups of 64 words in vector groups");

/* ln x of positive normal float32 x = 2**E m, m in [sqrt(2)/2, sqrt(2)): E ln 2 + 2 atanh(s),
   s = (m - 1)/(m + 1), the series to s**9 (the header's comment gives the error), in two
   steps: nz_log_reduce gives m and E (as a float), nz_log_series the rest. */
NZ_INLINE void nz_log_reduce(const nz_f *x, nz_f *m, nz_f *ef) {
    nz_i e[NZ_ILP], mbits[NZ_ILP], big[NZ_ILP];
    NZ_EACH(e[k] = (NZ_AS_INT(x[k]) >> 23) - 127);                   /* x > 0: no sign bit */
    NZ_EACH(mbits[k] = (NZ_AS_INT(x[k]) & 0x7FFFFF) | 0x3F800000);
    NZ_EACH(big[k] = NZ_TRUE(NZ_AS_FLOAT(mbits[k]) > FD_NZ_SQRT2));
    NZ_EACH(m[k] = NZ_AS_FLOAT(mbits[k] - (big[k] & 0x800000)));      /* m / 2, exactly */
    NZ_EACH(ef[k] = NZ_TO_FLOAT(e[k] - big[k]));
}

NZ_INLINE void nz_log_series(const nz_f *m, const nz_f *ef, nz_f *ln) {
    nz_f s[NZ_ILP], s2[NZ_ILP], p[NZ_ILP];
    NZ_EACH(s[k] = (m[k] - 1.0f) / (m[k] + 1.0f));
    NZ_EACH(s2[k] = s[k] * s[k]);
    NZ_EACH(p[k] = FD_NZ_L9 * s2[k] + FD_NZ_L7);
    NZ_EACH(p[k] = p[k] * s2[k] + FD_NZ_L5);
    NZ_EACH(p[k] = p[k] * s2[k] + FD_NZ_L3);
    NZ_EACH(p[k] = p[k] * s2[k] + 2.0f);
    NZ_EACH(p[k] = s[k] * p[k]);                                       /* ln m */
    NZ_EACH(ln[k] = ef[k] * FD_NZ_LN2_HI + (ef[k] * FD_NZ_LN2_LO + p[k]));
}

/* Box-Muller's u in (0, 1) of NZ_GROUP words given as their high 32-bit halves. */
NZ_INLINE void nz_uniform(const nz_i *hi, nz_f *u) {
    NZ_EACH(u[k] = NZ_TO_FLOAT(NZ_SHR(hi[k], 1) | 1) * 0x1p-31f);    /* 2 (hi >> 2) + 1, hi unsigned */
}

/* Box-Muller's angle theta of NZ_GROUP words given as their low 32-bit halves, as cos and sin
   of phi: the octant's fraction, reflected in odd octants, in integers.  Reflecting
   h = 2 g + 1 to 2**24 - h = 2 (2**23 - 1 - g) + 1 flips g's 23 bits. */
NZ_INLINE void nz_phi_cos_sin(const nz_i *lo, nz_f *c, nz_f *s) {
    nz_i reflect[NZ_ILP];
    nz_f phi[NZ_ILP], p2[NZ_ILP];
    NZ_EACH(reflect[k] = NZ_SHL(lo[k], 2) >> 31);                      /* -1 in odd octants (bit 29 of lo) */
    NZ_EACH(phi[k] = NZ_TO_FLOAT(((NZ_SHR(lo[k], 5) ^ reflect[k]) & 0xFFFFFE) | 1) * FD_NZ_PHI);   /* (2 g + 1) pi/4 / 2**24 */
    NZ_EACH(p2[k] = phi[k] * phi[k]);
    NZ_EACH(c[k] = FD_NZ_C8 * p2[k] + FD_NZ_C6; s[k] = FD_NZ_S8 * p2[k] + FD_NZ_S6);
    NZ_EACH(c[k] = c[k] * p2[k] + FD_NZ_C4; s[k] = s[k] * p2[k] + FD_NZ_S4);
    NZ_EACH(c[k] = c[k] * p2[k] + FD_NZ_C2; s[k] = s[k] * p2[k] + FD_NZ_S2);
    NZ_EACH(c[k] = c[k] * p2[k] + 1.0f; s[k] = s[k] * p2[k] + 1.0f);
    NZ_EACH(s[k] = phi[k] * s[k]);
}

/* cos(theta) and sin(theta) from phi's c and s and the octant, lo's top 3 bits: bit 1 of
   octant + 1 (octants 1, 2, 5, 6) makes cos the sin of phi (and sin the cos), bit 2 of
   octant + 2 modulo 8 (octants 2..5) negates cos, octants 4..7 (lo's sign bit) negate sin;
   the sums wrap and are read at bit 31. */
NZ_INLINE void nz_octant(const nz_i *lo, const nz_f *c, const nz_f *s, nz_f *cos_out, nz_f *sin_out) {
    NZ_EACH(nz_i use_sin = NZ_SHL(NZ_WRAP_ADD(lo[k], 1u << 29), 1) >> 31;
            nz_i cos_sign = NZ_WRAP_ADD(lo[k], 1u << 30) & INT32_MIN, sin_sign = lo[k] & INT32_MIN;
            cos_out[k] = NZ_AS_FLOAT(((NZ_AS_INT(c[k]) & ~use_sin) | (NZ_AS_INT(s[k]) & use_sin)) ^ cos_sign);
            sin_out[k] = NZ_AS_FLOAT(((NZ_AS_INT(s[k]) & ~use_sin) | (NZ_AS_INT(c[k]) & use_sin)) ^ sin_sign));
}

/* The high (odd lanes) or low (even lanes) 32-bit halves of words i .. i + NZ_LANES - 1. */
static inline nz_i nz_halves(const uint64_t *w, int64_t i, int high) {
#if NZ_SHUFFLE
    /* Little-endian words as 32-bit lanes: word j's low half is lane 2j, its high half 2j + 1;
       one shuffle of two vectors deinterleaves them (a scalar split cost ~15% of the time). */
    nz_i a, b;
    memcpy(&a, w + i, sizeof a);
    memcpy(&b, w + i + NZ_LANES / 2, sizeof b);
    return high ? __builtin_shufflevector(a, b, NZ_ODD) : __builtin_shufflevector(a, b, NZ_EVEN);
#else
    int32_t h[NZ_LANES];
    nz_i v;
    for (int l = 0; l < NZ_LANES; l++) {
        uint64_t word = FD_BIG_ENDIAN ? fd_swap_chunks(w[i + l]) : w[i + l];
        h[l] = (int32_t)(uint32_t)(high ? word >> 32 : word);
    }
    memcpy(&v, h, sizeof v);
    return v;
#endif
}

/* out[2l] = c[l], out[2l + 1] = s[l] for the NZ_LANES lanes l. */
NZ_INLINE void nz_store_pairs(nz_f c, nz_f s, float *out) {
#if NZ_SHUFFLE
    nz_f first = __builtin_shufflevector(c, s, NZ_ZIP_LO), second = __builtin_shufflevector(c, s, NZ_ZIP_HI);
    memcpy(out, &first, sizeof first);
    memcpy(out + NZ_LANES, &second, sizeof second);
#else
    float fc[NZ_LANES], fs[NZ_LANES];
    memcpy(fc, &c, sizeof fc);
    memcpy(fs, &s, sizeof fs);
    for (int l = 0; l < NZ_LANES; l++) {
        out[2 * l] = fc[l];
        out[2 * l + 1] = fs[l];
    }
#endif
}

/* The group's halves: NZ_ILP vectors of the high (high != 0) or low halves of words w[i ..]. */
NZ_INLINE void nz_group_halves(const uint64_t *w, int64_t i, int high, nz_i *h) {
    NZ_EACH(h[k] = nz_halves(w, i + k * NZ_LANES, high));
}

/* A vector group from / to the NZ_GROUP floats at p (the transforms' buffers). */
NZ_INLINE void nz_group_load(const float *p, nz_f *v) {
    NZ_EACH(memcpy(&v[k], p + k * NZ_LANES, sizeof v[k]));
}

NZ_INLINE void nz_group_store(float *p, const nz_f *v) {
    NZ_EACH(memcpy(p + k * NZ_LANES, &v[k], sizeof v[k]));
}

/* noise[2j] = 1 + sigma * radius * cos, noise[2j + 1] = 1 + sigma * radius * sin of word j, for
   the n (a multiple of NZ_GROUP, at most FD_GROUP_WORDS) words w; rounded to float16 and back
   where half_noise (the noise of a float16 forward).  Four loops through buffers, each a
   short step of the transform over vector groups: in one loop, each iteration is a dependency
   chain longer than the core can overlap (llvm-mca, Ice Lake, AVX2: 67 cycles an iteration
   against a 27-cycle throughput bound); short loops let it overlap their iterations.  The
   same operations, so the same bits (bench/NOTES.md has the measurements). */
static inline void nz_gaussian_noise(const uint64_t *w, int64_t n, float sigma, int half_noise, float *noise) {
    float mb[FD_GROUP_WORDS], eb[FD_GROUP_WORDS], rb[FD_GROUP_WORDS], cb[FD_GROUP_WORDS], sb[FD_GROUP_WORDS];
    for (int64_t i = 0; i < n; i += NZ_GROUP) {
        nz_i hi[NZ_ILP];
        nz_f u[NZ_ILP], m[NZ_ILP], ef[NZ_ILP];
        nz_group_halves(w, i, 1, hi);
        nz_uniform(hi, u);
        nz_log_reduce(u, m, ef);
        nz_group_store(mb + i, m);
        nz_group_store(eb + i, ef);
    }
    for (int64_t i = 0; i < n; i += NZ_GROUP) {
        nz_f m[NZ_ILP], ef[NZ_ILP], ln[NZ_ILP], r[NZ_ILP];
        nz_group_load(mb + i, m);
        nz_group_load(eb + i, ef);
        nz_log_series(m, ef, ln);
        NZ_EACH(r[k] = nz_sqrt(ln[k] * -2.0f));
        nz_group_store(rb + i, r);
    }
    for (int64_t i = 0; i < n; i += NZ_GROUP) {
        nz_i lo[NZ_ILP];
        nz_f c[NZ_ILP], sn[NZ_ILP];
        nz_group_halves(w, i, 0, lo);
        nz_phi_cos_sin(lo, c, sn);
        nz_group_store(cb + i, c);
        nz_group_store(sb + i, sn);
    }
    for (int64_t i = 0; i < n; i += NZ_GROUP) {
        nz_i lo[NZ_ILP];
        nz_f r[NZ_ILP], c[NZ_ILP], sn[NZ_ILP], cos_t[NZ_ILP], sin_t[NZ_ILP];
        nz_group_halves(w, i, 0, lo);
        nz_group_load(rb + i, r);
        nz_group_load(cb + i, c);
        nz_group_load(sb + i, sn);
        nz_octant(lo, c, sn, cos_t, sin_t);
        NZ_EACH(nz_f vc = 1.0f + sigma * (r[k] * cos_t[k]), vs = 1.0f + sigma * (r[k] * sin_t[k]);
                nz_store_pairs(vc, vs, noise + 2 * (i + k * NZ_LANES)));
    }
    if (half_noise)
        for (int64_t i = 0; i < 2 * n; i++) noise[i] = fd_half_to_float(fd_float_to_half(noise[i]));
}

/* out[i] = x[i] * noise[i] in x's type (float16: the correctly rounded product of two halves). */
static inline void nz_multiply(fd_kind_t kind, const float *noise, const char *x, char *out, int64_t n) {
    switch (kind) {
    case FD_F16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)out)[i] = fd_half_mul(((const uint16_t *)x)[i], noise[i]);
        break;
    case FD_F32:
        for (int64_t i = 0; i < n; i++) ((float *)out)[i] = ((const float *)x)[i] * noise[i];
        break;
    case FD_F64:
        for (int64_t i = 0; i < n; i++) ((double *)out)[i] = ((const double *)x)[i] * (double)noise[i];
        break;
    case FD_KEEP:
    case FD_BF16:           /* not kinds of the noise kernels */
        break;
    }
}

/* Elements lo..lo+n of block `block` (its 2 FD_BLOCK_WORDS normals; x and out point at element lo). */
static inline void nz_gaussian_block(uint64_t key, int64_t block, int64_t lo, int64_t n, float sigma, int half_noise,
                                     fd_kind_t kind, int64_t size, const char *x, char *out) {
    fd_gen_t gen;
    uint64_t words[FD_GROUP_WORDS];
    float noise[2 * FD_GROUP_WORDS];
    fd_prefetch(x, n * size, 0);            /* fetched while the normals are computed (nz_concrete_block) */
    fd_gen_seed(&gen, key, (uint64_t)block);
    for (int64_t start = 0; start < lo + n; start += 2 * FD_GROUP_WORDS) {
        fd_gen_steps(&gen, FD_GROUP_STEPS, words);
        if (start + 2 * FD_GROUP_WORDS <= lo) continue;
        int64_t a = lo > start ? lo : start;
        int64_t b = lo + n < start + 2 * FD_GROUP_WORDS ? lo + n : start + 2 * FD_GROUP_WORDS;
        nz_gaussian_noise(words, FD_GROUP_WORDS, sigma, half_noise, noise);
        nz_multiply(kind, noise + (a - start), x + (a - lo) * size, out + (a - lo) * size, b - a);
    }
}

/* out = x * noise over stream elements offset..offset+n (words offset / 2 ..); threads split
   blocks (static schedule), so each element's word, hence its bits, is independent of the
   thread count. */
static void nz_gaussian_flat(uint64_t key, int64_t offset, float sigma, int half_noise, fd_kind_t kind,
                             const void *x, void *out, int64_t n, int nthreads, int64_t parallel_min_blocks) {
    const int64_t per_block = 2 * FD_BLOCK_WORDS;                   /* elements (normals) per block */
    int64_t first = offset / per_block, head = offset - first * per_block;
    int64_t nblocks = n > 0 ? (head + n - 1) / per_block + 1 : 0;
    int64_t size = fd_kind_bytes(kind);
    const char *xb = x;
    char *ob = out;
    int parallel = nthreads > 1 && 2 * nblocks > parallel_min_blocks;      /* the threshold counts 256-element blocks */
    #pragma omp parallel for schedule(static) num_threads(nthreads) if (parallel)
    for (int64_t k = 0; k < nblocks; k++) {
        int64_t lo = k == 0 ? head : 0;                              /* element of the block */
        int64_t at = k * per_block + lo - head;                      /* element of the run */
        int64_t take = (n - at) < (per_block - lo) ? (n - at) : (per_block - lo);
        nz_gaussian_block(key, first + k, lo, take, sigma, half_noise, kind, size, xb + at * size, ob + at * size);
    }
}

/* ---- Concrete (relaxed Bernoulli) dropout ------------------------------------------------------
 * Element i uses stream word offset + i; everything is float32, the same IEEE operations in
 * the same order as _numpy_backend.concrete_weights:
 *   odd = 2 (word >> 41) + 1, u = odd / 2**24 in (0, 1) (exact), v = u / (1 - u) computed as
 *     odd / (2**24 - odd) (one rounding; the 2**-24 cancels exactly), v in [6.0e-8, 1.7e7];
 *   exp(a), a = (ln v + logit) * inv_t, in one of two ways:
 *   - where inv_t is a whole number n in [1, NZ_POWER_MAX] (temperature 0.1 gives 10):
 *     exp(a) = y**n, y = v * odds, odds = exp(logit); the power by squaring and multiplying
 *     from n's top bit down (n = 10: y**2, y**4 * y, y**10); no ln, no exp per element.
 *     "a > 86" / "a < -86" below mean y**n > 2**124 / y**n < 2**-124 here (a beyond
 *     +-85.95): a subnormal step or result can only come from a y**n below 2**-124, where
 *     drop is then 0 and keep 1 either way, so flushing subnormals to zero (a thread's FTZ
 *     and DAZ modes) changes no result;
 *   - else a = (ln v + logit) * inv_t, ln by nz_log_reduce and nz_log_series (ln v is in
 *     [-16.7, 16.7]), exp(a) by nz_exp on a clamped to [-86, 86] (where 2**k * poly(r) stays
 *     a normal float32);
 *   keep = 1 / (1 + exp(a)) (= 1 - drop): exactly 0 where a > 86 (1 - drop < 4.5e-38);
 *   w = keep * inverse_keep, inverse_keep = 1 + odds = 1 / (1 - p);
 *   drop = exp(a) * keep, exactly 1 where a > 86 and exactly 0 where a < -86;
 *   the rate gradient's factor s = w * (p - drop * inv_t), p = odds / inverse_keep.
 * The kernels compute odds, inverse_keep and p from logit with the same nz_exp. */
#define FD_NZ_LOG2E 0x1.715476p+0f
#define FD_NZ_ROUNDER 0x1.8p+23f           /* t + 1.5 * 2**23 - 1.5 * 2**23 rounds |t| < 2**22 to an integer */
#define FD_NZ_EXP_MAX 86.0f                /* exp(+-86): 2**+-124.07, normal float32 */
#define FD_NZ_E2 0x1p-1f                   /* 1/2!, 1/3!, ..., 1/7! */
#define FD_NZ_E3 0x1.555556p-3f
#define FD_NZ_E4 0x1.555556p-5f
#define FD_NZ_E5 0x1.111112p-7f
#define FD_NZ_E6 0x1.6c16c2p-10f
#define FD_NZ_E7 0x1.a01a02p-13f
#define NZ_POWER_MAX 128                   /* the largest inv_t taken as a power (_numpy_backend spells it) */
#define FD_NZ_POWER_HIGH 0x1p+124f          /* y**n above: keep 0 and drop 1 exactly (as a > 86) */
#define FD_NZ_POWER_LOW 0x1p-124f           /* y**n below: drop 0 exactly (as a < -86) */
/* exp a for a in [-86, 86]: k = a / ln 2 rounded to nearest (even) by the add-and-subtract of
   1.5 * 2**23, r = (a - k LN2_HI) - k LN2_LO in [-0.35, 0.35] (k LN2_HI exact), the Taylor
   polynomial of exp r to r**7 (truncation < 8e-9 relative), times 2**k by adding k to the
   exponent field (k in [-124, 124]: the result is normal). */
NZ_INLINE void nz_exp(const nz_f *a, nz_f *e) {
    nz_f kf[NZ_ILP], r[NZ_ILP], q[NZ_ILP];
    NZ_EACH(kf[k] = (a[k] * FD_NZ_LOG2E + FD_NZ_ROUNDER) - FD_NZ_ROUNDER);
    NZ_EACH(r[k] = (a[k] - kf[k] * FD_NZ_LN2_HI) - kf[k] * FD_NZ_LN2_LO);
    NZ_EACH(q[k] = FD_NZ_E7 * r[k] + FD_NZ_E6);
    NZ_EACH(q[k] = q[k] * r[k] + FD_NZ_E5);
    NZ_EACH(q[k] = q[k] * r[k] + FD_NZ_E4);
    NZ_EACH(q[k] = q[k] * r[k] + FD_NZ_E3);
    NZ_EACH(q[k] = q[k] * r[k] + FD_NZ_E2);
    NZ_EACH(q[k] = q[k] * r[k] + 1.0f);
    NZ_EACH(q[k] = q[k] * r[k] + 1.0f);
    NZ_EACH(e[k] = NZ_AS_FLOAT(NZ_AS_INT(q[k]) + NZ_TO_INT(kf[k]) * 0x800000));
}

/* c where mask (-1 lanes), else b. */
static inline nz_f nz_select(nz_i mask, nz_f c, nz_f b) {
    return NZ_AS_FLOAT((NZ_AS_INT(c) & mask) | (NZ_AS_INT(b) & ~mask));
}

/* The logit's constants: odds = exp(logit), inverse_keep = 1 + odds and p = odds / inverse_keep
   (logit clamped to [-86, 86], nz_exp's range; the Python layer allows |logit| <= 50). */
static inline void nz_concrete_constants(float logit, float *odds, float *inverse_keep, float *rate) {
    float l = logit > FD_NZ_EXP_MAX ? FD_NZ_EXP_MAX : logit < -FD_NZ_EXP_MAX ? -FD_NZ_EXP_MAX : logit;
    nz_f a[NZ_ILP], e[NZ_ILP];
    NZ_EACH(a[k] = (nz_f){0} + l);
    nz_exp(a, e);
    float el;
    memcpy(&el, &e[0], sizeof el);              /* lane 0 */
    *odds = el;
    *inverse_keep = 1.0f + el;
    *rate = el / *inverse_keep;
}

/* inv_t as the power n of exp(a) = y**n, or 0 where it is not a whole number in [1, NZ_POWER_MAX]. */
static inline int nz_concrete_power(float inv_t) {
    return inv_t >= 1.0f && inv_t <= (float)NZ_POWER_MAX && (float)(int)inv_t == inv_t ? (int)inv_t : 0;
}

/* v = u / (1 - u) of the NZ_GROUP words w[0 ..]. */
NZ_INLINE void nz_concrete_v(const uint64_t *w, nz_f *v) {
    nz_i hi[NZ_ILP], odd[NZ_ILP];
    nz_group_halves(w, 0, 1, hi);
    NZ_EACH(odd[k] = NZ_SHR(hi[k], 8) | 1);                           /* 2 (word >> 41) + 1 */
    NZ_EACH(v[k] = NZ_TO_FLOAT(odd[k]) / NZ_TO_FLOAT((1 << 24) - odd[k]));
}

/* a = (ln v + logit) * inv_t of the NZ_GROUP words w[0 ..]. */
NZ_INLINE void nz_concrete_arguments(const uint64_t *w, float logit, float inv_t, nz_f *a) {
    nz_f v[NZ_ILP], m[NZ_ILP], ef[NZ_ILP], ln[NZ_ILP];
    nz_concrete_v(w, v);
    nz_log_reduce(v, m, ef);
    nz_log_series(m, ef, ln);
    NZ_EACH(a[k] = (ln[k] + logit) * inv_t);
}

/* exp of the arguments a clamped to [-86, 86], nz_exp's range. */
NZ_INLINE void nz_concrete_exp(const nz_f *a, nz_f *e) {
    nz_f clamped[NZ_ILP];
    NZ_EACH(clamped[k] = nz_select(NZ_TRUE(a[k] > FD_NZ_EXP_MAX), (nz_f){0} + FD_NZ_EXP_MAX,
                                   nz_select(NZ_TRUE(a[k] < -FD_NZ_EXP_MAX), (nz_f){0} - FD_NZ_EXP_MAX, a[k])));
    nz_exp(clamped, e);
}

/* w (and, where s is not NULL, s = w * (p - drop * inv_t)) given e = exp(a), saturated where
   t, the value that stands for a (a itself, or y**n on the power's way), is above t_high
   (keep 0, drop 1) or below t_low (drop 0). */
NZ_INLINE void nz_concrete(const nz_f *t, float t_high, float t_low, const nz_f *e, float inv_t, float inverse_keep,
                           float rate, nz_f *w, nz_f *s) {
    nz_i high[NZ_ILP];
    nz_f keep[NZ_ILP];
    NZ_EACH(high[k] = NZ_TRUE(t[k] > t_high));
    NZ_EACH(keep[k] = 1.0f / (1.0f + e[k]));
    NZ_EACH(w[k] = NZ_AS_FLOAT(NZ_AS_INT(keep[k]) & ~high[k]) * inverse_keep);
    if (s)
        NZ_EACH(nz_i low = NZ_TRUE(t[k] < t_low);
                nz_f drop = nz_select(high[k], (nz_f){0} + 1.0f, NZ_AS_FLOAT(NZ_AS_INT(e[k] * keep[k]) & ~low));
                s[k] = w[k] * (rate - drop * inv_t));
}

/* exp(a) = (v * odds)**power of the NZ_GROUP words w[0 ..], squaring and multiplying from
   power's top bit down. */
NZ_INLINE void nz_concrete_powers(const uint64_t *w, float odds, int power, nz_f *e) {
    nz_f y[NZ_ILP];
    int top = 0;
    nz_concrete_v(w, y);
    NZ_EACH(y[k] = y[k] * odds);
    NZ_EACH(e[k] = y[k]);
    while (power >> (top + 1)) top++;
    for (int bit = top - 1; bit >= 0; bit--) {
        NZ_EACH(e[k] = e[k] * e[k]);
        if ((power >> bit) & 1) NZ_EACH(e[k] = e[k] * y[k]);
    }
}

/* The n (a multiple of NZ_GROUP, at most FD_BLOCK_WORDS) words' w into w_out and, where s_out
   is not NULL, s into it.
   Three loops through buffers, the argument, its exp, then the rest: one loop's body is a
   chain of dependent operations longer than the core's reordering window, and short
   independent iterations let it overlap several (measured, bench/NOTES.md: two loops made
   the forward 1.2-1.9x faster than one; three instead of two, avx2 backward 0.89x, forward
   0.96x, avx512 unchanged; the same operations, so the same bits). */
NZ_INLINE void nz_concrete_words(const uint64_t *words, int64_t n, const float *c, float *w_out, float *s_out) {
    float logit = c[0], inv_t = c[1], inverse_keep = c[2], rate = c[3], odds = c[4];
    int power = (int)c[5];
    float args[FD_BLOCK_WORDS], exps[FD_BLOCK_WORDS];
    if (power) {                        /* one short loop: y**n is a few multiplications */
        for (int64_t i = 0; i < n; i += NZ_GROUP) {
            nz_f e[NZ_ILP], w[NZ_ILP], s[NZ_ILP];
            nz_concrete_powers(words + i, odds, power, e);       /* may be +0, subnormal or inf */
            nz_concrete(e, FD_NZ_POWER_HIGH, FD_NZ_POWER_LOW, e, inv_t, inverse_keep, rate, w, s_out ? s : NULL);
            nz_group_store(w_out + i, w);
            if (s_out) nz_group_store(s_out + i, s);
        }
        return;
    }
    for (int64_t i = 0; i < n; i += NZ_GROUP) {
        nz_f a[NZ_ILP];
        nz_concrete_arguments(words + i, logit, inv_t, a);
        nz_group_store(args + i, a);
    }
    for (int64_t i = 0; i < n; i += NZ_GROUP) {
        nz_f a[NZ_ILP], e[NZ_ILP];
        nz_group_load(args + i, a);
        nz_concrete_exp(a, e);
        nz_group_store(exps + i, e);
    }
    for (int64_t i = 0; i < n; i += NZ_GROUP) {
        nz_f a[NZ_ILP], e[NZ_ILP], w[NZ_ILP], s[NZ_ILP];
        nz_group_load(args + i, a);
        nz_group_load(exps + i, e);
        nz_concrete(a, FD_NZ_EXP_MAX, -FD_NZ_EXP_MAX, e, inv_t, inverse_keep, rate, w, s_out ? s : NULL);
        nz_group_store(w_out + i, w);
        if (s_out) nz_group_store(s_out + i, s);
    }
}

/* y[i] = x[i] * kind(w[i]) (float16: w rounded to half, then the correctly rounded product). */
static inline void nz_scale(fd_kind_t kind, const float *w, const char *x, char *y, int64_t n) {
    switch (kind) {
    case FD_F16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)y)[i] = fd_half_mul(((const uint16_t *)x)[i], fd_half_to_float(fd_float_to_half(w[i])));
        break;
    case FD_F32:
        for (int64_t i = 0; i < n; i++) ((float *)y)[i] = ((const float *)x)[i] * w[i];
        break;
    case FD_F64:
        for (int64_t i = 0; i < n; i++) ((double *)y)[i] = ((const double *)x)[i] * (double)w[i];
        break;
    case FD_KEEP:
    case FD_BF16:           /* not kinds of the noise kernels */
        break;
    }
}

static inline double nz_load_double(fd_kind_t kind, const char *p, int64_t i) {
    switch (kind) {
    case FD_F16: return (double)fd_half_to_float(((const uint16_t *)p)[i]);
    case FD_BF16: return (double)fd_bf16_to_float(((const uint16_t *)p)[i]);
    case FD_F32: return (double)((const float *)p)[i];
    default: return ((const double *)p)[i];
    }
}

/* Adds the rate gradient's terms (g[i] * x[i]) * s[i] (float64) of group positions [a, b) to
   lanes[i % 16], in position order (g and x point at position a); the positions outside add
   +0, which changes no sum (a lane starting at +0 is never -0).  The kinds are constants
   where this is inlined (nz_rate_sums_of), so each copy is a plain loop. */
NZ_INLINE void nz_rate_sums(fd_kind_t gkind, fd_kind_t xkind, const float *s, const char *g, const char *x, int64_t a,
                            int64_t b, double *lanes_io) {
    double lanes[FD_SUM_LANES], term[FD_GROUP_WORDS];
    memcpy(lanes, lanes_io, sizeof lanes);
    if (a == 0 && b == FD_GROUP_WORDS) {        /* a whole group: no term buffer (lanes: FD_GROUP_WORDS % 16 == 0) */
        for (int64_t j = 0; j < FD_GROUP_WORDS; j += FD_SUM_LANES)
            for (int l = 0; l < FD_SUM_LANES; l++)
                lanes[l] += (nz_load_double(gkind, g, j + l) * nz_load_double(xkind, x, j + l)) * (double)s[j + l];
    } else {
        for (int64_t i = 0; i < FD_GROUP_WORDS; i++) term[i] = 0.0;
        for (int64_t i = a; i < b; i++)
            term[i] = (nz_load_double(gkind, g, i - a) * nz_load_double(xkind, x, i - a)) * (double)s[i];
        for (int64_t j = 0; j < FD_GROUP_WORDS; j += FD_SUM_LANES)
            for (int l = 0; l < FD_SUM_LANES; l++) lanes[l] += term[j + l];
    }
    memcpy(lanes_io, lanes, sizeof lanes);
}

static void nz_rate_sums_of(fd_kind_t gkind, fd_kind_t xkind, const float *s, const char *g, const char *x, int64_t a,
                            int64_t b, double *lanes) {
#define NZ_SUMS_X(G)                                                                        \
    switch (xkind) {                                                                        \
    case FD_F16: nz_rate_sums(G, FD_F16, s, g, x, a, b, lanes); break;                      \
    case FD_F32: nz_rate_sums(G, FD_F32, s, g, x, a, b, lanes); break;                      \
    default: nz_rate_sums(G, FD_F64, s, g, x, a, b, lanes); break;                          \
    }
    switch (gkind) {
    case FD_F16: NZ_SUMS_X(FD_F16) break;
    case FD_F32: NZ_SUMS_X(FD_F32) break;
    default: NZ_SUMS_X(FD_F64) break;
    }
#undef NZ_SUMS_X
}

/* The Concrete forward (s == NULL) or backward over words lo..lo+n of block `block` (x, g and out
   point at word lo): out = x * kind(w) (forward) or g * gkind(w) (backward, kind = gkind); the
   backward adds (g * x) * s of each element to acc[its stream index % 16], in element order.
   The whole groups around lo..lo+n are transformed in one nz_concrete_words call, up to a
   block of 256 words: its loops then hold 16 (avx512) to 64 (SSE2) independent vectors, and
   the exp's long chain of dependent operations overlaps across them (with one group of 64
   words per call the loops were latency-bound; bench/NOTES.md). */
static inline void nz_concrete_block(uint64_t key, int64_t block, int64_t lo, int64_t n, const float *c,
                                     fd_kind_t kind, fd_kind_t xkind, const char *x, const char *g, char *out,
                                     double *acc) {
    fd_gen_t gen;
    uint64_t words[FD_BLOCK_WORDS];
    float w[FD_BLOCK_WORDS], s[FD_BLOCK_WORDS];
    int64_t size = fd_kind_bytes(kind), xsize = fd_kind_bytes(xkind);
    int64_t g0 = lo / FD_GROUP_WORDS * FD_GROUP_WORDS;
    int64_t g1 = (lo + n + FD_GROUP_WORDS - 1) / FD_GROUP_WORDS * FD_GROUP_WORDS;
    /* The block's transform takes several times a memory access: its x (and g) fetched now
       arrive before the loops that read them (without, the avx2 forward waited on them for
       a fifth of its time: bench/NOTES.md). */
    fd_prefetch(x, n * xsize, 0);
    if (g != NULL) fd_prefetch(g, n * size, 0);
    fd_gen_seed(&gen, key, (uint64_t)block);
    fd_gen_steps(&gen, (int)(g1 / FD_LANES), words);
    nz_concrete_words(words + g0, g1 - g0, c, w + g0, acc ? s + g0 : NULL);
    if (acc != NULL) {
        for (int64_t start = g0; start < g1; start += FD_GROUP_WORDS) {
            int64_t a = lo > start ? lo : start, b = lo + n < start + FD_GROUP_WORDS ? lo + n : start + FD_GROUP_WORDS;
            nz_rate_sums_of(kind, xkind, s + start, g + (a - lo) * size, x + (a - lo) * xsize, a - start, b - start,
                            acc);
        }
    }
    nz_scale(kind, w + lo, acc ? g : x, out, n);
}

/* c = {logit, inv_t, inverse_keep, p, odds, power} of float32 logit and inv_t. */
static inline void nz_concrete_setup(float logit, float inv_t, float *c) {
    c[0] = logit;
    c[1] = inv_t;
    nz_concrete_constants(logit, &c[4], &c[2], &c[3]);
    c[5] = (float)nz_concrete_power(inv_t);
}

/* The Concrete forward over stream words offset..offset+n: out = x * kind(w); threads split blocks. */
static void nz_concrete_flat(uint64_t key, int64_t offset, float logit, float inv_t, fd_kind_t kind, const void *x,
                             void *out, int64_t n, int nthreads, int64_t parallel_min_blocks) {
    float c[6];
    int64_t first = offset / FD_BLOCK_WORDS, head = offset - first * FD_BLOCK_WORDS;
    int64_t nblocks = n > 0 ? (head + n - 1) / FD_BLOCK_WORDS + 1 : 0;
    int64_t size = fd_kind_bytes(kind);
    const char *xb = x;
    char *ob = out;
    nz_concrete_setup(logit, inv_t, c);
    #pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && nblocks > parallel_min_blocks)
    for (int64_t k = 0; k < nblocks; k++) {
        int64_t lo = k == 0 ? head : 0;
        int64_t at = k * FD_BLOCK_WORDS + lo - head;
        int64_t take = (n - at) < (FD_BLOCK_WORDS - lo) ? (n - at) : (FD_BLOCK_WORDS - lo);
        nz_concrete_block(key, first + k, lo, take, c, kind, kind, xb + at * size, NULL, ob + at * size, NULL);
    }
}

/* The Concrete backward over stream words offset..offset+n: out = g * gkind(w), and partials[k]
   the rate gradient's sum over the elements of sum block offset / 1024 + k: 16 lanes (stream
   index % 16), each summed in element order in float64 from +0, then added as a fixed tree
   ((l, l + 8), then (l, l + 4), (l, l + 2), (0, 1)).  Threads split sum blocks, so the
   partials are independent of the thread count. */
static void nz_concrete_grad_flat(uint64_t key, int64_t offset, float logit, float inv_t, fd_kind_t gkind,
                                  fd_kind_t xkind, const void *x, const void *g, void *out, double *partials,
                                  int64_t n, int nthreads, int64_t parallel_min_blocks) {
    float c[6];
    int64_t per = FD_SUM_BLOCK / FD_BLOCK_WORDS;                     /* stream blocks per sum block */
    int64_t first = offset / FD_SUM_BLOCK, head = offset - first * FD_SUM_BLOCK;
    int64_t nsums = n > 0 ? (head + n - 1) / FD_SUM_BLOCK + 1 : 0;
    int64_t size = fd_kind_bytes(gkind), xsize = fd_kind_bytes(xkind);
    const char *xb = x, *gb = g;
    char *ob = out;
    nz_concrete_setup(logit, inv_t, c);
    int parallel = nthreads > 1 && nsums * per > parallel_min_blocks;
    #pragma omp parallel for schedule(static) num_threads(nthreads) if (parallel)
    for (int64_t k = 0; k < nsums; k++) {
        double acc[FD_SUM_LANES] = {0};
        int64_t lo = k == 0 ? head : 0;                              /* element of the sum block */
        int64_t at = k * FD_SUM_BLOCK + lo - head;                   /* element of the run */
        int64_t end = (n - at) < (FD_SUM_BLOCK - lo) ? at + (n - at) : at + (FD_SUM_BLOCK - lo);
        for (int64_t q = lo / FD_BLOCK_WORDS; q < per && at < end; q++) {
            int64_t blo = lo > q * FD_BLOCK_WORDS ? lo - q * FD_BLOCK_WORDS : 0;
            int64_t take = (end - at) < (FD_BLOCK_WORDS - blo) ? (end - at) : (FD_BLOCK_WORDS - blo);
            nz_concrete_block(key, (first + k) * per + q, blo, take, c, gkind, xkind, xb + at * xsize, gb + at * size,
                              ob + at * size, acc);
            at += take;
        }
        for (int width = FD_SUM_LANES / 2; width >= 1; width /= 2)
            for (int l = 0; l < width; l++) acc[l] += acc[l + width];
        partials[k] = acc[0];
    }
}
#endif
