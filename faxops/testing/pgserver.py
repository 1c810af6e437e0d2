"""A throwaway PostgreSQL server for tests and for trying the postgres state backend.

It uses the server binaries of the distribution's ``postgresql`` package (``initdb``, ``pg_ctl``; the
newest installed major version), listens on a loopback port with its unix socket in its own directory,
and authenticates the ``faxops`` superuser by password over TCP (so the URL carries a secret, as a real
one does). ``initdb`` refuses to run as root: as root the server runs as the ``postgres`` system user,
which then owns the data directory.

``python -m faxops.testing.pgserver DIR`` starts one that keeps running (``make postgres``) and prints
its URL; ``--stop`` stops it.

A server for tests may also listen on host ends of network links (``init(..., networks=...)``, see
``faxops.testing.netns``), accepting password logins from those networks only.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface
from pathlib import Path

from faxops.errors import FaxopsError

USER = "faxops"


def bindir() -> Path | None:
    """The newest installed server's bin directory, or None when no server is installed."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    # PostgreSQL cannot listen on port 0; ask the OS for a free one and hand it over at once.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user() -> list[str]:
    """The command prefix that runs a server binary as an unprivileged user."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def _chown_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class PgServer:
    """One server: ``root`` holds ``data/``, ``sock/``, ``password`` and ``port`` files and the log."""

    root: Path
    port: int
    password: str
    bin: Path
    durable: bool = True
    listen: tuple[str, ...] = ("127.0.0.1",)

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def database_url(self, database: str, host: str = "127.0.0.1") -> str:
        """The URL of ``database``, reached at ``host`` (one of the addresses the server listens on)."""
        return f"postgresql://{USER}:{self.password}@{host}:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_as_server_user(), *args], check=check, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )

    def start(self, *, durable: bool = True) -> PgServer:
        """Start (or restart after ``stop``) the server; returns when it accepts connections."""
        self.durable = durable
        options = f"-p {self.port} -k {self.root / 'sock'} -c listen_addresses={','.join(self.listen)}"
        if not durable:
            # Tests never survive an OS crash anyway; fsync off keeps them fast on a shared machine.
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        result = self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.root / "data"),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
            check=False,
        )
        if result.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise FaxopsError(f"PostgreSQL did not start: {result.stderr.strip()}\n{log}")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash: no checkpoint, connections cut)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        """Stop (cutting every connection) and start again on the same port."""
        # Not `pg_ctl restart`: without -l the new server keeps pg_ctl's output pipe open forever.
        self.stop("fast")
        self.start(durable=self.durable)

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a name the caller made, never user input
        return self.database_url(name)


def init(root: Path, *, durable: bool = True, networks: Sequence[IPv4Interface] = ()) -> PgServer:
    """``initdb`` a new cluster under ``root`` (which must not hold one) and start it. For each of
    ``networks`` (a host address with its network, e.g. ``10.77.3.1/30``) it also listens on the address
    and accepts password logins from that network; the host's own addresses stay loopback only."""
    binaries = bindir()
    if binaries is None:
        raise FaxopsError("no PostgreSQL server installed (Debian: apt-get install postgresql)")
    root.mkdir(parents=True, exist_ok=True)
    _chown_to_server_user(root)  # the server writes its log here
    for sub in ("data", "sock"):
        (root / sub).mkdir(mode=0o700, exist_ok=True)
        _chown_to_server_user(root / sub)
    password = secrets.token_urlsafe(12)
    pwfile = root / "sock" / "pwfile"
    pwfile.write_text(password + "\n")
    _chown_to_server_user(pwfile)
    listen = ("127.0.0.1", *(str(n.ip) for n in networks))
    server = PgServer(root, _free_port(), password, binaries, listen=listen)
    result = server._run(
        str(binaries / "initdb"),
        "-D",
        str(root / "data"),
        "-U",
        USER,
        "--pwfile",
        str(pwfile),
        "--auth-host=scram-sha-256",
        "--auth-local=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
        check=False,
    )
    pwfile.unlink()
    if result.returncode != 0:
        raise FaxopsError(f"initdb failed: {result.stderr.strip()}")
    if networks:
        with (root / "data" / "pg_hba.conf").open("a") as hba:  # appended: the loopback lines stay first
            hba.writelines(f"host all {USER} {n.network} scram-sha-256\n" for n in networks)
    (root / "password").write_text(password)
    (root / "port").write_text(str(server.port))
    return server.start(durable=durable)


def existing(root: Path) -> PgServer | None:
    """The server initialised earlier under ``root``, if any (its port and password are kept there)."""
    binaries = bindir()
    try:
        port = int((root / "port").read_text())
        password = (root / "password").read_text()
    except (OSError, ValueError):
        return None
    return PgServer(root, port, password, binaries) if binaries else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faxops.testing.pgserver", description=__doc__)
    parser.add_argument("root", type=Path, help="directory of the server (e.g. .faxops/pg)")
    parser.add_argument("--stop", action="store_true", help="stop the server")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    server = existing(root)
    if args.stop:
        if server is not None:
            server.stop()
        return 0
    try:
        if server is None:
            server = init(root)
        else:
            with contextlib.suppress(FaxopsError):
                server.start()  # already running is fine
    except FaxopsError as exc:
        print(f"faxops: {exc}", file=sys.stderr)
        return 1
    print(f"PostgreSQL is running in {root} (stop it with `make postgres-stop`). Point faxops at it with:")
    print(f"  export FAXOPS_STATE_URL='{server.url}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
