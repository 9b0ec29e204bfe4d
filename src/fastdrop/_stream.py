"""The layout of fastdrop's random stream: the one definition the core and the NumPy twin use.

The compiled kernels spell the same numbers in ``_xoshiro.h`` (C cannot import them);
``tests/test_kernel_interface.py`` checks that the compiled module reports exactly these values
(``fastdrop._kernels.STREAM_LAYOUT``).

Global word ``w`` of the stream keyed by ``key`` lives in block ``w // BLOCK_WORDS``,
which ``LANES`` xoshiro256++ generators make in lock step, ``STEPS`` steps each: word ``r``
of a block is lane ``r % LANES``'s output at step ``r // LANES``.  Lane ``l`` of block
``b`` is seeded from ``key + (b * LANES + l + 1) * GOLDEN`` through ``mix64`` (splitmix64),
its four state words from that value plus ``1..4 * GOLDEN``, mixed again.  Keep decision
``k`` of word ``w`` is bits ``[CHUNK_BITS * k, CHUNK_BITS * (k + 1))``; element ``i`` of a
mask (C order over the noise shape, plus the offset) is decision ``i``.
"""
import numpy as np

LANES = 8                                   # generators per block, advanced in lock step
STEPS = 32                                  # steps of each generator per block
BLOCK_WORDS = LANES * STEPS                 # 256 64-bit words per block
CHUNK_BITS = 16                             # random bits compared with a threshold per decision
CHUNKS_PER_WORD = 64 // CHUNK_BITS          # 4 decisions per word
BLOCK_CHUNKS = CHUNKS_PER_WORD * BLOCK_WORDS  # 1024 decisions per block
CHUNK_RANGE = 1 << CHUNK_BITS               # thresholds lie in [0, CHUNK_RANGE]

GOLDEN = 0x9E3779B97F4A7C15                 # splitmix64's increment, 2**64 / golden ratio
SUBSTREAM = 0xD1B54A32D192ED03              # spacing of derive_seed's substreams
MIX_SHIFTS = (30, 27, 31)                   # splitmix64's finaliser
MIX_MULTIPLIERS = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)

# Every stream index (element or word) is below this, so that index arithmetic in the
# kernels, block ends included, stays far from int64 overflow.
MAX_INDEX = 1 << 62

U64 = (1 << 64) - 1


def mix64(z):
    """splitmix64's finaliser of a Python int in [0, 2**64)."""
    z = ((z ^ (z >> MIX_SHIFTS[0])) * MIX_MULTIPLIERS[0]) & U64
    z = ((z ^ (z >> MIX_SHIFTS[1])) * MIX_MULTIPLIERS[1]) & U64
    return z ^ (z >> MIX_SHIFTS[2])


def stream_key(seed):
    """The key of the block streams for a resolved integer seed in [0, 2**64)."""
    return mix64((seed + GOLDEN) & U64)


def derive_seed(seed, index):
    """Seed of the ``index``-th independent substream of ``seed`` (layers: one per call)."""
    return substream_seed(stream_key(seed), index)


def substream_seed(key, index):
    """``derive_seed(seed, index)`` from ``key = stream_key(seed)``: one mix where a caller
    keeps the key of its fixed seed."""
    return mix64((key + (index + 1) * SUBSTREAM) & U64)


def substream_window(key, start, count):
    """(seeds, keys): ``substream_seed(key, i)`` for i in [start, start + count) and the
    ``stream_key`` of each, as lists of ints.  ``mix64`` runs once on uint64 arrays (whose
    arithmetic wraps modulo 2**64, as its masks do), so a layer pays a fraction of one
    Python mix per call instead of two."""
    index = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    seeds = mix64(np.uint64(key) + index * np.uint64(SUBSTREAM))
    return seeds.tolist(), mix64(seeds + np.uint64(GOLDEN)).tolist()
