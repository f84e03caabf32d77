"""A Sigma rule's detection into one Polars boolean expression per source it reads.

The walker goes over pySigma's condition tree (selections resolved, modifiers applied: ``contains``
is already a string with wildcards, ``base64offset`` and ``windash`` already expansions) and builds
an expression over an *evaluation frame*: the source's rows with the fields rules name decoded into
columns ``d:<field>``, their lowercase in ``l:<column>`` (made once per field and shared by every
rule, since Sigma strings compare case-insensitively) and the keyword text in ``t:``. Every leaf is
null-free (a missing field matches nothing), so ``not`` means what a rule author expects: an event
without the field is *not* excluded by a filter on it. Values of one field OR-ed together (long
lists are the common case in SigmaHQ) become one ``is_in``, one Aho-Corasick ``contains_any`` or one
regex alternation rather than a chain of comparisons.

What cannot be expressed is raised as :class:`Unsupported` with the reason, and the rule is
reported instead of run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from mamori.detect.sigma.loader import Unusable, load_rules
from mamori.detect.sigma.pipeline import Pipeline, Source, load_pipeline
from mamori.schema import schema_of

TEXT = "t:"  # the keyword-search text of an event
_TECHNIQUE = re.compile(r"^t\d{4}(\.\d{3})?$")
_RUST_META = set("\\.+*?()|[]{}^$#&-~")


class Unsupported(Exception):
    """A construct the compiler cannot express; the message is the reason reported for the rule."""


@dataclass(frozen=True)
class RuleInfo:
    id: str
    title: str
    level: str
    techniques: tuple[str, ...]
    path: str
    logsource: str


@dataclass(frozen=True)
class CompiledRule:
    """One rule over one source: the expression, and what the evaluation frame must provide."""

    rule: RuleInfo
    source: Source
    expr: pl.Expr
    data_fields: frozenset[str]  # fields decoded from the table's JSON column (as ``d:<name>``)
    lower: frozenset[str]  # evaluation-frame columns whose lowercase (``l:<column>``) is used
    text: bool  # uses keyword search
    base: frozenset[str] = frozenset()  # columns whose lowercase basename (``b:``) is used
    split: frozenset[str] = frozenset()  # columns whose lowercase comma items (``k:``) are used


@dataclass(frozen=True)
class CompiledRules:
    compiled: tuple[CompiledRule, ...]
    rules: tuple[RuleInfo, ...]  # rules that compiled for at least one source
    unusable: tuple[Unusable, ...]

    @property
    def total(self) -> int:
        return len(self.rules) + len(self.unusable)


def lower_name(column: str) -> str:
    return f"l:{column}"


def basename_name(column: str) -> str:
    return f"b:{column}"


def items_name(column: str) -> str:
    return f"k:{column}"


def rule_info(rule: SigmaRule, path: Path | str) -> RuleInfo:
    ls = rule.logsource
    techniques = tuple(
        sorted(
            {
                t.name.upper()
                for t in rule.tags
                if t.namespace == "attack" and _TECHNIQUE.match(t.name.lower())
            }
        )
    )
    level = rule.level.name.lower() if rule.level is not None else "medium"
    logsource = "/".join(x or "-" for x in (ls.product, ls.category, ls.service))
    return RuleInfo(str(rule.id or ""), str(rule.title), level, techniques, str(path), logsource)


# --- the evaluation frame's columns -------------------------------------------------------------


def _kind(dtype: pa.DataType) -> str:
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "str"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        return "num"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_list(dtype) and _kind(dtype.value_type) == "str":
        return "list"  # e.g. Zeek's dns answers: a value matches when any element does
    return "other"


@dataclass
class _Ctx:
    source: Source
    data_fields: set[str] = field(default_factory=set)
    lower: set[str] = field(default_factory=set)
    base: set[str] = field(default_factory=set)
    split: set[str] = field(default_factory=set)
    text: bool = False

    def column(self, name: str) -> tuple[str, str]:
        """The evaluation-frame column of a Sigma field, and its kind (str, num, bool)."""
        table = self.source.table
        target = self.source.fields.get(name, name)
        schema = schema_of(table.name)
        column = table.columns.get(target)
        if column is None and table.data is None and target in schema.names:
            column = target
        if column is not None:
            kind = _kind(schema.field(column).type)
            if kind == "other":
                raise Unsupported(f"field {name!r} is {schema.field(column).type} in {table.name}")
            return column, kind
        if table.data is None:
            raise Unsupported(f"field {name!r} is not in table {table.name}")
        self.data_fields.add(target)
        return f"d:{target}", "str"

    def basename(self, column: str) -> pl.Expr:
        """``\\`` and the lowercase value's last ``\\``-separated component (null without one)."""
        self.lower.add(column)
        self.base.add(column)
        return pl.col(basename_name(column))

    def items(self, column: str) -> pl.Expr:
        """The lowercase value split at commas."""
        self.lower.add(column)
        self.split.add(column)
        return pl.col(items_name(column))

    def lowered(self, column: str) -> pl.Expr:
        self.lower.add(column)
        return pl.col(lower_name(column))

    def text_column(self) -> str:
        if self.source.table.text is None:
            raise Unsupported(f"keyword search: table {self.source.table.name} has no text")
        self.text = True
        return TEXT


