"""Two machines apply one campaign at the same moment against one database: every fax goes exactly once.

Each round forks two `faxops apply` processes from two checkouts (two directories) that share the
database and the provider (the sandbox's log). The machines are made two ways:

* ``network namespaces`` (root only): each process moves into a network namespace made by the test
  (``faxops.testing.netns``: a veth pair to the host on a /30 of its own, no route elsewhere) and a UTS
  namespace with its own host name, and reaches a server listening on its namespace's host end, as two
  machines on one network reach a database host;
* ``host names``: both reach the session's server over loopback, each in a UTS namespace with its own
  host name when the test runs as root (else the host name is patched in the child).

The loser exits 3 naming the winner's host, or, with --lock-timeout, waits and finds nothing left to
send. A trigger in the database keeps every holder row with the address its connection came from, as
the server saw it: the lock was held by the machines that applied, and each came from its namespace's
own address, so the namespace run cannot pass over loopback (or from the host) by accident.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import TupleRow

from faxops.cli import main
from faxops.testing import netns
from tests.conftest import write_csv, write_pdf
from tests.netns import namespaces_or_skip
from tests.pgserver import throwaway_server

ROUNDS = int(os.environ.get("FAXOPS_RACE_ROUNDS", "50"))
RECIPIENTS = 4
CLONE_NEWUTS = 0x04000000
# A trigger keeps every holder row the writers insert (they delete theirs when done), with the client
# address of the connection that wrote it: inet_client_addr() runs in the writer's own session.
WATCH_HOLDERS = """
CREATE TABLE public.holders (campaign text, host text, client inet);
CREATE FUNCTION public.keep_holder() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.holders VALUES (NEW.campaign, NEW.host, inet_client_addr());
    RETURN NEW;
END $$;
CREATE TRIGGER keep_holder AFTER INSERT OR UPDATE OF id ON faxops.locks
    FOR EACH ROW EXECUTE FUNCTION public.keep_holder();
"""


def _set_hostname(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUTS) == 0 and libc.sethostname(name.encode(), len(name)) == 0:
        return
    socket.gethostname = lambda: name  # no namespaces here (not root): the lock holder row still differs


@dataclass(frozen=True)
class Machine:
    """One of the two machines: its host name, how it reaches the database, where it connects from."""

    host: str
    url: str
    source: IPv4Network  # the addresses the server may see this machine's connections come from
    namespace: netns.Namespace | None = None

    def become(self) -> None:
        """In a child just forked: turn into this machine (its network, its host name, its state URL)."""
        if self.namespace is not None:
            self.namespace.enter()
        _set_hostname(self.host)
        os.environ["FAXOPS_STATE_URL"] = self.url  # as CI points a runner at the database


@dataclass(frozen=True)
class Site:
    """Two machines and one database; ``admin_url`` is the test's own way in (loopback)."""

    machines: tuple[Machine, Machine]
    admin_url: str


@contextlib.contextmanager
def _namespace_site() -> Iterator[Site]:
    # A server of its own, started once the namespaces exist: it can listen only on addresses that do.
    with netns.namespaces(2) as (ns_a, ns_b), throwaway_server([ns_a.host_end, ns_b.host_end]) as server:
        server.create_database("race")

        def machine(host: str, ns: netns.Namespace) -> Machine:
            # Its own end exactly: a process left on the host would connect from the host end, in the same /30.
            return Machine(host, server.database_url("race", str(ns.host_end.ip)), IPv4Network(ns.inside.ip), ns)

        yield Site((machine("runner-a", ns_a), machine("runner-b", ns_b)), server.database_url("race"))


