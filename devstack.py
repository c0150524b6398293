"""Throwaway local services: a PostgreSQL+PostGIS cluster in a folder and an S3 server on loopback.

The test session and the `./dev up` quickstart both use these, so the stack a
developer demos on is the stack the tests prove things against. Nothing here
is used in production.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

BUCKET = "isptickets"
S3_ACCESS_KEY = "fleettickets-local"
S3_SECRET_KEY = "fleettickets-local-secret"


class StackError(RuntimeError):
    """A local service could not be set up; the message says which and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bindir() -> Path:
    """The newest Debian PostgreSQL server install, or PG_BINDIR if set."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not candidates:
        raise StackError("no PostgreSQL server found under /usr/lib/postgresql: install postgresql and postgis")
    return candidates[-1].parent


@dataclass
class PgCluster:
    """A PostgreSQL cluster living in `directory`, listening on loopback only."""

    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> int:
        # initdb refuses to run as root; CI and fresh machines run us as root. The server's tools start from "/":
        # our working directory may be one postgres cannot enter (root's home).
        command = [str(postgres_bindir() / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            raise StackError(f"{args[0]} failed: {(result.stderr or result.stdout).strip()}")
        return result.returncode

    def _give_to_postgres(self) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in [self.directory, *self.directory.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if (self.data / "PG_VERSION").exists():
            return
        self._give_to_postgres()
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C.UTF-8")

    def is_running(self) -> bool:
        # Asked of pg_ctl, not read from postmaster.pid: after a reboot that
        # file is stale and the server is not running.
        return (self.data / "PG_VERSION").exists() and self._run("pg_ctl", "-D", str(self.data), "status",
                                                                  check=False) == 0

    def start(self, *, durable: bool = True) -> None:
        """Start the server; `durable=False` trades crash safety for speed (tests)."""
        if self.is_running():
            return
        options = [f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-k {self.directory}",
                   "-c max_connections=200", "-c TimeZone=UTC"]
        if not durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "postgres.log"),
                  "-o", " ".join(options), "-w", "-t", "60", "start")

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self, *, durable: bool = True) -> None:
        # stop + start rather than `pg_ctl restart`, which would forget the log
        # file and leave the server writing into our captured pipes.
        self.stop()
        self.start(durable=durable)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def postgres_may_enter(directory: Path) -> bool:
    """Whether the postgres user can reach `directory`: every folder above it searchable (root's home is not)."""
    probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(directory)], cwd="/",
                           capture_output=True)
    return probe.returncode == 0


def cluster_home(wanted: Path) -> Path:
    """Where a cluster meant for `wanted` lives: `wanted` itself, or, when root runs us from a directory the
    postgres user cannot enter (root's home), a directory of postgres's own that `wanted` links to, so that
    .local/pg still names it. The server is only ever given the real path.
    """
    if wanted.is_symlink():
        return wanted.resolve()
    if os.geteuid() != 0:
        return wanted
    wanted.parent.mkdir(parents=True, exist_ok=True)
    if postgres_may_enter(wanted.parent):
        return wanted
    home = Path(pwd.getpwnam("postgres").pw_dir) / "fleettickets-dev" / hashlib.sha256(
        str(wanted.resolve()).encode()).hexdigest()[:16]
    home.mkdir(parents=True, exist_ok=True)
    wanted.symlink_to(home, target_is_directory=True)
    return home


def wait_for_port(port: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise StackError(f"nothing answered on 127.0.0.1:{port} after {timeout_s:.0f} s")


def s3_client(endpoint: str) -> Any:
    """A boto3 client for a local S3 server, with the stack's credentials and path-style addressing."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=S3_ACCESS_KEY,
                        aws_secret_access_key=S3_SECRET_KEY, config=Config(s3={"addressing_style": "path"}))


def s3_environment(endpoint: str) -> dict[str, str]:
    """The RUSTFS_* variables that point the ingest at a local S3 server."""
    return {
        "RUSTFS_ENDPOINT": endpoint,
        "RUSTFS_ACCESS_KEY": S3_ACCESS_KEY,
        "RUSTFS_SECRET_KEY": S3_SECRET_KEY,
        "RUSTFS_BUCKET": BUCKET,
        "RUSTFS_REGION": "us-east-1",
    }


# -- the `./dev up` quickstart ----------------------------------------------------

ROOT = Path(__file__).resolve().parent
STATE_DIR = ROOT / ".local"
SAMPLES = ROOT / "samples"
DATABASE = "fleettickets"
PG_PORT = 54329
S3_PORT = 45329


def _stack() -> tuple[PgCluster, Path]:
    return PgCluster(cluster_home(STATE_DIR / "pg"), PG_PORT), STATE_DIR / "s3.pid"


def _where_the_data_is() -> str:
    if (STATE_DIR / "pg").is_symlink():
        return f"data in {(STATE_DIR / 'pg').resolve()}, linked from .local/pg"
    return "data in .local/pg"


def _s3_running(pid_file: Path) -> bool:
    """Our S3 server answers; a pid file left by a reboot may name someone else's process."""
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text()), 0)
        with socket.create_connection(("127.0.0.1", S3_PORT), timeout=0.5):
            return True
    except (OSError, ValueError):
        return False


def local_environment() -> dict[str, str]:
    """What the production entrypoints read, pointed at the local stack."""
    return {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{PG_PORT}/{DATABASE}",
            **s3_environment(f"http://127.0.0.1:{S3_PORT}")}


