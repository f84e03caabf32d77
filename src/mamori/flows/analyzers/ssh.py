"""SSH analyser: Zeek's ssh.log (banners, negotiated algorithms, host key, authentication guess).

SSH encrypts everything after NEWKEYS, so whether a login succeeded can only be *inferred*. Zeek's
SSH2 heuristic, reproduced here, looks at the sizes of the server's encrypted TCP segments once the
client has sent encrypted data: the first is SERVICE_ACCEPT and fixes a reference size; a segment
16 bytes smaller is USERAUTH_SUCCESS; a larger one (skipping one pre-auth banner) is a
USERAUTH_FAILURE, and further segments of that same size are further failed attempts. Segment sizes
are the unit, which is why this analyser keeps the tracker's per-packet segment boundaries.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

import pyarrow as pa

from mamori.flows.analyzers.base import Analysis, register
from mamori.flows.conversation import Conversation, segment_rows
from mamori.schema.ssh import SCHEMA

_KEXINIT, _NEWKEYS = 20, 21
# The message types whose payload _ssh2_packet reads (KEXINIT, NEWKEYS, the server's KEX replies);
# any other only opens the session, so its payload is never copied out of the buffer.
_READ = frozenset((_KEXINIT, _NEWKEYS, 31, 33))
_COMPRESSION_HIDES_AUTH = {"zlib", "zlib@openssh.com"}
_MAX_PACKET = 1 << 20
_LENGTH = struct.Struct(">I")  # a binary packet's length field
_NAMES = tuple(SCHEMA.names)


@lru_cache(maxsize=1 << 14)
def _is_local_slow(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local


def _v4_table(name: str) -> tuple[tuple[int, int], ...] | None:
    """(network, mask) pairs of one of ``ipaddress``'s own IPv4 tables, None when it has none."""
    nets = getattr(getattr(ipaddress, "_IPv4Constants", None), name, None)
    if nets is None:
        return None
    if isinstance(nets, ipaddress.IPv4Network):
        nets = [nets]
    return tuple((int(n.network_address), int(n.netmask)) for n in nets)


# The running Python's definition of private, loopback and link-local IPv4 space, as integer
# ranges: ``IPv4Address.is_private`` walks network objects and costs ~20 us an address.
_V4_PRIVATE = _v4_table("_private_networks")
_V4_EXCEPTIONS = _v4_table("_private_networks_exceptions") or ()
_V4_OTHER = (_v4_table("_loopback_network") or ()) + (_v4_table("_linklocal_network") or ())


@lru_cache(maxsize=1 << 14)
def _is_local(addr: str) -> bool:
    """Zeek treats private address space as local when no local networks are configured.

    Remembered per address: the same hosts open connection after connection.
    """
    parts = addr.split(".")
    if _V4_PRIVATE is None or len(parts) != 4:
        return _is_local_slow(addr)
    v = 0
    for part in parts:  # plain dotted quads only; anything unusual takes ipaddress's own path
        if not (0 < len(part) <= 3 and part.isdigit() and part.isascii()) or (
            part[0] == "0" and len(part) > 1
        ):
            return _is_local_slow(addr)
        octet = int(part)
        if octet > 255:
            return _is_local_slow(addr)
        v = (v << 8) | octet
    for net, mask in _V4_OTHER:
        if v & mask == net:
            return True
    for net, mask in _V4_PRIVATE:
        if v & mask == net:
            return not any(v & m == n for n, m in _V4_EXCEPTIONS)
    return False


def _ssh_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 4 > len(buf):
        raise ValueError("short")
    n = int.from_bytes(buf[pos : pos + 4], "big")
    if pos + 4 + n > len(buf):
        raise ValueError("short")
    return buf[pos + 4 : pos + 4 + n], pos + 4 + n


