"""Sphinx configuration: MyST pages, numpydoc API reference, figures drawn at build time."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import servegen
except ImportError:  # building from a checkout without installing it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import servegen

project = "servegen"
author = "servegen developers"
copyright = "servegen developers, Apache-2.0"
release = version = servegen.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
templates_path = ["_templates"]

# API reference: one page per public name, members defined by the class itself (not
# pydantic's BaseModel machinery), numpydoc sections rendered.
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections say it better than long signatures
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

# Figures on the background page are drawn by the library while the site builds.
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 90)]

myst_heading_anchors = 3

# Every cross-reference must resolve (the docs test builds with -W). Other projects'
# objects have no inventory here (the build is offline), so they stay plain text.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(argparse|matplotlib|numpy|pandas|pyarrow|scipy)(\..*)?")]

html_theme = "pydata_sphinx_theme"
html_title = f"servegen {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path: list[str] = []
