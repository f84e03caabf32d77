"""A real unbound on loopback loading an RPZ zone, and a small DNS client built with dpkt.

Started per test module on a free port with its own configuration in a temporary folder; the zone
is reloaded through ``unbound-control`` over a private unix socket, as an operator would.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dpkt

CONFIG = """server:
    interface: 127.0.0.1
    port: {port}
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    use-syslog: no
    logfile: "{dir}/unbound.log"
    verbosity: 1
    module-config: "respip iterator"
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    local-zone: "test." nodefault

auth-zone:
    name: "test."
    zonefile: "{dir}/test.zone"
    for-downstream: no
    for-upstream: yes

remote-control:
    control-enable: yes
    control-interface: "{dir}/control.sock"
    control-use-cert: no

rpz:
    name: "{zone}"
    zonefile: "{zonefile}"
    rpz-log: yes
"""


# The names the resolver really answers (an upstream the RPZ rewrites), all under ``test.``.
TEST_ZONE = """$ORIGIN test.
$TTL 60
@ IN SOA localhost. hostmaster.localhost. 1 300 60 86400 60
@ IN NS localhost.
ok IN A 192.0.2.10
evil IN A 192.0.2.66
www.evil IN A 192.0.2.66
c2 IN A 192.0.2.67
x.c2 IN A 192.0.2.67
partner IN A 192.0.2.11
"""
REAL = {"ok.test": "192.0.2.10", "evil.test": "192.0.2.66", "www.evil.test": "192.0.2.66",
        "c2.test": "192.0.2.67", "x.c2.test": "192.0.2.67", "partner.test": "192.0.2.11"}  # fmt: skip


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Answer:
    rcode: int  # 0 NOERROR, 3 NXDOMAIN
    addresses: list[str]


@dataclass
class Unbound:
    port: int
    config: Path
    zonefile: Path
    zone: str

    def reload_command(self) -> list[str]:
        return ["unbound-control", "-c", str(self.config), "auth_zone_reload", self.zone]

    def query(self, name: str, qtype: int = dpkt.dns.DNS_A) -> Answer:
        q = dpkt.dns.DNS(id=4242, rd=1, qd=[dpkt.dns.DNS.Q(name=name, type=qtype)])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(bytes(q), ("127.0.0.1", self.port))
            reply = dpkt.dns.DNS(s.recv(4096))
        assert reply.id == 4242
        addrs = [socket.inet_ntop(socket.AF_INET, rr.ip) for rr in reply.an if rr.type == 1]
        addrs += [socket.inet_ntop(socket.AF_INET6, rr.ip6) for rr in reply.an if rr.type == 28]
        return Answer(reply.rcode, addrs)


@contextlib.contextmanager
def unbound(
    folder: Path, zone_text: str, zone: str = "rpz.mamori.", upstream: dict[str, str] | None = None
) -> Iterator[Unbound]:
    """``upstream`` adds zones (name -> zone text) the resolver answers as if from the internet,
    so the test never leaves the machine."""
    folder.mkdir(parents=True, exist_ok=True)
    zonefile = folder / "mamori.rpz"
    zonefile.write_text(zone_text)
    (folder / "test.zone").write_text(TEST_ZONE)
    port = free_udp_port()
    config = folder / "unbound.conf"
    text = CONFIG.format(port=port, dir=folder, zone=zone, zonefile=zonefile)
    for k, (name, records) in enumerate((upstream or {}).items()):
        (folder / f"upstream{k}.zone").write_text(records)
        text += (
            f'\nauth-zone:\n    name: "{name}"\n    zonefile: "{folder}/upstream{k}.zone"\n'
            "    for-downstream: no\n    for-upstream: yes\n"
        )
    config.write_text(text)
    check = subprocess.run(["unbound-checkconf", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.Popen(["unbound", "-d", "-c", str(config)], stderr=subprocess.PIPE)
    server = Unbound(port, config, zonefile, zone)
    try:
        deadline = time.monotonic() + 10
        while True:
            status = subprocess.run(
                ["unbound-control", "-c", str(config), "status"], capture_output=True, text=True
            )
            if status.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (
                    (folder / "unbound.log").read_text()
                    if (folder / "unbound.log").exists()
                    else ""
                )
                raise RuntimeError(f"unbound did not start: {log}")
            time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
