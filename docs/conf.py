# Sphinx configuration of the streammix documentation.
#
# Sphinx + numpydoc: numpydoc is the numpy/scipy project's own, well-kept
# parser for the numpy-style docstrings streammix is written in.
#
# Build (offline, warnings are errors, as the test command does):
#   .venv/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, os.path.dirname(HERE))  # the package, when not installed

import streammix  # noqa: E402

project = "streammix"
author = "the streammix developers"
copyright = "the streammix developers"
release = streammix.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "public_api",  # docs/_ext/public_api.py: the API page follows streammix.__all__
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path: list[str] = []

# Offline: no intersphinx, nothing fetched while building.
# Markdown pages (reliability.md): headings get anchors for in-page links.
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# autodoc: document what the public names carry, in source order.
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc "Parameters" sections say the types
autodoc_inherit_docstrings = True

# numpydoc: autodoc lists the members (the API page asks for them); numpydoc
# would list them a second time as autosummary tables.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_title = f"streammix {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Mixtures of linear regressions by EM on data larger than memory",
    "fixed_sidebar": True,
}


def _skip_metadata_routing(app, what, name, obj, skip, options):
    """Leave out scikit-learn's metadata-routing methods (``set_fit_request`` ...),
    which ``BaseEstimator`` adds and which streammix does not use; their
    docstrings link into scikit-learn's own documentation."""
    if getattr(obj, "__module__", "") == "sklearn.utils._metadata_requests":
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_routing)
