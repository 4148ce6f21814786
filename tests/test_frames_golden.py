"""Golden bytes for every SPDY/2, SPDY/3 and SPDY/3.1 frame, written by hand from
the drafts, never from our own output.

Each expected byte string below was typed field by field from the frame
diagrams of the drafts (one comment per field); the tests check that our
frames serialize to exactly those bytes and that the parser turns those bytes
back into exactly that frame, whole and one byte at a time.

Sources (the text of each draft was read, not our code):

* SPDY/2: "SPDY Protocol - Draft 2",
  https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft2
  (the chromium.org site source, site/spdy/spdy-protocol/spdy-protocol-draft2/index.md).
* SPDY/3: "SPDY Protocol - Draft 3",
  https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3
  and draft-mbelshe-httpbis-spdy-00 as kept in
  github.com/mbelshe/SPDY-Specification (gh-pages, draft-mbelshe-spdy-00.xml),
  whose section 2.6.10.1 prints the dictionary as a C array.
* SPDY/3.1: "SPDY Protocol - Draft 3.1",
  https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3-1
  ("SPDY version 3.1, which is represented as version 3" on the wire).
* Interop facts the drafts do not state: /work/shared/INTEROP.md.

Published dictionary ids (zlib DICTID = adler32 of the preset dictionary). The
drafts print no checksum and Chromium computes it at run time
(``CalculateDictionaryId`` in net/spdy/spdy_framer.cc), so the values come from
third parties that publish them:

* SPDY/2 ``0xdfa251b2``: the DICTID of the header block of a SYN_STREAM
  "taken with wireshark from a live chromium request" in Jetty's SPDY parser
  tests (jetty/jetty.project, spdy-core ``ParserTest`` and
  ``LiveChromiumRequestParserTest``: the block starts ``38 ea df a2 51 b2``).
  It is the adler32 of the 907 bytes *including* the trailing NUL.
* SPDY/3 ``0xe3c6a7c2``: asserted by Protocol::SPDY's test suite (CPAN,
  "adler32 CRC is correct for SPDY3 dictionary"), and the DICTID of the SPDY/3
  header blocks in spdy-transport's parser tests (indutny/spdy-transport,
  test/spdy/parser-test.js: blocks start ``78 f9 e3 c6 a7 c2`` and
  ``38 30 e3 c6 a7 c2``).
"""

from __future__ import annotations

import struct
import zlib

import pytest

from tornado_spdy.spdy.compression import HeaderCodec
from tornado_spdy.spdy.errors import (
    FrameSizeError,
    HeaderBlockError,
    ProtocolError,
    StatusCode,
    StreamError,
)
from tornado_spdy.spdy.frames import (
    FLAG_FIN,
    FLAG_SETTINGS_CLEAR,
    FLAG_UNIDIRECTIONAL,
    SETTINGS_FLAG_PERSIST_VALUE,
    SETTINGS_FLAG_PERSISTED,
    CredentialFrame,
    DataFrame,
    Frame,
    FrameParser,
    GoAwayFrame,
    HeadersFrame,
    NoopFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    SynReplyFrame,
    SynStreamFrame,
    UnknownFrame,
    WindowUpdateFrame,
)
from tornado_spdy.spdy.profile import VersionProfile
from tornado_spdy.spdy.v2 import SPDY2
from tornado_spdy.spdy.v3 import SPDY3, SPDY31


def wire(text: str) -> bytes:
    """Hex digits, whitespace ignored, ``#`` starts a comment to end of line."""
    return bytes.fromhex("".join(line.split("#", 1)[0] for line in text.splitlines()))


# An opaque (already compressed) header block: frames carry it untouched.
BLOCK = bytes.fromhex("deadbeef")

# ---------------------------------------------------------------------------
# Constants the drafts define, checked against our names.


def test_flag_values_are_the_drafts():
    # Draft 2 "Data frames" / "SYN_STREAM", draft 3 sections 2.2.2 and 2.6.1.
    assert FLAG_FIN == 0x01
    assert FLAG_UNIDIRECTIONAL == 0x02
    # Draft 2 "SETTINGS": FLAG_SETTINGS_CLEAR_PREVIOUSLY_PERSISTED_SETTINGS (0x1);
    # draft 3 section 2.6.4: FLAG_SETTINGS_CLEAR_SETTINGS (0x1).
    assert FLAG_SETTINGS_CLEAR == 0x01
    assert SETTINGS_FLAG_PERSIST_VALUE == 0x01
    assert SETTINGS_FLAG_PERSISTED == 0x02


def test_rst_stream_status_codes_are_the_drafts():
    # Draft 2 "RST_STREAM" defines 1..7; draft 3 section 2.6.3 adds 8..11
    # (draft 3.1 marks 10 "deprecated/unused").
    assert [(c.name, c.value) for c in StatusCode] == [
        ("PROTOCOL_ERROR", 1),
        ("INVALID_STREAM", 2),
        ("REFUSED_STREAM", 3),
        ("UNSUPPORTED_VERSION", 4),
        ("CANCEL", 5),
        ("INTERNAL_ERROR", 6),
        ("FLOW_CONTROL_ERROR", 7),
        ("STREAM_IN_USE", 8),
        ("STREAM_ALREADY_CLOSED", 9),
        ("INVALID_CREDENTIALS", 10),
        ("FRAME_TOO_LARGE", 11),
    ]


# ---------------------------------------------------------------------------
# SPDY/2 frames (draft 2). Control frame header: |1| version 2 | type |,
# | flags (8) | length (24) |, all integers in network byte order.

