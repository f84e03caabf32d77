"""DGA detection: the model's leave-one-family-out evaluation, a golden case, partition
properties, the session rule, and silence on Zeek's benign traces (for both DNS detectors).

Honest status of the goal (recall >= 0.95 at <= 1 % FP per held-out family): per client session
(25 names; the detector's rule: 8 hits, or the session mean of the names' clipped logits over
the model's threshold for that many names) it is met for every family and asserted, and the
false-positive side per name too. Per name, goz is above 0.95 and cryptolocker, tinba, newgoz
near it, but conficker (a third of its names are 5-7 random letters) and pushdo (pronounceable
syllables) are far below: that goal stays a strict xfail (to be promoted the day a model meets
it); floors a little under the measured figures guard against regressions. docs/dga.md has
the figures."""

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
from mamori.detect.detectors.dga import DgaParams
from mamori.detect.dga_features import (
    MAX_LEN,
    CharLM,
    char_matrix,
    dense_features,
    load_model,
    ngram_buckets,
    query_domains,
    score_labels,
    session_threshold_at,
    session_threshold_expr,
)
from mamori.detect.engine import run_detectors
from mamori.detect.windows import sharing
from mamori.flows.pipeline import tables_of
from support.golden import assert_key_sufficient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dns_data import DNS, frame

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "tests" / "cases" / "dga"
MODEL = ROOT / "src" / "mamori" / "detect" / "detectors" / "dga_model.json"
ID = "dns.dga"
# Per-name recall of a model trained without the family (the reduced fit below: 1000 names per
# family, 120 epochs, 10 000 held-out names scored, session thresholds from 10 000 draws);
# floors sit a little under what it measured (conficker 0.61, cryptolocker 0.91, pushdo 0.29,
# ramdo 0.86, tinba 0.91, goz 1.0, newgoz 0.64, others 0.82).
FLOORS = {"conficker": 0.5, "cryptolocker": 0.8, "pushdo": 0.2, "ramdo": 0.75, "tinba": 0.8,
          "goz": 0.95, "newgoz": 0.4, "others": 0.7}  # fmt: skip
# The count rule alone per client session of 25 distinct names (measured: 1.0, pushdo 0.48);
# the full rule must meet the goal (test_heldout_client_recall_meets_goal).
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
        dga, benign, per_family=1000, epochs=120, max_eval=10_000, session_draws=10_000
    )


def test_heldout_benign_false_positive_rate_meets_goal(lofo: dict) -> None:  # type: ignore[type-arg]
    assert set(lofo) == set(FLOORS)
    for fam, r in lofo.items():
        assert r["fpr"] <= 0.01 and r["client_fpr"] <= 0.01, (fam, r)


def test_heldout_recall_does_not_regress(lofo: dict) -> None:  # type: ignore[type-arg]
    for fam, r in lofo.items():
        assert r["recall"] >= FLOORS[fam], (fam, r)
        assert r["count_client_recall"] >= CLIENT_FLOORS[fam], (fam, r)


@pytest.mark.xfail(
    strict=True, reason="per-name recall on unseen families is below 0.95 (docs/dga.md)"
)
def test_heldout_recall_meets_goal(lofo: dict) -> None:  # type: ignore[type-arg]
    assert all(r["recall"] >= 0.95 and r["fpr"] <= 0.01 for r in lofo.values()), lofo


def test_heldout_client_recall_meets_goal(lofo: dict) -> None:  # type: ignore[type-arg]
    """The detector's rule (count or session mean) per client session of 25 names: >= 0.95 of
    every unseen family's sessions at <= 1 % of held-out benign sessions; and still >= 0.9 when
    each client mixes its 25 DGA names with 75 ordinary ones (the mean is diluted)."""
    for fam, r in lofo.items():
        assert r["client_recall"] >= 0.95 and r["client_fpr"] <= 0.01, (fam, r)
        assert r["count_client_fpr"] <= 0.01 and r["mixed_client_recall"] >= 0.9, (fam, r)


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


def test_session_thresholds_shrink_with_session_size() -> None:
    """The mean of n benign names varies less as n grows, so the session threshold falls (up to
    bootstrap noise), and stays above the benign names' typical logit."""
    session = load_model()["session"]
    cut = np.asarray(session["thresholds"])
    assert session["min_n"] == DgaParams().min_session_domains and len(cut) > 20
    assert cut[0] > cut[-1] and np.all(np.diff(cut) < 0.05), cut


@settings(max_examples=60, deadline=None)
@given(n=st.lists(st.integers(0, 200), min_size=1, max_size=30))
def test_session_threshold_is_the_same_in_numpy_and_polars(n: list[int]) -> None:
    session = load_model()["session"]
    got = pl.DataFrame({"n": n}).select(t=session_threshold_expr(pl.col("n"), session))["t"]
    assert np.array_equal(got.to_numpy(), session_threshold_at(session, np.asarray(n)))


