"""``fastdrop info``: what this installation runs on."""
import argparse
import importlib.util

from . import __version__, _backend

OPTIONAL = {
    "demo": ("sklearn", "matplotlib"),
    "dask": ("dask", "distributed", "zarr"),
    "bench": ("torch",),
    "torch": ("torch",),           # fastdrop.torch
}


def info():
    """A dict describing the installation: version, backend, ISA variant, threads, extras."""
    return {
        "version": __version__,
        "backend": _backend.backend(),
        "compiled_available": _backend.compiled_available(),
        "isa": _backend.isa(),
        "num_threads": _backend.get_num_threads(),
        "openmp": _backend.openmp(),
        "extras": {name: {m: importlib.util.find_spec(m) is not None for m in mods}
                   for name, mods in OPTIONAL.items()},
    }


def main(argv=None):
    argparse.ArgumentParser(prog="fastdrop info", description="Describe this fastdrop installation.").parse_args(argv)
    d = info()
    print(f"fastdrop {d['version']}")
    print(f"backend      {d['backend']} (compiled extension {'built' if d['compiled_available'] else 'NOT built'})")
    print(f"isa          {d['isa']}")
    print(f"threads      {d['num_threads']} (OpenMP {'yes' if d['openmp'] else 'no'})")
    for name, mods in d["extras"].items():
        present = ", ".join(f"{m} {'yes' if ok else 'no'}" for m, ok in mods.items())
        print(f"extra {name:<6} {present}")
    return 0
