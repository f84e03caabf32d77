"""DGA detection: the model's leave-one-family-out evaluation, a golden case, partition
properties, and silence on Zeek's benign traces (for both DNS detectors).

Honest status of the goal (recall >= 0.95 at <= 1 % FP per held-out family): the false-positive
side is met and asserted, per name and per client. Per name, goz is above 0.95 and
cryptolocker, tinba, newgoz near it, but conficker (a third of its names are 5-7 random
letters) and pushdo (pronounceable syllables) are far below; per client session (25 names, the
detector's 8-hit rule) every family but pushdo is >= 0.95. Both goals stay strict xfails (they must be
promoted to plain assertions the day a model meets them); floors a little under the measured
figures guard against regressions. docs/dga.md has the figures."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.detect.base import registered
from mamori.detect.dga_features import CharLM, char_matrix, load_model, score_labels
from mamori.detect.engine import run_detectors
from mamori.flows.pipeline import tables_of
from support.golden import assert_key_sufficient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dns_data import DNS

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "tests" / "cases" / "dga"
MODEL = ROOT / "src" / "mamori" / "detect" / "detectors" / "dga_model.json"
ID = "dns.dga"
# Per-name recall of a model trained without the family (the reduced fit below: 1000 names per
# family, 120 epochs, 10 000 held-out names scored); floors sit a little under what it measured
# (conficker 0.60, cryptolocker 0.89, pushdo 0.28, ramdo 0.84, tinba 0.91, goz 1.0,
# newgoz 0.52, others 0.81).
FLOORS = {"conficker": 0.5, "cryptolocker": 0.8, "pushdo": 0.2, "ramdo": 0.75, "tinba": 0.8,
          "goz": 0.95, "newgoz": 0.4, "others": 0.7}  # fmt: skip
# The same per client session of 25 distinct names (measured: >= 0.98, pushdo 0.42).
CLIENT_FLOORS = dict.fromkeys(FLOORS, 0.9) | {"pushdo": 0.3}


@pytest.fixture(scope="module")
def train() -> object:
    spec = importlib.util.spec_from_file_location("train_dga", ROOT / "scripts" / "train_dga.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["train_dga"] = mod  # dataclasses look their module up while being defined
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def lofo(train: object, data_dir: Path) -> dict[str, dict[str, float]]:
    dga, benign = train.load(data_dir / "dga-domains")  # type: ignore[attr-defined]
    return train.leave_one_family_out(  # type: ignore[attr-defined,no-any-return]
        dga, benign, per_family=1000, epochs=120, max_eval=10_000
    )


def test_heldout_benign_false_positive_rate_meets_goal(lofo: dict) -> None:  # type: ignore[type-arg]
    assert set(lofo) == set(FLOORS)
    for fam, r in lofo.items():
        assert r["fpr"] <= 0.01 and r["client_fpr"] <= 0.01, (fam, r)


def test_heldout_recall_does_not_regress(lofo: dict) -> None:  # type: ignore[type-arg]
    for fam, r in lofo.items():
        assert r["recall"] >= FLOORS[fam], (fam, r)
        assert r["client_recall"] >= CLIENT_FLOORS[fam], (fam, r)


@pytest.mark.xfail(
    strict=True, reason="per-name recall on unseen families is below 0.95 (docs/dga.md)"
)
def test_heldout_recall_meets_goal(lofo: dict) -> None:  # type: ignore[type-arg]
    assert all(r["recall"] >= 0.95 and r["fpr"] <= 0.01 for r in lofo.values()), lofo


@pytest.mark.xfail(strict=True, reason="pushdo per client session is below 0.95 (docs/dga.md)")
def test_heldout_client_recall_meets_goal(lofo: dict) -> None:  # type: ignore[type-arg]
    assert all(r["client_recall"] >= 0.95 and r["client_fpr"] <= 0.01 for r in lofo.values())


def test_contaminated_band_is_what_it_is_said_to_be(train: object, data_dir: Path) -> None:
    """The OpenDNS top-list ranks left out of the benign set hold far more Conficker-shaped
    names (letters only, 5-11 long, Conficker TLDs) than the rest of the list: the reason they
    are left out is a property of the data, not of the model."""
    top = (data_dir / "dga-domains" / "dga_wordlists" / "opendns-top-domains.txt").read_text()
    names = pl.Series(top.splitlines())
    shaped = names.str.contains(r"^[a-z]{5,11}\.(cc|cn|ws|biz|info)$").to_numpy()
    lo, hi = train.CONTAMINATED_TOP_RANKS  # type: ignore[attr-defined]
    inside = np.zeros(len(names), bool)
    inside[lo - 1 : hi] = True
    assert shaped[inside].mean() > 10 * shaped[~inside].mean(), (shaped[inside].mean(),)


def test_model_file_is_small_and_versioned() -> None:
    model = json.loads(MODEL.read_text())
    assert MODEL.stat().st_size < 1_000_000 and model["version"] >= 2
    assert model["features"]["buckets"] == len(model["weights"]["ngrams"])
    assert len(model["features"]["numeric"]) == len(model["weights"]["numeric"])
    assert model["features"]["lm"]["orders"] == [1, 2, 3, 4]


def test_char_lm_round_trips_through_json() -> None:
    lm = CharLM.train(np.array(["google", "wikipedia", "bbc", "example-shop", "news24"]))
    again = CharLM.from_json(json.loads(json.dumps(lm.to_json())))
    chars = char_matrix(np.array(["goggle", "xqzvkw", "news", ""]))
    (a, va), (b, vb) = lm.logprob(chars), again.logprob(chars)
    assert np.array_equal(va, vb) and np.allclose(a, b)
    # A label made of the training names' n-grams is likelier than random letters.
    per_char = (np.where(va, a, 0).sum(axis=1) / np.maximum(va.sum(axis=1), 1))[:2]
    assert per_char[0] > per_char[1]


LABELS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=0, max_size=70)


@settings(max_examples=40, deadline=None)
@given(labels=st.lists(LABELS, min_size=1, max_size=20), data=st.data())
def test_a_label_scores_the_same_alone_or_in_any_batch(
    labels: list[str], data: st.DataObject
) -> None:
    """Scores are vectorised over a batch; a label's score must not depend on its neighbours."""
    model = load_model()
    batch = score_labels(np.array(labels, dtype=object), model)
    i = data.draw(st.integers(0, len(labels) - 1))
    alone = score_labels(np.array([labels[i]], dtype=object), model)
    assert np.all((batch >= 0) & (batch <= 1)) and np.isclose(batch[i], alone[0])


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
