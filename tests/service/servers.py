"""Real PostgreSQL and Redis servers for the service's tests, each on a free loopback port in a temp folder.

``start_postgres(tmp_dir)`` runs Debian's ``initdb`` + ``postgres`` (trust auth, loopback only, fsync off) and
creates the database ``lungcad``; ``start_redis(tmp_dir)`` runs ``redis-server`` without persistence.  Both
return an object with ``.url`` and ``.stop()``, or raise ``ServerUnavailable(reason)`` when the binary is
missing or the server does not come up, so fixtures can skip with that reason.

Neither outlives the tests: see ``tests/service/processes.py``.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.service.processes import (
    ServerProcess,
    ServerUnavailable,
    remove,
    spawn,
    tail,
    wait_until,
    with_free_port,
)

__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServerUnavailable",
    "find_postgres_bin",
    "start_postgres",
    "start_redis",
]

PG_USER = "lungcad"  # the superuser initdb creates; trust auth, so no password
PG_DATABASE = "lungcad"
PG_SYSTEM_USER = "postgres"  # PostgreSQL refuses to run as root; as root we run it as this account
PG_ROOTS = (Path("/usr/lib/postgresql"),)  # Debian: /usr/lib/postgresql/<major>/bin
REDIS_BINARY = "redis-server"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; the socket file name adds ".s.PGSQL.<port>"


@dataclass
class _Server:
    url: str
    port: int
    _process: ServerProcess

    @property
    def pid(self) -> int:
        """The server's process id, which is also its process group's id."""
        return self._process.pid

    def stop(self) -> None:
        """Shut the server down (its group SIGKILLed after 10 s) and remove its files; idempotent."""
        self._process.stop()


@dataclass
class PostgresServer(_Server):
    """A running PostgreSQL; ``url`` is an SQLAlchemy URL (psycopg 3 driver) of the ``lungcad`` database.
    ``stop()`` is a fast shutdown (SIGINT: open transactions rolled back, clients disconnected)."""

    data_dir: Path


@dataclass
class RedisServer(_Server):
    """A running redis-server without persistence; ``url`` is ``redis://127.0.0.1:<port>/0``.  ``stop()``
    sends SIGTERM (with ``--save ""`` redis exits without writing anything)."""


def find_postgres_bin() -> Path | None:
    """The newest Debian ``/usr/lib/postgresql/<major>/bin`` holding ``initdb`` and ``postgres``, else the
    folder of ``initdb`` on PATH if ``postgres`` sits beside it (a symlink on PATH is followed)."""
    candidates: list[Path] = []
    for root in PG_ROOTS:
        if root.is_dir():
            versions = [p for p in root.iterdir() if p.name.replace(".", "").isdigit()]
            candidates += [p / "bin" for p in sorted(versions, key=lambda p: float(p.name), reverse=True)]
    if on_path := shutil.which("initdb"):
        candidates.append(Path(on_path).resolve().parent)
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "postgres").is_file()), None)


def _can_enter(path: Path, account: pwd.struct_passwd) -> bool:
    """Whether ``account`` may traverse every folder from / down to ``path`` (mode bits only, no ACLs)."""
    groups = {account.pw_gid} | {g for g in os.getgrouplist(account.pw_name, account.pw_gid)}
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_uid == account.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _postgres_account() -> pwd.struct_passwd | None:
    """None when not root (PostgreSQL runs as us); the ``postgres`` account when root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        raise ServerUnavailable(
            f"running as root and there is no '{PG_SYSTEM_USER}' account to run PostgreSQL as "
            "(PostgreSQL refuses to run as root); install Debian's postgresql package"
        ) from None


def _postgres_base(tmp_dir: Path, account: pwd.struct_passwd | None) -> tuple[Path, bool]:
    """A folder for the cluster that the server's account can enter: ``tmp_dir`` if it can, else a fresh
    folder in the system temp dir (pytest's tmp folders are mode 0700, closed to ``postgres``).  The bool
    says whether the folder is ours to delete on stop."""
    if account is None or _can_enter(tmp_dir, account):
        return tmp_dir, False
    base = Path(tempfile.mkdtemp(prefix="lungcad-pg-"))
    os.chown(base, account.pw_uid, account.pw_gid)
    if not _can_enter(base, account):
        shutil.rmtree(base, ignore_errors=True)
        raise ServerUnavailable(
            f"no folder the '{account.pw_name}' account can enter (tried {tmp_dir}, {base})"
        )
    return base, True


def _give(path: Path, account: pwd.struct_passwd | None, *, mkdir: bool = False) -> Path:
    """Make ``path`` (mode 0700, as initdb insists for the data folder) belong to ``account``."""
    if mkdir:
        path.mkdir(mode=0o700)
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)
    return path


