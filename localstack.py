"""Throwaway local services: a PostgreSQL+PostGIS cluster in a folder and an S3 server on loopback.

The test session and the `./dev up` quickstart both use these, so the stack a
developer demos on is the stack the tests prove things against. Nothing here
is used in production.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

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

    def url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> None:
        # initdb refuses to run as root; CI and fresh machines run us as root.
        command = [str(postgres_bindir() / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"{args[0]} failed: {(result.stderr or result.stdout).strip()}")

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
        return (self.data / "postmaster.pid").exists()

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

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "restart")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def wait_for_port(port: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise StackError(f"nothing answered on 127.0.0.1:{port} after {timeout_s:.0f} s")


def s3_environment(endpoint: str) -> dict[str, str]:
    """The RUSTFS_* variables that point the ingest at a local S3 server."""
    return {
        "RUSTFS_ENDPOINT": endpoint,
        "RUSTFS_ACCESS_KEY": S3_ACCESS_KEY,
        "RUSTFS_SECRET_KEY": S3_SECRET_KEY,
        "RUSTFS_BUCKET": BUCKET,
        "RUSTFS_REGION": "us-east-1",
    }