# --- strings ------------------------------------------------------------------------------------


def escape_regex(s: str) -> str:
    return "".join("\\" + c if c in _RUST_META else c for c in s)


@dataclass(frozen=True)
class _Pattern:
    """A Sigma string classified by the cheapest operation that matches it."""

    op: str  # eq | contains | startswith | endswith | any | regex
    value: str  # the literal (eq, contains, ...) or the regex body (anchored by the caller)


def _pattern(s: SigmaString, *, lower: bool, anywhere: bool = False) -> _Pattern:
    parts: list[str | SpecialChars] = []
    for p in s.s:
        if isinstance(p, Placeholder):
            raise Unsupported(f"placeholder %{p.name}% has no value")
        if isinstance(p, str):
            p = p.lower() if lower else p
            if parts and isinstance(parts[-1], str):
                parts[-1] += p
            else:
                parts.append(p)
        else:
            parts.append(p)
    if anywhere:  # keyword search: the value anywhere in the text
        parts = [SpecialChars.WILDCARD_MULTI, *parts, SpecialChars.WILDCARD_MULTI]
    # Runs of '*' are one '*'.
    merged: list[str | SpecialChars] = []
    for p in parts:
        if not (p == SpecialChars.WILDCARD_MULTI and merged and merged[-1] == p):
            merged.append(p)
    star = SpecialChars.WILDCARD_MULTI
    inner = merged[1:-1] if len(merged) >= 2 else []
    if not merged:
        return _Pattern("eq", "")
    if all(isinstance(p, str) for p in merged):
        return _Pattern("eq", "".join(merged))  # type: ignore[arg-type]
    if merged == [star]:
        return _Pattern("any", "")
    if len(merged) == 2 and merged[0] == star and isinstance(merged[1], str):
        return _Pattern("endswith", merged[1])
    if len(merged) == 2 and merged[1] == star and isinstance(merged[0], str):
        return _Pattern("startswith", merged[0])
    if (
        len(merged) == 3
        and merged[0] == star
        and merged[2] == star
        and all(isinstance(p, str) for p in inner)
    ):
        return _Pattern("contains", "".join(inner))  # type: ignore[arg-type]
    body = "".join(
        escape_regex(p) if isinstance(p, str) else (".*" if p == star else ".") for p in merged
    )
    return _Pattern("regex", body)


def _fragment(p: _Pattern) -> str:
    """The pattern as an unanchored-search regex: anchors only where the value has an end, so the
    engine's literal prefilters see the literal (``.*evil$`` searches far slower than ``evil$``).
    """
    lit = escape_regex(p.value)
    if p.op == "contains":
        return lit
    if p.op == "startswith":
        return f"^{lit}"
    if p.op == "endswith":
        return f"{lit}$"
    if p.op == "eq":
        return f"^{lit}$"
    # A body's ".*" can only come from a '*' wildcard: literal dots and stars are escaped.
    body = p.value
    head = "" if body.startswith(".*") else "^"
    tail = "" if body.endswith(".*") else "$"
    body = body.removeprefix(".*")
    return head + (body.removesuffix(".*") if not tail else body) + tail


def _or(terms: list[pl.Expr]) -> pl.Expr:
    return terms[0] if len(terms) == 1 else pl.any_horizontal(terms)


# "md5=<32 hex>" and the like: found in a "SHA1=..,MD5=..,IMPHASH=.." value (Sysmon's Hashes, items
# ALG=HEX) exactly when one of its comma-separated items begins with it: the pattern's "=" can
# only sit on the item's. (An item that is not ALG=HEX, "xmd5=...", would be missed.)
_HASH = re.compile(
    r"^(md5=[0-9a-f]{32}|sha1=[0-9a-f]{40}|sha256=[0-9a-f]{64}|imphash=[0-9a-f]{32})$"
)


