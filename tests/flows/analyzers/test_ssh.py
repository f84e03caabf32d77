"""ssh analyser: crafted sessions (banners, KEXINIT negotiation, auth heuristic), fuzzing, Zeek conformance."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.flows.analyzers.base import Analysis
from mamori.flows.analyzers.ssh import SSHAnalyzer, _is_local
from mamori.flows.conversation import Conversation, Segment
from support.dpkt_conversations import conversations

SSH = SSHAnalyzer()


def _string(s: bytes) -> bytes:
    return len(s).to_bytes(4, "big") + s


def _packet(payload: bytes) -> bytes:
    pad = 8 - (len(payload) + 5) % 8 + 4
    return (len(payload) + pad + 1).to_bytes(4, "big") + bytes([pad]) + payload + b"\x00" * pad


def _kexinit(kex: str, hostkey: str, cipher: str, mac: str, comp: str = "none") -> bytes:
    lists = [kex, hostkey, cipher, cipher, mac, mac, comp, comp, "", ""]
    return _packet(
        b"\x14" + b"\x00" * 16 + b"".join(_string(x.encode()) for x in lists) + b"\x00" * 5
    )


def _conv(segments: list[tuple[bool, bytes]]) -> Conversation:
    conv = Conversation("Cssh", 10.0, "10.0.0.5", 40000, "93.184.216.34", 22, "tcp")
    conv.segments = [Segment(10.0 + i, o, d) for i, (o, d) in enumerate(segments)]
    return conv


def _session(server_sizes: list[int]) -> Conversation:
    host_key = _string(b"ssh-ed25519") + _string(b"\x01" * 32)
    segs = [
        (True, b"SSH-2.0-OpenSSH_9.6\r\n"),
        (False, b"SSH-2.0-OpenSSH_8.9p1 Ubuntu\r\n"),
        (True, _kexinit("curve25519-sha256,ecdh-sha2-nistp256", "ssh-ed25519", "aes128-ctr,chacha20-poly1305@openssh.com", "hmac-sha2-256")),
        (False, _kexinit("ecdh-sha2-nistp256,curve25519-sha256", "rsa-sha2-512,ssh-ed25519", "chacha20-poly1305@openssh.com,aes128-ctr", "hmac-sha2-256")),
        (True, _packet(b"\x1e" + _string(b"\x02" * 32))),
        (False, _packet(b"\x1f" + _string(host_key) + _string(b"\x03" * 32) + _string(b"sig")) + _packet(b"\x15")),
        (True, _packet(b"\x15") + b"\xaa" * 44),  # NEWKEYS then SERVICE_REQUEST, encrypted
    ]  # fmt: skip
    segs += [(False, b"\xbb" * n) for n in server_sizes]
    return _conv(segs)


def test_negotiation_banners_and_host_key() -> None:
    result = SSH.analyze(_session([44]))
    assert result.confirmed
    (row,) = result.records
    assert row["client"] == "SSH-2.0-OpenSSH_9.6"
    assert row["server"] == "SSH-2.0-OpenSSH_8.9p1 Ubuntu"
    assert row["version"] == 2
    assert row["kex_alg"] == "curve25519-sha256"  # the client's first choice the server supports
    assert row["host_key_alg"] == "ssh-ed25519"
    assert row["cipher_alg"] == "aes128-ctr"
    assert row["mac_alg"] == "hmac-sha2-256"
    assert row["compression_alg"] == "none"
    host_key = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + b"\x01" * 32
    assert row["host_key"] == ":".join(f"{b:02x}" for b in hashlib.md5(host_key).digest())
    assert row["direction"] == "OUTBOUND"
    hassh = "curve25519-sha256,ecdh-sha2-nistp256;aes128-ctr,chacha20-poly1305@openssh.com;hmac-sha2-256;none"
    assert row["hassh"] == hashlib.md5(hassh.encode()).hexdigest()
    assert row["auth_success"] is None and row["auth_attempts"] == 0


def test_auth_heuristic_success_after_failures() -> None:
    # SERVICE_ACCEPT 44 bytes, two failures of 60 bytes, then a success 16 bytes under 44.
    # The client must send encrypted data first; the first session segment already did.
    (row,) = SSH.analyze(_session([44, 60, 60, 28])).records
    assert row["auth_success"] is True
    assert row["auth_attempts"] == 2


def test_auth_heuristic_failure_only() -> None:
    (row,) = SSH.analyze(_session([44, 60, 60, 60])).records
    assert row["auth_success"] is False
    assert row["auth_attempts"] == 2


def _reference_is_local(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local


_DOTTED = st.lists(st.integers(0, 255), min_size=4, max_size=4).map(lambda o: ".".join(map(str, o)))
_ODD_ADDR = st.text(alphabet="0123456789.:abcdef x", max_size=20)
_NEAR_EDGES = st.sampled_from(
    ["10.0.0.0/8", "172.0.0.0/8", "192.0.0.0/16", "169.254.0.0/16", "127.0.0.0/8", "100.64.0.0/10"]
).flatmap(lambda net: st.ip_addresses(network=net).map(str))


@given(st.one_of(st.ip_addresses().map(str), _DOTTED, _NEAR_EDGES, _ODD_ADDR))
def test_is_local_agrees_with_ipaddress(addr: str) -> None:
    """The integer fast path decides ssh.log's direction exactly as ``ipaddress`` would."""
    assert _is_local(addr) == _reference_is_local(addr)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=8))
def test_random_bytes_never_raise(segments: list[tuple[bool, bytes]]) -> None:
    assert isinstance(SSH.analyze(_conv([(True, b"SSH-2.0-x\r\n"), *segments])), Analysis)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_sessions_never_raise(data: st.DataObject) -> None:
    conv = _session([44, 60, 28])
    for seg in conv.segments:
        raw = bytearray(seg.data)
        for _ in range(data.draw(st.integers(0, 3))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        seg.data = bytes(raw[: data.draw(st.integers(0, len(raw)))])
    assert isinstance(SSH.analyze(conv), Analysis)


def _zeek_rows(path: Path) -> list[dict[str, str]]:
    fields: list[str] = []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"), strict=False)))
    return rows


def _tsv(value: object) -> str:
    return (
        "-" if value is None else ("T" if value is True else "F" if value is False else str(value))
    )


def test_conformance_with_zeek(data_dir: Path) -> None:
    reference = data_dir / "zeek-reference"
    compared = ("client", "server", "auth_success", "auth_attempts", "kex_alg", "host_key")
    total = matched = 0
    differences = []
    for log in sorted(reference.rglob("ssh.log")):
        rel = str(log.parent.relative_to(reference))[: -len(".zeek")]
        ours = {
            (c.orig_h, c.orig_p, c.resp_h, c.resp_p): row
            for c in conversations(data_dir / rel)
            if c.proto == "tcp"
            for row in SSH.analyze(c).records
        }
        for z in _zeek_rows(log):
            total += 1
            key = (z["id.orig_h"], int(z["id.orig_p"]), z["id.resp_h"], int(z["id.resp_p"]))
            mine = ours.get(key, {})
            diff = [(f, z[f], _tsv(mine.get(f))) for f in compared if z[f] != _tsv(mine.get(f))]
            if diff:
                differences.append(f"{rel} {key}: {diff}")
            else:
                matched += 1
    print(f"\nssh conformance: {matched}/{total} on {', '.join(compared)}")
    print("\n".join(differences))
    assert matched / total >= 0.95, "\n".join(differences)
