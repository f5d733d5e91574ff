"""The Alembic migrations: they build exactly the schema of ``lungcad.service.db.models`` (so a model change
without a revision fails here), go down and up again, run safely from two processes at once, and on a real
PostgreSQL as on SQLite; and a wheel carries them."""

from __future__ import annotations

import fnmatch
import inspect
import subprocess
import sys
import textwrap
import time
import tomllib
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from lungcad.service.db.migrate import alembic_config, current_revision, head_revision, upgrade
from lungcad.service.db.models import Base
from lungcad.service.db.session import make_engine

REPO = Path(__file__).resolve().parents[2]
TABLES = set(Base.metadata.tables)


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lungcad.db'}"


def _differences(url: str, metadata: sa.MetaData = Base.metadata) -> list:
    """What autogenerate would write for ``metadata`` against the database at ``url`` (empty: in step)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            # the options the migration environment (migrations/env.py) autogenerates with
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
            return compare_metadata(ctx, metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def test_one_linear_history_with_downgrades() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script.get_heads() == [head_revision()]
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None  # one base
    for rev in revisions:  # each revision can be undone (not a bare ``pass``)
        assert "op." in inspect.getsource(rev.module.downgrade), rev.revision


def test_upgrade_creates_every_table_and_matches_the_models(tmp_path: Path) -> None:
    url = _sqlite(tmp_path)
    assert upgrade(url) == (None, head_revision())
    assert _tables(url) == TABLES | {"alembic_version"}
    assert _differences(url) == []
    assert upgrade(url) == (head_revision(), head_revision())  # again: nothing to do


def test_a_model_change_without_a_migration_is_detected(tmp_path: Path) -> None:
    """The comparison above can fail: a column and a table the migrations do not create are reported."""
    url = _sqlite(tmp_path)
    upgrade(url)
    changed = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["studies"].append_column(sa.Column("new_field", sa.String(10)))
    sa.Table("new_table", changed, sa.Column("id", sa.Integer, primary_key=True))
    found = {(d[0], getattr(d[-1], "name", None)) for d in _differences(url, changed)}
    assert ("add_column", "new_field") in found and ("add_table", "new_table") in found


def test_downgrade_to_base_then_upgrade_again(tmp_path: Path) -> None:
    url = _sqlite(tmp_path)
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    assert _tables(url) <= {"alembic_version"} and _revision(url) is None
    assert upgrade(url) == (None, head_revision())
    assert _differences(url) == []


_UPGRADE_ON_GO = """
import json, pathlib, sys, time
from lungcad.service.db.migrate import upgrade
folder = pathlib.Path(sys.argv[1])
(folder / f"ready-{sys.argv[2]}").touch()
while not (folder / "go").exists():  # released together, once every process has imported everything
    time.sleep(0.005)
print(json.dumps(upgrade(sys.argv[3])))
"""


def _upgrade_together(url: str, folder: Path, n: int = 2) -> list[list[str | None]]:
    """Run ``upgrade(url)`` in ``n`` processes released at one instant; their (before, after) pairs."""
    import json

    argv = [sys.executable, "-c", textwrap.dedent(_UPGRADE_ON_GO), str(folder)]
    procs = [
        subprocess.Popen([*argv, str(k), url], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for k in range(n)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(folder.glob("ready-*"))) < n:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a process died"
            time.sleep(0.01)
        (folder / "go").touch()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()[-3000:]
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


# the lock: exactly one process migrated, the other found the schema at head
ONE_MIGRATED = sorted([[None, head_revision()], [head_revision(), head_revision()]], key=str)


def test_two_processes_upgrading_one_sqlite_file_at_once_both_succeed(tmp_path: Path) -> None:
    url = _sqlite(tmp_path)
    assert sorted(_upgrade_together(url, tmp_path), key=str) == ONE_MIGRATED
    assert _differences(url) == []


def test_postgresql_upgrade_matches_the_models_and_goes_down_and_up(postgres_db_url: str) -> None:
    assert upgrade(postgres_db_url) == (None, head_revision())
    assert _tables(postgres_db_url) == TABLES | {"alembic_version"}
    assert _differences(postgres_db_url) == []
    command.downgrade(alembic_config(postgres_db_url), "base")
    assert _tables(postgres_db_url) <= {"alembic_version"}
    assert upgrade(postgres_db_url) == (None, head_revision())
    assert _differences(postgres_db_url) == []


def test_two_processes_upgrading_one_postgresql_database_at_once(
    postgres_db_url: str, tmp_path: Path
) -> None:
    assert sorted(_upgrade_together(postgres_db_url, tmp_path), key=str) == ONE_MIGRATED
    assert _differences(postgres_db_url) == []


def _glob(path: Path, pattern: str) -> bool:
    """setuptools' package-data glob: ``*`` stays within one folder."""
    parts, pats = path.parts, pattern.split("/")
    return len(parts) == len(pats) and all(
        fnmatch.fnmatchcase(a, b) for a, b in zip(parts, pats, strict=True)
    )


def test_the_wheel_carries_every_migration_file() -> None:
    """Each file of the migrations folder matches a package-data pattern of pyproject.toml."""
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "lungcad"
    ]
    package = Path(str(resources.files("lungcad")))
    folder = Path(str(resources.files("lungcad.service.db") / "migrations"))
    files = [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert any(p.name == "env.py" for p in files) and any(p.parent.name == "versions" for p in files)
    missing = [
        str(p.relative_to(package))
        for p in files
        if not any(_glob(p.relative_to(package), g) for g in patterns)
    ]
    assert missing == [], f"add these to [tool.setuptools.package-data] in pyproject.toml: {missing}"