def test_session_rule_flags_a_pronounceable_dga_client(data_dir: Path) -> None:
    """25 pushdo names that each score *under* the per-name threshold (the count rule cannot
    see them) alert as a session; 25 benign names from the held-out part of the benign list
    do not, nor do the pushdo names with the session rule turned off."""
    model = load_model()
    root = data_dir / "dga-domains" / "dga_wordlists"
    pushdo = np.array((root / "pushdo.txt").read_text().split()[:2000])
    quiet = pushdo[
        score_labels(np.array([d.split(".")[0] for d in pushdo]), model) < model["threshold"]
    ]
    benign = np.array((root / "opendns-random-domains.txt").read_text().split())
    held = pl.Series(benign).hash(seed=20260101).to_numpy() % 1000 < 300  # train_dga's split
    benign = benign[held][:25]
    dns = pl.concat(
        [frame(list(quiet[:25]), "10.0.0.7", gap_s=60), frame(list(benign), "10.0.0.8", gap_s=60)]
    )
    got = detect(dns)
    assert got["src"].to_list() == ["10.0.0.7"], got
    assert "mean DGA logit" in got["summary"][0]
    off = registered()[ID].run({"dns": dns.lazy()}, DgaParams(min_session_domains=0)).collect()
    assert off.height == 0


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


# Property tests that also take the module's shipped_lm fixture (the same LM for every example).
with_lm = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def dense_reference(lm: CharLM) -> np.ndarray:
    """The LM's log P(last | others) for every 4-gram code, written the plain way: each order's
    counts spread into a dense array, a context's count its row sum."""
    radix = 40
    g = np.arange(radix**4, dtype=np.int64)
    p = np.full(len(g), 1e-4)
    for k, lam, keys, cnt in zip(lm.orders, lm.lambdas, lm.codes, lm.counts, strict=True):
        num = np.zeros(radix**k)
        num[keys] = cnt
        q = g % (radix**k)
        if k == 1:
            p += lam * num[q] / max(float(cnt.sum()), 1.0)
            continue
        d = num.reshape(-1, radix).sum(axis=1)[q // radix]
        p += lam * np.where(d > 0, num[q] / np.maximum(d, 1.0), 0.0)
    return np.log(p)


@pytest.fixture(scope="module")
def shipped_lm() -> CharLM:
    """The shipped model's LM, its dense table built (as training and a large day use it)."""
    lm = CharLM.from_json(json.loads(MODEL.read_text())["features"]["lm"])
    assert np.array_equal(lm._table, dense_reference(lm))
    return lm


def test_lm_table_is_the_plain_count_formula() -> None:
    lm = CharLM.train(np.array(["google", "wikipedia", "bbc", "example-shop", "news24", "a-b"]))
    assert np.array_equal(lm._table, dense_reference(lm))


@with_lm
@given(labels=st.lists(LABELS, min_size=1, max_size=30))
def test_lm_scores_distinct_ngrams_exactly_as_its_table(
    shipped_lm: CharLM, labels: list[str]
) -> None:
    """A few labels are scored from their distinct n-grams alone, many from the whole table:
    the two must agree to the bit, or a name's score would depend on the size of its day."""
    chars = char_matrix(np.array(labels, dtype=object))
    fresh = CharLM(shipped_lm.orders, shipped_lm.lambdas, shipped_lm.codes, shipped_lm.counts)
    (a, va), (b, vb) = fresh.logprob(chars), shipped_lm.logprob(chars)
    assert "_table" not in fresh.__dict__  # the distinct n-grams' path was taken
    assert np.array_equal(va, vb) and np.array_equal(a, b)


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


@with_lm
@given(labels=st.lists(LABELS, min_size=1, max_size=20))
def test_a_narrow_character_matrix_gives_the_full_width_features(
    shipped_lm: CharLM, labels: list[str]
) -> None:
    """Labels are laid out only as wide as the longest (rounded to 8k - 1): padding adds
    nothing to any feature, and the LM's sums see the same partial sums, to the bit."""
    spec = load_model()["features"]
    chars = char_matrix(np.array(labels, dtype=object))
    assert (chars.shape[1] - 1) % 8 == 0 and chars.shape[1] <= MAX_LEN + 2
    full = np.pad(chars, ((0, 0), (0, MAX_LEN + 2 - chars.shape[1])))
    narrow_d = dense_features(chars, shipped_lm, spec["lm_len_ref"])
    assert np.array_equal(narrow_d, dense_features(full, shipped_lm, spec["lm_len_ref"]))
    a = ngram_buckets(chars, tuple(spec["ngram_orders"]), int(spec["buckets"]))
    b = ngram_buckets(full, tuple(spec["ngram_orders"]), int(spec["buckets"]))
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.cols, b.cols)
    assert np.array_equal(a.vals, b.vals)


def test_query_domains_are_computed_once_per_run_and_match_each_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mamori.detect.dga_features as features

    built = []
    plain = features.registered_domain
    monkeypatch.setattr(features, "registered_domain", lambda e: built.append(1) or plain(e))
    dns = pl.DataFrame(
        {"query": ["A.Example.COM.", "a.example.com", None, "x.y.co.uk", "printer.local", "bare"]}
    ).lazy()
    got = query_domains(dns).collect().sort("query")
    assert got.rows() == [
        ("A.Example.COM.", "a.example.com", "example.com"),
        ("a.example.com", "a.example.com", "example.com"),
        ("x.y.co.uk", "x.y.co.uk", "y.co.uk"),
    ]
    with sharing():  # as the engine runs dns.dga and dns.tunnel over one dns frame
        first = query_domains(dns)
        built.clear()
        assert query_domains(dns).collect().equals(first.collect()) and not built
        other = pl.DataFrame({"query": ["b.example.org"]}).lazy()
        assert query_domains(other).collect()["domain"].to_list() == ["example.org"]
        assert built == [1]


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
