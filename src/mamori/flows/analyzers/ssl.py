"""TLS/SSL analyser: Zeek's ssl.log from a reassembled TCP conversation.

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
import struct
from typing import ClassVar

import numpy as np
import pyarrow as pa

from mamori.flows.analyzers import tls_fingerprints as tf
from mamori.flows.analyzers.base import Analysis, register
from mamori.flows.analyzers.tls_names import alert_name, cipher_name, curve_name, version_name
from mamori.flows.analyzers.x509_names import cert_names, hostname_matches
from mamori.flows.conversation import Conversation, segment_rows
from mamori.schema.ssl import SCHEMA

_CCS, _ALERT, _HANDSHAKE, _APPDATA, _HEARTBEAT = 20, 21, 22, 23, 24
_RECORD_VERSIONS = (0x0300, 0x0301, 0x0302, 0x0303)
_RECORD_HEADER = struct.Struct(">BHH").unpack_from  # content type, version, length
_MESSAGE_HEADER = struct.Struct(">I").unpack_from
# RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest; it is
# SHA-256("HelloRetryRequest"), as Zeek's ssl/main.zeek compares it.
_HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
_HISTORY = {
    0: "h", 1: "c", 2: "s", 3: "v", 4: "t", 5: "e", 6: "j", 8: "o", 11: "x", 12: "k", 13: "r",
    14: "n", 15: "y", 16: "g", 20: "f", 21: "w", 22: "u", 23: "a", 24: "p", 254: "m",
}  # fmt: skip
_HISTORY_CLIENT = {k: v.upper() for k, v in _HISTORY.items()}
_HISTORY_SERVER = _HISTORY
_MAX_HISTORY = 100
# The history letter of every handshake message type, by type (unknown types are "Z"/"z").
_CLIENT_CHARS = tuple(_HISTORY_CLIENT.get(t, "Z") for t in range(256))
_SERVER_CHARS = tuple(_HISTORY_SERVER.get(t, "z") for t in range(256))
_ZERO_SID = b"\x00" * 32
_NAMES = tuple(SCHEMA.names)
_EMPTY_RECORD: dict[str, object] = dict.fromkeys(_NAMES)


_HELLO_VERSIONS = frozenset((0x0002, *_RECORD_VERSIONS, 0x0304, 0xFEFF, 0xFEFD, 0xFEFC))
_PRE_TLS13 = frozenset((0x0002, *_RECORD_VERSIONS))


def _version_ok(v: int) -> bool:
    """Versions Zeek's handshake parser accepts (others are a protocol violation)."""
    return v in _HELLO_VERSIONS or v >> 8 in (0x7F, 0xFB)


class _Stop(Exception):
    """Zeek would stop analysing here (established, violation or gap)."""