def _is_hash(p: _Pattern) -> bool:
    return p.op == "contains" and _HASH.match(p.value) is not None


def _is_basename(p: _Pattern) -> bool:
    return p.op == "endswith" and p.value.startswith("\\") and "\\" not in p.value[1:]


def _match(
    col: pl.Expr,
    patterns: list[_Pattern],
    *,
    dotall: bool = True,
    basename: Callable[[], pl.Expr] | None = None,
    items: Callable[[], pl.Expr] | None = None,
) -> pl.Expr:
    """OR of patterns over one (already cased or lowercased) string column, null-free.

    Keyword text holds one value per line: there ``dotall`` is off and anchors are per line, so
    a wildcard does not run from one field's value into the next.
    """
    flags = "(?s)" if dotall else "(?m)"
    if any(p.op == "any" for p in patterns):
        return col.is_not_null()
    terms: list[pl.Expr] = []
    eq = sorted({p.value for p in patterns if p.op == "eq"})
    if eq:
        terms.append(col == eq[0] if len(eq) == 1 else col.is_in(eq))
    rest = [p for p in patterns if p.op != "eq"]
    names = [p for p in rest if _is_basename(p)] if basename is not None else []
    if len(names) > 1 and basename is not None:
        # "endswith \\cmd.exe, \\pwsh.exe, ...": the value's last path component, looked up.
        terms.append(basename().is_in(sorted({p.value for p in names})))
        rest = [p for p in rest if not _is_basename(p)]
    hashes = [p for p in rest if _is_hash(p)] if items is not None else []
    if len(hashes) > 1 and items is not None:
        # Hash lists (thousands in the vulnerable-driver rules): a set lookup per item, not a
        # regex of thousands of alternatives compiled on every run.
        by_length: dict[int, set[str]] = {}
        for h in hashes:
            by_length.setdefault(len(h.value), set()).add(h.value)
        begins = [
            pl.element().str.slice(0, n).is_in(sorted(values))
            for n, values in sorted(by_length.items())
        ]
        terms.append(items().list.eval(_or(begins)).list.any())
        rest = [p for p in rest if not _is_hash(p)]
    if len(rest) == 1 and rest[0].op == "contains":
        terms.append(col.str.contains(rest[0].value, literal=True))
    elif len(rest) == 1 and rest[0].op == "startswith":
        terms.append(col.str.starts_with(rest[0].value))
    elif len(rest) == 1 and rest[0].op == "endswith":
        terms.append(col.str.ends_with(rest[0].value))
    elif rest:
        # One regex for all of them: Rust's engine runs an alternation of literals through one
        # SIMD prefilter, faster than Aho-Corasick ``contains_any`` or one test per value.
        alternation = "|".join(sorted({_fragment(p) for p in rest}))
        terms.append(col.str.contains(f"{flags}(?:{alternation})"))
    return _or(terms).fill_null(False)


def check_regex(pattern: str) -> None:
    """Polars' (Rust) regex engine has no look-around or backreferences: say so at compile time."""
    try:
        pl.select(pl.lit("", pl.String).str.contains(pattern)).item()
    except pl.exceptions.ComputeError as exc:
        first = str(exc).strip().splitlines()
        why = next((ln for ln in first if ln.startswith("error:")), first[0] if first else "")
        raise Unsupported(f"regex {pattern!r}: {why.removeprefix('error: ')}") from None


# --- the condition tree -------------------------------------------------------------------------


def _flatten(values: Iterable[object]) -> list[object]:
    out: list[object] = []
    for v in values:
        if isinstance(v, SigmaExpansion):
            out.extend(_flatten(v.values))
        else:
            out.append(v)
    return out


def _string_leaf(
    low: pl.Expr,
    raw: pl.Expr,
    values: list[SigmaString],
    basename: Callable[[], pl.Expr] | None = None,
    items: Callable[[], pl.Expr] | None = None,
) -> pl.Expr:
    """Case-insensitive (or, for ``|cased``, exact) string matches of one column, OR-ed."""
    cased = [v for v in values if isinstance(v, SigmaCasedString)]
    plain = [v for v in values if not isinstance(v, SigmaCasedString)]
    terms = []
    if plain:
        patterns = [_pattern(v, lower=True) for v in plain]
        terms.append(_match(low, patterns, basename=basename, items=items))
    if cased:
        terms.append(_match(raw, [_pattern(v, lower=False) for v in cased]))
    return _or(terms)


