"""Shared pytest configuration.

Makes the repository root importable, so tests can ``from tests.peers_util import
require_peer`` (and import ``tornado_spdy`` from the working tree) however pytest was
started; and holds the fixtures several test files share.
"""

import logging
import os
import sys
from collections.abc import Iterator

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


@pytest.fixture
def no_tornado_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Nothing logged at ERROR by Tornado's loggers (client or server) during
    the test: an exception swallowed and logged is a failure too. A file asks
    for it for all its tests with ``pytest.mark.usefixtures`` in ``pytestmark``.
    """
    caplog.set_level(logging.INFO, logger="tornado")
    yield
    errors = [
        r
        for r in caplog.get_records("call")
        if r.name.startswith("tornado") and r.levelno >= logging.ERROR
    ]
    shown = "\n".join(
        f"{r.name}: {r.getMessage()}" + (f"\n{r.exc_text}" if r.exc_text else "")
        for r in errors[:10]
    )
    assert not errors, f"Tornado logged {len(errors)} errors, first:\n{shown}"
