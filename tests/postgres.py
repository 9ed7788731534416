"""A real PostgreSQL server for the tests, from the machine's Debian `postgresql` binaries.

`Server.start()` makes a cluster in a fresh directory (fsync off: nothing here needs to survive a
crash) listening only on a unix socket in that directory, and `server.new_schema()` gives each test
a schema of its own (as independent as a database, and quicker to make). As root (CI), initdb and
pg_ctl run as the `postgres` user that Debian's package creates, since initdb refuses root.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

BINARIES = Path("/usr/lib/postgresql")
INSTALL = (
    "the PostgreSQL tests need the server binaries of Debian's `postgresql` package "
    "(initdb, pg_ctl under /usr/lib/postgresql/VERSION/bin): `make system` installs them, "
    "or `apt-get install postgresql`"
)


def bin_dir() -> Path:
    """The bin directory of the highest PostgreSQL version installed; fails the test if none."""
    found = sorted(
        (d for d in BINARIES.glob("*/bin") if (d / "initdb").exists() and (d / "pg_ctl").exists()),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    if not found:
        pytest.fail(INSTALL, pytrace=False)
    return found[-1]


class Server:
    """One PostgreSQL cluster in a temporary directory, for one test session."""

    def __init__(self) -> None:
        self.bin = bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="moderation-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0
        self._names = (f"desk_{os.getpid()}_{n}" for n in itertools.count(1))

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:  # initdb refuses root: run as Debian's `postgres` user
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(f"{' '.join(args[:2])} failed:\n{done.stdout}{done.stderr}{tail}")

    def start(self) -> Server:
        try:
            self._start()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        return self

    def _start(self) -> None:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        options = (
            f"-k {self.root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=50"
        )
        self._run("pg_ctl", "start", "-D", str(self.data), "-w", "-t", "60",
                  "-l", str(self.root / "server.log"), "-o", options)  # fmt: skip

    def dsn(self, database: str = "postgres", schema: str = "") -> str:
        """The connection string of `database` on this server, over its unix socket; with
        `schema`, that schema is where the desk's tables go (its search path)."""
        options = f"&options=-csearch_path%3D{schema}" if schema else ""
        return f"postgresql://postgres@/{database}?host={self.root}{options}"

    def new_database(self) -> str:
        """A new empty database's connection string (about 0.2 s: `new_schema` is quicker)."""
        import psycopg

        name = next(self._names)
        with psycopg.connect(self.dsn(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name} STRATEGY FILE_COPY")
        return self.dsn(name)

    def new_schema(self) -> str:
        """The connection string of a new, empty schema of the tests' database: a desk opened
        with it sees only its own tables, as in a database of its own."""
        import psycopg

        name = next(self._names)
        with psycopg.connect(self.dsn(), autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {name}")
        return self.dsn(schema=name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
