"""Detector parameters from YAML: the range rules every detector's numbers share (``Params``).

Before these, a YAML override of any number was only type-checked: ``window_seconds: -5`` made
``ddos.flood`` count every connection in a window of its own, ``min_sources: .inf`` silenced it,
and neither said a word."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from mamori.detect.base import DetectorConfigError, load_params, registered


def _numbers() -> list[tuple[str, str, int | float]]:
    out = []
    for det in registered().values():
        for f in fields(det.params):
            default = getattr(det.params(), f.name)
            if isinstance(default, int | float) and not isinstance(default, bool):
                out.append((det.id, f.name, default))
    return out


NUMBERS = _numbers()


def _load(tmp_path: Path, det: str, name: str, value: object) -> object:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({det: {name: value}}))
    return load_params(path)[det]


def test_every_detector_has_numbers_to_check() -> None:
    assert len({d for d, _, _ in NUMBERS}) >= 20 and len(NUMBERS) >= 60


@pytest.mark.parametrize(
    ("det", "name", "default"), NUMBERS, ids=[f"{d}.{n}" for d, n, _ in NUMBERS]
)
def test_a_negative_or_infinite_number_is_refused_with_its_name(
    tmp_path: Path, det: str, name: str, default: int | float
) -> None:
    bad = [-1, -(10**6)] if isinstance(default, int) else [-0.5, math.inf, math.nan]
    for value in bad:
        with pytest.raises(DetectorConfigError) as exc:
            _load(tmp_path, det, name, value)
        assert f"{det}:" in str(exc.value) and name in str(exc.value)
    assert getattr(_load(tmp_path, det, name, default), name) == default  # the default is fine


@pytest.mark.parametrize(("det", "name"), [(d, n) for d, n, _ in NUMBERS if n.startswith("window")])
def test_a_window_of_zero_is_refused(tmp_path: Path, det: str, name: str) -> None:
    with pytest.raises(DetectorConfigError, match=f"{name} must be > 0"):
        _load(tmp_path, det, name, 0)


UNIT = [
    (d, n) for d, n, _ in NUMBERS if n.endswith(("_share", "_probability")) or "confidence" in n
]


def test_shares_probabilities_and_confidences_are_found() -> None:
    assert {"min_unsolicited_share", "detection_probability", "csv_confidence"} <= {
        n for _, n in UNIT
    }


@pytest.mark.parametrize(("det", "name"), UNIT)
def test_a_share_or_probability_above_one_is_refused(tmp_path: Path, det: str, name: str) -> None:
    with pytest.raises(DetectorConfigError, match=f"{name} must be within 0 and 1"):
        _load(tmp_path, det, name, 1.5)


def test_a_yaml_syntax_error_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(": : :\n\t- x\n")
    with pytest.raises(DetectorConfigError) as exc:
        load_params(path)
    assert str(exc.value).startswith(f"{path}: cannot read: ") and "\n" not in str(exc.value)
