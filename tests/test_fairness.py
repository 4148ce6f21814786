"""`tornado_spdy.fairness.InputGate`: how many slices of costly input go
through in each IOLoop pass, on a clock the tests move by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from tornado_spdy.fairness import BUSY_PASSES, BUSY_SHARE, InputGate

pytestmark = pytest.mark.timeout(30)

SHARE = 1e-4  # seconds one slice is expected to cost (on the fake clock)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Passes:
    """Counts IOLoop passes; ``work`` runs in each (before the gate's)."""

    def __init__(self, work: Callable[[], None] = lambda: None) -> None:
        self.count = 0
        self.work = work
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self.work()
        if self._running:
            self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._running = False


async def sender(
    gate: InputGate,
    clock: FakeClock,
    passes: Passes,
    name: str,
    costs: list[float],
    log: list[tuple[int, str]],
    deferred: float = 0.0,
) -> None:
    """A connection with ``len(costs)`` slices to hand its core, each costing
    what ``costs`` says, charged as `InputGate.charging` charges: that part
    ``deferred`` of it in a callback the slice schedules for the next pass
    (as a started request's handler runs), the rest at once."""
    loop = asyncio.get_running_loop()
    for cost in costs:
        await gate.turn(SHARE)
        log.append((passes.count, name))
        with gate.charging():
            clock.now += cost * (1 - deferred)
            loop.call_soon(advance, clock, cost * deferred)


def advance(clock: FakeClock, seconds: float) -> None:
    clock.now += seconds


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 10))


