"""Sphinx configuration for the groove_sc documentation (sphinx + myst-nb, scverse style)."""

from __future__ import annotations

import os
from datetime import date
from importlib.metadata import version as _version

# -- Project --------------------------------------------------------------------------------
project = "groove_sc"
author = "groove_sc developers"
copyright = f"{date.today().year}, {author}"
release = _version("groove_sc")
version = release

# -- General --------------------------------------------------------------------------------
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",  # after napoleon
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "generated/*.md",
    "robustness/*_table.md",
    "**.ipynb_checkpoints",
    "Thumbs.db",
    ".DS_Store",
]
master_doc = "index"
default_role = "literal"
pygments_style = "default"

# autodoc / autosummary / napoleon: numpy docstrings, one page per object under generated/
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_include_init_with_doc = False
napoleon_use_rtype = True
napoleon_use_param = True
typehints_defaults = "braces"
always_document_param_types = False
# Unresolvable forward references in annotations are not errors of the documentation.
suppress_warnings = ["sphinx_autodoc_typehints.forward_reference"]

# -- MyST / myst-nb -------------------------------------------------------------------------
myst_enable_extensions = ["amsmath", "colon_fence", "deflist", "dollarmath", "substitution"]
myst_heading_anchors = 3
# The tutorials (tutorials/*.md, MyST text notebooks) are executed at every build so that they
# cannot rot; GROOVE_DOCS_EXECUTE=off builds without executing them (quick local previews).
nb_execution_mode = os.environ.get("GROOVE_DOCS_EXECUTE", "force")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_output_stderr = "show"

# -- HTML -----------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "groove_sc"
html_theme_options = {
    "repository_url": "https://github.com/groove-sc/groove_sc",
    "use_repository_button": True,
    "path_to_docs": "docs/",
    "navigation_with_keys": False,
}
html_show_sourcelink = False
