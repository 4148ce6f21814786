"""Stream states as a table: ``(state, input) -> next state``.

A pair missing from the table is illegal. What that means depends on who did
it: for our own sending it is the caller's mistake (`StreamClosedError`); for
what the peer sent it is a stream error (STREAM_ALREADY_CLOSED).
"""

from __future__ import annotations

import enum


class StreamState(enum.IntEnum):
    IDLE = 0
    RESERVED_LOCAL = 1  # a push promised by push_stream, its SYN_STREAM not yet sent
    OPEN = 2
    HALF_CLOSED_LOCAL = 3  # we sent FIN (or the stream is a push we receive)
    HALF_CLOSED_REMOTE = 4  # the peer sent FIN (or the stream is a push we send)
    CLOSED = 5


class StreamInput(enum.IntEnum):
    SEND_SYN_STREAM = 0
    RECV_SYN_STREAM = 1
    RESERVE_PUSH = 2
    SEND_PUSH = 3
    RECV_PUSH = 4
    SEND_HEADERS = 5
    RECV_HEADERS = 6
    SEND_DATA = 7
    RECV_DATA = 8
    SEND_END_STREAM = 9
    RECV_END_STREAM = 10
    SEND_RST_STREAM = 11
    RECV_RST_STREAM = 12


S = StreamState
I = StreamInput  # noqa: E741

TRANSITIONS: dict[tuple[StreamState, StreamInput], StreamState] = {
    (S.IDLE, I.SEND_SYN_STREAM): S.OPEN,
    (S.IDLE, I.RECV_SYN_STREAM): S.OPEN,
    (S.IDLE, I.RESERVE_PUSH): S.RESERVED_LOCAL,
    (S.IDLE, I.RECV_PUSH): S.HALF_CLOSED_LOCAL,
    (S.RESERVED_LOCAL, I.SEND_PUSH): S.HALF_CLOSED_REMOTE,
    (S.OPEN, I.SEND_HEADERS): S.OPEN,
    (S.OPEN, I.SEND_DATA): S.OPEN,
    (S.OPEN, I.RECV_HEADERS): S.OPEN,
    (S.OPEN, I.RECV_DATA): S.OPEN,
    (S.OPEN, I.SEND_END_STREAM): S.HALF_CLOSED_LOCAL,
    (S.OPEN, I.RECV_END_STREAM): S.HALF_CLOSED_REMOTE,
    (S.HALF_CLOSED_LOCAL, I.RECV_HEADERS): S.HALF_CLOSED_LOCAL,
    (S.HALF_CLOSED_LOCAL, I.RECV_DATA): S.HALF_CLOSED_LOCAL,
    (S.HALF_CLOSED_LOCAL, I.RECV_END_STREAM): S.CLOSED,
    (S.HALF_CLOSED_REMOTE, I.SEND_HEADERS): S.HALF_CLOSED_REMOTE,
    (S.HALF_CLOSED_REMOTE, I.SEND_DATA): S.HALF_CLOSED_REMOTE,
    (S.HALF_CLOSED_REMOTE, I.SEND_END_STREAM): S.CLOSED,
}
for _state in (S.RESERVED_LOCAL, S.OPEN, S.HALF_CLOSED_LOCAL, S.HALF_CLOSED_REMOTE):
    TRANSITIONS[_state, I.SEND_RST_STREAM] = S.CLOSED
    TRANSITIONS[_state, I.RECV_RST_STREAM] = S.CLOSED
del _state

# Which states accept sending or receiving at all, for the cheap checks of the
# hot path (send_data, DATA frames) that the table above also encodes.
CAN_SEND = frozenset(s for (s, i) in TRANSITIONS if i is I.SEND_DATA)
CAN_RECEIVE = frozenset(s for (s, i) in TRANSITIONS if i is I.RECV_DATA)