SPDY2_FRAMES: list[tuple[str, Frame, bytes]] = [
    (
        "syn_stream",
        SynStreamFrame(1, 0, priority=1, header_block=BLOCK, flags=FLAG_FIN),
        wire(
            """
            80 02        # C=1 | version 2
            00 01        # type 1 = SYN_STREAM
            01           # flags: FLAG_FIN
            00 00 0e     # length 14 = 10 fixed bytes + 4-byte header block
            00 00 00 01  # X | Stream-ID 1
            00 00 00 00  # X | Associated-To-Stream-ID 0
            40 00        # Pri 1 (2 bits: 01) | 14 unused bits
            de ad be ef  # Name/Value header block (opaque here)
            """
        ),
    ),
    (
        "syn_stream_push",
        SynStreamFrame(2, 1, priority=3, header_block=BLOCK, flags=FLAG_UNIDIRECTIONAL),
        wire(
            """
            80 02 00 01  # C=1 | version 2 | type 1 = SYN_STREAM
            02           # flags: FLAG_UNIDIRECTIONAL
            00 00 0e     # length 14
            00 00 00 02  # X | Stream-ID 2 (server streams are even)
            00 00 00 01  # X | Associated-To-Stream-ID 1
            c0 00        # Pri 3 (2 bits: 11) | 14 unused bits
            de ad be ef  # header block
            """
        ),
    ),
    (
        "syn_reply",
        SynReplyFrame(1, BLOCK),
        wire(
            """
            80 02 00 02  # C=1 | version 2 | type 2 = SYN_REPLY
            00           # flags: none
            00 00 0a     # length 10 = 4 (stream id) + 2 (unused) + 4 (block)
            00 00 00 01  # X | Stream-ID 1
            00 00        # Unused (16 bits), SPDY/2 only
            de ad be ef  # header block
            """
        ),
    ),
    (
        "syn_reply_fin",
        SynReplyFrame(7, BLOCK, FLAG_FIN),
        wire(
            """
            80 02 00 02  # SYN_REPLY
            01           # flags: FLAG_FIN
            00 00 0a     # length 10
            00 00 00 07  # Stream-ID 7
            00 00        # Unused
            de ad be ef  # header block
            """
        ),
    ),
    (
        "rst_stream",
        RstStreamFrame(1, StatusCode.CANCEL),
        wire(
            """
            80 02 00 03  # C=1 | version 2 | type 3 = RST_STREAM
            00           # flags: always 0
            00 00 08     # length: always 8
            00 00 00 01  # X | Stream-ID 1
            00 00 00 05  # Status code 5 = CANCEL
            """
        ),
    ),
    (
        "rst_stream_flow_control",
        RstStreamFrame(3, StatusCode.FLOW_CONTROL_ERROR),
        wire(
            """
            80 02 00 03 00 00 00 08  # RST_STREAM, flags 0, length 8
            00 00 00 03              # Stream-ID 3
            00 00 00 07              # Status code 7 = FLOW_CONTROL_ERROR
            """
        ),
    ),
    (
        "settings",
        SettingsFrame(
            [
                (4, 100, SETTINGS_FLAG_PERSIST_VALUE),
                (7, 0x100000, SETTINGS_FLAG_PERSISTED),
            ],
            flags=FLAG_SETTINGS_CLEAR,
        ),
        wire(
            """
            80 02 00 04  # C=1 | version 2 | type 4 = SETTINGS
            01           # flags: FLAG_SETTINGS_CLEAR_PREVIOUSLY_PERSISTED_SETTINGS
            00 00 14     # length 20 = 4 + 2 entries * 8
            00 00 00 02  # Number of entries: 2
            04 00 00     # ID (24 bits, LITTLE-endian): 4 = MAX_CONCURRENT_STREAMS
            01           # ID_Flags: FLAG_SETTINGS_PERSIST_VALUE
            00 00 00 64  # Value (network order): 100
            07 00 00     # ID (little-endian): 7 = INITIAL_WINDOW_SIZE
            02           # ID_Flags: FLAG_SETTINGS_PERSISTED
            00 10 00 00  # Value: 1 MiB
            """
        ),
    ),
    (
        "settings_empty",
        SettingsFrame([]),
        wire(
            """
            80 02 00 04  # SETTINGS
            00 00 00 04  # flags 0 | length 4
            00 00 00 00  # Number of entries: 0
            """
        ),
    ),
    (
        "noop",
        NoopFrame(),
        wire(
            """
            80 02 00 05  # C=1 | version 2 | type 5 = NOOP
            00           # 0 (flags)
            00 00 00     # 0 (length)
            """
        ),
    ),
    (
        "ping",
        PingFrame(1),
        wire(
            """
            80 02 00 06  # C=1 | version 2 | type 6 = PING
            00           # 0 (flags)
            00 00 04     # 4 (length)
            00 00 00 01  # 32-bit ID 1 (client pings are odd)
            """
        ),
    ),
    (
        # Draft 2 prints GOAWAY with "4 (length)" and no status; we send the
        # 8-byte form with a status, as SPDY/3 does and spdy-transport requires
        # (INTEROP.md: a 4-byte SPDY/2 GOAWAY makes it fail with "GOAWAY OOB").
        # The 4-byte form is still accepted (SPDY2_RECEIVED below).
        "goaway_sent_8_bytes",
        GoAwayFrame(5, 0),
        wire(
            """
            80 02 00 07  # C=1 | version 2 | type 7 = GOAWAY
            00           # 0 (flags)
            00 00 08     # length 8 (draft 2: 4; see above)
            00 00 00 05  # X | Last-good-stream-ID 5
            00 00 00 00  # Status 0 = OK (the SPDY/3 field)
            """
        ),
    ),
    (
        "headers",
        HeadersFrame(1, BLOCK),
        wire(
            """
            80 02 00 08  # C=1 | version 2 | type 8 = HEADERS
            00           # flags: none
            00 00 0a     # length 10 = 4 + 2 + 4
            00 00 00 01  # X | Stream-ID 1
            00 00        # Unused (16 bits)
            de ad be ef  # header block
            """
        ),
    ),
    (
        # The final draft 2 page withdrew WINDOW_UPDATE ("never implemented";
        # "look at DRAFT 3"), but spdy-transport uses it over SPDY/2 too
        # (INTEROP.md); the layout is draft 3's section 2.6.8.
        "window_update",
        WindowUpdateFrame(1, 0x10000),
        wire(
            """
            80 02 00 09  # C=1 | version 2 | type 9 = WINDOW_UPDATE
            00           # 0 (flags)
            00 00 08     # 8 (length)
            00 00 00 01  # X | Stream-ID 1
            00 01 00 00  # X | Delta-Window-Size 65536
            """
        ),
    ),
    (
        "data_fin",
        DataFrame(1, b"hello", FLAG_FIN),
        wire(
            """
            00 00 00 01     # C=0 | Stream-ID 1
            01              # flags: FLAG_FIN
            00 00 05        # length 5
            68 65 6c 6c 6f  # "hello"
            """
        ),
    ),
    (
        "data_empty_fin",
        DataFrame(5, b"", FLAG_FIN),
        wire(
            """
            00 00 00 05  # C=0 | Stream-ID 5
            01 00 00 00  # flags FLAG_FIN | length 0 ("valid to have a zero-length data frame")
            """
        ),
    ),
]