class _State:
    """Per-connection parser state plus the ssl.log record being built (Zeek's ``c$ssl``).

    A plain slotted class (no dataclass factories): one is built per TLS connection. The history
    is kept here as a string and written into the record at the end, so that adding a letter is
    one concatenation rather than a dict read and write.
    """

    __slots__ = (
        "certs",
        "certs_seen",
        "chosen_version",
        "cke_seen",
        "confirmed",
        "conv",
        "encrypted",
        "established",
        "flipped",
        "hist",
        "hrr_seen",
        "hs_buf",
        "info",
        "psk_seen",
        "record_version",
        "session_id",
        "ticket_seen",
        "ts",
    )  # fmt: skip

    def __init__(self, conv: Conversation, ts: float) -> None:
        self.conv = conv
        self.info: dict[str, object] | None = None
        self.confirmed = False
        self.record_version: int | None = None  # None = not yet synchronised; 2 = SSLv2
        self.encrypted = {True: False, False: False}
        self.chosen_version: int | None = None
        self.flipped = False
        self.established = False
        self.hs_buf: dict[bool, bytearray] | None = None  # made when a message spans records
        self.session_id: str | None = None
        self.hrr_seen = self.ticket_seen = self.cke_seen = self.psk_seen = False
        self.certs: dict[bool, list[bytes]] | None = None  # made at the first Certificate
        self.certs_seen = False
        self.ts = ts
        self.hist = ""  # ssl_history so far (the record gets it in ``_finish``)

    def session(self) -> dict[str, object]:
        info = self.info
        if info is None:
            conv = self.conv
            info = self.info = {
                "ts": self.ts,
                "uid": conv.uid,
                "orig_h": conv.orig_h,
                "orig_p": conv.orig_p,
                "resp_h": conv.resp_h,
                "resp_p": conv.resp_p,
                "resumed": False,
                "established": False,
            }
        return info

    def history(self, is_client: bool, ch: str) -> None:
        if self.info is None:
            self.session()
        if len(self.hist) < _MAX_HISTORY:
            self.hist += ch.upper() if is_client else ch

    def tls13(self) -> bool:
        v = self.chosen_version
        return v is not None and (v == 0x0304 or v // 0xFF == 0x7F)


def _check_direction(st: _State, desired_orig: bool, is_orig: bool) -> None:
    """Zeek's direction check: a hello from the 'wrong' side flips client/server roles."""
    if st.flipped == (desired_orig == is_orig):
        st.flipped = not st.flipped
        st.session()
        st.hist += "^"


def _client_hello(st: _State, body: bytes, is_client: bool) -> None:
    version, session_id, name, ticket, psk, ja3, ja4 = tf.client_hello_fields(body)
    if not _version_ok(version):
        raise _Stop
    st.confirmed = True
    info = st.session()
    if is_client:  # Zeek raises extension events before the hello event
        if name is not None:
            info["server_name"] = name
        if ticket:
            st.ticket_seen = True
        if psk:
            st.psk_seen = True
    if session_id and session_id != _ZERO_SID:
        st.session_id = session_id.hex()
        st.ticket_seen = False
    info["ja3"], info["ja4"] = ja3, ja4


def _server_hello(st: _State, body: bytes, is_client: bool) -> None:
    version, random, session_id, cipher, versions, group, alpn, psk, ja3s = tf.server_hello_fields(
        body
    )
    if not _version_ok(version):
        raise _Stop
    info = st.session()
    if not is_client:
        if versions:
            v = versions[-1]
            info["version_num"] = v
            info["version"] = version_name(v)
            if st.chosen_version is None:
                st.chosen_version = versions[0]
        if group is not None:
            info["curve"] = curve_name(group)
        if alpn is not None:
            info["next_protocol"] = alpn
        if psk and st.psk_seen:
            info["resumed"] = True
    if st.chosen_version is None:
        st.chosen_version = version
    if "version_num" not in info:
        info["version_num"] = version
        info["version"] = version_name(version)
    info["cipher"] = cipher_name(cipher)
    if random == _HRR_RANDOM:
        st.hrr_seen = True
    vnum = int(info["version_num"])  # type: ignore[call-overload]
    same_session = st.session_id is not None and st.session_id == session_id.hex()
    if same_session and vnum // 0xFF != 0x7F and vnum != 0x0304:
        info["resumed"] = True
    info["ja3s"] = ja3s


def _certificate(st: _State, body: bytes, is_client: bool) -> None:
    if len(body) < 3:
        return
    certs = _CERTS_CACHE.get(body)
    if certs is None:
        if len(_CERTS_CACHE) >= _CHAIN_CACHE_MAX:
            _CERTS_CACHE.clear()
        certs = _CERTS_CACHE[body] = _split_certificates(body)
    chains = st.certs
    if chains is None:
        chains = st.certs = {True: [], False: []}
    chains[is_client].extend(certs)
    st.certs_seen = True


# Certificate messages by their bytes: a server sends the same chain on every connection, and the
# cached certificates keep their computed hashes for the chain cache in ``_finish``.
# Chains are kilobytes each: at most this many are kept (a few MB), which still holds every
# server a busy sensor talks to repeatedly.
_CERTS_CACHE: dict[bytes, tuple[bytes, ...]] = {}
_CHAIN_CACHE_MAX = 512


def _split_certificates(body: bytes) -> tuple[bytes, ...]:
    """The DER certificates of a Certificate message body (a truncated entry ends the list)."""
    out = []
    total = int.from_bytes(body[:3], "big")
    pos, end = 3, min(3 + total, len(body))
    while pos + 3 <= end:
        n = int.from_bytes(body[pos : pos + 3], "big")
        if pos + 3 + n > end:
            break
        out.append(body[pos + 3 : pos + 3 + n])
        pos += 3 + n
    return tuple(out)


def _server_key_exchange(st: _State, body: bytes) -> None:
    info = st.session()
    if len(body) >= 3 and body[0] == 3 and info.get("cipher", "").startswith("TLS_ECDH"):  # type: ignore[union-attr]
        info["curve"] = curve_name((body[1] << 8) | body[2])


def _handshake(st: _State, is_orig: bool, data: bytes, pos: int, end: int) -> None:
    """Feed handshake-record bytes ``data[pos:end]``; messages may span records, so what is left
    of an unfinished message waits in a per-direction buffer."""
    bufs = st.hs_buf
    if bufs is not None and bufs[is_orig]:
        buf = bufs[is_orig]
        buf += data[pos:end]
        data, pos, end = bytes(buf), 0, len(buf)
        buf.clear()
    elif type(data) is not bytes:  # a view of the capture (``views``): messages are read as bytes
        data, pos, end = bytes(data[pos:end]), 0, end - pos
    while end - pos >= 4:
        (word,) = _MESSAGE_HEADER(data, pos)  # type (1 byte) and length (3 bytes)
        msg_type = word >> 24
        start = pos + 4
        pos = start + (word & 0xFFFFFF)
        if pos > end:
            pos = start - 4
            break
        if msg_type <= 2:
            if st.flipped == ((msg_type == 1) == is_orig):  # Zeek's direction check
                _check_direction(st, msg_type == 1, is_orig)
            is_client = is_orig ^ st.flipped
            try:
                if msg_type == 1:
                    _client_hello(st, data[start:pos], is_client)
                elif msg_type == 2:
                    _server_hello(st, data[start:pos], is_client)
            except (ValueError, IndexError):
                raise _Stop from None
            if msg_type == 2 and st.hrr_seen:
                ch = "J" if is_client else "j"
                st.hrr_seen = False
            else:
                ch = (_CLIENT_CHARS if is_client else _SERVER_CHARS)[msg_type]
        else:
            is_client = is_orig ^ st.flipped
            if msg_type == 11:
                _certificate(st, data[start:pos], is_client)
            elif msg_type == 12:
                try:
                    _server_key_exchange(st, data[start:pos])
                except (ValueError, IndexError):
                    raise _Stop from None
            elif msg_type == 16 and is_client:
                st.cke_seen = True
            ch = (_CLIENT_CHARS if is_client else _SERVER_CHARS)[msg_type]
        if st.info is None:
            st.session()  # the history belongs to the record: a message starts it
        if len(st.hist) < _MAX_HISTORY:
            st.hist += ch
    if pos < end:
        if bufs is None:
            bufs = st.hs_buf = {True: bytearray(), False: bytearray()}
        bufs[is_orig] += data[pos:end]


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


def _other_record(st: _State, is_orig: bool, ctype: int, data: bytes, pos: int, end: int) -> None:
    """A cleartext record that is not a handshake record; its fragment is ``data[pos:end]``."""
    is_client = is_orig ^ st.flipped
    if ctype == _CCS:
        info = st.session()
        if len(st.hist) < _MAX_HISTORY:
            st.hist += "I" if is_client else "i"
        if is_client and st.ticket_seen and not st.cke_seen:
            info["resumed"] = True
        v = st.chosen_version
        if v is None or (v != 0x0304 and v // 0xFF != 0x7F):  # not TLS 1.3
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


# SHA-256 of certificates by their bytes: servers present the same chain on every connection, and
# hashing a 1-2 KB certificate costs several times the dict lookup that finds it again.
_FP_CACHE: dict[bytes, str] = {}
_FP_CACHE_MAX = 4096


def _cert_fp(der: bytes) -> str:
    fp = _FP_CACHE.get(der)
    if fp is None:
        if len(_FP_CACHE) >= _FP_CACHE_MAX:
            _FP_CACHE.clear()
        fp = _FP_CACHE[der] = hashlib.sha256(der).hexdigest()
    return fp


# What a certificate chain adds to the record, by the chains' bytes and the SNI it is checked
# against: the same servers present the same chain to the same names on most connections.
_CHAIN_CACHE: dict[
    tuple[object, ...], tuple[tuple[str, ...], tuple[str, ...], dict[str, object]]
] = {}


def _chain_fields(
    server: tuple[bytes, ...], client: tuple[bytes, ...], server_name: object
) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, object]]:
    """Chain fingerprints, client chain fingerprints and the subject/issuer/SNI-match fields."""
    # cert_names first: its cache hashes the leaf's bytes once, and the fingerprint cache then
    # finds the leaf by that same hash.
    names = cert_names(server[0]) if server else None
    fps = tuple([_cert_fp(c) for c in server])
    client_fps = tuple([_cert_fp(c) for c in client])
    fields: dict[str, object] = {}
    if names is not None:
        fields["subject"], fields["issuer"] = names.subject, names.issuer
        if server_name is not None and names.subject is not None:
            fields["sni_matches_cert"] = hostname_matches(names, str(server_name))
    return fps, client_fps, fields


