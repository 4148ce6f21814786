"""The documentation: the API reference covers every public name, the docs build
without warnings, and the code the docs show runs and does what they say.

What "public" means here (and in ``docs/api.rst``):

* The public modules are `PUBLIC_MODULES`: ``tornado_spdy``, its ``server``,
  ``session``, ``client``, ``web``, ``testing``, ``tls`` and ``trace`` modules,
  ``tornado_spdy.spdy`` and ``tornado_spdy.spdy.events``. (``stream``, ``http2``,
  ``__main__`` and the core's other modules are implementation; what the core
  exports is in ``tornado_spdy.spdy.__all__``.)
* A module's public names are its ``__all__`` when it has one (``tornado_spdy``,
  ``tornado_spdy.spdy``); otherwise every name its source binds at top level with
  ``def``, ``class`` or an assignment (not an import) that does not start with
  ``_``. ``tornado_spdy.session`` has no ``__all__``, so `Session`, `new_core`,
  `LINGER` ... are public beside `SessionParameters`: they are what a
  `StreamConnection`'s ``session`` and the client's pool hand to users.
* The methods and properties a public class defines in its own body are public
  unless their names start with ``_``, except ``initialize``: the constructor
  of Tornado's ``Configurable`` classes, whose arguments the class docstring
  documents.

A name *has a docstring* when a module, class or function has its own
``__doc__`` (a dataclass's generated signature does not count; a method may
inherit its base class's, as autodoc shows it), or data has a ``#:`` comment,
which is what autodoc reads. It *is documented in docs/api.rst* when an
``auto...::`` directive there names it, as ``module.name`` of the module it is
public in or of the one that defines it, or an ``automodule::`` of either module
has ``:members:`` naming it or naming nothing (all). Members of a class are
documented with the class when it is documented with all its members.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import importlib
import inspect
import json
import os
import re
import selectors
import socket
import ssl
import subprocess
import sys
import textwrap
import types
import unittest
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.httpserver
import tornado.web
import tornado.websocket
from sphinx.pycode import ModuleAnalyzer
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.test_examples import serve
from tornado_spdy import PROTOCOLS, SPDYClient, SPDYServer, tls
from tornado_spdy.testing import development_ssl_context

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "docs")

PUBLIC_MODULES = (
    "tornado_spdy",
    "tornado_spdy.server",
    "tornado_spdy.session",
    "tornado_spdy.client",
    "tornado_spdy.web",
    "tornado_spdy.testing",
    "tornado_spdy.tls",
    "tornado_spdy.trace",
    "tornado_spdy.spdy",
    "tornado_spdy.spdy.events",
)

#: Methods public by name that are not API (see the module docstring).
NOT_API_METHODS = {"initialize"}

ALL = None  # a ``:members:`` option naming nothing: every member


def run(coroutine: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def read(path: str) -> str:
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


# ------------------------------------------------------------- public names


def top_level_names(module: types.ModuleType) -> list[str]:
    """Names bound at the top level of ``module``'s source, imports aside."""
    names: list[str] = []
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names


def public_names() -> Iterator[tuple[str, str, Any]]:
    """(module, name, object) for every public module-level name."""
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n in top_level_names(module) if not n.startswith("_")]
        for name in names:
            yield module_name, name, getattr(module, name)


def public_members(cls: type) -> Iterator[tuple[str, Any]]:
    """(name, attribute) for the public methods and properties ``cls`` defines."""
    for name, value in vars(cls).items():
        if name.startswith("_") or name in NOT_API_METHODS:
            continue
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            yield name, value


def public_classes() -> Iterator[tuple[str, type]]:
    """(qualified name where public, class) for each public class, once."""
    seen: set[type] = set()
    for module_name, name, obj in public_names():
        if inspect.isclass(obj) and obj not in seen:
            seen.add(obj)
            yield f"{module_name}.{name}", obj


def defining_module(module_name: str, obj: Any) -> str:
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return obj.__module__
    return module_name


