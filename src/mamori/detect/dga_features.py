"""Features and scoring of the DGA classifier, shared by the training script and the detector.

One module computes the features for both, so a model can never be scored with features other
than the ones it was trained on. Everything is vectorised over whole arrays of names (NumPy): a
busy resolver sees millions of names an hour and a per-name Python loop would be the bottleneck.

The scored string is the *main label* of the registered domain (``"google"`` for
``mail.google.com``; ``"bbc"`` for ``news.bbc.co.uk``): DGAs choose that label, while the public
suffix is picked from a short list and the subdomains belong to whoever runs the zone. Leaving the
suffix out also keeps the model from learning "``.ru`` is bad" from families that all use one TLD.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mamori.detect.windows import shared

MODEL_PATH = Path(__file__).resolve().parent / "detectors" / "dga_model.json"

# Characters of a hostname label; anything else (IDN escapes, underscores) maps to one "other"
# code so odd bytes cannot index out of the table.
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-"
_BOUNDARY = len(ALPHABET) + 1  # "^"/"$" around the label, so prefixes and suffixes count
_OTHER = len(ALPHABET) + 2
_RADIX = len(ALPHABET) + 3
MAX_LEN = 63  # DNS label limit
# Label lengths up to which ``score_labels`` scores a group of labels together (widths 15, 31, 63).
_SCORE_WIDTHS = (15, 31)
VOWELS = "aeiou"

# Second-level public suffixes under which a registration is three labels deep. A short list of
# the common ones (not the full Public Suffix List: that would be a dependency and a moving
# target); a miss only means a name is scored on "co" instead of the owner's label.
TWO_LEVEL_SUFFIXES: tuple[str, ...] = tuple(
    f"{sld}.{cc}"
    for cc in ("uk", "jp", "kr", "nz", "za", "il", "id", "th", "in")
    for sld in ("co", "ac", "or", "ne", "go", "gov", "org", "net", "ltd", "plc", "gv", "nic")
) + tuple(
    f"{sld}.{cc}"
    for cc in ("cn", "au", "br", "tw", "hk", "mx", "ar", "tr", "ru", "ua", "sg", "my", "pk", "eg")
    for sld in ("com", "net", "org", "edu", "gov", "ac", "co")
)

NUMERIC = (
    "length",
    "entropy",
    "vowel_ratio",
    "consonant_ratio",
    "digit_ratio",
    "hyphens",
    "max_consonant_run",
    "distinct_ratio",
    "digit_letter_switches",
)
# How plausible the label is under a character language model of *benign* names (see
# :class:`CharLM`): the only features that do not depend on which DGA families were in training,
# so they are what carries the score to a family the model never saw.
# Upper ends of the label-length buckets: how unlikely a label must look depends on its length
# (five random letters are as likely as many real short names, eleven are not), so the mean
# log-probability also enters once per bucket, with the bucket itself.
LENGTH_BUCKETS = (5, 6, 7, 8, 10, 13, MAX_LEN)
LM_FEATURES = (
    "lm_mean_logp",
    "lm_min_logp",
    "lm_rare_share",
    "lm_total_logp",
    *(f"len_le{b}" for b in LENGTH_BUCKETS),
    *(f"lm_mean_logp_len_le{b}" for b in LENGTH_BUCKETS),
    "lm_mean_logp_z_len",
)
# A character whose interpolated probability is below this is "rare" for lm_rare_share.
LM_RARE = 0.01
# The session rule averages each of a client's names' logit clipped to +-SESSION_CLIP: one
# extreme name (a benign hex token, a very long random one) must not decide a whole session.
SESSION_CLIP = 5.0


@dataclass(frozen=True)
class Sparse:
    """A sparse (n, cols) matrix in coordinate form; the two products training and scoring need
    are ``np.bincount`` calls (no SciPy dependency)."""

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    n: int
    width: int

    def dot(self, w: np.ndarray) -> np.ndarray:
        """``X @ w``."""
        return np.bincount(self.rows, weights=self.vals * w[self.cols], minlength=self.n)

    def tdot(self, g: np.ndarray) -> np.ndarray:
        """``X.T @ g``."""
        return np.bincount(self.cols, weights=self.vals * g[self.rows], minlength=self.width)


def registered_domain(name: pl.Expr) -> pl.Expr:
    """The registered domain of a query name: its last two labels, or three under a known
    two-level public suffix (``co.uk``). Lower-cased, trailing dot dropped."""
    labels = name.str.to_lowercase().str.strip_chars_end(".").str.split(".")
    last2 = labels.list.slice(-2, 2).list.join(".")
    last3 = labels.list.slice(-3, 3).list.join(".")
    deep = last2.is_in(TWO_LEVEL_SUFFIXES) & (labels.list.len() >= 3)
    return pl.when(deep).then(last3).otherwise(last2)


# Names that never leave the site or are not registrations at all: reverse lookups, mDNS, the
# usual private "TLDs". Their "registered domains" are not anyone's.
LOCAL_SUFFIXES = ("arpa", "local", "localdomain", "lan", "home", "internal", "corp", "localhost")


def query_domains(dns: pl.LazyFrame) -> pl.LazyFrame:
    """Each distinct query name of ``dns`` under a registered domain (not a bare label, not a
    local suffix), with its lower-cased ``name`` (no trailing dot) and ``domain``, to be joined
    back on ``query``.

    Per distinct name, not per query: a day's DNS asks the same names again and again (398 k
    distinct of 1.46 M queries on bench_detect's day, 123 of 97 k on the ingest workload), and a
    registered domain is list work on text. Computed once per engine run for every detector that
    asks (:func:`mamori.detect.windows.shared`)."""

    def build() -> pl.LazyFrame:
        domain = pl.col("domain")
        return (
            dns.select("query")
            .drop_nulls()
            .unique()
            .with_columns(
                name=pl.col("query").str.to_lowercase().str.strip_chars_end("."),
                domain=registered_domain(pl.col("query")),
            )
            .filter(
                domain.str.contains(".", literal=True)
                & ~domain.str.split(".").list.last().is_in(LOCAL_SUFFIXES)
            )
        )

    return shared("dns.query_domains", (dns,), None, build)


def main_label(domain: pl.Expr) -> pl.Expr:
    """The label the owner chose: the registered domain without its public suffix (a bare
    label, as some DGA lists give, is its own main label)."""
    return domain.str.split(".").list.first()


def char_matrix(labels: np.ndarray) -> np.ndarray:
    """Labels as an (n, width + 2) matrix of character codes with boundary codes around each
    label and 0 as padding (vectorised through a fixed-width byte array, no per-label loop).

    ``width`` is the longest label's length rounded up to 8k - 1 (7, 15, ..., MAX_LEN): every
    feature is a sum over a row's positions, and padding only adds zeros, so a narrower matrix
    gives the same features for a tenth of the work on a day's short labels. Rounded so that
    the positions the character LM sums (width + 1) are a multiple of 8: NumPy's pairwise sum
    then adds each position into the same partial sum whatever the width, and the sum is the
    same to the bit as over the full width."""
    clean = (
        pl.Series(labels, dtype=pl.String)
        .fill_null("")
        .str.to_lowercase()
        .str.replace_all(r"[^a-z0-9\-]", "_")
        .str.slice(0, MAX_LEN)
    )
    longest = int(clean.str.len_bytes().max() or 0)
    width = min(MAX_LEN, (longest // 8 + 1) * 8 - 1)
    raw = np.asarray(clean.to_numpy().astype(f"S{width}"))
    b = raw.view(np.uint8).reshape(len(raw), width) if len(raw) else np.zeros((0, width), np.uint8)
    lut = np.full(256, _OTHER, dtype=np.int64)
    lut[0] = -1  # padding
    for i, ch in enumerate(ALPHABET):
        lut[ord(ch)] = i + 1
    codes = lut[b]  # 1..len(ALPHABET) the alphabet, _OTHER anything else, -1 padding
    lengths = (codes >= 0).sum(axis=1)
    out = np.zeros((len(raw), width + 2), dtype=np.int64)
    out[:, 1 : width + 1] = np.where(codes >= 0, codes, 0)
    out[:, 0] = _BOUNDARY
    out[np.arange(len(raw)), lengths + 1] = _BOUNDARY
    return out


def ngram_buckets(chars: np.ndarray, orders: tuple[int, ...], buckets: int) -> Sparse:
    """Hashed character n-gram frequencies as a sparse matrix: rows, bucket columns and values,
    each row's values divided by its n-gram count (a term frequency, so long names do not score
    higher merely for being long). A name has a few dozen n-grams among thousands of buckets, so
    a dense matrix would be almost all zeros and far slower to train on."""
    n, width = chars.shape
    rows_l, cols_l = [], []
    for k in orders:
        if width < k:
            continue
        code = np.zeros((n, width - k + 1), dtype=np.int64)
        valid = np.ones_like(code, dtype=bool)
        for j in range(k):  # k is 2 or 3: a loop over n-gram offsets, not over names
            part = chars[:, j : width - k + 1 + j]
            code = code * _RADIX + part
            valid &= part > 0
        code = code + k * _RADIX**3  # n-grams of different orders never share a code
        bucket = ((code * 2654435761) % (1 << 32)) % buckets  # Knuth multiplicative hash
        rows_l.append(np.broadcast_to(np.arange(n)[:, None], bucket.shape)[valid])
        cols_l.append(bucket[valid])
    rows = np.concatenate(rows_l) if rows_l else np.zeros(0, np.int64)
    cols = np.concatenate(cols_l) if cols_l else np.zeros(0, np.int64)
    per_row = np.bincount(rows, minlength=n).astype(np.float64)
    vals = 1.0 / per_row[rows]
    return Sparse(rows, cols, vals, n, buckets)


def numeric_features(chars: np.ndarray) -> np.ndarray:
    """Per-label length, character entropy, vowel/consonant/digit ratios, hyphens, the longest
    consonant run, distinct-character ratio and digit/letter switches, (n, len(NUMERIC))."""
    body = chars[:, 1:-1]
    is_char = (body > 0) & (body != _BOUNDARY)
    length = is_char.sum(axis=1).astype(np.float64)
    safe = np.maximum(length, 1.0)
    letter = is_char & (body <= 26)
    digit = is_char & (body >= 27) & (body <= 36)
    vowel_codes = np.array([ALPHABET.index(v) + 1 for v in VOWELS])
    vowel = is_char & np.isin(body, vowel_codes)
    consonant = letter & ~vowel
    hyphen = is_char & (body == 37)
    # Per-label character counts with one bincount over (row, code) pairs (np.add.at is slow).
    flat = (np.arange(len(body))[:, None] * (_RADIX + 1) + body)[is_char]
    counts = np.bincount(flat, minlength=len(body) * (_RADIX + 1)).astype(np.float64)
    counts = counts.reshape(len(body), _RADIX + 1)
    p = counts / safe[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
    # Longest run of consonants: a running count reset at each non-consonant, by cumulative sums.
    c = consonant.astype(np.int64)
    cs = np.cumsum(c, axis=1)
    reset = np.maximum.accumulate(np.where(c == 0, cs, 0), axis=1)
    run = (cs - reset).max(axis=1) if body.shape[1] else np.zeros(len(body))
    kind = np.where(letter, 1, np.where(digit, 2, 0))
    switches = ((kind[:, 1:] * kind[:, :-1]) == 2).sum(axis=1)  # letter next to digit
    distinct = (counts > 0).sum(axis=1)
    return np.column_stack(
        [
            length / 10.0,
            entropy,
            vowel.sum(axis=1) / safe,
            consonant.sum(axis=1) / safe,
            digit.sum(axis=1) / safe,
            hyphen.sum(axis=1),
            run / safe,
            distinct / safe,
            switches / safe,
        ]
    )


def _gram_codes(chars: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes of every character k-gram ending at each position of ``^label$`` (k-2 extra start
    boundaries, so the first character has a full context), and which are real (no padding)."""
    n = len(chars)
    c = np.concatenate([np.full((n, k - 2), _BOUNDARY), chars], axis=1) if k > 2 else chars
    width = c.shape[1]
    code = np.zeros((n, max(width - k + 1, 0)), dtype=np.int64)
    valid = np.ones_like(code, dtype=bool)
    for j in range(k):  # a loop over offsets within the gram, not over names
        part = c[:, j : width - k + 1 + j]
        code = code * _RADIX + part
        valid &= part > 0
    return code, valid