def _field_values(ctx: _Ctx, name: str, values: list[object]) -> pl.Expr:
    """``field`` equals any of ``values`` (one OR group of the condition tree)."""
    column, kind = ctx.column(name)
    if kind != "list":
        return _values(ctx, name, values, pl.col(column), lambda: ctx.lowered(column), kind, column)
    col = pl.col(column)
    flat = _flatten(values)
    terms = []
    for v in flat:
        if isinstance(v, SigmaNull):
            terms.append(col.is_null() | (col.list.len() == 0))
        elif isinstance(v, SigmaExists):
            present = col.list.len().fill_null(0) > 0
            terms.append(present if v.exists else ~present)
    rest = [v for v in flat if not isinstance(v, (SigmaNull, SigmaExists))]
    if rest:
        element = pl.element()
        inner = _values(ctx, name, rest, element, element.str.to_lowercase, "str", None)
        terms.append(col.list.eval(inner).list.any().fill_null(False))
    return _or(terms)


def _values(
    ctx: _Ctx,
    name: str,
    values: list[object],
    col: pl.Expr,
    low: Callable[[], pl.Expr],
    kind: str,
    column: str | None,
) -> pl.Expr:
    """``col`` (``low()`` its lowercase) equals any of ``values``; ``column`` is None in a list."""
    strings: list[SigmaString] = []
    terms: list[pl.Expr] = []
    for v in _flatten(values):
        if isinstance(v, SigmaString):
            if kind == "num" and not v.contains_special() and str(v).strip().lstrip("-").isdigit():
                terms.append((col == int(str(v))).fill_null(False))
            else:
                strings.append(v)
        elif isinstance(v, SigmaBool):
            if kind == "bool":
                terms.append((col == v.boolean).fill_null(False))
            else:
                strings.append(SigmaString(str(v.boolean).lower()))
        elif isinstance(v, SigmaNumber):
            if kind == "num":
                terms.append((col == v.number).fill_null(False))
            else:
                strings.append(SigmaString(str(v.number)))
        elif isinstance(v, SigmaNull):
            terms.append(col.is_null())
        elif isinstance(v, SigmaExists):
            terms.append(col.is_not_null() if v.exists else col.is_null())
        elif isinstance(v, SigmaRegularExpression):
            flags = "".join(
                f
                for flag, f in (
                    (SigmaRegularExpressionFlag.IGNORECASE, "i"),
                    (SigmaRegularExpressionFlag.MULTILINE, "m"),
                    (SigmaRegularExpressionFlag.DOTALL, "s"),
                )
                if flag in v.flags
            )
            pattern = (f"(?{flags})" if flags else "") + str(v.regexp)
            check_regex(pattern)
            raw = col if kind == "str" else col.cast(pl.String)
            terms.append(raw.str.contains(pattern).fill_null(False))
        elif isinstance(v, SigmaCompareExpression):
            num = col if kind == "num" else col.str.strip_chars().cast(pl.Float64, strict=False)
            n = v.number.number
            op = {
                CompareOperators.LT: num < n,
                CompareOperators.LTE: num <= n,
                CompareOperators.GT: num > n,
                CompareOperators.GTE: num >= n,
                CompareOperators.NEQ: num != n,
            }[v.op]
            terms.append(op.fill_null(False))
        elif isinstance(v, SigmaCIDRExpression):
            strings.extend(SigmaString(p) for p in v.expand(wildcard="*"))
        elif isinstance(v, SigmaFieldReference):
            other, other_kind = ctx.column(v.field)
            if column is None or other_kind == "list":
                raise Unsupported(f"field reference to or from a list: {name!r}, {v.field!r}")
            a, b = low(), ctx.lowered(other)
            if v.starts_with and v.ends_with:
                e = a.str.contains(b, literal=True)
            elif v.starts_with:
                e = a.str.starts_with(b)
            elif v.ends_with:
                e = a.str.ends_with(b)
            else:
                e = a == b
            terms.append(e.fill_null(False))
        else:
            raise Unsupported(f"value {type(v).__name__} of field {name!r}")
    if strings:
        raw = col if kind == "str" else col.cast(pl.String)
        base = items = None
        if column is not None:
            base, items = (lambda: ctx.basename(column)), (lambda: ctx.items(column))
        terms.append(_string_leaf(low(), raw, strings, base, items))
    return _or(terms)


