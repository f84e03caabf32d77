"""Just enough DER to render an X.509 certificate's subject and issuer the way Zeek logs them.

Zeek prints names with OpenSSL's RFC 2253 style (``CN=…,O=…,C=US``: last RDN first, ``+`` inside a
multi-valued RDN, short attribute names, RFC 2253 escaping, bytes above 0x7F as ``\\XX``), and checks
SNI against the first certificate's DNS names. A hand-written reader keeps the platform free of a
crypto dependency for what is only a walk over a few TLV layers, and it never raises: a certificate
that cannot be read simply yields no names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

# OID (dotted) -> the short name OpenSSL prints.
_SHORT_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "street",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "title",
    "2.5.4.13": "description",
    "2.5.4.15": "businessCategory",
    "2.5.4.17": "postalCode",
    "2.5.4.41": "name",
    "2.5.4.42": "GN",
    "2.5.4.43": "initials",
    "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym",
    "2.5.4.97": "organizationIdentifier",
    "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
}
_STRING_TAGS = {
    0x0C,
    0x12,
    0x13,
    0x14,
    0x16,
    0x1A,
    0x1C,
    0x1E,
}  # UTF8, Numeric, Printable, T61, IA5, Visible, Universal, BMP


def _tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the TLV at ``pos``; ValueError when malformed."""
    if pos + 2 > len(buf):
        raise ValueError("short TLV")
    tag = buf[pos]
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(buf):
            raise ValueError("bad length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > len(buf):
        raise ValueError("TLV past end")
    return tag, pos, pos + length


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, value start, value end, TLV start) of each element inside a constructed value."""
    out = []
    pos = start
    while pos < end:
        tag, vs, ve = _tlv(buf, pos)
        out.append((tag, vs, ve, pos))
        pos = ve
    return out


def _oid(raw: bytes) -> str:
    if not raw:
        return ""
    parts = [str(min(raw[0] // 40, 2)), str(raw[0] - 40 * min(raw[0] // 40, 2))]
    value = 0
    for b in raw[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(str(value))
            value = 0
    return ".".join(parts)


def _decode(tag: int, raw: bytes) -> str:
    if tag == 0x1E:
        return raw.decode("utf-16-be", "replace")
    if tag == 0x1C:
        return raw.decode("utf-32-be", "replace")
    if tag == 0x0C:
        return raw.decode("utf-8", "replace")
    return raw.decode("latin-1")


def _escape(value: str) -> str:
    """RFC 2253 escaping with OpenSSL's ESC_CTRL and ESC_MSB on the UTF-8 form."""
    data = value.encode("utf-8")
    out: list[str] = []
    for i, b in enumerate(data):
        ch = chr(b)
        if b > 0x7E or b < 0x20:
            out.append(f"\\{b:02X}")
        elif ch in ',+"\\<>;' or (i == 0 and ch in "# ") or (i == len(data) - 1 and ch == " "):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _render_name(buf: bytes, start: int, end: int) -> str:
    rdns: list[str] = []
    for _, s_vs, s_ve, _ in _children(buf, start, end):  # each RDN is a SET
        atoms = []
        for _, a_vs, a_ve, _ in _children(buf, s_vs, s_ve):  # AttributeTypeAndValue SEQUENCE
            parts = _children(buf, a_vs, a_ve)
            if len(parts) < 2:
                continue
            oid = _oid(buf[parts[0][1] : parts[0][2]])
            vtag, vvs, vve, vpos = parts[1]
            short = _SHORT_NAMES.get(oid)
            if short is not None and vtag in _STRING_TAGS:
                atoms.append(f"{short}={_escape(_decode(vtag, buf[vvs:vve]))}")
            else:  # unknown attribute or type: OpenSSL dumps the DER as hex
                atoms.append(f"{short or oid}=#{buf[vpos:vve].hex().upper()}")
        rdns.append("+".join(atoms))
    return ",".join(reversed(rdns))