# KEXINIT name-lists, and what is derived from them, are remembered by the message's bytes after
# its random cookie: the lists are the software's fixed configuration (that is what HASSH relies on).
@lru_cache(maxsize=1024)
def _kexinit(lists_part: bytes) -> tuple[tuple[str, ...], ...]:
    """The ten name-lists of a KEXINIT payload (after the type byte and the 16-byte cookie)."""
    pos, lists = 0, []
    for _ in range(10):
        raw, pos = _ssh_string(lists_part, pos)
        lists.append(tuple(n for n in raw.decode("latin-1").split(",") if n))
    return tuple(lists)


@lru_cache(maxsize=1024)
def _hassh(lists_part: bytes, is_orig: bool) -> str:
    """HASSH (client) or HASSHServer of one KEXINIT."""
    lists = _kexinit(lists_part)
    c2s = 2 if is_orig else 3  # client: *_client_to_server lists; server: *_server_to_client
    text = ";".join(",".join(lists[i]) for i in (0, c2s, c2s + 2, c2s + 4))
    return hashlib.md5(text.encode()).hexdigest()


@lru_cache(maxsize=1024)
def _negotiated(client_part: bytes, server_part: bytes) -> tuple[tuple[str, str], ...]:
    """The ssh.log algorithm fields both KEXINITs settle on, as (field, value) pairs."""
    cl, sv = _kexinit(client_part), _kexinit(server_part)
    return (
        ("cipher_alg", _both_ways(_first_common(cl[2], sv[2]), _first_common(cl[3], sv[3]))),
        ("mac_alg", _both_ways(_first_common(cl[4], sv[4]), _first_common(cl[5], sv[5]))),
        ("compression_alg", _both_ways(_first_common(cl[6], sv[6]), _first_common(cl[7], sv[7]))),
        ("kex_alg", _first_common(cl[0], sv[0])),
        ("host_key_alg", _first_common(cl[1], sv[1])),
    )


def _first_common(client: tuple[str, ...], server: tuple[str, ...]) -> str:
    server_set = set(server)
    return next((c for c in client if c in server_set), "Algorithm negotiation failed")


def _both_ways(c2s: str, s2c: str) -> str:
    return c2s if c2s == s2c else f"To server: {c2s}, to client: {s2c}"


def _md5_colons(data: bytes) -> str:
    return hashlib.md5(data).digest().hex(":")


@dataclass(slots=True)
class _State:
    conv: Conversation
    info: dict[str, object] | None = None
    ts: float = 0.0
    phase: dict[bool, str] = field(default_factory=lambda: {True: "banner", False: "banner"})
    buf: dict[bool, bytearray] = field(
        default_factory=lambda: {True: bytearray(), False: bytearray()}
    )
    kex: dict[bool, bytes] = field(default_factory=dict)  # each side's KEXINIT after its cookie
    newkeys: bool = False
    ssh1: bool = False
    # the authentication heuristic of Zeek's SSH.cc
    decided: bool = False
    saw_client_encrypted: bool = False
    service_accept_size: int = 0
    failure_size: int = 0
    skipped_banner: bool = False

    def session(self) -> dict[str, object]:
        if self.info is None:
            c = self.conv
            self.info = {"ts": self.ts, **c.id_fields(), "auth_attempts": 0}
            orig_local = _is_local(c.orig_h)
            if orig_local != _is_local(c.resp_h):
                self.info["direction"] = "OUTBOUND" if orig_local else "INBOUND"
        return self.info


def _set_version(info: dict[str, object]) -> None:
    """Zeek's set_version: compare the protocol digits of both banners (1.99 counts as 2)."""
    info.pop("version", None)
    cl, sv = str(info.get("client") or ""), str(info.get("server") or "")
    if not cl or not sv or len(cl) <= 4 or len(sv) <= 4:
        return
    c99, s99 = cl[6:8] == "99", sv[6:8] == "99"
    pair = (cl[4], sv[4])
    if pair == ("1", "2"):
        if c99:
            info["version"] = 2
    elif pair == ("2", "1"):
        if s99:
            info["version"] = 2
    elif pair == ("1", "1"):
        info["version"] = 2 if (s99 and c99) else 1
    elif pair == ("2", "2"):
        info["version"] = 2