# Bytes we accept but never send this way.
SPDY2_RECEIVED: list[tuple[str, Frame, bytes]] = [
    (
        "goaway_4_bytes_as_draft_2",
        GoAwayFrame(5),
        wire(
            """
            80 02 00 07  # C=1 | version 2 | type 7 = GOAWAY
            00           # 0 (flags)
            00 00 04     # 4 (length), as draft 2 prints it
            00 00 00 05  # X | Last-good-stream-ID 5
            """
        ),
    ),
    (
        "goaway_8_bytes_with_status",
        GoAwayFrame(9, 1),
        wire(
            """
            80 02 00 07 00 00 00 08  # GOAWAY, flags 0, length 8
            00 00 00 09              # Last-good-stream-ID 9
            00 00 00 01              # Status 1 = PROTOCOL_ERROR
            """
        ),
    ),
    (
        # INTEROP.md: spdy-transport writes a 3-bit priority into the 2-bit
        # field; the 14 bits after Pri are unused and must be ignored.
        "syn_stream_3_bit_priority",
        SynStreamFrame(1, 0, priority=2, header_block=BLOCK),
        wire(
            """
            80 02 00 01 00 00 00 0e  # SYN_STREAM, flags 0, length 14
            00 00 00 01              # Stream-ID 1
            00 00 00 00              # Associated-To-Stream-ID 0
            a0 00                    # 101 00000...: Pri 2 (top 2 bits 10), rest unused
            de ad be ef              # header block
            """
        ),
    ),
    (
        "reserved_x_bits_ignored",
        RstStreamFrame(1, StatusCode.PROTOCOL_ERROR),
        wire(
            """
            80 02 00 03 00 00 00 08  # RST_STREAM, flags 0, length 8
            80 00 00 01              # X=1 (reserved) | Stream-ID 1
            00 00 00 01              # Status code 1 = PROTOCOL_ERROR
            """
        ),
    ),
    (
        "credential_is_not_spdy2",
        UnknownFrame(10, 0, b"\x00\x01"),
        wire(
            """
            80 02 00 0a  # C=1 | version 2 | type 10: no such SPDY/2 frame
            00 00 00 02  # flags 0 | length 2
            00 01        # payload kept as is
            """
        ),
    ),
]


# ---------------------------------------------------------------------------
# SPDY/3 frames (draft 3); SPDY/3.1 puts version 3 on the wire too.

_SPDY3_COMMON: list[tuple[str, Frame, bytes]] = [
    (
        "syn_stream",
        SynStreamFrame(1, 0, priority=0, header_block=BLOCK, flags=FLAG_FIN),
        wire(
            """
            80 03        # C=1 | version 3
            00 01        # type 1 = SYN_STREAM
            01           # flags: FLAG_FIN
            00 00 0e     # length 14 = 10 + 4-byte header block
            00 00 00 01  # X | Stream-ID 1
            00 00 00 00  # X | Associated-To-Stream-ID 0
            00           # Pri 0 (3 bits: 000, the highest) | 5 unused bits
            00           # Slot 0
            de ad be ef  # Name/Value header block (opaque here)
            """
        ),
    ),
    (
        "syn_stream_push",
        SynStreamFrame(2, 1, priority=7, header_block=BLOCK, flags=FLAG_UNIDIRECTIONAL),
        wire(
            """
            80 03 00 01  # C=1 | version 3 | type 1 = SYN_STREAM
            02           # flags: FLAG_UNIDIRECTIONAL
            00 00 0e     # length 14
            00 00 00 02  # X | Stream-ID 2
            00 00 00 01  # X | Associated-To-Stream-ID 1
            e0           # Pri 7 (111, the lowest) | 5 unused bits
            00           # Slot 0
            de ad be ef  # header block
            """
        ),
    ),
    (
        "syn_reply",
        SynReplyFrame(1, BLOCK, FLAG_FIN),
        wire(
            """
            80 03 00 02  # C=1 | version 3 | type 2 = SYN_REPLY
            01           # flags: FLAG_FIN
            00 00 08     # length 8 = 4 (stream id) + 4 (block): no unused field
            00 00 00 01  # X | Stream-ID 1
            de ad be ef  # header block
            """
        ),
    ),
    (
        "rst_stream",
        RstStreamFrame(3, StatusCode.FRAME_TOO_LARGE),
        wire(
            """
            80 03 00 03  # C=1 | version 3 | type 3 = RST_STREAM
            00           # flags: always 0
            00 00 08     # length: always 8
            00 00 00 03  # X | Stream-ID 3
            00 00 00 0b  # Status code 11 = FRAME_TOO_LARGE
            """
        ),
    ),
    (
        "rst_stream_stream_in_use",
        RstStreamFrame(1, StatusCode.STREAM_IN_USE),
        wire(
            """
            80 03 00 03 00 00 00 08  # RST_STREAM, flags 0, length 8
            00 00 00 01              # Stream-ID 1
            00 00 00 08              # Status code 8 = STREAM_IN_USE
            """
        ),
    ),
    (
        "settings",
        SettingsFrame(
            [
                (4, 100, SETTINGS_FLAG_PERSIST_VALUE),
                (7, 0x10000, 0),
                (8, 8, SETTINGS_FLAG_PERSISTED),
            ],
            flags=FLAG_SETTINGS_CLEAR,
        ),
        wire(
            """
            80 03 00 04  # C=1 | version 3 | type 4 = SETTINGS
            01           # flags: FLAG_SETTINGS_CLEAR_SETTINGS
            00 00 1c     # length 28 = 4 + 3 entries * 8
            00 00 00 03  # Number of entries: 3
            01           # Flags: FLAG_SETTINGS_PERSIST_VALUE
            00 00 04     # ID (24 bits, network order): 4 = MAX_CONCURRENT_STREAMS
            00 00 00 64  # Value: 100
            00           # Flags: none
            00 00 07     # ID 7 = INITIAL_WINDOW_SIZE
            00 01 00 00  # Value: 64 KiB
            02           # Flags: FLAG_SETTINGS_PERSISTED
            00 00 08     # ID 8 = CLIENT_CERTIFICATE_VECTOR_SIZE
            00 00 00 08  # Value: 8
            """
        ),
    ),
    (
        "ping",
        PingFrame(0xFFFFFFFE),
        wire(
            """
            80 03 00 06  # C=1 | version 3 | type 6 = PING
            00           # 0 (flags)
            00 00 04     # 4 (length)
            ff ff ff fe  # ID: unsigned 32 bits, even (server initiated)
            """
        ),
    ),
    (
        "goaway",
        GoAwayFrame(7, 2),
        wire(
            """
            80 03 00 07  # C=1 | version 3 | type 7 = GOAWAY
            00           # 0 (flags)
            00 00 08     # 8 (length)
            00 00 00 07  # X | Last-good-stream-ID 7
            00 00 00 02  # Status code 2 = INTERNAL_ERROR
            """
        ),
    ),
    (
        "headers",
        HeadersFrame(3, BLOCK, FLAG_FIN),
        wire(
            """
            80 03 00 08  # C=1 | version 3 | type 8 = HEADERS
            01           # flags: FLAG_FIN
            00 00 08     # length 8 = 4 + 4: no unused field in SPDY/3
            00 00 00 03  # X | Stream-ID 3
            de ad be ef  # header block
            """
        ),
    ),
    (
        "window_update",
        WindowUpdateFrame(1, 0x7FFFFFFF),
        wire(
            """
            80 03 00 09  # C=1 | version 3 | type 9 = WINDOW_UPDATE
            00           # 0 (flags)
            00 00 08     # 8 (length)
            00 00 00 01  # X | Stream-ID 1
            7f ff ff ff  # X | Delta-Window-Size 2**31 - 1, the largest legal
            """
        ),
    ),
    (
        # Draft 3 section 2.6.9; draft 3.1 marks CREDENTIAL "DEPRECATED". We
        # keep its payload whole, never interpreted.
        "credential",
        CredentialFrame(wire("0001 00000002 7066 00000004 63657274")),
        wire(
            """
            80 03        # C=1 | version 3
            00 0a        # type 10 = CREDENTIAL
            00           # flags
            00 00 10     # length 16
            00 01        # Slot (16 bits): 1
            00 00 00 02  # Proof Length: 2
            70 66        # Proof: "pf"
            00 00 00 04  # Certificate Length: 4
            63 65 72 74  # Certificate: "cert"
            """
        ),
    ),
    (
        "data_fin",
        DataFrame(3, b"hi", FLAG_FIN),
        wire(
            """
            00 00 00 03  # C=0 | Stream-ID 3
            01           # flags: FLAG_FIN
            00 00 02     # length 2
            68 69        # "hi"
            """
        ),
    ),
    (
        "data_empty",
        DataFrame(1, b""),
        wire(
            """
            00 00 00 01  # C=0 | Stream-ID 1
            00 00 00 00  # flags 0 | length 0
            """
        ),
    ),
]

