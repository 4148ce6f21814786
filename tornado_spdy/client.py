"""`SPDYClient`: an `AsyncHTTPClient` that multiplexes its fetches over one h2
or SPDY session per origin, and falls back to HTTP/1.1.

It is Tornado's `SimpleAsyncHTTPClient` with a different way to connect: where
that client opens a TCP connection for each request, this one asks a
`SessionPool` for a stream of the origin's session, negotiated by ALPN over
TLS (or chosen by prior knowledge in cleartext). Tornado's request machinery
(redirects, timeouts, decompression, streaming and header callbacks, body
producers, authentication) then runs unchanged over that stream. Where the
server speaks only HTTP/1.1 the pool hands back the TCP connection itself.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import ssl
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from tornado import gen, httputil
from tornado.concurrent import Future
from tornado.gen import convert_yielded
from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, SSLIOStream
from tornado.log import app_log
from tornado.netutil import ssl_options_to_context
from tornado.simple_httpclient import SimpleAsyncHTTPClient, _HTTPConnection
from tornado.tcpclient import TCPClient

from tornado_spdy import tls
from tornado_spdy.server import DEFAULT_PROTOCOLS, MULTIPLEXED
from tornado_spdy.session import Session, SessionParameters, new_core
from tornado_spdy.stream import StreamConnection

#: Request options this client adds to `HTTPRequest` (passed to ``fetch``).
REQUEST_EXTRAS = ("push_callback", "priority", "force_connection", "protocol")

#: What a session is pooled under: host, port, and the TLS options' identity
#: (or, in cleartext, the protocol spoken).
OriginKey = tuple[str, int, str]


class SPDYClient(SimpleAsyncHTTPClient):
    """An `AsyncHTTPClient` speaking h2, SPDY/3.1, SPDY/3, SPDY/2 and HTTP/1.1.

    It takes `SimpleAsyncHTTPClient`'s arguments, and:

    :arg protocols: offered by ALPN, most preferred first.
    :arg plain_protocol: what ``http://`` URLs speak: ``"http/1.1"`` (the
        default) or a multiplexed protocol by prior knowledge.
    :arg session_params: limits of the client's sessions.

    `fetch` takes these besides `HTTPRequest`'s arguments: ``push_callback``
    (called with an `HTTPResponse` for each resource the server pushes with
    this response), ``priority`` (0 most urgent to 7), ``force_connection`` (a
    new session for this request) and ``protocol`` (force one protocol).
    Responses carry ``framing`` (``"h2"``, ``"spdy/3.1"``, ``"spdy/3"``,
    ``"spdy/2"`` or ``"http/1.1"``) and ``associated_urls`` (what the server
    promised with it); pushed responses carry ``associated_to_url``. A later
    GET of a pushed URL is answered from the push, waiting for it if it is
    still arriving, without a request of its own.
    """

    def initialize(  # type: ignore[override]
        self,
        max_clients: int = 100,
        hostname_mapping: dict[str, str] | None = None,
        max_buffer_size: int = 104857600,
        resolver: Any = None,
        defaults: dict[str, Any] | None = None,
        max_header_size: int | None = None,
        max_body_size: int | None = None,
        protocols: Sequence[str] = DEFAULT_PROTOCOLS,
        plain_protocol: str = "http/1.1",
        session_params: SessionParameters | None = None,
    ) -> None:
        super().initialize(
            max_clients=max_clients,
            hostname_mapping=hostname_mapping,
            max_buffer_size=max_buffer_size,
            resolver=resolver,
            defaults=defaults,
            max_header_size=max_header_size,
            max_body_size=max_body_size,
        )
        params = session_params or SessionParameters(idle_connection_timeout=60.0)
        if max_header_size is not None:
            params.max_header_size = max_header_size
        self.pool = SessionPool(
            self.tcp_client, list(protocols), plain_protocol, params
        )

    def fetch(
        self,
        request: str | HTTPRequest,
        raise_error: bool = True,
        **kwargs: Any,
    ) -> Future[HTTPResponse]:
        """`AsyncHTTPClient.fetch <tornado.httpclient.AsyncHTTPClient.fetch>`,
        also taking ``push_callback``, ``priority``, ``force_connection`` and
        ``protocol`` (see the class) as keyword arguments, whether ``request``
        is a URL or an `HTTPRequest` (they are then set on it)."""
        extras = {name: kwargs.pop(name) for name in REQUEST_EXTRAS if name in kwargs}
        if not isinstance(request, HTTPRequest):
            request = HTTPRequest(url=request, **kwargs)
        elif kwargs:
            raise ValueError("kwargs can't be used if request is an HTTPRequest object")
        for name, value in extras.items():
            setattr(request, name, value)
        return super().fetch(request, raise_error=raise_error)

    def fetch_impl(
        self, request: HTTPRequest, callback: Callable[[HTTPResponse], None]
    ) -> None:
        """Answer a GET from a pushed response when one is (being) received
        for its URL; otherwise fetch as `SimpleAsyncHTTPClient` does, over a
        stream of the origin's session."""
        pushed = None
        if request.method == "GET" and not _extra(request, "force_connection"):
            pushed = self.pool.take_push(request.url, _extra(request, "protocol"))
        if pushed is None:
            super().fetch_impl(request, callback)
            return

        def answer(future: Future[HTTPResponse | None]) -> None:
            response = future.result()
            if response is None:  # the push failed: ask for it after all
                super(SPDYClient, self).fetch_impl(request, callback)
            else:
                callback(_answer_from_push(request, response))

        self.io_loop.add_future(pushed, answer)

    def _connection_class(self) -> type:
        return _StreamHTTPConnection

    def close(self) -> None:
        self.pool.close()
        super().close()


