"""A synthetic but realistic lake for the detection and intel benchmarks: seeded, NumPy-vectorised.

One day of a site of ``clients`` internal hosts talking to a Zipf-popular Internet (most
connections go to a few thousand servers, as in real traffic), through one resolver, with a few
internal servers; and, injected into that background, the attacks mamori's detectors look for:
vertical and horizontal scans, SSH / SMB / RDP guessing, a SYN flood and a DNS reflection flood on a
victim, backscatter, C2 beacons on a clock, lateral fan-out over SMB, a large exfiltration, DGA and
tunnelling lookups. ``ATTACKERS`` names who did what, so a benchmark can say which were found.

Tables follow the lake schemas (columns not generated are null): ``conn`` has ``n`` rows; ``dns``,
``http`` and ``ssl`` hold a row for each conn row of that service (about 15 %, 10 % and 35 %).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from mamori.schema import TABLES, schema_of

T0 = datetime(2024, 3, 4, tzinfo=UTC)
DAY_US = 86_400_000_000
# Bumped whenever the generated lake changes, so a benchmark never reuses a stale one.
# 2: the reflected DNS answers come from source port 53 (they came from random ports).
VERSION = 2

# who did what (for the report: which injected attacks the detectors found)
ATTACKERS = {
    "scan.vertical": "198.18.7.10",
    "scan.horizontal": "198.18.7.11",
    "bruteforce.ssh": "198.18.7.12",
    "bruteforce.rdp": "198.18.7.13",
    "ddos.syn (victim)": "10.0.0.80",
    "ddos.dns-reflection (victim)": "10.0.0.81",
    "c2.beacon": "10.1.0.66",
    "lateral.smb": "10.1.0.77",
    "exfiltration": "10.1.0.88",
    "dns.dga / tunnel": "10.1.0.99",
}


def dotted(v: np.ndarray) -> pl.Series:
    """IPv4 text of uint32 values, vectorised (as Zeek writes them)."""
    s = pl.Series(np.asarray(v, np.uint64)).cast(pl.UInt32)
    return pl.select(
        pl.format("{}.{}.{}.{}", s // 16777216, (s // 65536) % 256, (s // 256) % 256, s % 256)
    ).to_series()


def _ip(text: str) -> int:
    a, b, c, d = map(int, text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def _zipf_pick(rng: np.random.Generator, n: int, size: int, a: float = 1.1) -> np.ndarray:
    """Indices in [0, size) with Zipf-like popularity (index 0 the most popular)."""
    ranks = np.arange(1, size + 1, dtype=np.float64)
    p = ranks**-a
    p /= p.sum()
    return rng.choice(size, n, p=p)


def _frame(table: str, cols: dict[str, object]) -> pl.DataFrame:
    """The table's schema, generated columns filled, the rest null."""
    schema = pl.from_arrow(schema_of(table).empty_table()).schema  # type: ignore[union-attr]
    data = pl.DataFrame(cols)
    missing = [pl.lit(None, dtype).alias(c) for c, dtype in schema.items() if c not in cols]
    return data.with_columns(missing).select([pl.col(c).cast(dtype) for c, dtype in schema.items()])


