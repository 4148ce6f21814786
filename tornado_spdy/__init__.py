"""tornado_spdy: SPDY/2, SPDY/3, SPDY/3.1 and HTTP/2 for Tornado."""

version = "0.1.0"
