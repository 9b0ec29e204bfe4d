/* The exactly rounded sum of float64 terms: the reducing kernels' partial sums (Concrete's
 * rate gradient, AdaptiveDropout's |x|) added so that neither their order, hence the thread
 * count, nor the backend changes the float.  The twin is _numpy_backend.exact_sum (math.fsum,
 * and exact rationals where an intermediate leaves float64's range): the same float for
 * every input, tests/test_exact_sum.py.
 *
 * Why not math.fsum from C: the call, the list of Python floats and the partials' array cost
 * ~0.5 us of AdaptiveDropout's ~5 us forward on 10K elements (bench/NOTES.md); this adds the
 * terms of the kernel's own scratch without the GIL.
 *
 * How: every finite float64 is an integer multiple of 2**-1074 below 2**1024 (2098 bits), so
 * the terms add exactly in one fixed-point integer, with headroom for 2**62 terms, held as
 * 32-bit digits in int64 cells that take carries lazily (a term adds less than 2**32 to three
 * cells; the cells are carried every 2**20 terms, long before any can overflow).  The total is
 * rounded once, to nearest with ties to even; past float64's range it is +-inf, as rounding
 * says.  Non-finite terms add as IEEE addition does: nan for a nan or for inf - inf, else the
 * inf.  An exact zero is +0.0.  Integer arithmetic and one ldexp of an exact value: the same
 * bits under every compiler flag and ISA.
 */
#ifndef FASTDROP_EXACT_SUM_H
#define FASTDROP_EXACT_SUM_H
#include <math.h>
#include <stdint.h>
#include <string.h>

#define FD_XS_DIGITS 68                        /* ceil((2098 + 62) / 32) */
/* terms between carries: 2**30 would keep |cell| < 2**62; 2**20 costs nothing more and lets a
   test of 8 MiB cross it (tests/test_exact_sum.py) */
#define FD_XS_CARRY_EVERY ((int64_t)1 << 20)
#define FD_XS_RADIX ((int64_t)1 << 32)

/* Propagates the cells' carries upward: cells 0..FD_XS_DIGITS-2 end in [0, 2**32), the top
   cell holds the signed rest.  Floor division by 2**32 without shifting negative values. */
static void fd_xs_carry(int64_t *cell) {
    for (int i = 0; i < FD_XS_DIGITS - 1; i++) {
        int64_t low = cell[i] & (FD_XS_RADIX - 1);
        int64_t carry = (cell[i] - low) / FD_XS_RADIX;
        cell[i] = low;
        cell[i + 1] += carry;
    }
}

/* The digit i of the carried non-negative total (0 below the first). */
static inline uint64_t fd_xs_digit(const int64_t *cell, int i) {
    return i < 0 ? 0 : (uint64_t)cell[i];
}

/* The carried non-negative total (cells in [0, 2**32)) times 2**-1074, rounded to nearest
   with ties to even. */
static double fd_xs_round(const int64_t *cell) {
    int top = FD_XS_DIGITS - 1;
    while (top >= 0 && cell[top] == 0) top--;
    if (top < 0) return 0.0;
    int width = 0;                              /* the bit length of the top digit, 1..32 */
    while (width < 32 && (fd_xs_digit(cell, top) >> width) != 0) width++;
    int length = 32 * top + width;              /* the total's bit length */
    if (length <= 53)                           /* exact: below 2**53 ulps of 2**-1074 */
        return ldexp((double)(fd_xs_digit(cell, 1) << 32 | fd_xs_digit(cell, 0)), -1074);
    /* the total's top 64 bits, and whether any bit below them is set */
    uint64_t window = fd_xs_digit(cell, top) << (64 - width) | fd_xs_digit(cell, top - 1) << (32 - width)
                      | fd_xs_digit(cell, top - 2) >> width;
    int sticky = (fd_xs_digit(cell, top - 2) & (((uint64_t)1 << width) - 1)) != 0;
    for (int i = top - 3; i >= 0 && !sticky; i--) sticky = cell[i] != 0;
    uint64_t mantissa = window >> 11, rest = window & 0x7ff;
    if (rest > 0x400 || (rest == 0x400 && (sticky || (mantissa & 1)))) mantissa++;
    return ldexp((double)mantissa, length - 53 - 1074);   /* exact, or +inf past the range */
}

static double fd_exact_sum(const double *terms, int64_t n) {
    int64_t cell[FD_XS_DIGITS];
    int nan = 0, pinf = 0, ninf = 0;
    memset(cell, 0, sizeof cell);
    for (int64_t k = 0; k < n; k++) {
        uint64_t bits;
        memcpy(&bits, terms + k, sizeof bits);
        int exponent = (int)(bits >> 52 & 0x7ff);
        uint64_t mantissa = bits & (((uint64_t)1 << 52) - 1);
        if (exponent == 0x7ff) {                /* inf or nan */
            if (mantissa) nan = 1;
            else if (bits >> 63) ninf = 1;
            else pinf = 1;
            continue;
        }
        if (exponent) mantissa |= (uint64_t)1 << 52;
        else exponent = 1;                      /* subnormal: the least exponent, no hidden bit */
        int shift = exponent - 1, i = shift / 32, off = shift % 32;   /* the term's lowest bit: 2**shift ulps */
        int64_t d0 = (int64_t)((mantissa << off) & (FD_XS_RADIX - 1));
        int64_t d1 = (int64_t)((mantissa >> (32 - off)) & (FD_XS_RADIX - 1));
        int64_t d2 = (int64_t)((mantissa >> 1) >> (63 - off));
        if (bits >> 63) {
            cell[i] -= d0; cell[i + 1] -= d1; cell[i + 2] -= d2;
        } else {
            cell[i] += d0; cell[i + 1] += d1; cell[i + 2] += d2;
        }
        if ((k + 1) % FD_XS_CARRY_EVERY == 0) fd_xs_carry(cell);
    }
    if (nan || (pinf && ninf)) return NAN;
    if (pinf) return INFINITY;
    if (ninf) return -INFINITY;
    fd_xs_carry(cell);
    if (cell[FD_XS_DIGITS - 1] >= 0) return fd_xs_round(cell);
    for (int i = 0; i < FD_XS_DIGITS; i++) cell[i] = -cell[i];
    fd_xs_carry(cell);
    return -fd_xs_round(cell);
}

#endif
