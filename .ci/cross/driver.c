/* The C core on another architecture: runs the baseline kernels of _walkers.c (compiled
 * beside this file with -DFD_VARIANT=baseline) through their function table on a fixed set
 * of keys, offsets, dtypes and rates, and prints one line per case: its name and a 64-bit
 * FNV-1a hash of the output, every element serialised little-endian whatever the host's
 * byte order.  .ci/cross/run compares these lines between x86-64 (native) and other
 * architectures under qemu-user: equal lines are equal bits.  The first line says which
 * byte-order path of _xoshiro.h was compiled (FD_BIG_ENDIAN).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_walkers.h"
#include "_xoshiro.h"

/* _simd.h's streaming threshold, defined in the extension by _kernels.pyx: here no output
   streams (streamed and ordinary stores give the same bits: tests/test_isa.py). */
int64_t fd_streaming_min_bytes = INT64_MAX;

#define N_MAX 6000

static const uint64_t KEYS[] = {0x0ULL, 0x9E3779B97F4A7C15ULL, 0xDEADBEEFCAFEBABEULL};
static const int64_t OFFSETS[] = {0, 1, 4095, ((int64_t)1 << 40) + 3};
static const int64_t SIZES[] = {1, 37, 1000, 5000};
/* p, and 1 / (1 - p) as a float16 (exact for these p; 1.0 where p = 1). */
static const double RATES[] = {0.0, 0.2, 0.5, 0.75, 0.9, 1.0};
static const uint16_t HALF_SCALES[] = {0x3C00, 0x3D00, 0x4000, 0x4400, 0x4900, 0x3C00};

typedef struct { uint64_t h; } fnv_t;

static void fnv_byte(fnv_t *f, uint8_t b) { f->h = (f->h ^ b) * 0x100000001B3ULL; }

/* Elements of `size` bytes, hashed as little-endian values. */
static uint64_t hash_le(const void *data, int64_t n, int size) {
    fnv_t f = {0xCBF29CE484222325ULL};
    const uint8_t *p = (const uint8_t *)data;
    for (int64_t i = 0; i < n; i++) {
        uint64_t v = 0;
        if (size == 1) v = p[i];
        else if (size == 2) { uint16_t t; memcpy(&t, p + 2 * i, 2); v = t; }
        else if (size == 4) { uint32_t t; memcpy(&t, p + 4 * i, 4); v = t; }
        else { memcpy(&v, p + 8 * i, 8); }
        for (int b = 0; b < size; b++) fnv_byte(&f, (uint8_t)(v >> (8 * b)));
    }
    return f.h;
}

static uint64_t lcg_state = 0x853C49E6748FEA9BULL;
static uint32_t lcg(void) {
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg_state >> 33);
}

/* Inputs of each dtype: finite values over many magnitudes, with zeros and subnormals. */
static float xf[N_MAX];
static double xd[N_MAX];
static uint16_t xh[N_MAX];
static uint16_t xb[N_MAX];

static void make_inputs(void) {
    for (int i = 0; i < N_MAX; i++) {
        double v = ((double)lcg() / 2147483648.0 - 0.5) * (double)(1 << (lcg() % 20)) / 64.0;
        if (i % 97 == 0) v = 0.0;
        if (i % 101 == 0) v = -0.0;
        if (i % 89 == 0) v = 1e-40;             /* subnormal in float32 */
        xf[i] = (float)v;
        xd[i] = v * 1.0000001;
        /* float16 bits: sign, an exponent of 0 (zero, subnormal) to 30 (finite), any mantissa */
        uint32_t r = lcg();
        xh[i] = (uint16_t)((r & 0x8000u) | (((r >> 10) % 31u) << 10) | (r & 0x3FFu));
        /* bfloat16 bits: any sign, exponent and mantissa (subnormals, inf and NaN among them) */
        xb[i] = (uint16_t)lcg();
    }
}

static const char *const KIND_NAMES[] = {"f16", "f32", "f64", "keep"};
static const int KIND_SIZES[] = {2, 4, 8, 1};

static const void *input_of(fd_kind_t kind) {
    return kind == FD_F16 ? (const void *)xh : kind == FD_F32 ? (const void *)xf : (const void *)xd;
}

static void set_scale(fd_kind_t kind, int r, float *s32, double *s64, uint16_t *s16) {
    double p = RATES[r];
    *s64 = p < 1.0 ? 1.0 / (1.0 - p) : 1.0;
    *s32 = (float)*s64;
    *s16 = HALF_SCALES[r];
    (void)kind;
}

static int32_t threshold(double p) { return (int32_t)((1.0 - p) * 65536.0 + 0.5); }

