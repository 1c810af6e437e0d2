"""Fixtures of a throwaway PostgreSQL server: one per test session, a fresh database per test.

The server is the distribution's (``faxops.testing.pgserver``); tests that need it are skipped only
when no server is installed, which ``.ci/run`` prevents by installing the ``postgresql`` package.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from faxops.testing import pgserver

_databases = itertools.count(1)


@contextlib.contextmanager
def throwaway_server(networks: Sequence[IPv4Interface] = ()) -> Iterator[pgserver.PgServer]:
    """A server in a new temporary directory (not under pytest's, which the server's user cannot
    enter when the tests run as root), stopped and removed on exit."""
    if pgserver.bindir() is None:
        pytest.skip("no PostgreSQL server installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="faxops-pg-"))
    try:
        server = pgserver.init(root, durable=False, networks=networks)
        try:
            yield server
        finally:
            server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.PgServer]:
    with throwaway_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: pgserver.PgServer) -> str:
    """The URL of a new, empty database on the session's server."""
    return pg_server.create_database(f"t{next(_databases)}")