@dataclass(frozen=True)
class CharLM:
    """An interpolated character n-gram language model of benign labels (orders 1..4, fixed
    mixing weights): P(c | previous 3) = sum_k lambda_k * count(k-gram) / count(its context).

    Why: a classifier trained on DGA families learns *their* n-grams and misses a new generator;
    "how unlike real names is this label" does not depend on the families seen. Counts are kept
    as sorted (code, count) arrays per order, looked up with ``np.searchsorted``."""

    orders: tuple[int, ...]
    lambdas: tuple[float, ...]
    codes: tuple[np.ndarray, ...]
    counts: tuple[np.ndarray, ...]

    @classmethod
    def train(
        cls,
        labels: np.ndarray,
        orders: tuple[int, ...] = (1, 2, 3, 4),
        lambdas: tuple[float, ...] = (0.05, 0.15, 0.3, 0.5),
    ) -> CharLM:
        chars = char_matrix(labels)
        codes, counts = [], []
        for k in orders:
            code, valid = _gram_codes(chars, k)
            u, cnt = np.unique(code[valid], return_counts=True)
            codes.append(u.astype(np.int64))
            counts.append(cnt.astype(np.int64))
        return cls(tuple(orders), tuple(lambdas), tuple(codes), tuple(counts))

    def to_json(self) -> dict[str, Any]:
        """Codes delta-encoded (sorted, so the deltas are small numbers): keeps the file small."""
        return {
            "orders": list(self.orders),
            "lambdas": list(self.lambdas),
            "code_deltas": [np.diff(c, prepend=0).tolist() for c in self.codes],
            "counts": [c.tolist() for c in self.counts],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CharLM:
        return cls(
            tuple(int(k) for k in d["orders"]),
            tuple(float(x) for x in d["lambdas"]),
            tuple(np.cumsum(np.asarray(c, dtype=np.int64)) for c in d["code_deltas"]),
            tuple(np.asarray(c, dtype=np.int64) for c in d["counts"]),
        )

    @cached_property
    def _table(self) -> np.ndarray:
        """:meth:`_logp` of every possible top-order n-gram code (40^4 entries, 20 MB, 0.3 s to
        build): for training, which scores millions of labels, one gather per character."""
        top = max(self.orders)
        if top > 4:
            raise ValueError(f"character LM order {top} > 4 would need a table of {_RADIX**top}")
        return self._logp(np.arange(_RADIX**top, dtype=np.int64))

    @cached_property
    def _cumulative(self) -> tuple[np.ndarray, ...]:
        """Running sums of each order's counts, in code order: a context's count is the sum
        over the codes it prefixes, which are one contiguous run of the sorted codes."""
        return tuple(np.concatenate([[0], np.cumsum(c)]) for c in self.counts)

    def _logp(self, codes: np.ndarray) -> np.ndarray:
        """log P(last char | the others) of top-order n-gram codes. Sums and quotients are of
        the same integer counts in the same order whichever codes are asked for, so a code's
        value does not depend on the others or on whether it came from :attr:`_table`."""
        p = np.full(len(codes), 1e-4)  # floor: a character never seen after anything
        for k, lam, keys, cnt, cum in zip(
            self.orders, self.lambdas, self.codes, self.counts, self._cumulative, strict=True
        ):
            q = codes % (_RADIX**k)
            at = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
            num = np.where(keys[at] == q, cnt[at], 0).astype(np.float64) if len(keys) else q * 0.0
            if k == 1:
                p += lam * num / max(float(cnt.sum()), 1.0)
                continue
            ctx = (q // _RADIX) * _RADIX  # the context's first code of this order
            d = (cum[np.searchsorted(keys, ctx + _RADIX)] - cum[np.searchsorted(keys, ctx)]).astype(
                np.float64
            )
            p += lam * np.where(d > 0, num / np.maximum(d, 1.0), 0.0)
        return np.log(p)

    def logprob(self, chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log-probability of each character (and the end boundary) given the ones before it,
        (n, positions), with the mask of real positions.

        A day's DNS has thousands of distinct labels, not millions: their distinct n-grams are
        computed alone (a patrol process would otherwise build the whole table for them, 0.3
        CPU-s, a tenth of detection on the ingest workload). From about as many positions as
        the table has entries (~40 k labels), sorting them costs more than building the table
        once; then, or when it is built already, the table is used."""
        code, valid = _gram_codes(chars, max(self.orders))
        code = np.where(valid, code, 0)
        if "_table" in self.__dict__ or code.size > _RADIX ** max(self.orders):
            return self._table[code], valid
        distinct, inverse = np.unique(code, return_inverse=True)
        return self._logp(distinct)[inverse].reshape(code.shape), valid


def lm_features(chars: np.ndarray, lm: CharLM) -> np.ndarray:
    """Mean and minimum per-character log-probability, share of rare characters and the total
    log-probability (/10) of each label under the benign model, (n, len(LM_FEATURES))."""
    lp, valid = lm.logprob(chars)
    n = np.maximum(valid.sum(axis=1), 1)
    s = np.where(valid, lp, 0.0)
    mean = s.sum(axis=1) / n
    length = n - 1  # positions = characters + the end boundary
    bucket = np.searchsorted(np.asarray(LENGTH_BUCKETS), length)
    onehot = (bucket[:, None] == np.arange(len(LENGTH_BUCKETS))[None, :]).astype(np.float64)
    return np.column_stack(
        [
            mean,
            s.min(axis=1),
            (s < np.log(LM_RARE)).sum(axis=1) / n,
            s.sum(axis=1) / 10.0,
            onehot,
            onehot * mean[:, None],
        ]
    )


def dense_features(
    chars: np.ndarray, lm: CharLM | None, len_ref: dict[str, Any] | None = None
) -> np.ndarray:
    """The unstandardised dense features: label statistics, then the benign-LM ones if a model
    has an LM, then (with ``len_ref``) the label's mean log-probability as a z-score among
    benign labels of its length bucket (see :func:`length_reference`)."""
    num = numeric_features(chars)
    if lm is None:
        return num
    lmf = lm_features(chars, lm)
    if len_ref is None:
        return np.column_stack([num, lmf])
    bucket = lmf[:, 4 : 4 + len(LENGTH_BUCKETS)].argmax(axis=1)
    mean, std = np.asarray(len_ref["mean"]), np.asarray(len_ref["std"])
    return np.column_stack([num, lmf, (lmf[:, 0] - mean[bucket]) / std[bucket]])


def length_reference(dense: np.ndarray) -> dict[str, list[float]]:
    """Mean and spread of the LM mean log-probability of benign labels per length bucket, from
    :func:`dense_features` rows computed without a reference (training: out-of-fold rows of
    the benign fit names). Why a z-score when the per-bucket one-hots and means are features
    already: it is one direction shared by every length ("unlikely for its length"), so its
    weight is learned from every training family at once instead of per bucket from whichever
    families happen to have labels of that length, and it carries better to an unseen one."""
    lmf = dense[:, len(NUMERIC) :]
    bucket = lmf[:, 4 : 4 + len(LENGTH_BUCKETS)].argmax(axis=1)
    mean = [float(lmf[bucket == k, 0].mean()) for k in range(len(LENGTH_BUCKETS))]
    std = [float(lmf[bucket == k, 0].std()) + 1e-6 for k in range(len(LENGTH_BUCKETS))]
    return {"mean": [round(m, 6) for m in mean], "std": [round(x, 6) for x in std]}


def featurize(
    labels: np.ndarray,
    spec: dict[str, Any],
    lm: CharLM | None = None,
    dense: np.ndarray | None = None,
) -> tuple[Sparse, np.ndarray]:
    """The model's inputs for an array of labels: hashed n-grams (sparse) and standardised
    dense features, as ``spec`` (the model file's ``features`` block) defines them. ``dense``
    may be given precomputed (training uses out-of-fold LM features for benign names)."""
    chars = char_matrix(labels)
    grams = ngram_buckets(chars, tuple(spec["ngram_orders"]), int(spec["buckets"]))
    num = dense_features(chars, lm, spec.get("lm_len_ref")) if dense is None else dense
    mean = np.asarray(spec.get("numeric_mean", np.zeros(num.shape[1])))
    std = np.asarray(spec.get("numeric_std", np.ones(num.shape[1])))
    return grams, (num - mean) / std


def logits(
    grams: Sparse, num: np.ndarray, w_grams: np.ndarray, w_num: np.ndarray, bias: float
) -> np.ndarray:
    """Linear scores of a logistic regression over :func:`featurize`'s output."""
    return grams.dot(w_grams) + num @ w_num + bias


def session_threshold_at(session: dict[str, Any], n: np.ndarray) -> np.ndarray:
    """The session rule's threshold on the mean clipped logit of ``n`` distinct names (the
    model file's ``session`` block: thresholds for ``min_n``, ``min_n + 1``, ...; larger
    sessions take the last, which is stricter than they need; smaller ones +inf)."""
    cut = np.asarray(session["thresholds"], dtype=np.float64)
    i = np.clip(np.asarray(n) - int(session["min_n"]), 0, len(cut) - 1)
    return np.where(np.asarray(n) >= int(session["min_n"]), cut[i], np.inf)


def session_threshold_expr(n: pl.Expr, session: dict[str, Any]) -> pl.Expr:
    """:func:`session_threshold_at` as a Polars expression over a column of session sizes."""
    cut = [float(c) for c in session["thresholds"]]
    i = (n - int(session["min_n"])).clip(0, len(cut) - 1)
    table = pl.lit(pl.Series(cut, dtype=pl.Float64)).implode()
    return pl.when(n >= int(session["min_n"])).then(table.list.get(i)).otherwise(float("inf"))


def clipped_logit(score: pl.Expr) -> pl.Expr:
    """The model's logit of a P(DGA) column, clipped to +-``SESSION_CLIP``."""
    return (score / (1.0 - score)).log().clip(-SESSION_CLIP, SESSION_CLIP)


@cache
def load_model(path: Path = MODEL_PATH) -> dict[str, Any]:
    """The trained model (weights, bias, threshold, feature spec), read once per process."""
    model: dict[str, Any] = json.loads(path.read_text())
    model["_w_grams"] = np.asarray(model["weights"]["ngrams"], dtype=np.float64)
    model["_w_num"] = np.asarray(model["weights"]["numeric"], dtype=np.float64)
    lm = model["features"].get("lm")
    model["_lm"] = CharLM.from_json(lm) if lm else None
    return model


def score_labels(labels: np.ndarray, model: dict[str, Any] | None = None) -> np.ndarray:
    """P(DGA) for each label (logistic regression over :func:`featurize`).

    Scored in groups of similar length, each in a matrix only as wide as its longest label
    (:func:`char_matrix`): one 63-character CDN label must not make every short one cost its
    width."""
    m = model or load_model()
    out = np.zeros(len(labels))
    if len(labels) == 0:
        return out
    size = pl.Series(labels, dtype=pl.String).str.len_chars().fill_null(0).to_numpy()
    group = np.searchsorted(np.asarray(_SCORE_WIDTHS), size)
    for g in np.unique(group):
        at = np.flatnonzero(group == g)
        grams, num = featurize(np.asarray(labels)[at], m["features"], m.get("_lm"))
        z = logits(grams, num, m["_w_grams"], m["_w_num"], float(m["bias"]))
        out[at] = 1.0 / (1.0 + np.exp(-z))
    return out


def score_series(labels: pl.Series) -> pl.Series:
    """:func:`score_labels` over a Polars column (for ``map_batches`` in a lazy plan)."""
    return pl.Series(labels.name, score_labels(labels.to_numpy()), dtype=pl.Float64)
