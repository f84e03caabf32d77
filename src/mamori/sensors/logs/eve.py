"""Suricata's EVE JSON into the lake: flows into ``conn``, protocol events into their tables,
alerts into ``eve_alert``, so a Suricata deployment can use mamori as its analysis, response and
sharing layer.

Every event of one flow carries Suricata's ``flow_id``; it becomes a Zeek-style connection uid
(``C`` and 17 base-62 digits) by a fixed 64-bit mix, so the conn row, its dns/http/tls records and
its alerts share a uid wherever and whenever the file is read, as Zeek's records of one connection
do. Addresses are written in their canonical form (EVE expands IPv6 addresses; the lake, as Zeek,
compresses them), so EVE records join the rest of the lake.

What maps and what does not:

* **conn** (``flow``; ``netflow`` halves joined on ``flow_id``): ts = flow start, duration = end -
  start, packets from ``pkts_toserver``/``pkts_toclient``. ``orig_ip_bytes``/``resp_ip_bytes`` are
  ``bytes_toserver``/``bytes_toclient``, which Suricata counts over whole captured packets (an
  Ethernet capture adds 14 bytes per packet to Zeek's IP bytes); payload bytes (``orig_bytes``),
  ``history``, ``missed_bytes``, ``local_*`` and ``tunnel_parents`` are not in EVE: null. For ICMP,
  ports are Zeek's: the type, and the counterpart type (echo 8 -> 0) or else the code.
  ``conn_state`` is derived from the TCP flags each side sent (``tcp_flags_ts``/``tcp_flags_tc``),
  which EVE keeps without their order, so it is Zeek's state as far as flags alone can tell:

  ===========  =====================================================================
  S0           originator SYN, nothing back
  REJ          originator SYN, responder RST without SYN-ACK
  RSTOS0       originator SYN then RST, no SYN-ACK
  SH           originator SYN then FIN, no SYN-ACK
  RSTRH / SHR  responder SYN-ACK (RST / FIN) with no originator SYN
  SF           SYN, SYN-ACK and a FIN from both sides (a RST besides: after the close)
  RSTO / RSTR  established, a RST from the originator / the responder, not both FINs
  S2 / S3      established, a FIN from the originator only / the responder only
  S1           established, no FIN or RST
  OTH          no SYN from either side (midstream), and every ICMP flow (as Zeek)
  S0 / SF      UDP and other protocols: nothing back / replies seen (as Zeek)
  ===========  =====================================================================

* **dns**: query and answer events of one transaction (``flow_id`` + DNS id) become one row, in
  EVE's v1 (one event per answer RR), v2 (answers in a list) and v3 (``request``/``response``
  with ``queries``) shapes. ``qclass`` is not logged by EVE (null); ``rejected`` stays false.
* **http**: hostname, url, method, user agent, referrer, status, protocol version and response
  body length (``length``); ``trans_depth`` = ``tx_id`` + 1. EVE does not log the request body's
  length: 0.
* **ssl** (``tls``): version in Zeek's spelling (``TLSv12``), SNI, subject, issuer, resumption,
  JA3/JA3S/JA4 when Suricata computed them. ``cert_chain_fps`` stays null: EVE's ``fingerprint``
  is SHA-1, Zeek's chain fingerprints are SHA-256.
* **ssh**: banners rebuilt as Zeek logs them (``SSH-2.0-OpenSSH_8.9``), protocol version, HASSH
  and HASSH-server when enabled; algorithms and auth results are not in EVE.
* **smtp**: HELO, MAIL FROM, RCPT TO, and the email's From/To/Cc/Subject when logged.
* **ftp**: every command with its reply (EVE logs them all; Zeek a subset), ``user`` carried from
  the flow's USER command. PASS arguments are kept only for anonymous logins, as Zeek does.
* **eve_alert** (``alert``): signature id, rev, signature, category, severity, action and the
  rule's metadata as a JSON object of lists; ``flow_uid`` names the conn row. Rules with the
  ``target:`` keyword make EVE name the attacking and the attacked side (``alert.source`` and
  ``alert.target``): they become ``source_ip``/``source_port`` and ``target_ip``/``target_port``.

Other event types (stats, fileinfo, anomaly, quic, smb, ...) are counted and skipped with one note
per type.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from mamori.schema import schema_of
from mamori.sensors.logs._lines import line_batches, parse_times
from mamori.sensors.registry import ReadContext, log_sensor

TABLES = ("conn", "eve_alert", "dns", "http", "ssl", "ssh", "ftp", "smtp")
# How long a DNS query waits (in log time) for its answer in a later batch before it is written
# as unanswered.
DNS_WAIT_S = 60.0


def sniff(head: bytes) -> bool:
    line = head.lstrip().split(b"\n", 1)[0].strip()
    if not line.startswith(b"{"):
        return False
    obj = json.loads(line)
    return isinstance(obj, dict) and isinstance(obj.get("event_type"), str) and "timestamp" in obj


# -- flow ids to uids -----------------------------------------------------------------------------

_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def flow_uids(flow_ids: pl.Series) -> pl.Series:
    """Zeek-style uids from Suricata flow ids, vectorised: ``C`` + 17 base-62 digits (~100 bits)."""
    valid = flow_ids.is_not_null().to_numpy()
    ids = flow_ids.fill_null(0).cast(pl.Int64).to_numpy().astype(np.uint64)
    with np.errstate(over="ignore"):
        a = _mix(ids ^ np.uint64(0x6D616D6F72690001))
        b = _mix(ids ^ np.uint64(0x6D616D6F72690002))
    out = np.empty((len(ids), 18), np.uint8)
    out[:, 0] = ord("C")
    for i in range(11):
        out[:, 1 + i] = _B62[(a % np.uint64(62)).astype(np.intp)]
        a //= np.uint64(62)
    for i in range(6):
        out[:, 12 + i] = _B62[(b % np.uint64(62)).astype(np.intp)]
        b //= np.uint64(62)
    text = pl.Series(np.ascontiguousarray(out).view("S18").ravel()).cast(pl.String)
    return pl.select(pl.when(pl.Series(valid)).then(text)).to_series().alias("uid")


# -- reading --------------------------------------------------------------------------------------


_S = pl.String


def _obj(**fields: pl.DataType) -> pl.Struct:
    return pl.Struct(fields)


_HASH = _obj(hash=_S)
_SSH_SIDE = _obj(proto_version=_S, software_version=_S, hassh=_HASH)
# Every member the sensor reads, decoded in one pass per batch. Leaves are text (JSON numbers and
# booleans become their text; Polars casts them afterwards), so the only shape that cannot decode
# is an object or array where EVE writes a scalar; members whose shape varies between Suricata
# versions (``tls.ja4``, ``alert.metadata``) are not declared and are read by JSON path instead.
EVE_SHAPE = _obj(
    timestamp=_S, flow_id=_S, event_type=_S, src_ip=_S, src_port=_S, dest_ip=_S, dest_port=_S,
    proto=_S, app_proto=_S, host=_S, tx_id=_S, icmp_type=_S, icmp_code=_S,
    flow=_obj(pkts_toserver=_S, pkts_toclient=_S, bytes_toserver=_S, bytes_toclient=_S,
              start=_S, end=_S),
    netflow=_obj(pkts=_S, bytes=_S, start=_S, end=_S),
    tcp=_obj(tcp_flags_ts=_S, tcp_flags_tc=_S),
    alert=_obj(action=_S, signature_id=_S, rev=_S, signature=_S, category=_S, severity=_S,
               source=_obj(ip=_S, port=_S), target=_obj(ip=_S, port=_S)),
    dns=_obj(type=_S, id=_S, rrname=_S, rrtype=_S, rcode=_S, flags=_S, aa=_S, tc=_S, rd=_S,
             ra=_S, ttl=_S, rdata=_S,
             answers=pl.List(_obj(rrname=_S, rrtype=_S, ttl=_S, rdata=_S)),
             queries=pl.List(_obj(rrname=_S, rrtype=_S))),
    http=_obj(hostname=_S, url=_S, http_method=_S, http_refer=_S, protocol=_S,
              http_user_agent=_S, length=_S, status=_S),
    tls=_obj(version=_S, sni=_S, session_resumed=_S, subject=_S, issuerdn=_S, ja3=_HASH,
             ja3s=_HASH),
    ssh=_obj(client=_SSH_SIDE, server=_SSH_SIDE),
    smtp=_obj(helo=_S, mail_from=_S, rcpt_to=pl.List(_S)),
    email=_obj(**{"from": _S}, to=pl.List(_S), cc=pl.List(_S), subject=_S, message_id=_S,
               date=_S),
    ftp=_obj(command=_S, command_data=_S, completion_code=pl.List(_S), reply=pl.List(_S),
             mode=_S, dynamic_port=_S),
)  # fmt: skip


def _declared(path: list[str]) -> bool:
    shape: pl.DataType = EVE_SHAPE
    for name in path:
        if not isinstance(shape, pl.Struct):
            return False
        found = {f.name: f.dtype for f in shape.fields}
        if name not in found:
            return False
        shape = found[name]
    return True


def _m(path: str) -> pl.Expr:
    """A member of the decoded event (``$.flow.start``); undeclared ones by JSON path."""
    names = path.removeprefix("$.").split(".")
    if not _declared(names):
        return pl.col("line").str.json_path_match(path)
    expr = pl.col("j")
    for name in names:
        expr = expr.struct.field(name)
    return expr


def _decode(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """The batch with its events decoded into ``j``, and the records of lines that do not fit
    EVE's shape (found by halving: a damaged line costs a few decodes, not one per line)."""
    try:
        return frame.with_columns(j=pl.col("line").str.json_decode(EVE_SHAPE)), pl.Series(
            "record", [], pl.Int64
        )
    except pl.exceptions.PolarsError:
        if frame.height <= 1:
            return frame.head(0).with_columns(j=pl.lit(None, EVE_SHAPE)), frame["record"]
        half = frame.height // 2
        good_a, bad_a = _decode(frame.head(half))
        good_b, bad_b = _decode(frame.tail(frame.height - half))
        return pl.concat([good_a, good_b]), pl.concat([bad_a, bad_b])


