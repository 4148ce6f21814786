"""Frame traces of a session's bytes, for ``python -m tornado_spdy fetch -v``.

`frame_tracer` returns the `Session.trace` callback for a session: it parses
each direction's bytes into frames (SPDY with our parser, h2 with hyperframe)
and prints one line per frame, as ``nghttp -v`` does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from tornado_spdy.session import Session
from tornado_spdy.spdy import VERSIONS
from tornado_spdy.spdy.frames import FrameParser

#: The bytes an h2 client sends first (RFC 9113 section 3.4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame_tracer(
    out: TextIO = sys.stderr,
) -> Callable[[Session], Callable[[str, bytes], None]]:
    """A factory of trace callbacks printing to ``out``."""

    def for_session(session: Session) -> Callable[[str, bytes], None]:
        describe = {
            direction: _h2_describer()
            if session.framing == "h2"
            else _spdy_describer(session.framing)
            for direction in ("send", "recv")
        }

        def trace(direction: str, data: bytes) -> None:
            for line in describe[direction](data):
                print(f"[{session.framing}] {direction} {line}", file=out)

        return trace

    return for_session


def _spdy_describer(framing: str) -> Callable[[bytes], list[str]]:
    parser = FrameParser(VERSIONS[framing])

    def describe(data: bytes) -> list[str]:
        return [_describe_spdy(frame) for frame in parser.feed(data)]

    return describe


def _describe_spdy(frame: Any) -> str:
    text = repr(frame)
    for field in ("header_block", "payload"):
        value = getattr(frame, field, None)
        if value is not None:
            text = text.replace(repr(bytes(value)), f"<{len(value)} bytes>")
    return text


def _h2_describer() -> Callable[[bytes], list[str]]:
    from hyperframe.frame import Frame

    buffer = bytearray()
    preface_checked = False

    def describe(data: bytes) -> list[str]:
        nonlocal preface_checked
        buffer.extend(data)
        lines = []
        if not preface_checked and len(buffer) >= len(H2_PREFACE):
            preface_checked = True
            if buffer.startswith(H2_PREFACE):
                del buffer[: len(H2_PREFACE)]
                lines.append("connection preface")
        while preface_checked and len(buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
            if len(buffer) < 9 + length:
                break
            frame.parse_body(memoryview(bytes(buffer[9 : 9 + length])))
            del buffer[: 9 + length]
            lines.append(
                f"{type(frame).__name__}(stream_id={frame.stream_id}, "
                f"flags={sorted(frame.flags)}, length={length})"
            )
        return lines

    return describe