def per_pass(log: list[tuple[int, str]]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for when, _ in log:
        counts[when] = counts.get(when, 0) + 1
    return counts


def test_one_share_of_slices_a_pass_however_many_send():
    """Five connections with ten slices of one share each: one slice goes
    through per pass in all, round-robin, rather than one per connection."""
    log: list[tuple[int, str]] = []

    async def main() -> None:
        clock = FakeClock()
        gate = InputGate(asyncio.get_running_loop(), clock)
        passes = Passes()
        names = "abcde"
        await asyncio.gather(
            *(sender(gate, clock, passes, n, [SHARE] * 10, log) for n in names)
        )
        passes.stop()
        assert max(per_pass(log).values()) == 1
        assert [name for _, name in log[:10]] == list(names * 2)

    run(main)
    assert len(log) == 50


def test_a_costly_slice_is_paid_for_in_the_passes_after_it():
    """A slice that took six shares holds every sender back until the
    passes after it have paid for it: five passes let nothing through."""
    log: list[tuple[int, str]] = []

    async def main() -> None:
        clock = FakeClock()
        gate = InputGate(asyncio.get_running_loop(), clock)
        passes = Passes()
        await asyncio.gather(
            sender(gate, clock, passes, "costly", [6 * SHARE, SHARE], log),
            sender(gate, clock, passes, "other", [SHARE, SHARE], log),
        )
        passes.stop()

    run(main)
    (costly_at, _), (other_at, _) = log[0], log[1]
    assert log[0][1] == "costly" and log[1][1] == "other"
    assert other_at - costly_at == 6


def settled_per_pass(slices: list[float], deferred: float = 0.0) -> list[int]:
    """Six connections each with ``slices`` (their costs, ``deferred`` of each
    in the next pass) on a server whose light work takes four shares a pass:
    the slices let through in each pass once the gate's averages have
    settled."""
    log: list[tuple[int, str]] = []

    async def main() -> None:
        clock = FakeClock()
        gate = InputGate(asyncio.get_running_loop(), clock)

        def light_work() -> None:
            clock.now += 4 * SHARE

        passes = Passes(light_work)
        await asyncio.gather(
            *(sender(gate, clock, passes, n, slices, log, deferred) for n in "abcdef")
        )
        passes.stop()

    run(main)
    counts = per_pass(log)
    return [counts.get(p, 0) for p in range(3 * BUSY_PASSES, max(counts))]


def test_a_pass_busy_with_other_work_raises_the_allowance():
    """When the rest of each pass takes four shares (a server busy with
    light work), the gate comes to let about four times `BUSY_SHARE` slices
    through a pass: costly input keeps about a quarter of the server."""
    settled = settled_per_pass([SHARE] * 40)
    expected = 4 * BUSY_SHARE
    assert 0.75 * expected <= sum(settled) / len(settled) <= 1.1 * expected, settled


@pytest.mark.parametrize("deferred", [0.0, 0.875, 0.975])
def test_slices_that_cost_more_than_a_share_go_one_at_a_time(deferred):
    """Turns that each cost four shares (work that cannot be cut smaller: a
    new session built, a request started) on the same busy server, whose
    allowance is then two shares: once the gate has learnt what such a turn
    costs, it lets one through a pass, not as many as the allowance holds
    shares, and so never puts two in one pass. Also when most of the cost
    comes in the next pass (a started request's handler), and the gate is
    in debt by then."""
    settled = settled_per_pass([4 * SHARE] * 20, deferred)
    assert max(settled) == 1, settled


def test_one_honest_request_does_not_open_the_gate():
    """A single pass of light work (one honest request) raises the next
    passes' allowance by a sixteenth of it only."""
    log: list[tuple[int, str]] = []

    async def main() -> None:
        clock = FakeClock()
        gate = InputGate(asyncio.get_running_loop(), clock)

        def one_request() -> None:
            if passes.count == 5:
                clock.now += 4 * SHARE

        passes = Passes(one_request)
        await asyncio.gather(
            *(sender(gate, clock, passes, n, [SHARE] * 5, log) for n in "abcd")
        )
        passes.stop()

    run(main)
    assert max(per_pass(log).values()) == 1


def test_no_share_lets_one_slice_a_pass():
    """``fair_share=0``: no budget to count in, one slice per pass."""
    log: list[tuple[int, str]] = []

    async def main() -> None:
        clock = FakeClock()
        gate = InputGate(asyncio.get_running_loop(), clock)
        passes = Passes()

        async def free(name: str) -> None:
            for _ in range(5):
                await gate.turn(0.0)
                log.append((passes.count, name))
                gate.charge(SHARE)

        await asyncio.gather(free("a"), free("b"))
        passes.stop()

    run(main)
    assert len(log) == 10
    assert max(per_pass(log).values()) == 1


@pytest.mark.parametrize("idle", [0.0, 10 * SHARE])
def test_time_with_nobody_waiting_pays_the_debt(idle):
    """A debt of ten shares left when nobody waits: the next slice to ask
    waits about ten passes, unless as much time has gone by meanwhile; then
    it goes through on the first pass (and runs in the second)."""

    async def main() -> int:
        clock = FakeClock()
        gate = InputGate(asyncio.get_running_loop(), clock)
        await gate.turn(SHARE)
        clock.now += 10 * SHARE
        gate.charge(10 * SHARE)
        clock.now += idle
        passes = Passes()
        await gate.turn(SHARE)
        passes.stop()
        return passes.count

    count = asyncio.run(asyncio.wait_for(main(), 10))
    assert count == 2 if idle else count >= 9


def test_charging_counts_what_the_block_schedules_for_the_next_pass():
    """`InputGate.charging` charges the block and the callbacks it put in
    the ready queue (a started handler's first step), not the rest of the
    next pass."""

    async def main() -> None:
        clock = FakeClock()
        gate = InputGate(asyncio.get_running_loop(), clock)
        loop = asyncio.get_running_loop()

        def handler_step() -> None:
            clock.now += 3 * SHARE

        def somebody_else() -> None:
            clock.now += 100 * SHARE

        await gate.turn(SHARE)
        loop.call_soon(somebody_else)  # queued before the block
        with gate.charging():
            clock.now += 2 * SHARE
            loop.call_soon(handler_step)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert gate._spent == pytest.approx(5 * SHARE)

    run(main)
