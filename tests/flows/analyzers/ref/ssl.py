"""Frozen copy (HEAD 7454125) kept as the reference the fast analyser is property-tested against.

TLS/SSL analyser: Zeek's ssl.log from a reassembled TCP conversation.

It replays Zeek's record-layer state machine rather than just reading the hellos, because the log's
``established``, ``ssl_history`` and ``last_alert`` depend on *when* Zeek stops looking:

* a direction turns "encrypted" at its ChangeCipherSpec (TLS <= 1.2) or, once TLS 1.3 was negotiated,
  at its first application-data record; the first ciphertext record seen while both directions are
  encrypted makes the session ``established``, and Zeek then logs and detaches the analyser, so
  nothing after that point reaches the history;
* a record-layer violation (bad version, unknown type) or a content gap also ends analysis;
* the negotiated version is the server's supported_versions choice when present (TLS 1.3).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pyarrow as pa

from mamori.flows.analyzers import tls_fingerprints as tf
from mamori.flows.analyzers.base import Analysis
from mamori.flows.analyzers.tls_names import alert_name, cipher_name, curve_name, version_name
from mamori.flows.analyzers.x509_names import cert_names, hostname_matches
from mamori.flows.conversation import Conversation
from mamori.schema.ssl import SCHEMA

_CCS, _ALERT, _HANDSHAKE, _APPDATA, _HEARTBEAT = 20, 21, 22, 23, 24
_RECORD_VERSIONS = (0x0300, 0x0301, 0x0302, 0x0303)
# RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest; it is
# SHA-256("HelloRetryRequest"), as Zeek's ssl/main.zeek compares it.
_HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
_HISTORY = {
    0: "h", 1: "c", 2: "s", 3: "v", 4: "t", 5: "e", 6: "j", 8: "o", 11: "x", 12: "k", 13: "r",
    14: "n", 15: "y", 16: "g", 20: "f", 21: "w", 22: "u", 23: "a", 24: "p", 254: "m",
}  # fmt: skip
_MAX_HISTORY = 100
_NAMES = tuple(SCHEMA.names)


_HELLO_VERSIONS = frozenset((0x0002, *_RECORD_VERSIONS, 0x0304, 0xFEFF, 0xFEFD, 0xFEFC))
_PRE_TLS13 = frozenset((0x0002, *_RECORD_VERSIONS))


def _version_ok(v: int) -> bool:
    """Versions Zeek's handshake parser accepts (others are a protocol violation)."""
    return v in _HELLO_VERSIONS or v >> 8 in (0x7F, 0xFB)


class _Stop(Exception):
    """Zeek would stop analysing here (established, violation or gap)."""


