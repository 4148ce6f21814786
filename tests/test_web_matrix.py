"""Tornado's own `RequestHandler` behaviours, over every protocol alike.

Each test class is an `AsyncSPDYTestCase`: it runs once over h2, SPDY/3.1,
SPDY/3, SPDY/2 and HTTP/1.1 (the generated ``*_spdy3_1``, ``*_spdy3``,
``*_spdy2`` and ``*_http1_1`` variants). Where Tornado behaves differently over
HTTP/1.1 and a multiplexed protocol by design (``Transfer-Encoding``, h2's
missing reason phrase, one TCP connection per request), the test asserts each
side.

Nothing here synchronises by sleeping: handlers and tests meet on
`asyncio.Event` objects, and the back-pressure test measures progress in IOLoop
iterations (``asyncio.sleep(0)``), never in seconds. Every wait is bounded.

Where tornado_spdy is known to differ from Tornado's HTTP/1.1 today, the test
states Tornado's behaviour and `known_bug` (at the end of the module) marks
the failing variants ``xfail(strict=True)``.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import http.cookies
import os
import random
import re
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest
from tornado import httputil
from tornado.escape import json_decode, url_escape, utf8
from tornado.http1connection import HTTP1Connection
from tornado.httpclient import HTTPClientError
from tornado.log import app_log
from tornado.simple_httpclient import HTTPTimeoutError
from tornado.testing import ExpectLog, gen_test
from tornado.web import (
    Application,
    HTTPError,
    RedirectHandler,
    RequestHandler,
    authenticated,
    stream_request_body,
)

from tornado_spdy.testing import AsyncSPDYTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC_DIR = os.path.join(HERE, "static")
TEMPLATE_DIR = os.path.join(HERE, "templates")
STATIC_NAME = "matrix.txt"

MULTIPLEXED = ("h2", "spdy/3.1", "spdy/3", "spdy/2")
VERSIONS = {
    "h2": "HTTP/2",
    "spdy/3.1": "SPDY/3.1",
    "spdy/3": "SPDY/3",
    "spdy/2": "SPDY/2",
    "http/1.1": "HTTP/1.1",
}
MiB = 1024 * 1024


def static_bytes() -> bytes:
    with open(os.path.join(STATIC_DIR, STATIC_NAME), "rb") as f:
        return f.read()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.cache
def download_block(index: int, size: int) -> bytes:
    """One chunk of the streamed download: random, reproducible."""
    return random.Random(index).randbytes(size)


def multipart(
    fields: dict[str, str], files: dict[str, tuple[str, str, bytes]]
) -> tuple[str, bytes]:
    """A multipart/form-data body and its Content-Type."""
    boundary = "matrixBoundary7MA4YWxkTrZu0gW"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
            % (utf8(boundary), utf8(name), utf8(value))
        )
    for name, (filename, ctype, data) in files.items():
        parts.append(
            b'--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
            b"Content-Type: %s\r\n\r\n%s\r\n"
            % (utf8(boundary), utf8(name), utf8(filename), utf8(ctype), data)
        )
    parts.append(b"--%s--\r\n" % utf8(boundary))
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def set_cookies(response: Any) -> dict[str, http.cookies.Morsel]:
    """The cookies a response sets, by name (one ``Set-Cookie`` each)."""
    result: dict[str, http.cookies.Morsel] = {}
    for header in response.headers.get_list("Set-Cookie"):
        jar = http.cookies.SimpleCookie()
        jar.load(header)
        result.update(jar)
    return result


class Barrier:
    """Handlers wait here until ``parties`` of them have arrived."""

    def __init__(self, parties: int):
        self.parties = parties
        self.arrived = 0
        self.full = asyncio.Event()
        self.connections_when_full: int | None = None

    async def wait(self, server: Any = None, timeout: float = 20.0) -> bool:
        self.arrived += 1
        if self.arrived >= self.parties:
            if server is not None:
                self.connections_when_full = len(server._connections)
            self.full.set()
        try:
            await asyncio.wait_for(self.full.wait(), timeout)
        except TimeoutError:
            return False
        return True


# ------------------------------------------------------------------ handlers


class Info(RequestHandler):
    def get(self) -> None:
        request = self.request
        self.write(
            {
                "remote_ip": request.remote_ip,
                "protocol": request.protocol,
                "host": request.host,
                "host_name": request.host_name,
                "framing": request.framing,
                "version": request.version,
                "priority": request.priority,
                "method": request.method,
                "uri": request.uri,
                "path": request.path,
                "query": request.query,
                "full_url": request.full_url(),
                "cert": repr(request.get_ssl_certificate()),
                "cert_binary": repr(request.get_ssl_certificate(binary_form=True)),
            }
        )


class Args(RequestHandler):
    def get(self) -> None:
        self.write(
            {
                "a": self.get_arguments("a"),
                "b": self.get_argument("b", None),
                "all": {k: self.get_arguments(k) for k in self.request.arguments},
            }
        )

    def post(self) -> None:
        files = {
            name: [
                {
                    "filename": f.filename,
                    "content_type": f.content_type,
                    "size": len(f.body),
                    "sha256": sha256(f.body),
                }
                for f in infos
            ]
            for name, infos in self.request.files.items()
        }
        self.write(
            {
                "query": {
                    k: self.get_query_arguments(k) for k in self.request.query_arguments
                },
                "body": {
                    k: self.get_body_arguments(k) for k in self.request.body_arguments
                },
                "files": files,
                "content_type": self.request.headers.get("Content-Type"),
            }
        )


class RequiredArg(RequestHandler):
    def get(self) -> None:
        self.write(self.get_argument("missing"))


class HeaderEcho(RequestHandler):
    def get(self) -> None:
        headers = self.request.headers
        self.add_header("X-Out", "one")
        self.add_header("X-Out", "two")
        uni = headers.get("X-Uni", "")
        self.set_header("X-Uni-Out", uni)
        self.write(
            {
                "multi": headers.get_list("X-Multi"),
                "uni": uni,
                "accept": headers.get_list("Accept"),
                "names": sorted(set(headers)),
            }
        )


class UnicodePath(RequestHandler):
    def get(self, name: str) -> None:
        self.write(
            {"name": name, "q": self.get_argument("q"), "path": self.request.path}
        )


class SetCookies(RequestHandler):
    def get(self) -> None:
        self.set_cookie("a", "1")
        self.set_cookie("b", "2", path="/")
        self.set_cookie("c", "3", httponly=True, secure=True)
        self.set_signed_cookie("user", "alice")
        self.write("set")


class ReadCookies(RequestHandler):
    def get(self) -> None:
        user = self.get_signed_cookie("user")
        self.write(
            {
                "cookies": {
                    name: morsel.value for name, morsel in self.cookies.items()
                },
                "user": user.decode() if user is not None else None,
            }
        )


class Secret(RequestHandler):
    def get_current_user(self) -> str | None:
        user = self.get_signed_cookie("user")
        return user.decode() if user is not None else None

    @authenticated
    def get(self) -> None:
        self.write({"user": self.current_user})


class Redirect(RequestHandler):
    def get(self) -> None:
        self.redirect(self.get_argument("to"), status=int(self.get_argument("status")))

    post = get


class Target(RequestHandler):
    def get(self) -> None:
        self.write({"method": "GET", "framing": self.request.framing})

    def post(self) -> None:
        self.write({"method": "POST", "body": self.request.body.decode()})


class Boom(RequestHandler):
    def get(self) -> None:
        raise RuntimeError("boom")


class CustomError(RequestHandler):
    def get(self) -> None:
        code = int(self.get_argument("code"))
        if self.get_argument("raise", None):
            raise HTTPError(code, reason=self.get_argument("reason", None))
        self.send_error(code, reason=self.get_argument("reason", None))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish({"error": status_code, "reason": self._reason})


class Status(RequestHandler):
    def get(self) -> None:
        self.set_status(
            int(self.get_argument("code")), self.get_argument("reason", None)
        )
        self.write("status")


class Json(RequestHandler):
    def get(self) -> None:
        self.write({"ünïcode": "☃", "list": [1, 2, 3], "ok": True})


class ClearHeader(RequestHandler):
    def get(self) -> None:
        self.set_header("X-Temp", "1")
        self.set_header("X-Kept", "yes")
        self.clear_header("X-Temp")
        self.clear_header("Server")
        self.write("cleared")


class NoContent(RequestHandler):
    def get(self) -> None:
        self.set_status(204)
        self.finish()

    def delete(self) -> None:
        self.set_status(204)


class CoroutineFinish(RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(0)
        self.write("a")
        await self.flush()
        await asyncio.sleep(0)
        self.write("b")
        await self.finish("c")
        self.settings["state"].finished.append(self.request.version)


class Etag(RequestHandler):
    def get(self) -> None:
        self.write("a body with an etag")


class Methods(RequestHandler):
    def put(self) -> None:
        self.write({"method": "PUT", "body": self.request.body.decode()})

    def patch(self) -> None:
        self.write({"method": "PATCH", "body": self.request.body.decode()})

    def options(self) -> None:
        self.set_header("Allow", "PUT, PATCH, OPTIONS")
        self.set_status(204)


class Echo(RequestHandler):
    def post(self) -> None:
        body = self.request.body
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("X-Sha256", sha256(body))
        self.write(body)


class Download(RequestHandler):
    async def get(self) -> None:
        count = int(self.get_argument("chunks"))
        size = int(self.get_argument("size"))
        self.set_header("Content-Type", "application/octet-stream")
        for index in range(count):
            self.write(download_block(index, size))
            await self.flush()


class LongPoll(RequestHandler):
    async def get(self) -> None:
        state = self.settings["state"]
        self.write("partial")
        await self.flush()
        state.poll_started.set()
        await state.poll_release.wait()

    def on_connection_close(self) -> None:
        state = self.settings["state"]
        state.poll_closed.set()
        state.poll_release.set()


class BarrierHandler(RequestHandler):
    async def get(self) -> None:
        state = self.settings["state"]
        index = int(self.get_argument("i"))
        ok = await state.barrier.wait(state.server)
        if not ok:
            raise HTTPError(503, reason="barrier not reached")
        self.write({"i": index, "framing": self.request.framing})


class StaticUrl(RequestHandler):
    def get(self) -> None:
        self.write(self.static_url(STATIC_NAME))


class WrongLength(RequestHandler):
    """A handler whose Content-Length does not match its body."""

    def get(self) -> None:
        self.set_header("Content-Length", self.get_argument("n"))
        self.write("12345")


class Hold(RequestHandler):
    """A response that stays open until the test releases it."""

    async def get(self) -> None:
        state = self.settings["state"]
        self.write("begin,")
        await self.flush()
        state.hold_started.set()
        await state.hold_release.wait()
        self.finish("end")


class ManyPolls(RequestHandler):
    """Long polls that count their starts and their connection closes."""

    async def get(self) -> None:
        state = self.settings["state"]
        self.write("partial")
        await self.flush()
        state.polls_started.append(self.request.version)
        if len(state.polls_started) == 3:
            state.all_polls_started.set()
        await state.poll_release.wait()

    def on_connection_close(self) -> None:
        state = self.settings["state"]
        state.polls_closed.append(self.request.version)
        if len(state.polls_closed) == 3:
            state.all_polls_closed.set()


def make_state(**extra: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        finished=[],
        polls_started=[],
        polls_closed=[],
        all_polls_started=asyncio.Event(),
        all_polls_closed=asyncio.Event(),
        hold_started=asyncio.Event(),
        hold_release=asyncio.Event(),
        poll_started=asyncio.Event(),
        poll_release=asyncio.Event(),
        poll_closed=asyncio.Event(),
        barrier=Barrier(100),
        server=None,
        **extra,
    )


# ------------------------------------------------------------------ helpers


class MatrixMixin:
    """Helpers shared by the test classes (every class runs per protocol)."""

    protocol: str
    http_client: Any
    http_server: Any

    @property
    def multiplexed(self) -> bool:
        return self.protocol in MULTIPLEXED

    def fetch_async(self, path: str, **kwargs: Any) -> Any:
        """``http_client.fetch`` of ``path`` over this variant's protocol."""
        kwargs.setdefault("protocol", self.protocol)
        kwargs.setdefault("raise_error", False)
        return self.http_client.fetch(self.get_url(path), **kwargs)  # type: ignore[attr-defined]

    def connection_count(self) -> int:
        return len(self.http_server._connections)

    def assert_one_session(self) -> None:
        """Multiplexed: everything so far ran over one TCP connection."""
        if self.multiplexed:
            assert self.connection_count() == 1, self.http_server._connections
            assert len(self.http_client.pool.sessions) == 1

    def assert_framing(self, response: Any) -> None:
        assert response.framing == self.protocol, (response.framing, self.protocol)