@pytest.fixture(params=["network namespaces", "host names"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    if request.param == "network namespaces":
        namespaces_or_skip()
        with _namespace_site() as made:
            yield made
        return
    url: str = request.getfixturevalue("pg_url")
    loopback = IPv4Network("127.0.0.0/8")
    yield Site((Machine("runner-a", url, loopback), Machine("runner-b", url, loopback)), url)


def _apply_in_child(manifest: Path, machine: Machine, go: int, log: Path, extra: list[str]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 99
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # pytest's capture objects are not fds 1 and 2: write where the log is
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        machine.become()
        os.read(go, 1)  # both start at the same moment
        code = main(["apply", str(manifest), "--auto-approve", *extra])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _checkout(root: Path, name: str, provider_log: Path) -> Path:
    write_pdf(root / "letter.pdf", 1)
    write_csv(root / "recipients.csv", [(f"+4930{5550000 + i}", f"R{i}") for i in range(RECIPIENTS)])
    manifest = root / "campaign.yaml"
    manifest.write_text(
        f"campaign: {{name: {name}}}\n"
        f"provider: {{type: sandbox, latency: 20ms, record_dir: {provider_log}}}\n"
        "documents: [letter.pdf]\n"
        "recipients: {files: [{path: recipients.csv, columns: {number: fax, name: company}}]}\n"
        "schedule: {concurrency: 2}\n"
        "state: {backend: postgres, url: '${env:FAXOPS_DATABASE_URL}'}\n"
    )
    return manifest


def _watch_holders(admin_url: str) -> psycopg.Connection[TupleRow]:
    assert main(["state", "init", admin_url]) == 0
    conn = psycopg.connect(admin_url, autocommit=True)
    conn.execute(WATCH_HOLDERS)
    return conn


def test_two_machines_applying_at_once_send_every_fax_exactly_once(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAXOPS_DATABASE_URL", site.admin_url)  # what the manifest names; each machine overrides it
    monkeypatch.delenv("FAXOPS_STATE_URL", raising=False)
    machines = site.machines
    provider = tmp_path / "provider"
    provider.mkdir()
    outcomes: dict[str, int] = {}
    with _watch_holders(site.admin_url) as db:
        for round_no in range(ROUNDS):
            name = f"race-{round_no}"
            (provider / "sent.jsonl").unlink(missing_ok=True)
            manifests = []
            for machine in ("a", "b"):
                root = tmp_path / f"{machine}{round_no}"
                root.mkdir()
                manifests.append(_checkout(root, name, provider))
            extra = ["--lock-timeout", "60s"] if round_no % 2 else []
            read_end, write_end = os.pipe()
            logs = [tmp_path / f"a{round_no}.log", tmp_path / f"b{round_no}.log"]
            pids = [_apply_in_child(manifests[i], machines[i], read_end, logs[i], extra) for i in (0, 1)]
            os.write(write_end, b"gg")
            os.close(read_end)
            os.close(write_end)
            codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
            context = f"round {round_no}: exit codes {codes}; " + " | ".join(log.read_text()[-400:] for log in logs)
            sent = [json.loads(line)["number"] for line in (provider / "sent.jsonl").read_text().splitlines()]
            assert sorted(sent) == sorted(set(sent)), f"{context}: sent twice"
            assert len(sent) == RECIPIENTS, context
            assert 0 in codes, context
            assert set(codes) <= {0, 3}, context
            if 3 in codes:
                loser = codes.index(3)
                assert machines[1 - loser].host in logs[loser].read_text(), f"{context}: the holder is not named"
            holders = db.execute("SELECT host, client FROM public.holders WHERE campaign = %s", (name,)).fetchall()
            # Exactly the machines that applied held the lock, each connected from its own address.
            assert {host for host, _ in holders} == {m.host for m, c in zip(machines, codes, strict=True) if c == 0}, (
                f"{context}: holders {holders}"
            )
            for host, client in holders:
                source = next(m.source for m in machines if m.host == host)
                assert isinstance(client, IPv4Address), f"{context}: {host} connected over {client!r}"
                assert client in source, f"{context}: {host} connected from {client}, not from {source}"
            key = "waited" if extra else ("refused" if 3 in codes else "one after the other")
            outcomes[key] = outcomes.get(key, 0) + 1
            with contextlib.suppress(OSError):
                for log in logs:
                    log.unlink()
    print(f"{ROUNDS} races: {outcomes}")
    assert outcomes.get("refused", 0) > 0, outcomes  # the lock was really contended
