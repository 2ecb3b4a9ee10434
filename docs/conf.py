"""Sphinx configuration of the flask-spark documentation.

Built by ``./scripts/test`` (and CI) with warnings as errors::

    sphinx-build -W --keep-going -q -b html docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # autodoc imports flask_spark from this checkout
sys.path.insert(0, str(HERE / "_ext"))

import flask_spark  # noqa: E402

project = "flask-spark"
author = "flask-spark contributors"
copyright = "flask-spark contributors, BSD-3-Clause"
release = flask_spark.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sparkdocs",  # docs/_ext/sparkdocs.py: the configuration table and the drift checks
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
root_doc = "index"
default_role = "literal"  # `text` in prose is code, never an accidental cross-reference
nitpicky = False
pygments_style = "friendly"
pygments_dark_style = "monokai"

# -- autodoc -------------------------------------------------------------------------------------
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
autodoc_default_options = {"members": True}
autodoc_preserve_defaults = True

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"flask-spark {release}"
html_static_path = ["_static"] if (HERE / "_static").is_dir() else []
html_show_sourcelink = False
