"""Fixtures of a throwaway PostgreSQL server: one per test session, a fresh database per test.

The server is the distribution's (``faxops.testing.pgserver``); tests that need it are skipped only
when no server is installed, which ``.ci/run`` prevents by installing the ``postgresql`` package.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from faxops.testing import pgserver

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pgserver.PgServer]:
    if pgserver.bindir() is None:
        pytest.skip("no PostgreSQL server installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="faxops-pg-"))
    server = pgserver.init(root, durable=False)
    try:
        yield server
    finally:
        server.stop("immediate")
        import shutil

        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: pgserver.PgServer) -> str:
    """The URL of a new, empty database on the session's server."""
    return pg_server.create_database(f"t{next(_databases)}")