class SessionPool:
    """The client's sessions, one per origin, shared by its fetches.

    :arg tcp_client: opens TCP (and TLS) connections.
    :arg protocols: offered by ALPN.
    :arg plain_protocol: spoken on cleartext connections.
    :arg params: limits of each session.
    """

    def __init__(
        self,
        tcp_client: TCPClient,
        protocols: list[str],
        plain_protocol: str,
        params: SessionParameters,
    ):
        self.tcp_client = tcp_client
        self.protocols = protocols
        self.plain_protocol = plain_protocol
        self.params = params
        self.sessions: dict[OriginKey, Session] = {}
        self._open: set[Session] = set()  # every live session, pooled or not
        #: Pushed responses not fetched yet, by URL, per session.
        self.pushes: dict[Session, dict[str, Future[HTTPResponse | None]]] = {}
        self._connecting: dict[OriginKey, Future[Session | None]] = {}
        self._contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
        #: Given to each new session as `Session.trace`.
        self.trace: Callable[[Session], Any] | None = None

    def ssl_context(self, request: Any) -> ssl.SSLContext:
        """An ALPN-offering context for the request's TLS options (cached)."""
        protocols = self._offer(request)
        user = request.ssl_options
        if isinstance(user, ssl.SSLContext):
            tls.set_protocols(user, protocols)
            return user
        if isinstance(user, dict):
            # As SimpleAsyncHTTPClient takes them: ssl.wrap_socket's arguments.
            key: tuple[Any, ...] = (tuple(protocols), repr(sorted(user.items())))
            context = self._contexts.get(key)
            if context is None:
                context = ssl_options_to_context(user, server_side=False)
                tls.set_protocols(context, protocols)
                self._contexts[key] = context
            return context
        key = (
            tuple(protocols),
            request.validate_cert,
            request.ca_certs,
            request.client_cert,
            request.client_key,
        )
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = tls.client_context(
                protocols,
                ca_certs=request.ca_certs,
                validate_cert=request.validate_cert,
                client_cert=request.client_cert,
                client_key=request.client_key,
            )
        return context

    def _offer(self, request: Any) -> list[str]:
        forced = _extra(request, "protocol")
        return [forced] if forced else self.protocols

    async def connect(
        self,
        request: Any,
        host: str,
        port: int,
        ssl_options: Any = None,
        **connect_args: Any,
    ) -> IOStream | _StreamHandle:
        """A stream of the origin's session, or a TCP connection for HTTP/1.1."""
        framing = _extra(request, "protocol") or self.plain_protocol
        # TLS: the context names the offer; cleartext: the protocol spoken.
        key = (
            host,
            port,
            repr(id(ssl_options)) if ssl_options is not None else framing,
        )
        if ssl_options is None and framing not in MULTIPLEXED:
            return await self.tcp_client.connect(host, port, **connect_args)
        priority = _extra(request, "priority")
        priority = 3 if priority is None else priority
        if not _extra(request, "force_connection"):
            session = await self._existing(key, connect_args.get("timeout"))
            if session is not None:
                return _StreamHandle(session.new_stream(priority))
        waiter: Future[Session | None] = Future()
        self._connecting.setdefault(key, waiter)
        try:
            stream = await self.tcp_client.connect(
                host, port, ssl_options=ssl_options, **connect_args
            )
            if isinstance(stream, SSLIOStream):
                assert isinstance(stream.socket, ssl.SSLSocket)
                framing = tls.negotiated_protocol(stream.socket) or "http/1.1"
            if framing not in MULTIPLEXED:
                return stream
            core = new_core(framing, True, self.params)
            session = Session(stream, core, self.params, f"{host}:{port}", self)
            session.accept_push = self._accept_push
            self._open.add(session)
            if self.trace is not None:
                session.trace = self.trace(session)
            self.pushes[session] = {}
            session.start()
            self.sessions[key] = session
            waiter.set_result(session)
            return _StreamHandle(session.new_stream(priority))
        finally:
            if not waiter.done():
                waiter.set_result(None)  # HTTP/1.1 or a failure: waiters connect
            if self._connecting.get(key) is waiter:
                del self._connecting[key]

    async def _existing(
        self, key: OriginKey, timeout: float | None = None
    ) -> Session | None:
        """The origin's session, waiting (within ``timeout``) for one being
        opened by another fetch."""
        session = self.sessions.get(key)
        if session is None or not session.accepts_streams:
            waiter = self._connecting.get(key)
            if waiter is None:
                session = None
            elif timeout is None:
                session = await waiter
            else:
                session = await gen.with_timeout(
                    datetime.timedelta(seconds=max(timeout, 0)), asyncio.shield(waiter)
                )
        if session is not None and session.accepts_streams:
            return session
        return None

    def on_close(self, session: Session) -> None:
        """Forget a session that has closed; pushes still awaited from it
        resolve to None (their fetches then ask the server)."""
        self._open.discard(session)
        for key, value in list(self.sessions.items()):
            if value is session:
                del self.sessions[key]
        for future in self.pushes.pop(session, {}).values():
            if not future.done():
                future.set_result(None)

    def _accept_push(
        self, parent: StreamConnection, pushed: StreamConnection, headers: Any
    ) -> _PushedResponse | None:
        """A server pushed a stream: collect its response for the push cache
        and the parent request's ``push_callback``."""
        cache = self.pushes.get(parent.session)
        request = getattr(parent, "client_request", None)
        if cache is None or request is None:
            return None
        url = _push_url(headers, request.url)
        if url in cache or len(cache) >= self.params.max_pushed_responses:
            return None
        parent.associated_urls.append(url)
        future: Future[HTTPResponse | None] = Future()
        cache[url] = future
        pushed.decompress = parent.decompress
        return _PushedResponse(url, request, future, parent.framing)

    def take_push(
        self, url: str, framing: str | None = None
    ) -> Future[HTTPResponse | None] | None:
        """The pushed response for ``url``, if a session (of ``framing``, when
        given) has one; each push answers one fetch."""
        for session, cache in self.pushes.items():
            if framing is not None and session.framing != framing:
                continue
            future = cache.pop(url, None)
            if future is not None:
                return future
        return None

    def close(self) -> None:
        """Close every session of the pool, pooled or not."""
        for session in list(self._open):
            session.stream.close()
        self._open.clear()
        self.sessions.clear()