def variants(cls: type) -> list[type]:
    """A test class and the variants `AsyncSPDYTestCase` made of it."""
    module = sys.modules[cls.__module__]
    result = [cls]
    for protocol in cls.protocols[1:]:  # type: ignore[attr-defined]
        suffix = protocol.replace("/", "").replace(".", "_")
        result.append(getattr(module, f"{cls.__name__}_{suffix}"))
    return result


def known_bug(cls: type, name: str, protocols: tuple[str, ...], reason: str) -> None:
    """Mark test ``name`` of ``cls`` ``xfail(strict=True)`` over ``protocols`` only."""
    original: Callable[..., Any] = cls.__dict__[name]
    for variant in variants(cls):
        if variant.protocol in protocols:  # type: ignore[attr-defined]

            @functools.wraps(original)
            def marked(self: Any, _original: Callable[..., Any] = original) -> Any:
                return _original(self)

            setattr(
                variant, name, pytest.mark.xfail(strict=True, reason=reason)(marked)
            )
        else:
            setattr(variant, name, original)


# ------------------------------------------------------------------ the main app


class WebMatrixTest(MatrixMixin, AsyncSPDYTestCase):
    def get_app(self) -> Application:
        self.state = make_state()
        return Application(
            [
                ("/info", Info),
                ("/args", Args),
                ("/args/required", RequiredArg),
                ("/headers", HeaderEcho),
                (r"/unicode/(.*)", UnicodePath),
                ("/cookies/set", SetCookies),
                ("/cookies/read", ReadCookies),
                ("/secret", Secret),
                ("/redirect", Redirect),
                ("/moved", RedirectHandler, {"url": "/target", "permanent": True}),
                ("/target", Target),
                ("/boom", Boom),
                ("/error", CustomError),
                ("/status", Status),
                ("/json", Json),
                ("/clear", ClearHeader),
                ("/nocontent", NoContent),
                ("/coroutine", CoroutineFinish),
                ("/etag", Etag),
                ("/methods", Methods),
                ("/echo", Echo),
                ("/download", Download),
                ("/longpoll", LongPoll),
                ("/barrier", BarrierHandler),
                ("/static_url", StaticUrl),
                ("/wrong_length", WrongLength),
                ("/hold", Hold),
                ("/polls", ManyPolls),
            ],
            static_path=STATIC_DIR,
            cookie_secret="matrix-secret-" + "x" * 32,
            login_url="/login",
            state=self.state,
        )

    def tearDown(self) -> None:
        # Let held handlers end, even after a failed test: the server's
        # close_all_connections waits for them.
        self.state.hold_release.set()
        self.state.poll_release.set()
        super().tearDown()

    # ---------------------------------------------------------- request facts

    @gen_test(timeout=20)
    async def test_request_attributes(self) -> None:
        response = await self.fetch_async("/info?x=1&y=%C3%A9")
        assert response.code == 200
        self.assert_framing(response)
        info = json_decode(response.body)
        port = self.get_http_port()  # type: ignore[attr-defined]
        assert info["remote_ip"] == "127.0.0.1"
        assert info["protocol"] == "https"
        assert info["host"] == f"127.0.0.1:{port}"
        assert info["host_name"] == "127.0.0.1"
        assert info["framing"] == self.protocol
        assert info["version"] == VERSIONS[self.protocol]
        assert info["method"] == "GET"
        assert info["uri"] == "/info?x=1&y=%C3%A9"
        assert info["path"] == "/info"
        assert info["query"] == "x=1&y=%C3%A9"
        assert info["full_url"] == f"https://127.0.0.1:{port}/info?x=1&y=%C3%A9"
        # No client certificate: None, not a crash.
        assert info["cert"] == "None"
        assert info["cert_binary"] == "None"

    @gen_test(timeout=20)
    async def test_request_priority_reaches_the_handler(self) -> None:
        got = []
        for priority in (0, 3, 7, None):  # None: the client's default (3)
            extra = {} if priority is None else {"priority": priority}
            response = await self.fetch_async("/info", **extra)
            got.append(json_decode(response.body)["priority"])
        if self.protocol == "spdy/2":
            # Four levels on the wire: the ends survive, the middle stays middle.
            assert got[0] == 0 and got[2] == 7
            assert 0 < got[1] < 7 and got[3] == got[1], got
        elif self.multiplexed:
            assert got == [0, 3, 7, 3]
        else:
            assert got == [3, 3, 3, 3]  # HTTP/1.1 carries no priority

    # ---------------------------------------------------------- arguments

    @gen_test(timeout=20)
    async def test_query_arguments(self) -> None:
        response = await self.fetch_async(
            "/args?a=1&a=2&b=" + url_escape("é ü☃") + "&empty="
        )
        assert response.code == 200
        body = json_decode(response.body)
        assert body["a"] == ["1", "2"]
        assert body["b"] == "é ü☃"
        assert body["all"]["empty"] == [""]

    @gen_test(timeout=20)
    async def test_missing_argument_is_400(self) -> None:
        response = await self.fetch_async("/args/required")
        assert response.code == 400
        assert b"400: Bad Request" in response.body

    @gen_test(timeout=20)
    async def test_urlencoded_form_post(self) -> None:
        body = "x=1&x=2&name=" + url_escape("Zoë ☃")
        response = await self.fetch_async(
            "/args?q=query",
            method="POST",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.code == 200
        result = json_decode(response.body)
        assert result["query"] == {"q": ["query"]}
        assert result["body"] == {"x": ["1", "2"], "name": ["Zoë ☃"]}
        assert result["files"] == {}

    @gen_test(timeout=20)
    async def test_multipart_form_post(self) -> None:
        payload = bytes(range(256)) * 300  # binary, with CR LF inside
        ctype, body = multipart(
            {"title": "héllo", "n": "42"},
            {
                "upload": ("data.bin", "application/octet-stream", payload),
                "note": ("nöte.txt", "text/plain", "ünïcode text".encode()),
            },
        )
        response = await self.fetch_async(
            "/args", method="POST", body=body, headers={"Content-Type": ctype}
        )
        assert response.code == 200
        result = json_decode(response.body)
        assert result["body"] == {"title": ["héllo"], "n": ["42"]}
        upload = result["files"]["upload"][0]
        assert upload["filename"] == "data.bin"
        assert upload["content_type"] == "application/octet-stream"
        assert upload["size"] == len(payload)
        assert upload["sha256"] == sha256(payload)
        note = result["files"]["note"][0]
        assert note["filename"] == "nöte.txt"
        assert note["sha256"] == sha256("ünïcode text".encode())

    # ---------------------------------------------------------- headers

    @gen_test(timeout=20)
    async def test_request_and_response_headers_with_multiple_values(self) -> None:
        headers = httputil.HTTPHeaders()
        headers.add("X-Multi", "first")
        headers.add("X-Multi", "second")
        headers.add("Accept", "text/html")
        headers.add("Accept", "application/json")
        response = await self.fetch_async("/headers", headers=headers)
        assert response.code == 200
        body = json_decode(response.body)
        assert body["multi"] == ["first", "second"]
        assert body["accept"] == ["text/html", "application/json"]
        assert response.headers.get_list("X-Out") == ["one", "two"]
        # Pseudo-headers stay in the protocol; Host is there as Tornado expects.
        assert "Host" in body["names"]
        assert not [name for name in body["names"] if name.startswith(":")]
        assert not [name for name in response.headers if name.startswith(":")]
        if self.multiplexed:
            assert "Connection" not in body["names"]

    @gen_test(timeout=20)
    async def test_latin1_and_utf8_header_values_round_trip(self) -> None:
        # Tornado carries header values as latin-1 strings; UTF-8 text rides
        # as its bytes read in latin-1.
        for value in ("café crème", "☃ snow 😀".encode().decode("latin1")):
            response = await self.fetch_async("/headers", headers={"X-Uni": value})
            assert response.code == 200
            assert json_decode(response.body)["uni"] == value
            assert response.headers["X-Uni-Out"] == value

    @gen_test(timeout=20)
    async def test_unicode_path_and_query(self) -> None:
        name = "ñandú/😀 space"
        path = "/unicode/" + url_escape(name, plus=False) + "?q=" + url_escape("ünï ☃")
        response = await self.fetch_async(path)
        assert response.code == 200
        body = json_decode(response.body)
        assert body["name"] == name
        assert body["q"] == "ünï ☃"

    @gen_test(timeout=20)
    async def test_raw_unicode_url_as_over_http1(self) -> None:
        # Tornado's HTTP/1.1 client sends a URL's non-ASCII characters as
        # UTF-8 bytes, and its server reads the path as latin-1 text: the
        # query decodes to the text, the path keeps the bytes.
        response = await self.fetch_async("/unicode/ñandú/😀?q=ü☃")
        assert response.code == 200
        body = json_decode(response.body)
        assert body["q"] == "ü☃"
        assert body["path"] == "/unicode/" + "ñandú/😀".encode().decode("latin1")

    @gen_test(timeout=20)
    async def test_large_header_values(self) -> None:
        big = "v" * 16000
        response = await self.fetch_async("/headers", headers={"X-Uni": big})
        assert response.code == 200
        assert json_decode(response.body)["uni"] == big
        assert response.headers["X-Uni-Out"] == big

    # ---------------------------------------------------------- cookies

    @gen_test(timeout=20)
    async def test_several_set_cookie_headers_and_signed_cookie(self) -> None:
        response = await self.fetch_async("/cookies/set")
        assert response.code == 200
        assert len(response.headers.get_list("Set-Cookie")) == 4
        cookies = set_cookies(response)
        assert {name: cookies[name].value for name in "abc"} == {
            "a": "1",
            "b": "2",
            "c": "3",
        }
        assert cookies["c"]["httponly"] and cookies["c"]["secure"]
        signed = cookies["user"].value
        assert signed != "alice"
        cookie = "; ".join(f"{name}={m.value}" for name, m in cookies.items())
        response = await self.fetch_async("/cookies/read", headers={"Cookie": cookie})
        body = json_decode(response.body)
        assert body["cookies"]["a"] == "1"
        assert body["cookies"]["c"] == "3"
        assert body["user"] == "alice"
        # A tampered signature is refused.
        tampered = signed[:-1] + ("0" if signed[-1] != "0" else "1")
        response = await self.fetch_async(
            "/cookies/read", headers={"Cookie": f"user={tampered}"}
        )
        assert json_decode(response.body)["user"] is None
        self.assert_one_session()

    @gen_test(timeout=20)
    async def test_authenticated_with_a_signed_cookie(self) -> None:
        response = await self.fetch_async("/secret", follow_redirects=False)
        assert response.code == 302
        assert response.headers["Location"] == "/login?next=%2Fsecret"
        signed = set_cookies(await self.fetch_async("/cookies/set"))["user"].value
        response = await self.fetch_async(
            "/secret", headers={"Cookie": f"user={signed}"}
        )
        assert response.code == 200
        assert json_decode(response.body) == {"user": "alice"}

    @gen_test(timeout=20)
    async def test_client_sends_several_cookies_in_one_header(self) -> None:
        # h2 splits a Cookie header into crumbs on the wire (RFC 9113 8.2.3);
        # the server must join them again with "; ".
        response = await self.fetch_async(
            "/cookies/read", headers={"Cookie": "a=1; b=two; c=3"}
        )
        assert json_decode(response.body)["cookies"] == {"a": "1", "b": "two", "c": "3"}

    @gen_test(timeout=20)
    async def test_client_sends_cookies_as_separate_fields(self) -> None:
        headers = httputil.HTTPHeaders()
        headers.add("Cookie", "a=1")
        headers.add("Cookie", "b=2")
        response = await self.fetch_async("/cookies/read", headers=headers)
        cookies = json_decode(response.body)["cookies"]
        if self.multiplexed:
            # Separate cookie fields are one list joined with "; ".
            assert cookies == {"a": "1", "b": "2"}
        else:
            # HTTP/1.1 forbids two Cookie lines (RFC 6265 5.4); Tornado joins
            # repeated lines with "," and its cookie parser then sees one.
            assert cookies == {"a": "1,b=2"}

    # ---------------------------------------------------------- redirects

    @gen_test(timeout=20)
    async def test_redirects_are_followed(self) -> None:
        for status in (301, 302, 303, 307, 308):
            response = await self.fetch_async(f"/redirect?status={status}&to=/target")
            assert response.code == 200, status
            assert response.effective_url.endswith("/target")
            assert json_decode(response.body) == {
                "method": "GET",
                "framing": self.protocol,
            }
            self.assert_framing(response)
        response = await self.fetch_async("/moved")
        assert response.code == 200
        assert response.effective_url.endswith("/target")
        self.assert_one_session()

    @gen_test(timeout=20)
    async def test_redirect_of_a_post(self) -> None:
        # 303 turns a POST into a GET; 307 repeats it with its body.
        response = await self.fetch_async(
            "/redirect?status=303&to=/target", method="POST", body="payload"
        )
        assert json_decode(response.body)["method"] == "GET"
        response = await self.fetch_async(
            "/redirect?status=307&to=/target", method="POST", body="payload"
        )
        assert json_decode(response.body) == {"method": "POST", "body": "payload"}

    @gen_test(timeout=20)
    async def test_redirect_not_followed_shows_location(self) -> None:
        for status in (301, 302):
            response = await self.fetch_async(
                f"/redirect?status={status}&to=/target%3Fx%3D1", follow_redirects=False
            )
            assert response.code == status
            assert response.headers["Location"] == "/target?x=1"
            assert response.body == b""
        response = await self.fetch_async("/moved", follow_redirects=False)
        assert response.code == 301
        assert response.headers["Location"] == "/target"

    # ---------------------------------------------------------- errors

    @gen_test(timeout=20)
    async def test_404_and_the_session_survives(self) -> None:
        response = await self.fetch_async("/no/such/page")
        assert response.code == 404
        assert b"404: Not Found" in response.body
        response = await self.fetch_async("/info")
        assert response.code == 200
        self.assert_one_session()

    @gen_test(timeout=20)
    async def test_500_from_an_exception_and_the_session_survives(self) -> None:
        with ExpectLog(app_log, "Uncaught exception GET /boom"):
            response = await self.fetch_async("/boom")
        assert response.code == 500
        assert b"500: Internal Server Error" in response.body
        self.assert_framing(response)
        response = await self.fetch_async("/info")
        assert response.code == 200
        assert json_decode(response.body)["framing"] == self.protocol
        self.assert_one_session()

    @gen_test(timeout=20)
    async def test_send_error_with_custom_codes(self) -> None:
        response = await self.fetch_async("/error?code=418")
        assert response.code == 418
        assert json_decode(response.body) == {"error": 418, "reason": "I'm a Teapot"}
        response = await self.fetch_async("/error?code=503&reason=Try+Later")
        assert response.code == 503
        assert json_decode(response.body) == {"error": 503, "reason": "Try Later"}
        response = await self.fetch_async("/error?code=403&raise=1&reason=Nope")
        assert response.code == 403
        assert json_decode(response.body) == {"error": 403, "reason": "Nope"}
        self.assert_one_session()

    @gen_test(timeout=20)
    async def test_set_status_with_a_reason(self) -> None:
        created = await self.fetch_async("/status?code=201&reason=Made+It")
        unknown = await self.fetch_async("/status?code=299&reason=Custom+Thing")
        assert (created.code, unknown.code) == (201, 299)
        assert created.body == unknown.body == b"status"
        if self.protocol == "h2":
            # h2 has no reason phrase: the client names the code.
            assert (created.reason, unknown.reason) == ("Created", "Unknown")
        else:
            # HTTP/1.1 and SPDY carry the reason in their status line.
            assert (created.reason, unknown.reason) == ("Made It", "Custom Thing")

    # ---------------------------------------------------------- response shapes

    @gen_test(timeout=20)
    async def test_write_of_a_dict_is_json(self) -> None:
        response = await self.fetch_async("/json")
        assert response.code == 200
        assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
        assert json_decode(response.body) == {
            "ünïcode": "☃",
            "list": [1, 2, 3],
            "ok": True,
        }
        assert int(response.headers["Content-Length"]) == len(response.body)

    @gen_test(timeout=20)
    async def test_clear_header(self) -> None:
        response = await self.fetch_async("/clear")
        assert response.code == 200
        assert "X-Temp" not in response.headers
        assert "Server" not in response.headers
        assert response.headers["X-Kept"] == "yes"
        assert response.body == b"cleared"

    @gen_test(timeout=20)
    async def test_204_has_no_body(self) -> None:
        for method in ("GET", "DELETE"):
            response = await self.fetch_async("/nocontent", method=method)
            assert response.code == 204
            assert response.body == b""
            assert "Content-Length" not in response.headers
            assert "Transfer-Encoding" not in response.headers
        self.assert_one_session()

    @gen_test(timeout=20)
    async def test_other_methods(self) -> None:
        put = await self.fetch_async("/methods", method="PUT", body="put-body")
        assert json_decode(put.body) == {"method": "PUT", "body": "put-body"}
        patch = await self.fetch_async("/methods", method="PATCH", body="patch-body")
        assert json_decode(patch.body) == {"method": "PATCH", "body": "patch-body"}
        options = await self.fetch_async("/methods", method="OPTIONS")
        assert options.code == 204
        assert options.headers["Allow"] == "PUT, PATCH, OPTIONS"
        wrong = await self.fetch_async("/methods", method="DELETE")
        assert wrong.code == 405

    @gen_test(timeout=20)
    async def test_finish_from_a_coroutine_after_awaits(self) -> None:
        response = await self.fetch_async("/coroutine")
        assert response.code == 200
        assert response.body == b"abc"
        assert self.state.finished == [VERSIONS[self.protocol]]
        if self.multiplexed:
            assert "Transfer-Encoding" not in response.headers
        else:
            # A flushed response of unknown length is chunked over HTTP/1.1.
            assert response.headers["Transfer-Encoding"] == "chunked"

    @gen_test(timeout=20)
    async def test_etag_and_if_none_match(self) -> None:
        response = await self.fetch_async("/etag")
        assert response.code == 200
        etag = response.headers["Etag"]
        response = await self.fetch_async("/etag", headers={"If-None-Match": etag})
        assert response.code == 304
        assert response.body == b""
        response = await self.fetch_async("/etag", headers={"If-None-Match": '"other"'})
        assert response.code == 200

    # ---------------------------------------------------------- static files

    @gen_test(timeout=20)
    async def test_static_full_get(self) -> None:
        content = static_bytes()
        response = await self.fetch_async("/static/" + STATIC_NAME)
        assert response.code == 200
        assert response.body == content
        assert int(response.headers["Content-Length"]) == len(content)
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.headers["Etag"]
        assert response.headers["Last-Modified"]
        missing = await self.fetch_async("/static/no-such-file.txt")
        assert missing.code == 404
        self.assert_one_session()

    @gen_test(timeout=20)
    async def test_static_url_is_versioned_and_cached(self) -> None:
        url = (await self.fetch_async("/static_url")).body.decode()
        assert "?v=" in url
        response = await self.fetch_async(url)
        assert response.code == 200
        assert response.body == static_bytes()
        assert "max-age=315360000" in response.headers["Cache-Control"]

    @gen_test(timeout=20)
    async def test_static_range_requests(self) -> None:
        content = static_bytes()
        size = len(content)
        path = "/static/" + STATIC_NAME
        response = await self.fetch_async(path, headers={"Range": "bytes=10-19"})
        assert response.code == 206
        assert response.body == content[10:20]
        assert response.headers["Content-Range"] == f"bytes 10-19/{size}"
        assert response.headers["Content-Length"] == "10"
        response = await self.fetch_async(path, headers={"Range": "bytes=-16"})
        assert response.code == 206
        assert response.body == content[-16:]
        assert (
            response.headers["Content-Range"] == f"bytes {size - 16}-{size - 1}/{size}"
        )
        response = await self.fetch_async(path, headers={"Range": f"bytes={size - 5}-"})
        assert response.code == 206
        assert response.body == content[-5:]
        response = await self.fetch_async(
            path, headers={"Range": f"bytes={size + 10}-{size + 20}"}
        )
        assert response.code == 416
        assert response.headers["Content-Range"] == f"bytes */{size}"
        self.assert_one_session()

    @gen_test(timeout=20)
    async def test_static_conditional_get_is_304(self) -> None:
        path = "/static/" + STATIC_NAME
        first = await self.fetch_async(path)
        etag = first.headers["Etag"]
        modified = first.headers["Last-Modified"]
        response = await self.fetch_async(path, headers={"If-None-Match": etag})
        assert response.code == 304
        assert response.body == b""
        response = await self.fetch_async(path, headers={"If-Modified-Since": modified})
        assert response.code == 304
        assert response.body == b""
        response = await self.fetch_async(
            path, headers={"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"}
        )
        assert response.code == 200
        assert response.body == static_bytes()

    @gen_test(timeout=20)
    async def test_static_head_has_length_and_no_body(self) -> None:
        response = await self.fetch_async("/static/" + STATIC_NAME, method="HEAD")
        assert response.code == 200
        assert response.body == b""
        assert int(response.headers["Content-Length"]) == len(static_bytes())
        assert response.headers["Etag"]
        response = await self.fetch_async("/info")  # the session goes on
        assert response.code == 200
        self.assert_one_session()

    # ---------------------------------------------------------- large bodies

    @gen_test(timeout=60)
    async def test_post_8_mib_echo(self) -> None:
        body = random.Random(8).randbytes(8 * MiB)
        response = await self.fetch_async(
            "/echo",
            method="POST",
            body=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.code == 200
        assert response.headers["X-Sha256"] == sha256(body)
        assert len(response.body) == len(body)
        assert sha256(response.body) == sha256(body)
        self.assert_framing(response)

    @gen_test(timeout=60)
    async def test_get_16_mib_streamed_with_flush(self) -> None:
        size, count = 256 * 1024, 64
        digest = hashlib.sha256()
        pieces = []

        def on_chunk(chunk: bytes) -> None:
            digest.update(chunk)
            pieces.append(len(chunk))

        response = await self.fetch_async(
            f"/download?chunks={count}&size={size}", streaming_callback=on_chunk
        )
        assert response.code == 200
        expected = hashlib.sha256()
        for index in range(count):
            expected.update(download_block(index, size))
        assert sum(pieces) == size * count == 16 * MiB
        assert digest.hexdigest() == expected.hexdigest()
        assert len(pieces) > 1  # it streamed
        assert "Content-Length" not in response.headers
        if self.multiplexed:
            assert "Transfer-Encoding" not in response.headers
        else:
            assert response.headers["Transfer-Encoding"] == "chunked"

    # ---------------------------------------------------------- connection close

    @gen_test(timeout=30)
    async def test_on_connection_close_when_the_client_times_out(self) -> None:
        with pytest.raises(HTTPTimeoutError):
            await self.fetch_async("/longpoll", request_timeout=1.0)
        assert self.state.poll_started.is_set()  # it timed out mid-response
        await asyncio.wait_for(self.state.poll_closed.wait(), 10)
        # The session (multiplexed) carries the next request.
        response = await self.fetch_async("/info")
        assert response.code == 200
        self.assert_one_session()

    @gen_test(timeout=30)
    async def test_losing_the_connection_closes_every_request_on_it(self) -> None:
        # Each poll's first bytes have reached the client: a request lost
        # before any of its response came would be sent again (a GET).
        answered: list[bytes] = []
        all_answered = asyncio.Event()

        def on_chunk(chunk: bytes) -> None:
            answered.append(chunk)
            if len(answered) == 3:
                all_answered.set()

        polls = [
            asyncio.ensure_future(
                self.fetch_async("/polls", streaming_callback=on_chunk)
            )
            for _ in range(3)
        ]
        await asyncio.wait_for(self.state.all_polls_started.wait(), 10)
        await asyncio.wait_for(all_answered.wait(), 10)
        if self.multiplexed:
            # The client's one TCP connection goes away.
            self.assert_one_session()
            (session,) = self.http_client.pool.sessions.values()
            session.stream.close()
        else:
            # Three requests, three connections: each goes away.
            assert self.connection_count() == 3
            for connection in list(self.http_server._connections):
                connection.stream.close()
        await asyncio.wait_for(self.state.all_polls_closed.wait(), 10)
        assert self.state.polls_closed == [VERSIONS[self.protocol]] * 3
        for poll in polls:
            with pytest.raises(HTTPClientError) as caught:
                await asyncio.wait_for(poll, 10)
            assert caught.value.code == 599
        response = await self.fetch_async("/info")  # a new connection serves
        assert response.code == 200
        self.assert_one_session()

    @gen_test(timeout=30)
    async def test_content_length_mismatch_fails_that_request_only(self) -> None:
        # Tornado's HTTP/1.1 connection refuses to send a body that does not
        # match its Content-Length and drops the connection: the client gets
        # an error, never a 200 with a body its headers contradict. Over a
        # session only that stream may fail.
        held = asyncio.ensure_future(self.fetch_async("/hold"))
        await asyncio.wait_for(self.state.hold_started.wait(), 10)
        for declared in (10, 3):  # the body is 5 bytes
            try:
                response = await self.fetch_async(
                    f"/wrong_length?n={declared}", request_timeout=10
                )
            except HTTPClientError as error:
                assert error.code == 599
            else:
                pytest.fail(
                    f"Content-Length {response.headers.get('Content-Length')}: "
                    f"got {response.code} with body {response.body!r}"
                )
        self.state.hold_release.set()
        response = await asyncio.wait_for(held, 10)
        assert response.code == 200
        assert response.body == b"begin,end"
        response = await self.fetch_async("/info")
        assert response.code == 200
        self.assert_one_session()

    @gen_test(timeout=30)
    async def test_expect_100_continue(self) -> None:
        # Tornado's server answers "Expect: 100-continue" before the body is
        # sent; the client waits for that answer.
        response = await self.fetch_async(
            "/args",
            method="POST",
            body="x=1&y=2",
            expect_100_continue=True,
            request_timeout=3,
        )
        assert response.code == 200
        assert json_decode(response.body)["body"] == {"x": ["1"], "y": ["2"]}

    # ---------------------------------------------------------- concurrency

    @gen_test(timeout=60)
    async def test_100_concurrent_fetches(self) -> None:
        self.state.server = self.http_server
        responses = await asyncio.gather(
            *(self.fetch_async(f"/barrier?i={i}") for i in range(100))
        )
        assert [r.code for r in responses] == [200] * 100
        assert [json_decode(r.body)["i"] for r in responses] == list(range(100))
        assert {r.framing for r in responses} == {self.protocol}
        # All 100 were in their handlers at once.
        assert self.state.barrier.arrived == 100
        if self.multiplexed:
            assert self.state.barrier.connections_when_full == 1
            self.assert_one_session()
        else:
            # Tornado's HTTP/1.1 client: one TCP connection per request.
            assert self.state.barrier.connections_when_full == 100


# ------------------------------------------------------------------ body limits


@stream_request_body
class RefuseUpload(RequestHandler):
    """Answers 413 as soon as the headers arrive, before the body."""

    def prepare(self) -> None:
        raise HTTPError(413)


@stream_request_body
class LargeUpload(RequestHandler):
    """Raises the connection's body limit for itself (as Tornado documents)."""

    def prepare(self) -> None:
        self.request.connection.set_max_body_size(8 * MiB)
        self.digest = hashlib.sha256()
        self.size = 0

    def data_received(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)

    def put(self) -> None:
        self.write({"size": self.size, "sha256": self.digest.hexdigest()})


class BodyLimitTest(MatrixMixin, AsyncSPDYTestCase):
    LIMIT = 1 * MiB

    def get_app(self) -> Application:
        return Application(
            [
                ("/refuse", RefuseUpload),
                ("/large", LargeUpload),
                ("/echo", Echo),
                ("/info", Info),
            ]
        )

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"max_body_size": self.LIMIT}

    def octets(self, path: str, body: bytes, method: str = "POST") -> Any:
        return self.fetch_async(
            path,
            method=method,
            body=body,
            headers={"Content-Type": "application/octet-stream"},
            request_timeout=20,
        )

    @gen_test(timeout=30)
    async def test_set_max_body_size_raises_the_limit(self) -> None:
        body = random.Random(2).randbytes(2 * MiB)
        response = await self.octets("/large", body, method="PUT")
        assert response.code == 200
        assert json_decode(response.body) == {"size": len(body), "sha256": sha256(body)}
        small = await self.octets("/echo", b"small")
        assert small.code == 200 and small.body == b"small"
        self.assert_one_session()

    @gen_test(timeout=30)
    async def test_body_over_max_body_size_is_refused(self) -> None:
        body = bytes(2 * MiB)
        if self.multiplexed:
            # The stream is reset; the session goes on.
            with pytest.raises(HTTPClientError) as caught:
                await self.octets("/echo", body)
            assert caught.value.code == 599
        else:
            # Tornado answers 400 and closes the connection.
            response = await self.octets("/echo", body)
            assert response.code == 400
        response = await self.fetch_async("/info")
        assert response.code == 200
        self.assert_one_session()

    @gen_test(timeout=30)
    async def test_response_before_the_request_body_ends(self) -> None:
        # RFC 9113 8.1: a server may answer before the request is complete
        # and then reset the stream with NO_ERROR; the client "MUST NOT
        # discard" that response. (HTTP/1.1 races the connection's close.)
        body = bytes(LIMIT_EARLY)
        if self.multiplexed:
            response = await self.octets("/refuse", body)
            assert response.code == 413
        else:
            try:
                response = await self.octets("/refuse", body)
            except HTTPClientError as error:
                assert error.code == 599
            else:
                assert response.code == 413
        response = await self.fetch_async("/info")
        assert response.code == 200
        self.assert_one_session()


LIMIT_EARLY = 768 * 1024  # over the stream window: the client is still sending


# ------------------------------------------------------------------ gzip


GZIP_TEXT = "".join(
    f"line {i}: all work and no play makes jack a dull boy\n" for i in range(400)
)


class GzipText(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.write(GZIP_TEXT)


class GzipStreamed(RequestHandler):
    async def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        for start in range(0, len(GZIP_TEXT), 4096):
            self.write(GZIP_TEXT[start : start + 4096])
            await self.flush()


class GzipUpload(RequestHandler):
    def post(self) -> None:
        self.write(
            {"sha256": sha256(self.request.body), "size": len(self.request.body)}
        )


class GzipTest(MatrixMixin, AsyncSPDYTestCase):
    def get_app(self) -> Application:
        return Application(
            [("/text", GzipText), ("/streamed", GzipStreamed), ("/upload", GzipUpload)],
            compress_response=True,
        )

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"decompress_request": True}

    @gen_test(timeout=20)
    async def test_server_decompresses_a_gzipped_request_body(self) -> None:
        data = GZIP_TEXT.encode() * 20
        response = await self.fetch_async(
            "/upload",
            method="POST",
            body=gzip.compress(data),
            headers={
                "Content-Encoding": "gzip",
                "Content-Type": "application/octet-stream",
            },
        )
        assert response.code == 200
        assert json_decode(response.body) == {"sha256": sha256(data), "size": len(data)}

    @gen_test(timeout=20)
    async def test_client_decompresses(self) -> None:
        for path in ("/text", "/streamed"):
            response = await self.fetch_async(path)  # decompress_response=True
            assert response.code == 200
            assert response.body.decode() == GZIP_TEXT
            assert response.headers["X-Consumed-Content-Encoding"] == "gzip"
            assert "Content-Encoding" not in response.headers
            assert "Accept-Encoding" in response.headers["Vary"]
        self.assert_one_session()

    @gen_test(timeout=20)
    async def test_raw_gzip_when_accepted(self) -> None:
        response = await self.fetch_async(
            "/text", decompress_response=False, headers={"Accept-Encoding": "gzip"}
        )
        assert response.code == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert int(response.headers["Content-Length"]) == len(response.body)
        assert len(response.body) < len(GZIP_TEXT) // 4
        assert gzip.decompress(response.body).decode() == GZIP_TEXT
        streamed = await self.fetch_async(
            "/streamed", decompress_response=False, headers={"Accept-Encoding": "gzip"}
        )
        assert streamed.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(streamed.body).decode() == GZIP_TEXT

    @gen_test(timeout=20)
    async def test_without_accept_encoding(self) -> None:
        response = await self.fetch_async("/text", decompress_response=False)
        assert response.code == 200
        assert "Accept-Encoding" in response.headers["Vary"]
        if self.protocol.startswith("spdy/"):
            # SPDY clients must take gzip whatever they ask for (SPDY/3
            # section 3.2.1): the server compresses every SPDY response.
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(response.body).decode() == GZIP_TEXT
        else:
            assert "Content-Encoding" not in response.headers
            assert response.body.decode() == GZIP_TEXT


# ------------------------------------------------------------------ xsrf


class XsrfForm(RequestHandler):
    def get(self) -> None:
        self.render("xsrf_form.html", greeting="héllo wörld ☃")

    def post(self) -> None:
        self.write({"message": self.get_argument("message")})


class XsrfTest(MatrixMixin, AsyncSPDYTestCase):
    def get_app(self) -> Application:
        return Application(
            [("/xsrf", XsrfForm)],
            xsrf_cookies=True,
            template_path=TEMPLATE_DIR,
            cookie_secret="xsrf-secret-" + "y" * 32,
        )

    @gen_test(timeout=20)
    async def test_xsrf_round_trip(self) -> None:
        page = await self.fetch_async("/xsrf")
        assert page.code == 200
        html = page.body.decode()
        assert "héllo wörld ☃" in html
        match = re.search(r'name="_xsrf" value="([^"]+)"', html)
        assert match is not None, html
        token = match.group(1)
        cookie = set_cookies(page)["_xsrf"].value
        form = {"Content-Type": "application/x-www-form-urlencoded"}

        async def post(body: str, headers: dict[str, str] | None = None) -> Any:
            return await self.fetch_async(
                "/xsrf", method="POST", body=body, headers={**form, **(headers or {})}
            )

        with_cookie = {"Cookie": f"_xsrf={cookie}"}
        ok = await post(f"_xsrf={url_escape(token)}&message=hi", with_cookie)
        assert ok.code == 200
        assert json_decode(ok.body) == {"message": "hi"}
        by_header = await post("message=header", {**with_cookie, "X-Xsrftoken": token})
        assert by_header.code == 200
        assert json_decode(by_header.body) == {"message": "header"}
        missing = await post("message=none", with_cookie)
        assert missing.code == 403
        no_cookie = await post(f"_xsrf={url_escape(token)}&message=x")
        assert no_cookie.code == 403
        self.assert_one_session()


# ------------------------------------------------------------------ xheaders


def remote(request: httputil.HTTPServerRequest) -> dict[str, Any]:
    return {"remote_ip": request.remote_ip, "protocol": request.protocol}


class RemoteIp(RequestHandler):
    async def get(self) -> None:
        if self.get_argument("wait", None):
            ok = await self.settings["barrier"].wait()
            if not ok:
                raise HTTPError(503, reason="barrier not reached")
        self.write(remote(self.request))


@stream_request_body
class RemoteIpUpload(RequestHandler):
    """Its request stays open (the body is held back by the client) while
    other requests come and go on the same session."""

    def prepare(self) -> None:
        self.settings["upload_started"].set()
        self.size = 0

    def data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)

    def post(self) -> None:
        self.write({**remote(self.request), "size": self.size})


