"""Finding the external peer programs that interoperability tests run against.

A peer is an executable (``node``, ``nghttp``, ``nghttpd``, ``h2load``, ``curl``) or
a Node package installed under ``tests/peers/node_modules`` by ``npm ci --prefix
tests/peers``.

When a peer is missing, the test is skipped on a developer's machine but fails in CI:
set ``TORNADO_SPDY_REQUIRE_PEERS=1`` (``.ci/run`` does), or run where ``CI=true``, so
that a missing peer can never turn an interoperability suite silently green.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from typing import NoReturn

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PEERS_DIR = os.path.join(TESTS_DIR, "peers")
NODE_MODULES = os.path.join(PEERS_DIR, "node_modules")

REQUIRE_ENV = "TORNADO_SPDY_REQUIRE_PEERS"

_FALSY = {"", "0", "false", "no", "off"}


def peers_required() -> bool:
    """True when a missing peer must fail the test instead of skipping it."""
    if os.environ.get(REQUIRE_ENV, "").strip().lower() not in _FALSY:
        return True
    return os.environ.get("CI", "").strip().lower() == "true"


def _missing(name: str, why: str) -> NoReturn:
    if peers_required():
        pytest.fail(f"peer {name} missing and required in CI ({why})")
    pytest.skip(f"peer {name} missing: {why}")


def require_peer(name: str) -> str:
    """Return the path of the peer executable ``name``, or skip / fail the test.

    ``name`` is a program looked up on ``PATH`` (``node``, ``nghttp``, ``nghttpd``,
    ``h2load``, ``curl``, ...). A name of the form ``node:<package>`` checks a Node
    package instead (see `require_node_package`) and returns its directory.
    """
    if name.startswith("node:"):
        return require_node_package(name[len("node:") :])
    path = shutil.which(name)
    if path is None:
        _missing(name, f"{name!r} not found on PATH")
    return path


def require_node_package(pkg: str) -> str:
    """Return ``tests/peers/node_modules/<pkg>``, or skip / fail the test.

    The packages are installed by ``npm ci --prefix tests/peers``. Running them also
    needs ``node`` itself, which is checked first.
    """
    require_peer("node")
    path = os.path.join(NODE_MODULES, *pkg.split("/"))
    if not os.path.isdir(path):
        _missing(
            pkg,
            f"{path} does not exist; run `npm ci --prefix tests/peers`",
        )
    return path


async def run_peer(
    argv: Sequence[str], timeout: float, cwd: str | None = None
) -> tuple[int, bytes, bytes]:
    """Run a peer program to its end: exit status, stdout, stderr. One that
    runs longer than ``timeout`` is killed, and the test fails."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{' '.join(argv)} did not finish in {timeout} s")
    assert proc.returncode is not None
    return proc.returncode, stdout, stderr
