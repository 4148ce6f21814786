"""tornado_spdy: SPDY/2, SPDY/3, SPDY/3.1 and HTTP/2, with server push, for Tornado.

The SPDY protocol core lives in `tornado_spdy.spdy` (no I/O, h2's API).
"""

from __future__ import annotations

version = "0.1.0"
version_info = (0, 1, 0, 0)

#: Every protocol tornado_spdy speaks, by ALPN id, in its default order of preference.
PROTOCOLS = ("h2", "spdy/3.1", "spdy/3", "spdy/2", "http/1.1")

__all__ = ["PROTOCOLS", "version", "version_info"]