class XHeadersTest(MatrixMixin, AsyncSPDYTestCase):
    def get_app(self) -> Application:
        self.barrier = Barrier(2)
        self.upload_started = asyncio.Event()
        return Application(
            [("/ip", RemoteIp), ("/upload", RemoteIpUpload)],
            barrier=self.barrier,
            upload_started=self.upload_started,
        )

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"xheaders": True}

    @gen_test(timeout=20)
    async def test_x_real_ip_of_concurrent_requests(self) -> None:
        # Two requests in their handlers at once, each with its own headers.
        first, second = await asyncio.gather(
            self.fetch_async("/ip?wait=1", headers={"X-Real-Ip": "10.0.0.1"}),
            self.fetch_async(
                "/ip?wait=1", headers={"X-Real-Ip": "10.0.0.2", "X-Scheme": "http"}
            ),
        )
        assert self.barrier.arrived == 2
        assert json_decode(first.body) == {"remote_ip": "10.0.0.1", "protocol": "https"}
        assert json_decode(second.body) == {"remote_ip": "10.0.0.2", "protocol": "http"}
        # Later requests without the headers see the real peer.
        plain = await self.fetch_async("/ip")
        assert json_decode(plain.body) == {
            "remote_ip": "127.0.0.1",
            "protocol": "https",
        }
        forwarded = await self.fetch_async(
            "/ip", headers={"X-Forwarded-For": "192.0.2.7, 127.0.0.1"}
        )
        assert json_decode(forwarded.body)["remote_ip"] == "127.0.0.1"
        forwarded = await self.fetch_async(
            "/ip", headers={"X-Forwarded-For": "192.0.2.7"}
        )
        assert json_decode(forwarded.body)["remote_ip"] == "192.0.2.7"
        self.assert_one_session()

    @gen_test(timeout=20)
    async def test_x_real_ip_does_not_leak_into_other_streams(self) -> None:
        # Tornado rewrites the connection's context from a request's
        # X-Real-Ip until that request's body has arrived; over a session the
        # context must be the stream's own, or the other streams see it.
        release = asyncio.Event()

        async def held_body(write: Callable[[bytes], Any]) -> None:
            await write(b"x" * 1000)
            await release.wait()
            await write(b"y" * 1000)

        upload = asyncio.ensure_future(
            self.fetch_async(
                "/upload",
                method="POST",
                body_producer=held_body,
                headers={
                    "X-Real-Ip": "10.9.9.9",
                    "X-Scheme": "http",
                    "Content-Length": "2000",
                    "Content-Type": "application/octet-stream",
                },
            )
        )
        await asyncio.wait_for(self.upload_started.wait(), 10)
        during = await self.fetch_async("/ip")
        other = await self.fetch_async("/ip", headers={"X-Real-Ip": "10.0.0.3"})
        assert not upload.done()
        release.set()
        uploaded = await asyncio.wait_for(upload, 10)
        assert json_decode(during.body) == {
            "remote_ip": "127.0.0.1",
            "protocol": "https",
        }
        assert json_decode(other.body) == {"remote_ip": "10.0.0.3", "protocol": "https"}
        assert json_decode(uploaded.body) == {
            "remote_ip": "10.9.9.9",
            "protocol": "http",
            "size": 2000,
        }
        self.assert_one_session()


