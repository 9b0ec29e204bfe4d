"""The examples of the documentation run: the README's python blocks, and the docstring
examples (``>>>``) of the public modules as doctests."""
import doctest
import inspect
import importlib
import pathlib
import re

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
PUBLIC_MODULES = ["fastdrop.functional", "fastdrop.box", "fastdrop.family", "fastdrop.layers", "fastdrop._backend",
                  "fastdrop.info", "fastdrop.dask", "fastdrop.residual", "fastdrop.torch"]
OPTIONAL_EXTRAS = {"fastdrop.dask": "dask.array", "fastdrop.torch": "torch"}     # module: what it needs


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index):
    code = BLOCKS[index]
    if "dask" in code:
        pytest.importorskip("dask.array")
    if "torch" in code:
        pytest.importorskip("torch")
    exec(compile(code, f"README.md python block {index}", "exec"), {})


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_docstring_examples(name):
    if name in OPTIONAL_EXTRAS:
        pytest.importorskip(OPTIONAL_EXTRAS[name])
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with np.printoptions(legacy=False):
        for test in finder.find(module, name, globs={"np": np, "fd": importlib.import_module("fastdrop")}):
            runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0, f"{name} has no docstring example"
    assert failed == 0, f"{failed} of {attempted} docstring examples of {name} failed (output above)"


def _public_callables():
    """(name, object) of every public function, class, method and property of the package."""
    fd = importlib.import_module("fastdrop")
    for name in fd.__all__:
        obj = getattr(fd, name)
        if not callable(obj):
            continue
        yield name, obj
        if inspect.isclass(obj):
            for attr, value in inspect.getmembers(obj):
                if not attr.startswith("_") and (callable(value) or isinstance(value, property)):
                    yield f"{name}.{attr}", value


def _needed_sections(obj):
    if isinstance(obj, property):
        return ["Examples"]
    takes = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
    return ["Examples"] + (["Parameters"] if takes else []) + ([] if inspect.isclass(obj) else ["Returns"])


@pytest.mark.parametrize("name, obj", list(_public_callables()), ids=lambda v: v if isinstance(v, str) else "")
def test_public_names_have_numpydoc_sections(name, obj):
    doc = inspect.getdoc(obj) or ""
    missing = [section for section in _needed_sections(obj) if f"{section}\n{'-' * len(section)}" not in doc]
    # Functions returning None (set_backend, set_num_threads) have nothing to return; context
    # managers (use_backend, use_num_threads) document what they yield.
    if "Returns" in missing and (inspect.signature(obj).return_annotation in (None, "None") or "Yields\n------" in doc):
        missing.remove("Returns")
    assert not missing, f"{name}'s docstring lacks {missing}"


@pytest.mark.parametrize("name, obj", [(n, o) for n, o in _public_callables() if not isinstance(o, property)],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_public_names_are_annotated(name, obj):
    # mypy --strict checks the calls of .ci/typecheck_client.py; this says which name lacks what.
    function = obj.__init__ if inspect.isclass(obj) else obj
    if function is object.__init__:
        return
    sig = inspect.signature(function)
    bare = [p.name for p in sig.parameters.values()
            if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    assert not bare, f"{name}: parameters without annotations: {bare}"
    assert sig.return_annotation is not inspect.Signature.empty, f"{name} has no return annotation"
