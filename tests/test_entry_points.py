"""The ways users start tornado_spdy: HTTPServer.configure, app.listen(), and
the command line's serve and info."""

import asyncio
import os
import socket
import subprocess
import sys

import pytest
import tornado.httpserver
import tornado.web
from tornado.httpclient import AsyncHTTPClient

from tornado_spdy import SPDYClient, SPDYServer


class Framing(tornado.web.RequestHandler):
    def get(self):
        self.write(self.request.framing)


def test_httpserver_configure_makes_app_listen_use_spdyserver():
    async def scenario():
        tornado.httpserver.HTTPServer.configure("tornado_spdy.SPDYServer")
        try:
            app = tornado.web.Application([("/", Framing)])
            server = app.listen(0, "127.0.0.1", plain_protocol="h2")
            assert isinstance(server, SPDYServer)
            port = next(iter(server._sockets.values())).getsockname()[1]
            client = SPDYClient(force_instance=True)
            response = await client.fetch(f"http://127.0.0.1:{port}/", protocol="h2")
            client.close()
            server.stop()
            await server.close_all_connections()
            return response.body
        finally:
            tornado.httpserver.HTTPServer.configure(None)

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == b"h2"


def test_asynchttpclient_configure_uses_spdyclient():
    AsyncHTTPClient.configure("tornado_spdy.SPDYClient")
    try:

        async def make():
            return AsyncHTTPClient(force_instance=True)

        client = asyncio.run(make())
        assert isinstance(client, SPDYClient)
        client.close()
    finally:
        AsyncHTTPClient.configure(None)


def run_module(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "tornado_spdy", *args],
        capture_output=True,
        timeout=timeout,
        text=True,
    )


def test_info_shows_the_core_at_work():
    result = run_module()
    assert result.returncode == 0, result.stderr
    for protocol in ("spdy/3.1", "spdy/3", "spdy/2"):
        assert f"{protocol}" in result.stdout
    assert "Hello, world!" in result.stdout


@pytest.mark.timeout(90)
def test_serve_then_fetch_every_protocol(tmp_path):
    (tmp_path / "index.html").write_text("<p>served from a directory</p>")
    with socket.socket() as probe:  # a free port for the child to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tornado_spdy",
            "serve",
            str(tmp_path),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        # The server prints its URL once it listens.
        for line in server.stdout:
            if f"https://localhost:{port}/" in line:
                break
        for protocol in ("h2", "spdy/3.1", "spdy/3", "spdy/2", "http/1.1"):
            result = run_module(
                "fetch", "-k", "--protocol", protocol, f"https://127.0.0.1:{port}/"
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout == "<p>served from a directory</p>"
            assert f"protocol: {protocol}" in result.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
