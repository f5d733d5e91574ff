"""``lungcad serve``, ``lungcad worker``, ``lungcad dicom-listener`` and ``lungcad admin create-key |
| migrate``: the service's processes.

Thin entry points: each parses its options into ``ServiceSettings`` (``lungcad.service.settings
.load_settings``: ``LUNGCAD_*`` variables, then these flags), calls one library function and prints the
outcome.  The service modules are imported inside the commands, so ``lungcad --help`` and the other commands
never pay for FastAPI, SQLAlchemy or Huey.  A bad value (no data folder, a port out of range, an unknown
role) is a ``ConfigError`` / ``InputError``: one line on stderr and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from lungcad.cli.common import console, err_console, print_json

_DATA_DIR_HELP = "the service's data folder (database, queue, files); default $LUNGCAD_DATA_DIR"
_DB_HELP = "SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db; default SQLite in the data folder"
_QUEUE_HELP = "redis://host:6379/0 for workers on several machines; default a SQLite queue in the data folder"
UVICORN_LOG_LEVEL = "info"  # uvicorn's start-up and shutdown lines


def _settings(data_dir: Path | None, **overrides: Any) -> Any:
    from lungcad.service.settings import load_settings

    return load_settings(data_dir, **overrides)


def _safe_url(url: str) -> str:
    """A database URL with its password hidden (for printing)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def serve(
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    host: str | None = typer.Option(None, "--host", help="address to listen on [default: 127.0.0.1]"),
    port: int | None = typer.Option(None, "--port", help="TCP port [default: 8000]"),
    database_url: str | None = typer.Option(None, "--database-url", help=_DB_HELP),
    queue_url: str | None = typer.Option(None, "--queue-url", help=_QUEUE_HELP),
    ssl_certfile: str | None = typer.Option(None, "--ssl-certfile", help="PEM certificate: serve HTTPS"),
    ssl_keyfile: str | None = typer.Option(None, "--ssl-keyfile", help="PEM private key of the certificate"),
    behind_proxy: bool | None = typer.Option(
        None, "--behind-proxy/--no-behind-proxy", help="TLS ends at a reverse proxy in front of the API"
    ),
) -> None:
    """Run the HTTP API (/api/v1, OpenAPI at /api/v1/docs) until SIGTERM or Ctrl-C.

    Outside ``mode: local`` it starts only over HTTPS (``--ssl-certfile`` + ``--ssl-keyfile``) or with
    ``--behind-proxy``, with a real secret and without a ``*`` CORS origin.
    """
    settings = _settings(
        data_dir,
        host=host,
        port=port,
        database_url=database_url,
        queue_url=queue_url,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        behind_proxy=behind_proxy,
    )
    import uvicorn

    from lungcad.service.app import create_app

    app = create_app(settings)  # checks TLS settings; the context opens in the app's lifespan
    scheme = "https" if settings.tls else "http"
    where = f"{scheme}://{settings.host}:{settings.port}/api/v1"
    err_console.print(
        f"lungcad API on {where} (data {escape(str(settings.data_dir))})", highlight=False, soft_wrap=True
    )
    # uvicorn's own start-up / shutdown lines on stderr; no uvicorn access log (lungcad logs each request,
    # without paths).  After a graceful shutdown on SIGTERM uvicorn re-raises the signal, so the process
    # ends "killed by SIGTERM" (-15), which supervisors (systemd, Kubernetes) count as a clean stop.
    tls = {"ssl_certfile": settings.ssl_certfile, "ssl_keyfile": settings.ssl_keyfile} if settings.tls else {}
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level=UVICORN_LOG_LEVEL, access_log=False, **tls
    )


def worker(
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    threads: int | None = typer.Option(None, "--threads", help="jobs at once [default: worker_threads, 1]"),
    database_url: str | None = typer.Option(None, "--database-url", help=_DB_HELP),
    queue_url: str | None = typer.Option(None, "--queue-url", help=_QUEUE_HELP),
) -> None:
    """Run analyses from the queue until SIGTERM or Ctrl-C (running jobs finish first)."""
    settings = _settings(data_dir, worker_threads=threads, database_url=database_url, queue_url=queue_url)
    from lungcad.service.jobs.worker import run_worker

    run_worker(settings, threads=settings.worker_threads)


