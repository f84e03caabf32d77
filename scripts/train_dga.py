"""Train the DGA classifier and measure it on DGA families it never saw.

    python scripts/train_dga.py [--data DIR] [--out PATH] [--no-write]

Reads the shared lists (``$MAMORI_DATA/dga-domains``, see SOURCES.md): one file per DGA family,
``dds-malicious-domains.csv`` (a family column) and two benign lists (OpenDNS top and random
domains). Prints, for each family F, the recall on F of a model trained *without* F
(leave-one-family-out) at a threshold set on training benign names, and the false-positive rate on
benign names held out of every fit; then trains on everything and writes
``src/mamori/detect/detectors/dga_model.json``.

A family that only resembles itself (a wordlist DGA, a pronounceable one) is exactly what a
score learned from other families can miss; the leave-one-out figures say which ones do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from mamori.detect.dga_features import (
    MODEL_PATH,
    NUMERIC,
    char_matrix,
    featurize,
    logits,
    main_label,
    numeric_features,
    registered_domain,
)

ROOT = Path(__file__).resolve().parent.parent
VERSION = 1
SPEC: dict = {"ngram_orders": [2, 3], "buckets": 4096, "numeric": list(NUMERIC)}
# Target false-positive rate on the training benign names; the held-out rate is checked against
# the 1 % goal, so the fit aims below it.
TRAIN_FPR = 0.004
PER_FAMILY = 4000  # names per family in a fit: enough for the n-grams, keeps a fit in seconds
BENIGN_HOLDOUT = 0.3  # share of benign names never used in any fit


def data_dir() -> Path:
    return Path(os.environ.get("MAMORI_DATA", ROOT.parent / "shared" / "data")) / "dga-domains"


def _labels(names: list[str] | pl.Series) -> np.ndarray:
    s = pl.Series("n", names, dtype=pl.String).str.strip_chars()
    s = s.filter(s.str.len_chars() > 0)
    return s.to_frame().select(main_label(registered_domain(pl.col("n")))).to_series().to_numpy()


def load(root: Path | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """DGA main labels per family (deduplicated) and the benign main labels.

    Families are grouped so a held-out family has no near-copy left in training: ``zeus`` (from
    the GameoverZeus generator) is merged with ``newgoz``; ``others_dga`` is a mix of unnamed
    families and is held out as one group."""
    root = root or data_dir()
    wl, help_ = root / "dga_wordlists", root / "help" / "1000domains"
    files = {
        "conficker": [wl / "conficker.txt", help_ / "conficker_1000.txt"],
        "cryptolocker": [wl / "cryptolocker.txt", help_ / "cryptolocker_1000.txt"],
        "pushdo": [wl / "pushdo.txt", help_ / "pushdo_1000.txt"],
        "ramdo": [wl / "ramdo.txt", help_ / "ramdo_1000.txt"],
        "tinba": [wl / "tinba.txt", help_ / "tinba_1000.txt"],
        "goz": [wl / "goz.txt"],
        "newgoz": [wl / "new_goz.txt", help_ / "zeus_1000.txt"],
        "others": [wl / "others_dga.txt"],
    }
    fams: dict[str, list[str]] = {
        f: [ln for p in ps for ln in p.read_text().splitlines()] for f, ps in files.items()
    }
    dds = pl.read_csv(wl / "dds-malicious-domains.csv", has_header=False, new_columns=["d", "f"])
    for fam, key in (("cryptolocker", "cryptolocker"), ("goz", "goz"), ("newgoz", "newgoz")):
        fams[fam] += dds.filter(pl.col("f") == key)["d"].to_list()
    dga = {f: np.unique(_labels(v).astype(str)) for f, v in fams.items()}
    benign_names = [
        ln
        for p in ("opendns-top-domains.txt", "opendns-random-domains.txt")
        for ln in (wl / p).read_text().splitlines()
    ]
    benign = np.unique(_labels(benign_names).astype(str))
    # A label on both sides (a few short ones) is dropped from the DGA side: benign wins.
    dga = {f: np.setdiff1d(v, benign) for f, v in dga.items()}
    return dga, benign


def split_benign(benign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A fixed split by hash of the label, so the held-out benign set is the same in every run."""
    h = pl.Series(benign).hash(seed=20260101).to_numpy() % 1000
    held = h < int(BENIGN_HOLDOUT * 1000)
    return benign[~held], benign[held]


@dataclass
class Fit:
    w_grams: np.ndarray
    w_num: np.ndarray
    bias: float
    threshold: float
    spec: dict