def _canonical(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """IPv6 addresses in their compressed form, computed once per distinct address."""
    for column in columns:
        long = frame.filter(pl.col(column).str.contains(":"))[column].unique().drop_nulls()
        if long.len() == 0:
            continue
        canon = {}
        for text in long.to_list():
            try:
                canon[text] = ipaddress.ip_address(text).compressed
            except ValueError:
                canon[text] = text
        frame = frame.with_columns(pl.col(column).replace(canon))
    return frame


@log_sensor("eve", tables=TABLES, sniff=sniff, priority=30)
def read(path: Path, ctx: ReadContext) -> Iterator[tuple[str, pa.Table]]:
    """Suricata EVE JSON: flows, dns, http, tls, ssh, smtp, ftp and alerts."""
    others: dict[str, list[int]] = {}
    pending_dns = pl.DataFrame()
    netflow: list[pl.DataFrame] = []
    flow_uids_seen: list[pl.Series] = []  # a flow logged both ways becomes one conn row
    for numbers, lines in line_batches(path):
        frame = pl.DataFrame({"record": pl.Series(numbers), "line": pl.Series(lines)}).filter(
            pl.col("line").str.strip_chars().str.len_bytes() > 0
        )
        objects = pl.col("line").str.strip_chars().str.starts_with("{")
        not_json = frame.filter(~objects)["record"]
        frame, broken = _decode(frame.filter(objects))
        frame = frame.with_columns(event=_m("$.event_type"))
        untyped = frame.filter(pl.col("event").is_null())["record"]
        bad = pl.concat([not_json, broken, untyped]).sort()
        ctx.warn_rows(
            pl.DataFrame({"record": bad}).with_columns(
                reason=pl.lit("not an EVE event (a JSON object in EVE's shape, with event_type)")
            )
        )
        frame = frame.filter(pl.col("event").is_not_null())
        known = pl.col("event").is_in(["flow", "netflow", "alert", *_EVENTS])
        for (event,), part in frame.filter(~known).partition_by("event", as_dict=True).items():
            seen = others.setdefault(str(event), [int(part["record"][0]), 0])
            seen[1] += part.height
        frame = _common(frame.filter(known), ctx)
        if frame.height == 0:
            continue
        flows = frame.filter(pl.col("event") == "flow")
        if flows.height:
            conn = _conn(flows, path)
            flow_uids_seen.append(pl.Series(conn["uid"]))
            yield "conn", conn
        if (nf := frame.filter(pl.col("event") == "netflow")).height:
            netflow.append(_netflow_halves(nf))
        if (alerts := frame.filter(pl.col("event") == "alert")).height:
            yield "eve_alert", _alerts(alerts, path, ctx)
        dns = frame.filter(pl.col("event") == "dns")
        if dns.height or pending_dns.height:
            events = _dns_events(dns)
            if pending_dns.height:
                events = pl.concat([pending_dns, events])
            done, pending_dns = _dns_rows(events, final=False)
            if done.height:
                yield "dns", done.to_arrow()
        for event, build in _EVENTS.items():
            if build is None:
                continue
            part = frame.filter(pl.col("event") == event)
            if part.height:
                table, rows = build(part)
                if rows.height:
                    yield table, rows.to_arrow()
    if pending_dns.height:
        done, _ = _dns_rows(pending_dns, final=True)
        if done.height:
            yield "dns", done.to_arrow()
    if netflow:
        halves = pl.concat(netflow)
        if flow_uids_seen:
            halves = halves.filter(~pl.col("uid").is_in(pl.concat(flow_uids_seen).implode()))
        if halves.height:
            yield "conn", _netflow_conn(halves, path)
    for event, (first, count) in others.items():
        ctx.warn(first, f"{count} EVE {event} events skipped (no lake table for them)")
        ctx.warned += count - 1


def _common(frame: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
    """The members every event has; events without a time or a flow id are warned and dropped."""
    frame = frame.with_columns(
        ts=parse_times(_m("$.timestamp")),
        flow_id=_m("$.flow_id").cast(pl.Int64, strict=False),
        src_ip=_m("$.src_ip"),
        src_port=_m("$.src_port").cast(pl.UInt16, strict=False),
        dest_ip=_m("$.dest_ip"),
        dest_port=_m("$.dest_port").cast(pl.UInt16, strict=False),
        proto_name=_m("$.proto"),
        app_proto=_m("$.app_proto"),
        host=_m("$.host"),
        tx_id=_m("$.tx_id").cast(pl.UInt32, strict=False),
    )
    reason = (
        pl.when(pl.col("ts").is_null())
        .then(pl.lit("no timestamp it could read"))
        .when(pl.col("flow_id").is_null())
        .then(pl.lit("no flow_id"))
        .when(pl.col("src_ip").is_null() | pl.col("dest_ip").is_null())
        .then(pl.lit("no src_ip or dest_ip"))
        .when(pl.col("proto_name").is_null())
        .then(pl.lit("no proto"))
    )
    frame = frame.with_columns(reason=reason)
    ctx.warn_rows(frame.filter(pl.col("reason").is_not_null()))
    frame = frame.filter(pl.col("reason").is_null())
    frame = _canonical(frame, ("src_ip", "dest_ip"))
    return frame.with_columns(uid=flow_uids(frame["flow_id"]), proto=_proto(pl.col("proto_name")))


def _proto(name: pl.Expr) -> pl.Expr:
    low = name.str.to_lowercase()
    return pl.when(low == "ipv6-icmp").then(pl.lit("icmp")).otherwise(low)


_IP_PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "sctp": 132, "gre": 47, "esp": 50}
# ICMP request/reply pairs: Zeek logs the counterpart type as the responder "port".
_COUNTERPART = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17, 9: 10, 10: 9}
_COUNTERPART6 = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130}
_SERVICE = {"tls": "ssl", "failed": None, "unknown": None}


