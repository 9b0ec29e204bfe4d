"""``fastdrop info``: what this installation runs on."""
import argparse
import importlib.util
from typing import Any, Dict

from . import __version__, _backend

OPTIONAL = {
    "demo": ("sklearn", "matplotlib"),
    "dask": ("dask", "distributed", "zarr"),
    "bench": ("torch",),
    "torch": ("torch",),           # fastdrop.torch
}


def compiled_status() -> str:
    """One line on the compiled kernels: built and loaded, a NumPy-only install, or why they failed to load."""
    if _backend.compiled_available():
        return "built"
    if importlib.util.find_spec("fastdrop._kernels") is None:
        return ("NOT built: a pure-Python install (FASTDROP_PUREPYTHON=1 or no compiler), running the NumPy "
                "backend, which gives the same bits")
    return f"built but did not load: {_backend.compiled_unavailable_because()}"


def info() -> Dict[str, Any]:
    """A dict describing the installation: version, backend, ISA variant, threads, extras.

    Returns
    -------
    dict
        ``version``, ``backend``, ``compiled_available`` (bool), ``compiled`` (how the
        kernels are installed, a sentence), ``isa`` (the variant in use, or ``"numpy"``),
        ``num_threads``, ``openmp`` (bool) and ``extras`` ({extra: {module: installed}}).

    Examples
    --------
    >>> d = fd.info()
    >>> d["version"] == fd.__version__, d["backend"] in ("cython", "numpy")
    (True, True)
    """
    return {
        "version": __version__,
        "backend": _backend.backend(),
        "compiled_available": _backend.compiled_available(),
        "compiled": compiled_status(),
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
    print(f"backend      {d['backend']} (compiled extension {d['compiled']})")
    print(f"isa          {d['isa']}")
    print(f"threads      {d['num_threads']} (OpenMP {'yes' if d['openmp'] else 'no'})")
    for name, mods in d["extras"].items():
        present = ", ".join(f"{m} {'yes' if ok else 'no'}" for m, ok in mods.items())
        print(f"extra {name:<6} {present}")
    return 0