def _start_services() -> bool:
    """Start PostgreSQL and the S3 server if needed; True when the S3 server is new (and empty)."""
    import psycopg
    from psycopg import sql

    cluster, pid_file = _stack()
    cluster.init()
    cluster.start()
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    if _s3_running(pid_file):
        return False
    moto_server = Path(sys.executable).with_name("moto_server")
    log = (STATE_DIR / "s3.log").open("ab")
    process = subprocess.Popen([str(moto_server), "-H", "127.0.0.1", "-p", str(S3_PORT)], stdout=log, stderr=log,
                               start_new_session=True)
    pid_file.write_text(str(process.pid))
    wait_for_port(S3_PORT)
    return True


def _seed_bucket() -> int:
    client = s3_client(f"http://127.0.0.1:{S3_PORT}")
    client.create_bucket(Bucket=BUCKET)
    files = sorted(SAMPLES.glob("*/changes/*.csv"))
    for path in files:
        client.put_object(Bucket=BUCKET, Key=f"automations/{path.parent.parent.name}/changes/{path.name}",
                          Body=path.read_bytes())
    return len(files)


def _run(*command: str) -> None:
    env = {**os.environ, **local_environment()}
    result = subprocess.run([sys.executable, *command], cwd=ROOT, env=env)
    if result.returncode != 0:
        raise StackError(f"`python {' '.join(command)}` exited with {result.returncode}")


def _summarize() -> None:
    import psycopg

    with psycopg.connect(local_environment()["DATABASE_URL"], autocommit=True) as conn:
        print()
        print("Summary")
        for dataset, rows, opened, placed, watermark, success in conn.execute("""
                SELECT m.dataset, t.rows, t.open, t.placed, m.metadata->>'source_max_key',
                       to_char((m.metadata->>'last_success_at')::timestamptz AT TIME ZONE 'Africa/Nairobi',
                               'YYYY-MM-DD HH24:MI EAT')
                FROM tickets.import_meta m
                JOIN (SELECT 'inc' AS dataset, count(*) AS rows, count(*) FILTER (WHERE bucket = 'open') AS open,
                             count(geom) AS placed FROM tickets.inc
                      UNION ALL
                      SELECT 'crq', count(*), count(*) FILTER (WHERE bucket = 'open'), count(geom)
                      FROM tickets.crq) t USING (dataset)
                ORDER BY m.dataset DESC"""):
            files = conn.execute("""SELECT count(*), count(moved_at) FROM tickets.ingest_files
                                    WHERE dataset = %s AND status = 'applied'""", (dataset,)).fetchone() or (0, 0)
            print(f"  {dataset}: {rows} tickets ({opened} open, {placed} with a point); "
                  f"{files[0]} files applied, {files[1]} archived; watermark {PurePosixPath(watermark or '-').name}, "
                  f"last success {success or 'never'}")
        backlog = conn.execute("""
            SELECT COALESCE(tickets.canonical_cluster(cluster), '(none)'), count(*)
            FROM (SELECT cluster FROM tickets.inc WHERE bucket = 'open'
                  UNION ALL SELECT cluster FROM tickets.crq WHERE bucket = 'open') o
            GROUP BY 1 ORDER BY 2 DESC, 1""").fetchall()
        print("  open backlog by cluster: " + ", ".join(f"{cluster} {n}" for cluster, n in backlog))


def up() -> None:
    STATE_DIR.mkdir(exist_ok=True)
    fresh_s3 = _start_services()
    print(f"PostgreSQL on 127.0.0.1:{PG_PORT} ({_where_the_data_is()}), S3 on 127.0.0.1:{S3_PORT}")
    if fresh_s3:
        print(f"bucket {BUCKET}: {_seed_bucket()} sample change files uploaded")
    (STATE_DIR / "env").write_text("".join(f"{k}={v}\n" for k, v in local_environment().items()))
    _run("run_migrations.py")
    _run("-m", "inc.import_inc", "--from-bucket", "--apply")
    _run("-m", "crq.import_crq", "--from-bucket", "--apply")
    _run("-m", "inc.import_inc", "--load-gazetteer", "samples/gazetteer/clusters.csv", "--apply")
    _summarize()
    print("\nThe stack keeps running: `set -a; . .local/env` to use it by hand, `./dev stop` to stop it, "
          "`./dev clean` to remove it.")


def stop() -> None:
    cluster, pid_file = _stack()
    if _s3_running(pid_file):
        os.kill(int(pid_file.read_text()), 15)
    pid_file.unlink(missing_ok=True)
    cluster.stop()
    print("local stack stopped (data kept in .local/; the S3 server forgets its bucket)")


def clean() -> None:
    stop()
    if (STATE_DIR / "pg").is_symlink():
        _stack()[0].remove()
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    print("local stack removed")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # our lines in order with the entrypoints' when piped (CI's log)
    commands = {"up": up, "stop": stop, "clean": clean}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit("usage: python devstack.py up|stop|clean")
    try:
        commands[sys.argv[1]]()
    except StackError as error:
        raise SystemExit(f"Error: {error}") from None


# A child's ru_maxrss starts at its parent's high-water mark (exec records the
# old address space's peak, and fork or vfork shares it), so a process is
# measured from a small launcher, never straight from a large test session or
# benchmark.
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_pid, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, float]:
    """Exit code and peak resident memory (MB) of the process `argv`."""
    result = subprocess.run([sys.executable, "-c", _MEASURE, *argv], env=env, cwd=cwd, capture_output=True,
                            text=True, check=True)
    code, kilobytes = result.stdout.split()
    return int(code), int(kilobytes) / 1024
