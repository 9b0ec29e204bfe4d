"""The ``fastdrop`` command: ``demo``, ``bench`` and ``info``.

Each subcommand lives in its own module, imported only when asked for, so the core
never imports the optional extras (scikit-learn, matplotlib, dask, torch).
"""
import argparse
import importlib
import sys
from typing import Optional, Sequence

from . import __version__

_SUBCOMMANDS = {
    "demo": ("fastdrop.demo", "train networks with and without dropout on MNIST-1D (or the bundled digits) and compare"),
    "bench": ("fastdrop.bench", "time fastdrop against NumPy, PyTorch and the bandwidth floor"),
    "info": ("fastdrop.info", "version, backend, ISA variant, threads, optional extras"),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fastdrop", description="fastdrop: fast reproducible dropout for NumPy")
    parser.add_argument("--version", action="version", version=f"fastdrop {__version__}")
    parser.add_argument("command", choices=sorted(_SUBCOMMANDS),
                        help="; ".join(f"{k}: {v[1]}" for k, v in sorted(_SUBCOMMANDS.items())))
    # Only the command is parsed here (an empty argv is argparse's usage error for it);
    # the rest goes to the subcommand's own parser.
    args = parser.parse_args(argv[:1])
    module = importlib.import_module(_SUBCOMMANDS[args.command][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