def data_docstrings(module_name: str) -> dict[str, str]:
    """The ``#:`` comments of a module's top-level names."""
    docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
    return {
        name: "\n".join(lines) for (scope, name), lines in docs.items() if not scope
    }


def has_docstring(module_name: str, name: str, obj: Any) -> bool:
    if inspect.ismodule(obj) or inspect.isfunction(obj):
        return bool((obj.__doc__ or "").strip())
    if inspect.isclass(obj):
        doc = (vars(obj).get("__doc__") or "").strip()
        if dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
            return False  # the signature dataclasses write, not a docstring
        return bool(doc)
    return bool(data_docstrings(module_name).get(name, "").strip())


def missing_docstrings() -> list[str]:
    missing = [
        f"{module_name}.{name}"
        for module_name, name, obj in public_names()
        if not has_docstring(module_name, name, obj)
    ]
    for _, cls in public_classes():
        for name, value in public_members(cls):
            target = value if isinstance(value, property) else getattr(cls, name)
            if not (inspect.getdoc(target) or "").strip():
                missing.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    return missing


# ---------------------------------------------------------------- api.rst

DIRECTIVE = re.compile(r"^\.\. (auto\w+):: *(\S+) *\n((?:[ \t]+:.*\n?)*)", re.M)


@dataclasses.dataclass
class Reference:
    """What docs/api.rst documents."""

    modules: dict[str, set[str] | None]  # automodule -> :members: (None: all)
    objects: dict[str, set[str] | None | bool]  # auto... -> :members:, or False

    @classmethod
    def parse(cls, text: str) -> Reference:
        modules: dict[str, set[str] | None] = {}
        objects: dict[str, set[str] | None | bool] = {}
        for kind, target, options in DIRECTIVE.findall(text):
            members: set[str] | None | bool = False
            match = re.search(r":members:(.*)", options)
            if match:
                listed = {m.strip() for m in match.group(1).split(",") if m.strip()}
                members = listed or ALL
            if kind == "automodule":
                if members is not False:
                    previous = modules.get(target, set())
                    if members is ALL or previous is ALL:
                        modules[target] = ALL
                    else:
                        assert isinstance(members, set)
                        modules[target] = previous | members
                else:
                    modules.setdefault(target, set())
            else:
                objects[target] = members
        return cls(modules, objects)

    def covers(self, module_name: str, name: str) -> bool:
        if f"{module_name}.{name}" in self.objects:
            return True
        if module_name not in self.modules:
            return False
        members = self.modules[module_name]
        return members is ALL or name in members

    def covers_members_of(self, module_name: str, name: str) -> bool:
        """Whether the class ``module_name.name`` is documented with all its
        (documented) members: automodule :members: propagates to classes."""
        qualified = f"{module_name}.{name}"
        if qualified in self.objects:
            return self.objects[qualified] is ALL
        members = self.modules.get(module_name, set())
        return members is ALL or (members is not None and name in members)


def undocumented_in_api(reference: Reference) -> list[str]:
    missing = []
    for module_name, name, obj in public_names():
        if inspect.ismodule(obj):
            if obj.__name__ not in reference.modules:
                missing.append(f"{module_name}.{name}")
            continue
        home = defining_module(module_name, obj)
        if not (reference.covers(module_name, name) or reference.covers(home, name)):
            missing.append(f"{module_name}.{name}")
    for qualified, cls in public_classes():
        where = [
            (qualified.rsplit(".", 1)[0], cls.__name__),
            (cls.__module__, cls.__name__),
        ]
        if any(reference.covers_members_of(m, n) for m, n in where):
            continue
        for name, _ in public_members(cls):
            listed = [reference.objects.get(f"{m}.{n}") for m, n in where]
            if not any(isinstance(s, set) and name in s for s in listed):
                missing.append(f"{qualified}.{name}")
    return missing


