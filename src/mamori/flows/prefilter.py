"""Vectorised first look at payload: which packets could start a protocol we analyse.

Recognising a protocol needs Python (the analysers' signatures), but most payload in a patrol is
scans, floods and protocols we do not parse. Each analyser declares the byte prefixes its protocol's
messages can start with (``prefixes``), the ports Zeek attaches it to regardless of payload
(``ports``), and optionally a vectorised test of its own (``prefilter``); this module evaluates all of
them over a batch's payload rows at once with NumPy. Only candidate connections reach Python.

The test is a superset by design: a payload shorter than a prefix matches when it equals the
prefix's beginning (a request may arrive one byte per segment), and letters compare case-blind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mamori.flows.analyzers.base import Analyzer

HEAD = 8  # bytes of each payload examined
_WS = np.array([0x20, 0x09, 0x0D, 0x0A], np.uint8)
# _MASKS[k]: the top k bytes of a 64-bit word.
_MASKS = np.array([((1 << (8 * k)) - 1) << (8 * (HEAD - k)) for k in range(HEAD + 1)], np.uint64)


def heads(
    buf: np.ndarray, pay_off: np.ndarray, pay_cap: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The first HEAD bytes of each payload (zero-padded) and a mask of which bytes exist."""
    k = np.arange(HEAD, dtype=np.int64)
    valid = k[None, :] < pay_cap[:, None]
    pos = np.minimum(pay_off[:, None] + k[None, :], buf.shape[0] - 1)
    b = np.where(valid, buf[pos], 0).astype(np.uint8)
    return b, valid


def candidates(
    buf: np.ndarray,
    pay_off: np.ndarray,
    pay_cap: np.ndarray,
    proto: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    analyzers: Sequence[Analyzer],
) -> np.ndarray:
    """Mask of payload rows that could belong to a protocol one of ``analyzers`` understands."""
    n = pay_off.shape[0]
    hit = np.zeros(n, np.bool_)
    if n == 0:
        return hit
    b, valid = heads(buf, pay_off, pay_cap)
    upper = np.where((b >= 0x61) & (b <= 0x7A), b - 0x20, b).astype(np.uint8)
    # Leading whitespace is tolerated by the line protocols' signatures: let it through.
    hit |= np.isin(b[:, 0], _WS)
    # Each head as one big-endian 64-bit word; a pattern test is then one xor-and-compare, with a
    # per-row mask over the bytes both the payload and the pattern have.
    word = upper.view(">u8").ravel().astype(np.uint64)
    have = np.minimum(pay_cap, HEAD).astype(np.int64)
    seen: set[bytes] = set()
    for a in analyzers:
        for pattern in getattr(a, "prefixes", ()):
            key = pattern.upper()[:HEAD]
            if key in seen:
                continue
            seen.add(key)
            pat = np.uint64(int.from_bytes(key.ljust(HEAD, b"\0"), "big"))
            mask = _MASKS[np.minimum(have, len(key))]
            hit |= ((word ^ pat) & mask) == 0
        for transport, port in getattr(a, "ports", ()):
            t = 6 if transport == "tcp" else 17
            hit |= (proto == t) & ((sport == port) | (dport == port))
        extra = getattr(a, "prefilter", None)
        if extra is not None:
            hit |= extra(b, valid)
    return hit
