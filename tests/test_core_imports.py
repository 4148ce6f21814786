"""The import rule of the sans-I/O core: nothing under ``tornado_spdy/spdy/``
imports tornado or anything that does I/O, reads a clock, logs or starts
threads.

Two checks: every module's ``import`` statements (parsed with `ast`, so a lazy
import inside a function counts too), and a fresh interpreter that refuses to
load those modules yet imports the whole core.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CORE = REPO_ROOT / "tornado_spdy" / "spdy"

FORBIDDEN = frozenset(
    ("tornado", "socket", "asyncio", "time", "logging", "threading", "ssl", "select")
)

CORE_FILES = sorted(CORE.rglob("*.py"))


def test_core_files_found():
    names = {path.relative_to(CORE).as_posix() for path in CORE_FILES}
    assert {"__init__.py", "frames.py", "compression.py", "connection.py"} <= names
    assert {"v2/__init__.py", "v3/__init__.py"} <= names


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``tree``; relative
    imports stay inside the package and are skipped."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call):
            # __import__("x") and importlib.import_module("x") with a literal.
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name in ("__import__", "import_module") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.append((node.lineno, first.value))
    return found


@pytest.mark.parametrize(
    "path", CORE_FILES, ids=[p.relative_to(CORE).as_posix() for p in CORE_FILES]
)
def test_core_module_imports_nothing_forbidden(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = [
        f"{path.relative_to(REPO_ROOT)}:{line}: imports {module}"
        for line, module in _imported_modules(tree)
        if module.split(".", 1)[0] in FORBIDDEN
    ]
    assert not bad, "\n".join(bad)


def test_the_ast_check_sees_every_kind_of_import():
    source = textwrap.dedent(
        """
        import os, time
        import tornado.ioloop
        from logging import getLogger
        from . import frames
        from .errors import ProtocolError
        def later():
            import socket
            __import__("ssl")
        """
    )
    modules = {name for _, name in _imported_modules(ast.parse(source))}
    assert modules == {"os", "time", "tornado.ioloop", "logging", "socket", "ssl"}


# Run in a fresh interpreter: a meta-path finder refuses the forbidden modules,
# and ``tornado_spdy`` itself is a bare package object, so that whatever its
# ``__init__`` may import later (tornado, say) stays out of the check.
_PROBE = textwrap.dedent(
    """
    import importlib
    import sys
    import types

    FORBIDDEN = {forbidden!r}
    repo = {repo!r}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".", 1)[0] in FORBIDDEN:
                raise ImportError(f"the SPDY core must not import {{name}}")
            return None

    # Anything the interpreter loaded at start-up must be loaded again, through
    # the finder, to be allowed.
    for name in list(sys.modules):
        if name.split(".", 1)[0] in FORBIDDEN:
            del sys.modules[name]
    sys.meta_path.insert(0, Refuse())

    package = types.ModuleType("tornado_spdy")
    package.__path__ = [repo + "/tornado_spdy"]
    sys.modules["tornado_spdy"] = package

    for module in (
        "tornado_spdy.spdy",
        "tornado_spdy.spdy.connection",
        "tornado_spdy.spdy.frames",
        "tornado_spdy.spdy.compression",
        "tornado_spdy.spdy.v2",
        "tornado_spdy.spdy.v3",
    ):
        importlib.import_module(module)
    # Every module of the core, not only those the package imports.
    import pkgutil
    core = sys.modules["tornado_spdy.spdy"]
    for info in pkgutil.walk_packages(core.__path__, "tornado_spdy.spdy."):
        importlib.import_module(info.name)

    loaded = sorted(n for n in sys.modules if n.split(".", 1)[0] in FORBIDDEN)
    assert not loaded, loaded
    print("ok", len([n for n in sys.modules if n.startswith("tornado_spdy.spdy")]))
    """
)


def test_core_imports_with_forbidden_modules_refused():
    code = _PROBE.format(forbidden=sorted(FORBIDDEN), repo=str(REPO_ROOT))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    status, count = result.stdout.split()
    assert status == "ok"
    assert int(count) >= len(CORE_FILES)