@dataclass(slots=True)
class CertNames:
    """What the ssl log shows of a certificate."""

    subject: str | None = None
    issuer: str | None = None
    common_names: list[str] = field(default_factory=list)
    dns_names: list[str] | None = None  # subjectAltName dNSName entries; None without a SAN


def _cns(buf: bytes, start: int, end: int) -> list[str]:
    out = []
    for _, s_vs, s_ve, _ in _children(buf, start, end):
        for _, a_vs, a_ve, _ in _children(buf, s_vs, s_ve):
            parts = _children(buf, a_vs, a_ve)
            if len(parts) >= 2 and _oid(buf[parts[0][1] : parts[0][2]]) == "2.5.4.3":
                out.append(_decode(parts[1][0], buf[parts[1][1] : parts[1][2]]))
    return out


def _san(buf: bytes, start: int, end: int) -> list[str]:
    """dNSName entries of the subjectAltName extension inside the [3] extensions block."""
    names: list[str] = []
    _, seq_vs, seq_ve = _tlv(buf, start)
    for _, e_vs, e_ve, _ in _children(buf, seq_vs, seq_ve):
        parts = _children(buf, e_vs, e_ve)
        if not parts or _oid(buf[parts[0][1] : parts[0][2]]) != "2.5.29.17":
            continue
        octets = parts[-1]
        _, gn_vs, gn_ve = _tlv(buf, octets[1])
        for tag, vs, ve, _ in _children(buf, gn_vs, gn_ve):
            if tag == 0x82:
                names.append(buf[vs:ve].decode("latin-1"))
    return names


@lru_cache(maxsize=2048)
def cert_names(der: bytes) -> CertNames:
    """Subject, issuer and host names of a DER certificate; empty when it cannot be read.

    Remembered by the certificate's bytes (as Zeek caches X.509 results by fingerprint): a
    server presents the same certificate on every connection, and rendering its names cost more
    than the rest of the handshake's parsing. Callers must not modify the result.
    """
    names = CertNames()
    try:
        _, c_vs, _ = _tlv(der, 0)
        _, t_vs, t_ve = _tlv(der, c_vs)  # tbsCertificate
        fields = _children(der, t_vs, t_ve)
        if fields and fields[0][0] == 0xA0:  # explicit version
            fields = fields[1:]
        # serial, signature, issuer, validity, subject, spki, [1], [2], [3]
        issuer, subject = fields[2], fields[4]
        names.issuer = _render_name(der, issuer[1], issuer[2])
        names.subject = _render_name(der, subject[1], subject[2])
        names.common_names = _cns(der, subject[1], subject[2])
        for tag, vs, _ve, _ in fields[6:]:
            if tag == 0xA3:
                names.dns_names = _san(der, vs, _ve)
    except (ValueError, IndexError):
        pass
    return names


def _name_matches(host: str, pattern: str) -> bool:
    """RFC 6125 as Zeek applies it: exact (case-sensitive) match, or a wildcard confined to the
    leftmost label of a name with at least three labels."""
    if host == pattern:
        return True
    star = pattern.find("*")
    first_dot = pattern.find(".")
    if star < 0 or first_dot < 0 or pattern.find(".", first_dot + 1) < 0 or star > first_dot:
        return False
    if "." not in host or host.split(".", 1)[1] != pattern[first_dot + 1 :]:
        return False
    label, wild = host.split(".", 1)[0], pattern[:first_dot]
    prefix, suffix = wild.split("*", 1)
    return (
        len(label) >= len(prefix) + len(suffix)
        and label.startswith(prefix)
        and label.endswith(suffix)
    )


def hostname_matches(names: CertNames, host: str) -> bool:
    """Zeek's ``x509_check_cert_hostname``: SAN DNS names, else only the last CN of the subject."""
    candidates = names.dns_names if names.dns_names is not None else names.common_names[-1:]
    return any(_name_matches(host, p) for p in candidates)
