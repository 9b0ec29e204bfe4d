"""What an installed package promises beyond its functions: the version on the command line,
the optional integrations loaded on first use with a message naming the missing extra,
and the files a type checker and a packager look for."""
import importlib
import importlib.resources
import subprocess
import sys
import textwrap

import pytest

import fastdrop
from fastdrop import cli


def _python(code):
    """Run ``code`` in a fresh interpreter: (exit status, stdout, stderr)."""
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    return run.returncode, run.stdout, run.stderr


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"fastdrop {fastdrop.__version__}\n"


def test_version_flag_of_the_module_command():
    run = subprocess.run([sys.executable, "-m", "fastdrop", "--version"], capture_output=True, text=True, timeout=120)
    assert (run.returncode, run.stdout) == (0, f"fastdrop {fastdrop.__version__}\n")


def test_integrations_load_on_first_attribute_access():
    status, out, err = _python("""
        import sys
        import fastdrop as fd
        print("fastdrop.dask" in sys.modules, "fastdrop.demo" in sys.modules)
        print(fd.dask.dropout.__module__, fd.demo.main.__module__)
        print("dask" in dir(fd), "demo" in dir(fd))
    """)
    assert status == 0, err
    assert out.split("\n")[:3] == ["False False", "fastdrop.dask fastdrop.demo", "True True"]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'fastdrop' has no attribute 'no_such_name'"):
        fastdrop.no_such_name  # noqa: B018
    assert not hasattr(fastdrop, "no_such_name")


def test_missing_dask_extra_names_the_install_command():
    # A finder that refuses dask stands in for an environment without the extra.
    status, out, err = _python("""
        import sys
        class NoDask:
            def find_spec(self, name, path=None, target=None):
                if name == "dask" or name.startswith("dask."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, NoDask())
        import fastdrop as fd
        try:
            fd.dask
        except ImportError as exc:
            print(type(exc).__name__, exc)
    """)
    assert status == 0, err
    assert out.startswith("ImportError fastdrop.dask needs the dask extra (No module named 'dask')")
    assert out.rstrip().endswith('pip install "fastdrop[dask]"')


def test_py_typed_marker_is_installed():
    assert importlib.resources.files("fastdrop").joinpath("py.typed").is_file()


def test_info_says_how_the_kernels_are_installed(monkeypatch):
    from fastdrop import _backend
    info = importlib.import_module("fastdrop.info")      # fastdrop.info is the function of that name
    if _backend.compiled_available():
        assert info.info()["compiled"] == "built"
    # A pure-Python install (FASTDROP_PUREPYTHON=1) has no compiled module to find.
    monkeypatch.setattr(_backend, "compiled_available", lambda: False)
    monkeypatch.setattr(info.importlib.util, "find_spec", lambda name: None)
    assert info.compiled_status().startswith("NOT built: a pure-Python install (FASTDROP_PUREPYTHON=1")
