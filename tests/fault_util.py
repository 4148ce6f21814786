"""Helpers for the fault tests (`tests/test_faults.py`): a census of the objects
a fault could leak, a server harness with handlers that report what happened
to them, and ways for a peer to vanish.

The census records, before a scenario, which `StreamConnection`, `Session` and
`RequestHandler` objects exist; afterwards (after ``gc.collect()``) none of
those created since may be left, nor any pending future of the running loop
that no task is waiting on.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import socket
import struct
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from tornado import web

from tests import test_server_bad_input as bad_input
from tests.server_util import HelloHandler, write_flushed
from tests.test_server_bad_input import Harness, Probe, RawClient
from tornado_spdy.session import Session, SessionParameters
from tornado_spdy.stream import StreamConnection
from tornado_spdy.web import RequestHandler as PushHandler

TIMEOUT = 5.0  # one wait for one event (they take milliseconds)
CLOSE_TIMEOUT = 5.0  # close_all_connections(): LINGER (1 s) and some
SETTLE_TIMEOUT = 3.0  # for the census to come back to its baseline

DOWNLOAD = 20 * 1024 * 1024

#: What a fault may leave behind.
KINDS: tuple[type, ...] = (StreamConnection, Session, web.RequestHandler)


# ----------------------------------------------------------------- census


def live_objects() -> list[Any]:
    gc.collect()
    return [obj for obj in gc.get_objects() if isinstance(obj, KINDS)]


def pending_futures() -> list[asyncio.Future[Any]]:
    """Pending futures of the running loop, other than tasks and what a task
    is waiting on (the test's own)."""
    loop = asyncio.get_running_loop()
    tasks = asyncio.all_tasks(loop)
    waited = {id(getattr(task, "_fut_waiter", None)) for task in tasks}
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, asyncio.Future)
        and not obj.done()
        and obj.get_loop() is loop
        and obj not in tasks
        and id(obj) not in waited
    ]


