"""A real, throw-away PostgreSQL server on 127.0.0.1 for tests and benchmarks.

:func:`start_server` installs Debian's ``postgresql`` package when no server binaries
are found (as root, or with password-less sudo), runs ``initdb`` as the ``postgres``
user in a fresh temporary folder with password (SCRAM) authentication, starts the
server on a free port of 127.0.0.1 only, and returns a :class:`PgServer`; ``stop()``
shuts it down and removes the folder. Nothing outside the temporary folder is changed
(the system's own clusters are not touched).

Credentials never appear in a database URL: the superuser password is handed to libpq
through ``PGPASSWORD`` in the environment of the code under test, as a site would use
the environment or a pgpass file.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgServer", "PgUnavailable", "start_server"]


class PgUnavailable(RuntimeError):
    """PostgreSQL cannot be installed or started here (the reason says why)."""


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _install() -> None:
    sudo: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"]).returncode == 0:
            sudo = ["sudo", "-n"]
        else:
            raise PgUnavailable("PostgreSQL is not installed and this user cannot install it")
    if shutil.which("apt-get") is None:
        raise PgUnavailable("PostgreSQL is not installed and apt-get is not available")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
    ):
        r = subprocess.run([*sudo, *cmd], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise PgUnavailable(f"installing postgresql failed: {r.stderr.strip()[-300:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd  # PostgreSQL runs as the current (non-root) user
    return ["runuser", "-u", "postgres", "--", *cmd]


@dataclass
class PgServer:
    """A running throw-away server."""

    bin_dir: Path
    data_dir: Path
    port: int
    password: str
    user: str = "postgres"

    def url(self, database: str = "postgres", *, user: str | None = None) -> str:
        """SQLAlchemy URL (no password: libpq reads PGPASSWORD or a pgpass file)."""
        return f"postgresql+psycopg://{user or self.user}@127.0.0.1:{self.port}/{database}"

    def env(self) -> dict[str, str]:
        """Environment for code that connects (password for libpq)."""
        return {"PGPASSWORD": self.password}

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser; returns psql's output."""
        r = subprocess.run(
            [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
             "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            env=dict(os.environ, PGPASSWORD=self.password), capture_output=True, text=True,
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip())
        return r.stdout

    def create_database(self, name: str) -> str:
        """A fresh database; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        subprocess.run(
            _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
                          "-w", "stop"]),
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start_server(*, install: bool = True) -> PgServer:
    """Install (if needed), initialise and start a server; see the module docstring.

    Raises
    ------
    PgUnavailable
        With the reason, when the server cannot be had on this machine.
    """
    bin_dir = _pg_bin()
    if bin_dir is None and install:
        _install()
        bin_dir = _pg_bin()
    if bin_dir is None:
        raise PgUnavailable("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    root = Path(tempfile.mkdtemp(prefix="napari-m1-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    password = secrets.token_urlsafe(16)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        shutil.chown(pwfile, "postgres")
    os.chmod(root, 0o700)
    r = subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                      "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                      "--locale=C.UTF-8"]),
        capture_output=True, text=True,
    )  # fmt: skip
    pwfile.unlink()
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise PgUnavailable(f"initdb failed: {r.stderr.strip()[-300:]}")
    port = _free_port()
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sock}"
    r = subprocess.run(
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                      str(root / "server.log"), "-w", "-t", "60", "start"]),
        capture_output=True, text=True,
    )  # fmt: skip
    if r.returncode != 0:
        log = (root / "server.log").read_text(errors="replace")[-500:]
        shutil.rmtree(root, ignore_errors=True)
        raise PgUnavailable(f"PostgreSQL did not start: {r.stderr.strip()[-200:]} {log}")
    srv = PgServer(bin_dir, data, port, password)
    deadline = time.monotonic() + 30
    while True:
        try:
            srv.psql("SELECT 1")
            return srv
        except RuntimeError:
            if time.monotonic() > deadline:
                srv.stop()
                raise
            time.sleep(0.2)
