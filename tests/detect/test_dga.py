"""DGA detection: the model's leave-one-family-out evaluation, a golden case, partition
properties, and silence on Zeek's benign traces (for both DNS detectors).

Honest status of the goal (recall >= 0.95 at <= 1 % FP per held-out family): the false-positive
side is met and asserted; the per-name recall side is NOT met for any family by this small
linear model (docs/dga.md has the figures), so it is a strict xfail: it starts failing (and must
be promoted to a plain assertion) the day a better model meets it. Floors below the measured
recalls guard against regressions."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.detect.base import registered
from mamori.detect.engine import run_detectors
from mamori.flows.pipeline import tables_of
from support.golden import assert_key_sufficient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dns_data import DNS

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "tests" / "cases" / "dga"
ID = "dns.dga"
# Recall of a model trained without the family (reduced fit used here: 1500 names per family,
# 150 epochs); floors sit a little under what that fit measured.
FLOORS = {"conficker": 0.15, "cryptolocker": 0.4, "pushdo": 0.0, "ramdo": 0.1, "tinba": 0.3,
          "goz": 0.6, "newgoz": 0.05, "others": 0.3}  # fmt: skip


@pytest.fixture(scope="module")
def lofo(data_dir: Path) -> dict[str, dict[str, float]]:
    spec = importlib.util.spec_from_file_location("train_dga", ROOT / "scripts" / "train_dga.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["train_dga"] = mod  # dataclasses look their module up while being defined
    spec.loader.exec_module(mod)
    dga, benign = mod.load(data_dir / "dga-domains")
    return mod.leave_one_family_out(dga, benign, per_family=1500, epochs=150)


def test_heldout_benign_false_positive_rate_meets_goal(lofo: dict) -> None:  # type: ignore[type-arg]
    assert set(lofo) == set(FLOORS)
    for fam, r in lofo.items():
        assert r["fpr"] <= 0.01, (fam, r)


def test_heldout_recall_does_not_regress(lofo: dict) -> None:  # type: ignore[type-arg]
    for fam, r in lofo.items():
        assert r["recall"] >= FLOORS[fam], (fam, r)


@pytest.mark.xfail(
    strict=True, reason="per-name recall on unseen families is below 0.95 (docs/dga.md)"
)
def test_heldout_recall_meets_goal(lofo: dict) -> None:  # type: ignore[type-arg]
    assert all(r["recall"] >= 0.95 for r in lofo.values()), lofo


def test_model_file_is_small_and_versioned() -> None:
    path = ROOT / "src" / "mamori" / "detect" / "detectors" / "dga_model.json"
    model = json.loads(path.read_text())
    assert path.stat().st_size < 200_000 and model["version"] >= 1
    assert model["features"]["buckets"] == len(model["weights"]["ngrams"])


def golden() -> pl.DataFrame:
    f = pl.read_ndjson(CASE / "input.jsonl")
    return f.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC")).cast(DNS)  # type: ignore[arg-type]


def detect(dns: pl.DataFrame) -> pl.DataFrame:
    return registered()[ID].run({"dns": dns.lazy()}).collect().sort("key", "first_seen")


def test_golden_case() -> None:
    """A bot's NXDOMAIN DGA names alert; browsing and a client with two odd names do not."""
    got = run_detectors({"dns": golden().lazy()}, only=[ID]).alerts.sort("src")
    cols = ["src", "techniques", "count", "severity", "summary", "evidence"]
    assert got.select(cols).to_dicts() == json.loads((CASE / "expected.json").read_text())


def test_each_client_alone_gives_its_own_alerts() -> None:
    assert_key_sufficient(detect, golden(), "orig_h")


SLOW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(data=st.data())
def test_row_order_does_not_matter(data: st.DataObject) -> None:
    whole = golden()
    order = data.draw(st.permutations(list(range(whole.height))))
    assert detect(whole[order]).equals(detect(whole))


@SLOW
@given(sites=st.lists(st.sampled_from(["www.google.com", "news.bbc.co.uk", "github.com",
                                       "www.wikipedia.org", "mail.yahoo.co.jp"]), max_size=30))  # fmt: skip
def test_benign_clients_change_nothing(sites: list[str]) -> None:
    whole = golden()
    t0 = whole["ts"].min()
    extra = pl.DataFrame(
        {"ts": [t0] * len(sites), "uid": [f"B{i}" for i in range(len(sites))],
         "orig_h": "10.0.0.200", "resp_h": "192.0.2.53", "query": sites, "qtype_name": "A",
         "rcode_name": "NOERROR"},
        schema=DNS,
    )  # fmt: skip
    assert detect(pl.concat([whole, extra])).equals(detect(whole))


def test_benign_zeek_traces_raise_no_high_dns_alert(data_dir: Path) -> None:
    """Every benign Zeek trace: no high-severity alert from dns.dga or dns.tunnel."""
    with (data_dir / "MANIFEST.tsv").open(newline="") as fh:
        benign = [
            r[0] for r in csv.reader(fh, delimiter="\t")
            if len(r) >= 4 and r[0].startswith("zeek-btest/Traces")
            and r[0].endswith((".pcap", ".pcapng", ".trace")) and r[3] == "benign-or-protocol-sample"
        ]  # fmt: skip
    assert len(benign) > 50
    loud = {}
    for capture in benign:
        tables, _ = tables_of([data_dir / capture])
        if "dns" not in tables:
            continue
        got = run_detectors(
            {"dns": pl.from_arrow(tables["dns"]).lazy()},  # type: ignore[union-attr]
            only=[ID, "dns.tunnel"],
        ).alerts
        if got.height:
            loud[capture] = got.select("detector", "severity", "summary").to_dicts()
    assert not {c: a for c, a in loud.items() if any(x["severity"] == "high" for x in a)}, loud
