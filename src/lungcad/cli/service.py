"""``lungcad serve``, ``lungcad worker`` and ``lungcad admin create-key | migrate``: the service's processes.

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
) -> None:
    """Run the HTTP API (/api/v1, OpenAPI at /api/v1/docs) until SIGTERM or Ctrl-C."""
    settings = _settings(data_dir, host=host, port=port, database_url=database_url, queue_url=queue_url)
    import uvicorn

    from lungcad.service.app import create_app

    app = create_app(settings)  # the context (migration, model check) opens in the app's lifespan
    where = f"http://{settings.host}:{settings.port}/api/v1"
    err_console.print(
        f"lungcad API on {where} (data {escape(str(settings.data_dir))})", highlight=False, soft_wrap=True
    )
    # uvicorn's own start-up / shutdown lines on stderr; no uvicorn access log (lungcad logs each request,
    # without paths).  After a graceful shutdown on SIGTERM uvicorn re-raises the signal, so the process
    # ends "killed by SIGTERM" (-15), which supervisors (systemd, Kubernetes) count as a clean stop.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=UVICORN_LOG_LEVEL, access_log=False)


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
    admin = typer.Typer(help="Service administration: API keys, database migrations.", no_args_is_help=True)
    admin.command("create-key")(create_key)
    admin.command("migrate")(migrate)
    app.add_typer(admin, name="admin")
