"""Vectorised first look at payload: which packets could start a protocol we analyse.

Recognising a protocol needs Python (the analysers' signatures), but most payload in a patrol is
scans, floods and protocols we do not parse. Each analyser declares the byte prefixes its protocol's
messages can start with (``prefixes``), the ports Zeek attaches it to regardless of payload
(``ports``), and optionally a vectorised test of its own (``prefilter``); this module evaluates all of
them over a batch's payload rows at once with NumPy. Only candidate connections reach Python.

The patterns and ports are tested in one compiled pass per batch (a NumPy expression per pattern
cost more than the rest of routing); an analyser's own vectorised test still gets the heads.

The test is a superset by design: a payload shorter than a prefix matches when it equals the
prefix's beginning (a request may arrive one byte per segment), and letters compare case-blind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba as nb
import numpy as np

from mamori.flows.analyzers.base import Analyzer

HEAD = 8  # bytes of each payload examined
# _MASKS[k]: the top k bytes of a 64-bit word.
_MASKS = np.array([((1 << (8 * k)) - 1) << (8 * (HEAD - k)) for k in range(HEAD + 1)], np.uint64)


_Table = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]  # type: ignore[type-arg]
_tables: dict[tuple[int, ...], _Table] = {}


def _table(analyzers: Sequence[Analyzer]) -> _Table:
    """Patterns as (upper-cased big-endian word, length) sorted by first byte, with each first
    byte's range of them; ports as a bit per transport; the analysers' own tests."""
    key = tuple(id(a) for a in analyzers)
    got = _tables.get(key)
    if got is not None:
        return got
    keys: set[bytes] = set()
    ports = np.zeros(65536, np.uint8)
    extras = []
    for a in analyzers:
        keys.update(p.upper()[:HEAD] for p in getattr(a, "prefixes", ()) if p)
        for transport, port in getattr(a, "ports", ()):
            ports[port] |= 1 if transport == "tcp" else 2
        extra = getattr(a, "prefilter", None)
        if extra is not None:
            extras.append(extra)
    ordered = sorted(keys)
    first = np.array([k[0] for k in ordered], np.int64)
    bounds = np.searchsorted(first, np.arange(257))
    table = (
        np.array([int.from_bytes(k.ljust(HEAD, b"\0"), "big") for k in ordered], np.uint64),
        np.array([len(k) for k in ordered], np.int64),
        bounds.astype(np.int64),
        ports,
        extras,
    )
    _tables[key] = table
    return table


@nb.njit(cache=True)
def _scan(
    buf: np.ndarray,
    pay_off: np.ndarray,
    pay_cap: np.ndarray,
    proto: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    words: np.ndarray,
    lens: np.ndarray,
    bounds: np.ndarray,
    ports: np.ndarray,
    masks: np.ndarray,
    raw: np.ndarray,
    valid: np.ndarray,
) -> np.ndarray:
    """One pass: whitespace start, attached port, or a prefix sharing the row's first byte.
    ``raw`` receives each row's first HEAD bytes as they are (zero-padded), ``valid`` which of
    them exist (NumPy's broadcast compare for it cost more than this whole pass's reads)."""
    n = pay_off.shape[0]
    hit = np.zeros(n, np.bool_)
    size = buf.shape[0]
    last = size - 1
    for i in range(n):
        have = min(np.int64(pay_cap[i]), HEAD)
        off = np.int64(pay_off[i])
        word = np.uint64(0)
        if have == HEAD and off + HEAD <= size:
            # The usual row: a whole head inside the buffer, read without per-byte bounds.
            for k in range(HEAD):
                b = buf[off + k]
                raw[i, k] = b
                valid[i, k] = True
                u = np.uint64(b)
                if 0x61 <= b <= 0x7A:
                    u -= np.uint64(0x20)
                word = (word << np.uint64(8)) | u
        else:
            for k in range(HEAD):
                b = np.uint8(0)
                if k < have:
                    b = buf[min(off + k, last)]
                raw[i, k] = b
                valid[i, k] = k < have
                u = np.uint64(b)
                if 0x61 <= u <= 0x7A:
                    u -= np.uint64(0x20)
                word = (word << np.uint64(8)) | u
        if have == 0:
            hit[i] = words.shape[0] > 0  # an empty head is the start of every pattern
            continue
        c = raw[i, 0]
        if c == 0x20 or c == 0x09 or c == 0x0D or c == 0x0A:
            hit[i] = True
            continue
        bit = 1 if proto[i] == 6 else (2 if proto[i] == 17 else 0)
        if bit and ((ports[sport[i] & 0xFFFF] & bit) or (ports[dport[i] & 0xFFFF] & bit)):
            hit[i] = True
            continue
        top = np.int64(word >> np.uint64(56))
        for p in range(bounds[top], bounds[top + 1]):
            if ((word ^ words[p]) & masks[min(have, lens[p])]) == 0:
                hit[i] = True
                break
    return hit


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
    if n == 0:
        return np.zeros(0, np.bool_)
    words, lens, bounds, ports, extras = _table(analyzers)
    raw = np.empty((n, HEAD), np.uint8)
    valid = np.empty((n, HEAD), np.bool_)
    hit = _scan(
        buf, pay_off, pay_cap, proto, sport, dport, words, lens, bounds, ports, _MASKS, raw, valid
    )
    if extras:
        # An analyser's own test sees the heads (zero-padded) and which of their bytes exist
        # (over every row: gathering the rows not yet hit cost more than testing them all).
        for extra in extras:
            hit |= extra(raw, valid)
    return hit
