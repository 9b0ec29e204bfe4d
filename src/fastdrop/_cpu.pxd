# Cython view of _cpu.h.
cdef extern from "_cpu.h" nogil:
    enum:
        FD_NFEATURES
    ctypedef struct fd_cpu_feature_t:
        const char *name
        int supported
    void fd_cpu_features(fd_cpu_feature_t *out)
