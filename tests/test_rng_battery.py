"""Statistical battery: dieharder on the p=0.5 keep-mask stream (1 bit per decision).

The packed mask ``dropout_mask(n, 0.5, seed=s, packed=True)`` is piped, as raw bytes, to
``dieharder -g 200`` (raw input from stdin), generated chunk by chunk through ``offset``
for as long as dieharder reads.  Beyond the single-seed stream, two interleavings put
words that must be independent side by side, which is what catches correlated seeding:
the streams of adjacent seeds (s, s+1) word by word, and adjacent blocks of one stream
(block 2k's words interleaved with block 2k+1's).  Seeds are fixed, so every run is
reproducible; any FAILED fails the test (WEAK is expected now and then).
"""
import shutil
import subprocess
import threading

import numpy as np
import pytest

import fastdrop as fd

pytestmark = pytest.mark.slow

DIEHARDER = shutil.which("dieharder")
PSAMPLES = 30
CHUNK = 1 << 23                                  # decisions per generated chunk (1 MiB packed)
BLOCK_WORDS32 = 1024 // 32                       # one block of 1024 decisions = 32 uint32 words

# Issue 2's handful: birthdays, 32x32 rank, count-the-1s, runs, STS monobit and runs, lagged
# sums, DCT.
BASE_TESTS = ["0", "2", "8", "15", "100", "101", "203", "206"]
# The widened set, on three seeds: 6x8 rank, count-1s bytes, OPERM5, squeeze, craps,
# STS serial (all 1..16-bit patterns) and RGB permutations.
WIDE_TESTS = ["3", "9", "1", "13", "16", "102", "202"]
# Tests that look across neighbouring words, for the interleaved streams.
PAIR_TESTS = ["2", "3", "8", "102", "203"]
SEEDS = [1, 2**63 + 5, 0x0123456789ABCDEF]
ADJACENT = 41


def mask_bytes(seed, pos):
    return fd.dropout_mask(CHUNK, 0.5, seed=seed, offset=pos, packed=True)


def single_stream(seed):
    pos = 0
    while True:
        yield mask_bytes(seed, pos)
        pos += CHUNK


def adjacent_seeds(seed):
    """Words of seed s and s+1 alternating: a0 b0 a1 b1 ..."""
    pos = 0
    while True:
        a, b = mask_bytes(seed, pos).view(np.uint32), mask_bytes(seed + 1, pos).view(np.uint32)
        yield np.stack([a, b], axis=1)
        pos += CHUNK


def adjacent_blocks(seed):
    """Block 2k's words interleaved with block 2k+1's, word by word."""
    pos = 0
    while True:
        pairs = mask_bytes(seed, pos).view(np.uint32).reshape(-1, 2, BLOCK_WORDS32)
        yield pairs.transpose(0, 2, 1)
        pos += CHUNK


STREAMS = {"seed": single_stream, "adjacent-seeds": adjacent_seeds, "adjacent-blocks": adjacent_blocks}


def run_dieharder(test, stream):
    """dieharder's result lines for ``-d test`` on the bytes of ``stream``."""
    proc = subprocess.Popen([DIEHARDER, "-g", "200", "-d", test, "-p", str(PSAMPLES)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def feed():
        try:
            for chunk in stream:
                proc.stdin.write(np.ascontiguousarray(chunk).tobytes())
        except (BrokenPipeError, ValueError, OSError):     # dieharder has read enough and exited
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    output = proc.stdout.read().decode(errors="replace")
    proc.wait()
    try:
        proc.stdin.close()
    except BrokenPipeError:
        pass
    feeder.join(timeout=30)
    results = [line for line in output.splitlines() if line.rstrip().endswith(("PASSED", "WEAK", "FAILED"))]
    return proc.returncode, results, output


CASES = ([("seed", SEEDS[0], t) for t in BASE_TESTS]
         + [("seed", s, t) for s in SEEDS for t in WIDE_TESTS]
         + [(kind, ADJACENT, t) for kind in ("adjacent-seeds", "adjacent-blocks") for t in PAIR_TESTS])


@pytest.mark.skipif(DIEHARDER is None, reason="dieharder is not installed (Debian: apt-get install dieharder)")
@pytest.mark.parametrize("kind, seed, test", CASES, ids=[f"{k}-{s}-d{t}" for k, s, t in CASES])
def test_dieharder_passes(kind, seed, test):
    code, results, output = run_dieharder(test, STREAMS[kind](seed))
    assert code == 0, output
    assert results, f"dieharder printed no results:\n{output}"
    failed = [line for line in results if line.rstrip().endswith("FAILED")]
    assert not failed, "\n".join(failed)


def test_interleavings_are_the_streams_they_claim():
    """The interleaved streams hold exactly the words they should, where they should."""
    a = mask_bytes(ADJACENT, 0).view(np.uint32)
    b = mask_bytes(ADJACENT + 1, 0).view(np.uint32)
    seeds = next(adjacent_seeds(ADJACENT)).ravel()
    assert np.array_equal(seeds[0::2], a) and np.array_equal(seeds[1::2], b)
    blocks = next(adjacent_blocks(ADJACENT)).ravel()
    assert np.array_equal(blocks[0:64:2], a[:32]) and np.array_equal(blocks[1:64:2], a[32:64])
    mask = fd.dropout_mask(64, 0.5, seed=ADJACENT)
    assert np.array_equal(np.unpackbits(a[:2].view(np.uint8), bitorder="little").astype(bool), mask)
