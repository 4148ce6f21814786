"""`StreamConnection`: one stream of a multiplexed session as a
`tornado.httputil.HTTPConnection`.

Tornado's `HTTPMessageDelegate` (a `RequestHandler`'s dispatcher on a server)
receives the stream's headers, body and end exactly as it would from
`tornado.http1connection.HTTP1Connection`; what it writes is queued here and
sent by the `Session`'s write pump as flow control allows.
"""

from __future__ import annotations

import collections
import copy
import http
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tornado import httputil, iostream
from tornado.concurrent import Future, future_set_result_unless_cancelled
from tornado.http1connection import _GzipMessageDelegate
from tornado.log import app_log, gen_log

from tornado_spdy.http2 import SEND_ERRORS, TOO_MANY_STREAMS, wire_priority

if TYPE_CHECKING:
    from tornado_spdy.session import Session

Headers = list[tuple[bytes, bytes]]

#: Header fields of one HTTP/1.1 hop, meaningless (h2: forbidden) in a stream.
HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade")
)

HTTP_REASONS = {status.value: status.phrase for status in http.HTTPStatus}

_END = None  # the inbox marker for the end of the peer's side


class StreamClosedError(iostream.StreamClosedError):
    """The stream was reset or its session closed; what was written is lost."""


def request_from_headers(
    headers: Headers,
) -> tuple[str, str, str | None, httputil.HTTPHeaders]:
    """Split a received h2-style header list into method, path, authority and
    Tornado `HTTPHeaders` (with ``Host`` set from ``:authority``; cookies
    joined with ``"; "`` as RFC 9113 section 8.2.3 asks)."""
    method = path = authority = None
    fields = httputil.HTTPHeaders()
    cookies: list[str] = []
    for name, value in headers:
        if name[:1] == b":":
            if name == b":method":
                method = value.decode("latin1")
            elif name == b":path":
                path = value.decode("latin1")
            elif name == b":authority":
                authority = value.decode("latin1")
        elif name == b"cookie":
            cookies.append(value.decode("latin1"))
        else:
            fields.add(name.decode("latin1"), value.decode("latin1"))
    if cookies:
        fields["Cookie"] = "; ".join(cookies)
    if authority is not None and "Host" not in fields:
        fields["Host"] = authority
    return method or "", path or "", authority, fields


#: Tornado header names as they go on the wire (lower-case bytes), None for
#: the ones that do not go (hop-by-hop, and Host, which is ``:authority``);
#: every response would otherwise lower and encode the same few names.
_WIRE_NAMES: dict[str, bytes | None] = {}
_WIRE_NAMES_MAX = 1024  # names an application invents for each response


def _wire_name(name: str) -> bytes | None:
    lower = name.lower()
    wire = None if lower in HOP_BY_HOP or lower == "host" else lower.encode("latin1")
    if len(_WIRE_NAMES) < _WIRE_NAMES_MAX:
        _WIRE_NAMES[name] = wire
    return wire


def _fields_to_headers(headers: httputil.HTTPHeaders, result: Headers) -> Headers:
    """Append Tornado ``headers`` to an h2-style header list."""
    names = _WIRE_NAMES
    for name, value in headers.get_all():
        wire = names[name] if name in names else _wire_name(name)
        if wire is not None:
            result.append((wire, value.encode("latin1")))
    return result


def request_to_headers(
    start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders, scheme: str
) -> Headers:
    """A Tornado request head as an h2-style header list for either core."""
    result: Headers = [
        (b":method", start_line.method.encode("latin1")),
        (b":path", start_line.path.encode("utf-8")),
        (b":scheme", scheme.encode("latin1")),
        (b":authority", headers.get("Host", "").encode("latin1")),
    ]
    return _fields_to_headers(headers, result)


def response_from_headers(
    headers: Headers, version: str, reason: bytes = b""
) -> tuple[httputil.ResponseStartLine, httputil.HTTPHeaders]:
    """A received h2-style response header list (and SPDY's reason phrase)
    as Tornado's start line and headers."""
    code = 0
    fields = httputil.HTTPHeaders()
    for name, value in headers:
        if name == b":status":
            code = int(value)
        elif name[:1] != b":":
            fields.add(name.decode("latin1"), value.decode("latin1"))
    text = reason.decode("latin1") if reason else HTTP_REASONS.get(code, "Unknown")
    return httputil.ResponseStartLine(version, code, text), fields


