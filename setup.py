"""Build of the compiled kernels: one extension module, ``fastdrop._kernels``.

Its Python entry points (``_kernels.pyx``, compiled without target flags) call the kernels
of ``_walkers.c``, which is compiled here once per ISA variant of ``src/fastdrop/_isa.py`` with
that variant's flags and ``-DFD_VARIANT=<name>`` into the build directory and linked in;
``_backend`` picks the best variant the CPU runs at import.  Variants other than the
baseline are x86-64 GCC/Clang only, and one the compiler rejects is skipped (said on
stderr).  Cython writes its C into the build directory too: nothing is generated in src/.
-ffp-contract=off everywhere: a fused multiply-add would change the bits.  OpenMP when the
compiler has it.  Compiler directives are set here, once.

Release builds carry no debug information (``-g0``, and ``-s`` at the link on Linux); a
build whose ``FASTDROP_EXTRA_CFLAGS`` ask for ``-g`` (the sanitizer build of .ci/sanitize)
keeps it.  ``FASTDROP_PUREPYTHON=1`` builds no extension at all: the package then runs on
its NumPy backend, which gives the same bits, and needs no C compiler.  Without it a
build that cannot compile stops with one message saying so.
"""
import importlib.util
import os
import platform
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:                                       # setuptools >= 65 re-exports distutils' errors
    from setuptools.errors import CompileError, LinkError
except ImportError:                        # pragma: no cover
    from distutils.errors import CompileError, LinkError

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}
BASE_FLAGS = ["-O3", "-ffp-contract=off", "-fno-strict-aliasing"]
PACKAGE = "src/fastdrop"
WALKERS = f"{PACKAGE}/_walkers.c"
HEADERS = [f"{PACKAGE}/{h}" for h in ("_walkers.h", "_cpu.h", "_fused.h", "_noise.h", "_simd.h", "_vec.h",
                                       "_xoshiro.h", "_residual.h", "_memory.h", "_exact_sum.h")]


def _load_isa_table():
    """src/fastdrop/_isa.py by path: the package cannot be imported before it is built."""
    spec = importlib.util.spec_from_file_location("_fastdrop_isa", f"{PACKAGE}/_isa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ISA = _load_isa_table()


def _compiler_has_openmp(compiler):
    """True when the compiler both compiles and links an OpenMP program."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(objs, os.path.join(tmp, "omp"), extra_postargs=["-fopenmp"])
        except Exception:
            return False
    return True


def _compiler_accepts(compiler, flags):
    """True when the compiler builds a trivial file with these target flags."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "isa.c")
        with open(src, "w") as f:
            f.write("int fd_isa_probe(void) { return 0; }\n")
        try:
            compiler.compile([src], output_dir=tmp, extra_postargs=flags)
        except Exception:
            return False
    return True


PUREPYTHON_HINT = ("set FASTDROP_PUREPYTHON=1 to install fastdrop without the compiled kernels (its NumPy "
                   "backend gives the same bits, more slowly): FASTDROP_PUREPYTHON=1 pip install fastdrop")


def _compiler_works(compiler):
    """True when the compiler builds a trivial C file with no extra flags at all."""
    return _compiler_accepts(compiler, [])


def _debug_requested(flags):
    """True when the extra flags ask for debug information (-g, -g3, -ggdb, ...; not -g0)."""
    return any(f.startswith("-g") and f != "-g0" for f in flags)


class BuildExt(build_ext):
    def build_extension(self, ext):
        # No compiler at all: say so once, before any probe prints a misleading line.
        if not _compiler_works(self.compiler):
            sys.exit(f"fastdrop: no working C compiler (it could not build a trivial C file); {PUREPYTHON_HINT}")
        try:
            self._build_kernels(ext)
        except (CompileError, LinkError) as exc:
            sys.exit(f"fastdrop: building the compiled kernels failed ({exc}); {PUREPYTHON_HINT}")

    def _build_kernels(self, ext):
        unix = self.compiler.compiler_type == "unix"
        openmp = unix and os.environ.get("FASTDROP_NO_OPENMP") != "1" and _compiler_has_openmp(self.compiler)
        if not openmp:
            print("fastdrop: building without OpenMP (kernels run single-threaded)", file=sys.stderr)
        extra = os.environ.get("FASTDROP_EXTRA_CFLAGS", "").split()
        release = unix and not _debug_requested(extra)       # -g0 after the interpreter's own -g
        common = (BASE_FLAGS if unix else ["/O2"]) + (["-g0"] if release else []) \
            + (["-fopenmp"] if openmp else []) + extra
        strip = ["-s"] if release and sys.platform.startswith("linux") else []
        x86 = unix and platform.machine().lower() in ISA.TARGET_MACHINES
        built, objects = [], []
        for variant in ISA.VARIANTS:
            flags = list(variant.flags + variant.tuning)
            if variant.name != "baseline" and not (x86 and _compiler_accepts(self.compiler, flags)):
                print(f"fastdrop: skipping the {variant.name} variant: "
                      + (f"the compiler does not take {' '.join(flags)}" if x86 else "x86-64 GCC/Clang only"),
                      file=sys.stderr)
                continue
            # One object per variant, in a directory of its own: the same source, other flags.
            objects += self.compiler.compile(
                [WALKERS], output_dir=os.path.join(self.build_temp, variant.name),
                macros=[("FD_VARIANT", variant.name)], include_dirs=[PACKAGE],
                extra_postargs=common + flags, depends=HEADERS)
            built.append(variant.name)
        if unix:     # the X-macro of _walkers.h: which tables the entry points link to
            ext.define_macros.append(("FD_BUILT(X)", " ".join(f"X({name})" for name in built)))
        ext.extra_objects = objects
        ext.extra_compile_args = common
        ext.extra_link_args = (["-fopenmp"] if openmp else []) + strip + extra
        super().build_extension(ext)


def _extensions():
    """The compiled module, its Cython translated into build/ (numpy and Cython imported here:
    a FASTDROP_PUREPYTHON build needs neither)."""
    import numpy
    from Cython.Build import cythonize

    extension = Extension(
        "fastdrop._kernels",
        [f"{PACKAGE}/_kernels.pyx"],
        include_dirs=[numpy.get_include(), PACKAGE],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=HEADERS + [WALKERS] + [f"{PACKAGE}/{p}" for p in ("_walkers.pxd", "_cpu.pxd", "_xoshiro.pxd")],
    )
    return cythonize([extension], compiler_directives=DIRECTIVES, build_dir="build/cython")


if os.environ.get("FASTDROP_PUREPYTHON") == "1":
    print("fastdrop: FASTDROP_PUREPYTHON=1: no compiled kernels, the NumPy backend only", file=sys.stderr)
    setup()
else:
    setup(
        ext_modules=_extensions(),
        cmdclass={"build_ext": BuildExt},
    )
