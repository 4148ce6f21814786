"""Flow-control windows: what the peer may still send us, and when to say more.

Send windows are plain integers on the stream and the session; the receive
side needs this small policy object.
"""

from __future__ import annotations

MAX_WINDOW = 0x7FFFFFFF


class InboundWindow:
    """A receive window: ``window`` bytes may still arrive.

    Consumed bytes are given back by `acknowledge`; they are advertised to the
    peer in one WINDOW_UPDATE once half of the window's size has been given
    back, so a busy stream costs one update per half window, not per frame.
    """

    __slots__ = ("size", "window", "unacknowledged")

    def __init__(self, size: int):
        self.size = size
        self.window = size
        self.unacknowledged = 0

    def consume(self, length: int) -> bool:
        """Count ``length`` received bytes; False if they overran the window."""
        self.window -= length
        return self.window >= 0

    def acknowledge(self, length: int) -> int:
        """Give back ``length`` consumed bytes; the increment to send, or 0."""
        self.unacknowledged += length
        if self.unacknowledged < (self.size + 1) // 2:
            return 0
        return self.release()

    def release(self) -> int:
        """Advertise everything given back so far; the increment to send."""
        increment, self.unacknowledged = self.unacknowledged, 0
        self.window += increment
        return increment

    def resize(self, size: int) -> None:
        """Apply a new initial window size (a SETTINGS change)."""
        self.window += size - self.size
        self.size = size
