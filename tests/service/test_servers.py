"""The real PostgreSQL and Redis the service's tests run against: they start, answer, and leave no process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.service.processes import still_running
from tests.service.servers import ServerUnavailable, start_postgres, start_redis

REPO = Path(__file__).resolve().parents[2]


def _wait_gone(processes: list[list[int]], timeout_s: float = 10.0) -> list[int]:
    """Poll until none of ``processes`` ((pid, start time) pairs) runs; return the pids still running."""
    deadline = time.monotonic() + timeout_s
    while (left := still_running([(p, t) for p, t in processes])) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_postgres_creates_inserts_and_selects(postgres_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    table = sa.Table(
        f"t_{uuid.uuid4().hex[:8]}",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("diameter_mm", sa.Float, nullable=False),
    )
    try:
        table.create(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": 1, "diameter_mm": 4.5}, {"id": 2, "diameter_mm": 12.25}])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.id)).all()
            dialect = conn.dialect.name
        assert [tuple(r) for r in rows] == [(1, 4.5), (2, 12.25)]
        assert dialect == "postgresql"
    finally:
        table.drop(engine, checkfirst=True)
        engine.dispose()


def test_postgres_db_url_is_an_empty_database_of_its_own(postgres_db_url: str, postgres_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE only_here (x int)"))
        assert sa.inspect(engine).get_table_names() == ["only_here"]
    finally:
        engine.dispose()
    shared = sa.create_engine(postgres_url)
    try:
        assert "only_here" not in sa.inspect(shared).get_table_names()
    finally:
        shared.dispose()


def test_redis_sets_and_gets(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    key = f"lungcad-test:{uuid.uuid4().hex}"
    try:
        assert client.set(key, "nodule", ex=60)
        assert client.get(key) == b"nodule"
        assert client.incr(f"{key}:n") == 1
    finally:
        client.delete(key, f"{key}:n")
        client.close()


_FAILING_TEST = """
import json, pathlib
import redis, sqlalchemy as sa
from tests.service.processes import process_tree

def test_records_its_servers_then_fails(postgres_url, redis_url):
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:  # the postmaster's pid is the first line of postmaster.pid
        data_dir = conn.execute(sa.text("SHOW data_directory")).scalar()
    engine.dispose()
    client = redis.Redis.from_url(redis_url)
    pids = [int((pathlib.Path(data_dir) / "postmaster.pid").read_text().split()[0])]
    pids.append(client.info("server")["process_id"])
    client.close()
    pathlib.Path({record!r}).write_text(json.dumps({{
        "pids": pids,
        "processes": [process_tree(p) for p in pids],
        "urls": [postgres_url, redis_url],
        "data_dir": data_dir,
    }}))
    assert False, "fails on purpose: teardown must still stop the servers"
"""

# Checked while the inner pytest still runs: once it exits, the parent-death signal would end the servers
# anyway and hide a fixture that forgot to stop them.
_INNER_CONFTEST = """
import json, pathlib
from tests.service.processes import still_running

def pytest_sessionfinish(session):
    record = pathlib.Path({record!r})
    if record.exists():
        info = json.loads(record.read_text())
        info["running_at_session_finish"] = [still_running([tuple(p) for p in t]) for t in info["processes"]]
        record.write_text(json.dumps(info))
"""


def test_fixtures_stop_their_servers_even_when_the_test_fails(tmp_path: Path) -> None:
    import sqlalchemy as sa

    record = tmp_path / "servers.json"
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(_FAILING_TEST.format(record=str(record))))
    (tmp_path / "conftest.py").write_text(textwrap.dedent(_INNER_CONFTEST.format(record=str(record))))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not the repository's addopts / testpaths
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUNGCAD_TEST_")}  # start real ones
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.service.server_fixtures",
            "-p",
            "no:cacheprovider",
        ]
        + ["--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if not record.exists():
        pytest.skip(f"the inner session did not get its servers:\n{proc.stdout[-1500:]}")
    assert proc.returncode == 1, proc.stdout[-3000:]  # 1: tests failed (the intended failure)
    info = json.loads(record.read_text())
    postgres_tree, redis_tree = info["processes"]
    assert len(postgres_tree) >= 4, info  # postmaster, checkpointer, background writer, WAL writer, ...
    assert len(redis_tree) >= 1, info
    assert info["running_at_session_finish"] == [[], []], info
    assert _wait_gone(postgres_tree + redis_tree, timeout_s=1.0) == []
    ports = [sa.make_url(url).port for url in info["urls"]]
    assert all(isinstance(p, int) for p in ports) and not any(_port_open(p) for p in ports)
    assert not Path(info["data_dir"]).exists()


_ABANDONING_SCRIPT = """
import json, os, sys
from tests.service.processes import process_tree
from tests.service.servers import start_postgres, start_redis
pg, rd = start_postgres(sys.argv[1]), start_redis(sys.argv[1])
print(json.dumps([str(pg.data_dir), process_tree(pg.pid) + process_tree(rd.pid)]), flush=True)
os._exit(0)  # no teardown, no atexit: as if pytest were killed
"""


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv for PR_SET_PDEATHSIG")
def test_servers_die_with_a_test_process_that_dies_without_teardown(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _ABANDONING_SCRIPT, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.skip(f"servers unavailable:\n{proc.stderr[-1500:]}")
    data_dir, processes = json.loads(proc.stdout.splitlines()[-1])
    assert len(processes) >= 5  # the postmaster and its children, redis-server
    survivors = _wait_gone(processes)
    for pid in survivors:  # don't leave them behind for the rest of the suite either
        os.kill(pid, 9)
    run_dir = Path(data_dir).parent  # nobody called stop(), so remove the cluster here
    shutil.rmtree(run_dir.parent if run_dir.parent.name.startswith("lungcad-pg-") else run_dir)
    assert survivors == [], f"server processes outlived their parent: {survivors}"


def test_missing_binaries_are_unavailable_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ServerUnavailable, match="not found.*redis-server package"):
        start_redis(tmp_path, binary=tmp_path / "no-redis-server")
    with pytest.raises(ServerUnavailable, match="initdb and postgres not found.*postgresql package"):
        start_postgres(tmp_path, bin_dir=tmp_path)


def test_a_server_that_exits_at_start_is_unavailable_with_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'cannot allocate memory, giving up'\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(ServerUnavailable, match=r"(?s)exited with code 3.*cannot allocate memory") as caught:
        start_redis(tmp_path, binary=fake, timeout_s=5)
    assert "redis.log" in caught.value.reason
