"""What each input is: a packet capture or a log one of the log sensors reads.

Users point mamori at folders of whatever their sensors left (captures, EVTX exports, rotated
syslog, Zeek and Suricata output): the format is recognised from the first bytes, never from the
file name alone. A file given by name that no sensor recognises is an error; a file found inside a
folder is skipped (folders hold READMEs and indexes too), and the skips are counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mamori.sensors.registry import read_head, sensor_for

CAPTURE = "capture"
# A file named like a capture that no sensor recognises goes to the pcap reader anyway: it says
# exactly what is wrong with it (empty, truncated header, unknown link type).
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp", ".trace", ".pcap.gz", ".pcapng.gz")
_CAPTURE_MAGICS = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",  # pcapng section header block
)


@dataclass(frozen=True)
class Input:
    path: Path
    kind: str  # "capture" or a log sensor's name


@dataclass
class Found:
    inputs: list[Input] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # named files nobody can read
    skipped: list[Path] = field(default_factory=list)  # files in folders nobody can read

    @property
    def captures(self) -> list[Path]:
        return [i.path for i in self.inputs if i.kind == CAPTURE]

    @property
    def logs(self) -> list[Input]:
        return [i for i in self.inputs if i.kind != CAPTURE]


def kind_of(path: Path) -> str | None:
    """``capture``, a log sensor's name, or None when nothing recognises the file."""
    try:
        head = read_head(path)
    except OSError:
        return None
    if head[:4] in _CAPTURE_MAGICS:
        return CAPTURE
    sensor = sensor_for(path, head)
    if sensor is not None:
        return sensor.name
    return CAPTURE if path.name.lower().endswith(CAPTURE_SUFFIXES) else None


def discover(paths: Iterable[Path]) -> Found:
    """Files as given, folders expanded (sorted, recursive), each classified by content."""
    found = Found()
    for p in paths:
        if p.is_dir():
            for f in sorted(f for f in p.rglob("*") if f.is_file()):
                kind = kind_of(f)
                if kind is None:
                    found.skipped.append(f)
                else:
                    found.inputs.append(Input(f, kind))
        elif p.is_file():
            kind = kind_of(p)
            if kind is None:
                found.errors.append(f"{p}: not a capture or a log format mamori reads")
            else:
                found.inputs.append(Input(p, kind))
        else:
            found.errors.append(f"{p}: no such file or folder")
    return found
