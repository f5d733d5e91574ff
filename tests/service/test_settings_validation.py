"""Start-up checks of the settings: outside ``mode: local`` no default, empty or short secret, no ``*`` CORS
origin, and HTTPS (the API's own or a TLS proxy) -- each a ``ConfigError`` naming the setting and the fix,
and ``lungcad serve`` exits with code 2 before it listens."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lungcad.errors import ConfigError
from lungcad.service.settings import ServiceSettings, check_serving, load_settings
from tests.service.live import lungcad_cli, service_env

GOOD_SECRET = "s3cr3t-" + "x" * 40


def deployment(tmp_path: Path, **env: str) -> ServiceSettings:
    environ = {"LUNGCAD_MODE": "deployment", "LUNGCAD_SECRET_KEY": GOOD_SECRET, **env}
    return load_settings(tmp_path / "d", environ={k: v for k, v in environ.items() if v is not None})


def pem_files(tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    return str(cert), str(key)


@pytest.mark.parametrize("secret", ["", "change-me", "short-but-not-default", "x" * 31])
def test_a_weak_secret_is_refused_outside_local(tmp_path: Path, secret: str) -> None:
    with pytest.raises(ConfigError) as err:
        deployment(tmp_path, LUNGCAD_SECRET_KEY=secret, LUNGCAD_BEHIND_PROXY="true")
    assert "secret_key" in str(err.value) and "LUNGCAD_SECRET_KEY" in err.value.fix
    assert "32" in str(err.value)


def test_a_wildcard_cors_origin_is_refused_outside_local(tmp_path: Path) -> None:
    for origins in ("*", "https://a.example.org,*", "https://*.example.org"):
        with pytest.raises(ConfigError) as err:
            deployment(tmp_path, LUNGCAD_CORS_ORIGINS=origins, LUNGCAD_BEHIND_PROXY="true")
        assert "cors_origins" in str(err.value) and "LUNGCAD_CORS_ORIGINS" in err.value.fix
    ok = deployment(tmp_path, LUNGCAD_CORS_ORIGINS="https://viewer.example.org", LUNGCAD_BEHIND_PROXY="true")
    assert ok.cors_origins == ("https://viewer.example.org",)


def test_serving_needs_tls_or_a_proxy_outside_local(tmp_path: Path) -> None:
    plain = deployment(tmp_path)
    with pytest.raises(ConfigError) as err:
        check_serving(plain)
    assert (
        "ssl_certfile" in str(err.value)
        and "--ssl-certfile" in err.value.fix
        and "BEHIND_PROXY" in err.value.fix
    )
    check_serving(deployment(tmp_path, LUNGCAD_BEHIND_PROXY="true"))
    cert, key = pem_files(tmp_path)
    tls = deployment(tmp_path, LUNGCAD_SSL_CERTFILE=cert, LUNGCAD_SSL_KEYFILE=key)
    assert tls.tls
    check_serving(tls)


def test_tls_files_are_checked_in_every_mode(tmp_path: Path) -> None:
    cert, key = pem_files(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / "d", environ={"LUNGCAD_SSL_CERTFILE": cert})
    assert "ssl_keyfile" in str(err.value) and "--ssl-keyfile" in err.value.fix
    missing = load_settings(
        tmp_path / "d", environ={}, ssl_certfile=cert, ssl_keyfile=str(tmp_path / "nope.pem")
    )
    with pytest.raises(ConfigError, match="ssl_keyfile: no file"):
        check_serving(missing)


def test_local_mode_keeps_the_easy_defaults(tmp_path: Path) -> None:
    local = load_settings(tmp_path / "d", environ={"LUNGCAD_CORS_ORIGINS": "*"})
    assert local.secret_key == "change-me" and not local.tls and not local.behind_proxy
    check_serving(local)  # plain HTTP on loopback is fine for one machine
    assert local.rate_limit_per_minute == 600 and local.max_study_bytes > local.max_upload_bytes


def test_the_app_refuses_to_build_without_tls_outside_local(tmp_path: Path) -> None:
    from lungcad.service.app import create_app

    with pytest.raises(ConfigError, match="ssl_certfile"):
        create_app(deployment(tmp_path))


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"SECRET_KEY": "change-me", "BEHIND_PROXY": "true"}, "secret_key"),
        ({"SECRET_KEY": GOOD_SECRET, "CORS_ORIGINS": "*", "BEHIND_PROXY": "true"}, "cors_origins"),
        ({"SECRET_KEY": GOOD_SECRET}, "ssl_certfile"),
    ],
)
def test_serve_exits_2_naming_the_setting(tmp_path: Path, env: dict[str, str], setting: str) -> None:
    run = subprocess.run(
        [*lungcad_cli(), "serve", "--port", "1"],
        env=service_env(tmp_path / "d", mode="deployment", **{k.lower(): v for k, v in env.items()}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert setting in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "d" / "lungcad.db").exists()  # refused before touching the data folder
