"""The SPDY core: SPDY/2, SPDY/3 and SPDY/3.1 without I/O.

Bytes in (`SPDYConnection.receive_data`), events out (`tornado_spdy.spdy.events`),
bytes to send (`SPDYConnection.data_to_send`), with the API and event names of
the h2 library. Nothing here imports tornado, opens a socket, reads a clock or
logs.
"""

from __future__ import annotations

from . import events
from .config import SPDYConfiguration
from .connection import SPDYConnection
from .errors import (
    ConnectionClosedError,
    FlowControlError,
    FrameSizeError,
    FrameTooLargeError,
    GoAwayStatus,
    HeaderBlockError,
    HeaderListTooLarge,
    NoSuchStreamError,
    ProtocolError,
    SPDYError,
    StatusCode,
    StreamClosedError,
    StreamError,
    TooManyStreamsError,
)
from .profile import VersionProfile
from .v2 import SPDY2
from .v3 import SPDY3, SPDY31

#: The versions we speak, by their ALPN / NPN protocol id, most preferred first.
VERSIONS: dict[str, VersionProfile] = {
    profile.name: profile for profile in (SPDY31, SPDY3, SPDY2)
}

__all__ = [
    "VERSIONS",
    "ConnectionClosedError",
    "FlowControlError",
    "FrameSizeError",
    "FrameTooLargeError",
    "GoAwayStatus",
    "HeaderBlockError",
    "HeaderListTooLarge",
    "NoSuchStreamError",
    "ProtocolError",
    "SPDYConfiguration",
    "SPDYConnection",
    "SPDYError",
    "StatusCode",
    "StreamClosedError",
    "StreamError",
    "TooManyStreamsError",
    "VersionProfile",
    "events",
]
