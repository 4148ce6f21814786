"""The h2 core fuzzer (`tests.fuzz_h2_core`) at a small budget, and checks
that its harness drives real conversations and that its oracle sees a memo
answering for the wrong table.

The longer run is described in the docstring of `tests.fuzz_h2_core`::

    python -m tests.fuzz_h2_core --inputs 1000000 --jobs 2 --max-seconds 900 --seed 1
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import hpack
import pytest

from tests import fuzz_h2_core, fuzz_session
from tornado_spdy import http2, prefetch

pytestmark = pytest.mark.timeout(120)

# About 1,500 inputs/s on one core of the 2026-12 machine.
BUDGET_INPUTS = 6000
SEED = 20261


@pytest.mark.parametrize("side", fuzz_h2_core.ALL_SIDES)
def test_corpus_replays_cleanly(side: str) -> None:
    """Every recorded conversation, unmutated, is received without a session
    error, core and twin alike."""
    recordings = fuzz_session.build_h2_corpus()[side]
    assert len(recordings) == len(fuzz_session.H2_SCENARIOS)
    for rec in recordings:
        case = fuzz_h2_core.Case(side, "default", rec.data, rec.cuts, "corpus")
        outcome, failure, _ = fuzz_h2_core.run_checked(case)
        assert failure is None, (rec.name, failure and failure.detail)
        assert outcome is not None and not outcome.protocol_error, rec.name
        assert outcome.events > 0


def test_budget_run_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    reached = _count_memo_answers(monkeypatch)
    stats = fuzz_h2_core.run(BUDGET_INPUTS, SEED)
    assert stats.total == BUDGET_INPUTS
    assert set(stats.executed) == {("h2", "server"), ("h2", "client")}
    assert stats.failing_inputs == 0, stats.report()
    # The inputs reach both ends: some sessions break, most of some do not.
    for combo in stats.executed:
        assert 0 < stats.protocol_errors[combo] < stats.executed[combo]
    # ... and the memos answer, else their twin compares nothing.
    assert reached["decoded"] > 100 and reached["encoded"] > 100, reached
    assert reached["checked"] > 50, reached


def _count_memo_answers(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the answers the memos give: a decoded block, an encoded list,
    a request block already checked."""
    reached: Counter[str] = Counter()
    lookup = http2._Memo.lookup

    def counted_lookup(self: http2._Memo, state: Any, key: Any) -> Any:
        found = lookup(self, state, key)
        if found is not None:
            reached["decoded" if isinstance(key, bytes) else "encoded"] += 1
        return found

    checked = http2._MemoDecoder.checked

    def counted_checked(self: http2._MemoDecoder, data: bytes) -> bool:
        answer = checked(self, data)
        reached["checked"] += answer
        return answer

    monkeypatch.setattr(http2._Memo, "lookup", counted_lookup)
    monkeypatch.setattr(http2._MemoDecoder, "checked", counted_checked)
    return reached


def _frame(stream_id: int, block: bytes) -> bytes:
    return fuzz_session.h2_frame(1, 0x5, stream_id, block)  # END_HEADERS|END_STREAM


def _reindexed_request() -> bytes:
    """A client's input in which one block, all references to the dynamic
    table, is sent twice, and means another request the second time: the
    table changed in between."""
    encoder = hpack.Encoder()
    authority = hpack.NeverIndexedHeaderTuple(b":authority", b"x")  # not in the table
    request = [(b":method", b"GET"), (b":scheme", b"https"), authority]
    first = encoder.encode([*request, (b":path", b"/a")], huffman=False)
    # Now [62] is ":path /a".
    references = encoder.encode(request, huffman=False) + bytes((0x80 | 62,))
    second = encoder.encode([*request, (b":path", b"/b")], huffman=False)
    # Now [62] is ":path /b": the same references name /b.
    return b"".join(
        (
            fuzz_session.H2_PREFACE,
            fuzz_session.h2_frame(4, 0, 0, b""),
            _frame(1, first),
            _frame(3, references),
            _frame(5, second),
            _frame(7, references),
        )
    )


def test_a_memo_answering_for_another_table_is_caught() -> None:
    case = fuzz_h2_core.Case("server", "default", _reindexed_request())
    outcome, failure, _ = fuzz_h2_core.run_checked(case)
    assert failure is None and outcome is not None and outcome.events >= 4

    class StaleMemo(fuzz_h2_core.Pair):
        """The core's decoder memo no longer sees its table change."""

        def __init__(self, case: fuzz_h2_core.Case):
            super().__init__(case)
            self.core.decoder._state = lambda: (0, 0, 0)  # type: ignore[method-assign]

    _, failure, _ = fuzz_h2_core.run_checked(case, StaleMemo)
    assert failure is not None and failure.kind == "twin-differs", failure
    assert failure.signature == "twin-differs | receive_data | RequestReceived"
    core, twin = failure.detail.split(" / twin ")
    assert "b'/a'" in core and "b'/b'" not in core, core
    assert "b'/b'" in twin and "b'/a'" not in twin, twin


def test_a_skipped_check_is_caught() -> None:
    """A request block h2 would refuse, accepted because a memo claimed h2
    had checked it, is a difference between core and twin."""
    block = hpack.Encoder().encode([(b":method", b"GET")], huffman=False)  # no :path
    data = b"".join(
        (fuzz_session.H2_PREFACE, fuzz_session.h2_frame(4, 0, 0, b""), _frame(1, block))
    )
    case = fuzz_h2_core.Case("server", "default", data)
    outcome, failure, _ = fuzz_h2_core.run_checked(case)
    assert failure is None and outcome is not None

    class Credulous(fuzz_h2_core.Pair):
        def __init__(self, case: fuzz_h2_core.Case):
            super().__init__(case)
            self.core.decoder.checked = lambda data: True  # type: ignore[method-assign]

    _, failure, _ = fuzz_h2_core.run_checked(case, Credulous)
    assert failure is not None and failure.kind == "twin-differs", failure


def _huffman_request(cuts: tuple[int, ...]) -> fuzz_h2_core.Case:
    """A client's input: a request with a Huffman-coded 300-character
    header, cut where ``cuts`` say."""
    field = (b"x-long", b"long value " * 30)
    block = hpack.Encoder().encode([*REQUEST_FIELDS, field], huffman=True)
    data = b"".join(
        (fuzz_session.H2_PREFACE, fuzz_session.h2_frame(4, 0, 0, b""), _frame(1, block))
    )
    return fuzz_h2_core.Case("server", "default", data, cuts)


REQUEST_FIELDS = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"https"),
    (b":authority", b"a"),
]


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "in-pieces"])
def test_a_string_decoded_otherwise_than_by_hpack_is_caught(
    whole: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The twin decodes Huffman with hpack's own function: a fault in ours
    (whole strings) or in the walk's (strings of a block in pieces) is a
    difference between core and twin."""
    cuts = () if whole else tuple(range(40, 400, 37))
    case = _huffman_request(cuts)
    outcome, failure, _ = fuzz_h2_core.run_checked(case)
    assert failure is None and outcome is not None

    class Lossy(prefetch._HuffmanString):
        def result(self) -> Any:
            decoded = super().result()
            return decoded[:-1] if isinstance(decoded, bytes) else decoded

    monkeypatch.setattr(prefetch, "_HuffmanString", Lossy)
    _, failure, _ = fuzz_h2_core.run_checked(case)
    assert failure is not None and failure.kind == "twin-differs", failure
