"""``analyze_jobs``' shortcut for analyses with no inner one gives what ``Analysis.services`` and
``Analysis.tables`` give (the general path, which handovers such as SOCKS -> HTTP take)."""

from __future__ import annotations

from typing import ClassVar
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.flows import pipeline
from mamori.flows.analyzers.base import Analysis
from mamori.flows.conversation import Conversation


class _Fake:
    """An analyser whose analysis of conversation ``uid`` is looked up in ``results``."""

    table: ClassVar[str] = "t"

    def __init__(self, service: str, table: str, results: dict[str, Analysis | None]) -> None:
        self.service, self.table, self.results = service, table, results

    def analyze(self, conv: Conversation) -> Analysis:
        got = self.results[conv.uid]
        if got is None:
            raise ValueError("an analyser bug")
        return got


_INNER = [_Fake("http", "http", {}), _Fake("ssl", "ssl", {})]
_rows = st.lists(st.fixed_dictionaries({"x": st.integers(0, 9)}), max_size=3)


@st.composite
def _analysis(draw: st.DrawFn, depth: int = 0) -> Analysis:
    inner = []
    if depth < 2:
        inner = draw(st.lists(st.tuples(st.sampled_from(_INNER), _analysis(depth + 1)), max_size=2))
    return Analysis(draw(st.booleans()), draw(_rows), inner)


def _reference(jobs: list[pipeline.Job], analyzers: dict[str, _Fake]) -> pipeline.Analysed:
    services: dict[int, str] = {}
    records: dict[str, list[dict[str, object]]] = {}
    for no, service, conv in jobs:
        result = pipeline._safe_analyze(analyzers[service], conv)  # type: ignore[arg-type]
        if result is None:
            continue
        names = result.services(analyzers[service])  # type: ignore[arg-type]
        if names:
            services[no] = ",".join(names)
        for table, rows in result.tables(analyzers[service]).items():  # type: ignore[arg-type]
            records.setdefault(table, []).extend(rows)
    return services, records


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["socks", "dns", "ftp"]), st.none() | _analysis()), max_size=12
    )
)
def test_analyze_jobs_equals_services_and_tables(drawn: list[tuple[str, Analysis | None]]) -> None:
    results: dict[str, Analysis | None] = {}
    analyzers = {
        s: _Fake(s, t, results) for s, t in (("socks", "socks"), ("dns", "dns"), ("ftp", "t"))
    }
    jobs: list[pipeline.Job] = []
    for k, (service, result) in enumerate(drawn):
        uid = f"C{k}"
        results[uid] = result
        jobs.append((k, service, Conversation(uid, 0.0, "a", 1, "b", 2, "tcp")))
    with mock.patch.object(pipeline, "registered", lambda: analyzers):
        assert pipeline.analyze_jobs(jobs) == _reference(jobs, analyzers)
