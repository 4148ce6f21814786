"""Sphinx configuration for tornado_spdy."""

import os
import re
import sys

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, REPO_ROOT)


def _version() -> str:
    path = os.path.join(REPO_ROOT, "tornado_spdy", "__init__.py")
    try:
        with open(path, encoding="utf-8") as f:
            match = re.search(r"""^version\s*=\s*["']([^"']+)["']""", f.read(), re.M)
    except OSError:
        match = None
    return match.group(1) if match else "unknown"


project = "tornado_spdy"
author = "the tornado_spdy authors"
copyright = "the tornado_spdy authors"
release = _version()
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

# No intersphinx: the Python, Tornado and h2 inventories are not reachable offline.
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
default_role = "py:obj"

master_doc = "index"
exclude_patterns = ["_build"]

html_theme = "alabaster"
html_static_path: list[str] = []
