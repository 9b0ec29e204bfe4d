"""Sphinx configuration of fastdrop's API reference (built in CI with warnings as errors:
``sphinx-build -W -b html docs docs/_build/html``; needs ``pip install ".[docs]"``)."""
import importlib.util

import fastdrop

project = "fastdrop"
release = version = fastdrop.__version__
copyright = "2026, the fastdrop developers (MIT License)"

extensions = ["sphinx.ext.autodoc", "numpydoc", "sphinx.ext.intersphinx"]
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"            # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False    # autodoc lists the methods; no second summary table
numpydoc_xref_param_type = False
intersphinx_mapping = {}               # no network at build time: no cross-project links
exclude_patterns = ["_build"]
if importlib.util.find_spec("torch") is None:     # no PyTorch here: no fastdrop.torch page (index.rst globs *)
    exclude_patterns.append("torch.rst")
html_theme = "alabaster"
nitpicky = False