class Census:
    """Objects of `KINDS` alive now; `settled` checks that no other is left."""

    def __init__(self) -> None:
        self.before: weakref.WeakSet[Any] = weakref.WeakSet(live_objects())

    def new(self) -> list[Any]:
        return [obj for obj in live_objects() if obj not in self.before]

    async def settled(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Until nothing created since is alive and no future is pending.

        Polled: what frees them (a closing IOStream's callbacks, a finished
        handler's task) runs on the loop with no event to wait on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            leaked, pending = self.new(), pending_futures()
            if not leaked and not pending:
                return
            if loop.time() > deadline:
                raise AssertionError(
                    f"left behind: {describe(leaked)}; pending futures: {pending}"
                )
            await asyncio.sleep(0.05)


def describe(objects: list[Any]) -> str:
    counts = collections.Counter(type(obj).__name__ for obj in objects)
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "none"


def flatten_records(caplog: pytest.LogCaptureFixture | None) -> None:
    """Keep the captured records' text, not their arguments: an exception
    logged as an argument holds its traceback's frames, and with them the
    session that logged it, for as long as pytest keeps the record."""
    if caplog is None:
        return
    for record in caplog.records:
        record.msg, record.args = record.getMessage(), None


def run(
    scenario: Callable[[], Awaitable[None]],
    timeout: float,
    census: bool = True,
    caplog: pytest.LogCaptureFixture | None = None,
) -> None:
    """Run ``scenario`` on a fresh loop, bounded by ``timeout``; then the
    census must be back to where it was before (``caplog``: the records
    captured meanwhile, see `flatten_records`)."""

    async def main() -> None:
        counted = Census() if census else None
        await scenario()  # its frame, and the clients it held, are gone now
        if counted is not None:
            flatten_records(caplog)
            await counted.settled()

    asyncio.run(asyncio.wait_for(main(), timeout))


# ----------------------------------------------------------------- the server


class FaultProbe(Probe):
    """A `Probe` that also keeps (weakly) the handlers it saw and wakes
    `reached` waiters."""

    def __init__(self) -> None:
        super().__init__()
        self.handlers: dict[str, weakref.WeakSet[web.RequestHandler]] = (
            collections.defaultdict(weakref.WeakSet)
        )
        self._changed = asyncio.Event()

    def hit(self, name: str) -> None:
        super().hit(name)
        self._changed.set()

    def saw(self, name: str, handler: web.RequestHandler) -> None:
        self.handlers[name].add(handler)
        self.hit(name)

    async def reached(self, name: str, count: int, timeout: float = TIMEOUT) -> None:
        """Until ``counts[name]`` is at least ``count``."""

        async def loop() -> None:
            while self.counts[name] < count:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{name}: {self.counts[name]} of {count} after {timeout} s"
            ) from None


class Base(web.RequestHandler):
    @property
    def probe(self) -> FaultProbe:
        return self.settings["probe"]


@web.stream_request_body
class Upload(Base):
    """Counts a streamed body; reports its first chunk and its close."""

    def prepare(self) -> None:
        self.received = 0
        self.probe.saw("upload-started", self)

    def data_received(self, chunk: bytes) -> None:
        self.received += len(chunk)
        self.probe.hit("upload-data")

    def post(self) -> None:
        self.probe.hit("upload-complete")  # must not happen: the peer left
        self.write(str(self.received))

    def on_connection_close(self) -> None:
        self.probe.hit("upload-closed")
        super().on_connection_close()


class Download(Base):
    """``size`` bytes (20 MiB by default), each 64 KiB chunk flushed."""

    async def get(self) -> None:
        self.probe.saw("download-started", self)
        size = int(self.get_argument("size", str(DOWNLOAD)))
        if not await write_flushed(self, size):
            self.probe.hit("download-write-failed")

    def on_connection_close(self) -> None:
        self.probe.hit("download-closed")


class Page(PushHandler):
    """Pushes ``/pushed/a`` and ``/pushed/b`` (20 MiB each) with a small page."""

    def get(self) -> None:
        self.settings["probe"].saw("page", self)
        self.push("/pushed/a")
        self.push("/pushed/b")
        self.write(b"page")


class Pushed(Base):
    async def get(self, name: str) -> None:
        self.probe.saw("pushed-started", self)
        if not await write_flushed(self, DOWNLOAD):
            self.probe.hit("pushed-write-failed")

    def on_connection_close(self) -> None:
        self.probe.hit("pushed-closed")


class Hold(Base):
    """Answers ``done <n>`` once the test sets ``probe.release``."""

    async def get(self) -> None:
        self.probe.saw("hold-started", self)
        await self.probe.release.wait()
        self.write(f"done {self.get_argument('n', '')}")


ROUTES = [
    (r"/hello", HelloHandler),
    (r"/upload", Upload),
    (r"/download", Download),
    (r"/page", Page),
    (r"/pushed/(\w+)", Pushed),
    (r"/hold", Hold),
]


def serving(
    protocol: str, tls: bool = False, params: SessionParameters | None = None
) -> AbstractAsyncContextManager[Harness]:
    """`tests.test_server_bad_input.serving` with this file's handlers; the
    server must close gracefully within ``CLOSE_TIMEOUT`` at the end (a hang
    fails the test)."""
    return bad_input.serving(
        protocol,
        tls,
        params,
        routes=ROUTES,
        probe=FaultProbe(),
        close_timeout=CLOSE_TIMEOUT,
        stuck_fails=True,
    )


# ----------------------------------------------------------------- vanishing


def vanish(writer: asyncio.StreamWriter, how: str) -> None:
    """The peer goes: ``"fin"`` closes the socket (FIN after what is queued),
    ``"rst"`` aborts it with SO_LINGER 0 (RST, queued bytes dropped)."""
    if how == "rst":
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    elif how == "fin":
        writer.close()
    else:
        raise ValueError(how)


def vanish_raw(client: RawClient, how: str) -> None:
    vanish(client.writer, how)


# ----------------------------------------------------------------- logs


def above_info(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records over INFO from any logger (asyncio's "exception never
    retrieved" and "Task was destroyed" included)."""
    return [r for r in caplog.records if r.levelno > logging.INFO]


def show(records: list[logging.LogRecord]) -> str:
    return "\n".join(f"{r.name} {r.levelname}: {r.getMessage()}" for r in records)
