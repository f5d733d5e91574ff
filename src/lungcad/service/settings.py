"""Service settings: one validated object, built once at start-up from the environment and CLI flags.

One machine needs nothing but a data folder ``D``: SQLite (WAL) at ``D/lungcad.db``, a SQLite-backed Huey
queue at ``D/queue.db`` and the files under ``D``.  Past one machine, set a PostgreSQL URL and a Redis URL;
the code is the same.  Environment variables (``LUNGCAD_`` + the field name in capitals) override the
defaults and CLI flags override both, e.g.::

    LUNGCAD_DATABASE_URL=postgresql+psycopg://lungcad@db/lungcad LUNGCAD_QUEUE_URL=redis://queue:6379/0 \
        lungcad worker --data-dir /srv/lungcad
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from lungcad.errors import ConfigError

ENV_PREFIX = "LUNGCAD_"
DEFAULT_SECRET = "change-me"
MIN_SECRET_CHARS = 32
MiB = 1024 * 1024
GiB = 1024 * MiB


# an AE title (PS3.5 6.2, VR AE): 1-16 printable ASCII characters, no backslash, not all spaces
AETitle = Annotated[
    str, StringConstraints(min_length=1, max_length=16, pattern=r"^[ -\[\]-~]*[!-\[\]-~][ -\[\]-~]*$")
]
_LIST_FIELDS = ("cors_origins", "dicom_allowed_aets")  # comma-separated in the environment
_JSON_FIELDS = ("delivery_destinations",)  # a JSON list in the environment
DELIVERY_OBJECTS = ("seg", "sr", "pdf")  # DICOM SEG, the TID 1500 SR, the Encapsulated PDF report


class DeliveryDestination(BaseModel):
    """One place results are pushed to once an analysis is done (``lungcad.service.delivery``).

    ``kind: cstore`` sends each object by C-STORE to ``host:port`` (called AE ``called_ae``, calling AE
    ``calling_ae``); ``kind: stowrs`` POSTs it to ``url`` + ``/studies`` (DICOMweb STOW-RS), with HTTP basic
    auth (``username`` + ``password``) or a bearer ``token`` when given.  A failed attempt that may succeed
    later (see ``lungcad.service.delivery``) is retried up to ``max_attempts`` attempts in all, waiting
    ``backoff_s * 2**(n-1)`` seconds (at most ``backoff_cap_s``) after the n-th.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$", description="unique; in the delivery log")
    kind: Literal["cstore", "stowrs"]
    enabled: bool = True
    objects: tuple[Literal["seg", "sr", "pdf"], ...] = Field(DELIVERY_OBJECTS, min_length=1)
    host: str = ""
    port: int = Field(0, ge=0, le=65535)
    called_ae: AETitle | None = None
    calling_ae: AETitle = "LUNGCAD"
    url: str = Field("", description="DICOMweb root, e.g. https://pacs.example.org/dicom-web")
    username: str = ""
    password: SecretStr = SecretStr("")
    token: SecretStr = SecretStr("")
    verify_tls: bool = True
    timeout_s: float = Field(30.0, gt=0, le=600)
    max_attempts: int = Field(6, ge=1, le=50)
    backoff_s: float = Field(10.0, ge=0, le=3600)
    backoff_cap_s: float = Field(900.0, ge=0, le=86400)

    @model_validator(mode="after")
    def _check(self) -> DeliveryDestination:
        if len(set(self.objects)) != len(self.objects):
            raise ValueError(f"objects lists a kind twice: {list(self.objects)}")
        if self.kind == "cstore":
            if not self.host or not self.port or self.called_ae is None:
                raise ValueError("a cstore destination needs host, port (1-65535) and called_ae")
            if self.url or self.username or self.token.get_secret_value():
                raise ValueError("url, username and token are for stowrs destinations, not cstore")
        else:
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"a stowrs destination needs an http(s):// url, got {self.url!r}")
            if self.host or self.port or self.called_ae is not None:
                raise ValueError("host, port and called_ae are for cstore destinations, not stowrs")
            if bool(self.username) != bool(self.password.get_secret_value()):
                raise ValueError("basic auth needs both username and password")
            if self.username and self.token.get_secret_value():
                raise ValueError("give basic auth (username + password) or a bearer token, not both")
        return self

    @property
    def stow_url(self) -> str:
        """Where STOW-RS requests go: ``url`` + ``/studies`` (PS3.18 10.5)."""
        return self.url.rstrip("/") + "/studies"