SPDY3_FRAMES = _SPDY3_COMMON + [
    (
        # The Slot byte is SPDY/3's (draft 3.1 turns it into unused space).
        "syn_stream_slot",
        SynStreamFrame(3, 0, priority=3, header_block=BLOCK, slot=5),
        wire(
            """
            80 03 00 01  # SYN_STREAM
            00           # flags: none
            00 00 0e     # length 14
            00 00 00 03  # Stream-ID 3
            00 00 00 00  # Associated-To-Stream-ID 0
            60           # Pri 3 (011) | 5 unused bits
            05           # Slot 5 of the CREDENTIAL vector
            de ad be ef  # header block
            """
        ),
    ),
]

SPDY31_FRAMES = _SPDY3_COMMON + [
    (
        # Draft 3.1 section 2.6.8: stream 0 updates the connection window.
        "window_update_session",
        WindowUpdateFrame(0, 0x10000),
        wire(
            """
            80 03 00 09  # C=1 | version 3 (3.1 is "represented as version 3")
            00 00 00 08  # flags 0 | length 8
            00 00 00 00  # X | Stream-ID 0: the connection
            00 01 00 00  # X | Delta-Window-Size 64 KiB
            """
        ),
    ),
]

SPDY3_RECEIVED: list[tuple[str, Frame, bytes]] = [
    (
        "reserved_x_bits_ignored",
        WindowUpdateFrame(1, 16),
        wire(
            """
            80 03 00 09 00 00 00 08  # WINDOW_UPDATE, flags 0, length 8
            80 00 00 01              # X=1 | Stream-ID 1
            80 00 00 10              # X=1 | Delta-Window-Size 16
            """
        ),
    ),
    (
        "syn_stream_unused_bits_ignored",
        SynStreamFrame(1, 0, priority=0, header_block=BLOCK),
        wire(
            """
            80 03 00 01 00 00 00 0e  # SYN_STREAM, flags 0, length 14
            00 00 00 01              # Stream-ID 1
            80 00 00 00              # X=1 | Associated-To-Stream-ID 0
            1f                       # Pri 0 | 5 unused bits all set
            00                       # Slot 0
            de ad be ef              # header block
            """
        ),
    ),
    (
        "noop_is_not_spdy3",
        UnknownFrame(5),
        wire(
            """
            80 03 00 05  # C=1 | version 3 | type 5: NOOP is gone in SPDY/3
            00 00 00 00  # flags 0 | length 0
            """
        ),
    ),
]


def _cases(profile: VersionProfile, table: list[tuple[str, Frame, bytes]]):
    return [
        pytest.param(profile, frame, data, id=f"{profile.name}-{name}")
        for name, frame, data in table
    ]


SENT = (
    _cases(SPDY2, SPDY2_FRAMES)
    + _cases(SPDY3, SPDY3_FRAMES)
    + _cases(SPDY31, SPDY31_FRAMES)
)
RECEIVED = (
    SENT
    + _cases(SPDY2, SPDY2_RECEIVED)
    + _cases(SPDY3, SPDY3_RECEIVED)
    + _cases(SPDY31, SPDY3_RECEIVED)
)


@pytest.mark.parametrize(("profile", "frame", "expected"), SENT)
def test_serialize_matches_the_draft(profile, frame, expected):
    assert frame.serialize(profile) == expected


@pytest.mark.parametrize(("profile", "frame", "expected"), RECEIVED)
def test_parse_whole(profile, frame, expected):
    assert FrameParser(profile).feed(expected) == [frame]


@pytest.mark.parametrize(("profile", "frame", "expected"), RECEIVED)
def test_parse_one_byte_at_a_time(profile, frame, expected):
    parser = FrameParser(profile)
    frames = []
    for i, byte in enumerate(expected):
        got = parser.feed(bytes([byte]))
        if i < len(expected) - 1:
            assert got == [], f"frame finished early, at byte {i}"
        frames += got
    assert frames == [frame]


