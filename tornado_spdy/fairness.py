"""`InputGate`: the turns of costly input among the connections of one IOLoop.

A session hands a read to its core at once when the read is cheap (an honest
request); a read that would cost more than ``fair_share`` is handed over in
slices (see `tornado_spdy.session.SessionParameters`), and each slice waits
here for its turn. Were every such connection to take one slice in every
IOLoop pass, a pass would grow with the number of costly peers, and an honest
request, which needs three or four passes from its bytes to its answer, would
wait that many times as long. The gate lets through at most about one pass's
*allowance* of sliced work in all, whoever sends it: ``fair_share``, or
`BUSY_SHARE` of what the rest of a pass has lately taken when that was more,
so that sliced input still gets about a quarter of a server busy with light
work.

A slice that took longer than its estimate (work that cannot be cut smaller,
such as a header block decoded in one call) is paid for in the passes that
follow: the gate lets nobody through until its debt is paid; and the gate
estimates a turn at what the turns it charged have lately cost, when that is
more than ``fair_share``. Waiters go through in the order they came.

New connections take turns here too: `SPDYServer` builds a connection's
session in a turn, and a session's reads are all sliced input until its
first request has started (see `tornado_spdy.session.Session`). Connections
opened many at once, each with a request, then wait their turn behind those
already served, not in front of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator

#: The most the rest of the passes can raise a pass's allowance (seconds): a
#: pass that included time the IOLoop spent idle is not all light work.
MAX_ALLOWANCE = 0.01
#: Passes the measure of the rest of a pass averages over: a server busy with
#: light work raises the allowance; one honest request does not.
BUSY_PASSES = 16
#: How much sliced work a pass may carry for the rest of it (the light work):
#: at 1, a pass of a busy server took twice as long as its light work, and
#: an honest request meeting four peers' Huffman-coded headers waited 2.5 to
#: 3 times as long as without them (the peers' reads add to it); at a half,
#: 1.6 to 2.1 times; at 0.35, 1.4 to 2.1 times, lower than at a half in each
#: alternating A/B round, as were the five other slowest cases of
#: tests/test_attacks.py on the whole (0.25 measured no better). Costly input
#: keeps about a quarter of a busy server, and all of an idle one.
BUSY_SHARE = 0.35
#: Turns over which the gate averages what one turn's work has cost (a
#: `InputGate.charging` block and what it scheduled). A slice is expected to
#: cost ``fair_share``, and input is cut to that size; but some turns carry
#: work that cannot be cut (a new connection's session built, a request's
#: handler started), and letting through as many of those as the allowance
#: holds shares would put several in one pass.
UNIT_TURNS = 8


class InputGate:
    """The queue of slices of costly input waiting for their turn in one
    asyncio event loop; `current` finds or makes the running loop's."""

    _gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, InputGate] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._loop = loop
        self._clock = clock
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._scheduled = False
        self._share = 0.0  # the estimate of one slice's cost, from the waiters
        self._credit = 0.0  # seconds of sliced work the gate may still let through
        self._spent = 0.0  # seconds of sliced work charged since the last release
        self._last = clock()  # when the gate last released
        self._busy = 0.0  # the rest of a pass, averaged over BUSY_PASSES
        self._unit = 0.0  # what a turn costs, averaged over UNIT_TURNS

    @classmethod
    def current(cls) -> InputGate:
        """The gate of the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        gate = cls._gates.get(loop)
        if gate is None:
            gate = cls._gates[loop] = cls(loop)
        return gate

    async def turn(self, share: float) -> None:
        """Wait for the turn of one slice expected to cost ``share`` seconds
        (the session's ``fair_share``; where servers of one IOLoop differ,
        the latest to ask sets the estimate); then run it and `charge` its
        cost."""
        self._share = share
        future = self._loop.create_future()
        self._waiting.append(future)
        if not self._scheduled:
            self._schedule(fresh=True)
        await future

    def charge(self, seconds: float) -> None:
        """A slice let through took ``seconds``."""
        self._spent += seconds

    def learn_turn(self, seconds: float) -> None:
        """A turn's work, all of it, took ``seconds`` (see `charging`)."""
        self._unit += (seconds - self._unit) / UNIT_TURNS

    @contextlib.contextmanager
    def charging(self) -> Iterator[None]:
        """Charge what the block takes, and what it schedules for the next
        IOLoop pass: a request started here runs its handler's first step
        there (Tornado makes it a task), often the whole of a request's work.
        Nothing else can be scheduled between two marks put in the ready
        queue around the block, so the time between them is the block's.
        Once both parts are known, the gate learns what the turn cost."""
        began = self._clock()
        stopwatch = _Stopwatch(self, self._clock)
        self._loop.call_soon(stopwatch.start)
        try:
            yield
        finally:
            self._loop.call_soon(stopwatch.stop)
            stopwatch.block = self._clock() - began
            self.charge(stopwatch.block)

    def _schedule(self, fresh: bool = False) -> None:
        if fresh:
            # Nobody waited since the last release: the time others had
            # meanwhile pays the debt, as a pass's rest does (up to zero).
            now = self._clock()
            rest = max(now - self._last - self._spent, 0.0)
            self._credit = min(self._credit - self._spent + rest, 0.0)
            self._spent = 0.0
            self._last = now
        self._scheduled = True
        self._loop.call_soon(self._release)

    def _release(self) -> None:
        """Once per IOLoop pass while slices wait: add this pass's allowance
        to the credit, take off what the slices let through have cost, and
        let through as many as the credit covers (at least one when
        ``share`` is 0: no budget, one slice a pass)."""
        self._scheduled = False
        now = self._clock()
        share = self._share
        rest_of_pass = min(max(now - self._last - self._spent, 0.0), MAX_ALLOWANCE)
        self._busy += (rest_of_pass - self._busy) / BUSY_PASSES
        allowance = max(share, self._busy * BUSY_SHARE)
        self._credit = min(self._credit + allowance - self._spent, allowance)
        self._spent = 0.0
        self._last = now
        if share <= 0:
            self._let_through(1)
        elif self._credit > 0:
            unit = max(share, self._unit)
            self._let_through(-int(-self._credit // unit))  # rounded up
        waiting = self._waiting
        while waiting and waiting[0].done():  # its task was cancelled
            waiting.popleft()
        if waiting:
            self._schedule()

    def _let_through(self, count: int) -> None:
        waiting = self._waiting
        while count > 0 and waiting:
            future = waiting.popleft()
            if not future.done():
                future.set_result(None)
                count -= 1


class _Stopwatch:
    """Charges the time between its two marks; then tells the gate what the
    whole turn cost, ``block`` (the charging block's own time) included."""

    __slots__ = ("_gate", "_clock", "_began", "block")

    def __init__(self, gate: InputGate, clock: Callable[[], float]) -> None:
        self._gate = gate
        self._clock = clock
        self._began = 0.0
        self.block = 0.0

    def start(self) -> None:
        self._began = self._clock()

    def stop(self) -> None:
        scheduled = self._clock() - self._began
        self._gate.charge(scheduled)
        self._gate.learn_turn(self.block + scheduled)
