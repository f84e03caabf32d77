"""A body's file type from its first bytes, named as Zeek's file analysis names it.

Zeek logs ``resp_mime_types`` (http.log) from libmagic-style signatures run over every body. The
types a defender acts on are the binary ones with a fixed magic number: executables above all (an
``application/x-dosexec`` fetched by ``curl`` is a tool brought in), archives and documents that
carry them. Those are told here, from ``http_wire.HEAD_BYTES`` bytes, with Zeek's names and its
signatures' tests (an ELF file's type from its ``e_type`` field, as Zeek's ``file-elf*`` do).
Text types (HTML, JSON, scripts) need Zeek's full signature set and its scoring to agree with
it, so they stay unset rather than disagree.
"""

from __future__ import annotations

# (prefix, Zeek's MIME type), tested in order.
_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "application/x-dosexec"),
    (b"\xce\xfa\xed\xfe", "application/x-mach-o-executable"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-o-executable"),
    (b"%PDF", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/x-gzip"),
    (b"Rar!", "application/x-rar"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"MSCF\x00\x00\x00\x00", "application/vnd.ms-cab-compressed"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
# ELF's e_type (offset 16, in the file's byte order) -> Zeek's type.
_ELF = {1: "application/x-object", 2: "application/x-executable", 3: "application/x-sharedlib",
        4: "application/x-coredump"}  # fmt: skip


def sniff(head: bytes) -> str | None:
    """Zeek's MIME type for a body starting with ``head``, or None (unknown, or a text type)."""
    if head[:4] == b"\x7fELF":
        if len(head) < 18 or head[4] not in (1, 2):
            return None
        e_type = head[16] | head[17] << 8 if head[5] == 1 else head[17] | head[16] << 8
        return _ELF.get(e_type)
    if head[:4] == b"\xca\xfe\xba\xbe":  # universal Mach-O, not a Java class (same magic)
        return (
            "application/x-mach-o-executable"
            if len(head) > 7 and head[6] == 0 and 1 <= head[7] <= 20
            else None
        )
    for prefix, mime in _PREFIXES:
        if head.startswith(prefix):
            return mime
    return None