def _auth(st: _State, authenticated: bool) -> None:
    info = st.session()
    if info.get("auth_success") is True or info.get("compression_alg") in _COMPRESSION_HIDES_AUTH:
        return
    info["auth_success"] = authenticated
    info["auth_attempts"] = int(info["auth_attempts"]) + 1  # type: ignore[call-overload]


def _encrypted(st: _State, length: int, is_orig: bool) -> None:
    """Zeek's ProcessEncrypted over one encrypted TCP segment of ``length`` bytes."""
    if st.decided or st.ssh1:
        return
    if is_orig:
        st.saw_client_encrypted = True
        return
    if not st.saw_client_encrypted:
        return
    if not st.service_accept_size:
        st.service_accept_size = length
        return
    if not st.failure_size and length + 16 == st.service_accept_size:
        st.decided = True
        _auth(st, True)
        return
    if not st.failure_size:
        if not st.skipped_banner and length - st.service_accept_size > 256:
            st.skipped_banner = True
            return
        st.failure_size = length
        return
    if length == st.failure_size:
        _auth(st, False)
        return
    if length - st.service_accept_size == -16:
        st.decided = True
        _auth(st, True)


def _banner(st: _State, is_orig: bool) -> None:
    buf = st.buf[is_orig]
    while st.phase[is_orig] == "banner":
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) > 4096:
                raise ValueError("no banner")
            return
        line = bytes(buf[:nl]).rstrip(b"\r")
        del buf[: nl + 1]
        if not line.startswith(b"SSH-"):
            if is_orig:
                raise ValueError("client must open with its banner")
            continue  # servers may print text before their banner
        info = st.session()
        info["client" if is_orig else "server"] = line.decode("utf-8", "replace")
        if is_orig:
            st.ssh1 = line.startswith(b"SSH-1.") and not line.startswith(b"SSH-1.99")
        _set_version(info)
        st.phase[is_orig] = "kex"


def _ssh2_packet(st: _State, is_orig: bool, payload: bytes) -> None:
    info = st.session()
    msg = payload[0]
    if msg == _KEXINIT:
        lists_part = payload[17:]
        _kexinit(lists_part)  # a malformed KEXINIT ends the analysis here, as before
        if is_orig not in st.kex:
            st.kex[is_orig] = lists_part
            info["hassh" if is_orig else "hasshServer"] = _hassh(lists_part, is_orig)
        if True in st.kex and False in st.kex:
            info.update(_negotiated(st.kex[True], st.kex[False]))
    elif msg == _NEWKEYS:
        st.newkeys = True
        st.phase[is_orig] = "encrypted"
    elif not is_orig and msg in (31, 33):
        kex = str(info.get("kex_alg") or "")
        group_exchange = "group-exchange" in kex
        if (msg == 31 and not group_exchange) or (msg == 33 and group_exchange):
            host_key, _ = _ssh_string(payload, 1)
            info["host_key"] = _md5_colons(host_key)


def _ssh1_packet(st: _State, is_orig: bool, msg: int, body: bytes) -> None:
    if msg == 2 and not is_orig:  # SSH_SMSG_PUBLIC_KEY: cookie, server key, host key
        pos = 8 + 4

        def mpint(p: int) -> tuple[bytes, int]:
            bits = int.from_bytes(body[p : p + 2], "big")
            n = (bits + 7) // 8
            return body[p + 2 : p + 2 + n], p + 2 + n

        _, pos = mpint(pos)
        _, pos = mpint(pos)
        pos += 4
        exp, pos = mpint(pos)
        mod, pos = mpint(pos)
        st.session()["host_key"] = _md5_colons(mod + exp)
    st.phase[is_orig] = "encrypted"


