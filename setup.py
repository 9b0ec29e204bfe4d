"""Build of the compiled kernels: one Cython extension, OpenMP when the compiler has it.

Compiler directives are set here, once, for every .pyx.  No -march flags: the shipped
module must run on any CPU of its architecture.
"""
import os
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}
BASE_FLAGS = ["-O3", "-ffp-contract=off", "-fno-strict-aliasing"]


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


class BuildExt(build_ext):
    def build_extensions(self):
        unix = self.compiler.compiler_type == "unix"
        openmp = unix and os.environ.get("FASTDROP_NO_OPENMP") != "1" and _compiler_has_openmp(self.compiler)
        if not openmp:
            print("fastdrop: building without OpenMP (kernels run single-threaded)", file=sys.stderr)
        extra = os.environ.get("FASTDROP_EXTRA_CFLAGS", "").split()
        for ext in self.extensions:
            ext.extra_compile_args = (BASE_FLAGS if unix else ["/O2"]) + (["-fopenmp"] if openmp else []) + extra
            ext.extra_link_args = (["-fopenmp"] if openmp else []) + extra
        super().build_extensions()


extensions = [
    Extension(
        "fastdrop._kernels",
        ["src/fastdrop/_kernels.pyx"],
        include_dirs=[numpy.get_include(), "src/fastdrop"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES),
    cmdclass={"build_ext": BuildExt},
)