def dicom_listener(
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    ae_title: str | None = typer.Option(
        None, "--ae-title", help="the listener's AE title [default: LUNGCAD]"
    ),
    host: str | None = typer.Option(None, "--host", help="address to listen on [default: 127.0.0.1]"),
    port: int | None = typer.Option(None, "--port", help="TCP port [default: 11112]"),
    allowed_aet: list[str] | None = typer.Option(
        None, "--allowed-aet", help="a calling AE title to accept (repeat it); default: any"
    ),
    stable_seconds: float | None = typer.Option(
        None, "--stable-seconds", help="a study is complete after this many quiet seconds [default: 30]"
    ),
    database_url: str | None = typer.Option(None, "--database-url", help=_DB_HELP),
    queue_url: str | None = typer.Option(None, "--queue-url", help=_QUEUE_HELP),
) -> None:
    """Run the DICOM listener (C-STORE SCP for CT images, C-ECHO) until SIGTERM or Ctrl-C.

    Received studies are stored as uploads are; each one is analysed once no instance of it arrived for
    ``--stable-seconds``.
    """
    settings = _settings(
        data_dir,
        dicom_ae_title=ae_title,
        dicom_host=host,
        dicom_port=port,
        dicom_allowed_aets=tuple(allowed_aet) if allowed_aet else None,
        dicom_stable_s=stable_seconds,
        database_url=database_url,
        queue_url=queue_url,
    )
    from lungcad.service.dicom_listener import run_listener

    def started(listener: Any) -> None:
        callers = ", ".join(listener.allowed_aets) or "any calling AE"
        err_console.print(
            f"lungcad DICOM listener {escape(listener.ae_title)} on {listener.host}:{listener.port} "
            f"(accepts {escape(callers)}; data {escape(str(settings.data_dir))})",
            highlight=False,
            soft_wrap=True,
        )

    run_listener(settings, on_start=started)


