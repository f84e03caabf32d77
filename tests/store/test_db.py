from pathlib import Path

import sqlalchemy as sa

from mamori.store import Store, default_url


def test_default_is_sqlite_under_the_data_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("MAMORI_STATE_URL", raising=False)
    assert default_url() == f"sqlite:///{tmp_path / 'mamori' / 'state.db'}"
    store = Store()
    with store.begin() as conn:
        assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
    assert (tmp_path / "mamori" / "state.db").exists()


def test_url_from_environment_wins(monkeypatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MAMORI_STATE_URL", url)
    assert Store().url == url
