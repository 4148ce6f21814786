"""The core fuzzer (`tests.fuzz_core`) at a small budget, and checks that its
corpus and its failure detection work.

The longer run, and its figures, are described in the docstring of
`tests.fuzz_core`::

    python -m tests.fuzz_core --inputs 1000000 --jobs 2 --max-seconds 900 --seed 1
"""

from __future__ import annotations

import pytest

from tests import fuzz_core
from tornado_spdy.spdy import SPDYConnection
from tornado_spdy.spdy.errors import ProtocolError

# About 20-30 s on the 2-core CI machines (500 to 800 inputs/s on one core).
BUDGET_INPUTS = 15000
SEED = 20241


@pytest.fixture(scope="module", params=fuzz_core.ALL_VERSIONS)
def corpus(request: pytest.FixtureRequest) -> dict[str, list[fuzz_core.Session]]:
    return fuzz_core.build_corpus(request.param)


def _frame_types(case: fuzz_core.Case) -> set[str]:
    names = {1: "SYN_STREAM", 2: "SYN_REPLY", 3: "RST_STREAM", 4: "SETTINGS", 6: "PING"}
    names.update({7: "GOAWAY", 8: "HEADERS", 9: "WINDOW_UPDATE"})
    found = set()
    for start, _ in fuzz_core.walk_frames(case.data)[0]:
        first = int.from_bytes(case.data[start : start + 4], "big")
        found.add(names.get(first & 0xFFFF, "?") if first >> 31 else "DATA")
    return found


def test_corpus_replays_cleanly(corpus: dict[str, list[fuzz_core.Session]]) -> None:
    """Every recorded session, replayed unmutated, is a valid session."""
    for side, sessions in corpus.items():
        assert len(sessions) == len(fuzz_core.SCENARIOS)
        for session in sessions:
            case = fuzz_core.session_case(session)
            outcome, failure, _ = fuzz_core.run_checked(case)
            assert failure is None, (side, session.name, failure and failure.tb)
            assert outcome is not None and not outcome.protocol_error
            assert outcome.events > 0


def test_corpus_covers_every_frame_type(
    corpus: dict[str, list[fuzz_core.Session]],
) -> None:
    wanted = {
        "SETTINGS",
        "DATA",
        "HEADERS",
        "PING",
        "WINDOW_UPDATE",
        "RST_STREAM",
        "GOAWAY",
    }
    for side, sessions in corpus.items():
        found: set[str] = set()
        for session in sessions:
            found |= _frame_types(fuzz_core.session_case(session))
        extra = {"SYN_STREAM"} if side == "server" else {"SYN_STREAM", "SYN_REPLY"}
        assert wanted | extra <= found, (side, sorted(wanted | extra - found))


def _a_session_case(version: str = "spdy/3.1", side: str = "server") -> fuzz_core.Case:
    sessions = fuzz_core.build_corpus(version)[side]
    return fuzz_core.session_case(next(s for s in sessions if s.name == "get"))


def test_oracle_reports_unexpected_exceptions() -> None:
    case = _a_session_case()

    class Broken(SPDYConnection):
        def _on_ping(self, frame, events):  # type: ignore[no-untyped-def]
            raise KeyError("boom")

        _handlers = {**SPDYConnection._handlers}

    Broken._handlers[next(k for k in Broken._handlers if k.__name__ == "PingFrame")] = (
        Broken._on_ping
    )

    def factory(case: fuzz_core.Case) -> SPDYConnection:
        real = fuzz_core._make_connection(case)
        return Broken(real.config)

    _, failure, _ = fuzz_core.run_checked(case, factory)
    assert failure is not None and failure.kind == "receive-exception"
    assert "KeyError" in failure.signature


def test_oracle_reports_a_missing_goaway() -> None:
    case = fuzz_core.Case(
        "spdy/3", "server", "default", b"\x80\x02\x00\x01" + bytes(12)
    )

    class Silent(SPDYConnection):
        def close_connection(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            pass

    def factory(case: fuzz_core.Case) -> SPDYConnection:
        return Silent(fuzz_core._make_connection(case).config)

    outcome, failure, _ = fuzz_core.run_checked(case)
    assert failure is None and outcome is not None and outcome.protocol_error
    _, failure, _ = fuzz_core.run_checked(case, factory)
    assert failure is not None and failure.kind == "no-goaway"


def test_oracle_reports_api_exceptions() -> None:
    case = _a_session_case("spdy/2", "client")

    class Broken(SPDYConnection):
        def ping(self, opaque_data=None):  # type: ignore[no-untyped-def]
            raise AttributeError("oops")

    def factory(case: fuzz_core.Case) -> SPDYConnection:
        return Broken(fuzz_core._make_connection(case).config)

    _, failure, _ = fuzz_core.run_checked(case, factory)
    assert failure is not None and failure.kind == "api-exception"


def test_oracle_reports_a_hang() -> None:
    case = _a_session_case()

    class Stuck(SPDYConnection):
        def _on_ping(self, frame, events):  # type: ignore[no-untyped-def]
            while True:
                pass

        _handlers = {**SPDYConnection._handlers}

    Stuck._handlers[next(k for k in Stuck._handlers if k.__name__ == "PingFrame")] = (
        Stuck._on_ping
    )

    def factory(case: fuzz_core.Case) -> SPDYConnection:
        return Stuck(fuzz_core._make_connection(case).config)

    _, failure, _ = fuzz_core.run_checked(case, factory)
    assert failure is not None and failure.kind == "hang"


def test_case_round_trips_through_repr() -> None:
    case = _a_session_case()
    assert fuzz_core.Case.from_repr(case.to_repr()) == case


def test_protocol_error_is_the_documented_session_error() -> None:
    """The premise of the oracle: garbage gives ProtocolError and a GOAWAY."""
    conn = fuzz_core._make_connection(
        fuzz_core.Case("spdy/3", "server", "default", b"")
    )
    conn.initiate_connection()
    conn.data_to_send()
    with pytest.raises(ProtocolError):
        conn.receive_data(b"\x80\x07\x00\x01" + bytes(12))
    assert fuzz_core.check_output(conn.data_to_send(), 3) == 1


def test_fuzz_small_budget(tmp_path: object) -> None:
    """Random, mutated and structured inputs for every version and side: no
    input may fail. Reproducers of failures land in ``tmp_path``."""
    stats = fuzz_core.run(
        BUDGET_INPUTS, seed=SEED, out_dir=str(tmp_path), minimize_budget=5.0
    )
    report = stats.report()
    print(report)
    assert stats.total == BUDGET_INPUTS
    assert len(stats.executed) == len(fuzz_core.ALL_VERSIONS) * len(fuzz_core.ALL_SIDES)
    assert stats.failing_inputs == 0, report