def create_key(
    role: str = typer.Option(..., "--role", help="admin, radiologist, researcher, service or viewer"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    name: str = typer.Option("", "--name", help="who or what uses the key (shown in key lists)"),
    expires_days: float | None = typer.Option(None, "--expires-days", help="lifetime in days; default none"),
    database_url: str | None = typer.Option(None, "--database-url", help=_DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="print a JSON object (key, prefix, role, dates)"),
) -> None:
    """Create an API key and print it once: the service keeps only its hash.

    The key alone goes to stdout (``KEY=$(lungcad admin create-key --role admin --data-dir D)``); the note
    about it goes to stderr.
    """
    settings = _settings(data_dir, database_url=database_url)
    from lungcad.service.keys import create_api_key

    new = create_api_key(settings, role.lower(), name=name, expires_days=expires_days)
    record = new.record
    if as_json:
        print_json(
            {
                "key": new.key,
                "prefix": record.prefix,
                "role": record.role,
                "name": record.name,
                "created_at": record.created_at.isoformat(),
                "expires_at": record.expires_at.isoformat() if record.expires_at else None,
            }
        )
        return
    console.print(new.key, highlight=False, soft_wrap=True)
    expiry = f"expires {record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else "does not expire"
    err_console.print(
        f"created {record.role} key {record.prefix} ({expiry}); store it now, it is not shown again",
        highlight=False,
        soft_wrap=True,
    )


def _key_json(record: Any) -> dict[str, Any]:
    from lungcad.service.keys import is_usable

    def when(value: Any) -> str | None:
        from lungcad.service.db.session import as_utc

        return as_utc(value).isoformat() if value else None

    return {
        "prefix": record.prefix,
        "role": record.role,
        "name": record.name,
        "created_at": when(record.created_at),
        "expires_at": when(record.expires_at),
        "revoked_at": when(record.revoked_at),
        "last_used_at": when(record.last_used_at),
        "active": is_usable(record),
    }


def list_keys(
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    database_url: str | None = typer.Option(None, "--database-url", help=_DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="print a JSON list of the keys"),
) -> None:
    """List the API keys, newest first (prefix, role, name, dates; never a secret)."""
    settings = _settings(data_dir, database_url=database_url)
    from lungcad.service.keys import list_api_keys

    rows = [_key_json(r) for r in list_api_keys(settings)]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        state = "active" if r["active"] else ("revoked" if r["revoked_at"] else "expired")
        used = r["last_used_at"] or "never"
        line = f"{r['prefix']}  {r['role']:<11} {state:<7} created {r['created_at']}  last used {used}"
        console.print(escape(line + (f"  {r['name']}" if r["name"] else "")), highlight=False, soft_wrap=True)


def revoke_key(
    prefix: str = typer.Argument(..., help="the key's prefix (8 hex, from list-keys)"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    database_url: str | None = typer.Option(None, "--database-url", help=_DB_HELP),
) -> None:
    """Revoke an API key now (refused for the last active admin key).  Running API processes stop
    accepting it within 30 s."""
    settings = _settings(data_dir, database_url=database_url)
    from lungcad.service.keys import revoke_api_key

    record = _admin_call(lambda: revoke_api_key(settings, prefix.lower()))
    console.print(f"revoked {record.role} key {record.prefix}", highlight=False, soft_wrap=True)


def rotate_key(
    prefix: str = typer.Argument(..., help="the key's prefix (8 hex, from list-keys)"),
    grace_s: float = typer.Option(0.0, "--grace-s", help="seconds the old key keeps working [default: 0]"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    database_url: str | None = typer.Option(None, "--database-url", help=_DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="print a JSON object (key, prefix, replaces)"),
) -> None:
    """Replace a key by a new one of the same role and name, printed once on stdout; the old key is
    revoked after ``--grace-s`` seconds."""
    settings = _settings(data_dir, database_url=database_url)
    from lungcad.service.keys import rotate_api_key

    new, old = _admin_call(lambda: rotate_api_key(settings, prefix.lower(), grace_s=grace_s))
    if as_json:
        print_json({"key": new.key, **_key_json(new.record), "replaces": _key_json(old)})
        return
    console.print(new.key, highlight=False, soft_wrap=True)
    err_console.print(
        f"new {new.record.role} key {new.record.prefix} replaces {old.prefix} (revoked at "
        f"{old.revoked_at:%Y-%m-%d %H:%M:%S} UTC); store it now, it is not shown again",
        highlight=False,
        soft_wrap=True,
    )


def _admin_call(work: Any) -> Any:
    """Run a key-admin call; its ``ApiError`` (unknown prefix, last admin key) becomes an ``InputError``."""
    from lungcad.errors import InputError
    from lungcad.service.errors import ApiError

    try:
        return work()
    except ApiError as exc:
        raise InputError(exc.message, fix=exc.fix) from None


def migrate(
    data_dir: Path | None = typer.Option(None, "--data-dir", help=_DATA_DIR_HELP),
    database_url: str | None = typer.Option(None, "--database-url", help=_DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="print a JSON object {database, before, after}"),
) -> None:
    """Bring the database to the newest schema (Alembic upgrade head, under a lock)."""
    settings = _settings(data_dir, database_url=database_url)
    from lungcad.service.db.migrate import upgrade

    before, after = upgrade(settings.db_url)
    url = _safe_url(settings.db_url)
    if as_json:
        print_json({"database": url, "before": before, "after": after})
        return
    state = "already at the newest schema" if before == after else "migrated"
    console.print(f"{escape(url)}: {before or 'empty'} -> {after} ({state})", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``worker`` and the ``admin`` group to ``app``."""
    app.command()(serve)
    app.command()(worker)
    app.command("dicom-listener")(dicom_listener)
    admin = typer.Typer(help="Service administration: API keys, database migrations.", no_args_is_help=True)
    admin.command("create-key")(create_key)
    admin.command("list-keys")(list_keys)
    admin.command("revoke-key")(revoke_key)
    admin.command("rotate-key")(rotate_key)
    admin.command("migrate")(migrate)
    app.add_typer(admin, name="admin")
