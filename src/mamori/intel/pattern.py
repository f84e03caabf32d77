"""A small parser of STIX 2.1 patterns, enough to turn indicators into things to look for.

Why not the full grammar's semantics: matching runs as joins over the lake, so only patterns that
reduce to "any of these observables" (one observation, comparisons with ``=``/``IN`` joined by
``OR``, optionally ``AND``-ed with a network-traffic port) can be matched. Everything else
(``MATCHES``, ``LIKE``, negation, several observations joined by ``AND``/``FOLLOWEDBY``) is parsed
and reported as skipped with its reason, never silently dropped. Qualifiers (``WITHIN``,
``START``/``STOP``, ``REPEATS``) only narrow when a pattern fires; they are ignored, which can only
add matches, never hide one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<path>[a-z0-9-]+:(?:[A-Za-z0-9_-]+|'[^']*')(?:\[(?:\d+|\*)\])?
               (?:\.(?:[A-Za-z0-9_-]+|'[^']*')(?:\[(?:\d+|\*)\])?)*)
     |(?P<str>[hbt]?'(?:[^'\\]|\\.)*')
     |(?P<num>[+-]?\d+(?:\.\d+)?)
     |(?P<op><=|>=|!=|=|<|>)
     |(?P<punct>[\[\]\(\),])
     |(?P<word>[A-Za-z]+)
    )""",
    re.VERBOSE,
)

_COMPARE_WORDS = {"IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"}
# Parentheses nested deeper than this are refused as syntax: no producer writes them, and the
# parser's recursion (Python's stack) must not be what stops a hostile pattern.
MAX_DEPTH = 64
# Alternatives a pattern may expand to (``AND`` over ``OR`` multiplies them out): more cannot be
# matched as joins of indicators, and are refused before they are built.
MAX_ALTERNATIVES = 10_000


class PatternError(ValueError):
    """A pattern the parser cannot read (syntax), as opposed to one it reads but cannot match."""


class Unmatchable(ValueError):
    """A well-formed pattern that matching by joins cannot express; the message says why."""


@dataclass(frozen=True)
class Comparison:
    path: str  # e.g. "ipv4-addr:value", "file:hashes.'SHA-256'"
    op: str  # "=", "!=", "LIKE", ... ("IN" is expanded into "=" alternatives)
    value: str | float | bool
    negated: bool = False


Conjunction = tuple[Comparison, ...]


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise PatternError(f"unexpected text at {pos}: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def open(self) -> None:
        """One more level of parentheses or brackets, refused past :data:`MAX_DEPTH`."""
        self.take()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise PatternError(f"nested deeper than {MAX_DEPTH} levels at token {self.i - 1}")

    def close(self, value: str) -> None:
        self.take(value)
        self.depth -= 1

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1].upper() != value):
            raise PatternError(f"expected {value or 'more'} at token {self.i}, got {tok}")
        self.i += 1
        return tok

    def at(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1].upper() == value

    # observation expressions: each returns the DNF of the one observation it can stand for
    def pattern(self) -> list[Conjunction]:
        out = self.obs_or()
        if self.peek() is not None:
            raise PatternError(f"trailing text at token {self.i}: {self.peek()}")
        return out

    def obs_or(self) -> list[Conjunction]:
        alts = self.obs_and()
        while self.at("OR"):
            self.take()
            alts = _either(alts, self.obs_and())
        return alts

    def obs_and(self) -> list[Conjunction]:
        first = self.obs_qualified()
        joined = False
        while self.at("AND") or self.at("FOLLOWEDBY"):
            self.take()
            self.obs_qualified()
            joined = True
        if joined:
            raise Unmatchable("needs several observations (AND/FOLLOWEDBY between [...])")
        return first

    def obs_qualified(self) -> list[Conjunction]:
        out = self.obs_atom()
        while True:
            if self.at("WITHIN"):
                self.take(), self.take(), self.take("SECONDS")
            elif self.at("REPEATS"):
                self.take(), self.take(), self.take("TIMES")
            elif self.at("START"):
                self.take(), self.take(), self.take("STOP"), self.take()
            else:
                return out

    def obs_atom(self) -> list[Conjunction]:
        if self.at("("):
            self.open()
            out = self.obs_or()
            self.close(")")
            return out
        if not self.at("["):
            self.take("[")  # raises: what came instead
        self.open()
        out = self.comp_or()
        self.close("]")
        return out

    # comparison expressions, in disjunctive normal form
    def comp_or(self) -> list[Conjunction]:
        alts = self.comp_and()
        while self.at("OR"):
            self.take()
            alts = _either(alts, self.comp_and())
        return alts

    def comp_and(self) -> list[Conjunction]:
        alts = self.comp_atom()
        while self.at("AND"):
            self.take()
            right = self.comp_atom()
            if len(alts) * len(right) > MAX_ALTERNATIVES:  # counted before they are built
                raise Unmatchable("too many alternatives once expanded")
            alts = [a + b for a in alts for b in right]
        return alts

    def comp_atom(self) -> list[Conjunction]:
        if self.at("("):
            self.open()
            out = self.comp_or()
            self.close(")")
            return out
        kind, path = self.take()
        if kind != "path":
            raise PatternError(f"expected an object path at token {self.i - 1}, got {path!r}")
        negated = False
        if self.at("NOT"):
            self.take()
            negated = True
        kind, op = self.take()
        op = op.upper()
        if kind != "op" and op not in _COMPARE_WORDS:
            raise PatternError(f"expected a comparison operator after {path}, got {op!r}")
        if op == "IN":
            self.take("(")
            values = [self.value()]
            while self.at(","):
                self.take()
                values.append(self.value())
            self.take(")")
            return [(Comparison(path, "=", v, negated),) for v in values]
        return [(Comparison(path, op, self.value(), negated),)]

    def value(self) -> str | float | bool:
        kind, text = self.take()
        if kind == "str":
            body = text[text.index("'") + 1 : -1]
            return re.sub(r"\\(.)", r"\1", body)
        if kind == "num":
            return float(text)
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise PatternError(f"expected a value, got {text!r}")


def _either(left: list[Conjunction], right: list[Conjunction]) -> list[Conjunction]:
    if len(left) + len(right) > MAX_ALTERNATIVES:
        raise Unmatchable("too many alternatives once expanded")
    return left + right


def parse(pattern: str) -> list[Conjunction]:
    """The pattern as alternatives (any one suffices), each a conjunction of comparisons.

    Raises :class:`PatternError` for bad syntax, :class:`Unmatchable` for valid patterns that need
    more than one observation.
    """
    return _Parser(pattern).pattern()


_HASHES = {"md5": "md5", "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256", "sha-256": "sha256"}


def observable_of(path: str) -> str | None:
    """The observable kind a comparison on ``path`` names (None: not one we match).

    ``"port"`` is a network-traffic destination port, a constraint rather than an observable.
    """
    obj, _, prop = path.partition(":")
    prop_l = prop.lower().replace("'", "")
    if obj in ("ipv4-addr", "ipv6-addr") and prop_l == "value":
        return "ip"
    if obj == "domain-name" and prop_l == "value":
        return "domain"
    if obj == "url" and prop_l == "value":
        return "url"
    if obj == "file" and prop_l.startswith("hashes."):
        return _HASHES.get(prop_l.removeprefix("hashes."))
    if obj == "network-traffic":
        if prop_l in ("dst_ref.value", "src_ref.value"):
            return "ip"
        if prop_l == "dst_port":
            return "port"
        if prop_l in ("dst_ref.type", "src_ref.type"):
            return "implied"  # the address's own syntax says v4 or v6
    return None