def _packets(st: _State, is_orig: bool) -> int:
    """Parse cleartext binary packets; returns how many buffered bytes are already encrypted."""
    buf = st.buf[is_orig]
    while st.phase[is_orig] == "kex" and len(buf) >= 5:
        plen = _LENGTH.unpack_from(buf)[0]  # read in place, no slice
        if plen > _MAX_PACKET:
            raise ValueError("packet too long")
        if st.ssh1:
            total = 4 + plen + (8 - plen % 8)
            if len(buf) < total:
                return 0
            body = bytes(buf[4 + (8 - plen % 8) : total - 4])
            del buf[:total]
            if body:
                _ssh1_packet(st, is_orig, body[0], body[1:])
            continue
        if len(buf) < 4 + plen:
            return 0
        pad = buf[4]
        if plen <= pad + 1:  # no payload
            del buf[: 4 + plen]
        elif buf[5] in _READ:
            # One copy out of the buffer (the view is gone before the buffer shrinks below).
            payload = bytes(memoryview(buf)[5 : 4 + plen - pad])
            del buf[: 4 + plen]
            _ssh2_packet(st, is_orig, payload)
        else:
            del buf[: 4 + plen]
            st.session()  # all _ssh2_packet does with such a message
    if st.phase[is_orig] == "encrypted":
        n = len(buf)
        buf.clear()
        return n
    return 0


def _finish(st: _State) -> dict[str, object] | None:
    if st.info is None:
        return None
    # the schema's order, None where unset
    return dict(zip(_NAMES, map(st.info.get, _NAMES), strict=True))


class SSHAnalyzer:
    """Zeek-compatible ssh.log producer."""

    service: ClassVar[str] = "ssh"
    table: ClassVar[str] = "ssh"
    schema: ClassVar[pa.Schema] = SCHEMA
    transports: ClassVar[tuple[str, ...]] = ("tcp",)
    views: ClassVar[bool] = True  # segment payload may be a memoryview (see Segment.data)
    prefixes: ClassVar[tuple[bytes, ...]] = (b"SSH-",)
    ports: ClassVar[tuple[tuple[str, int], ...]] = (("tcp", 22),)

    @staticmethod
    def opens(orig: int, resp: int) -> bool:
        """The router's gate before ``matches``: can it hold for prefixes whose first bytes are
        these (-1: that direction sent nothing yet)?
        The client's banner, or the server's text alone."""
        return orig == 0x53 or (orig < 0 and resp >= 0)  # "SSH-"

    def matches(self, proto: str, orig_p: int, resp_p: int, orig: bytes, resp: bytes) -> bool:
        """An ``SSH-`` banner: the client's must come first; the server may precede it with text."""
        return proto == "tcp" and (
            orig.startswith(b"SSH-") or (b"SSH-" in resp[:1024] and not orig)
        )

    def analyze(self, conv: Conversation) -> Analysis:
        st = _State(conv, ts=conv.ts)
        try:
            for ts, o, data, gap, _flags in segment_rows(conv.segments):
                if gap:
                    break  # Zeek's SSH analyser ignores everything after a content gap
                st.ts = ts
                if st.phase[o] == "encrypted":
                    if st.decided or st.ssh1:
                        if st.phase[not o] == "encrypted":
                            break  # both sides encrypted and the guess made: nothing more to learn
                        continue
                    if o:  # _encrypted's whole step for the client's side, without the call
                        st.saw_client_encrypted = True
                        continue
                    _encrypted(st, len(data), o)
                    continue
                st.buf[o].extend(data)
                if st.phase[o] == "banner":
                    _banner(st, o)
                enc = _packets(st, o)
                if enc:
                    _encrypted(st, enc, o)
        except Exception:  # malformed input ends the analysis, never the caller
            pass
        record = _finish(st)
        confirmed = st.newkeys or (st.info is not None and bool(st.info.get("server")))
        return Analysis(confirmed, [record] if record else [])


register(SSHAnalyzer())
