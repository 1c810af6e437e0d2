"""The network namespaces the two-machine test is built on: isolated as machines are, and always removed."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess

import pytest

from faxops.testing import netns
from tests.netns import namespaces_or_skip


def _present() -> tuple[set[str], set[str]]:
    """The host's network namespaces and links, by name."""
    ip = netns.ip_command()
    assert ip is not None
    spaces = json.loads(subprocess.run([ip, "-j", "netns", "list"], capture_output=True, check=True).stdout or b"[]")
    links = json.loads(subprocess.run([ip, "-j", "link", "show"], capture_output=True, check=True).stdout or b"[]")
    return {s["name"] for s in spaces}, {link["ifname"] for link in links}


def _connect_from(ns: netns.Namespace, targets: list[tuple[str, int]]) -> list[str]:
    """Connect to each target from inside ``ns`` (in a forked child); returns "ok" or the error for each."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        results = []
        try:
            ns.enter()
            for target in targets:
                try:
                    with socket.create_connection(target, timeout=5):
                        results.append("ok")
                except OSError as exc:
                    results.append(type(exc).__name__ + ": " + (exc.strerror or str(exc)))
        finally:
            os.write(write_end, json.dumps(results).encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        data = reader.read()
    os.waitpid(pid, 0)
    return list(json.loads(data))


def test_a_namespace_reaches_its_own_host_end_only() -> None:
    namespaces_or_skip()
    with netns.namespaces(2) as (ns_a, ns_b), contextlib.ExitStack() as stack:
        listeners = {}
        for address in ("127.0.0.1", str(ns_a.host_end.ip), str(ns_b.host_end.ip)):
            sock = stack.enter_context(socket.create_server((address, 0)))
            listeners[address] = sock
        targets = [s.getsockname()[:2] for s in listeners.values()]
        loopback, own_end, other_end = _connect_from(ns_a, targets)
        assert own_end == "ok"
        accepted, peer = listeners[str(ns_a.host_end.ip)].accept()
        accepted.close()
        assert peer[0] == str(ns_a.inside.ip)  # the server sees the namespace's own address
        assert loopback.startswith("ConnectionRefusedError")  # 127.0.0.1 in there is the namespace's own
        assert "unreachable" in other_end.lower()  # no route to another machine's link


def test_namespaces_and_links_are_removed_even_when_the_code_inside_fails() -> None:
    namespaces_or_skip()
    with pytest.raises(RuntimeError, match="the test failed"), netns.namespaces(2) as made:  # noqa: PT012
        spaces, links = _present()
        assert {ns.name for ns in made} <= spaces
        assert {ns.host_link for ns in made} <= links
        assert made[0].network != made[1].network
        raise RuntimeError("the test failed")
    spaces, links = _present()
    assert not {ns.name for ns in made} & spaces
    assert not {ns.host_link for ns in made} & links


def test_where_namespaces_cannot_be_made_the_reason_is_given_and_a_run_that_requires_them_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert netns.unavailable() == "network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns, "ip_command", lambda: None)
    assert "apt-get install iproute2" in str(netns.unavailable())
    monkeypatch.delenv("FAXOPS_REQUIRE_NETNS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="iproute2"):
        namespaces_or_skip()
    monkeypatch.setenv("FAXOPS_REQUIRE_NETNS", "1")
    with pytest.raises(pytest.fail.Exception, match="FAXOPS_REQUIRE_NETNS is set but iproute2"):
        namespaces_or_skip()
