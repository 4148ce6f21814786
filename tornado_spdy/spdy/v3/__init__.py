"""SPDY/3 (draft-mbelshe-httpbis-spdy-00, "Draft 3") and SPDY/3.1: profiles and the
zlib dictionary. SPDY/3.1 is SPDY/3 with a session-wide flow-control window."""

from __future__ import annotations

import dataclasses
import struct

from ..profile import VersionProfile

# SPDY/3 section 2.6.10.1: a run of 32-bit length-prefixed words, then text.
_WORDS = (
    (
        b"options head post put delete trace accept accept-charset accept-encoding "
        b"accept-language accept-ranges age allow authorization cache-control "
        b"connection content-base content-encoding content-language content-length "
        b"content-location content-md5 content-range content-type date etag expect "
        b"expires from host if-match if-modified-since if-none-match if-range "
        b"if-unmodified-since last-modified location max-forwards pragma "
        b"proxy-authenticate proxy-authorization range referer retry-after server te "
        b"trailer transfer-encoding upgrade user-agent vary via warning "
        b"www-authenticate method get status"
    ).split()
    + [b"200 OK"]
    + b"version HTTP/1.1 url public set-cookie keep-alive origin".split()
)

_TEXT = (
    b"100101201202205206300302303304305306307402405406407408409410411412413414"
    b"415416417502504505203 Non-Authoritative Information204 No Content301 Moved "
    b"Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 "
    b"Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar "
    b"Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, "
    b"Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,"
    b"application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,"
    b"deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)

DICTIONARY = b"".join(struct.pack(">I", len(word)) + word for word in _WORDS) + _TEXT

SPDY3 = VersionProfile(
    name="spdy/3",
    version=3,
    dictionary=DICTIONARY,
    length_size=4,
    priority_bits=3,
    has_slot=True,
    reply_padding=0,
    settings_id_format=">I",
    session_flow_control=False,
    has_noop=False,
    has_credential=True,
    short_goaway=False,
    status_fallback={},
    wire_names={
        b":method": b":method",
        b":path": b":path",
        b":scheme": b":scheme",
        b":authority": b":host",
        b":status": b":status",
        b":version": b":version",
    },
    absolute_push_url=False,
)

SPDY31 = dataclasses.replace(SPDY3, name="spdy/3.1", session_flow_control=True)