@dataclass(slots=True)
class _State:
    """Per-connection parser state plus the ssl.log record being built (Zeek's ``c$ssl``)."""

    conv: Conversation
    info: dict[str, object] | None = None
    confirmed: bool = False
    record_version: int | None = None  # None = not yet synchronised; 2 = SSLv2 for the session
    encrypted: dict[bool, bool] = field(default_factory=lambda: {True: False, False: False})
    chosen_version: int | None = None
    flipped: bool = False
    established: bool = False
    hs_buf: dict[bool, bytearray] = field(
        default_factory=lambda: {True: bytearray(), False: bytearray()}
    )
    session_id: str | None = None
    hrr_seen: bool = False
    ticket_seen: bool = False
    cke_seen: bool = False
    psk_seen: bool = False
    certs: dict[bool, list[bytes]] = field(default_factory=lambda: {True: [], False: []})
    certs_seen: bool = False
    ts: float = 0.0

    def session(self) -> dict[str, object]:
        if self.info is None:
            self.info = {
                "ts": self.ts,
                **self.conv.id_fields(),
                "resumed": False,
                "established": False,
                "ssl_history": "",
            }
        return self.info

    def history(self, is_client: bool, ch: str) -> None:
        info = self.session()
        hist = str(info["ssl_history"])
        if len(hist) < _MAX_HISTORY:
            info["ssl_history"] = hist + (ch.upper() if is_client else ch.lower())

    def tls13(self) -> bool:
        v = self.chosen_version
        return v is not None and (v == 0x0304 or v // 0xFF == 0x7F)


def _check_direction(st: _State, desired_orig: bool, is_orig: bool) -> None:
    """Zeek's direction check: a hello from the 'wrong' side flips client/server roles."""
    if st.flipped == (desired_orig == is_orig):
        st.flipped = not st.flipped
        info = st.session()
        info["ssl_history"] = str(info["ssl_history"]) + "^"


def _client_hello(st: _State, body: bytes, is_client: bool) -> None:
    hello = tf.parse_client_hello(body)
    if not _version_ok(hello.version):
        raise _Stop
    st.confirmed = True
    info = st.session()
    for code, ext in hello.extensions:  # Zeek raises extension events before the hello event
        if code == tf.EXT_SERVER_NAME and is_client:
            names = tf.server_names(ext)
            if names:
                info["server_name"] = names[0]
        elif code == tf.EXT_SESSION_TICKET and is_client and ext:
            st.ticket_seen = True
        elif code == tf.EXT_PRE_SHARED_KEY and is_client:
            st.psk_seen = True
    if hello.session_id and hello.session_id != b"\x00" * 32:
        st.session_id = hello.session_id.hex()
        st.ticket_seen = False
    info["ja3"], info["ja4"] = tf.fingerprints(hello)


def _server_hello(st: _State, body: bytes, is_client: bool) -> None:
    hello = tf.parse_server_hello(body)
    if not _version_ok(hello.version):
        raise _Stop
    info = st.session()
    for code, ext in hello.extensions:
        if is_client:
            continue
        if code == tf.EXT_SUPPORTED_VERSIONS and len(ext) == 2:
            v = int.from_bytes(ext, "big")
            info["version_num"] = v
            info["version"] = version_name(v)
            if st.chosen_version is None:
                st.chosen_version = v
        elif code == tf.EXT_KEY_SHARE and len(ext) >= 2:
            info["curve"] = curve_name(int.from_bytes(ext[:2], "big"))
        elif code == tf.EXT_ALPN:
            protos = tf.alpn_protocols(ext)
            if protos:
                info["next_protocol"] = protos[0]
        elif code == tf.EXT_PRE_SHARED_KEY and st.psk_seen:
            info["resumed"] = True
    if st.chosen_version is None:
        st.chosen_version = hello.version
    if "version_num" not in info:
        info["version_num"] = hello.version
        info["version"] = version_name(hello.version)
    info["cipher"] = cipher_name(hello.ciphers[0])
    if hello.random == _HRR_RANDOM:
        st.hrr_seen = True
    vnum = int(info["version_num"])  # type: ignore[call-overload]
    same_session = st.session_id is not None and st.session_id == hello.session_id.hex()
    if same_session and vnum // 0xFF != 0x7F and vnum != 0x0304:
        info["resumed"] = True
    info["ja3s"] = tf.ja3s_cached(hello)


def _certificate(st: _State, body: bytes, is_client: bool) -> None:
    if len(body) < 3:
        return
    total = int.from_bytes(body[:3], "big")
    pos, end = 3, min(3 + total, len(body))
    while pos + 3 <= end:
        n = int.from_bytes(body[pos : pos + 3], "big")
        if pos + 3 + n > end:
            break
        st.certs[is_client].append(body[pos + 3 : pos + 3 + n])
        pos += 3 + n
    st.certs_seen = True


def _server_key_exchange(st: _State, body: bytes) -> None:
    if st.session().get("cipher", "").startswith("TLS_ECDH") and len(body) >= 3 and body[0] == 3:  # type: ignore[union-attr]
        st.session()["curve"] = curve_name(int.from_bytes(body[1:3], "big"))


def _handshake(st: _State, is_orig: bool, data: bytes, pos: int, end: int) -> None:
    """Feed handshake-record bytes ``data[pos:end]``; messages may span records, so what is left
    of an unfinished message waits in a per-direction buffer."""
    buf = st.hs_buf[is_orig]
    if buf:
        buf += data[pos:end]
        data, pos, end = bytes(buf), 0, len(buf)
        buf.clear()
    while end - pos >= 4:
        msg_type = data[pos]
        length = (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]
        if end - pos < 4 + length:
            break
        body = data[pos + 4 : pos + 4 + length]
        pos += 4 + length
        if msg_type == 1:
            _check_direction(st, True, is_orig)
        elif msg_type in (0, 2):
            _check_direction(st, False, is_orig)
        is_client = is_orig ^ st.flipped
        try:
            if msg_type == 1:
                _client_hello(st, body, is_client)
            elif msg_type == 2:
                _server_hello(st, body, is_client)
            elif msg_type == 11:
                _certificate(st, body, is_client)
            elif msg_type == 12:
                _server_key_exchange(st, body)
        except (ValueError, IndexError):
            raise _Stop from None
        if is_client and msg_type == 16:
            st.cke_seen = True
        ch = _HISTORY.get(msg_type, "z")
        if msg_type == 2 and st.hrr_seen:
            ch, st.hrr_seen = "j", False
        st.history(is_client, ch)
    if pos < end:
        buf += data[pos:end]


def _v2_record(st: _State, is_orig: bool, rec: bytes) -> None:
    """SSLv2 CLIENT-HELLO / SERVER-HELLO (old clients still open with a v2 hello)."""
    kind = rec[2]
    if kind == 1 and len(rec) >= 11:
        version = int.from_bytes(rec[3:5], "big")
        cl, sl = (int.from_bytes(rec[i : i + 2], "big") for i in (5, 7))
        body = rec[11:]
        ciphers = [int.from_bytes(body[i : i + 3], "big") for i in range(0, cl - 2, 3)]
        if not _version_ok(version):
            raise _Stop
        st.confirmed = True
        st.session()
        sid = body[cl : cl + sl]
        if sid and sid != b"\x00" * 32:
            st.session_id = sid.hex()
        hello = tf.Hello(version=version, ciphers=[c for c in ciphers if c <= 0xFFFF])
        st.session()["ja3"] = tf.ja3(hello)
        st.history(not st.flipped, "c")
    elif kind == 4 and len(rec) >= 13:
        version = int.from_bytes(rec[5:7], "big")
        if version != 0x0002:
            raise _Stop
        info = st.session()
        info.setdefault("version_num", version)
        info.setdefault("version", version_name(version))
        cert_len, ciph_len = int.from_bytes(rec[7:9], "big"), int.from_bytes(rec[9:11], "big")
        ciphers = rec[13 + cert_len : 13 + cert_len + ciph_len]
        if len(ciphers) >= 3:
            info["cipher"] = cipher_name(int.from_bytes(ciphers[:3], "big"))
        st.history(False, "s")
    elif kind == 2:  # CLIENT-MASTER-KEY: encryption starts, Zeek calls it established
        st.encrypted[True] = st.encrypted[False] = True
        st.established = True
        raise _Stop


def _record(
    st: _State, is_orig: bool, ctype: int, version: int, data: bytes, pos: int, end: int
) -> None:
    """One record whose fragment is ``data[pos:end]`` (sliced only where it is read)."""
    if st.record_version not in (None, 2) and version not in _RECORD_VERSIONS:
        raise _Stop  # "Invalid version late in TLS connection"
    if st.record_version is None:
        if version not in _RECORD_VERSIONS or not 20 <= ctype <= 30:
            raise _Stop
        st.record_version = version
    state = st.encrypted[is_orig]
    if (
        not state
        and ctype == _APPDATA
        and st.chosen_version is not None
        and st.chosen_version not in _PRE_TLS13
    ):
        st.encrypted[is_orig] = state = True  # TLS 1.3: first application data switches over
    if state:
        if st.encrypted[True] and st.encrypted[False] and not st.established:
            st.established = True
            raise _Stop
        return
    is_client = is_orig ^ st.flipped
    if ctype == _HANDSHAKE:
        _handshake(st, is_orig, data, pos, end)
    elif ctype == _CCS:
        st.history(is_client, "i")
        if is_client and st.ticket_seen and not st.cke_seen:
            st.session()["resumed"] = True
        if not st.tls13():
            st.encrypted[is_orig] = True
    elif ctype == _ALERT:
        n = end - pos
        limit = 2 if st.tls13() else n - n % 2
        for i in range(pos, pos + min(n - 1, limit), 2):
            st.history(is_client, "l")
            st.session()["last_alert"] = alert_name(data[i + 1])
    elif ctype == _HEARTBEAT:
        st.history(is_client, "b")
    elif ctype != _APPDATA:
        raise _Stop  # unknown record type is a violation


def _feed(st: _State, is_orig: bool, data: bytes) -> tuple[int, int]:
    """Consume every complete record in ``data``: where the unconsumed rest starts, and how many
    bytes from there the next record needs before it is worth parsing again."""
    pos, n = 0, len(data)
    while n - pos >= 5:
        h0 = data[pos]
        if h0 & 0x80 and st.record_version in (None, 2):
            length = (((h0 & 0x7F) << 8) | data[pos + 1]) + 2
            if n - pos < length:
                return pos, length
            kind = data[pos + 2]
            if not (
                (kind == 1 and is_orig) or (kind == 4 and data[pos + 4] < 2 and not is_orig)
            ) and (st.record_version != 2):
                raise _Stop
            if kind == 4:
                st.record_version = 2
            rec = data[pos : pos + length]
            pos += length
            _v2_record(st, is_orig, rec)
            continue
        length = 5 + ((data[pos + 3] << 8) | data[pos + 4])
        if n - pos < length:
            if length > 5 + (1 << 15) and st.record_version is None:
                raise _Stop
            return pos, length
        start = pos
        pos += length
        _record(st, is_orig, h0, (data[start + 1] << 8) | data[start + 2], data, start + 5, pos)
    return pos, 5


def _finish(st: _State) -> dict[str, object] | None:
    info = st.info
    if info is None:
        return None
    info.pop("version_num", None)
    info["established"] = st.established
    if st.certs_seen:
        server, client = st.certs[False], st.certs[True]
        info["cert_chain_fps"] = [hashlib.sha256(c).hexdigest() for c in server]
        info["client_cert_chain_fps"] = [hashlib.sha256(c).hexdigest() for c in client]
        if server:
            names = cert_names(server[0])
            info["subject"], info["issuer"] = names.subject, names.issuer
            if info.get("server_name") is not None and names.subject is not None:
                info["sni_matches_cert"] = hostname_matches(names, str(info["server_name"]))
    return {name: info.get(name) for name in _NAMES}


class SSLAnalyzer:
    """Zeek-compatible ssl.log producer (TLS over TCP; DTLS is not handled)."""

    service: ClassVar[str] = "ssl"
    table: ClassVar[str] = "ssl"
    schema: ClassVar[pa.Schema] = SCHEMA
    transports: ClassVar[tuple[str, ...]] = ("tcp",)
    prefixes: ClassVar[tuple[bytes, ...]] = (b"\x16\x03",)
    ports: ClassVar[tuple[tuple[str, int], ...]] = tuple(
        ("tcp", p) for p in (443, 465, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223)
    )

    @staticmethod
    def prefilter(head: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """SSLv2-style ClientHello: a 2-byte record length with the top bit set, then type 1."""
        return ((head[:, 0] & 0x80) != 0) & ((head[:, 2] == 1) | ~valid[:, 2])

    def matches(self, proto: str, orig_p: int, resp_p: int, orig: bytes, resp: bytes) -> bool:
        """A TLS ClientHello or ServerHello record, or an SSLv2 CLIENT-HELLO from the originator."""
        if proto != "tcp":
            return False
        for data in (orig, resp):  # either side: Zeek copes with flipped connections
            if (
                len(data) >= 6
                and data[0] == _HANDSHAKE
                and data[1:2] == b"\x03"
                and data[5] in (1, 2)
            ):
                return True
        return len(orig) >= 5 and bool(orig[0] & 0x80) and orig[2] == 1 and orig[3] in (0, 2, 3)

    def analyze(self, conv: Conversation) -> Analysis:
        st = _State(conv, ts=conv.ts)
        # Per direction: the bytes of an unfinished record, how many it needs before parsing is
        # worth retrying, and the record-layer version that estimate was made under (the other
        # direction may change how the header reads).
        pending = {True: bytearray(), False: bytearray()}
        need = {True: 0, False: 0}
        need_rv: dict[bool, int | None] = {True: None, False: None}
        try:
            for seg in conv.segments:
                if seg.gap:
                    break  # Zeek's SSL analyser stops for good after a content gap
                st.ts = seg.ts
                o = seg.is_orig
                buf = pending[o]
                if buf:
                    buf += seg.data
                    if len(buf) < need[o] and need_rv[o] == st.record_version:
                        continue
                    data = bytes(buf)
                    buf.clear()
                else:
                    data = seg.data
                used, need[o] = _feed(st, o, data)
                if used < len(data):
                    buf += memoryview(data)[used:]
                    need_rv[o] = st.record_version
        except _Stop:
            pass
        except Exception:  # malformed input must never escape the analyser
            pass
        record = _finish(st)
        return Analysis(st.confirmed, [record] if record else [])
