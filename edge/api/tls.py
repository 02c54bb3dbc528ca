"""HTTPS on the store LAN: which certificate, one made here when none is configured, and the
server context the LAN listener serves it with.

Registers trust the gateway by pinning its certificate's SHA-256 fingerprint (shown by
`edge-gateway tls show`, `doctor`, the status page and the zeroconf record), so a
self-signed certificate made at first start protects a store as well as one from the
store's CA; a configured CA-issued certificate also verifies the ordinary way. Reading a
certificate needs only the standard library; `cryptography` is loaded to make one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import logging
import os
import re
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.errors import ConfigError
from edge.settings import Settings

log = logging.getLogger(__name__)

TLS_DIR = "tls"
DEFAULT_CERT_NAME = "lan-cert.pem"
DEFAULT_KEY_NAME = "lan-key.pem"
# Registers pin the fingerprint, and a new certificate means pinning again on every
# register: five years keeps that to the life of the hardware. Backdated a day, for boxes
# whose clock is a little behind at boot.
VALIDITY = timedelta(days=5 * 365 + 1)
BACKDATE = timedelta(days=1)
# TLS 1.2 suites when 1.2 is allowed: forward secrecy and AEAD only (TLS 1.3's are fixed).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"

_PEM_CERT = re.compile(
    r"-----BEGIN CERTIFICATE-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----"
)
_DNS_LABELS = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def certificate_paths(settings: Settings) -> tuple[Path, Path]:
    """The LAN certificate and key files: configured, or `<data_dir>/tls/lan-*.pem`."""
    tls = settings.lan.tls
    if tls.cert_file is not None and tls.key_file is not None:
        return tls.cert_file, tls.key_file
    folder = settings.data_dir / TLS_DIR
    return folder / DEFAULT_CERT_NAME, folder / DEFAULT_KEY_NAME


def generated_certificate(settings: Settings) -> bool:
    """Whether the gateway makes its own certificate (none is configured)."""
    return settings.lan.tls.cert_file is None


def is_loopback(host: str) -> bool:
    """Whether a bind address reaches this machine only (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def serves_tls(settings: Settings) -> bool:
    """Whether the LAN API serves HTTPS: `on`, or `auto` unless bound to loopback only."""
    mode = settings.lan.tls.mode
    if mode == "auto":
        return not is_loopback(settings.lan.bind)
    return mode == "on"


def fingerprint_of(der: bytes) -> str:
    """SHA-256 of a DER certificate as `openssl x509 -fingerprint -sha256` prints it."""
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def first_certificate_der(path: Path) -> bytes:
    """The first certificate of a PEM file (the leaf of a chain); ValueError if none."""
    text = path.read_text(encoding="ascii", errors="replace")
    found = _PEM_CERT.search(text)
    if found is None:
        msg = f"{path} holds no PEM certificate"
        raise ValueError(msg)
    try:
        return base64.b64decode("".join(found["body"].split()), validate=True)
    except binascii.Error:
        msg = f"{path}: the certificate is not valid base64"
        raise ValueError(msg) from None


def certificate_fingerprint(path: Path) -> str:
    """The SHA-256 fingerprint ("AB:CD:...") of the first certificate in a PEM file.

    Raises OSError when the file cannot be read and ValueError when it holds no certificate.
    """
    return fingerprint_of(first_certificate_der(path))


@dataclass(frozen=True)
class CertificateInfo:
    """What `tls show` and `doctor` tell about a certificate."""

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint: str
    dns_names: list[str]
    ip_addresses: list[str]

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer


def describe_certificate(path: Path) -> CertificateInfo:
    """Subject, validity, names and fingerprint of the first certificate in a PEM file.

    Raises OSError when the file cannot be read, ValueError when it holds no certificate.
    """
    from cryptography import x509  # noqa: PLC0415 - operator commands only

    der = first_certificate_der(path)
    cert = x509.load_der_x509_certificate(der)
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        dns: list[str] = []
        ips: list[str] = []
    else:
        dns = alt.get_values_for_type(x509.DNSName)
        ips = [str(a) for a in alt.get_values_for_type(x509.IPAddress)]
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=fingerprint_of(der),
        dns_names=dns,
        ip_addresses=ips,
    )


def certificate_names() -> tuple[list[str], list[str]]:
    """Names a register may use for this machine: its host name, `<host>.local` (mDNS),
    `localhost`, and the addresses of its interfaces with the loopback ones."""
    host = socket.gethostname()
    short = host.split(".")[0]
    dns = [name for name in (host, f"{short}.local", "localhost") if _DNS_LABELS.match(name)]
    addresses = ["127.0.0.1", "::1", *(str(a) for a in interface_addresses())]
    return list(dict.fromkeys(dns)), list(dict.fromkeys(addresses))


