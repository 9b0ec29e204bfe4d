/* The vector width of the ISA variant being compiled: the one place it follows from the
 * target flags (_isa.py), read by the generator (_xoshiro.h) and the element loops (_simd.h).
 *
 * GCC and Clang vector types of FD_VBYTES bytes: 64 with AVX-512, 32 with AVX2, else 16
 * (SSE2 on x86-64; other architectures lower them to their own registers).  Other
 * compilers get FD_VECTOR 0: the scalar loops alone, the same bits.
 */
#ifndef FASTDROP_VEC_H
#define FASTDROP_VEC_H

#if defined(__GNUC__)
#  define FD_VECTOR 1
#  if defined(__AVX512F__)
#    define FD_VBYTES 64
#  elif defined(__AVX2__)
#    define FD_VBYTES 32
#  else
#    define FD_VBYTES 16
#  endif
#  define FD_V(T, n) __attribute__((vector_size((n) * sizeof(T))))
#  define FD_L32 (FD_VBYTES / 4)          /* elements per vector of 32-bit values */
#  define FD_L64 (FD_VBYTES / 8)          /* elements per vector of 64-bit values */
#else
#  define FD_VECTOR 0
#endif
#endif