# ------------------------------------------------------------------ back-pressure


UPLOAD_SIZE = 4 * MiB
UPLOAD_CHUNK = 64 * 1024
QUIET_ITERATIONS = 100  # IOLoop passes without progress that count as a stall


class UploadProgress:
    """What the client's body producer got through, and gates the test holds."""

    def __init__(self) -> None:
        self.acknowledged = 0  # bytes whose write() future resolved
        self.done = False
        self.consumed = 0  # bytes the handler has received
        self.leads: list[int] = []  # acknowledged - consumed, at each chunk
        self.stalls: list[tuple[int, int]] = []  # (acknowledged, consumed) when stalled
        self.read_ahead: list[int] = []  # HTTP/1.1: bytes Tornado read, not delivered
        self.first_chunk = asyncio.Event()
        self.closed = asyncio.Event()  # the handler's on_connection_close ran
        self.gate = asyncio.Event()  # the test opens it
        self.gate.set()
        self.measure = True

    async def producer(self, write: Callable[[bytes], Any]) -> None:
        data = random.Random(4).randbytes(UPLOAD_SIZE)
        for start in range(0, UPLOAD_SIZE, UPLOAD_CHUNK):
            await write(data[start : start + UPLOAD_CHUNK])
            self.acknowledged += UPLOAD_CHUNK
        self.done = True

    async def until_stalled(self) -> None:
        """IOLoop passes until the producer stops making progress (or is done)."""
        quiet, last = 0, self.acknowledged
        while quiet < QUIET_ITERATIONS and not self.done:
            await asyncio.sleep(0)
            if self.acknowledged != last:
                quiet, last = 0, self.acknowledged
            else:
                quiet += 1
        if not self.done:
            self.stalls.append((self.acknowledged, self.consumed))