class ServiceSettings(BaseModel):
    """Everything ``serve`` and ``worker`` need; validated when built (a bad value stops start-up)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path
    mode: Literal["local", "deployment"] = "local"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    database_url: str = Field("", description="SQLAlchemy URL; empty: SQLite at data_dir/lungcad.db")
    queue_url: str = Field("", description="redis://... for Redis; empty: SQLite Huey at data_dir/queue.db")
    queue_name: str = "lungcad"
    queue_immediate: bool = Field(False, description="run jobs in the calling process (tests, demos)")
    secret_key: str = DEFAULT_SECRET
    model_path: str = Field("", description="model file of a fresh data folder; empty: the shipped model")
    mlflow_tracking_uri: str = Field("", description="MLflow tracking URI; empty: data_dir/mlflow.db")
    max_upload_bytes: int = Field(4096 * MiB, gt=0, description="one request body (a study), bytes")
    max_files: int = Field(5000, gt=0, description="DICOM files per study")
    max_zip_ratio: float = Field(200.0, gt=1, description="uncompressed / compressed size of a zip member")
    job_timeout_s: float = Field(1800.0, gt=0, description="an analysis running longer fails")
    job_retries: int = Field(2, ge=0, le=10, description="re-runs of an analysis after a transient error")
    job_retry_delay_s: float = Field(5.0, ge=0)
    lease_s: float = Field(60.0, gt=0, description="a running job whose worker is silent this long is re-run")
    heartbeat_s: float = Field(5.0, gt=0)
    worker_threads: int = Field(1, ge=1, le=64)
    worker_read_ahead: bool = Field(
        True,
        description="a worker reads the next queued scan while the current one is analysed (one at most)",
    )
    gzip_min_bytes: int = Field(1024, ge=0)
    min_free_disk_bytes: int = Field(GiB, ge=0, description="/readyz fails below this free space, bytes")
    max_study_bytes: int = Field(16 * GiB, gt=0, description="one study, all uploads merged, bytes")
    rate_limit_per_minute: int = Field(600, ge=0, description="requests per API key per minute; 0: no limit")
    cors_origins: tuple[str, ...] = ()
    cohort_roots: str = Field(
        "", description="comma-separated folders POST /cohorts may register from (and data_dir/cohorts)"
    )
    training_slots: int = Field(
        0, ge=0, le=64, description="training processes at once per worker; 0: one per GPU, else 1"
    )
    ssl_certfile: str = Field("", description="PEM certificate (chain): serve HTTPS; empty: plain HTTP")
    ssl_keyfile: str = Field("", description="PEM private key of ssl_certfile")
    behind_proxy: bool = Field(False, description="TLS ends at a reverse proxy (X-Forwarded-Proto trusted)")
    # the DICOM listener (``lungcad dicom-listener``)
    dicom_host: str = Field("127.0.0.1", description="address the DICOM listener binds")
    dicom_port: int = Field(11112, ge=1, le=65535, description="TCP port of the DICOM listener")
    dicom_ae_title: AETitle = "LUNGCAD"
    dicom_allowed_aets: tuple[AETitle, ...] = Field((), description="calling AE titles accepted; empty: any")
    dicom_stable_s: float = Field(30.0, gt=0, description="a study is complete after this many quiet seconds")
    # result delivery (issue 16): SEG / SR / Encapsulated PDF pushed to PACS (``lungcad.service.delivery``)
    delivery_destinations: tuple[DeliveryDestination, ...] = Field(
        (), description="JSON list of destinations (C-STORE or STOW-RS) results are pushed to when done"
    )

    @model_validator(mode="after")
    def _check(self) -> ServiceSettings:
        if self.heartbeat_s * 2 > self.lease_s:
            raise ValueError(
                f"heartbeat_s ({self.heartbeat_s}) must be at most half of lease_s ({self.lease_s})"
            )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise SettingError(
                "ssl_certfile" if not self.ssl_certfile else "ssl_keyfile",
                "HTTPS needs both a certificate and its private key",
                "set both --ssl-certfile and --ssl-keyfile (LUNGCAD_SSL_CERTFILE, LUNGCAD_SSL_KEYFILE) "
                "or neither",
            )
        names = [d.name for d in self.delivery_destinations]
        if len(set(names)) != len(names):
            raise SettingError(
                "delivery_destinations",
                f"two delivery destinations share a name: {sorted({n for n in names if names.count(n) > 1})}",
                "give each destination in LUNGCAD_DELIVERY_DESTINATIONS its own name",
            )
        if self.mode != "local":
            _check_deployment(self)
        return self

    @property
    def delivery_targets(self) -> tuple[DeliveryDestination, ...]:
        """The enabled delivery destinations."""
        return tuple(d for d in self.delivery_destinations if d.enabled)

    @property
    def tls(self) -> bool:
        """The API itself serves HTTPS (not only a proxy in front of it)."""
        return bool(self.ssl_certfile and self.ssl_keyfile)

    # -- derived locations -----------------------------------------------------------------------------
    @property
    def cohort_root_paths(self) -> tuple[Path, ...]:
        """The folders cohorts may be registered from (resolved): ``cohort_roots`` and always
        ``data_dir/cohorts`` (where generated cohorts go)."""
        roots = [r.strip() for r in self.cohort_roots.split(",") if r.strip()]
        return (*(Path(r).resolve() for r in roots), (Path(self.data_dir) / "cohorts").resolve())

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'lungcad.db').resolve()}"

    @property
    def queue_file(self) -> Path:
        return self.data_dir / "queue.db"

    @property
    def uses_redis(self) -> bool:
        return self.queue_url.startswith(("redis://", "rediss://", "unix://"))


class SettingError(ValueError):
    """A setting that stops start-up: ``setting`` names it, ``fix`` says what to do."""

    def __init__(self, setting: str, message: str, fix: str) -> None:
        super().__init__(message)
        self.setting, self.fix = setting, fix


def _check_deployment(s: ServiceSettings) -> None:
    """Outside ``mode: local``: a real secret, no wildcard CORS origin (the secret keys the patient-id
    hashes; a wildcard origin lets any web page drive the API with a user's browser)."""
    if s.secret_key in {"", DEFAULT_SECRET} or len(s.secret_key) < MIN_SECRET_CHARS:
        raise SettingError(
            "secret_key",
            f"the secret is empty, the default or shorter than {MIN_SECRET_CHARS} characters",
            "set LUNGCAD_SECRET_KEY to a random value of 32+ characters, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'",
        )
    for d in s.delivery_destinations:
        secret = d.password.get_secret_value() or d.token.get_secret_value()
        if secret and d.url.startswith("http://"):
            raise SettingError(
                "delivery_destinations",
                f"delivery destination {d.name!r} sends credentials over plain http://",
                "use an https:// url for a STOW-RS destination with a password or token",
            )
    if any("*" in origin for origin in s.cors_origins):
        raise SettingError(
            "cors_origins",
            "a CORS origin holds '*' (any web site could call the API)",
            "list the exact origins, e.g. LUNGCAD_CORS_ORIGINS=https://viewer.example.org",
        )


def check_serving(s: ServiceSettings) -> None:
    """What ``serve`` needs beyond :class:`ServiceSettings`' own checks: outside ``mode: local``, HTTPS --
    the API's own (``ssl_certfile`` + ``ssl_keyfile``, both readable) or a TLS proxy (``behind_proxy``).

    Raises:
        ConfigError: naming the setting and the fix (the CLI exits with code 2).
    """
    for name in ("ssl_certfile", "ssl_keyfile"):
        value = getattr(s, name)
        if value and not Path(value).is_file():
            raise ConfigError(
                f"invalid service setting {name}: no file {value!r}",
                fix=f"point --{name.replace('_', '-')} ({ENV_PREFIX}{name.upper()}) at a PEM file",
            )
    if s.mode != "local" and not s.tls and not s.behind_proxy:
        raise ConfigError(
            "invalid service setting ssl_certfile: outside mode 'local' the API must be reached over HTTPS",
            fix="pass --ssl-certfile and --ssl-keyfile, or set LUNGCAD_BEHIND_PROXY=true when a reverse "
            "proxy ends TLS in front of the service",
        )


def load_settings(
    data_dir: str | Path | None = None, *, environ: Mapping[str, str] | None = None, **overrides: object
) -> ServiceSettings:
    """Settings from ``LUNGCAD_*`` variables, then ``overrides`` (CLI flags; ``None`` values are ignored).

    Raises:
        ConfigError: a value is missing or invalid (the message names the field and the variable).
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name in ServiceSettings.model_fields:
        key = ENV_PREFIX + name.upper()
        if key in env:
            raw = env[key]
            if name in _JSON_FIELDS:
                values[name] = _json_list(key, raw)
            else:
                values[name] = tuple(v for v in raw.split(",") if v) if name in _LIST_FIELDS else raw
    if data_dir is not None:
        values["data_dir"] = data_dir
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "data_dir" not in values:
        raise ConfigError("no data folder for the service", fix="pass --data-dir D (or set LUNGCAD_DATA_DIR)")
    try:
        return ServiceSettings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = (first.get("ctx") or {}).get("error")
        if isinstance(cause, SettingError):
            raise ConfigError(f"invalid service setting {cause.setting}: {cause}", fix=cause.fix) from exc
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        if first["loc"] and first["loc"][0] in _JSON_FIELDS:
            raise ConfigError(
                f"invalid service setting {field}: {first['msg']}",
                fix=f"correct entry {field.split('.')[1] if len(first['loc']) > 1 else ''} of "
                f"{ENV_PREFIX}{str(first['loc'][0]).upper()} (a JSON list of objects; docs/deploy.md)",
            ) from exc
        raise ConfigError(
            f"invalid service setting {field}: {first['msg']}",
            fix=f"correct {ENV_PREFIX}{field.upper()} or the matching command-line option",
        ) from exc


def _json_list(key: str, raw: str) -> list[object]:
    """A JSON list from the environment variable ``key`` (empty: no entries)."""
    if not raw.strip():
        return []
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid service setting {key}: not JSON ({exc.msg} at character {exc.pos})",
            fix=f'set {key} to a JSON list, e.g. [{{"name": "pacs", "kind": "cstore", ...}}]',
        ) from exc
    if not isinstance(value, list):
        raise ConfigError(
            f"invalid service setting {key}: a JSON {type(value).__name__}, not a list",
            fix=f"wrap the destination in [ ]: {key}=[{{...}}]",
        )
    return value
