"""ssl analyser: crafted handshakes, external fingerprint references, fuzzing, and Zeek conformance."""

from __future__ import annotations

import hashlib
import socket
from itertools import pairwise
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.flows.analyzers import tls_fingerprints as tf
from mamori.flows.analyzers.base import Analysis, registered
from mamori.flows.analyzers.ssl import SSLAnalyzer
from mamori.flows.analyzers.x509_names import CertNames, hostname_matches
from mamori.flows.conversation import Conversation, Segment
from support.dpkt_conversations import conversations

SSL = SSLAnalyzer()


def _rec(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return bytes([ctype]) + version.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def _hs(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _ext(code: int, body: bytes) -> bytes:
    return code.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def _client_hello(sni: str = "example.com", session_id: bytes = b"") -> bytes:
    name = sni.encode()
    exts = (
        _ext(0x0A0A, b"")  # GREASE
        + _ext(
            0, (len(name) + 3).to_bytes(2, "big") + b"\x00" + len(name).to_bytes(2, "big") + name
        )
        + _ext(10, b"\x00\x06\x1a\x1a\x00\x1d\x00\x17")  # groups: GREASE, x25519, secp256r1
        + _ext(11, b"\x01\x00")
        + _ext(13, b"\x00\x04\x04\x03\x08\x04")
        + _ext(16, b"\x00\x03\x02h2")
    )
    ciphers = b"\x2a\x2a\xc0\x2f\xc0\x30"
    body = (
        b"\x03\x03" + b"\x11" * 32 + bytes([len(session_id)]) + session_id
        + len(ciphers).to_bytes(2, "big") + ciphers + b"\x01\x00"
        + len(exts).to_bytes(2, "big") + exts
    )  # fmt: skip
    return _hs(1, body)


def _server_hello(
    session_id: bytes = b"", exts: bytes = b"", random: bytes = b"\x22" * 32
) -> bytes:
    body = b"\x03\x03" + random + bytes([len(session_id)]) + session_id + b"\xc0\x2f\x00"
    if exts:
        body += len(exts).to_bytes(2, "big") + exts
    return _hs(2, body)


def _conv(*segments: tuple[bool, bytes]) -> Conversation:
    conv = Conversation("Ctest", 1000.0, "10.0.0.1", 50000, "192.0.2.1", 443, "tcp")
    conv.segments = [Segment(1000.0 + i, o, d) for i, (o, d) in enumerate(segments)]
    return conv


def _tls12_session() -> Conversation:
    alpn = _ext(16, b"\x00\x03\x02h2")
    return _conv(
        (True, _rec(22, _client_hello(), 0x0301)),
        (False, _rec(22, _server_hello(exts=alpn) + _hs(11, b"\x00\x00\x00") + _hs(14, b""))),
        (True, _rec(22, _hs(16, b"\x00")) + _rec(20, b"\x01") + _rec(22, b"\xee" * 40)),
        (False, _rec(20, b"\x01") + _rec(22, b"\xee" * 40)),
        (True, _rec(23, b"\xee" * 100)),
    )


def test_registered_and_matches() -> None:
    assert registered()["ssl"].table == "ssl"
    hello = _rec(22, _client_hello(), 0x0301)
    assert SSL.matches("tcp", 50000, 8443, hello, b"")
    assert not SSL.matches("tcp", 50000, 443, b"GET / HTTP/1.1\r\n", b"")
    assert not SSL.matches("udp", 50000, 443, hello, b"")


def test_tls12_handshake_fields() -> None:
    result = SSL.analyze(_tls12_session())
    assert result.confirmed
    (row,) = result.records
    assert row["version"] == "TLSv12"
    assert row["cipher"] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert row["server_name"] == "example.com"
    assert row["next_protocol"] == "h2"
    assert row["established"] is True
    assert row["resumed"] is False
    # C s x n G I i: the server's encrypted Finished establishes the session; nothing after counts.
    assert row["ssl_history"] == "CsxnGIi"
    assert row["cert_chain_fps"] == [] and row["client_cert_chain_fps"] == []
    assert row["ts"] == 1000.0 and row["orig_h"] == "10.0.0.1"


def test_ja3_removes_grease() -> None:
    hello = tf.parse_client_hello(_client_hello()[4:])
    assert tf.ja3_string(hello) == "771,49199-49200,0-10-11-13-16,29-23,0"
    assert tf.ja3(hello) == hashlib.md5(b"771,49199-49200,0-10-11-13-16,29-23,0").hexdigest()
    ja4 = tf.ja4(hello)
    assert ja4.startswith("t12d0205h2_")
    expected_b = hashlib.sha256(b"c02f,c030").hexdigest()[:12]
    expected_c = hashlib.sha256(b"000a,000b,000d_0403,0804").hexdigest()[:12]
    assert ja4 == f"t12d0205h2_{expected_b}_{expected_c}"


def test_tls13_version_from_supported_versions() -> None:
    sh_exts = _ext(43, b"\x03\x04") + _ext(51, b"\x00\x1d\x00\x20" + b"\x00" * 32)
    sid = b"\x05" * 32
    conv = _conv(
        (True, _rec(22, _client_hello(session_id=sid), 0x0301)),
        (False, _rec(22, _server_hello(session_id=sid, exts=sh_exts)) + _rec(20, b"\x01")),
        (False, _rec(23, b"\xee" * 60)),
        (True, _rec(20, b"\x01") + _rec(23, b"\xee" * 60)),
    )
    (row,) = SSL.analyze(conv).records
    assert row["version"] == "TLSv13"
    assert row["curve"] == "x25519"
    assert row["resumed"] is False  # an echoed session id is middlebox compatibility in TLS 1.3
    assert row["established"] is True
    assert row["ssl_history"] == "CsiI"


def test_hello_retry_request_is_j_in_history() -> None:
    # RFC 8446 4.1.3: a ServerHello whose random is SHA-256("HelloRetryRequest") asks the client
    # for a second hello. Zeek (ssl/main.zeek) writes that ServerHello as "j", the real one as "s".
    hrr = hashlib.sha256(b"HelloRetryRequest").digest()
    sid = b"\x05" * 32
    retry_exts = _ext(43, b"\x03\x04") + _ext(51, b"\x00\x1d")  # the group the server wants
    sh_exts = _ext(43, b"\x03\x04") + _ext(51, b"\x00\x1d\x00\x20" + b"\x00" * 32)
    conv = _conv(
        (True, _rec(22, _client_hello(session_id=sid), 0x0301)),
        (False, _rec(22, _server_hello(session_id=sid, exts=retry_exts, random=hrr))),
        (True, _rec(20, b"\x01") + _rec(22, _client_hello(session_id=sid))),
        (False, _rec(22, _server_hello(session_id=sid, exts=sh_exts)) + _rec(20, b"\x01")),
        (False, _rec(23, b"\xee" * 60)),
        (True, _rec(23, b"\xee" * 60)),
    )
    (row,) = SSL.analyze(conv).records
    assert row["version"] == "TLSv13"
    assert row["ssl_history"] == "CjICsi"
    assert row["established"] is True


def test_session_id_resumption_and_alert() -> None:
    sid = b"\x07" * 32
    conv = _conv(
        (True, _rec(22, _client_hello(session_id=sid), 0x0301)),
        (False, _rec(22, _server_hello(session_id=sid))),
        (False, _rec(21, b"\x02\x28")),
    )
    (row,) = SSL.analyze(conv).records
    assert row["resumed"] is True
    assert row["last_alert"] == "handshake_failure"
    assert row["established"] is False
    assert row["ssl_history"] == "Csl"


def test_hostname_matching_rules() -> None:
    assert hostname_matches(CertNames(dns_names=["*.example.com"]), "www.example.com")
    assert not hostname_matches(CertNames(dns_names=["*.example.com"]), "a.b.example.com")
    assert not hostname_matches(CertNames(dns_names=["*.com"]), "example.com")
    # without a SAN only the last CN counts (Zeek's x509_check_cert_hostname)
    assert not hostname_matches(
        CertNames(common_names=["a.example.com", "b.example.com"]), "a.example.com"
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=8))
def test_random_bytes_never_raise(segments: list[tuple[bool, bytes]]) -> None:
    assert isinstance(SSL.analyze(_conv(*segments)), Analysis)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_handshakes_never_raise(data: st.DataObject) -> None:
    conv = _tls12_session()
    for seg in conv.segments:
        raw = bytearray(seg.data)
        for _ in range(data.draw(st.integers(0, 4))):
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(raw)))
        seg.data = bytes(raw[:cut])
    assert isinstance(SSL.analyze(conv), Analysis)