def _keywords(ctx: _Ctx, values: list[object]) -> pl.Expr:
    """Field-less values: each anywhere in the event's text, case-insensitive."""
    text = ctx.text_column()
    patterns: list[_Pattern] = []
    terms: list[pl.Expr] = []
    for v in _flatten(values):
        if isinstance(v, SigmaCasedString):
            terms.append(
                _match(pl.col(text), [_pattern(v, lower=False, anywhere=True)], dotall=False)
            )
        elif isinstance(v, SigmaString):
            patterns.append(_pattern(v, lower=True, anywhere=True))
        elif isinstance(v, (SigmaNumber, SigmaBool)):
            patterns.append(_pattern(SigmaString(str(v)), lower=True, anywhere=True))
        elif isinstance(v, SigmaRegularExpression):
            pattern = str(v.regexp)
            if SigmaRegularExpressionFlag.IGNORECASE in v.flags:
                pattern = "(?i)" + pattern
            check_regex(pattern)
            terms.append(pl.col(text).str.contains(pattern).fill_null(False))
        else:
            raise Unsupported(f"keyword value {type(v).__name__}")
    if patterns:
        terms.append(_match(ctx.lowered(text), patterns, dotall=False))
    return _or(terms)


def _walk(ctx: _Ctx, node: object) -> pl.Expr:
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_values(ctx, node.field, [node.value])
    if isinstance(node, ConditionValueExpression):
        return _keywords(ctx, [node.value])
    if isinstance(node, ConditionNOT):
        return ~_walk(ctx, node.args[0])
    if isinstance(node, ConditionAND):
        return pl.all_horizontal([_walk(ctx, a) for a in node.args])
    if isinstance(node, ConditionOR):
        # Values of one field (and keywords) OR-ed together become one vectorised match.
        groups: dict[str | None, list[object]] = {}
        others: list[pl.Expr] = []
        for a in node.args:
            if isinstance(a, ConditionFieldEqualsValueExpression):
                groups.setdefault(a.field, []).append(a.value)
            elif isinstance(a, ConditionValueExpression):
                groups.setdefault(None, []).append(a.value)
            else:
                others.append(_walk(ctx, a))
        for name, values in groups.items():
            others.append(
                _keywords(ctx, values) if name is None else _field_values(ctx, name, values)
            )
        return _or(others)
    raise Unsupported(f"condition element {type(node).__name__}")


def compile_rule(rule: SigmaRule, path: Path | str, pipeline: Pipeline) -> list[CompiledRule]:
    """The rule over every source its logsource maps to; :class:`Unsupported` if none works."""
    info = rule_info(rule, path)
    ls = rule.logsource
    sources = pipeline.sources_for((ls.product, ls.category, ls.service))
    if not sources:
        raise Unsupported(f"no pipeline source for logsource {info.logsource}")
    try:
        trees = [c.parsed for c in rule.detection.parsed_condition]
    except Exception as exc:  # pySigma's condition errors are the rule's problem
        raise Unsupported(f"condition: {exc}") from exc
    out: list[CompiledRule] = []
    reasons: list[str] = []
    for source in sources:
        ctx = _Ctx(source)
        try:
            exprs = [_walk(ctx, t) for t in trees if t is not None]
            if not exprs:
                raise Unsupported("empty condition")
            expr = pl.any_horizontal(exprs) if len(exprs) > 1 else exprs[0]
            extra = [
                _field_values(ctx, name, [SigmaString(v) for v in values])
                for name, values in source.detection.items()
            ]
            if extra:
                expr = pl.all_horizontal([*extra, expr])
        except Unsupported as exc:
            reasons.append(str(exc))
            continue
        out.append(
            CompiledRule(
                info,
                source,
                expr,
                frozenset(ctx.data_fields),
                frozenset(ctx.lower),
                ctx.text,
                frozenset(ctx.base),
                frozenset(ctx.split),
            )
        )
    if not out:
        raise Unsupported("; ".join(sorted(set(reasons))))
    return out


def compile_rules(paths: Iterable[Path | str], pipeline: Pipeline | None = None) -> CompiledRules:
    """Every rule under ``paths`` compiled; the ones that cannot be, with the reason."""
    pipeline = pipeline or load_pipeline()
    rules, unusable = load_rules(Path(p) for p in paths)
    compiled: list[CompiledRule] = []
    infos: list[RuleInfo] = []
    for path, rule in rules:
        try:
            units = compile_rule(rule, path, pipeline)
        except Unsupported as exc:
            unusable.append(Unusable(str(path), str(rule.id or ""), str(rule.title), str(exc)))
            continue
        compiled.extend(units)
        infos.append(units[0].rule)
    return CompiledRules(tuple(compiled), tuple(infos), tuple(unusable))