def _events(rng: np.random.Generator, total: int, clients: int) -> dict[str, np.ndarray]:
    """Background connections plus injected attacks, as column arrays (addresses as uint32).
    The floods scale with ``total`` (200,000 and 50,000 records at 10 M); the rest is fixed."""
    scale = total / 10_000_000
    n_syn, n_refl = max(2_000, int(200_000 * scale)), max(1_000, int(50_000 * scale))
    n = total - (n_syn + n_refl + 2000 + 4000 + 600 + 300 + 1440 + 300 + 12)
    if n < total // 2:
        raise ValueError(f"{total} records are too few for the injected attacks")
    client = 0x0A010000 + 2 + _zipf_pick(rng, n, clients, 0.8)  # 10.1.x.y
    servers = rng.integers(0x01000000, 0xDF000000, 200_000, dtype=np.uint64)
    server = servers[_zipf_pick(rng, n, len(servers), 1.1)]
    kind = rng.choice(
        6, n, p=[0.35, 0.10, 0.15, 0.05, 0.25, 0.10]
    )  # ssl, http, dns, ntp/other udp, other tcp, internal smb/ssh
    port = np.choose(kind, [443, 80, 53, 123, 8080, 445]).astype(np.uint16)
    resolver, fileserver = _ip("10.0.0.53"), _ip("10.0.0.10")
    resp = np.where(kind == 2, resolver, np.where(kind == 5, fileserver, server)).astype(np.uint64)
    proto = np.where((kind == 2) | (kind == 3), 1, 0)  # 0 tcp, 1 udp
    failed = rng.random(n) < 0.03
    ts = rng.integers(0, DAY_US, n)
    cols = {
        "ts": ts,
        "orig": client.astype(np.uint64),
        "resp": resp,
        "resp_p": port,
        "proto": proto,
        "state": np.where(failed, 1, 0),  # 0 SF, 1 S0, 2 REJ
        "orig_bytes": np.where(failed, 0, rng.lognormal(6, 1.5, n)).astype(np.uint64),
        "resp_bytes": np.where(failed, 0, rng.lognormal(8, 2, n)).astype(np.uint64),
        "duration": np.where(failed, 0.0, rng.lognormal(0, 1.5, n)),
        "kind": kind,
    }
    parts = [cols]

    def add(ts, orig, resp, port, proto, state, ob, rb, dur, kind):  # type: ignore[no-untyped-def]
        m = len(ts)
        parts.append({
            "ts": np.asarray(ts, np.int64), "orig": np.broadcast_to(np.uint64(orig), m).copy()
            if np.isscalar(orig) else np.asarray(orig, np.uint64),
            "resp": np.broadcast_to(np.uint64(resp), m).copy() if np.isscalar(resp)
            else np.asarray(resp, np.uint64),
            "resp_p": np.broadcast_to(port, m).astype(np.uint16),
            "proto": np.full(m, proto), "state": np.broadcast_to(state, m).copy(),
            "orig_bytes": np.broadcast_to(ob, m).astype(np.uint64),
            "resp_bytes": np.broadcast_to(rb, m).astype(np.uint64),
            "duration": np.broadcast_to(dur, m).astype(np.float64), "kind": np.full(m, 4),
        })  # fmt: skip

    hour = 3_600_000_000
    a = {k: _ip(v) for k, v in ATTACKERS.items()}
    # vertical scan: 2,000 ports of one host in ten minutes, nearly all refused
    add(2 * hour + np.sort(rng.integers(0, 600_000_000, 2000)), a["scan.vertical"], _ip("10.0.0.10"),
        rng.permutation(np.arange(1, 2001)), 0, 2, 0, 0, 0.0, None)  # fmt: skip
    # horizontal sweep of port 445 over 4,000 internal addresses
    add(3 * hour + np.sort(rng.integers(0, 1_200_000_000, 4000)), a["scan.horizontal"],
        0x0A010000 + np.arange(4000), 445, 0, 1, 0, 0, 0.0, None)  # fmt: skip
    # SSH guessing: 600 short sessions, every ~2 s
    add(5 * hour + np.arange(600) * 2_000_000, a["bruteforce.ssh"], _ip("10.0.0.22"), 22, 0, 0,
        1_400, 2_100, 1.5, None)  # fmt: skip
    # RDP guessing: 300 short sessions
    add(6 * hour + np.arange(300) * 3_000_000, a["bruteforce.rdp"], _ip("10.0.0.33"), 3389, 0, 0,
        1_800, 3_000, 2.0, None)  # fmt: skip
    # SYN flood: 200,000 spoofed sources, one minute, unanswered
    add(8 * hour + np.sort(rng.integers(0, 60_000_000, n_syn)),
        rng.integers(0x01000000, 0xDF000000, n_syn), a["ddos.syn (victim)"], 80, 0, 1, 0, 0,
        0.0, None)  # fmt: skip
    # DNS reflection: 50,000 large unsolicited answers from 2,000 resolvers (source port 53)
    refl = rng.integers(0x01000000, 0xDF000000, 2000, dtype=np.uint64)
    m = n_refl
    parts.append({
        "ts": 9 * hour + np.sort(rng.integers(0, 60_000_000, m)), "orig": refl[rng.integers(0, 2000, m)],
        "resp": np.full(m, a["ddos.dns-reflection (victim)"], np.uint64),
        "resp_p": rng.integers(1024, 65535, m).astype(np.uint16), "proto": np.ones(m, np.int64),
        "state": np.full(m, 3), "orig_bytes": np.full(m, 3_000, np.uint64),
        "resp_bytes": np.zeros(m, np.uint64), "duration": np.zeros(m), "kind": np.full(m, 6),
    })  # fmt: skip
    # C2 beacon: every 60 s +/- 10 %, steady sizes, all day, to one server
    beats = np.arange(0, DAY_US, 60_000_000) + rng.integers(-6_000_000, 6_000_000, 1440)
    add(np.clip(beats, 0, DAY_US - 1), a["c2.beacon"], _ip("203.0.113.50"), 443, 0, 0, 310, 520,
        0.3, None)  # fmt: skip
    # lateral movement: one workstation to 300 internal hosts over SMB in 20 minutes
    add(12 * hour + np.sort(rng.integers(0, 1_200_000_000, 300)), a["lateral.smb"],
        0x0A010000 + 5000 + np.arange(300), 445, 0, 0, 4_000, 9_000, 3.0, None)  # fmt: skip
    # exfiltration: 12 uploads of 400 MB to a host no one else talks to
    add(20 * hour + np.arange(12) * 300_000_000, a["exfiltration"], _ip("198.51.100.200"), 443, 0,
        0, 400_000_000, 40_000, 600.0, None)  # fmt: skip
    return {k: np.concatenate([p[k] for p in parts]) for k in cols}


