"""Every example runs: each is served in-process and fetched over every
protocol."""

import asyncio
import hashlib
import importlib.util
import os
import sys

import pytest

from tornado_spdy import SPDYClient, SPDYServer
from tornado_spdy.testing import development_ssl_context

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples")
PROTOCOLS = ["h2", "spdy/3.1", "spdy/3", "spdy/2", "http/1.1"]


def load(relative: str):
    path = os.path.join(EXAMPLES, relative)
    name = "example_" + relative.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def serve(app):
    server = SPDYServer(app, ssl_options=development_ssl_context())
    server.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    return server, f"https://127.0.0.1:{port}"


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hello(protocol):
    hello = load("hello.py")

    async def scenario():
        server, base = await serve(hello.make_app())
        client = SPDYClient(force_instance=True)
        response = await client.fetch(
            base + "/", validate_cert=False, protocol=protocol
        )
        client.close()
        server.stop()
        await server.close_all_connections()
        return response

    response = run(scenario())
    assert response.body == f"Hello, world! ({protocol})\n".encode()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_push_page_and_fetch_with_push(protocol):
    app = load("push_page/app.py")
    fetcher = load("fetch_with_push.py")

    async def scenario():
        server, base = await serve(app.make_app())
        lines = await fetcher.main(base + "/", protocol)
        server.stop()
        await server.close_all_connections()
        return lines

    lines = run(scenario())
    assert lines[0].endswith(f"over {protocol}")
    if protocol == "http/1.1":
        assert len(lines) == 1  # nothing pushed: the assets were announced
    else:
        assets = lines[1:]
        assert len(assets) == 2
        assert all(
            "from the push" in line and line.startswith("200") for line in assets
        )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_streaming_upload(protocol):
    upload = load("upload.py")
    body = os.urandom(1024 * 1024)

    async def scenario():
        server, base = await serve(upload.make_app())
        client = SPDYClient(force_instance=True)
        response = await client.fetch(
            base + "/upload",
            method="POST",
            body=body,
            validate_cert=False,
            protocol=protocol,
        )
        client.close()
        server.stop()
        await server.close_all_connections()
        return response

    import json

    result = json.loads(run(scenario()).body)
    assert result == {
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "framing": protocol,
    }
