"""Where the console keeps patrol runs, which captures it may read, and the files it acts with.

Each comes from a ``MAMORI_*`` variable with a default under the XDG data home, like every other
stage's files; tests pass a ``ConsoleSettings`` directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _data_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mamori"


@dataclass(frozen=True)
class ConsoleSettings:
    runs_dir: Path
    # Folders whose captures a patrol started from the console may read (a console user must not
    # make the server parse any file it can open).
    captures: tuple[Path, ...]
    # The guard's policy file; with it, each finished run's incidents are planned into decisions.
    policy: Path | None = None
    # The operator's signing key for evidence packages (default: the cases stage's own default).
    key: Path | None = None

    @classmethod
    def from_env(cls) -> ConsoleSettings:
        env = os.environ
        runs = Path(env["MAMORI_RUNS_DIR"]) if env.get("MAMORI_RUNS_DIR") else _data_home() / "runs"
        caps = env.get("MAMORI_CAPTURES")
        captures = (
            tuple(Path(p) for p in caps.split(os.pathsep) if p)
            if caps
            else (_data_home() / "captures",)
        )
        policy = Path(env["MAMORI_POLICY"]) if env.get("MAMORI_POLICY") else None
        key = Path(env["MAMORI_SIGNING_KEY"]) if env.get("MAMORI_SIGNING_KEY") else None
        return cls(runs, captures, policy, key)
