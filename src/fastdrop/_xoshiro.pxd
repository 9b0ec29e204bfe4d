# Cython view of the RNG core in _xoshiro.h: the only place these names are declared.
from libc.stdint cimport uint16_t, uint64_t

cdef extern from "_xoshiro.h" nogil:
    enum:
        FD_BLOCK_WORDS
        FD_BLOCK_CHUNKS
    ctypedef union fd_block_t:
        uint64_t word[FD_BLOCK_WORDS]
        uint16_t chunk[FD_BLOCK_CHUNKS]
    void fd_block(uint64_t key, uint64_t block, fd_block_t *b)
    float fd_half_to_float(uint16_t h)
    uint16_t fd_half_mul(uint16_t h, float scale)
