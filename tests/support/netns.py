"""Two network namespaces joined by a veth pair: a firewall under test and a peer that sends to it.

Tests that enforce for real (nftables) need traffic that really crosses a kernel; namespaces give
that without touching the host's own network. Each pair is named after the test process so two
runs can share a machine, and is always deleted afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_LISTENER = """
import socket, sys
s4 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s4.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s4.bind(("::", int(sys.argv[1])))
s4.listen(64)
print("ready", flush=True)
while True:
    c, _ = s4.accept()
    c.close()
"""

_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError:
    sys.exit(1)
"""

_FLOOD = """
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[3])):
    s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
"""


def sh(*args: str, input: str | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, input=input, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Pair:
    fw: str  # namespace holding the firewall and a TCP listener
    peer: str  # namespace of the sender
    fw4: str
    peer4: str
    fw6: str
    peer6: str
    port: int = 8080

    def connects(self, address: str, timeout: float = 0.6) -> bool:
        """Whether a TCP connection from the peer to ``address`` completes (a drop times out)."""
        cmd = ["ip", "netns", "exec", self.peer, sys.executable, "-S", "-c", _CONNECT]
        proc = subprocess.run(
            [*cmd, address, str(self.port), str(timeout)],
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0

    def flood(self, address: str, count: int, port: int = 9999) -> None:
        """``count`` one-byte UDP datagrams from the peer to ``address`` as fast as Python can."""
        sh(
            "ip", "netns", "exec", self.peer, sys.executable, "-S", "-c", _FLOOD,
            address, str(port), str(count),
        )  # fmt: skip


@contextmanager
def veth_pair(tag: str = "", fw4: str = "10.213.0.1", peer4: str = "10.213.0.2") -> Iterator[Pair]:
    """Both ends in one /24 (``fw4`` and ``peer4`` must share it) and in fd00:213::/64."""
    n = f"{os.getpid() % 100000}{tag}"
    pair = Pair(
        fw=f"mamori-fw-{n}",
        peer=f"mamori-peer-{n}",
        fw4=fw4,
        peer4=peer4,
        fw6="fd00:213::1",
        peer6="fd00:213::2",
    )
    a, b = f"mfw{n}"[:15], f"mpr{n}"[:15]
    listener = None
    try:
        sh("ip", "netns", "add", pair.fw)
        sh("ip", "netns", "add", pair.peer)
        sh("ip", "link", "add", a, "netns", pair.fw, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", b, "netns", pair.peer)
        ends = ((pair.fw, a, pair.fw4, pair.fw6), (pair.peer, b, pair.peer4, pair.peer6))
        for ns, dev, v4, v6 in ends:
            sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        listener = subprocess.Popen(
            ["ip", "netns", "exec", pair.fw, sys.executable, "-S", "-c", _LISTENER, str(pair.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        yield pair
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        for ns in (pair.fw, pair.peer):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def connects_from(ns: str, address: str, port: int = 8080, timeout: float = 0.6) -> bool:
    """Whether a TCP connection from namespace ``ns`` to ``address`` completes."""
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-S", "-c", _CONNECT]
    proc = subprocess.run(
        [*cmd, address, str(port), str(timeout)], capture_output=True, check=False
    )
    return proc.returncode == 0


@dataclass
class Routed:
    inside: str  # an internal host's namespace (10.215.1.2)
    fw: str  # the firewall routing between the two (10.215.1.1 / 10.215.2.1)
    outside: str  # another network's host (10.215.2.2); all three listen on TCP 8080
    inside4: str = "10.215.1.2"
    fw_in4: str = "10.215.1.1"
    outside4: str = "10.215.2.2"


@contextmanager
def routed(tag: str = "") -> Iterator[Routed]:
    """inside <-> fw <-> outside, the firewall forwarding between two /24s: what quarantine, a
    forward-chain rule, needs to be shown on real traffic."""
    n = f"{os.getpid() % 100000}{tag}"
    r = Routed(f"mamori-in-{n}", f"mamori-rt-{n}", f"mamori-out-{n}")
    listeners: list[subprocess.Popen[str]] = []
    try:
        for ns in (r.inside, r.fw, r.outside):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for (ns, dev, addr), (fw_dev, fw_addr) in (
            ((r.inside, f"mi{n}"[:15], "10.215.1.2/24"), (f"ri{n}"[:15], "10.215.1.1/24")),
            ((r.outside, f"mo{n}"[:15], "10.215.2.2/24"), (f"ro{n}"[:15], "10.215.2.1/24")),
        ):
            sh("ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", fw_dev)
            sh("ip", "link", "set", fw_dev, "netns", r.fw)
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", r.fw, "addr", "add", fw_addr, "dev", fw_dev)
            sh("ip", "-n", r.fw, "link", "set", fw_dev, "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", fw_addr.split("/")[0])
        sh("ip", "netns", "exec", r.fw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for ns in (r.inside, r.fw, r.outside):
            p = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-S", "-c", _LISTENER, "8080"],
                stdout=subprocess.PIPE,
                text=True,
            )
            listeners.append(p)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        yield r
    finally:
        for p in listeners:
            p.kill()
            p.wait()
        for ns in (r.inside, r.fw, r.outside):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
