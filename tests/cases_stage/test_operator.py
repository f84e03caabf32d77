"""The operator profile of the regulator's report: YAML or TOML, every missing field named."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mamori.cases.reports import ReportError, load_operator
from mamori.cases.reports.operator import REQUIRED

FULL = {
    "operator": {"name": "Stadtwerke", "sector": "energy", "identifier": "K-1"},
    "contact": {"name": "Jane", "email": "soc@example.org", "phone": "+49 30 1"},
    "regulator": {"name": "BSI"},
    "systems": [{"name": "SCADA", "addresses": ["10.0.0.0/24"]}],
}


@given(
    st.sets(st.sampled_from(REQUIRED)),
    st.sampled_from(["absent", "empty", "blank"]),
    st.sampled_from([".yaml", ".toml"]),
)
def test_every_missing_field_is_named_and_nothing_else(
    gone: set[str], how: str, suffix: str
) -> None:
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in FULL.items()}
    for dotted in gone:
        section, field = dotted.split(".")
        if how == "absent":
            data[section].pop(field)
        else:
            data[section][field] = "" if how == "empty" else "   "
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"op{suffix}"
        path.write_text(yaml.safe_dump(data) if suffix == ".yaml" else _toml(data))
        if not gone:
            profile = load_operator(path)
            assert profile.operator["name"] == "Stadtwerke"
            assert profile.system_of("10.0.0.7").name == "SCADA"  # type: ignore[union-attr]
            return
        with pytest.raises(ReportError) as err:
            load_operator(path)
    message = str(err.value)
    assert message.startswith(f"{path}: operator profile is missing ")
    named = set(message.rsplit("missing ", 1)[1].split(", "))
    assert named == gone


def _toml(data: dict[str, object]) -> str:
    lines = []
    for section in ("operator", "contact", "regulator"):
        lines.append(f"[{section}]")
        for k, v in data[section].items():  # type: ignore[attr-defined]
            lines.append(f'{k} = "{v}"')
    for s in data["systems"]:  # type: ignore[attr-defined]
        lines.append("[[systems]]")
        lines.append(f'name = "{s["name"]}"')
        lines.append("addresses = [" + ", ".join(f'"{a}"' for a in s["addresses"]) + "]")
    return "\n".join(lines) + "\n"


OPERATOR_YAML = yaml.safe_dump(FULL)


def test_operator_profile_in_toml_and_bad_systems(tmp_path: Path) -> None:
    toml = tmp_path / "op.toml"
    toml.write_text(
        '[operator]\nname = "Wasser AG"\nsector = "drinking water"\nidentifier = "W-1"\n'
        '[contact]\nname = "Ann"\nemail = "a@w.example"\nphone = "+1 555"\n'
        '[regulator]\nname = "Authority"\n'
        '[[systems]]\nname = "Pumps"\naddresses = ["10.1.0.0/16", "2001:db8::/32"]\n'
    )
    op = load_operator(toml)
    assert op.operator["name"] == "Wasser AG"
    assert op.system_of("10.1.2.3").name == "Pumps"  # type: ignore[union-attr]
    assert op.system_of("2001:db8::1").name == "Pumps"  # type: ignore[union-attr]
    assert op.system_of("10.2.0.1") is None
    bad = tmp_path / "bad.yaml"
    bad.write_text(OPERATOR_YAML.replace("10.0.0.0/24", "not-an-address"))
    with pytest.raises(ReportError, match=r"bad\.yaml: systems\[0\]: 'not-an-address'"):
        load_operator(bad)
    with pytest.raises(ReportError, match="no such operator profile"):
        load_operator(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[operator\n")
    with pytest.raises(ReportError, match=r"broken\.toml: not valid TOML"):
        load_operator(broken)