@pytest.mark.parametrize(
    ("profile", "table"),
    [
        pytest.param(SPDY2, SPDY2_FRAMES + SPDY2_RECEIVED, id="spdy/2"),
        pytest.param(SPDY3, SPDY3_FRAMES + SPDY3_RECEIVED, id="spdy/3"),
        pytest.param(SPDY31, SPDY31_FRAMES + SPDY3_RECEIVED, id="spdy/3.1"),
    ],
)
def test_parse_all_frames_back_to_back(profile, table):
    stream = b"".join(data for _, _, data in table)
    assert FrameParser(profile).feed(stream) == [frame for _, frame, _ in table]
    # ...and split at an awkward place in every frame.
    parser = FrameParser(profile)
    frames = []
    for offset in range(0, len(stream), 7):
        frames += parser.feed(stream[offset : offset + 7])
    assert frames == [frame for _, frame, _ in table]


@pytest.mark.parametrize("profile", [SPDY2, SPDY3, SPDY31], ids=lambda p: p.name)
def test_settings_id_byte_order(profile):
    # One id wider than a byte shows the order of all three id bytes: draft 2
    # "ID: 24-bits in little-endian byte order", then ID_Flags; draft 3
    # "Flags(8) | ID (24 bits)", network order.
    if profile.version == 2:
        # ID 0x010203 little-endian | ID_Flags 0xff | value 42
        entry = wire("03 02 01  ff  00 00 00 2a")
    else:
        # Flags 0xff | ID 0x010203 | value 42
        entry = wire("ff  01 02 03  00 00 00 2a")
    data = wire(f"80 0{profile.version} 00 04  00 00 00 0c  00 00 00 01") + entry
    frame = SettingsFrame([(0x010203, 42, 0xFF)])
    assert frame.serialize(profile) == data
    assert FrameParser(profile).feed(data) == [frame]


# ---------------------------------------------------------------------------
# Malformed frames.

MALFORMED = [
    # RST_STREAM: "For RST_STREAM control frames, this value is always 8."
    ("rst_stream_length_4", "0003 00 000004 00000001"),
    ("rst_stream_length_12", "0003 00 00000c 00000001 00000001 00000000"),
    # PING: "This frame is always 4 bytes long."
    ("ping_length_8", "0006 00 000008 00000001 00000000"),
    ("ping_length_0", "0006 00 000000"),
    # SETTINGS: count of entries disagreeing with the length.
    ("settings_count_2_one_entry", "0004 00 00000c 00000002 00000004 00000064"),
    (
        "settings_count_1_two_entries",
        "0004 00 000014 00000001 00000004 00000064 00000007 00010000",
    ),
    ("settings_no_count", "0004 00 000002 0000"),
    # SYN_STREAM: 10 fixed bytes (stream id, associated id, priority word).
    ("syn_stream_length_8", "0001 00 000008 00000001 00000000"),
    ("syn_stream_length_0", "0001 00 000000"),
    # WINDOW_UPDATE: "The length field is always 8 for this frame".
    ("window_update_length_4", "0009 00 000004 00000001"),
]

MALFORMED_V3 = MALFORMED + [
    # SPDY/3 GOAWAY: "This frame is always 8 bytes long." (no 4-byte form)
    ("goaway_length_4", "0007 00 000004 00000001"),
    ("syn_reply_length_2", "0002 00 000002 0000"),
    ("headers_length_3", "0008 00 000003 000000"),
]

MALFORMED_V2 = MALFORMED + [
    # SPDY/2 GOAWAY: 4 (draft 2) or 8 (SPDY/3 style) bytes, nothing else.
    ("goaway_length_6", "0007 00 000006 00000001 0000"),
    ("goaway_length_12", "0007 00 00000c 00000001 00000000 00000000"),
    # SYN_REPLY and HEADERS carry 16 unused bits after the stream id.
    ("syn_reply_length_4", "0002 00 000004 00000001"),
    ("headers_length_5", "0008 00 000005 00000001 00"),
]


@pytest.mark.parametrize(
    ("profile", "body"),
    [pytest.param(SPDY2, body, id=f"spdy/2-{name}") for name, body in MALFORMED_V2]
    + [
        pytest.param(p, body, id=f"{p.name}-{name}")
        for p in (SPDY3, SPDY31)
        for name, body in MALFORMED_V3
    ],
)
def test_malformed_length_is_a_frame_size_error(profile, body):
    data = wire(f"80 0{profile.version}") + wire(body)
    with pytest.raises(FrameSizeError):
        FrameParser(profile).feed(data)
    # The same, arriving one byte at a time.
    parser = FrameParser(profile)
    with pytest.raises(FrameSizeError):
        for byte in data:
            parser.feed(bytes([byte]))


@pytest.mark.parametrize(
    ("profile", "other_version"),
    [(SPDY2, 3), (SPDY3, 2), (SPDY31, 2), (SPDY2, 1), (SPDY3, 4)],
    ids=[
        "spdy2-gets-v3",
        "spdy3-gets-v2",
        "spdy31-gets-v2",
        "spdy2-gets-v1",
        "spdy3-gets-v4",
    ],
)
def test_control_frame_of_another_version_is_a_protocol_error(profile, other_version):
    # A PING of another version (draft 2 would ignore it; see the report).
    data = wire(f"80 0{other_version} 0006 00 000004 00000001")
    with pytest.raises(ProtocolError):
        FrameParser(profile).feed(data)


@pytest.mark.parametrize("profile", [SPDY2, SPDY3, SPDY31], ids=lambda p: p.name)
def test_unknown_control_type_is_kept_as_unknown_frame(profile):
    # Draft 2: "If an endpoint receives a control frame for a type it does not
    # recognize, it must ignore the frame": the parser hands it on untouched.
    data = wire(
        f"""
        80 0{profile.version}  # C=1 | version
        00 ff        # type 255: not defined by any version
        07           # flags: kept
        00 00 03     # length 3
        61 62 63     # payload "abc"
        """
    )
    frame = UnknownFrame(0xFF, 0x07, b"abc")
    assert FrameParser(profile).feed(data) == [frame]
    assert frame.serialize(profile) == data
    # And the frame after it is still found.
    ping = wire(f"80 0{profile.version} 0006 00 000004 00000003")
    assert FrameParser(profile).feed(data + ping) == [frame, PingFrame(3)]


# ---------------------------------------------------------------------------
# Name/value header blocks, uncompressed. Draft 2: "Each numeric value is 2
# bytes"; draft 3 section 2.6.10: int32 counts and lengths.

RAW_V2 = wire(
    """
    00 02                    # Number of Name/Value pairs (int16): 2
    00 06 6d 65 74 68 6f 64  # Length of name (int16) 6 | "method"
    00 03 47 45 54           # Length of value 3 | "GET"
    00 03 75 72 6c           # Length of name 3 | "url"
    00 01 2f                 # Length of value 1 | "/"
    """
)

