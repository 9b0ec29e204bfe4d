"""The x86-64 reference of .ci/cross/run tied to the NumPy twin: the stream words and the
keep masks (every key, offset, rate and size of driver.c) recomputed with
fastdrop._numpy_backend and hashed as driver.c hashes them, against the driver's lines.

Usage: python .ci/cross/twin.py DRIVER_OUTPUT.txt   (needs numpy; reads src/fastdrop by path)
"""
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "src"))
from fastdrop import _numpy_backend  # noqa: E402

KEYS = [0x0, 0x9E3779B97F4A7C15, 0xDEADBEEFCAFEBABE]
OFFSETS = [0, 1, 4095, (1 << 40) + 3]
SIZES = [1, 37, 1000, 5000]
RATES = [0.0, 0.2, 0.5, 0.75, 0.9, 1.0]


def fnv1a(values):
    """driver.c's hash: FNV-1a 64 over the little-endian bytes of the elements."""
    h = 0xCBF29CE484222325
    for byte in np.ascontiguousarray(values).astype(values.dtype.newbyteorder("<")).tobytes():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def twin_lines():
    for ki, key in enumerate(KEYS):
        for oi, offset in enumerate(OFFSETS):
            words = _numpy_backend.fill_words(key, offset, np.empty(3000, dtype=np.uint64))
            yield f"fill_words key{ki} off{oi} {fnv1a(words)}"
    for ki, key in enumerate(KEYS):
        for oi, offset in enumerate(OFFSETS):
            for p in RATES:
                for n in SIZES:
                    keep = np.empty((1, n), dtype=np.uint8)
                    _numpy_backend.keep_mask_rows(key, np.array([offset], dtype=np.int64),
                                                  int((1.0 - p) * 65536.0 + 0.5), keep)
                    yield f"dropout keep key{ki} off{oi} p{p:.2f} n{n} {fnv1a(keep)}"


def main(path):
    driver = set(pathlib.Path(path).read_text().splitlines())
    lines = list(twin_lines())
    missing = [line for line in lines if line not in driver]
    for line in missing[:20]:
        print(f"twin: the driver has no line {line!r}", file=sys.stderr)
    print(f"twin: {len(lines) - len(missing)} of {len(lines)} stream and mask cases equal the NumPy twin")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
