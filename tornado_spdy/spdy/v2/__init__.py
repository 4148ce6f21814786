"""SPDY/2 ("SPDY Protocol - Draft 2", chromium.org): its profile and zlib dictionary.

Where the draft and the peers that shipped disagree we follow the peers, as
Chromium did: priority 0 is the highest; WINDOW_UPDATE (withdrawn from the final
draft) is sent and honoured with SPDY/3's layout; GOAWAY is sent with 8 bytes
(spdy-transport fails on the draft's 4) and accepted with 4 or 8.
"""

from __future__ import annotations

from ..profile import SPDY2_STATUS_FALLBACK, VersionProfile

# The header-block dictionary of the SPDY/2 draft ("Compression"): 907 bytes, the
# draft's C string including its terminating NUL, which peers feed to zlib too.
DICTIONARY = (
    b"optionsgetheadpostputdeletetraceacceptaccept-charsetaccept-encodingaccept-"
    b"languageauthorizationexpectfromhostif-modified-sinceif-matchif-none-matchi"
    b"f-rangeif-unmodifiedsincemax-forwardsproxy-authorizationrangerefererteuser"
    b"-agent10010120020120220320420520630030130230330430530630740040140240340440"
    b"5406407408409410411412413414415416417500501502503504505accept-rangesageeta"
    b"glocationproxy-authenticatepublicretry-afterservervarywarningwww-authentic"
    b"ateallowcontent-basecontent-encodingcache-controlconnectiondatetrailertran"
    b"sfer-encodingupgradeviawarningcontent-languagecontent-lengthcontent-locati"
    b"oncontent-md5content-rangecontent-typeetagexpireslast-modifiedset-cookieMo"
    b"ndayTuesdayWednesdayThursdayFridaySaturdaySundayJanFebMarAprMayJunJulAugSe"
    b"pOctNovDecchunkedtext/htmlimage/pngimage/jpgimage/gifapplication/xmlapplic"
    b"ation/xhtmltext/plainpublicmax-agecharset=iso-8859-1utf-8gzipdeflateHTTP/1"
    b".1statusversionurl\x00"
)

SPDY2 = VersionProfile(
    name="spdy/2",
    version=2,
    dictionary=DICTIONARY,
    length_size=2,
    priority_bits=2,
    has_slot=False,
    reply_padding=2,
    # Chromium wrote SPDY/2 SETTINGS ids in host (little-endian) order and every
    # SPDY/2 peer since, spdy-transport included, reads and writes them so.
    settings_id_format="<I",
    session_flow_control=False,
    has_noop=True,
    has_credential=False,
    short_goaway=True,
    status_fallback={int(k): int(v) for k, v in SPDY2_STATUS_FALLBACK.items()},
    wire_names={
        b":method": b"method",
        b":path": b"url",
        b":scheme": b"scheme",
        b":authority": b"host",
        b":status": b"status",
        b":version": b"version",
    },
    absolute_push_url=True,
)
