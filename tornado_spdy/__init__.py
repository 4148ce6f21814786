"""tornado_spdy: SPDY/2, SPDY/3, SPDY/3.1 and HTTP/2, with server push, for Tornado.

`SPDYServer` stands in for `tornado.httpserver.HTTPServer`, `SPDYClient` for
`tornado.httpclient.AsyncHTTPClient`, and `SessionParameters` holds the limits
of their sessions; the three are imported on first use from
`tornado_spdy.server`, `tornado_spdy.client` and `tornado_spdy.session`, so that
``import tornado_spdy.spdy`` (the SPDY protocol core: no I/O, h2's API) needs no
Tornado.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

#: The version of tornado_spdy, as a string.
version = "0.1.0"
#: The version as a tuple of four integers, comparable as Tornado's
#: ``tornado.version_info`` is.
version_info = (0, 1, 0, 0)

#: Every protocol tornado_spdy speaks, by ALPN id, in its default order of preference.
PROTOCOLS = ("h2", "spdy/3.1", "spdy/3", "spdy/2", "http/1.1")

if TYPE_CHECKING:
    from tornado_spdy.client import SPDYClient
    from tornado_spdy.server import SPDYServer
    from tornado_spdy.session import SessionParameters

__all__ = [
    "PROTOCOLS",
    "SPDYClient",
    "SPDYServer",
    "SessionParameters",
    "version",
    "version_info",
]

_LAZY = {
    "SPDYClient": "tornado_spdy.client",
    "SPDYServer": "tornado_spdy.server",
    "SessionParameters": "tornado_spdy.session",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `import tornado_spdy.spdy` (the core) needs no tornado.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tornado_spdy' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