class _StreamHandle:
    """What one request's `_HTTPConnection` takes for its IOStream: a stream
    of a shared session. Closing it resets the stream, not the session."""

    def __init__(self, connection: StreamConnection):
        self.connection = connection
        self.error: BaseException | None = None
        self.socket = connection.session.stream.socket

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        self.connection.set_close_callback(callback)

    def set_nodelay(self, value: bool) -> None:
        pass  # sessions always set TCP_NODELAY

    def closed(self) -> bool:
        return self.connection.closed

    def close(self) -> None:
        self.connection.reset("cancel")


class _StreamHTTPConnection(_HTTPConnection):
    """Tornado's client request machinery over a `SessionPool`."""

    def __init__(self, client: SPDYClient, request: Any, *args: Any) -> None:
        self.pool = client.pool
        self.framing = "http/1.1"
        self.associated_urls: list[str] = []
        self._retried = False
        arguments = list(args)
        arguments[3] = _BoundPool(client.pool, request)  # the tcp_client argument
        super().__init__(client, request, *arguments)

    def _get_ssl_options(self, scheme: str) -> Any:
        if scheme != "https":
            return None
        return self.pool.ssl_context(self.request)

    def _create_connection(self, stream: Any) -> Any:
        if not isinstance(stream, _StreamHandle):
            return super()._create_connection(stream)
        connection = stream.connection
        self.framing = connection.framing
        self.associated_urls = connection.associated_urls
        connection.client_request = self.request  # type: ignore[attr-defined]
        connection.decompress = bool(self.request.decompress_response)
        if self.max_body_size is not None:
            connection.set_max_body_size(self.max_body_size)
        return connection

    def _run_callback(self, response: HTTPResponse) -> None:
        response.framing = self.framing  # type: ignore[attr-defined]
        response.associated_urls = list(self.associated_urls)  # type: ignore[attr-defined]
        super()._run_callback(response)

    def on_connection_close(self) -> None:
        if self._may_send_again():
            self._retried = True
            self.code = self.headers = None
            self.chunks = bytearray()
            IOLoop.current().add_future(
                convert_yielded(self.run()), lambda f: f.result()
            )
            return
        super().on_connection_close()

    def _may_send_again(self) -> bool:
        """The stream ended without a response in a way that lets the request
        go once more, on a new session if need be: the server refused it
        unprocessed (GOAWAY or REFUSED_STREAM), or the connection was lost
        before any of the response came and the method is idempotent (a
        session the server closed while idle, the client not yet knowing)."""
        handle = getattr(self, "stream", None)
        if (
            not isinstance(handle, _StreamHandle)
            or self._retried
            or self.request.body_producer is not None
            or self.final_callback is None
        ):
            return False
        connection = handle.connection
        return connection.refused or (
            connection.lost_unanswered and self.request.method in IDEMPOTENT_METHODS
        )


