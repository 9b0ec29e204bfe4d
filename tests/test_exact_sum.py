"""exact_sum: the reducing kernels' partial sums added exactly rounded, the same float on every
backend (the compiled _exact_sum.h and the twin's math.fsum / exact rationals).

Each result is checked against the exact rational sum of its terms by a property, not by
another implementation: the float is a nearest float to the exact sum, with ties to an even
mantissa, inf past float64's range as round-to-nearest says, +0.0 for an exact zero; the
non-finite terms give what IEEE addition gives.
"""
import math
from fractions import Fraction

import numpy as np
import pytest

from fastdrop import _backend

MAX = float(np.finfo(np.float64).max)
TINY = 2.0 ** -1074


def _kernel_sets():
    sets = [("numpy", _backend._module_for("numpy"))]
    sets += [(isa, _backend.variant(isa)) for isa in _backend.runnable_isas() if isa in _backend.built_isas()]
    return sets


KERNEL_SETS = _kernel_sets()


def _expected_special(terms):
    """IEEE addition of the non-finite terms, or None when all are finite."""
    non_finite = [t for t in terms if not math.isfinite(t)]
    if not non_finite:
        return None
    if any(math.isnan(t) for t in non_finite) or (math.inf in non_finite and -math.inf in non_finite):
        return math.nan
    return non_finite[0]


def _is_correctly_rounded(exact, r):
    """Whether r is exact (a Fraction) rounded to nearest float64, ties to even, +0.0 for 0."""
    if exact == 0:
        return r == 0 and math.copysign(1.0, r) == 1.0
    if math.isinf(r):                               # overflow: at least MAX + half its ulp
        half_ulp_above = Fraction(MAX) + Fraction(2) ** 970
        return (r > 0) == (exact > 0) and abs(exact) >= half_ulp_above
    error = abs(exact - Fraction(r))
    for neighbour in (math.nextafter(r, math.inf), math.nextafter(r, -math.inf)):
        if math.isinf(neighbour):
            continue
        other = abs(exact - Fraction(neighbour))
        if other < error:
            return False
        if other == error:                          # a tie: r's mantissa must be even
            mantissa, _ = math.frexp(r)
            return int(abs(mantissa) * 2 ** 53) % 2 == 0
    return True


def _check(terms):
    terms = np.ascontiguousarray(terms, dtype=np.float64)
    values = terms.tolist()
    special = _expected_special(values)
    exact = None if special is not None else sum(map(Fraction, values), Fraction(0))
    results = []
    for name, kernels in KERNEL_SETS:
        r = kernels.exact_sum(terms)
        assert type(r) is float, name
        if special is not None and math.isnan(special):
            assert np.float64(r).tobytes() == np.float64(math.nan).tobytes(), (name, r)
        elif special is not None:
            assert r == special, (name, r, special)
        else:
            assert _is_correctly_rounded(exact, r), (name, r, float(exact) if abs(exact) < 2 ** 1023 else exact)
        results.append(np.float64(r).tobytes())
    assert len(set(results)) == 1, "the backends give different bits"


HOSTILE = {
    "empty": [],
    "one": [3.5],
    "minus-zero": [-0.0],
    "minus-zeros": [-0.0, -0.0, -0.0],
    "cancel-to-zero": [1.0, -1.0, 2.0 ** 60, -(2.0 ** 60)],
    "tie-to-even-down": [2.0 ** 53, 1.0],
    "tie-to-even-up": [2.0 ** 53 + 2, 1.0],
    "tie-broken-by-sticky": [2.0 ** 53, 1.0, TINY],
    "tie-broken-below": [2.0 ** 53, 1.0, -TINY],
    "negative-tie": [-(2.0 ** 53), -1.0],
    "subnormals": [TINY, TINY, 3 * TINY, -TINY],
    "subnormal-to-normal": [2.0 ** -1023, 2.0 ** -1023],
    "smallest-normal-minus-tiny": [2.0 ** -1022, -TINY],
    "cancel-past-range": [1e308, 1e308, -1e308, 1.0, -1e308, TINY],
    "overflow": [MAX, MAX],
    "negative-overflow": [-MAX, -MAX / 2],
    "max-plus-half-ulp": [MAX, 2.0 ** 970],
    "max-plus-under-half-ulp": [MAX, 2.0 ** 970, -TINY],
    "max-exact": [MAX, 2.0 ** 969, -(2.0 ** 969)],
    "wide-exponents": [MAX, TINY, -MAX, 1.0, -1.0],
    "inf": [1.0, math.inf, -MAX],
    "minus-inf": [-math.inf, MAX, MAX],
    "inf-minus-inf": [math.inf, 1.0, -math.inf],
    "nan": [1.0, math.nan],
    "nan-and-inf": [math.inf, math.nan],
    "negative-nan": [1.0, -math.nan],               # every nan comes back as the one quiet nan
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_sums_are_exactly_rounded_everywhere(name):
    _check(HOSTILE[name])


@pytest.mark.parametrize("seed", range(6))
def test_random_wide_sums_are_exactly_rounded_everywhere(seed):
    """Mixed signs and exponents over float64's whole range, cancellation, subnormals."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    low, high = [(-1074, 1023), (-60, 60), (1000, 1023), (-1074, -1000), (-30, 30), (-1074, 1023)][seed]
    terms = np.ldexp(rng.uniform(-1, 1, n), rng.integers(low, high + 1, n))
    if seed % 2:                                    # cancel the big terms exactly, leaving the small
        terms = np.concatenate([terms, -terms[: n // 2], rng.uniform(-1, 1, 5) * 2.0 ** -1070])
    rng.shuffle(terms)
    _check(terms)


@pytest.mark.skipif(not _backend.compiled_available(), reason="the compiled extension is not built")
def test_past_the_carry_interval():
    """More terms than the compiled cells take between carries (2**20), near float64's largest
    and of one sign for 1.5M terms at a time, so that the cells carry totals of either sign in
    flight; the exact total comes back.  (The twin, exact rationals past fsum's range, has no
    such interval; its few-term overflow cases are above.)"""
    half = 3 * 2 ** 19 + 5
    for sign in (1.0, -1.0):
        terms = np.concatenate([np.full(half, sign * MAX), [3.0, TINY], np.full(half, -sign * MAX)])
        for name, kernels in KERNEL_SETS[1:]:
            assert kernels.exact_sum(terms) == 3.0, (name, sign)
    same_sign = np.full(2 ** 20 + 3, -(2.0 ** 1000))
    for name, kernels in KERNEL_SETS:
        assert kernels.exact_sum(same_sign) == -(2 ** 20 + 3) * 2.0 ** 1000, name


def test_the_order_of_the_terms_does_not_matter():
    rng = np.random.default_rng(7)
    terms = np.ldexp(rng.uniform(-1, 1, 3000), rng.integers(-40, 40, 3000))
    for name, kernels in KERNEL_SETS:
        sums = {np.float64(kernels.exact_sum(np.ascontiguousarray(rng.permutation(terms)))).tobytes()
                for _ in range(5)}
        assert len(sums) == 1, name