def start_postgres(
    tmp_dir: str | Path, *, bin_dir: str | Path | None = None, timeout_s: float = 30.0
) -> PostgresServer:
    """initdb a cluster under ``tmp_dir``, start it on a free 127.0.0.1 port, create database ``lungcad``.

    ``bin_dir``: folder with ``initdb`` and ``postgres`` (default: ``find_postgres_bin()``).  ``timeout_s``:
    seconds to wait for initdb and again for the first connection.  Raises ``ServerUnavailable``.
    """
    tmp_dir = Path(tmp_dir).resolve()
    found = Path(bin_dir) if bin_dir is not None else find_postgres_bin()
    if found is None or not (found / "initdb").is_file() or not (found / "postgres").is_file():
        raise ServerUnavailable(
            f"PostgreSQL's initdb and postgres not found in {found or ' or '.join(map(str, PG_ROOTS))}; "
            "install Debian's postgresql package"
        )
    try:
        import psycopg
    except ImportError:
        raise ServerUnavailable(
            "the psycopg package is not installed (pip install 'psycopg[binary]')"
        ) from None
    account = _postgres_account()
    base, ours = _postgres_base(tmp_dir, account)
    run_dir = Path(tempfile.mkdtemp(prefix="pg-", dir=base))  # unique, so one tmp_dir can hold several
    cleanup = [base if ours else run_dir]  # a throwaway cluster's files are useless once it stops
    log_path = tmp_dir / f"{run_dir.name}.log"  # outside run_dir, so it survives for debugging
    try:
        _give(run_dir, account)
        data = _give(run_dir / "data", account, mkdir=True)
        sockets = _give(run_dir / "sock", account, mkdir=True)
        _initdb(found / "initdb", data, log_path, account, timeout_s)
    except BaseException:
        remove(cleanup)
        raise

    def start_once(port: int) -> PostgresServer:
        socket_dir = str(sockets) if len(str(sockets)) + 20 <= _SOCKET_PATH_MAX else ""  # "": TCP only
        argv = [str(found / "postgres"), "-D", str(data), "-p", str(port)]
        for setting in (
            "listen_addresses=127.0.0.1",
            f"unix_socket_directories={socket_dir}",  # not /var/run/postgresql, which a system server owns
            "fsync=off",  # a throwaway cluster: durability buys nothing and costs seconds
            "synchronous_commit=off",
            "full_page_writes=off",
            "shared_buffers=16MB",
            "max_connections=50",
        ):
            argv += ["-c", setting]
        process = ServerProcess(spawn(argv, log_path, account), log_path, signal.SIGINT)

        def ready() -> bool:
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=port, user=PG_USER, dbname="postgres", connect_timeout=2
                ):
                    return True
            except psycopg.OperationalError:
                return False

        wait_until(ready, process, timeout_s, f"postgres (log {log_path})")
        process.cleanup = cleanup
        atexit.register(process.stop)
        try:
            with psycopg.connect(
                host="127.0.0.1", port=port, user=PG_USER, dbname="postgres", autocommit=True
            ) as conn:
                conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        except BaseException:
            process.stop()
            raise
        url = f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/{PG_DATABASE}"
        return PostgresServer(url=url, port=port, data_dir=data, _process=process)

    try:
        return with_free_port(start_once, "postgres")
    except BaseException:
        remove(cleanup)
        raise


def _initdb(
    initdb: Path, data: Path, log_path: Path, account: pwd.struct_passwd | None, timeout_s: float
) -> None:
    argv = [str(initdb), "-D", str(data), "-U", PG_USER, "--auth=trust", "--encoding=UTF8", "--locale=C"]
    argv += ["--no-sync", "--no-instructions"]  # no fsync of a throwaway cluster
    popen = spawn(argv, log_path, account)
    try:
        code = popen.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
        raise ServerUnavailable(f"initdb took longer than {timeout_s:.0f} s (log {log_path})") from None
    if code != 0:
        raise ServerUnavailable(f"initdb failed with code {code} (log {log_path}):\n{tail(log_path)}")


def start_redis(
    tmp_dir: str | Path, *, binary: str | Path | None = None, timeout_s: float = 10.0
) -> RedisServer:
    """Start redis-server on a free 127.0.0.1 port, no RDB snapshots, no AOF, working folder in ``tmp_dir``.

    ``binary``: the redis-server to run (default: ``redis-server`` on PATH).  ``timeout_s``: seconds to wait
    for the first PING.  Raises ``ServerUnavailable``.
    """
    tmp_dir = Path(tmp_dir).resolve()
    exe = str(binary) if binary is not None else shutil.which(REDIS_BINARY)
    if exe is None or not Path(exe).is_file():
        raise ServerUnavailable(f"{binary or REDIS_BINARY} not found; install Debian's redis-server package")
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise ServerUnavailable("the redis package is not installed (pip install redis)") from None

    def start_once(port: int) -> RedisServer:
        work = Path(tempfile.mkdtemp(prefix=f"redis-{port}-", dir=tmp_dir))
        log_path = work / "redis.log"
        argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(work), "--daemonize", "no", "--logfile", ""]  # "": log to stdout, our log file
        process = ServerProcess(spawn(argv, log_path, None), log_path, signal.SIGTERM)

        def ready() -> bool:
            # No retries: redis-py's default backs off ~1 s after a refused connection, i.e. while polling.
            no_retry = Retry(NoBackoff(), 0)
            client = redis.Redis(
                host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1, retry=no_retry
            )
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False
            finally:
                client.close()

        wait_until(ready, process, timeout_s, f"redis-server (log {log_path})")
        atexit.register(process.stop)
        return RedisServer(url=f"redis://127.0.0.1:{port}/0", port=port, _process=process)

    return with_free_port(start_once, "redis-server")
