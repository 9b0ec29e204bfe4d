"""Check what the sdist and the repaired wheel hold (CI's build pass).

Usage: python .ci/check_dists.py SDIST.tar.gz WHEEL.whl

The sdist: everything needed to build and test (the C and Cython sources, the tests with
their conftest, examples/, bench/, LICENSE, ARCHITECTURE.md).  The wheel: a manylinux tag,
the license and py.typed, no C, Cython or header sources, and a compiled module without
debug sections.  Exits non-zero naming each problem.
"""
import email.parser
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile

SDIST_NEEDS = ["LICENSE", "ARCHITECTURE.md", "README.md", "setup.py", "pyproject.toml", "tests/conftest.py",
               "src/fastdrop/_kernels.pyx", "src/fastdrop/_walkers.c", "src/fastdrop/_walkers.h",
               "src/fastdrop/_walkers.pxd", "src/fastdrop/py.typed"]
SDIST_DIRS = ["examples/", "bench/", "tests/"]
SOURCE_SUFFIXES = (".c", ".h", ".pyx", ".pxd")


def check_sdist(path):
    with tarfile.open(path) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    problems = [f"sdist lacks {need}" for need in SDIST_NEEDS if need not in names]
    problems += [f"sdist has no {d}" for d in SDIST_DIRS if not any(n.startswith(d) for n in names)]
    problems += [f"sdist holds a build product {n}" for n in names if n.endswith((".so", ".pyc"))]
    return problems


def check_wheel(path):
    problems = []
    if "manylinux" not in pathlib.Path(path).name:
        problems.append(f"wheel {pathlib.Path(path).name} has no manylinux tag")
    with zipfile.ZipFile(path) as whl, tempfile.TemporaryDirectory() as tmp:
        names = whl.namelist()
        problems += [f"wheel holds the source {n}" for n in names if n.endswith(SOURCE_SUFFIXES)]
        if "fastdrop/py.typed" not in names:
            problems.append("wheel lacks fastdrop/py.typed")
        if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
            problems.append("wheel lacks the LICENSE in its dist-info")
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        fields = email.parser.Parser().parsestr(whl.read(metadata).decode())
        if fields.get("License-Expression") != "MIT":
            problems.append(f"wheel metadata License-Expression is {fields.get('License-Expression')!r}, not 'MIT'")
        for name in names:
            if name.startswith("fastdrop/") and ".so" in name:
                so = whl.extract(name, tmp)
                sections = subprocess.run(["readelf", "-S", "-W", so], capture_output=True, text=True,
                                          check=True).stdout
                if ".debug_" in sections:
                    problems.append(f"{name} carries debug sections")
                print(f"check_dists: {name}: {pathlib.Path(so).stat().st_size // 1024} KB")
    return problems


def main(sdist, wheel):
    problems = check_sdist(sdist) + check_wheel(wheel)
    for problem in problems:
        print(f"check_dists: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_dists: {pathlib.Path(sdist).name} and {pathlib.Path(wheel).name} are complete and clean")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