_SPLIT_TRACES = (
    "zeek-btest/Traces/tls/tls-conn-with-extensions.pcap",
    "zeek-btest/Traces/tls/ecdhe.pcap",
    "zeek-btest/Traces/tls/tls1.2-late-protocol-error.pcap",
    "zeek-btest/Traces/tls/missing-intermediate.pcap",
)
_split_cache: list[Conversation] = []


def _tls_conversations(data_dir: Path) -> list[Conversation]:
    """The conversations of a few real TLS traces that give an ssl.log row (read once)."""
    if not _split_cache:
        for name in _SPLIT_TRACES:
            for conv in conversations(data_dir / name):
                if conv.proto == "tcp" and SSL.analyze(conv).records:
                    _split_cache.append(conv)
        _split_cache.append(_tls12_session())
    return _split_cache


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_records_do_not_depend_on_segmentation(data_dir: Path, data: st.DataObject) -> None:
    """Records and handshake messages are reassembled from each direction's bytes: cutting that
    data into other pieces (records split anywhere, several records in one piece) changes
    nothing."""
    conv = data.draw(st.sampled_from(_tls_conversations(data_dir)))
    pieces = []
    for seg in conv.segments:
        cuts = sorted(data.draw(st.lists(st.integers(0, len(seg.data)), max_size=6)))
        bounds = [0, *cuts, len(seg.data)]
        for i, (a, b) in enumerate(pairwise(bounds)):
            pieces.append(Segment(seg.ts, seg.is_orig, seg.data[a:b], seg.gap if i == 0 else 0))
    split = Conversation(
        conv.uid, conv.ts, conv.orig_h, conv.orig_p, conv.resp_h, conv.resp_p, conv.proto, pieces
    )
    assert SSL.analyze(split) == SSL.analyze(conv)