RAW_V3 = wire(
    """
    00 00 00 02                    # Number of Name/Value pairs (int32): 2
    00 00 00 07 3a 6d 65 74 68 6f 64  # Length of name (int32) 7 | ":method"
    00 00 00 03 47 45 54           # Length of value 3 | "GET"
    00 00 00 05 3a 70 61 74 68     # Length of name 5 | ":path"
    00 00 00 01 2f                 # Length of value 1 | "/"
    """
)
# On our API names are h2's; SPDY/2 spells ":method" and ":path" "method" and
# "url" (draft 2 "Request"), SPDY/3 ":method" and ":path" (draft 3 section 3.2.1).
REQUEST = [(b":method", b"GET"), (b":path", b"/")]

# "To send two identically named headers, send a header with two values, where
# the values are separated by a single NUL (0) byte."
MULTI_V2 = wire(
    """
    00 01                                # 1 pair
    00 0a 73 65 74 2d 63 6f 6f 6b 69 65  # name 10 "set-cookie"
    00 07 61 3d 31 00 62 3d 32           # value 7 "a=1" NUL "b=2"
    """
)
MULTI_V3 = wire(
    """
    00 00 00 01                                # 1 pair
    00 00 00 0a 73 65 74 2d 63 6f 6f 6b 69 65  # name 10 "set-cookie"
    00 00 00 07 61 3d 31 00 62 3d 32           # value 7 "a=1" NUL "b=2"
    """
)
HEADERS_MULTI = [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]

# Draft 2 "Response": "status" (e.g. "200 OK") and "version"; draft 3 section
# 3.2.2: ":status" and ":version". The reason phrase and the version are the
# wire's business; on our API the status is the bare code.
REPLY_V2 = wire(
    """
    00 02                          # 2 pairs
    00 06 73 74 61 74 75 73        # name 6 "status"
    00 06 32 30 30 20 4f 4b        # value 6 "200 OK"
    00 07 76 65 72 73 69 6f 6e     # name 7 "version"
    00 08 48 54 54 50 2f 31 2e 31  # value 8 "HTTP/1.1"
    """
)
REPLY_V3 = wire(
    """
    00 00 00 02                             # 2 pairs
    00 00 00 07 3a 73 74 61 74 75 73        # name 7 ":status"
    00 00 00 06 32 30 30 20 4f 4b           # value 6 "200 OK"
    00 00 00 08 3a 76 65 72 73 69 6f 6e     # name 8 ":version"
    00 00 00 08 48 54 54 50 2f 31 2e 31     # value 8 "HTTP/1.1"
    """
)
REPLY = [(b":status", b"200")]

BLOCKS = [
    pytest.param(SPDY2, RAW_V2, REQUEST, id="spdy/2"),
    pytest.param(SPDY3, RAW_V3, REQUEST, id="spdy/3"),
    pytest.param(SPDY31, RAW_V3, REQUEST, id="spdy/3.1"),
    pytest.param(SPDY2, MULTI_V2, HEADERS_MULTI, id="spdy/2-multi-value"),
    pytest.param(SPDY3, MULTI_V3, HEADERS_MULTI, id="spdy/3-multi-value"),
]


@pytest.mark.parametrize(("profile", "raw", "headers"), BLOCKS)
def test_parse_hand_written_block(profile, raw, headers):
    assert HeaderCodec(profile).parse(raw, 1)[0] == headers


@pytest.mark.parametrize(("profile", "raw", "headers"), BLOCKS)
def test_encode_inflates_to_the_hand_written_block(profile, raw, headers):
    # Plain zlib with the draft's dictionary (built below from the draft text,
    # not from our module) recovers exactly the hand-written layout.
    encoded = HeaderCodec(profile).encode(headers)
    inflater = zlib.decompressobj(zdict=DRAFT_DICTIONARY[profile.version])
    assert inflater.decompress(encoded) == raw


@pytest.mark.parametrize(
    ("profile", "raw"),
    [
        pytest.param(SPDY2, REPLY_V2, id="spdy/2"),
        pytest.param(SPDY3, REPLY_V3, id="spdy/3"),
        pytest.param(SPDY31, REPLY_V3, id="spdy/3.1"),
    ],
)
def test_reply_status_line_block(profile, raw):
    codec = HeaderCodec(profile)
    assert codec.parse(raw, 1)[0] == REPLY
    version = profile.wire_names[b":version"]
    encoded = codec.encode(REPLY, defaults=[(version, b"HTTP/1.1")])
    inflater = zlib.decompressobj(zdict=DRAFT_DICTIONARY[profile.version])
    assert inflater.decompress(encoded) == raw


def test_empty_header_block():
    assert HeaderCodec(SPDY2).parse(wire("0000"), 1)[0] == []
    assert HeaderCodec(SPDY3).parse(wire("00000000"), 1)[0] == []


def _assert_protocol_error(profile, raw, stream_id=5):
    with pytest.raises(StreamError) as info:
        HeaderCodec(profile).parse(raw, stream_id)
    assert info.value.error_code == StatusCode.PROTOCOL_ERROR
    assert info.value.stream_id == stream_id


@pytest.mark.parametrize(
    ("profile", "raw"),
    [
        # "Header names must be all lower case."
        pytest.param(SPDY2, wire("0001 0004 486f7374 0001 78"), id="spdy/2-Host"),
        pytest.param(
            SPDY3, wire("00000001 00000005 3a486f7374 00000001 78"), id="spdy/3-:Host"
        ),
        # "The length of each name must be greater than zero."
        pytest.param(SPDY2, wire("0001 0000 0001 78"), id="spdy/2-empty-name"),
        pytest.param(
            SPDY3, wire("00000001 00000000 00000001 78"), id="spdy/3-empty-name"
        ),
        # Counts and lengths that run past the block.
        pytest.param(SPDY2, wire("0002 0001 61 0001 62"), id="spdy/2-count-too-big"),
        pytest.param(SPDY2, wire("0001 0005 61"), id="spdy/2-name-overruns"),
        pytest.param(
            SPDY3, wire("00000001 00000001 61 00000009 62"), id="spdy/3-value-overruns"
        ),
        pytest.param(SPDY3, wire("0000"), id="spdy/3-short-count"),
        # Bytes after the last pair.
        pytest.param(
            SPDY2, wire("0001 0001 61 0001 62 ff"), id="spdy/2-trailing-bytes"
        ),
    ],
)
def test_malformed_block_is_a_stream_protocol_error(profile, raw):
    _assert_protocol_error(profile, raw)


