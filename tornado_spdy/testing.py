"""Test cases for applications served by `SPDYServer`.

`AsyncSSLTestCase` is `tornado.testing.AsyncHTTPTestCase` over TLS with
`SPDYServer` and `SPDYClient`. `AsyncSPDYTestCase` runs each of its tests once
per protocol: a subclass ``MyTest`` defines the tests, which run over its
``protocols[0]``, and variants ``MyTest_spdy3_1``, ``MyTest_spdy3`` ... are made
in the same module for the other protocols, so that test runners (unittest,
pytest) find and run them all.
"""

from __future__ import annotations

import ssl
import sys
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.testing import AsyncHTTPTestCase

from tornado_spdy import tls
from tornado_spdy.client import SPDYClient
from tornado_spdy.server import DEFAULT_PROTOCOLS, SPDYServer


def development_ssl_context() -> ssl.SSLContext:
    """A server context with the development certificate."""
    certfile, keyfile = tls.development_certificate()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


class AsyncSSLTestCase(AsyncHTTPTestCase):
    """`AsyncHTTPTestCase` over TLS: `SPDYServer` with the development
    certificate, and `SPDYClient` (which does not check it).

    ``self.fetch`` negotiates by ALPN (h2 against the default server).
    """

    def get_ssl_options(self) -> ssl.SSLContext:
        """The server's TLS options; override to use your own certificate."""
        return development_ssl_context()

    def get_protocol(self) -> str:
        """``"https"``: `get_url` makes ``https://`` URLs."""
        return "https"

    def get_http_server(self) -> HTTPServer:
        """A `SPDYServer` with `get_ssl_options` and
        ``get_httpserver_options()``."""
        return SPDYServer(
            self._app,
            ssl_options=self.get_ssl_options(),
            **self.get_httpserver_options(),
        )

    def get_http_client(self) -> AsyncHTTPClient:
        """A `SPDYClient` that does not check certificates (the development
        certificate is self-signed)."""
        return SPDYClient(force_instance=True, defaults={"validate_cert": False})


class AsyncSPDYTestCase(AsyncSSLTestCase):
    """An `AsyncSSLTestCase` whose tests run once over each protocol.

    :attr protocols: the protocols to run over; the class itself runs over the
        first, generated subclasses over the others.
    :attr protocol: the protocol of this run; ``self.fetch`` forces it.
    """

    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    protocol: str = DEFAULT_PROTOCOLS[0]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_generated") or not cls.protocols:
            return
        cls.protocol = cls.protocols[0]
        module = sys.modules[cls.__module__]
        for protocol in cls.protocols[1:]:
            suffix = protocol.replace("/", "").replace(".", "_")
            name = f"{cls.__name__}_{suffix}"
            variant = type(
                name,
                (cls,),
                {
                    "protocol": protocol,
                    "_generated": True,
                    "__module__": cls.__module__,
                },
            )
            setattr(module, name, variant)

    def fetch(
        self, path: str, raise_error: bool = False, **kwargs: Any
    ) -> HTTPResponse:
        """`AsyncHTTPTestCase.fetch <tornado.testing.AsyncHTTPTestCase.fetch>`
        over this run's `protocol` (pass ``protocol=`` to override it)."""
        kwargs.setdefault("protocol", self.protocol)
        return super().fetch(path, raise_error=raise_error, **kwargs)
