"""RPZ for real: unbound loads the zone and answers blocked and sinkholed names as decided."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.respond.decision import Action, Decision, enforcement_points
from mamori.respond.points.rpz import RpzPoint, _parse
from mamori.respond.points.targets import PointError
from support.unbound import REAL, Unbound, unbound

NXDOMAIN = 3
SINK = "192.0.2.53"


def _d(
    target: str, action: Action = Action.block_domain, ttl: int = 600, inc: str = "i"
) -> Decision:
    return Decision(action, target, "test", inc, 0.9, ttl)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Unbound]:
    empty = RpzPoint().render([], datetime.now(UTC))
    with unbound(tmp_path_factory.mktemp("unbound"), empty) as u:
        yield u


@pytest.fixture
def point(server: Unbound) -> RpzPoint:
    p = RpzPoint(
        path=server.zonefile,
        sinkhole4=SINK,
        passthru=["partner.test"],
        reload=server.reload_command(),
    )
    server.zonefile.write_text(p.render([], datetime.now(UTC)))
    p.apply([], [])  # reload the empty zone
    return p


def _serial(path: Path) -> int:
    m = re.search(r"IN SOA \S+ \S+ (\d+)", path.read_text())
    assert m
    return int(m.group(1))


def test_registered() -> None:
    assert enforcement_points()["rpz"] is RpzPoint


def test_unbound_answers_as_the_policy_says(server: Unbound, point: RpzPoint) -> None:
    for name, addr in REAL.items():  # nothing rewritten before any decision
        assert server.query(name).addresses == [addr]
    point.apply([_d("evil.test"), _d("c2.test", Action.sinkhole), _d("partner.test")], [])
    assert server.query("evil.test").rcode == NXDOMAIN
    assert server.query("www.evil.test").rcode == NXDOMAIN  # subdomains too
    assert server.query("c2.test").addresses == [SINK]
    assert server.query("x.c2.test").addresses == [SINK]
    assert server.query("partner.test").addresses == [REAL["partner.test"]]  # passthru
    assert server.query("ok.test").addresses == [REAL["ok.test"]]  # not listed, not rewritten


def test_removal_and_expiry_restore_the_real_answer(server: Unbound, point: RpzPoint) -> None:
    block, short = _d("evil.test"), _d("ok.test", ttl=1)
    point.apply([block, short], [])
    assert server.query("evil.test").rcode == NXDOMAIN
    assert server.query("ok.test").rcode == NXDOMAIN
    first = _serial(server.zonefile)
    point.apply([], [block])
    assert _serial(server.zonefile) > first
    assert server.query("evil.test").addresses == [REAL["evil.test"]]
    assert server.query("ok.test").rcode == NXDOMAIN
    time.sleep(1.5)
    point.apply([], [])  # an expiry pass: the expired rule leaves the zone
    assert server.query("ok.test").addresses == [REAL["ok.test"]]


def test_a_rule_stays_while_any_decision_holds_it(server: Unbound, point: RpzPoint) -> None:
    one, two = _d("evil.test", inc="one"), _d("evil.test", inc="two")
    point.apply([one, two], [])
    fresh = RpzPoint(path=server.zonefile, sinkhole4=SINK, reload=server.reload_command())
    fresh.apply([], [one])  # another process, knowing only the zone file
    assert server.query("evil.test").rcode == NXDOMAIN
    fresh.apply([], [two])
    assert server.query("evil.test").addresses == [REAL["evil.test"]]


def test_serial_increases_even_within_one_second() -> None:
    p = RpzPoint()
    now = datetime.now(UTC)
    serials = [int(re.search(r"IN SOA \S+ \S+ (\d+)", p.render([], now)).group(1)) for _ in "abc"]
    assert serials == sorted(set(serials))


def test_bad_input_is_named() -> None:
    with pytest.raises(PointError, match="not a domain"):
        RpzPoint().render([_d("not a name")], datetime.now(UTC))
    with pytest.raises(PointError, match="no sinkhole"):
        RpzPoint().render([_d("c2.test", Action.sinkhole)], datetime.now(UTC))
    with pytest.raises(PointError, match="IPv4"):
        RpzPoint(sinkhole4="2001:db8::1")
    with pytest.raises(PointError, match="path"):
        RpzPoint().apply([_d("a.test")], [])


label = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20)
tld = st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=6)  # so a name is never an IP
names = st.builds(lambda ls, t: ".".join([*ls, t]), st.lists(label, min_size=1, max_size=3), tld)


@given(st.lists(st.tuples(names, st.booleans(), st.integers(1, 10**6)), max_size=8))
def test_the_zone_file_round_trips_every_decision(items) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    decisions = [
        Decision(
            Action.sinkhole if sink else Action.block_domain, n, "r", f"i{k}", 0.9, ttl, created=now
        )
        for k, (n, sink, ttl) in enumerate(items)
    ]
    text = RpzPoint(sinkhole4=SINK).render(decisions, now)
    held = {(e.name.removeprefix("*."), e.owner, e.expires) for e in _parse(text, Path("z"))}
    nx = {d.target for d in decisions if d.action is Action.block_domain}
    for d in decisions:
        if d.action is Action.sinkhole and d.target in nx:
            continue  # the NXDOMAIN rule for the same name wins
        assert (d.target, d.id, d.expires) in held