# Draft 2 'Name/Value header block format' and draft 3 section 2.6.10: values
# are separated by a single NUL; in-sequence NULs (draft 3: a value that starts
# or ends with NUL) MUST be answered with PROTOCOL_ERROR.
@pytest.mark.parametrize(
    ("profile", "raw"),
    [
        pytest.param(
            SPDY2, wire("0001 0001 61 0004 78 00 00 79"), id="spdy/2-double-nul"
        ),
        pytest.param(
            SPDY3,
            wire("00000001 00000001 61 00000004 78 00 00 79"),
            id="spdy/3-double-nul",
        ),
        pytest.param(
            SPDY3, wire("00000001 00000001 61 00000002 00 79"), id="spdy/3-leading-nul"
        ),
        pytest.param(
            SPDY3, wire("00000001 00000001 61 00000002 78 00"), id="spdy/3-trailing-nul"
        ),
    ],
)
def test_illegal_nul_in_value_is_a_stream_protocol_error(profile, raw):
    _assert_protocol_error(profile, raw)


def test_spdy2_empty_value_is_tolerated():
    # Draft 2 forbids zero-length values ("A receiver of a zero-length name or
    # value must send a RST_STREAM with code PROTOCOL error"); SPDY/3 allows
    # them. An empty HTTP header value is legal HTTP, so we accept it in SPDY/2
    # too rather than reset a stream a SPDY/3 peer would have served.
    assert HeaderCodec(SPDY2).parse(wire("0001 0001 61 0000"), 1)[0] == [(b"a", b"")]


def test_spdy3_empty_value_is_allowed():
    # Draft 3: "A header value can either be empty (e.g. the length is zero)..."
    assert HeaderCodec(SPDY3).parse(wire("00000001 00000001 61 00000000"), 1)[0] == [
        (b"a", b"")
    ]


# ---------------------------------------------------------------------------
# The dictionaries, from the drafts.

# Draft 2 "Name/Value header block format": "The stream is initialized with the
# following dictionary (without line breaks and IS null-terminated)". The lines
# as the draft prints them:
DRAFT2_DICTIONARY_LINES = (
    "optionsgetheadpostputdeletetraceacceptaccept-charsetaccept-encodingaccept-",
    "languageauthorizationexpectfromhostif-modified-sinceif-matchif-none-matchi",
    "f-rangeif-unmodifiedsincemax-forwardsproxy-authorizationrangerefererteuser",
    "-agent10010120020120220320420520630030130230330430530630740040140240340440",
    "5406407408409410411412413414415416417500501502503504505accept-rangesageeta",
    "glocationproxy-authenticatepublicretry-afterservervarywarningwww-authentic",
    "ateallowcontent-basecontent-encodingcache-controlconnectiondatetrailertran",
    "sfer-encodingupgradeviawarningcontent-languagecontent-lengthcontent-locati",
    "oncontent-md5content-rangecontent-typeetagexpireslast-modifiedset-cookieMo",
    "ndayTuesdayWednesdayThursdayFridaySaturdaySundayJanFebMarAprMayJunJulAugSe",
    "pOctNovDecchunkedtext/htmlimage/pngimage/jpgimage/gifapplication/xmlapplic",
    "ation/xhtmltext/plainpublicmax-agecharset=iso-8859-1utf-8gzipdeflateHTTP/1",
    ".1statusversionurl",
)
DRAFT2_DICTIONARY = "".join(DRAFT2_DICTIONARY_LINES).encode("ascii") + b"\0"

# Draft 3 section 2.6.10.1, "const unsigned char SPDY_dictionary_txt[]",
# transcribed as hex: 32 bytes a line.
DRAFT3_DICTIONARY = bytes.fromhex(
    "000000076f7074696f6e73000000046865616400000004706f73740000000370"
    "75740000000664656c6574650000000574726163650000000661636365707400"
    "00000e6163636570742d636861727365740000000f6163636570742d656e636f"
    "64696e670000000f6163636570742d6c616e67756167650000000d6163636570"
    "742d72616e6765730000000361676500000005616c6c6f770000000d61757468"
    "6f72697a6174696f6e0000000d63616368652d636f6e74726f6c0000000a636f"
    "6e6e656374696f6e0000000c636f6e74656e742d6261736500000010636f6e74"
    "656e742d656e636f64696e6700000010636f6e74656e742d6c616e6775616765"
    "0000000e636f6e74656e742d6c656e67746800000010636f6e74656e742d6c6f"
    "636174696f6e0000000b636f6e74656e742d6d64350000000d636f6e74656e74"
    "2d72616e67650000000c636f6e74656e742d7479706500000004646174650000"
    "0004657461670000000665787065637400000007657870697265730000000466"
    "726f6d00000004686f73740000000869662d6d617463680000001169662d6d6f"
    "6469666965642d73696e63650000000d69662d6e6f6e652d6d61746368000000"
    "0869662d72616e67650000001369662d756e6d6f6469666965642d73696e6365"
    "0000000d6c6173742d6d6f646966696564000000086c6f636174696f6e000000"
    "0c6d61782d666f72776172647300000006707261676d610000001270726f7879"
    "2d61757468656e7469636174650000001370726f78792d617574686f72697a61"
    "74696f6e0000000572616e676500000007726566657265720000000b72657472"
    "792d61667465720000000673657276657200000002746500000007747261696c"
    "6572000000117472616e736665722d656e636f64696e67000000077570677261"
    "64650000000a757365722d6167656e7400000004766172790000000376696100"
    "0000077761726e696e67000000107777772d61757468656e7469636174650000"
    "00066d6574686f64000000036765740000000673746174757300000006323030"
    "204f4b0000000776657273696f6e00000008485454502f312e31000000037572"
    "6c000000067075626c69630000000a7365742d636f6f6b69650000000a6b6565"
    "702d616c697665000000066f726967696e313030313031323031323032323035"
    "3230363330303330323330333330343330353330363330373430323430353430"
    "3634303734303834303934313034313134313234313334313434313534313634"
    "3137353032353034353035323033204e6f6e2d417574686f7269746174697665"
    "20496e666f726d6174696f6e323034204e6f20436f6e74656e74333031204d6f"
    "766564205065726d616e656e746c793430302042616420526571756573743430"
    "3120556e617574686f72697a656434303320466f7262696464656e343034204e"
    "6f7420466f756e6435303020496e7465726e616c20536572766572204572726f"
    "72353031204e6f7420496d706c656d656e746564353033205365727669636520"
    "556e617661696c61626c654a616e20466562204d617220417072204d6179204a"
    "756e204a756c204175672053657074204f6374204e6f76204465632030303a30"
    "303a3030204d6f6e2c205475652c205765642c205468752c204672692c205361"
    "742c2053756e2c20474d546368756e6b65642c746578742f68746d6c2c696d61"
    "67652f706e672c696d6167652f6a70672c696d6167652f6769662c6170706c69"
    "636174696f6e2f786d6c2c6170706c69636174696f6e2f7868746d6c2b786d6c"
    "2c746578742f706c61696e2c746578742f6a6176617363726970742c7075626c"
    "6963707269766174656d61782d6167653d677a69702c6465666c6174652c7364"
    "6368636861727365743d7574662d38636861727365743d69736f2d383835392d"
    "312c7574662d2c2a2c656e713d302e"
)

