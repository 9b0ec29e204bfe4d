# Cython view of the RNG core in _xoshiro.h: the only place these names are declared.
from libc.stdint cimport uint16_t, uint64_t

cdef extern from "_xoshiro.h" nogil:
    enum:
        FD_LANES
        FD_BLOCK_WORDS
        FD_BLOCK_CHUNKS
    uint64_t fd_mix64(uint64_t z)
    void fd_block_words(uint64_t key, uint64_t block, uint64_t *out)
    uint16_t fd_half_mul(uint16_t h, float scale)
