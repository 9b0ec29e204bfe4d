# Cython view of _xoshiro.h: the stream and partial-sum layout constants the entry points report and check.
from libc.stdint cimport int64_t, uint64_t

cdef extern from "_xoshiro.h" nogil:
    enum:
        FD_LANES
        FD_STEPS
        FD_BLOCK_WORDS
        FD_CHUNK_BITS
        FD_CHUNKS_PER_WORD
        FD_BLOCK_CHUNKS
        FD_MIX_SHIFT0
        FD_MIX_SHIFT1
        FD_MIX_SHIFT2
        FD_SUM_BLOCK
        FD_SUM_LANES
    const uint64_t FD_GOLDEN
    const uint64_t FD_MIX_MULTIPLIER0
    const uint64_t FD_MIX_MULTIPLIER1
    const int64_t FD_MAX_INDEX
