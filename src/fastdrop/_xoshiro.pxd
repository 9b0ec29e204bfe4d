# Cython view of the C cores: the only place these names are declared.
# _xoshiro.h is the RNG (and the software float16 conversions), _simd.h the element loops.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t

cdef extern from "_xoshiro.h" nogil:
    enum:
        FD_BLOCK_WORDS
        FD_BLOCK_CHUNKS
        FD_GROUP_STEPS
        FD_GROUP_WORDS
        FD_GROUP_CHUNKS
    const int64_t FD_MAX_INDEX
    ctypedef union fd_block_t:
        uint64_t word[FD_BLOCK_WORDS]
        uint16_t chunk[FD_BLOCK_CHUNKS]
    ctypedef union fd_group_t:
        uint64_t word[FD_GROUP_WORDS]
        uint16_t chunk[FD_GROUP_CHUNKS]
    ctypedef struct fd_gen_t:
        pass
    void fd_block(uint64_t key, uint64_t block, fd_block_t *b)
    uint64_t fd_block_word(const fd_block_t *b, int64_t i)
    void fd_gen_seed(fd_gen_t *g, uint64_t key, uint64_t block)
    void fd_gen_steps(fd_gen_t *g, int nsteps, uint64_t *out)
    float fd_half_to_float(uint16_t h)

cdef extern from "_simd.h" nogil:
    void fd_select_f32(const uint16_t *chunk, int32_t thr, float s, const float *x, float *out, int64_t n)
    void fd_select_f64(const uint16_t *chunk, int32_t thr, double s, const double *x, double *out, int64_t n)
    void fd_select_f16(const uint16_t *chunk, int32_t thr, float s, const uint16_t *x, uint16_t *out, int64_t n)
    void fd_select_rates_f32(const uint16_t *chunk, const int32_t *thr, const float *s, int64_t step,
                             const float *x, float *out, int64_t n)
    void fd_select_rates_f64(const uint16_t *chunk, const int32_t *thr, const double *s, int64_t step,
                             const double *x, double *out, int64_t n)
    void fd_select_rates_f16(const uint16_t *chunk, const int32_t *thr, const uint16_t *s, int64_t step,
                             const uint16_t *x, uint16_t *out, int64_t n)
    void fd_scale_f32(float s, const float *x, float *out, int64_t n)
    void fd_scale_f64(double s, const double *x, double *out, int64_t n)
    void fd_scale_f16(float s, const uint16_t *x, uint16_t *out, int64_t n)
    void fd_apply_f32(const uint8_t *keep, const float *s, int64_t s_step, const float *x, float *out, int64_t n)
    void fd_apply_f64(const uint8_t *keep, const double *s, int64_t s_step, const double *x, double *out, int64_t n)
    void fd_apply_f16(const uint8_t *keep, const uint16_t *s, int64_t s_step, const uint16_t *x, uint16_t *out,
                      int64_t n)
    void fd_prefetch(const void *p, int64_t nbytes, int write)
    void fd_keep_u8(const uint16_t *chunk, const int32_t *thr, int64_t thr_step, uint8_t *out, int64_t n)
