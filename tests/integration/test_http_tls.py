"""The HTTP API over TLS (``serve --http --tls-cert --tls-key``), with a self-signed
certificate made here: it answers over https, with the certificate it was given, and a
plaintext request to the same port gets no answer. The API serves the session's shared
service (``SharedServices``), on an account of its own."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from eventledger.http.auth import Scope, TokenTable, mint_token
from eventledger.http.serving import Tls, deploy_http, stop_http
from eventledger.runtime import free_port
from tests.integration.conftest import SharedServices


def _self_signed(folder: Path) -> Tls:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    tls = Tls(folder / "tls.crt", folder / "tls.key")
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tls


def test_the_api_answers_over_https_and_refuses_plaintext(
    shared: SharedServices, tmp_path: Path
) -> None:
    tls = _self_signed(tmp_path)
    settings = shared.supervised().settings
    token, line = mint_token(frozenset(Scope), "tls")
    port = free_port()
    trusted = ssl.create_default_context(cafile=str(tls.cert))
    try:
        url = deploy_http(settings, TokenTable.parse(line), port=port, tls=tls)
        assert url == f"https://127.0.0.1:{port}"
        assert httpx.get(f"{url}/healthz", verify=trusted, timeout=30).status_code == 200
        auth = {"Authorization": f"Bearer {token}"}
        opened = httpx.post(
            f"{url}/accounts",
            json={"id": "tls-1", "currency": "EUR"},
            headers=auth,
            verify=trusted,
            timeout=60,
        )
        assert opened.status_code == 201, opened.text
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/healthz", timeout=10)  # the system's CAs do not know it
    finally:
        stop_http(settings.app_id, shutdown=True)
    with pytest.raises(httpx.ConnectError):  # the API is gone: nothing holds the port
        httpx.get(f"https://127.0.0.1:{port}/healthz", verify=trusted, timeout=10)


def test_a_missing_certificate_is_said_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"TLS certificate .* is not a readable file"):
        Tls(tmp_path / "nope.crt", tmp_path / "nope.key").check()
