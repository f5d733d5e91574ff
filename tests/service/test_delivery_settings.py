"""``LUNGCAD_DELIVERY_DESTINATIONS``: a JSON list of destinations, validated at start-up.  Each bad value is a
``ConfigError`` naming the entry and the field (or the JSON problem) and the fix; ``lungcad dicom-listener``
exits with code 2 on one before it listens."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lungcad.errors import ConfigError
from lungcad.service.settings import ServiceSettings, load_settings
from tests.service.live import lungcad_cli, service_env
from tests.service.processes import free_port

KEY = "LUNGCAD_DELIVERY_DESTINATIONS"
GOOD_SECRET = "s3cr3t-" + "x" * 40
PACS = {"name": "pacs", "kind": "cstore", "host": "pacs.example.org", "port": 104, "called_ae": "PACS"}
VNA = {"name": "vna", "kind": "stowrs", "url": "https://vna.example.org/dicom-web"}


def settings(tmp_path: Path, value: object, **env: str) -> ServiceSettings:
    raw = value if isinstance(value, str) else json.dumps(value)
    return load_settings(tmp_path / "d", environ={KEY: raw, **env})


def test_a_list_of_destinations_with_defaults(tmp_path: Path) -> None:
    s = settings(tmp_path, [PACS, {**VNA, "objects": ["sr", "pdf"], "token": "t0k", "enabled": False}])
    pacs, vna = s.delivery_destinations
    assert (pacs.kind, pacs.calling_ae, pacs.objects, pacs.max_attempts) == (
        "cstore",
        "LUNGCAD",
        ("seg", "sr", "pdf"),
        6,
    )
    assert (pacs.timeout_s, pacs.backoff_s, pacs.backoff_cap_s) == (30.0, 10.0, 900.0)
    assert vna.stow_url == "https://vna.example.org/dicom-web/studies" and vna.objects == ("sr", "pdf")
    assert "t0k" not in repr(vna)  # the token is a secret: never in a repr or a log line
    assert s.delivery_targets == (pacs,)  # only the enabled ones
    assert settings(tmp_path, "").delivery_destinations == ()
    assert load_settings(tmp_path / "d", environ={}).delivery_destinations == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[{", "not JSON"),
        (json.dumps(PACS), "not a list"),
        ([{**PACS, "kind": "ftp"}], "delivery_destinations.0.kind"),
        ([{k: v for k, v in PACS.items() if k != "called_ae"}], "needs host, port (1-65535) and called_ae"),
        ([{**PACS, "port": 70000}], "delivery_destinations.0.port"),
        ([{**PACS, "called_ae": "A" * 17}], "delivery_destinations.0.called_ae"),
        ([{**PACS, "url": "https://x"}], "url, username and token are for stowrs"),
        ([{**VNA, "url": "ftp://vna"}], "needs an http(s):// url"),
        ([{**VNA, "host": "vna"}], "host, port and called_ae are for cstore"),
        ([{**VNA, "username": "u"}], "needs both username and password"),
        ([{**VNA, "username": "u", "password": "p", "token": "t"}], "not both"),
        ([{**PACS, "objects": []}], "delivery_destinations.0.objects"),
        ([{**PACS, "objects": ["seg", "seg"]}], "lists a kind twice"),
        ([{**PACS, "objects": ["png"]}], "delivery_destinations.0.objects"),
        ([{**PACS, "name": "has space"}], "delivery_destinations.0.name"),
        ([{**PACS, "max_attempts": 0}], "delivery_destinations.0.max_attempts"),
        ([{**PACS, "retries": 3}], "delivery_destinations.0.retries"),  # a typo is not ignored
        ([PACS, {**VNA, "name": "pacs"}], "share a name: ['pacs']"),
    ],
)
def test_a_bad_destination_stops_start_up(tmp_path: Path, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings(tmp_path, value)
    assert message in str(err.value), str(err.value)
    assert KEY in err.value.fix


def test_credentials_over_plain_http_are_refused_outside_local(tmp_path: Path) -> None:
    env = {"LUNGCAD_MODE": "deployment", "LUNGCAD_SECRET_KEY": GOOD_SECRET}
    plain = {**VNA, "url": "http://vna.internal/dicom-web", "username": "lungcad", "password": "pw"}
    with pytest.raises(ConfigError, match="credentials over plain http") as err:
        settings(tmp_path, [plain], **env)
    assert "https://" in err.value.fix
    assert settings(tmp_path, [{**plain, "url": "https://vna.internal/dicom-web"}], **env)
    assert settings(
        tmp_path, [{**VNA, "url": "http://vna.internal/dicom-web"}], **env
    )  # no credentials: fine
    assert settings(tmp_path, [plain])  # mode local: allowed


def test_the_listener_exits_2_on_a_bad_destination(tmp_path: Path) -> None:
    env = service_env(tmp_path / "d", delivery_destinations=json.dumps([{**PACS, "port": "x"}]))
    run = subprocess.run(
        [*lungcad_cli(), "dicom-listener", "--data-dir", str(tmp_path / "d"), "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "delivery_destinations.0.port" in run.stderr and KEY in run.stderr
    assert "Traceback" not in run.stderr