_EXT_CODES = st.sampled_from([0, 10, 11, 13, 16, 35, 41, 43, 51, 0x0A0A, 0xFAFA, 0xFF01])
_HELLOS = st.builds(
    tf.Hello,
    version=st.sampled_from([0x0301, 0x0303, 0xFEFD, 0x0304]),
    random=st.binary(min_size=32, max_size=32),
    ciphers=st.lists(st.sampled_from([0x0A0A, 0xC02F, 0xC030, 0x1301, 0x002F]), max_size=5),
    extensions=st.lists(
        st.tuples(_EXT_CODES, st.sampled_from([b"", b"\x00\x02\x00\x1d", b"\x02h2", b"\x01\x00"])),
        max_size=6,
    ),
)


@given(_HELLOS, st.sampled_from(["tcp", "quic"]))
def test_cached_fingerprints_equal_computed_ones(hello: tf.Hello, transport: str) -> None:
    """The JA3/JA4/JA3S caches are keyed by every field the fingerprints read: a cached answer
    (the second call) is always the one computing afresh gives."""
    for _ in range(2):
        assert tf.fingerprints(hello, transport) == (tf.ja3(hello), tf.ja4(hello, transport))
        assert tf.ja3s_cached(hello) == tf.ja3s(hello)


# ---------------------------------------------------------------- conformance with Zeek 7.2.2

# TLS that Zeek found inside another protocol's session (its SMTP, SOCKS, RDP and GSI-FTP analysers
# hand the stream to SSL mid-connection); the tracker dispatches one analyser per conversation
# from its first payload, so these rows belong to those protocols' analysers, not to this one.
TUNNELLED = {
    "zeek-btest/Traces/tls/smtp-starttls.pcap",
    "zeek-btest/Traces/socks-with-ssl.pcap",
    "zeek-btest/Traces/rdp/rdp-to-ssl.pcap",
    "zeek-btest/Traces/rdp/rdp-no-cookie-mstshash.pcap",
    "zeek-btest/Traces/globus-url-copy.pcap",
}
# The dpkt builder cannot decapsulate PPPoE (over QinQ), so it yields no conversation at all.
UNREADABLE = {"zeek-btest/Traces/pppoe-over-qinq.pcap"}
COMPARED = ("version", "server_name", "cipher", "established")


def read_zeek_log(path: Path) -> list[dict[str, str]]:
    """Rows of a Zeek TSV log keyed by its ``#fields`` header."""
    fields: list[str] = []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"), strict=False)))
    return rows


