"""Network namespaces joined to the host by veth pairs: several "machines" with networks of their own.

Each namespace gets a /30 of its own in 10.0.0.0/8: the host end of its veth pair holds the first
address, the namespace end (``eth0`` inside) the second, and the namespace's loopback is up. There is
no default route inside, so a process in one namespace reaches only its own host end: not the host's
loopback (127.0.0.1 in there is the namespace's own), not another namespace. A server on the host
that listens on the host ends sees each machine's connections coming from that machine's address.

Building them needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2's ``ip``; ``unavailable()``
says why it cannot be done here. Names carry a random token, so that test runs side by side on one
machine never clash, and ``namespaces()`` removes every namespace and veth it made, also when the
code inside fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import random
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from faxops.errors import FaxopsError

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")  # where `ip netns add` mounts a namespace under its name
# A random /30 in this block; one that overlaps a route of the host (a VPN, a container bridge) is skipped.
POOL = IPv4Network("10.64.0.0/10")


@dataclass(frozen=True)
class Namespace:
    """One network namespace and the veth pair that joins it to the host."""

    name: str
    host_link: str
    host_end: IPv4Interface  # on the host, e.g. 10.77.3.1/30
    inside: IPv4Interface  # on eth0 in the namespace, e.g. 10.77.3.2/30

    @property
    def network(self) -> IPv4Network:
        return self.host_end.network

    def enter(self) -> None:
        """Move the calling process into this namespace: its later sockets live there. Call it in a
        single-threaded process (a child just forked), since it moves the calling thread only."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(NETNS_DIR / self.name, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns into {self.name}: {os.strerror(err)}")
        finally:
            os.close(fd)


def ip_command() -> str | None:
    """iproute2's ``ip``; it lives in /usr/sbin, which is not on every PATH."""
    return shutil.which("ip", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def _ip(*args: str) -> str:
    ip = ip_command()
    if ip is None:
        raise FaxopsError("iproute2's `ip` is not installed (Debian: apt-get install iproute2)")
    result = subprocess.run([ip, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise FaxopsError(f"ip {' '.join(args)}: {result.stderr.strip() or f'exit {result.returncode}'}")
    return result.stdout


def unavailable() -> str | None:
    """Why network namespaces cannot be made here (not root, no ``ip``, a kernel or container that
    forbids them), or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    if ip_command() is None:
        return "iproute2's `ip` is not installed (Debian: apt-get install iproute2)"
    probe = f"faxops-probe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except FaxopsError as exc:
        return f"`ip netns add` fails here: {exc}"
    _ip("netns", "delete", probe)
    return None


def _host_networks() -> list[IPv4Network]:
    routes = json.loads(_ip("-j", "-4", "route", "show", "table", "all") or "[]")
    found = []
    for route in routes:
        with contextlib.suppress(ValueError):
            found.append(ipaddress.ip_network(route.get("dst", ""), strict=False))
    return [n for n in found if isinstance(n, IPv4Network)]


def _free_subnets(count: int) -> list[IPv4Network]:
    """``count`` /30s of ``POOL`` that overlap no route of the host (nor each other)."""
    taken = _host_networks()
    chosen: list[IPv4Network] = []
    rng = random.SystemRandom()
    slots = POOL.num_addresses // 4
    for _ in range(1000):
        subnet = IPv4Network((int(POOL.network_address) + 4 * rng.randrange(slots), 30))
        if not any(subnet.overlaps(other) for other in [*taken, *chosen]):
            chosen.append(subnet)
            if len(chosen) == count:
                return chosen
    raise FaxopsError(f"no free /30 in {POOL} for {count} network namespaces")


def _remove(made_links: list[str], made_namespaces: list[str]) -> list[str]:
    """Delete what was made; returns what is still there afterwards."""
    for link in made_links:
        with contextlib.suppress(FaxopsError):
            _ip("link", "delete", link)  # takes its peer in the namespace with it
    for name in made_namespaces:
        with contextlib.suppress(FaxopsError):
            _ip("netns", "delete", name)
    present_links = {entry.get("ifname") for entry in json.loads(_ip("-j", "link", "show") or "[]")}
    present_namespaces = {entry.get("name") for entry in json.loads(_ip("-j", "netns", "list") or "[]")}
    return [n for n in made_links if n in present_links] + [n for n in made_namespaces if n in present_namespaces]


@contextlib.contextmanager
def namespaces(count: int) -> Iterator[list[Namespace]]:
    """``count`` network namespaces, each joined to the host by a veth pair on a /30 of its own, with
    loopback and the link up; all removed on exit. Raises ``FaxopsError`` when one cannot be made."""
    token = secrets.token_hex(3)
    made_links: list[str] = []
    made_namespaces: list[str] = []
    try:
        made = []
        for index, subnet in enumerate(_free_subnets(count)):
            first, second = subnet.hosts()
            ns = Namespace(
                name=f"faxops-{token}-{index}",
                host_link=f"fx{token}h{index}",  # at most 15 characters, the kernel's limit
                host_end=IPv4Interface(f"{first}/30"),
                inside=IPv4Interface(f"{second}/30"),
            )
            _ip("netns", "add", ns.name)
            made_namespaces.append(ns.name)
            # The peer is created inside the namespace, so its name there cannot clash with the host's eth0.
            _ip("link", "add", ns.host_link, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
            made_links.append(ns.host_link)
            _ip("address", "add", str(ns.host_end), "dev", ns.host_link)
            _ip("link", "set", ns.host_link, "up")
            _ip("-n", ns.name, "address", "add", str(ns.inside), "dev", "eth0")
            _ip("-n", ns.name, "link", "set", "eth0", "up")
            _ip("-n", ns.name, "link", "set", "lo", "up")
            made.append(ns)
        yield made
    finally:
        left = _remove(made_links, made_namespaces)
        if left:
            raise FaxopsError(f"could not remove {', '.join(left)}: remove with `ip link delete` / `ip netns delete`")
