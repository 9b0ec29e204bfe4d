/* The CPU features the ISA variants of _isa.py need, as the CPU (and the OS: the checks
 * include the saved vector state) reports them.
 *
 * __builtin_cpu_supports takes string literals only, hence one static table of every
 * feature name a variant may require; tests/test_isa.py checks that _isa.py names no other.
 * Outside x86 GCC/Clang no feature is reported, so only the baseline runs.
 */
#ifndef FASTDROP_CPU_H
#define FASTDROP_CPU_H

typedef struct {
    const char *name;
    int supported;
} fd_cpu_feature_t;

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#  define FD_FEATURE(name) {name, __builtin_cpu_supports(name)}
#else
#  define FD_FEATURE(name) {name, 0}
#endif

#define FD_NFEATURES 6

/* Fill out[0 .. FD_NFEATURES) with the known features and whether this CPU has them. */
static void fd_cpu_features(fd_cpu_feature_t *out) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    __builtin_cpu_init();
#endif
    const fd_cpu_feature_t known[FD_NFEATURES] = {
        FD_FEATURE("avx2"), FD_FEATURE("f16c"), FD_FEATURE("avx512f"),
        FD_FEATURE("avx512bw"), FD_FEATURE("avx512vl"), FD_FEATURE("avx512dq"),
    };
    for (int i = 0; i < FD_NFEATURES; i++) out[i] = known[i];
}
#endif