def _finish(st: _State) -> dict[str, object] | None:
    info = st.info
    if info is None:
        return None
    info.pop("version_num", None)
    info["established"] = st.established
    info["ssl_history"] = st.hist
    if st.certs_seen:
        chains = st.certs or {True: [], False: []}
        key = (tuple(chains[False]), tuple(chains[True]), info.get("server_name"))
        got = _CHAIN_CACHE.get(key)
        if got is None:
            if len(_CHAIN_CACHE) >= _CHAIN_CACHE_MAX:
                _CHAIN_CACHE.clear()
            got = _CHAIN_CACHE[key] = _chain_fields(*key)
        fps, client_fps, names = got
        info["cert_chain_fps"] = list(fps)  # fresh lists: records never share a mutable value
        info["client_cert_chain_fps"] = list(client_fps)
        info.update(names)
    out = _EMPTY_RECORD.copy()  # a copy is several times cheaper than dict.fromkeys
    out.update(info)  # every key the record gets is one of the schema's names
    return out


class SSLAnalyzer:
    """Zeek-compatible ssl.log producer (TLS over TCP; DTLS is not handled)."""

    service: ClassVar[str] = "ssl"
    table: ClassVar[str] = "ssl"
    schema: ClassVar[pa.Schema] = SCHEMA
    transports: ClassVar[tuple[str, ...]] = ("tcp",)
    views: ClassVar[bool] = True  # segment payload may be a memoryview (see Segment.data)
    prefixes: ClassVar[tuple[bytes, ...]] = (b"\x16\x03",)
    ports: ClassVar[tuple[tuple[str, int], ...]] = tuple(
        ("tcp", p) for p in (443, 465, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223)
    )

    @staticmethod
    def prefilter(head: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """SSLv2-style ClientHello: a 2-byte record length with the top bit set, then type 1."""
        return ((head[:, 0] & 0x80) != 0) & ((head[:, 2] == 1) | ~valid[:, 2])

    @staticmethod
    def opens(orig: int, resp: int) -> bool:
        """The router's gate before ``matches``: can it hold for prefixes whose first bytes are
        these (-1: that direction sent nothing yet)?
        A handshake record either way, or an SSLv2 hello."""
        return orig == _HANDSHAKE or resp == _HANDSHAKE or (orig >= 0 and orig & 0x80 != 0)

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
        enc = st.encrypted
        try:
            for ts, o, seg_data, gap, _flags in segment_rows(conv.segments):
                if gap:
                    break  # Zeek's SSL analyser stops for good after a content gap
                st.ts = ts
                buf = pending[o]
                if buf:
                    buf += seg_data
                    if len(buf) < need[o] and need_rv[o] == st.record_version:
                        continue
                    data = bytes(buf)
                    buf.clear()
                else:
                    data = seg_data
                # The record layer (version checks, the switch to encrypted, the end at
                # ``established``), inline: every complete record of this delivery, then what is
                # left waits for ``nxt`` bytes (what the next record needs) before it is retried.
                pos, n, nxt = 0, len(data), 5
                while n - pos >= 5:
                    h0, version, length = _RECORD_HEADER(data, pos)
                    rv = st.record_version
                    if h0 & 0x80 and (rv is None or rv == 2):
                        length = (((h0 & 0x7F) << 8) | data[pos + 1]) + 2
                        if n - pos < length:
                            nxt = length
                            break
                        kind = data[pos + 2]
                        if not (
                            (kind == 1 and o) or (kind == 4 and data[pos + 4] < 2 and not o)
                        ) and (rv != 2):
                            raise _Stop
                        if kind == 4:
                            st.record_version = 2
                        rec = bytes(data[pos : pos + length])
                        pos += length
                        _v2_record(st, o, rec)
                        continue
                    length += 5
                    if n - pos < length:
                        if length > 5 + (1 << 15) and rv is None:
                            raise _Stop
                        nxt = length
                        break
                    start = pos
                    pos += length
                    if rv is None:
                        if version not in _RECORD_VERSIONS or not 20 <= h0 <= 30:
                            raise _Stop
                        st.record_version = version
                    elif rv != 2 and version not in _RECORD_VERSIONS:
                        raise _Stop  # "Invalid version late in TLS connection"
                    state = enc[o]
                    if (
                        not state
                        and h0 == _APPDATA
                        and st.chosen_version is not None
                        and st.chosen_version not in _PRE_TLS13
                    ):
                        enc[o] = state = True  # TLS 1.3: first application data switches over
                    if state:
                        if enc[True] and enc[False] and not st.established:
                            st.established = True
                            raise _Stop
                        continue
                    if h0 == _HANDSHAKE:
                        _handshake(st, o, data, start + 5, pos)
                    else:
                        _other_record(st, o, h0, data, start + 5, pos)
                need[o] = nxt
                if pos < n:
                    buf += memoryview(data)[pos:]
                    need_rv[o] = st.record_version
        except _Stop:
            pass
        except Exception:  # malformed input must never escape the analyser
            pass
        record = _finish(st)
        return Analysis(st.confirmed, [record] if record else [])


register(SSLAnalyzer())
