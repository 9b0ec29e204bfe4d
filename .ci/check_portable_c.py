"""The C sources as a compiler other than GCC and Clang sees them (MSVC's C compiler, say):
no GCC-only construct outside the #if guards that keep it to GCC and Clang.

Usage: python .ci/check_portable_c.py SRC_DIR   (SRC_DIR holds _walkers.c and its headers)

_walkers.c (and _cpu.h, which the Cython module includes) is preprocessed by gcc with every GCC-specific and system macro removed
(-undef) and MSVC's x64 macros defined instead (_MSC_VER, _WIN64, _M_X64, _M_AMD64), so
each #if takes the branch MSVC would take.  In what is left of the project's own files no
line may hold a GNU extension: __attribute__, __builtin_*, typeof, a statement expression,
inline assembly, __int128, _Float16, #pragma GCC.  The same translation unit must then
compile as strict C11 without variable-length arrays (gcc -std=c11 -Wpedantic
-Werror=vla -pedantic-errors -fsyntax-only).  This checks the C language the code uses,
not MSVC itself (its intrinsics headers, its OpenMP 2.0): those need a Windows runner.
"""
import pathlib
import re
import subprocess
import sys
import tempfile

# The C library as far as the sources use it: glibc's own headers need the GCC macros removed
# here, so the check brings stand-ins (declarations only, nothing to link).
STUB_HEADERS = {
    "stdint.h": "typedef signed char int8_t; typedef short int16_t; typedef int int32_t; typedef long long int64_t;\n"
                "typedef unsigned char uint8_t; typedef unsigned short uint16_t; typedef unsigned int uint32_t;\n"
                "typedef unsigned long long uint64_t; typedef long long intptr_t; typedef unsigned long long uintptr_t;\n"
                "#define INT64_MAX 9223372036854775807LL\n#define INT32_MAX 2147483647\n#define INT32_MIN (-INT32_MAX - 1)\n"
                "#define UINT64_MAX 18446744073709551615ULL\n#define INT64_MIN (-INT64_MAX - 1)\n",
    "stddef.h": "typedef unsigned long long size_t;\n#define NULL ((void *)0)\n",
    "string.h": "#include <stddef.h>\nvoid *memcpy(void *, const void *, size_t); void *memset(void *, int, size_t);\n"
                "void *memmove(void *, const void *, size_t);\n",
    "stdlib.h": "#include <stddef.h>\nvoid *malloc(size_t); void *calloc(size_t, size_t); void free(void *);\n",
    "math.h": "double sqrt(double); float sqrtf(float); double cos(double); double sin(double); double log(double);\n"
              "float logf(float); double floor(double); double fabs(double);\n",
}
# MSVC's x64 macros, its __forceinline keyword as the C11 inline it stands for, and its
# __declspec(noinline) as nothing (a hint to the optimiser).
MSVC_MACROS = ["-D_MSC_VER=1930", "-D_WIN64", "-D_WIN32", "-D_M_X64", "-D_M_AMD64", "-D__forceinline=inline",
               "-D__declspec(x)="]
GNU_ONLY = re.compile(r"__attribute__|__builtin_\w+|\btypeof\b|__typeof__|\(\{|\b__asm__\b|\basm\s*\(|__int128"
                      r"|\b_Float16\b|#\s*pragma\s+GCC")
LINEMARKER = re.compile(r'^# (\d+) "([^"]+)"')


def own_lines(preprocessed, src_dir):
    """(file, line number, text) of every line that came from a file of src_dir."""
    current, number = None, 0
    for text in preprocessed.splitlines():
        marker = LINEMARKER.match(text)
        if marker:
            number, current = int(marker.group(1)), marker.group(2)
            continue
        if current and pathlib.Path(current).resolve().parent == src_dir:
            yield pathlib.Path(current).name, number, text
        number += 1


def main(src):
    src_dir = pathlib.Path(src).resolve()
    walkers = src_dir / "_walkers.c"
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in STUB_HEADERS.items():
            pathlib.Path(tmp, name).write_text(text)
        # The kernels and the CPU probe the Cython entry points include.
        both = pathlib.Path(tmp, "both.c")
        both.write_text(f'#include "{walkers}"\n#include "{src_dir / "_cpu.h"}"\n')
        run = subprocess.run(["gcc", "-undef", "-nostdinc", "-isystem", tmp, *MSVC_MACROS, "-DFD_VARIANT=baseline",
                              f"-I{src_dir}", "-E", str(both)], capture_output=True, text=True)
        if run.returncode:
            print(f"check_portable_c: preprocessing failed:\n{run.stderr}", file=sys.stderr)
            return 1
        preprocessed = run.stdout
        problems = [f"{name}:{number}: GCC-only outside an #if guard: {text.strip()}"
                    for name, number, text in own_lines(preprocessed, src_dir) if GNU_ONLY.search(text)]
        unit = pathlib.Path(tmp, "unit.i")
        unit.write_text(preprocessed)
        strict = subprocess.run(["gcc", "-std=c11", "-Wpedantic", "-pedantic-errors", "-Werror=vla",
                                 "-fsyntax-only", "-x", "cpp-output", str(unit)],
                                capture_output=True, text=True)
        if strict.returncode:
            problems.append("the MSVC view of _walkers.c is not strict C11:\n" + strict.stderr[-4000:])
    for problem in problems:
        print(f"check_portable_c: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_portable_c: {walkers.name}, _cpu.h and their headers, as MSVC's preprocessor sees them, "
              f"are strict C11 with no GNU extension")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