def response_to_headers(
    start_line: httputil.ResponseStartLine,
    headers: httputil.HTTPHeaders,
    with_reason: bool = False,
) -> Headers:
    """A Tornado response head as an h2-style header list for either core;
    ``with_reason`` (SPDY, whose status line has one) keeps the reason
    phrase in ``:status`` when it can go on the wire."""
    status = b"%d" % start_line.code
    reason = start_line.reason
    if with_reason and reason and reason.isprintable() and reason.isascii():
        status += b" " + reason.encode("ascii")
    return _fields_to_headers(headers, [(b":status", status)])


class StreamConnection(httputil.HTTPConnection):
    """One stream of a `Session`, as Tornado's delegates see a connection.

    Besides the three `HTTPConnection` methods it offers what Tornado's callers
    use of `HTTP1Connection`: ``context``, ``stream`` (the session's IOStream,
    for `HTTPServerRequest.get_ssl_certificate`), `set_close_callback`,
    `set_max_body_size`, `set_body_timeout` and `detach` (which raises).

    :arg session: the session the stream belongs to.
    :arg stream_id: its id in the protocol.
    :arg priority: its urgency, 0 (highest) to 7.
    """

    def __init__(self, session: Session, stream_id: int, priority: int = 3):
        self.session = session
        self.stream_id = stream_id
        self.priority = priority
        self.framing = session.framing
        self.stream = session.stream
        # The xheaders adapter rewrites the context in place: then each stream
        # needs its own.
        xheaders = getattr(session.server, "xheaders", False)
        self.context = copy.copy(session.context) if xheaders else session.context
        self.delegate: httputil.HTTPMessageDelegate | None = None
        self.request: httputil.HTTPServerRequest | None = None
        self.params = session.params
        self.decompress = session.params.decompress
        self._max_body_size = session.params.max_body_size
        self._body_timeout = session.params.body_timeout
        self._body_timer: object | None = None
        self._received = 0
        # Inbound: what waits for the delegate while it is busy.
        # Inbound items: (data, flow-controlled length), (response head, None)
        # on a client, and _END.
        self._inbox: collections.deque[Any] = collections.deque()
        self._busy = False  # a delegate call's future is pending
        self._delegate_done = False  # finish() or on_connection_close() delivered
        self._remote_ended = False
        # Outbound: the head, the body chunks and their writers' futures.
        self._head: Headers | None = None
        self._head_sent = False
        self._chunks: collections.deque[memoryview] = collections.deque()
        self._waiters: collections.deque[tuple[int, Future[None]]] = collections.deque()
        self._queued = 0
        self._sent = 0
        self._finishing = False
        self._local_ended = False
        self._closed = False
        self._close_callback: Callable[[], None] | None = None
        self._response_done: Future[bool] | None = None  # client side
        self._continue_expected = False  # client side: Expect: 100-continue
        self._discarding = False  # client side: the server took no more body
        self._expected_length: int | None = None  # Content-Length to meet
        self._request_method = ""  # server side
        # Server push: the stream that promised this one, and (SPDY) how many
        # of this stream's pushes still lack their head: a SPDY client must
        # see a push's status before the data that could make it ask.
        self.pushed_by: StreamConnection | None = None
        self._pushes_without_head = 0
        self._holds_parent = False
        #: The peer refused the stream unprocessed (REFUSED_STREAM, or above a
        #: GOAWAY's last stream id): a client may send it again.
        self.refused = False
        #: Client side: the connection was lost before any of the response
        #: came; an idempotent request may be sent again (RFC 9110 section
        #: 9.2.2), as browsers do on a reused connection the server closed.
        self.lost_unanswered = False
        self._answered = False  # client side: a response head arrived
        self._reason = b""  # client side: its reason phrase (SPDY)
        #: Client side: URLs the server promised on this stream.
        self.associated_urls: list[str] = []

    def __repr__(self) -> str:
        return f"<StreamConnection {self.framing} {self.stream_id}>"

    # ----------------------------------------------------- HTTPConnection API

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> Future[None]:
        """Queue the head (a response on a server, a request on a client) and
        a first chunk."""
        if self._head is not None or self._head_sent:
            raise httputil.HTTPOutputError("headers written twice")
        if isinstance(start_line, httputil.ResponseStartLine):
            self._head = response_to_headers(
                start_line, headers, with_reason=self.session.family == "spdy"
            )
            body_allowed = self._request_method != "HEAD" and start_line.code not in (
                204,
                304,
            )
        else:
            self._head = request_to_headers(start_line, headers, self.session.scheme)
            body_allowed = True
            if headers.get("Expect", "").lower() == "100-continue":
                self._continue_expected = True
                self._head = [(n, v) for n, v in self._head if n != b"expect"]
        length = headers.get("Content-Length")
        if body_allowed and length is not None and length.isdigit():
            self._expected_length = int(length)
        self.session.schedule(self)
        return self.write(chunk or b"")

    def write(self, chunk: bytes) -> Future[None]:
        """Queue a body chunk; the future resolves once flow control let all
        of it go to the socket."""
        future: Future[None] = Future()
        if self._discarding:
            future.set_result(None)
            return future
        if self._closed:
            _fail(future)
            return future
        if self._finishing:
            raise httputil.HTTPOutputError("write() after finish()")
        if self._expected_length is not None and chunk:
            if self._queued + len(chunk) > self._expected_length:
                self.reset("internal")
                raise httputil.HTTPOutputError(
                    "Tried to write more data than Content-Length"
                )
        if chunk:
            self._chunks.append(memoryview(chunk))
            self._queued += len(chunk)
            if not (self._may_send_now and self.session.send_now(self)):
                self.session.schedule(self)
        if self._sent >= self._queued:
            future.set_result(None)
        else:
            self._waiters.append((self._queued, future))
        return future

    def finish(self) -> None:
        """End the message once everything queued is sent."""
        if self._finishing or self._closed or self._discarding:
            return
        if self._expected_length is not None and self._queued < self._expected_length:
            missing = self._expected_length - self._queued
            self.reset("internal")
            raise httputil.HTTPOutputError(
                f"Tried to write {missing} bytes less than Content-Length"
            )
        self._finishing = True
        self.session.stream_finished(self)

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` if the stream is reset or its session lost."""
        self._close_callback = callback

    def set_max_body_size(self, max_body_size: int) -> None:
        """Refuse (reset) a request body larger than ``max_body_size``."""
        self._max_body_size = max_body_size

    def set_body_timeout(self, timeout: float) -> None:
        """Reset the stream if the request body takes longer than ``timeout`` seconds."""
        self._body_timeout = timeout
        self._start_body_timer()

    def detach(self) -> iostream.IOStream:
        """Not possible: the connection is shared by other streams."""
        raise NotImplementedError(
            f"a {self.framing} stream shares its connection with other streams "
            "and cannot be detached (WebSocket needs HTTP/1.1)"
        )

    # ------------------------------------------------------- inbound (client)

    def read_response(self, delegate: httputil.HTTPMessageDelegate) -> Future[bool]:
        """Deliver the response to ``delegate``; the future resolves when it is
        complete (True) or the stream ends without it (False)."""
        if self.decompress:
            delegate = _GzipMessageDelegate(
                delegate, self.params.chunk_size, self._max_body_size
            )
        self.delegate = delegate
        self._response_done = Future()
        if self._closed:
            self._close_delegate()
        else:
            if self._continue_expected:
                # No 1xx in SPDY, and h2 peers rarely send one: the body goes
                # at once, as if the server had said 100 Continue.
                self._continue_expected = False
                self._inbox.appendleft(([(b":status", b"100")], None))
            if not self._busy:
                self._drain_inbox()
        return self._response_done

    def expect_push(self) -> None:
        """This is a pushed stream on a client: nothing is sent on it."""
        self._head_sent = True
        self._local_ended = True

    def response_received(self, headers: Headers, reason: bytes = b"") -> None:
        """The response head arrived (it may come before the request's body
        is sent: it waits for `read_response`); ``reason`` is SPDY's reason
        phrase."""
        self._answered = True
        self._reason = reason
        self._inbox.append((headers, None))
        if not self._busy:
            self._drain_inbox()

    def connection_lost(self) -> None:
        """The session's connection is gone."""
        if self.session.client_side and not self._answered:
            self.lost_unanswered = True
        self.peer_gone()

    def peer_gone(self) -> None:
        """The peer reset the stream, or the connection is lost: a complete
        response still goes to its fetch; otherwise the stream closes."""
        if self.session.client_side and self._remote_ended:
            # The response is complete: it stands, whatever the reset says
            # (RFC 9113 8.1: a server may stop our upload so; spdy-transport
            # resets a stream our WINDOW_UPDATE reaches after its FIN). What is
            # left of our body is dropped.
            if not self._local_ended:
                self._discarding = True
                self._chunks.clear()
                self._sent = self._queued
                self._local_ended = True
                self._wake_writers()
            self._maybe_done()
            return
        self.close()

    # ------------------------------------------------------- inbound (server)

    def start_request(self, headers: Headers) -> None:
        """Hand a received request to the server's delegate."""
        try:
            method, path, _, fields = request_from_headers(headers)
        except httputil.HTTPInputError as exc:
            self.malformed(exc)
            return
        if self.session.family == "spdy" and "Accept-Encoding" not in fields:
            # SPDY clients must take gzip whatever they say (SPDY/3 3.2.1), so
            # compress_response applies to every SPDY response, as in the seed.
            fields["Accept-Encoding"] = "gzip"
        start_line = httputil.RequestStartLine(method, path, self.session.version)
        self._request_method = method
        delegate = self.session.server.start_request(self.session, self)
        if self.decompress:
            delegate = _GzipMessageDelegate(
                delegate, self.params.chunk_size, self._max_body_size
            )
        self.delegate = delegate
        self._start_body_timer()
        self._call(delegate.headers_received, start_line, fields)
        if fields.get("Expect", "").lower() == "100-continue":
            self.write_informational(100, [])
        self.request = _find_request(delegate)
        if self.request is not None:
            self.request.framing = self.framing  # type: ignore[attr-defined]
            self.request.priority = self.priority  # type: ignore[attr-defined]

    def data_received(self, data: bytes | memoryview, length: int) -> None:
        """DATA from the peer; ``length`` is what flow control counted."""
        if self._delegate_done:
            self.session.acknowledge(self.stream_id, length)
            return
        self._received += len(data)
        if self._received > self._max_body_size:
            gen_log.info(
                "%s stream %s from %s: body over %s bytes",
                self.framing,
                self.stream_id,
                self.context,
                self._max_body_size,
            )
            self.session.acknowledge(self.stream_id, length)
            self.reset("cancel")
            return
        self._inbox.append((data, length))
        if not self._busy:
            self._drain_inbox()

    def end_received(self) -> None:
        """The peer finished its side."""
        self._remote_ended = True
        self._cancel_body_timer()
        self._inbox.append(_END)
        if not self._busy:
            self._drain_inbox()

    def _drain_inbox(self) -> None:
        inbox = self._inbox
        delegate = self.delegate
        while inbox and not self._busy and not self._delegate_done:
            if delegate is None:
                break  # a client's response waits for read_response()
            item = inbox.popleft()
            if item is _END:
                self._delegate_done = True
                self._resolve_response(True)
                self._call(delegate.finish)
                continue
            data, length = item
            if length is None:  # a response head
                try:
                    start_line, fields = response_from_headers(
                        data, self.session.http_version, self._reason
                    )
                except (httputil.HTTPInputError, ValueError) as exc:
                    self.malformed(exc)
                    return
                self._call(delegate.headers_received, start_line, fields)
                continue
            if type(data) is not bytes:
                data = bytes(data)
            if not self._call(delegate.data_received, data, acknowledge=length):
                self.session.acknowledge(self.stream_id, length)
        self._maybe_done()

    def _call(
        self, method: Callable[..., Any], *args: Any, acknowledge: int = 0
    ) -> bool:
        """Call a delegate method; True if it returned a future to wait on.

        ``acknowledge`` bytes are given back to flow control when that future
        resolves. An exception resets this stream alone.
        """
        try:
            result = method(*args)
        except httputil.HTTPInputError as exc:
            self.malformed(exc)  # Tornado's own check (e.g. no Host)
            return False
        except Exception:
            self._delegate_failed()
            return False
        if result is None:
            return False
        self._busy = True
        future: Future[Any] = _as_future(result)
        future.add_done_callback(lambda f: self._resume(f, acknowledge))
        return True

    def _resume(self, future: Future[Any], length: int) -> None:
        self._busy = False
        try:
            future.result()
        except Exception:
            self._delegate_failed()
            return
        if length:
            self.session.acknowledge(self.stream_id, length)
        self._drain_inbox()
        self.session.schedule_flush()

    def malformed(self, exc: Exception) -> None:
        """The peer sent a head Tornado cannot take (a bad header name or
        value, no Host, a non-numeric status): its bad input, so an info line
        and RST_STREAM PROTOCOL_ERROR for this stream alone (RFC 9113
        section 8.1.1), where HTTP/1.1 would answer 400."""
        gen_log.info(
            "%s stream %s from %s: malformed message: %s",
            self.framing,
            self.stream_id,
            self.session.context,
            str(exc),
        )
        if not self.session.client_side:
            self._delegate_done = True  # no handler was made to be told
        self.reset("protocol")

    def _delegate_failed(self) -> None:
        app_log.error(
            "Uncaught exception in %s stream %s",
            self.framing,
            self.stream_id,
            exc_info=True,
        )
        if not self.session.client_side:
            # A server's handler failed: no on_connection_close for it. A
            # client's delegate is told, so that its fetch ends now.
            self._delegate_done = True
        self.reset("internal")

    # ------------------------------------------------------ outbound (pump)

    def send_ready(self, budget: int) -> int:
        """Hand the core what it may take now: the head, then DATA frames
        within the windows and ``budget`` bytes, then the end of the stream.

        :returns: the bytes of DATA sent; the stream stays scheduled while it
            has more to send.
        """
        if not self._head_sent and not self.send_head():
            return 0
        if self._local_ended or self._pushes_without_head:
            return 0
        core = self.session.core
        stream_id = self.stream_id
        sent = 0
        chunks = self._chunks
        frame_size = core.max_outbound_frame_size
        while chunks and sent < budget:
            window = core.local_flow_control_window(stream_id)
            if window <= 0:
                break
            chunk = chunks[0]
            if window < len(chunk) and window < frame_size:
                if not self.session.may_cut_frame(window):
                    break
            size = min(len(chunk), window, budget - sent)
            last = size == len(chunk)
            end = last and self._finishing and len(chunks) == 1
            piece = chunk if last else chunk[:size]
            core.send_data_frames(stream_id, piece, end_stream=end)
            sent += size
            if last:
                chunks.popleft()
            else:
                chunks[0] = chunk[size:]
            if end:
                self._sent += sent
                self._local_end()
                return sent
        self._sent += sent
        self._wake_writers()
        if not chunks and self._finishing and self._head_sent:
            core.end_stream(stream_id)
            self._local_end()
        return sent

    def send_head(self) -> bool:
        """Send the queued head (ending the stream if nothing follows);
        False if the peer's stream limit holds it back."""
        if self._head is None:
            return False
        if self.pushed_by is not None and not self.session.push_may_open():
            return False
        end = self._finishing and not self._chunks and not self._pushes_without_head
        try:
            self.session.core.send_headers(
                self.stream_id, self._head, end_stream=end, **self._head_extra()
            )
        except TOO_MANY_STREAMS:
            return False
        self._head = None
        self._head_sent = True
        if self.pushed_by is not None:
            self.session.push_opened(self)
        self._release_parent()
        if end:
            self._local_end()
        return True

    def write_informational(self, code: int, headers: list[tuple[str, str]]) -> None:
        """Send a 1xx response (h2 only: SPDY has none) before the final head."""
        if self.session.family != "h2" or self._head_sent or self._closed:
            return
        fields = [(b":status", b"%d" % code)]
        fields += [(n.lower().encode("latin1"), v.encode("latin1")) for n, v in headers]
        try:
            self.session.core.send_headers(self.stream_id, fields)
        except SEND_ERRORS:
            return
        self.session.schedule_flush()

    # ------------------------------------------------------------ push

    def push(self, headers: Headers) -> StreamConnection | None:
        """Promise a push of the request ``headers`` (h2 names) on this stream
        and run it through the server's application.

        :returns: the pushed stream, or None where no push can be made (the
            peer refused pushes, the session is closing, this stream is itself
            a push or already sent its head, or the stream limit is reached).
        """
        if self.pushed_by is not None or self._head_sent or self._closed:
            return None
        pushed = self.session.push(self, headers)
        if pushed is None:
            return None
        if self.session.family == "spdy":
            self._pushes_without_head += 1
            pushed._holds_parent = True
        pushed.start_request(headers)
        pushed.end_received()
        return pushed

    def _release_parent(self) -> None:
        """This push's head went out (or never will): let the parent go on."""
        if self._holds_parent and self.pushed_by is not None:
            self._holds_parent = False
            parent = self.pushed_by
            parent._pushes_without_head -= 1
            if parent.wants_to_send:
                self.session.schedule(parent)

    def _head_extra(self) -> dict[str, int]:
        if not self.session.client_side:
            return {}
        return {"priority": wire_priority(self.session.core, self.priority)}

    @property
    def closed(self) -> bool:
        """The stream has ended, whichever way."""
        return self._closed

    @property
    def has_head(self) -> bool:
        """Headers are queued and not yet sent."""
        return self._head is not None

    @property
    def _may_send_now(self) -> bool:
        """The head went before and nothing holds the body back."""
        return (
            self._head_sent
            and not self._local_ended
            and not self._pushes_without_head
            and not self._closed
        )

    @property
    def wants_to_send(self) -> bool:
        """The stream has a head, data or its end still to send."""
        if self._closed or self._local_ended:
            return False
        return self._head is not None or bool(self._chunks) or self._finishing

    def _wake_writers(self) -> None:
        waiters = self._waiters
        while waiters and waiters[0][0] <= self._sent:
            future_set_result_unless_cancelled(waiters.popleft()[1], None)

    def _local_end(self) -> None:
        self._local_ended = True
        self._wake_writers()
        if not self._remote_ended and not self.session.client_side:
            # The response is complete before the request: stop the upload.
            self.session.reset_after_response(self)
        self._maybe_done()

    def _maybe_done(self) -> None:
        """Close once both sides ended and the delegate has had everything."""
        if self._local_ended and self._remote_ended and not self._inbox:
            if not self._busy:
                self.close()

    # ------------------------------------------------------------- the end

    def reset(self, reason: str) -> None:
        """Reset the stream (``"cancel"``, ``"internal"`` or ``"refused"``);
        a stream both sides have ended just closes."""
        if self._closed:
            return
        if not (self._local_ended and self._remote_ended):
            self.session.reset_stream(self, reason)
        self.close()

    def close(self) -> None:
        """The stream is over, whichever way; runs exactly once."""
        if self._closed:
            return
        self._closed = True
        self._release_parent()
        self._cancel_body_timer()
        self._inbox.clear()
        self._chunks.clear()
        self.session.stream_closed(self)
        aborted = not (self._local_ended and self._remote_ended)
        told = self._close_delegate()
        # The delegate and the request (Tornado's routing, handler and
        # HTTPServerRequest) point back at this connection: letting go of them
        # frees a finished request at once, without waiting for the cyclic
        # garbage collector.
        self.delegate = self.request = None
        callback, self._close_callback = self._close_callback, None
        # A delegate told now has told its handler (streamed bodies): once is
        # enough, as on HTTP/1.1.
        if callback is not None and aborted and not told:
            try:
                callback()
            except Exception:
                app_log.error("Exception in close callback", exc_info=True)
        while self._waiters:
            future = self._waiters.popleft()[1]
            if not future.done():
                _fail(future)

    def _close_delegate(self) -> bool:
        """The stream is gone before the delegate finished: tell it so.
        True if it was told now."""
        told = False
        if not self._delegate_done and self.delegate is not None:
            self._delegate_done = told = True
            try:
                self.delegate.on_connection_close()
            except Exception:
                app_log.error("Exception in on_connection_close", exc_info=True)
        self._resolve_response(False)
        return told

    def _resolve_response(self, complete: bool) -> None:
        future = self._response_done
        if future is not None and not future.done():
            future.set_result(complete)

    def _start_body_timer(self) -> None:
        self._cancel_body_timer()
        if self._body_timeout and not self._remote_ended:
            io_loop = self.session.io_loop
            self._body_timer = io_loop.call_later(
                self._body_timeout, self._body_timed_out
            )

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self.session.io_loop.remove_timeout(self._body_timer)
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        gen_log.info(
            "%s stream %s from %s: body timeout",
            self.framing,
            self.stream_id,
            self.context,
        )
        self.reset("cancel")


def _fail(future: Future[None]) -> None:
    """Fail a write future with StreamClosedError, marked retrieved: its
    writer may never await it."""
    future.set_exception(StreamClosedError())
    future.exception()


def _as_future(result: Awaitable[Any]) -> Future[Any]:
    from tornado.gen import convert_yielded

    return convert_yielded(result)


def _find_request(delegate: Any) -> httputil.HTTPServerRequest | None:
    """The `HTTPServerRequest` a delegate chain made in ``headers_received``
    (Tornado's dispatcher, its xheaders and gzip adapters)."""
    for _ in range(4):
        if delegate is None:
            return None
        request = getattr(delegate, "request", None)
        if isinstance(request, httputil.HTTPServerRequest):
            return request
        delegate = getattr(delegate, "delegate", None) or getattr(
            delegate, "_delegate", None
        )
    return None