def zeek_value(value: object) -> str:
    """Render a record value as Zeek's TSV writer would."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "T" if value else "F"
    return str(value)


def out_of_order_flows(capture: Path) -> set[tuple[str, int, str, int]]:
    """Flows with a TCP segment captured before a lower-sequence one of the same direction.

    The dpkt builder orders a conversation's segments by capture time, so such a flow reaches the
    analyser out of order (the production tracker reassembles by sequence number). Those
    connections say nothing about the analyser and are excluded, each one named in the output.
    """
    flows: set[tuple[str, int, str, int]] = set()
    top: dict[tuple, int] = {}
    seen: set[tuple] = set()
    with open(capture, "rb") as fh:
        reader = dpkt.pcapng.Reader(fh) if capture.suffix == ".pcapng" else dpkt.pcap.Reader(fh)
        for _, buf in reader:
            try:
                eth = dpkt.ethernet.Ethernet(buf)
            except (dpkt.UnpackError, IndexError):
                continue
            ip = eth.data
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) or not isinstance(
                ip.data, dpkt.tcp.TCP
            ):
                continue
            tcp = ip.data
            if not tcp.data:
                continue
            fam = socket.AF_INET6 if len(ip.src) == 16 else socket.AF_INET
            key = (
                socket.inet_ntop(fam, ip.src),
                tcp.sport,
                socket.inet_ntop(fam, ip.dst),
                tcp.dport,
            )
            if key in top and tcp.seq < top[key] and (key, tcp.seq) not in seen:
                flows.add(key)
                flows.add((key[2], key[3], key[0], key[1]))
            top[key] = max(top.get(key, 0), tcp.seq)
            seen.add((key, tcp.seq))
    return flows


def test_conformance_with_zeek(data_dir: Path) -> None:
    reference = data_dir / "zeek-reference"
    total = matched = 0
    differences: list[str] = []
    excluded: list[str] = []
    for log in sorted(reference.rglob("ssl.log")):
        rel = str(log.parent.relative_to(reference))[: -len(".zeek")]
        if rel in TUNNELLED or rel in UNREADABLE:
            excluded.append(
                f"{rel}: {'tunnelled TLS' if rel in TUNNELLED else 'unreadable by dpkt'}"
            )
            continue
        capture = data_dir / rel
        ours: dict[tuple[str, int, str, int], dict[str, object]] = {}
        for conv in conversations(capture):
            if conv.proto == "tcp":
                for row in SSL.analyze(conv).records:
                    ours[(conv.orig_h, conv.orig_p, conv.resp_h, conv.resp_p)] = row
        disordered = out_of_order_flows(capture)
        for z in read_zeek_log(log):
            key = (z["id.orig_h"], int(z["id.orig_p"]), z["id.resp_h"], int(z["id.resp_p"]))
            if key in disordered:
                excluded.append(f"{rel} {key}: out-of-order capture, builder orders by time")
                continue
            total += 1
            mine = ours.get(key)
            diff = (
                [
                    (f, z[f], zeek_value(mine.get(f)))
                    for f in COMPARED
                    if z[f] != zeek_value(mine.get(f))
                ]
                if mine
                else [("row", "present", "missing")]
            )
            if diff:
                differences.append(f"{rel} {key}: {diff}")
            else:
                matched += 1
    share = matched / total
    print(f"\nssl conformance: {matched}/{total} = {share:.1%} on {', '.join(COMPARED)}")
    print("excluded:\n  " + "\n  ".join(excluded))
    print("differences:\n  " + "\n  ".join(differences))
    assert share >= 0.95, "\n".join(differences)


@pytest.mark.parametrize(
    ("capture", "field", "expected"),
    [
        # Suricata-verify's expectations for the same captures (independent implementations).
        (
            "suricata-verify/tests/tls/tls-certs-alert/input.pcap",
            "ja3s",
            "5d79edf64e03689ff559a54e9d9487bc",
        ),
        ("suricata-verify/tests/ja4-tls/input.pcap", "ja4", "t12i1810s1_27d4652c4487_06a4338d0495"),
    ],
)
def test_fingerprints_match_suricata(
    data_dir: Path, capture: str, field: str, expected: str
) -> None:
    values = {
        row[field]
        for conv in conversations(data_dir / capture)
        if conv.proto == "tcp"
        for row in SSL.analyze(conv).records
    }
    assert expected in values
