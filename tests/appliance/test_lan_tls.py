"""HTTPS on the store LAN, end to end: the real daemon, real TLS clients (aiohttp pinning the
fingerprint, Python's ssl, `openssl s_client`), certificates made here with `cryptography`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import ssl
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.api.tls import certificate_fingerprint, fingerprint_of, serves_tls
from edge.settings import load_settings
from tests.core.daemon import add_client, cli, env_for, free_port, launch

# ---- certificates of a store CA, made in the test -------------------------------------------


class StoreCa:
    """A CA as a store's IT would run one, issuing server certificates for gateways."""

    def __init__(self, folder: Path, name: str = "Store 0042 CA") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.path = folder / "store-ca.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, stem: str, ips: tuple[str, ...] = ("127.0.0.1",)) -> tuple[Path, Path]:
        """A server certificate for `ips` and `localhost`, and its key, as PEM files."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        names: list[x509.GeneralName] = [x509.DNSName("localhost")]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_path = self.folder / f"{stem}.pem"
        key_path = self.folder / f"{stem}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return cert_path, key_path


# ---- the daemon --------------------------------------------------------------------------


@contextmanager
def gateway(tmp_path: Path, **settings: str) -> Iterator[tuple[dict[str, str], int, Path]]:
    """The daemon on a free loopback port with `settings` (EDGE_* variables); yields its
    environment, port and log, and checks it stops cleanly and logged no traceback."""
    port = free_port()
    env = env_for(tmp_path / "data", port, **settings)
    client = add_client(env)
    env["TEST_CLIENT_ID"], env["TEST_CLIENT_SECRET"] = client["client_id"], client["client_secret"]
    log = tmp_path / "daemon.log"
    proc = launch(env, tmp_path, log)
    try:
        yield env, port, log
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text()


def pin(fingerprint: str) -> aiohttp.Fingerprint:
    """What a register configures: the SHA-256 of the certificate, as aiohttp takes it."""
    return aiohttp.Fingerprint(bytes.fromhex(fingerprint.replace(":", "")))


def sale(sale_id: str) -> dict[str, object]:
    return {
        "sale_id": sale_id,
        "occurred_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "currency": "USD",
        "lines": [
            {
                "line_id": "1",
                "sku": "TSHIRT-M-BLK",
                "description": "T-shirt",
                "quantity": 1,
                "unit_price": "19.99",
                "discount": "0.00",
                "tax": "1.60",
            }
        ],
        "tenders": [
            {"tender_id": "t1", "type": "card", "amount": "21.59", "payment_token": "tok_9f8e"}
        ],
    }


async def token_and_sale(base: str, env: dict[str, str], ssl_option: object) -> dict[str, object]:
    """A register's first minutes: a token over HTTPS, a sale recorded, the sale read back."""
    basic = aiohttp.encode_basic_auth(env["TEST_CLIENT_ID"], env["TEST_CLIENT_SECRET"])
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic},
            ssl=ssl_option,  # type: ignore[arg-type]
        ) as reply:
            assert reply.status == 200, await reply.text()
            token = (await reply.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with session.post(
            f"{base}/v1/sales", json=sale("0042-03-TLS-0001"), headers=headers, ssl=ssl_option
        ) as reply:
            assert reply.status == 201, await reply.text()
        async with session.get(
            f"{base}/v1/sales/0042-03-TLS-0001", headers=headers, ssl=ssl_option
        ) as reply:
            assert reply.status == 200
            return dict(await reply.json())


async def handshake(port: int, context: ssl.SSLContext) -> tuple[str, bytes]:
    """Open a TLS connection: the version agreed and the certificate served (DER)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    try:
        tls = writer.get_extra_info("ssl_object")
        return str(tls.version()), bytes(tls.getpeercert(binary_form=True))
    finally:
        writer.close()
        await writer.wait_closed()
        del reader


def unverified(max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client that checks nothing (the test compares fingerprints itself)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        context.maximum_version = max_version
    return context


def s_client(port: int, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *flags],
        input="",
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def openssl_fingerprint(pem: str) -> str:
    """`openssl x509 -fingerprint -sha256` of the first certificate in `pem`."""
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
        input=pem,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().split("=", 1)[1]


# ---- tests -------------------------------------------------------------------------------


async def test_https_with_the_generated_certificate_pinned_by_a_register(tmp_path: Path) -> None:
    with gateway(tmp_path, EDGE_LAN__TLS__MODE="on") as (env, port, log):
        cert = tmp_path / "data" / "tls" / "lan-cert.pem"
        key = tmp_path / "data" / "tls" / "lan-key.pem"
        fingerprint = certificate_fingerprint(cert)
        assert (key.stat().st_mode & 0o777) == 0o600, "the private key is the owner's alone"
        assert fingerprint in log.read_text(), "the daemon logs the fingerprint to pin"
        shown = json.loads(cli(env, "tls", "show", "--json").stdout)
        assert (shown["sha256"], shown["scheme"], shown["self_signed"]) == (
            fingerprint,
            "https",
            True,
        )
        assert "127.0.0.1" in shown["ip_addresses"]
        not_after = datetime.fromisoformat(shown["not_after"])
        assert not_after - datetime.now(UTC) > timedelta(days=4 * 365)

        base = f"https://127.0.0.1:{port}"
        got = await token_and_sale(base, env, pin(fingerprint))
        assert got["sale_id"] == "0042-03-TLS-0001"

        wrong = "00:" + fingerprint[3:]
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ServerFingerprintMismatch):
                await session.get(f"{base}/readyz", ssl=pin(wrong))
            with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS port
                await session.get(f"http://127.0.0.1:{port}/readyz")

        version, der = await handshake(port, unverified())
        assert (version, fingerprint_of(der)) == ("TLSv1.3", fingerprint)
        with pytest.raises((ssl.SSLError, ConnectionResetError)):  # 1.3 unless a setting says
            await handshake(port, unverified(max_version=ssl.TLSVersion.TLSv1_2))

        assert (await asyncio.to_thread(s_client, port, "-tls1_2")).returncode != 0
        served = await asyncio.to_thread(s_client, port, "-tls1_3")
        assert served.returncode == 0, served.stderr
        assert "TLSv1.3" in served.stdout
        printed = await asyncio.to_thread(openssl_fingerprint, served.stdout)
        assert printed == fingerprint, "the same format as openssl's"


async def test_a_store_ca_certificate_with_tls_1_2_allowed(tmp_path: Path) -> None:
    ca = StoreCa(tmp_path / "pki")
    cert, key = ca.issue("gateway-0042-03")
    settings = {
        "EDGE_LAN__TLS__MODE": "on",
        "EDGE_LAN__TLS__CERT_FILE": str(cert),
        "EDGE_LAN__TLS__KEY_FILE": str(key),
        "EDGE_LAN__TLS__MIN_VERSION": "1.2",
    }
    with gateway(tmp_path, **settings) as (env, port, _log):
        assert not (tmp_path / "data" / "tls").exists(), "nothing generated beside a CA cert"
        verifying = ssl.create_default_context(cafile=str(ca.path))
        got = await token_and_sale(f"https://127.0.0.1:{port}", env, verifying)
        assert got["sale_id"] == "0042-03-TLS-0001"

        only_12 = ssl.create_default_context(cafile=str(ca.path))
        only_12.maximum_version = ssl.TLSVersion.TLSv1_2
        version, der = await handshake(port, only_12)
        assert (version, fingerprint_of(der)) == ("TLSv1.2", certificate_fingerprint(cert))
        version, _ = await handshake(port, verifying)
        assert version == "TLSv1.3", "1.3 is still preferred"

        other = StoreCa(tmp_path / "other", "Another store's CA")
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake(port, ssl.create_default_context(cafile=str(other.path)))

        shown = json.loads(cli(env, "tls", "show", "--json").stdout)
        assert shown["cert_file"] == str(cert)
        assert (shown["issuer"], shown["self_signed"]) == ("CN=Store 0042 CA", False)


async def test_auto_mode_on_loopback_serves_plain_http(tmp_path: Path) -> None:
    with gateway(tmp_path) as (_env, port, log):
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/readyz") as reply,
        ):
            assert reply.status == 200
        assert f"listening on http://127.0.0.1:{port}" in log.read_text()
    assert not (tmp_path / "data" / "tls").exists(), "no certificate is made for plain HTTP"


@pytest.mark.parametrize(
    ("bind", "mode", "https"),
    [
        ("127.0.0.1", "auto", False),
        ("127.10.0.1", "auto", False),
        ("::1", "auto", False),
        ("localhost", "auto", False),
        ("0.0.0.0", "auto", True),
        ("::", "auto", True),
        ("192.0.2.10", "auto", True),
        ("127.0.0.1", "on", True),
        ("0.0.0.0", "off", False),
    ],
)
def test_which_binds_serve_https(bind: str, mode: str, https: bool) -> None:
    settings = load_settings(None, environ={}, lan={"bind": bind, "tls": {"mode": mode}})
    assert serves_tls(settings) is https


def _mismatched(ca: StoreCa) -> dict[str, str]:
    cert, _ = ca.issue("one")
    _, other_key = ca.issue("two")
    return {"EDGE_LAN__TLS__CERT_FILE": str(cert), "EDGE_LAN__TLS__KEY_FILE": str(other_key)}


def _missing(ca: StoreCa) -> dict[str, str]:
    _, key = ca.issue("one")
    gone = ca.folder / "gone.pem"
    return {"EDGE_LAN__TLS__CERT_FILE": str(gone), "EDGE_LAN__TLS__KEY_FILE": str(key)}


def _not_a_certificate(ca: StoreCa) -> dict[str, str]:
    _, key = ca.issue("one")
    junk = ca.folder / "junk.pem"
    junk.write_text("this is not a certificate\n")
    return {"EDGE_LAN__TLS__CERT_FILE": str(junk), "EDGE_LAN__TLS__KEY_FILE": str(key)}


def _cert_alone(ca: StoreCa) -> dict[str, str]:
    cert, _ = ca.issue("one")
    return {"EDGE_LAN__TLS__CERT_FILE": str(cert)}


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_mismatched, "config error: lan.tls.key_file: "),
        (_missing, "config error: lan.tls.cert_file: "),
        (_not_a_certificate, "config error: lan.tls.cert_file: cannot read a certificate"),
        (_cert_alone, "config error: lan.tls: Value error, cert_file and key_file go together"),
    ],
)
def test_an_unusable_certificate_setting_stops_the_daemon_with_a_clear_error(
    tmp_path: Path, make: Callable[[StoreCa], dict[str, str]], expected: str
) -> None:
    ca = StoreCa(tmp_path / "pki")
    env = env_for(tmp_path / "data", free_port(), EDGE_LAN__TLS__MODE="on", **make(ca))
    out = cli(env, "run")
    assert out.returncode == 2, out.stderr
    assert expected in out.stderr
    assert "Traceback" not in out.stderr
    if make is _mismatched:
        assert "is not the key of the certificate" in out.stderr


def test_tls_generate_refuses_to_replace_a_pinned_certificate_without_force(
    tmp_path: Path,
) -> None:
    env = env_for(tmp_path / "data", free_port())
    first = cli(env, "tls", "generate")
    assert first.returncode == 0, first.stderr
    cert = tmp_path / "data" / "tls" / "lan-cert.pem"
    before = certificate_fingerprint(cert)
    assert before in first.stdout
    again = cli(env, "tls", "generate")
    assert again.returncode == 1
    assert "--force" in again.stderr
    assert certificate_fingerprint(cert) == before
    forced = cli(env, "tls", "generate", "--force")
    assert forced.returncode == 0, forced.stderr
    after = certificate_fingerprint(cert)
    assert after != before
    shown = cli(env, "tls", "show")
    assert shown.returncode == 0
    assert after in shown.stdout
    assert "self-signed" in shown.stdout
