"""nftables for real: a firewall namespace drops a veth peer's traffic while a decision holds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from mamori.respond.decision import Action, Decision, enforcement_points
from mamori.respond.points.nftables import NftablesPoint
from mamori.respond.points.targets import PointError
from support.netns import Pair, connects_from, routed, sh, veth_pair


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with veth_pair("n") as p:
        yield p


@pytest.fixture
def point(pair: Pair) -> NftablesPoint:
    p = NftablesPoint(namespace=pair.fw)
    p.load([])
    return p


def _d(target: str, ttl: int = 600, action: Action = Action.block_ip, inc: str = "i") -> Decision:
    return Decision(action, target, "test", inc, 0.9, ttl)


def _elements(pair: Pair, set_name: str) -> set[str]:
    out = json.loads(sh("ip", "netns", "exec", pair.fw, "nft", "-j", "list", "set", "inet",
                        "mamori", set_name))  # fmt: skip
    found = set()
    for item in out["nftables"]:
        for el in item.get("set", {}).get("elem", []):
            val = el["elem"]["val"]
            found.add(f"{val['prefix']['addr']}/{val['prefix']['len']}" if isinstance(val, dict)
                      else val)  # fmt: skip
    return found


def test_registered() -> None:
    assert enforcement_points()["nftables"] is NftablesPoint


def test_block_drops_peer_and_removal_lets_it_through(pair: Pair, point: NftablesPoint) -> None:
    assert pair.connects(pair.fw4) and pair.connects(pair.fw6)
    block = _d(pair.peer4)
    point.apply([block], [])
    assert not pair.connects(pair.fw4)
    assert pair.connects(pair.fw6)  # only the blocked family's address is dropped
    point.apply([], [block])
    assert pair.connects(pair.fw4)


def test_ipv6_block(pair: Pair, point: NftablesPoint) -> None:
    block = _d("fd00:213::/120")
    point.apply([block], [])
    assert not pair.connects(pair.fw6)
    assert pair.connects(pair.fw4)
    point.apply([], [block])
    assert pair.connects(pair.fw6)


def test_kernel_expires_the_block_without_mamori(pair: Pair, point: NftablesPoint) -> None:
    point.apply([_d(pair.peer4, ttl=2)], [])
    assert not pair.connects(pair.fw4)
    time.sleep(2.5)
    assert pair.connects(pair.fw4)
    assert _elements(pair, "block4") == set()


def test_overlapping_blocks_load_and_the_narrow_one_outlives_the_wide(
    pair: Pair, point: NftablesPoint
) -> None:
    wide, narrow = _d("10.213.0.0/24", inc="w"), _d(pair.peer4, ttl=1200, inc="n")
    point.apply([wide], [])
    point.apply([narrow], [])  # the kernel would refuse an overlapping element; the layout cuts
    assert not pair.connects(pair.fw4)
    point.apply([], [wide])
    assert _elements(pair, "block4") == {pair.peer4}
    assert not pair.connects(pair.fw4)
    point.apply([], [narrow])
    assert pair.connects(pair.fw4)


def test_a_fresh_process_learns_the_kernel_state(pair: Pair, point: NftablesPoint) -> None:
    first = _d(pair.peer4, inc="a")
    point.apply([first], [])
    other = NftablesPoint(namespace=pair.fw)  # as a later `mamori respond expire` would be
    other.apply([_d("10.213.0.0/28", inc="b")], [])
    assert pair.peer4 in {e.split("/")[0] for e in _elements(pair, "block4")}
    other.apply([], [first])
    assert not pair.connects(pair.fw4)  # still inside the /28 decision
    assert pair.peer4 not in _elements(pair, "block4")


def test_rate_limit_polices_a_flood(pair: Pair, point: NftablesPoint) -> None:
    def dropped() -> int:
        out = json.loads(sh("ip", "netns", "exec", pair.fw, "nft", "-j", "list", "chain",
                            "inet", "mamori", "input"))  # fmt: skip
        total = 0
        for item in out["nftables"]:
            expr = item.get("rule", {}).get("expr", [])
            if any("set" in e for e in expr):
                total += sum(e["counter"]["packets"] for e in expr if "counter" in e)
        return total

    pair.flood(pair.fw4, 400)
    assert dropped() == 0  # nobody is policed yet
    point.apply([_d(pair.peer4, action=Action.rate_limit)], [])
    pair.flood(pair.fw4, 400)
    assert dropped() >= 200  # 400 datagrams against a 100-packet burst at 50/s
    # Policed, not blocked. The flood has just emptied the bucket, so a SYN sent at once can
    # meet it empty and be dropped like any datagram over the rate; the client's first SYN
    # retransmission comes a second later, by when 50 tokens have come back. Waiting a fifth of
    # a second (10 tokens) and allowing that retransmission keeps the test about the policy, not
    # about how soon after the flood the connect happens to start.
    time.sleep(0.2)
    assert pair.connects(pair.fw4, timeout=2.5)


def test_quarantine_fills_its_set(pair: Pair, point: NftablesPoint) -> None:
    point.apply([_d("10.213.0.9", action=Action.quarantine)], [])
    assert _elements(pair, "quarantine4") == {"10.213.0.9"}


def test_render_is_a_loadable_whole_table(pair: Pair) -> None:
    now = datetime.now(UTC)
    decisions = [_d(pair.peer4), _d("2001:db8::/64"), _d("10.0.0.0/8", action=Action.rate_limit)]
    script = NftablesPoint().render(decisions, now)
    sh("ip", "netns", "exec", pair.fw, "nft", "-f", "-", input=script)
    sh("ip", "netns", "exec", pair.fw, "nft", "-f", "-", input=script)  # reloads cleanly
    assert _elements(pair, "block4") == {pair.peer4}
    assert _elements(pair, "block6") == {"2001:db8::/64"}
    assert _elements(pair, "limit4") == {"10.0.0.0/8"}
    assert not pair.connects(pair.fw4)


def test_errors_name_the_point_and_reason(pair: Pair, point: NftablesPoint) -> None:
    with pytest.raises(PointError, match="not an IP address"):
        point.apply([_d("evil.example")], [])
    with pytest.raises(PointError, match="table name"):
        NftablesPoint(table="bad name")
    with pytest.raises(PointError, match="not loaded"):
        NftablesPoint(table="absent", namespace=pair.fw).apply([_d("192.0.2.1")], [])


def test_a_large_removal_keeps_what_stays(pair: Pair, point: NftablesPoint) -> None:
    many = [_d(f"10.214.{k // 250}.{k % 250 + 1}", inc=str(k)) for k in range(300)]
    keep = _d(pair.peer4, inc="keep")
    point.apply([*many, keep], [])
    assert len(_elements(pair, "block4")) == 301
    point.apply([], many)  # more than a quarter of the set: flushed and refilled in one go
    assert _elements(pair, "block4") == {pair.peer4}
    assert not pair.connects(pair.fw4)


def test_someone_else_editing_the_table_is_recovered(pair: Pair, point: NftablesPoint) -> None:
    block = _d(pair.peer4)
    point.apply([block], [])
    sh("ip", "netns", "exec", pair.fw, "nft", "delete", "element", "inet", "mamori", "block4",
       f"{{ {pair.peer4} }}")  # fmt: skip
    point.apply([_d("10.213.0.77", inc="x")], [block])  # its picture is stale: re-read, retry
    assert _elements(pair, "block4") == {"10.213.0.77"}


def test_quarantine_cuts_an_internal_host_off_from_other_networks() -> None:
    with routed("q") as r:
        point = NftablesPoint(namespace=r.fw)
        point.load([])
        assert connects_from(r.inside, r.outside4) and connects_from(r.outside, r.inside4)
        q = _d(r.inside4, action=Action.quarantine)
        point.apply([q], [])
        assert not connects_from(r.inside, r.outside4)  # it cannot reach out
        assert not connects_from(r.outside, r.inside4)  # nor be reached
        assert connects_from(r.inside, r.fw_in4)  # the firewall itself stays reachable to repair it
        point.apply([], [q])
        assert connects_from(r.inside, r.outside4) and connects_from(r.outside, r.inside4)
