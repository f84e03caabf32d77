"""The ``match`` fixture: a Security-channel rule over a few events."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sigma_helpers import rule_dict, run_rule, winevt


@pytest.fixture
def match() -> Callable[..., list[str]]:
    """``match(detection, events)``: the uids a Security-channel rule matches among ``events``."""

    def run(detection: Mapping[str, Any], events: Sequence[Mapping[str, str]]) -> list[str]:
        return run_rule(rule_dict(detection), {"winevt": winevt(events)})

    return run
