"""HTTPS: ``lungcad serve --ssl-certfile --ssl-keyfile`` as a real process with a self-signed certificate
made here (``cryptography``), reached with httpx verifying that certificate; HSTS on TLS responses only (the
API's own TLS, or ``X-Forwarded-Proto: https`` behind a proxy); CORS only for the listed origins."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from lungcad.service.app import create_app
from lungcad.service.context import open_context
from lungcad.service.db.session import transaction
from lungcad.service.security import Role, create_key
from lungcad.service.settings import load_settings
from tests.service.live import LiveProcess, lungcad_cli, service_env
from tests.service.processes import free_port

HSTS = "max-age=31536000; includeSubDomains"
SECRET = "tls-test-secret-" + "y" * 32


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A P-256 certificate for 127.0.0.1 / localhost, valid for a day, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lungcad test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _create_key(data: Path) -> str:
    ctx = open_context(load_settings(data, environ={}))
    try:
        with transaction(ctx.sessions) as s:
            return create_key(s, Role.VIEWER).key
    finally:
        ctx.close()


def test_serve_over_https_in_deployment_mode(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    data, port = tmp_path / "d", free_port()
    api_key = _create_key(data)
    argv = [*lungcad_cli(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    env = service_env(data, mode="deployment", secret_key=SECRET)
    proc = LiveProcess("api-tls", argv, env, tmp_path / "serve.log")
    base = f"https://127.0.0.1:{port}"
    verify = ssl.create_default_context(cafile=str(cert))
    try:
        with httpx.Client(base_url=base, verify=verify, timeout=5) as client:

            def up() -> bool:
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            deadline = time.monotonic() + 90
            while not up():
                assert proc.alive(), proc.tail()
                assert time.monotonic() < deadline, proc.tail()
                time.sleep(0.2)
            r = client.get("/api/v1/worklist", headers={"X-API-Key": api_key})
            assert r.status_code == 200, r.text
            assert r.headers["strict-transport-security"] == HSTS
            assert client.get("/api/v1/worklist").headers["strict-transport-security"] == HSTS  # a 401 too
        # the certificate is what makes it trusted: a client without it refuses the server
        with pytest.raises(httpx.ConnectError), httpx.Client(verify=True, timeout=5) as strict:
            strict.get(f"{base}/healthz")
        # plain HTTP to the TLS port gets no answer of the API
        with httpx.Client(timeout=5) as plain:
            try:
                answered = plain.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.HTTPError:
                answered = False
        assert not answered
    finally:
        proc.stop()
    assert f"lungcad API on {base}/api/v1" in proc.log()


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator:
    opened = []

    def make(**overrides: object) -> TestClient:
        ctx = open_context(load_settings(tmp_path / f"d{len(opened)}", environ={}, **overrides))
        client = TestClient(create_app(ctx=ctx))
        client.__enter__()
        opened.append((client, ctx))
        return client

    yield make
    for client, ctx in opened:
        client.__exit__(None, None, None)
        ctx.close()


def test_hsts_only_on_tls(make_client) -> None:
    plain = make_client()
    assert "strict-transport-security" not in plain.get("/healthz").headers
    # without behind_proxy the header of the client is not trusted
    spoofed = plain.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in spoofed.headers
    proxied = make_client(behind_proxy=True)
    assert (
        proxied.get("/healthz", headers={"X-Forwarded-Proto": "https"}).headers["strict-transport-security"]
        == HSTS
    )
    assert (
        "strict-transport-security"
        not in proxied.get("/healthz", headers={"X-Forwarded-Proto": "http"}).headers
    )
    tls = TestClient(plain.app, base_url="https://testserver")  # scope["scheme"] == "https"
    assert tls.get("/healthz").headers["strict-transport-security"] == HSTS


def test_cors_only_for_listed_origins(make_client) -> None:
    preflight = {"Origin": "https://viewer.example.org", "Access-Control-Request-Method": "GET"}
    none = make_client()
    r = none.options("/api/v1/worklist", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    listed = make_client(cors_origins=("https://viewer.example.org",))
    r = listed.options(
        "/api/v1/worklist", headers={**preflight, "Access-Control-Request-Headers": "X-API-Key"}
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://viewer.example.org"
    assert "x-api-key" in r.headers["access-control-allow-headers"].lower()
    other = listed.options("/api/v1/worklist", headers={**preflight, "Origin": "https://evil.example.com"})
    assert other.headers.get("access-control-allow-origin") != "https://evil.example.com"
    got = listed.get("/healthz", headers={"Origin": "https://viewer.example.org"})
    assert got.headers["access-control-allow-origin"] == "https://viewer.example.org"
