"""The ISA variants of the compiled kernels: the one table the build and the runtime read.

Each variant compiles the same C source (``_walkers.c``) with its own target flags; at import
``_backend`` loads the best variant that was built and whose CPU features the machine has.
A flag that enables instructions (``-m<feature>``) must name a feature in ``features``, so
the CPU check guards every instruction the flags allow (``tests/test_isa.py`` ties them);
``tuning`` flags change code generation only, never the instructions used.

setup.py reads this file by path (the package cannot be imported before it is built), so
it imports nothing from fastdrop.
"""
import collections

Variant = collections.namedtuple("Variant", "name flags tuning features")

# Slowest first.  The flags are for GCC and Clang on x86-64; elsewhere only the baseline is
# built (no target flags: the architecture's default instruction set).
VARIANTS = (
    Variant("baseline", flags=(), tuning=(), features=()),
    Variant("avx2", flags=("-mavx2", "-mf16c"), tuning=(), features=("avx2", "f16c")),
    Variant("avx512", flags=("-mavx2", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq"),
            tuning=("-mprefer-vector-width=512",),
            features=("avx2", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq")),
)
NAMES = tuple(v.name for v in VARIANTS)
TARGET_MACHINES = ("x86_64", "amd64")     # platform.machine() values the non-baseline flags are for


def runnable(cpu_features):
    """Names of the variants whose features are all in ``cpu_features`` ({name: bool}), slowest first."""
    return tuple(v.name for v in VARIANTS if all(cpu_features.get(f, False) for f in v.features))