def interface_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses of this machine's interfaces, loopback included, link-local left out
    (a register cannot use them without naming the interface)."""
    import ifaddr  # noqa: PLC0415 - only when a certificate is made or a record advertised

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ipaddress.ip_address(ip.ip if isinstance(ip.ip, str) else ip.ip[0])
            if not address.is_link_local:
                found.append(address)
    return found


def generate_certificate(
    cert_path: Path,
    key_path: Path,
    *,
    common_name: str,
    organization: str,
    dns_names: list[str],
    ip_addresses: list[str],
    now: datetime | None = None,
) -> str:
    """Write a self-signed ECDSA P-256 certificate and its key (0600); its fingerprint.

    Each file is written beside its final path and renamed into place, so a crash leaves
    the old pair or the new one, never half of one.
    """
    from cryptography import x509  # noqa: PLC0415 - loaded only to make a certificate
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )
    alt_names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    start = (now or datetime.now(UTC)) - BACKDATE
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + BACKDATE + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomically(key_path, key_pem, 0o600)
    _write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return fingerprint_of(cert.public_bytes(serialization.Encoding.DER))


def generate_for(settings: Settings) -> str:
    """A new self-signed certificate at the configured paths, named for this gateway."""
    cert_path, key_path = certificate_paths(settings)
    dns, addresses = certificate_names()
    return generate_certificate(
        cert_path,
        key_path,
        common_name=dns[0] if dns else "edge-gateway",
        organization=f"edge-gateway store {settings.store_id} {settings.gateway_id}",
        dns_names=dns,
        ip_addresses=addresses,
    )


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(path)


def server_context(
    cert_path: Path,
    key_path: Path,
    min_version: str,
    *,
    names: tuple[str, str] = ("lan.tls.cert_file", "lan.tls.key_file"),
) -> ssl.SSLContext:
    """The LAN listener's context: TLS 1.3 (or 1.2 and newer), no compression, AEAD suites.

    Raises ConfigError naming the setting at fault (`names`: the certificate's, the key's)
    when the files cannot be used.
    """
    cert_key, key_key = names
    for path, key in ((cert_path, cert_key), (key_path, key_key)):
        if not path.is_file():
            raise ConfigError([(key, f"{path} does not exist or is not a file")])
    try:
        first_certificate_der(cert_path)
    except (OSError, ValueError) as exc:
        raise ConfigError([(cert_key, f"cannot read a certificate: {exc}")]) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_ciphers(TLS12_CIPHERS)
    try:
        context.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            problem = f"{key_path} is not the key of the certificate {cert_path}"
        else:
            problem = f"cannot load {cert_path} with {key_path}: {exc.reason or exc}"
        raise ConfigError([(key_key, problem)]) from None
    except OSError as exc:
        raise ConfigError([(key_key, f"cannot read {key_path}: {exc}")]) from None
    return context


@dataclass(frozen=True)
class LanTls:
    """What the LAN listener serves and what registers pin."""

    context: ssl.SSLContext
    fingerprint: str


def prepare_lan_tls(settings: Settings) -> LanTls | None:
    """The LAN API's TLS per the settings, making the certificate on first start; None when
    the API serves plain HTTP. Blocking (file I/O, key generation): run off the loop."""
    if not serves_tls(settings):
        return None
    cert_path, key_path = certificate_paths(settings)
    generated = generated_certificate(settings)
    if generated and not (cert_path.exists() and key_path.exists()):
        try:
            fingerprint = generate_for(settings)
        except OSError as exc:
            problem = f"cannot write {cert_path.parent}: {exc}"
            raise ConfigError([("lan.tls (generated certificate)", problem)]) from None
        log.info("made a self-signed LAN certificate %s (SHA-256 %s)", cert_path, fingerprint)
    names = (
        ("lan.tls (generated certificate)", "lan.tls (generated key)")
        if generated
        else ("lan.tls.cert_file", "lan.tls.key_file")
    )
    try:
        context = server_context(cert_path, key_path, settings.lan.tls.min_version, names=names)
    except ConfigError as exc:
        if not generated:
            raise
        hint = "; `edge-gateway tls generate --force` makes a new pair (registers pin it anew)"
        raise ConfigError([(key, f"{problem}{hint}") for key, problem in exc.problems]) from None
    fingerprint = certificate_fingerprint(cert_path)
    log.info("LAN API certificate %s, SHA-256 %s", cert_path, fingerprint)
    return LanTls(context, fingerprint)