#: Methods a client may send again after a lost connection (RFC 9110 9.2.2).
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))


class _BoundPool:
    """The pool, as `TCPClient` for one request (``connect`` gets the request)."""

    def __init__(self, pool: SessionPool, request: Any):
        self.pool = pool
        self.request = request

    async def connect(self, host: str, port: int, **kwargs: Any) -> Any:
        return await self.pool.connect(self.request, host, port, **kwargs)

    def close(self) -> None:
        pass


class _PushedResponse(httputil.HTTPMessageDelegate):
    """Collects a pushed response into an `HTTPResponse`."""

    def __init__(
        self, url: str, parent_request: Any, future: Future[Any], framing: str
    ):
        self.url = url
        self.framing = framing
        self.parent_request = parent_request
        self.future = future
        self.start_time = time.time()
        self.code = 0
        self.reason = ""
        self.headers = httputil.HTTPHeaders()
        self.chunks: list[bytes] = []

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        assert isinstance(start_line, httputil.ResponseStartLine)
        self.code, self.reason, self.headers = (
            start_line.code,
            start_line.reason,
            headers,
        )

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def finish(self) -> None:
        response = HTTPResponse(
            HTTPRequest(self.url, headers=self.headers),
            self.code,
            reason=self.reason,
            headers=self.headers,
            buffer=io.BytesIO(b"".join(self.chunks)),
            effective_url=self.url,
            request_time=time.time() - self.start_time,
            start_time=self.start_time,
        )
        response.associated_to_url = self.parent_request.url  # type: ignore[attr-defined]
        response.framing = self.framing  # type: ignore[attr-defined]
        if not self.future.done():
            self.future.set_result(response)
        callback = _extra(self.parent_request, "push_callback")
        if callback is not None:
            try:
                callback(response)
            except Exception:
                app_log.error(
                    "Exception in push_callback for %s", self.url, exc_info=True
                )

    def on_connection_close(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


def _push_url(headers: Any, parent_url: str) -> str:
    """The absolute URL a push promises (its authority may be missing)."""
    fields = {bytes(n).decode("latin1"): bytes(v).decode("latin1") for n, v in headers}
    parent = urllib.parse.urlsplit(parent_url)
    scheme = fields.get(":scheme") or parent.scheme
    authority = fields.get(":authority") or parent.netloc
    return f"{scheme}://{authority}{fields.get(':path', '/')}"


def _answer_from_push(request: Any, pushed: HTTPResponse) -> HTTPResponse:
    """A fetch's response made from a pushed one."""
    body = pushed.body
    if request.header_callback is not None:
        request.header_callback(f"HTTP/1.1 {pushed.code} {pushed.reason}\r\n")
        for name, value in pushed.headers.get_all():
            request.header_callback(f"{name}: {value}\r\n")
        request.header_callback("\r\n")
    if request.streaming_callback is not None:
        request.streaming_callback(body)
        body = b""
    response = HTTPResponse(
        request,
        pushed.code,
        reason=pushed.reason,
        headers=pushed.headers,
        buffer=io.BytesIO(body),
        effective_url=pushed.effective_url,
        request_time=pushed.request_time,
        start_time=pushed.start_time,
    )
    response.framing = getattr(pushed, "framing", None)  # type: ignore[attr-defined]
    response.associated_to_url = getattr(pushed, "associated_to_url", None)  # type: ignore[attr-defined]
    response.associated_urls = []  # type: ignore[attr-defined]
    response.pushed = True  # type: ignore[attr-defined]
    return response


def _extra(request: Any, name: str) -> Any:
    """A `REQUEST_EXTRAS` value of a request (or its defaults proxy)."""
    target = getattr(request, "request", request)
    return getattr(target, name, None)