def test_the_rule_finds_the_names_the_docs_promise():
    """The rule is not vacuous: it finds the names the issue lists."""
    found = {f"{m}.{n}" for m, n, _ in public_names()}
    for name in (
        "tornado_spdy.SPDYServer",
        "tornado_spdy.SPDYClient",
        "tornado_spdy.SessionParameters",
        "tornado_spdy.PROTOCOLS",
        "tornado_spdy.web.PushMixin",
        "tornado_spdy.testing.AsyncSPDYTestCase",
        "tornado_spdy.tls.development_certificate",
        "tornado_spdy.server.log_request",
        "tornado_spdy.trace.frame_tracer",
        "tornado_spdy.spdy.SPDYConnection",
        "tornado_spdy.spdy.events",
        "tornado_spdy.spdy.events.RequestReceived",
    ):
        assert name in found
    # Imports are not public names of the importing module.
    assert "tornado_spdy.web.StreamConnection" not in found
    assert "tornado_spdy.server.Session" not in found


def test_the_reference_parser_sees_what_is_missing():
    reference = Reference.parse(
        ".. automodule:: tornado_spdy.tls\n   :members: set_protocols\n\n"
        ".. autoclass:: tornado_spdy.spdy.SPDYConnection\n"
    )
    assert reference.covers("tornado_spdy.tls", "set_protocols")
    assert not reference.covers("tornado_spdy.tls", "client_context")
    assert reference.covers("tornado_spdy.spdy", "SPDYConnection")
    assert not reference.covers_members_of("tornado_spdy.spdy", "SPDYConnection")


def test_every_public_name_has_a_docstring():
    missing = missing_docstrings()
    assert not missing, "public names without a docstring:\n  " + "\n  ".join(missing)


def test_every_public_name_is_in_the_api_reference():
    missing = undocumented_in_api(Reference.parse(read("docs/api.rst")))
    assert not missing, "public names not documented in docs/api.rst:\n  " + (
        "\n  ".join(missing)
    )