int main(void) {
    const fd_kernels_t *k = &FD_TABLE(baseline);
    static uint8_t out[N_MAX * 8];
    static uint64_t words[N_MAX];
    make_inputs();
    printf("big_endian %d\n", FD_BIG_ENDIAN);

    /* The stream itself. */
    for (int ki = 0; ki < 3; ki++)
        for (int oi = 0; oi < 4; oi++) {
            k->fill_words(KEYS[ki], OFFSETS[oi], words, 3000);
            printf("fill_words key%d off%d %016llx\n", ki, oi, (unsigned long long)hash_le(words, 3000, 8));
        }

    /* The fused dropout kernel, one scalar rate, every kind (keep: the mask alone). */
    for (int kind = FD_F16; kind <= FD_KEEP; kind++)
        for (int ki = 0; ki < 3; ki++)
            for (int oi = 0; oi < 4; oi++)
                for (int r = 0; r < 6; r++)
                    for (int si = 0; si < 4; si++) {
                        int64_t n = SIZES[si];
                        int32_t thr = threshold(RATES[r]);
                        float s32; double s64; uint16_t s16;
                        set_scale((fd_kind_t)kind, r, &s32, &s64, &s16);
                        const void *scale = kind == FD_F16 ? (const void *)&s16 : kind == FD_F32 ? (const void *)&s32
                                          : kind == FD_F64 ? (const void *)&s64 : NULL;
                        fd_rates_t g;
                        memset(&g, 0, sizeof g);
                        g.thr = &thr; g.scale = scale; g.inner = INT64_MAX; g.step = 0; g.nouter = 0;
                        int64_t start = OFFSETS[oi];
                        memset(out, 0xA5, sizeof out);
                        k->dropout_rows(KEYS[ki], &start, 1, n, &g, (fd_kind_t)kind,
                                        kind == FD_KEEP ? NULL : input_of((fd_kind_t)kind), n, out, n, 1);
                        printf("dropout %s key%d off%d p%.2f n%lld %016llx\n", KIND_NAMES[kind], ki, oi, RATES[r],
                               (long long)n, (unsigned long long)hash_le(out, n, KIND_SIZES[kind]));
                    }

    /* bfloat16 (FD_BF16 follows FD_KEEP in fd_kind_t), the same cases. */
    for (int ki = 0; ki < 3; ki++)
        for (int oi = 0; oi < 4; oi++)
            for (int r = 0; r < 6; r++)
                for (int si = 0; si < 4; si++) {
                    int64_t n = SIZES[si], start = OFFSETS[oi];
                    int32_t thr = threshold(RATES[r]);
                    uint16_t s16 = fd_float_to_bf16((float)(RATES[r] < 1.0 ? 1.0 / (1.0 - RATES[r]) : 1.0));
                    fd_rates_t g;
                    memset(&g, 0, sizeof g);
                    g.thr = &thr; g.scale = &s16; g.inner = INT64_MAX; g.step = 0; g.nouter = 0;
                    memset(out, 0xA5, sizeof out);
                    k->dropout_rows(KEYS[ki], &start, 1, n, &g, FD_BF16, xb, n, out, n, 1);
                    printf("dropout bf16 key%d off%d p%.2f n%lld %016llx\n", ki, oi, RATES[r], (long long)n,
                           (unsigned long long)hash_le(out, n, 2));
                }
    for (int ki = 0; ki < 3; ki++) {
        uint16_t cb[3] = {0x3FC0, 0xBE80, 0xBF80};          /* 1.5, -0.25, -1 */
        k->alpha_flat(KEYS[ki], 777, 5000, threshold(0.2), FD_BF16, cb, xb, out, 1);
        printf("alpha bf16 key%d %016llx\n", ki, (unsigned long long)hash_le(out, 5000, 2));
    }

    /* Per-element rates and several rows from their own stream starts. */
    static int32_t thr_el[N_MAX];
    static float scale_el[N_MAX];
    for (int i = 0; i < N_MAX; i++) {
        double p = (double)(lcg() % 1000) / 1000.0;
        thr_el[i] = threshold(p);
        scale_el[i] = (float)(1.0 / (1.0 - p));
    }
    for (int ki = 0; ki < 3; ki++) {
        fd_rates_t g;
        memset(&g, 0, sizeof g);
        g.thr = thr_el; g.scale = scale_el; g.inner = 4000; g.step = 1; g.nouter = 0;
        g.dims[0] = 4000; g.stride[0] = 1;
        int64_t start = 12345;
        k->dropout_rows(KEYS[ki], &start, 1, 4000, &g, FD_F32, xf, 4000, out, 4000, 1);
        printf("dropout_per_element f32 key%d %016llx\n", ki, (unsigned long long)hash_le(out, 4000, 4));
        int64_t starts[3] = {0, 1000003, ((int64_t)1 << 50) + 7};
        int32_t thr = threshold(0.3);
        double s64 = 1.0 / 0.7;
        fd_rates_t one;
        memset(&one, 0, sizeof one);
        one.thr = &thr; one.scale = &s64; one.inner = INT64_MAX; one.step = 0; one.nouter = 0;
        k->dropout_rows(KEYS[ki], starts, 3, 777, &one, FD_F64, xd, 777, out, 777, 1);
        printf("dropout_rows f64 key%d %016llx\n", ki, (unsigned long long)hash_le(out, 3 * 777, 8));
    }

    /* Alpha dropout: kept x * a + b, dropped d. */
    for (int kind = FD_F16; kind <= FD_F64; kind++)
        for (int ki = 0; ki < 3; ki++) {
            float c32[3] = {1.5f, -0.25f, -1.0f};
            double c64[3] = {1.5, -0.25, -1.0};
            uint16_t c16[3] = {0x3E00, 0xB400, 0xBC00};
            const void *c = kind == FD_F16 ? (const void *)c16 : kind == FD_F32 ? (const void *)c32 : (const void *)c64;
            k->alpha_flat(KEYS[ki], 777, 5000, threshold(0.2), (fd_kind_t)kind, c, input_of((fd_kind_t)kind), out, 1);
            printf("alpha %s key%d %016llx\n", KIND_NAMES[kind], ki,
                   (unsigned long long)hash_le(out, 5000, KIND_SIZES[kind]));
        }

    /* Gaussian dropout: x * (1 + sigma * z), z from the stream's Box-Muller transform. */
    for (int kind = FD_F16; kind <= FD_F64; kind++)
        for (int ki = 0; ki < 3; ki++)
            for (int half_noise = 0; half_noise < 2; half_noise++) {
                k->gaussian_flat(KEYS[ki], 99, 0.5f, half_noise, (fd_kind_t)kind, input_of((fd_kind_t)kind), out, 5000, 1);
                printf("gaussian %s key%d half_noise%d %016llx\n", KIND_NAMES[kind], ki, half_noise,
                       (unsigned long long)hash_le(out, 5000, KIND_SIZES[kind]));
            }

    /* Concrete dropout, exp(a) through ln and exp (inv_t 1 / 0.3) and as a power (inv_t 10 and
       128), saturated (logit 40 at inv_t 10): the forward, and the backward's d/dx and the
       rate gradient's partial sums (their float64 bits, hashed). */
    {
        static const float LOGITS[] = {-1.0f, 0.5f, 40.0f};
        static const float INV_TS[] = {0x1.aaaaaap+1f, 10.0f, 128.0f};
        double partials[8];
        for (int kind = FD_F16; kind <= FD_F64; kind++)
            for (int c = 0; c < 3; c++)
                for (int t = 0; t < 3; t++) {
                    const void *x = input_of((fd_kind_t)kind);
                    k->concrete_flat(KEYS[1], 1021, LOGITS[c], INV_TS[t], (fd_kind_t)kind, x, out, 5000, 1);
                    printf("concrete %s logit%d inv_t%d %016llx\n", KIND_NAMES[kind], c, t,
                           (unsigned long long)hash_le(out, 5000, KIND_SIZES[kind]));
                    k->concrete_grad_flat(KEYS[1], 1021, LOGITS[c], INV_TS[t], (fd_kind_t)kind, FD_F32, xf, x, out,
                                          partials, 5000, 1);
                    printf("concrete_grad %s logit%d inv_t%d %016llx %016llx\n", KIND_NAMES[kind], c, t,
                           (unsigned long long)hash_le(out, 5000, KIND_SIZES[kind]),
                           (unsigned long long)hash_le(partials, 6, 8));
                }
    }

    /* dropout with the sums of |x| (AdaptiveDropout's activity): the output and the float64
       partials, every float kind, a head inside a sum block and a run of several. */
    {
        static const int64_t ABS_OFFSETS[] = {0, 1021};
        double partials[8];
        for (int kind = FD_F16; kind <= FD_F64; kind++)
            for (int oi = 0; oi < 2; oi++) {
                float s32; double s64; uint16_t s16;
                set_scale((fd_kind_t)kind, 3, &s32, &s64, &s16);
                const void *scale = kind == FD_F16 ? (const void *)&s16 : kind == FD_F32 ? (const void *)&s32
                                                                                        : (const void *)&s64;
                const void *x = input_of((fd_kind_t)kind);
                int64_t nsums = (ABS_OFFSETS[oi] % 1024 + 5000 - 1) / 1024 + 1;
                k->dropout_abs_flat(KEYS[2], ABS_OFFSETS[oi], 5000, threshold(RATES[3]), (fd_kind_t)kind, scale, x,
                                    out, partials, 1);
                printf("dropout_abs %s off%d %016llx %016llx\n", KIND_NAMES[kind], oi,
                       (unsigned long long)hash_le(out, 5000, KIND_SIZES[kind]),
                       (unsigned long long)hash_le(partials, nsums, 8));
                k->abs_sums(ABS_OFFSETS[oi], 5000, (fd_kind_t)kind, x, partials, 1);
                printf("abs_sums %s off%d %016llx\n", KIND_NAMES[kind], oi,
                       (unsigned long long)hash_le(partials, nsums, 8));
            }
    }

    /* DropBlock's keep bytes of (2, 3, 9, 11) maps, block 3. */
    for (int ki = 0; ki < 3; ki++) {
        int64_t strides[4] = {3 * 9 * 11, 9 * 11, 11, 1};
        uint64_t thr53 = (uint64_t)(0.05 * 9007199254740992.0);
        int64_t kept = k->dropblock_keep(KEYS[ki], 5, 2, 3, 9, 11, 3, thr53, out, strides, 1);
        printf("dropblock key%d kept %lld %016llx\n", ki, (long long)kept,
               (unsigned long long)hash_le(out, 2 * 3 * 9 * 11, 1));
    }
    return 0;
}