@stream_request_body
class SlowUpload(RequestHandler):
    def prepare(self) -> None:
        self.progress: UploadProgress = self.settings["progress"]
        self.digest = hashlib.sha256()

    async def data_received(self, chunk: bytes) -> None:
        progress = self.progress
        progress.consumed += len(chunk)
        self.digest.update(chunk)
        progress.leads.append(progress.acknowledged - progress.consumed)
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            progress.read_ahead.append(connection.stream._read_buffer_size)
        progress.first_chunk.set()
        await progress.gate.wait()
        if progress.measure:
            await progress.until_stalled()

    def put(self) -> None:
        self.write({"size": self.progress.consumed, "sha256": self.digest.hexdigest()})

    def on_connection_close(self) -> None:
        self.progress.closed.set()


class BackPressureTest(MatrixMixin, AsyncSPDYTestCase):
    WINDOW = 128 * 1024  # the server's per-stream receive window

    def get_app(self) -> Application:
        self.progress = UploadProgress()
        return Application(
            [("/upload", SlowUpload), ("/info", Info)], progress=self.progress
        )

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"initial_window_size": self.WINDOW}

    def tearDown(self) -> None:
        self.progress.gate.set()  # a held handler ends, even after a failure
        super().tearDown()

    def upload(self, progress: UploadProgress, timeout: float = 60) -> Any:
        return self.fetch_async(
            "/upload",
            method="PUT",
            body_producer=progress.producer,
            headers={"Content-Length": str(UPLOAD_SIZE)},
            request_timeout=timeout,
        )

    @gen_test(timeout=30)
    async def test_on_connection_close_when_the_client_abandons_an_upload(
        self,
    ) -> None:
        progress = self.progress
        progress.measure = False
        progress.gate.clear()  # the handler holds the first chunk
        with pytest.raises(HTTPTimeoutError):
            await self.upload(progress, timeout=1.0)
        assert progress.first_chunk.is_set()
        assert not progress.done
        if self.multiplexed:
            # The reset reaches the handler while it is still busy.
            await asyncio.wait_for(progress.closed.wait(), 10)
            progress.gate.set()
        else:
            # Tornado's HTTP/1.1 connection sees the close when it reads
            # again, once the handler has taken what was buffered.
            progress.gate.set()
            await asyncio.wait_for(progress.closed.wait(), 10)
        response = await self.fetch_async("/info")
        assert response.code == 200
        self.assert_one_session()

    @gen_test(timeout=60)
    async def test_slow_data_received_holds_the_peer_back(self) -> None:
        progress = self.progress
        response = await self.upload(progress)
        assert response.code == 200
        expected = sha256(random.Random(4).randbytes(UPLOAD_SIZE))
        assert json_decode(response.body) == {"size": UPLOAD_SIZE, "sha256": expected}
        assert len(progress.leads) > 1  # the body came in pieces
        if self.multiplexed:
            # The producer stalled while the handler was busy, far from the end:
            # flow control never let it get further ahead of the handler than
            # the server's stream window.
            assert progress.stalls, "the producer never waited for the handler"
            assert progress.stalls[0][0] <= self.WINDOW + UPLOAD_CHUNK, progress.stalls[
                :3
            ]
            assert max(progress.leads) <= self.WINDOW, (
                max(progress.leads),
                self.WINDOW,
            )
            assert max(a - c for a, c in progress.stalls) <= self.WINDOW
        else:
            # HTTP/1.1: the kernel's socket buffers (megabytes on loopback) take
            # what the server does not read; Tornado itself reads a chunk at a
            # time, as the handler asks for it.
            assert not progress.stalls or progress.stalls[0][0] > 0
            assert max(progress.read_ahead) <= 4 * UPLOAD_CHUNK, max(
                progress.read_ahead
            )

    @gen_test(timeout=60)
    async def test_a_blocked_upload_does_not_block_other_requests(self) -> None:
        progress = self.progress
        progress.measure = False
        progress.gate.clear()
        upload = asyncio.ensure_future(self.upload(progress))
        await asyncio.wait_for(progress.first_chunk.wait(), 20)
        # The handler sits in data_received; the same session serves others.
        for _ in range(3):
            response = await self.fetch_async("/info")
            assert response.code == 200
            self.assert_framing(response)
        assert not upload.done()
        assert not progress.done
        assert progress.consumed < UPLOAD_SIZE
        progress.gate.set()
        response = await asyncio.wait_for(upload, 50)
        assert response.code == 200
        assert json_decode(response.body)["size"] == UPLOAD_SIZE
        self.assert_one_session()


# ------------------------------------------------------------------ known bugs
# Each marks the variants where tornado_spdy fails today, xfail(strict=True):
# the fix makes them pass and then the marker must go. None today (the last,
# SPDY's custom reason phrase, was fixed on 2026-11-24).