@pytest.mark.timeout(300)
def test_the_docs_build_without_warnings(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            DOCS,
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr or result.stdout
    assert (tmp_path / "html" / "api.html").exists()


# ------------------------------------------------------------- code samples


def python_blocks(text: str) -> list[str]:
    """The ``.. code-block:: python`` blocks of an rst text, dedented."""
    blocks = []
    for match in re.finditer(r"^( *)\.\. code-block:: python\n\n", text, re.M):
        indent = len(match.group(1))
        lines = []
        for line in text[match.end() :].splitlines():
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            lines.append(line)
        blocks.append(textwrap.dedent("\n".join(lines)).strip() + "\n")
    return blocks


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_of(server: tornado.httpserver.HTTPServer) -> int:
    return next(iter(server._sockets.values())).getsockname()[1]


async def stop(server: tornado.httpserver.HTTPServer) -> None:
    server.stop()
    await server.close_all_connections()


# Reports from the child that runs README's example: it listens.
_README_PRELUDE = """\
import tornado.tcpserver
_listen = tornado.tcpserver.TCPServer.listen
def _announce(self, *args, **kwargs):
    _listen(self, *args, **kwargs)
    print("listening", flush=True)
tornado.tcpserver.TCPServer.listen = _announce
"""


def wait_for_line(process: subprocess.Popen[str], text: str, timeout: float) -> None:
    with selectors.DefaultSelector() as selector:
        assert process.stdout is not None
        selector.register(process.stdout, selectors.EVENT_READ)
        while selector.select(timeout):
            line = process.stdout.readline()
            if not line or text in line:
                break
    assert process.poll() is None, process.stderr.read() if process.stderr else ""


@pytest.mark.timeout(120)
def test_the_readme_example_serves_every_protocol():
    (example,) = [b for b in python_blocks(read("README.rst")) if "SPDYServer" in b]
    assert example.count("8443") == 1
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-c", _README_PRELUDE + example.replace("8443", str(port))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        wait_for_line(child, "listening", 60)

        async def fetch_each() -> dict[str, bytes]:
            client = SPDYClient(force_instance=True)
            try:
                bodies = {}
                for protocol in PROTOCOLS:
                    response = await client.fetch(
                        f"https://127.0.0.1:{port}/",
                        validate_cert=False,
                        protocol=protocol,
                    )
                    assert response.framing == protocol
                    bodies[protocol] = response.body
                return bodies
            finally:
                client.close()

        bodies = run(fetch_each())
    finally:
        child.kill()
        child.communicate(timeout=30)
    assert bodies == {p: f"Hello over {p}\n".encode() for p in PROTOCOLS}


@pytest.fixture
def migration() -> Iterator[types.ModuleType]:
    """The code samples of docs/migration.rst, run in order as one module."""
    module = types.ModuleType("docs_migration")
    sys.modules[module.__name__] = module
    try:
        for block in python_blocks(read("docs/migration.rst")):
            exec(compile(block, "docs/migration.rst", "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[module.__name__]


def test_migration_has_samples_for_each_part(migration):
    for name in (
        "start_server",
        "start_backend",
        "WhoAmI",
        "listen_everywhere",
        "WhoAmITest",
        "use_spdy_client",
        "fetch_all",
    ):
        assert hasattr(migration, name), name


def test_spdyserver_takes_every_argument_of_httpserver():
    ours = inspect.signature(SPDYServer.initialize).parameters
    theirs = inspect.signature(tornado.httpserver.HTTPServer.initialize).parameters
    for name, parameter in theirs.items():
        assert name in ours, name
        assert ours[name].default == parameter.default, name


def test_migration_start_server_serves_every_protocol(migration):
    async def scenario() -> dict[str, dict[str, Any]]:
        app = tornado.web.Application([("/", migration.WhoAmI)])
        server = migration.start_server(app, development_ssl_context(), 0)
        assert isinstance(server, SPDYServer) and server.xheaders
        client = SPDYClient(force_instance=True)
        try:
            seen = {}
            for protocol in PROTOCOLS:
                response = await client.fetch(
                    f"https://127.0.0.1:{port_of(server)}/",
                    validate_cert=False,
                    protocol=protocol,
                )
                seen[protocol] = json.loads(response.body)
            return seen
        finally:
            client.close()
            await stop(server)

    seen = run(scenario())
    versions = {
        "h2": "HTTP/2",
        "spdy/3.1": "SPDY/3.1",
        "spdy/3": "SPDY/3",
        "spdy/2": "SPDY/2",
        "http/1.1": "HTTP/1.1",
    }
    for protocol, answer in seen.items():
        assert answer["framing"] == protocol
        assert answer["version"] == versions[protocol]
        assert 0 <= answer["priority"] <= 7
    assert seen["http/1.1"]["priority"] == 3


def test_migration_start_backend_tells_protocols_apart(migration):
    async def scenario() -> list[str]:
        app = tornado.web.Application([("/", migration.WhoAmI)])
        port = free_port()
        server = migration.start_backend(app, port)
        framings = []
        try:
            for protocol in ("h2", "spdy/3.1", "spdy/2", "http/1.1"):
                client = SPDYClient(force_instance=True, plain_protocol=protocol)
                try:
                    response = await client.fetch(f"http://127.0.0.1:{port}/")
                finally:
                    client.close()
                framings.append(json.loads(response.body)["framing"])
        finally:
            await stop(server)
        return framings

    assert run(scenario()) == ["h2", "spdy/3.1", "spdy/2", "http/1.1"]


def test_migration_listen_everywhere_makes_a_spdyserver(migration):
    async def scenario() -> bytes:
        app = tornado.web.Application([("/", migration.WhoAmI)])
        server = migration.listen_everywhere(app, development_ssl_context(), 0)
        client = SPDYClient(force_instance=True)
        try:
            assert isinstance(server, SPDYServer)
            response = await client.fetch(
                f"https://127.0.0.1:{port_of(server)}/", validate_cert=False
            )
            return json.loads(response.body)["framing"]
        finally:
            client.close()
            await stop(server)

    try:
        assert run(scenario()) == "h2"
    finally:
        tornado.httpserver.HTTPServer.configure(None)


def test_migration_test_case_runs_once_per_protocol(migration):
    suite = unittest.defaultTestLoader.loadTestsFromModule(migration)
    result = unittest.TextTestRunner(stream=open(os.devnull, "w"), verbosity=0).run(
        suite
    )
    assert result.wasSuccessful(), result.failures + result.errors
    assert result.testsRun == len(PROTOCOLS)
    variants = {
        getattr(migration, n).protocol for n in dir(migration) if "WhoAmITest" in n
    }
    assert variants == set(PROTOCOLS)


def test_migration_client_shares_one_session_per_origin(migration):
    async def scenario() -> tuple[list[str], int, type]:
        server, base = await serve(tornado.web.Application([("/", migration.WhoAmI)]))
        client = None
        try:
            migration.use_spdy_client()
            lines = await migration.fetch_all([base + "/"] * 3, validate_cert=False)
            client = AsyncHTTPClient()
            return lines, len(client.pool.sessions), type(client)
        finally:
            if client is not None:
                client.close()
            await stop(server)

    try:
        lines, sessions, kind = run(scenario())
    finally:
        AsyncHTTPClient.configure(None)
    assert kind is SPDYClient
    assert sessions == 1
    assert len(lines) == 3 and all(line.endswith("over h2") for line in lines)


class Echo(tornado.websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        self.write_message(message)


def test_websocket_keeps_working_over_http1_beside_h2():
    """migration.rst: WebSocket endpoints are served over HTTP/1.1."""

    async def scenario() -> str | bytes | None:
        server, base = await serve(tornado.web.Application([("/ws", Echo)]))
        context = tls.client_context(["http/1.1"], validate_cert=False)
        try:
            request = HTTPRequest(
                base.replace("https", "wss") + "/ws", ssl_options=context
            )
            connection = await tornado.websocket.websocket_connect(request)
            await connection.write_message("ping")
            answer = await connection.read_message()
            connection.close()
            return answer
        finally:
            await stop(server)

    assert run(scenario()) == "ping"


async def _alpn(port: int, offer: list[str]) -> tuple[str | None, bytes]:
    """The protocol the server picks from ``offer``, and the response of a
    plain HTTP/1.1 GET on that connection when it picked none or http/1.1."""
    context = tls.client_context(offer, validate_cert=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        chosen = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        if chosen not in (None, "http/1.1"):
            return chosen, b""
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return chosen, await reader.read()
    finally:
        writer.close()


def test_alpn_the_servers_order_decides_and_unknown_offers_get_http1():
    """protocols.rst: how a protocol is chosen over TLS."""

    async def scenario() -> list[tuple[str | None, bytes]]:
        server, base = await serve(tornado.web.Application([("/", Framing)]))
        port = int(base.rsplit(":", 1)[1])
        try:
            return [
                await _alpn(port, ["http/1.1", "spdy/2", "spdy/3", "h2"]),
                await _alpn(port, ["spdy/2", "spdy/3"]),
                await _alpn(port, ["no-such-protocol"]),
            ]
        finally:
            await stop(server)

    h2, spdy, unknown = run(scenario())
    assert h2 == ("h2", b"")
    assert spdy == ("spdy/3", b"")
    assert unknown[0] is None and unknown[1].endswith(b"\r\n\r\nhttp/1.1")


class Framing(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(self.request.framing)


def test_spdyclient_honours_a_dict_of_ssl_options():
    async def scenario() -> int:
        server, base = await serve(tornado.web.Application([("/", Framing)]))
        client = SPDYClient(force_instance=True)
        try:
            response = await client.fetch(
                base + "/", ssl_options={"cert_reqs": ssl.CERT_NONE}
            )
            return response.code
        finally:
            client.close()
            await stop(server)

    assert run(scenario()) == 200