def _table(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Columns in the lake's order and types; those the frame lacks are null."""
    types = pl.from_arrow(schema_of(name).empty_table()).schema  # type: ignore[union-attr]
    return frame.select(
        [
            (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
            for c, t in types.items()
        ]
    )


def _ids(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        orig_h="src_ip",
        orig_p=pl.col("src_port").fill_null(0),
        resp_h="dest_ip",
        resp_p=pl.col("dest_port").fill_null(0),
    )


# -- conn -----------------------------------------------------------------------------------------

_SYN, _FIN, _RST = 0x02, 0x01, 0x04


def _conn_state(
    proto: pl.Expr, ts_flags: pl.Expr, tc_flags: pl.Expr, resp_pkts: pl.Expr
) -> pl.Expr:
    o, r = ts_flags.fill_null(0), tc_flags.fill_null(0)

    def has(flags: pl.Expr, bit: int) -> pl.Expr:
        return (flags & bit) != 0

    o_syn, o_fin, o_rst = has(o, _SYN), has(o, _FIN), has(o, _RST)
    r_syn, r_fin, r_rst = has(r, _SYN), has(r, _FIN), has(r, _RST)
    tcp = (
        pl.when(o_syn & ~r_syn & o_rst)
        .then(pl.lit("RSTOS0"))
        .when(o_syn & ~r_syn & r_rst)
        .then(pl.lit("REJ"))
        .when(o_syn & ~r_syn & o_fin)
        .then(pl.lit("SH"))
        .when(o_syn & ~r_syn)
        .then(pl.lit("S0"))
        .when(~o_syn & r_syn & r_rst)
        .then(pl.lit("RSTRH"))
        .when(~o_syn & r_syn & r_fin)
        .then(pl.lit("SHR"))
        .when(~o_syn & ~r_syn)
        .then(pl.lit("OTH"))
        .when(o_fin & r_fin)  # both closed: a RST after that does not make it an abort
        .then(pl.lit("SF"))
        .when(o_rst)
        .then(pl.lit("RSTO"))
        .when(r_rst)
        .then(pl.lit("RSTR"))
        .when(o_fin)
        .then(pl.lit("S2"))
        .when(r_fin)
        .then(pl.lit("S3"))
        .otherwise(pl.lit("S1"))
    )
    return (
        pl.when(proto == "tcp")
        .then(tcp)
        .when(proto == "icmp")
        .then(pl.lit("OTH"))
        .when(resp_pkts > 0)
        .then(pl.lit("SF"))
        .otherwise(pl.lit("S0"))
    )


def _icmp_ports(frame: pl.DataFrame) -> pl.DataFrame:
    itype = _m("$.icmp_type").cast(pl.Int64, strict=False)
    icode = _m("$.icmp_code").cast(pl.Int64, strict=False)
    v6 = pl.col("proto_name").str.to_lowercase() == "ipv6-icmp"
    counter = (
        pl.when(v6)
        .then(itype.replace_strict(_COUNTERPART6, default=None))
        .otherwise(itype.replace_strict(_COUNTERPART, default=None))
    )
    icmp = pl.col("proto") == "icmp"
    return frame.with_columns(
        orig_p=pl.when(icmp).then(itype).otherwise(pl.col("orig_p")).cast(pl.UInt16, strict=False),
        resp_p=pl.when(icmp)
        .then(pl.coalesce(counter, icode))
        .otherwise(pl.col("resp_p"))
        .cast(pl.UInt16, strict=False),
    ).with_columns(pl.col("orig_p", "resp_p").fill_null(0))


def _service(app: pl.Expr) -> pl.Expr:
    return app.replace(_SERVICE)


def _conn(flows: pl.DataFrame, path: Path) -> pa.Table:
    start = parse_times(_m("$.flow.start"))
    end = parse_times(_m("$.flow.end"))
    frame = _icmp_ports(_ids(flows)).with_columns(
        start=start,
        end=end,
        orig_pkts=_m("$.flow.pkts_toserver").cast(pl.UInt64, strict=False),
        resp_pkts=_m("$.flow.pkts_toclient").cast(pl.UInt64, strict=False),
        orig_ip_bytes=_m("$.flow.bytes_toserver").cast(pl.UInt64, strict=False),
        resp_ip_bytes=_m("$.flow.bytes_toclient").cast(pl.UInt64, strict=False),
        ts_flags=_m("$.tcp.tcp_flags_ts").str.to_integer(base=16, strict=False),
        tc_flags=_m("$.tcp.tcp_flags_tc").str.to_integer(base=16, strict=False),
    )
    frame = frame.with_columns(
        ts=pl.coalesce("start", "ts"),
        duration=(pl.col("end") - pl.col("start")).dt.total_microseconds() / 1e6,
        service=_service(pl.col("app_proto")),
        conn_state=_conn_state(
            pl.col("proto"), pl.col("ts_flags"), pl.col("tc_flags"), pl.col("resp_pkts")
        ),
        ip_proto=pl.col("proto_name")
        .str.to_lowercase()
        .replace_strict(_IP_PROTO, default=pl.col("proto_name").cast(pl.UInt8, strict=False)),
        source=pl.lit(str(path)),
        first_record="record",
        last_record="record",
    )
    return _table("conn", frame).to_arrow()


def _netflow_halves(nf: pl.DataFrame) -> pl.DataFrame:
    """One direction of a flow per event; kept narrow until the file's end joins the halves."""
    return _icmp_ports(_ids(nf)).select(
        "record", "uid", "orig_h", "orig_p", "resp_h", "resp_p", "proto", "proto_name",
        "app_proto", "ts",
        start=parse_times(_m("$.netflow.start")),
        end=parse_times(_m("$.netflow.end")),
        pkts=_m("$.netflow.pkts").cast(pl.UInt64, strict=False),
        bytes=_m("$.netflow.bytes").cast(pl.UInt64, strict=False),
    )  # fmt: skip


def _netflow_conn(halves: pl.DataFrame, path: Path) -> pa.Table:
    """The half that started first is the originator's (ties: the one logged first)."""
    halves = halves.sort("uid", "start", "record")
    first = halves.group_by("uid", maintain_order=True).first()
    second = halves.group_by("uid", maintain_order=True).agg(
        pl.col("pkts").slice(1, 1).first().alias("r_pkts"),
        pl.col("bytes").slice(1, 1).first().alias("r_bytes"),
        pl.col("end").max().alias("last"),
        pl.col("record").max().alias("last_record"),
        pl.col("app_proto").drop_nulls().first().alias("app"),
    )
    frame = first.join(second, on="uid").with_columns(
        ts=pl.coalesce("start", "ts"),
        duration=(pl.col("last") - pl.col("start")).dt.total_microseconds() / 1e6,
        orig_pkts="pkts",
        orig_ip_bytes="bytes",
        resp_pkts=pl.col("r_pkts").fill_null(0),
        resp_ip_bytes=pl.col("r_bytes").fill_null(0),
        service=_service(pl.col("app")),
        ip_proto=pl.col("proto_name")
        .str.to_lowercase()
        .replace_strict(_IP_PROTO, default=pl.col("proto_name").cast(pl.UInt8, strict=False)),
        source=pl.lit(str(path)),
        first_record="record",
    )
    # Netflow records carry no TCP flags: only "replies or not" can be told.
    frame = frame.with_columns(
        conn_state=pl.when(pl.col("proto") == "icmp")
        .then(pl.lit("OTH"))
        .when(pl.col("resp_pkts") > 0)
        .then(pl.lit("SF"))
        .otherwise(pl.lit("S0"))
    )
    return _table("conn", frame).to_arrow()


# -- alerts ---------------------------------------------------------------------------------------


def _alerts(alerts: pl.DataFrame, path: Path, ctx: ReadContext) -> pa.Table:
    frame = alerts.with_columns(
        flow_uid="uid",
        uid=pl.Series(ctx.uids("E", alerts["record"].to_arrow())),
        file=pl.lit(str(path)),
        proto=pl.col("proto_name"),
        action=_m("$.alert.action"),
        signature_id=_m("$.alert.signature_id").cast(pl.Int64, strict=False),
        rev=_m("$.alert.rev").cast(pl.Int32, strict=False),
        signature=_m("$.alert.signature"),
        category=_m("$.alert.category"),
        severity=_m("$.alert.severity").cast(pl.Int16, strict=False),
        metadata=_m("$.alert.metadata"),
        source_ip=_m("$.alert.source.ip"),
        source_port=_m("$.alert.source.port").cast(pl.UInt16, strict=False),
        target_ip=_m("$.alert.target.ip"),
        target_port=_m("$.alert.target.port").cast(pl.UInt16, strict=False),
    )
    frame = _canonical(frame, ("source_ip", "target_ip"))
    return _table("eve_alert", frame).to_arrow()


# -- dns ------------------------------------------------------------------------------------------

QTYPES = {
    "A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "NULL": 10, "WKS": 11, "PTR": 12, "HINFO": 13,
    "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "NAPTR": 35, "DS": 43, "SSHFP": 44,
    "RRSIG": 46, "NSEC": 47, "DNSKEY": 48, "NSEC3": 50, "TLSA": 52, "SVCB": 64, "HTTPS": 65,
    "SPF": 99, "TKEY": 249, "TSIG": 250, "IXFR": 251, "AXFR": 252, "ANY": 255, "CAA": 257,
}  # fmt: skip
RCODES = {
    "NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5,
    "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10,
}  # fmt: skip


def _dns_events(dns: pl.DataFrame) -> pl.DataFrame:
    """One narrow row per EVE dns event: query or response, in any of EVE's three shapes."""
    kind = _m("$.dns.type")
    answers_list = _m("$.dns.answers")
    queries = _m("$.dns.queries")
    v1_answer = pl.struct(
        rrname=_m("$.dns.rrname"),
        rrtype=_m("$.dns.rrtype"),
        ttl=_m("$.dns.ttl"),
        rdata=_m("$.dns.rdata"),
    )
    frame = dns.with_columns(
        is_query=kind.is_in(["query", "request"]),
        trans_id=_m("$.dns.id").cast(pl.UInt16, strict=False),
        rrname=pl.coalesce(_m("$.dns.rrname"), queries.list.first().struct.field("rrname")),
        rrtype=pl.coalesce(_m("$.dns.rrtype"), queries.list.first().struct.field("rrtype")),
        rcode_name=_m("$.dns.rcode"),
        flags=_m("$.dns.flags").str.to_integer(base=16, strict=False),
        aa=_m("$.dns.aa"),
        tc=_m("$.dns.tc"),
        rd=_m("$.dns.rd"),
        ra=_m("$.dns.ra"),
        answers_list=answers_list,
        v1=pl.when(_m("$.dns.rdata").is_not_null()).then(pl.concat_list(v1_answer)),
    ).with_columns(
        rr=pl.coalesce("answers_list", "v1"),
    )
    return _ids(frame).select(
        "ts", "uid", "orig_h", "orig_p", "resp_h", "resp_p", "proto", "record", "is_query",
        "trans_id", "rrname", "rrtype", "rcode_name", "flags", "aa", "tc", "rd", "ra",
        answers=pl.col("rr").list.eval(pl.element().struct.field("rdata")).list.drop_nulls(),
        TTLs=pl.col("rr").list.eval(
            pl.when(pl.element().struct.field("rdata").is_not_null()).then(
                pl.element().struct.field("ttl").cast(pl.Float64, strict=False)
            )
        ).list.drop_nulls(),
    )  # fmt: skip


def _flag(bits: int, name: str) -> pl.Expr:
    from_bits = (pl.col("flags") & bits) != 0
    return pl.coalesce(from_bits, pl.col(name) == "true").fill_null(False)


def _dns_rows(events: pl.DataFrame, *, final: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Transactions with their answer (or waited long enough) as dns rows; the rest waits."""
    if events.height == 0:
        return pl.DataFrame(), events
    key = ["uid", "trans_id"]
    resp = ~pl.col("is_query")
    agg = (
        events.sort("record")
        .group_by(key, maintain_order=True)
        .agg(
            pl.col("ts").filter("is_query").min().alias("q_ts"),
            pl.col("ts").filter(resp).min().alias("r_ts"),
            pl.col("ts").max().alias("last_ts"),
            pl.col("ts").min().alias("first_ts"),
            pl.col("orig_h", "orig_p", "resp_h", "resp_p", "proto").first(),
            pl.col("rrname").filter("is_query").first().alias("q_name"),
            pl.col("rrname").first().alias("any_name"),
            pl.col("rrtype").filter("is_query").first().alias("q_type"),
            pl.col("rrtype").first().alias("any_type"),
            pl.col("rcode_name").filter(resp).first(),
            pl.col("flags").filter(resp).first(),
            *(pl.col(f).filter(resp).first() for f in ("aa", "tc", "rd", "ra")),
            pl.col("answers").filter(resp).explode().drop_nulls(),
            pl.col("TTLs").filter(resp).explode().drop_nulls(),
            pl.col("record").min().alias("first_record"),
            pl.col("record").max().alias("last_record"),
        )
    )
    # A transaction may go on in the next batch only if it reaches this batch's last line (EVE v1
    # writes one event per answer RR, consecutively); a query waits for its answer DNS_WAIT_S.
    horizon, last_line = agg["last_ts"].max(), events["record"].max()
    ready = pl.lit(True) if final else (
        (pl.col("r_ts").is_not_null() & (pl.col("last_record") < last_line))
        | (pl.col("last_ts") < pl.lit(horizon) - pl.duration(seconds=DNS_WAIT_S))
    )  # fmt: skip
    agg = agg.with_columns(ready=ready)
    done = agg.filter("ready")
    wait_keys = agg.filter(~pl.col("ready")).select(key)
    waiting = events.join(wait_keys, on=key, how="semi", nulls_equal=True)
    has_answer = pl.col("answers").list.len() > 0  # Zeek leaves both unset when none came
    rows = done.with_columns(
        # An event that is neither query nor answer (no dns.type) still has its own time.
        ts=pl.coalesce("q_ts", "r_ts", "first_ts"),
        rtt=(pl.col("r_ts") - pl.col("q_ts")).dt.total_microseconds() / 1e6,
        query=pl.coalesce("q_name", "any_name"),
        qtype_name=pl.coalesce("q_type", "any_type"),
        rcode=pl.col("rcode_name").replace_strict(RCODES, default=None),
        AA=_flag(0x0400, "aa"),
        TC=_flag(0x0200, "tc"),
        RD=_flag(0x0100, "rd"),
        RA=_flag(0x0080, "ra"),
        Z=pl.lit(0),
        rejected=pl.lit(False),
        answers=pl.when(has_answer).then("answers"),
        TTLs=pl.when(has_answer).then("TTLs"),
    ).with_columns(
        qtype=pl.col("qtype_name").replace_strict(
            QTYPES, default=pl.col("qtype_name").cast(pl.UInt16, strict=False)
        ),
    )
    return _table("dns", rows.sort("first_record")), waiting


# -- protocol events ------------------------------------------------------------------------------


def _http(part: pl.DataFrame) -> tuple[str, pl.DataFrame]:
    frame = _ids(part).with_columns(
        trans_depth=pl.col("tx_id").fill_null(0) + 1,
        method=_m("$.http.http_method"),
        host=_m("$.http.hostname"),
        uri=_m("$.http.url"),
        referrer=_m("$.http.http_refer"),
        version=_m("$.http.protocol").str.strip_prefix("HTTP/"),
        user_agent=_m("$.http.http_user_agent"),
        request_body_len=pl.lit(0),
        response_body_len=_m("$.http.length").cast(pl.UInt64, strict=False).fill_null(0),
        status_code=_m("$.http.status").cast(pl.UInt16, strict=False),
    )
    return "http", _table("http", frame)


_TLS_VERSIONS = {
    "TLS 1.3": "TLSv13", "TLS 1.2": "TLSv12", "TLS 1.1": "TLSv11", "TLSv1": "TLSv10",
    "TLS 1.0": "TLSv10", "SSLv3": "SSLv3", "SSLv2": "SSLv2", "UNDETERMINED": None,
}  # fmt: skip


def _tls(part: pl.DataFrame) -> tuple[str, pl.DataFrame]:
    version = _m("$.tls.version")
    frame = _ids(part).with_columns(
        version=version.replace(_TLS_VERSIONS),
        server_name=_m("$.tls.sni"),
        resumed=_m("$.tls.session_resumed") == "true",
        subject=_m("$.tls.subject"),
        issuer=_m("$.tls.issuerdn"),
        ja3=_m("$.tls.ja3.hash"),
        ja3s=_m("$.tls.ja3s.hash"),
        ja4=pl.coalesce(_m("$.tls.ja4.hash"), _m("$.tls.ja4")),
    )
    return "ssl", _table("ssl", frame)


def _ssh(part: pl.DataFrame) -> tuple[str, pl.DataFrame]:
    def banner(side: str) -> pl.Expr:
        return pl.format(
            "SSH-{}-{}", _m(f"$.ssh.{side}.proto_version"), _m(f"$.ssh.{side}.software_version")
        )

    proto = pl.coalesce(_m("$.ssh.client.proto_version"), _m("$.ssh.server.proto_version"))
    frame = _ids(part).with_columns(
        version=pl.when(proto.str.starts_with("1.99") | proto.str.starts_with("2"))
        .then(2)
        .when(proto.str.starts_with("1"))
        .then(1),
        client=banner("client"),
        server=banner("server"),
        hassh=_m("$.ssh.client.hassh.hash"),
        hasshServer=_m("$.ssh.server.hassh.hash"),
    )
    return "ssh", _table("ssh", frame)


def _json_list(path: str) -> pl.Expr:
    return _m(path)  # declared as a list of text in EVE_SHAPE


def _smtp(part: pl.DataFrame) -> tuple[str, pl.DataFrame]:
    frame = _ids(part).with_columns(
        trans_depth=pl.col("tx_id").fill_null(0) + 1,
        helo=_m("$.smtp.helo"),
        mailfrom=_m("$.smtp.mail_from"),
        rcptto=_json_list("$.smtp.rcpt_to"),
        **{"from": _m("$.email.from")},
        to=_json_list("$.email.to"),
        cc=_json_list("$.email.cc"),
        subject=_m("$.email.subject"),
        msg_id=_m("$.email.message_id"),
        date=_m("$.email.date"),
    )
    return "smtp", _table("smtp", frame)


_ANONYMOUS = ("anonymous", "ftp", "guest")


def _ftp(part: pl.DataFrame) -> tuple[str, pl.DataFrame]:
    command = _m("$.ftp.command")
    frame = (
        _ids(part)
        .with_columns(
            command=command,
            raw_arg=_m("$.ftp.command_data"),
            reply_code=_json_list("$.ftp.completion_code")
            .list.first()
            .cast(pl.UInt16, strict=False),
            reply_msg=_json_list("$.ftp.reply").list.first(),
            mode=_m("$.ftp.mode"),
            data_channel_resp_p=_m("$.ftp.dynamic_port").cast(pl.UInt16, strict=False),
        )
        .filter(pl.col("command").is_not_null())  # the server's greeting answers no command
        .sort("record")
        .with_columns(
            user=pl.when(pl.col("command").str.to_uppercase() == "USER")
            .then(pl.col("raw_arg"))
            .forward_fill()
            .over("uid")
        )
    )
    anonymous = pl.col("user").str.to_lowercase().is_in(_ANONYMOUS)
    is_pass = pl.col("command").str.to_uppercase() == "PASS"
    passive = pl.col("mode") == "passive"
    has_channel = pl.col("data_channel_resp_p").is_not_null()
    frame = frame.with_columns(
        arg=pl.when(is_pass).then(pl.lit(None)).otherwise("raw_arg"),
        password=pl.when(is_pass & anonymous).then("raw_arg"),
        data_channel_passive=pl.when(has_channel).then(passive),
        data_channel_orig_h=pl.when(has_channel).then(
            pl.when(passive).then("orig_h").otherwise("resp_h")
        ),
        data_channel_resp_h=pl.when(has_channel).then(
            pl.when(passive).then("resp_h").otherwise("orig_h")
        ),
    )
    return "ftp", _table("ftp", frame)


_EVENTS: dict[str, Callable[[pl.DataFrame], tuple[str, pl.DataFrame]] | None] = {
    "dns": None,  # transactions span events: see _dns_rows
    "http": _http,
    "tls": _tls,
    "ssh": _ssh,
    "smtp": _smtp,
    "ftp": _ftp,
}
