"""The examples of the documentation run: the README's python blocks, and the docstring
examples (``>>>``) of the public modules as doctests."""
import doctest
import importlib
import pathlib
import re

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
PUBLIC_MODULES = ["fastdrop.functional", "fastdrop.box", "fastdrop.family", "fastdrop.layers", "fastdrop._backend",
                  "fastdrop.info", "fastdrop.dask"]


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index):
    code = BLOCKS[index]
    if "dask" in code:
        pytest.importorskip("dask.array")
    exec(compile(code, f"README.md python block {index}", "exec"), {})


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_docstring_examples(name):
    if name == "fastdrop.dask":
        pytest.importorskip("dask.array")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with np.printoptions(legacy=False):
        for test in finder.find(module, name, globs={"np": np, "fd": importlib.import_module("fastdrop")}):
            runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0, f"{name} has no docstring example"
    assert failed == 0, f"{failed} of {attempted} docstring examples of {name} failed (output above)"
