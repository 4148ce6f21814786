"""`SPDYConfiguration`: the knobs of one `SPDYConnection`, with safe defaults."""

from __future__ import annotations

from dataclasses import dataclass

from .compression import SENSITIVE_HEADERS

DEFAULT_WINDOW = 64 * 1024  # SPDY/3 and 3.1: stream and session windows start here


@dataclass
class SPDYConfiguration:
    """Settings of one session, as `h2.config.H2Configuration` is for h2.

    :arg client_side: True for the side that opens requests.
    :arg version: ``"spdy/2"``, ``"spdy/3"`` or ``"spdy/3.1"``.
    :arg max_concurrent_streams: streams the peer may have open towards us at
        once (advertised in SETTINGS); more are refused with REFUSED_STREAM.
    :arg initial_window_size: our receive window for each stream (advertised
        in SETTINGS when it differs from 64 KiB).
    :arg initial_session_window_size: our receive window for the whole session
        (SPDY/3.1; opened with a WINDOW_UPDATE when above 64 KiB).
    :arg max_header_list_size: inflated header-block bytes accepted per frame;
        a larger block refuses its stream (FRAME_TOO_LARGE).
    :arg max_header_fields: name/value pairs accepted per header block.
    :arg max_inflate_size: how far a refused block is inflated to keep the zlib
        state in sync; beyond it the session ends (GOAWAY PROTOCOL_ERROR).
    :arg max_inbound_frame_size: the longest frame accepted; a longer one ends
        the session.
    :arg max_outbound_frame_size: the longest DATA payload we send in one frame.
    :arg enable_push: (client side) accept server pushes; when False they are
        refused with RST_STREAM REFUSED_STREAM.
    :arg compression_level: zlib level of the header blocks we send.
    :arg sensitive_headers: header names whose values we send uncompressed and
        never match against, so that an attacker who adds data to a request
        cannot learn them from its compressed length (CRIME).
    """

    client_side: bool = True
    version: str = "spdy/3.1"
    max_concurrent_streams: int = 100
    initial_window_size: int = DEFAULT_WINDOW
    initial_session_window_size: int = DEFAULT_WINDOW
    max_header_list_size: int = 64 * 1024
    max_header_fields: int = 100
    max_inflate_size: int = 1024 * 1024
    max_inbound_frame_size: int = 1024 * 1024
    max_outbound_frame_size: int = 16 * 1024
    enable_push: bool = True
    compression_level: int = 6
    sensitive_headers: frozenset[bytes] = SENSITIVE_HEADERS