def fit(
    dga: dict[str, np.ndarray], benign: np.ndarray, per_family: int = PER_FAMILY, epochs: int = 300
) -> Fit:
    """L2-regularised logistic regression by full-batch Adam; classes weighted equally; the
    threshold is the training-benign score quantile giving ``TRAIN_FPR``."""
    rng = np.random.default_rng(7)
    pos = np.concatenate(
        [
            v if len(v) <= per_family else rng.choice(v, per_family, replace=False)
            for v in dga.values()
        ]
    )
    labels = np.concatenate([pos, benign])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(benign))])
    raw = numeric_features(char_matrix(labels))
    spec = dict(
        SPEC,
        numeric_mean=raw.mean(axis=0).round(6).tolist(),
        numeric_std=(raw.std(axis=0) + 1e-6).round(6).tolist(),
    )
    grams, num = featurize(labels, spec)
    sw = np.where(y == 1, 0.5 / len(pos), 0.5 / len(benign))
    # One parameter vector: n-gram weights, numeric weights, bias; Adam on the weighted log-loss.
    nb, nn = grams.width, num.shape[1]
    theta = np.zeros(nb + nn + 1)
    m1, m2 = np.zeros_like(theta), np.zeros_like(theta)
    lr, l2 = 0.05, 1e-6
    for t in range(1, epochs + 1):
        z = logits(grams, num, theta[:nb], theta[nb : nb + nn], theta[-1])
        g = (1.0 / (1.0 + np.exp(-z)) - y) * sw
        grad = np.concatenate([grams.tdot(g), num.T @ g, [g.sum()]])
        grad[:-1] += l2 * theta[:-1]
        m1 = 0.9 * m1 + 0.1 * grad
        m2 = 0.999 * m2 + 0.001 * grad * grad
        theta -= lr * (m1 / (1 - 0.9**t)) / (np.sqrt(m2 / (1 - 0.999**t)) + 1e-8)
    f = Fit(theta[:nb], theta[nb : nb + nn], float(theta[-1]), 0.0, spec)
    f.threshold = float(np.quantile(scores_of(f, benign), 1 - TRAIN_FPR))
    return f


def scores_of(f: Fit, labels: np.ndarray) -> np.ndarray:
    grams, num = featurize(labels, f.spec)
    return 1.0 / (1.0 + np.exp(-logits(grams, num, f.w_grams, f.w_num, f.bias)))


def leave_one_family_out(
    dga: dict[str, np.ndarray], benign: np.ndarray, per_family: int = PER_FAMILY, epochs: int = 300
) -> dict[str, dict[str, float]]:
    """Per held-out family: its recall, and the false-positive rate on held-out benign names, of a
    model trained on the other families and the training benign names."""
    train_b, test_b = split_benign(benign)
    out: dict[str, dict[str, float]] = {}
    for fam in dga:
        f = fit({k: v for k, v in dga.items() if k != fam}, train_b, per_family, epochs)
        out[fam] = {
            "recall": float((scores_of(f, dga[fam]) >= f.threshold).mean()),
            "fpr": float((scores_of(f, test_b) >= f.threshold).mean()),
            "n": len(dga[fam]),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    dga, benign = load(args.data)
    print(f"benign labels {len(benign)}; " + ", ".join(f"{k} {len(v)}" for k, v in dga.items()))
    lofo = leave_one_family_out(dga, benign)
    print(f"{'held-out family':<16}{'names':>8}{'recall':>9}{'FPR':>8}")
    for fam, r in lofo.items():
        print(f"{fam:<16}{r['n']:>8}{r['recall']:>9.4f}{r['fpr']:>8.4f}")
    train_b, test_b = split_benign(benign)
    final = fit(dga, train_b)
    fpr = float((scores_of(final, test_b) >= final.threshold).mean())
    print(f"final model: held-out benign FPR {fpr:.4f} at threshold {final.threshold:.4f}")
    model = {
        "version": VERSION,
        "kind": "logistic-regression",
        "input": "main label of the registered domain (see mamori.detect.dga_features)",
        "features": final.spec,
        "weights": {
            "ngrams": [float(f"{x:.4g}") for x in final.w_grams],
            "numeric": [float(f"{x:.6g}") for x in final.w_num],
        },
        "bias": round(final.bias, 6),
        "threshold": round(final.threshold, 6),
        "heldout": {"benign_fpr": round(fpr, 5), "leave_one_family_out": lofo},
        "data": "andrewaeva/DGA@00b49f06 (shared/data/dga-domains)",
    }
    if not args.no_write:
        args.out.write_text(json.dumps(model, separators=(",", ":")) + "\n")
        print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
