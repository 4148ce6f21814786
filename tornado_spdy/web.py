"""Server push for `tornado.web.RequestHandler`: `PushMixin` and a ready
`RequestHandler` subclass.

A handler names the resources its page needs with `PushMixin.push` (or
``static_url(path, push=True)``, or a ``Link: <...>; rel=preload`` header with the
``push_preload`` setting); at the first `flush` the server promises each one on
the current stream, runs a GET for it through the application's own handlers,
and sends that response on the pushed stream, before the page's body.

Where a push cannot be made (HTTP/1.1, a client that disabled push, a SPDY
client that refuses pushed streams, a URL pushed on this connection before) the
resource is announced instead when the ``early_hints`` setting is on: in a
``103 Early Hints`` response (h2 and HTTP/1.1) and a ``Link`` header on the final
response. Nothing about push is ever an error for the client.

Application settings:

``static_push`` (default False)
    ``static_url()`` pushes what it names, and so do the JavaScript and CSS files
    of rendered UI modules. Off by default: a browser that has the file cached
    still receives it, and current browsers turn push off (they send
    SETTINGS_ENABLE_PUSH = 0).
``push_preload`` (default False)
    ``Link: <...>; rel=preload`` headers the handler sets become pushes, unless
    marked ``nopush`` (as nginx's ``http2_push_preload`` and h2o do).
``push_max`` (default 16)
    the most pushes one response makes.
``push_cookie`` (default None)
    the name of a cookie in which a digest of what was pushed is kept, so that a
    returning client is not pushed what it already has (h2o's CASPer).
``early_hints`` (default False)
    announce what could not be pushed, as above.
``alt_svc`` (default None)
    on HTTP/1.1 responses, advertise the multiplexed protocols: a port number
    gives ``Alt-Svc: h2=":PORT"`` and ``Alternate-Protocol: PORT:npn-spdy/3.1``;
    a string is sent as the ``Alt-Svc`` value.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import urllib.parse
from typing import Any

import tornado.web
from tornado.concurrent import Future

from tornado_spdy.stream import StreamConnection

#: Request headers a browser would send for a subresource, copied from the page.
PUSH_REQUEST_HEADERS = ("cookie", "accept-encoding", "accept-language", "user-agent")

_PRELOAD_AS = {
    ".js": "script",
    ".mjs": "script",
    ".css": "style",
    ".woff": "font",
    ".woff2": "font",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".gif": "image",
    ".svg": "image",
    ".webp": "image",
}
_DIGEST_ENTRIES = 64  # 4 bytes each: the push cookie stays under ~350 bytes


class PushError(RuntimeError):
    """`PushMixin.push` was called after the response head was sent."""


class PushMixin(tornado.web.RequestHandler):
    """Adds server push to a `tornado.web.RequestHandler`.

    Mix it in before the handler base class::

        class Page(PushMixin, tornado.web.RequestHandler):
            def get(self):
                self.push("/static/app.css")
                self.render("page.html")
    """

    _pushes: list[tuple[str, dict[str, str] | None]] | None = None

    def push(self, path: str, headers: dict[str, str] | None = None) -> None:
        """Push ``path`` (a path on this site, absolute or relative to the
        request) with the response, if the client takes pushes.

        :arg headers: request headers for the pushed GET besides those copied
            from this request (cookies, accept-encoding, accept-language,
            user-agent).
        :raises PushError: after the first `flush`, when the client may already
            have seen what the push was for.
        """
        if self._headers_written:
            raise PushError(f"push({path!r}) after the response head was sent")
        if self._pushes is None:
            self._pushes = []
        self._pushes.append((path, headers))

    def static_url(
        self,
        path: str,
        include_host: bool | None = None,
        push: bool | None = None,
        **kwargs: Any,
    ) -> str:
        """`tornado.web.RequestHandler.static_url`, pushing the file when
        ``push`` is true (by default, the ``static_push`` setting)."""
        url = super().static_url(path, include_host, **kwargs)
        if push is None:
            push = bool(self.settings.get("static_push", False))
        if push and not self._headers_written:
            self.push(url)
        return url

    def flush(self, include_footers: bool = False) -> Future[None]:
        if not self._headers_written:
            self._before_head()
        return super().flush(include_footers)

    # -------------------------------------------------------------- private

    def _before_head(self) -> None:
        """At the first flush: make the pushes, or announce them."""
        if self.request.version == "HTTP/1.1":
            self._advertise_alternatives()
        paths = [(p, h) for p, h in self._pushes or ()]
        if self.settings.get("push_preload"):
            paths.extend((p, None) for p in self._preload_links())
        self._pushes = None
        if not paths:
            return
        connection = self.request.connection
        can_push = (
            isinstance(connection, StreamConnection)
            and connection.pushed_by is None
            and connection.session.can_push
            and self.request.method != "HEAD"
        )
        limit = int(self.settings.get("push_max", 16))
        known = self._pushed_digest()
        pushed: list[str] = []
        announce: list[str] = []
        for path, extra in paths:
            url = self._same_site_path(path)
            if url is None or url in pushed or url in announce:
                continue
            if _digest(url) in known:
                continue  # the client has it from an earlier visit
            if can_push and len(pushed) < limit:
                assert isinstance(connection, StreamConnection)
                if connection.push(self._push_request(connection, url, extra)):
                    pushed.append(url)
                    continue
            announce.append(url)
        if pushed and self.settings.get("push_cookie"):
            self._remember_pushed(known, pushed)
        if announce and self.settings.get("early_hints"):
            self._early_hints(announce)

    def _same_site_path(self, path: str) -> str | None:
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(self.request.path, path))
        if parts.netloc and parts.netloc != self.request.host:
            return None
        url = posixpath.normpath(parts.path) if parts.path else "/"
        return url + ("?" + parts.query if parts.query else "")

    def _push_request(
        self,
        connection: StreamConnection,
        url: str,
        extra: dict[str, str] | None,
    ) -> list[tuple[bytes, bytes]]:
        headers = [
            (b":method", b"GET"),
            (b":path", url.encode("latin1")),
            (b":scheme", connection.session.scheme.encode("latin1")),
            (b":authority", self.request.host.encode("latin1")),
        ]
        for name in PUSH_REQUEST_HEADERS:
            value = self.request.headers.get(name)
            if value is not None:
                headers.append((name.encode(), value.encode("latin1")))
        for name, value in (extra or {}).items():
            headers.append((name.lower().encode("latin1"), value.encode("latin1")))
        return headers

    def _preload_links(self) -> list[str]:
        """``Link: <url>; rel=preload`` headers not marked ``nopush``."""
        urls = []
        for header in self._headers.get_list("Link"):
            for link in header.split(","):
                target, _, params = link.partition(";")
                target = target.strip()
                fields = [p.strip().lower() for p in params.split(";")]
                if (
                    target.startswith("<")
                    and target.endswith(">")
                    and "rel=preload" in fields
                    and "nopush" not in fields
                ):
                    urls.append(target[1:-1])
        return urls

    def _early_hints(self, urls: list[str]) -> None:
        links = [_preload_link(url) for url in urls]
        for link in links:
            self.add_header("Link", link)
        connection = self.request.connection
        if isinstance(connection, StreamConnection):
            connection.write_informational(103, [("link", link) for link in links])
        elif self.request.version == "HTTP/1.1":
            stream = getattr(connection, "stream", None)
            if stream is not None and not stream.closed():
                lines = "".join(f"Link: {link}\r\n" for link in links)
                stream.write(
                    f"HTTP/1.1 103 Early Hints\r\n{lines}\r\n".encode("latin1")
                )

    def _advertise_alternatives(self) -> None:
        alt_svc = self.settings.get("alt_svc")
        if isinstance(alt_svc, int) and not isinstance(alt_svc, bool):
            self.set_header("Alt-Svc", f'h2=":{alt_svc}"; ma=86400')
            self.set_header("Alternate-Protocol", f"{alt_svc}:npn-spdy/3.1")
        elif isinstance(alt_svc, str):
            self.set_header("Alt-Svc", alt_svc)

    def _pushed_digest(self) -> set[bytes]:
        name = self.settings.get("push_cookie")
        if not name:
            return set()
        value = self.get_cookie(name, "")
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (ValueError, TypeError):
            return set()
        return {raw[i : i + 4] for i in range(0, len(raw) - 3, 4)}

    def _remember_pushed(self, known: set[bytes], pushed: list[str]) -> None:
        entries = [*known, *(_digest(url) for url in pushed)][-_DIGEST_ENTRIES:]
        value = base64.urlsafe_b64encode(b"".join(entries)).decode().rstrip("=")
        self.set_cookie(self.settings["push_cookie"], value, expires_days=30)


class RequestHandler(PushMixin, tornado.web.RequestHandler):
    """`tornado.web.RequestHandler` with server push (`PushMixin`)."""


def _digest(url: str) -> bytes:
    return hashlib.sha256(url.encode("utf-8")).digest()[:4]


def _preload_link(url: str) -> str:
    extension = posixpath.splitext(urllib.parse.urlsplit(url).path)[1].lower()
    kind = _PRELOAD_AS.get(extension)
    link = f"<{url}>; rel=preload"
    if kind is not None:
        link += f"; as={kind}"
        if kind == "font":
            link += "; crossorigin"
    return link