DRAFT_DICTIONARY = {2: DRAFT2_DICTIONARY, 3: DRAFT3_DICTIONARY}

# Published zlib DICTIDs (sources in the module docstring).
SPDY2_DICTIONARY_ID = 0xDFA251B2
SPDY3_DICTIONARY_ID = 0xE3C6A7C2
DICTIONARY_ID = {2: SPDY2_DICTIONARY_ID, 3: SPDY3_DICTIONARY_ID}


def test_spdy2_dictionary_is_the_drafts():
    assert len(DRAFT2_DICTIONARY) == 907  # INTEROP.md: 907 bytes with the NUL
    assert DRAFT2_DICTIONARY.startswith(b"optionsgetheadpostputdeletetrace")
    assert DRAFT2_DICTIONARY.endswith(b"HTTP/1.1statusversionurl\x00")
    assert SPDY2.dictionary == DRAFT2_DICTIONARY


def test_spdy3_dictionary_is_the_drafts():
    assert len(DRAFT3_DICTIONARY) == 1423  # INTEROP.md: 1,423 bytes
    # First and last rows as the draft prints them:
    # "0x00, 0x00, 0x00, 0x07, 0x6f, 0x70, 0x74, 0x69,   \\ - - - - o p t i"
    assert DRAFT3_DICTIONARY[:8] == b"\x00\x00\x00\x07opti"
    # "0x2c, 0x65, 0x6e, 0x71, 0x3d, 0x30, 0x2e          \\ - e n q - 0 -"
    assert DRAFT3_DICTIONARY[-7:] == b",enq=0."
    assert SPDY3.dictionary == DRAFT3_DICTIONARY
    assert SPDY31.dictionary == DRAFT3_DICTIONARY


def test_dictionaries_match_the_published_ids():
    assert zlib.adler32(DRAFT2_DICTIONARY) == SPDY2_DICTIONARY_ID
    assert zlib.adler32(SPDY2.dictionary) == SPDY2_DICTIONARY_ID
    assert zlib.adler32(DRAFT3_DICTIONARY) == SPDY3_DICTIONARY_ID
    assert zlib.adler32(SPDY3.dictionary) == SPDY3_DICTIONARY_ID
    # The NUL counts: without it the SPDY/2 id would differ.
    assert zlib.adler32(DRAFT2_DICTIONARY[:-1]) != SPDY2_DICTIONARY_ID


@pytest.mark.parametrize("profile", [SPDY2, SPDY3, SPDY31], ids=lambda p: p.name)
def test_our_zlib_stream_names_the_published_dictionary(profile):
    codec = HeaderCodec(profile)
    first = codec.encode([(b"a", b"b")])
    cmf, flg = first[0], first[1]
    assert cmf & 0x0F == 8  # CM 8: deflate (RFC 1950)
    assert (cmf << 8 | flg) % 31 == 0  # FCHECK
    assert flg & 0x20  # FDICT: a preset dictionary follows
    assert struct.unpack(">I", first[2:6])[0] == DICTIONARY_ID[profile.version]
    assert first.endswith(b"\x00\x00\xff\xff")  # SYNC_FLUSH "between frames"
    # One zlib stream per direction: the next block has no header of its own
    # and inflates in the same context.
    second = codec.encode([(b"a", b"c")])
    inflater = zlib.decompressobj(zdict=DRAFT_DICTIONARY[profile.version])
    size = 2 if profile.version == 2 else 4
    one = (1).to_bytes(size, "big")
    assert inflater.decompress(first) == one + one + b"a" + one + b"b"
    assert inflater.decompress(second) == one + one + b"a" + one + b"c"


def _stored(raw: bytes) -> bytes:
    """A non-final stored deflate block (RFC 1951 section 3.2.4) holding raw."""
    n = len(raw)
    return b"\x00" + struct.pack("<HH", n, n ^ 0xFFFF) + raw


@pytest.mark.parametrize(
    ("profile", "raw", "headers"),
    [
        pytest.param(SPDY2, RAW_V2, REQUEST, id="spdy/2"),
        pytest.param(SPDY3, RAW_V3, REQUEST, id="spdy/3"),
        pytest.param(SPDY31, RAW_V3, REQUEST, id="spdy/3.1"),
    ],
)
def test_decode_hand_made_zlib_stream(profile, raw, headers):
    # A peer that does not compress (INTEROP.md: spdy-transport's blocks are
    # "stored (level 0)") sends this; every byte is written here, not by zlib,
    # and zlib refuses the dictionary unless its adler32 is the DICTID.
    dict_id = DICTIONARY_ID[profile.version]
    first = (
        wire(
            """
            78  # CMF: CM 8 (deflate), CINFO 7 (32 KiB window)
            20  # FLG: FDICT set, FLEVEL 0, FCHECK 0 ((0x78 * 256 + 0x20) % 31 == 0)
            """
        )
        + struct.pack(">I", dict_id)  # DICTID
        + _stored(raw)
        + wire("00 0000 ffff")  # empty stored block: what Z_SYNC_FLUSH writes
    )
    codec = HeaderCodec(profile)
    assert codec.decode(first, 1)[0] == headers
    # The next frame's block continues the same stream: no zlib header.
    assert codec.decode(_stored(raw) + wire("00 0000 ffff"), 3)[0] == headers


def test_decode_refuses_a_stream_for_the_other_dictionary():
    # A SPDY/3 header block (DICTID e3c6a7c2) on a SPDY/2 session cannot inflate.
    block = wire("78 20") + struct.pack(">I", SPDY3_DICTIONARY_ID) + _stored(RAW_V2)
    with pytest.raises(HeaderBlockError):
        HeaderCodec(SPDY2).decode(block, 1)
