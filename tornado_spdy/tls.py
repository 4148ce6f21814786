"""TLS helpers: protocol negotiation lists, client contexts with certifi's CA
bundle, and a development certificate.

TLS itself runs on the standard library's `ssl` module through Tornado's
`SSLIOStream`. NPN is used where that module still has it (``ssl.HAS_NPN``;
Python 3.11 here has not); ALPN everywhere else.
"""

from __future__ import annotations

import datetime
import os
import ssl
from collections.abc import Sequence
from typing import Any

from tornado.netutil import ssl_options_to_context

#: The TLS stack can negotiate by ALPN.
SUPPORTS_ALPN: bool = ssl.HAS_ALPN
#: The TLS stack can negotiate by NPN (gone from OpenSSL 3 builds of Python).
SUPPORTS_NPN: bool = bool(getattr(ssl, "HAS_NPN", False))


def set_protocols(context: ssl.SSLContext, protocols: Sequence[str]) -> None:
    """Offer ``protocols`` (most preferred first) by ALPN and, where the TLS
    stack has it, NPN."""
    protocols = list(protocols)
    if SUPPORTS_ALPN:
        context.set_alpn_protocols(protocols)
    if SUPPORTS_NPN:  # pragma: no cover - not on this Python
        context.set_npn_protocols(protocols)


def negotiated_protocol(sock: ssl.SSLSocket) -> str | None:
    """The protocol a finished handshake agreed on, by ALPN or NPN."""
    protocol = sock.selected_alpn_protocol() if SUPPORTS_ALPN else None
    if protocol is None and SUPPORTS_NPN:  # pragma: no cover - not on this Python
        protocol = sock.selected_npn_protocol()
    return protocol


def server_context(
    ssl_options: dict[str, Any] | ssl.SSLContext, protocols: Sequence[str]
) -> ssl.SSLContext:
    """An `ssl.SSLContext` for a server offering ``protocols``.

    :arg ssl_options: Tornado's ``ssl_options``: a dict of `ssl.wrap_socket`
        arguments or a context, which is then changed in place (its ALPN list).
    """
    context = ssl_options_to_context(ssl_options, server_side=True)
    set_protocols(context, protocols)
    return context


def client_context(
    protocols: Sequence[str],
    ca_certs: str | None = None,
    validate_cert: bool = True,
    client_cert: str | None = None,
    client_key: str | None = None,
) -> ssl.SSLContext:
    """An `ssl.SSLContext` for a client offering ``protocols``.

    Certificates are checked against certifi's CA bundle unless ``ca_certs``
    names another.
    """
    if ca_certs is None:
        import certifi

        ca_certs = certifi.where()
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_certs)
    if not validate_cert:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        context.load_cert_chain(client_cert, client_key)
    set_protocols(context, protocols)
    return context


def development_certificate(directory: str | None = None) -> tuple[str, str]:
    """A self-signed certificate for ``localhost``, made on first use.

    :arg directory: where to keep ``cert.pem`` and ``key.pem``; by default
        ``~/.cache/tornado_spdy``.
    :returns: the paths of the certificate and of its key.
    """
    if directory is None:
        directory = os.path.join(os.path.expanduser("~"), ".cache", "tornado_spdy")
    certfile = os.path.join(directory, "cert.pem")
    keyfile = os.path.join(directory, "key.pem")
    if not (os.path.exists(certfile) and os.path.exists(keyfile)):
        os.makedirs(directory, exist_ok=True)
        cert, key = _self_signed("localhost")
        with open(keyfile, "wb") as f:
            os.chmod(keyfile, 0o600)
            f.write(key)
        with open(certfile, "wb") as f:
            f.write(cert)
    return certfile, keyfile


def _self_signed(hostname: str) -> tuple[bytes, bytes]:
    """A PEM certificate and key for ``hostname``, valid for 825 days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    alt_names = x509.SubjectAlternativeName(
        [
            x509.DNSName(hostname),
            x509.IPAddress(_ip("127.0.0.1")),
            x509.IPAddress(_ip("::1")),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(alt_names, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _ip(text: str) -> Any:
    import ipaddress

    return ipaddress.ip_address(text)