def lake(n: int = 10_000_000, seed: int = 1, clients: int = 3000) -> dict[str, pl.DataFrame]:
    """Every lake table for ``n`` connection records (background + attacks), schema-complete."""
    rng = np.random.default_rng(seed)
    ev = _events(rng, n, clients)
    order = np.argsort(ev["ts"], kind="stable")
    ev = {k: v[order] for k, v in ev.items()}
    m = len(ev["ts"])
    ts = pl.Series(T0.timestamp() * 1e6 + ev["ts"], dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    uid = pl.select(pl.format("C{}", pl.int_range(m, eager=True))).to_series()
    orig_h, resp_h = dotted(ev["orig"]), dotted(ev["resp"])
    state = ev["state"]
    kind = ev["kind"]
    udp = ev["proto"] == 1
    history = np.where(state == 0, np.where(udp, "Dd", "ShADadFf"), np.where(state == 1, "S", "Sr"))
    history = np.where(state == 3, "D", history)
    orig_pkts = np.where(state == 0, 2 + ev["orig_bytes"] // 1000, 1).astype(np.uint64)
    resp_pkts = np.where(state == 0, 2 + ev["resp_bytes"] // 1000, np.where(state == 2, 1, 0))
    service = np.select([kind == 0, kind == 1, kind == 2], ["ssl", "http", "dns"], "")
    local_orig = (ev["orig"] >> np.uint64(24)) == 10
    local_resp = (ev["resp"] >> np.uint64(24)) == 10
    conn = _frame("conn", {
        "ts": ts, "uid": uid, "orig_h": orig_h,
        # the reflected DNS answers come from port 53, as real ones do
        "orig_p": pl.Series(np.where(kind == 6, 53, rng.integers(32768, 61000, m)).astype(np.uint16)),
        "resp_h": resp_h, "resp_p": pl.Series(ev["resp_p"]),
        "proto": pl.Series(np.where(udp, "udp", "tcp")),
        "service": pl.Series(service).replace("", None),
        "duration": pl.Series(ev["duration"]), "orig_bytes": pl.Series(ev["orig_bytes"]),
        "resp_bytes": pl.Series(ev["resp_bytes"]),
        "conn_state": pl.Series(np.choose(state, ["SF", "S0", "REJ", "OTH"])),
        "local_orig": pl.Series(local_orig), "local_resp": pl.Series(local_resp),
        "missed_bytes": pl.Series(np.zeros(m, np.uint64)), "history": pl.Series(history),
        "orig_pkts": pl.Series(orig_pkts), "orig_ip_bytes": pl.Series(ev["orig_bytes"] + 40 * orig_pkts),
        "resp_pkts": pl.Series(resp_pkts.astype(np.uint64)),
        "resp_ip_bytes": pl.Series(ev["resp_bytes"] + 40 * resp_pkts.astype(np.uint64)),
        "ip_proto": pl.Series(np.where(udp, 17, 6).astype(np.uint8)),
        "source": pl.Series(np.full(m, "synthetic")),
        "first_record": pl.Series(np.arange(1, m + 1, dtype=np.uint64)),
        "last_record": pl.Series(np.arange(1, m + 1, dtype=np.uint64)),
    })  # fmt: skip
    out = {"conn": conn}
    out["dns"] = _dns(rng, conn.filter(pl.col("service") == "dns"))
    out["http"] = _http(rng, conn.filter(pl.col("service") == "http"))
    out["ssl"] = _ssl(rng, conn.filter(pl.col("service") == "ssl"))
    guesses = conn.filter(pl.col("orig_h") == ATTACKERS["bruteforce.ssh"])
    out["ssh"] = _frame("ssh", {
        **{c: guesses[c] for c in ("ts", "uid", "orig_h", "orig_p", "resp_h", "resp_p")},
        "version": pl.Series(np.full(guesses.height, 2, np.uint32)),
        "auth_success": pl.Series(np.zeros(guesses.height, bool)),
        "auth_attempts": pl.Series(np.ones(guesses.height, np.uint32)),
        "client": pl.Series(np.full(guesses.height, "SSH-2.0-libssh2_1.9.0")),
    })  # fmt: skip
    for t in TABLES:
        out.setdefault(t, _frame(t, {"ts": pl.Series([], dtype=pl.Datetime("us", "UTC"))}))
    return out


def _names(rng: np.random.Generator, n: int, popular: int = 50_000) -> pl.Series:
    """Zipf-popular registered domains with a host label, as a day of lookups looks."""
    words = pl.select(pl.format("site{}", pl.int_range(popular, eager=True))).to_series()
    tlds = pl.Series(["com", "net", "org", "io", "de", "co.uk"])
    base = words.gather(_zipf_pick(rng, n, popular, 1.0))
    tld = tlds.gather(rng.integers(0, len(tlds), n))
    host = pl.Series(["www", "api", "cdn", "mail", "static", "img"]).gather(rng.integers(0, 6, n))
    return pl.select(pl.format("{}.{}.{}", host, base, tld)).to_series()


def _dns(rng: np.random.Generator, conn: pl.DataFrame) -> pl.DataFrame:
    n = conn.height
    query = _names(rng, n)
    # the DGA / tunnelling host: random 14-letter names (NXDOMAIN) and long hex labels
    bad = conn["orig_h"] == ATTACKERS["dns.dga / tunnel"]
    k = int(bad.sum())
    letters = np.frombuffer(rng.integers(97, 123, (k, 14), dtype=np.uint8).tobytes(), "S14")
    dga = pl.Series(letters.astype(str)) + ".com"
    hexlab = np.frombuffer(rng.integers(48, 58, (k, 40), dtype=np.uint8).tobytes(), "S40")
    tunnel = pl.Series(hexlab.astype(str)) + ".t.exfil-tunnel.net"
    pick = pl.Series(rng.random(k) < 0.5)
    badq = pl.select(pl.when(pick).then(dga).otherwise(tunnel)).to_series()
    query = query.scatter(np.flatnonzero(bad.to_numpy()), badq) if k else query
    nx = np.zeros(n, bool)
    nx[np.flatnonzero(bad.to_numpy())] = True
    qtype = np.where(rng.random(n) < 0.8, 1, 28).astype(np.uint16)
    answers = pl.select(
        pl.when(pl.Series(nx)).then(pl.lit([], pl.List(pl.String)))
        .otherwise(pl.concat_list(dotted(rng.integers(0x01000000, 0xDF000000, n))))
    ).to_series()  # fmt: skip
    return _frame("dns", {
        **{c: conn[c] for c in ("ts", "uid", "orig_h", "orig_p", "resp_h", "resp_p", "proto")},
        "trans_id": pl.Series(rng.integers(0, 65536, n).astype(np.uint16)),
        "query": query, "qclass": pl.Series(np.ones(n, np.uint16)),
        "qclass_name": pl.Series(np.full(n, "C_INTERNET")),
        "qtype": pl.Series(qtype), "qtype_name": pl.Series(np.where(qtype == 1, "A", "AAAA")),
        "rcode": pl.Series(np.where(nx, 3, 0).astype(np.uint16)),
        "rcode_name": pl.Series(np.where(nx, "NXDOMAIN", "NOERROR")),
        "AA": pl.Series(np.zeros(n, bool)), "TC": pl.Series(np.zeros(n, bool)),
        "RD": pl.Series(np.ones(n, bool)), "RA": pl.Series(np.ones(n, bool)),
        "Z": pl.Series(np.zeros(n, np.uint8)), "rejected": pl.Series(np.zeros(n, bool)),
        "answers": answers,
    })  # fmt: skip


def _http(rng: np.random.Generator, conn: pl.DataFrame) -> pl.DataFrame:
    n = conn.height
    host = _names(rng, n)
    uri = pl.select(pl.format("/p/{}.html", pl.Series(rng.integers(0, 5000, n)))).to_series()
    status = np.where(rng.random(n) < 0.95, 200, 404).astype(np.uint16)
    return _frame("http", {
        **{c: conn[c] for c in ("ts", "uid", "orig_h", "orig_p", "resp_h", "resp_p")},
        "trans_depth": pl.Series(np.ones(n, np.uint32)), "method": pl.Series(np.full(n, "GET")),
        "host": host, "uri": uri, "version": pl.Series(np.full(n, "1.1")),
        "user_agent": pl.Series(np.full(n, "Mozilla/5.0")),
        "request_body_len": pl.Series(np.zeros(n, np.uint64)),
        "response_body_len": conn["resp_bytes"], "status_code": pl.Series(status),
        "status_msg": pl.Series(np.where(status == 200, "OK", "Not Found")),
    })  # fmt: skip


def _ssl(rng: np.random.Generator, conn: pl.DataFrame) -> pl.DataFrame:
    n = conn.height
    prints = pl.Series([f"{i:032x}" for i in rng.integers(0, 2**62, 40)])
    ja3 = prints.gather(_zipf_pick(rng, n, 40, 1.5))
    return _frame("ssl", {
        **{c: conn[c] for c in ("ts", "uid", "orig_h", "orig_p", "resp_h", "resp_p")},
        "version": pl.Series(np.full(n, "TLSv13")), "cipher": pl.Series(np.full(n, "TLS_AES_128_GCM_SHA256")),
        "server_name": _names(rng, n), "resumed": pl.Series(np.zeros(n, bool)),
        "established": pl.Series(np.ones(n, bool)), "ja3": ja3,
    })  # fmt: skip
