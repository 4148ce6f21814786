"""Shared pytest configuration.

Makes the repository root importable, so tests can ``from tests.peers_util import
require_peer`` (and import ``tornado_spdy`` from the working tree) however pytest was
started.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
