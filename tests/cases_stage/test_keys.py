"""The operator's signing key: private file 0600, passphrase from the environment, refusals named."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.cases import keys


def test_generate_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    made = keys.generate(tmp_path / "k" / "op.pem")
    assert stat.S_IMODE(made.private_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(made.private_path.parent.stat().st_mode) & 0o077 == 0
    public = keys.load_public(made.public_path)
    assert keys.fingerprint(public) == made.fingerprint
    assert keys.fingerprint(keys.load_private(made.private_path).public_key()) == made.fingerprint
    assert not made.encrypted


def test_default_location_is_the_data_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv(keys.KEY_ENV, raising=False)
    assert keys.default_key_path() == tmp_path / "mamori" / "keys" / "signing-key.pem"
    monkeypatch.setenv(keys.KEY_ENV, str(tmp_path / "elsewhere.pem"))
    assert keys.generate().private_path == tmp_path / "elsewhere.pem"


def test_an_existing_key_is_never_overwritten_silently(tmp_path: Path) -> None:
    first = keys.generate(tmp_path / "op.pem")
    with pytest.raises(keys.KeyStoreError, match="already exists"):
        keys.generate(tmp_path / "op.pem")
    second = keys.generate(tmp_path / "op.pem", force=True)
    assert second.fingerprint != first.fingerprint


def test_passphrase_protects_the_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "correct horse")
    made = keys.generate(tmp_path / "op.pem")
    assert made.encrypted
    assert b"ENCRYPTED" in made.private_path.read_bytes()
    assert keys.info(made.private_path).fingerprint == made.fingerprint
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "wrong")
    with pytest.raises(keys.KeyStoreError, match="wrong passphrase"):
        keys.load_private(made.private_path)
    monkeypatch.delenv(keys.PASSPHRASE_ENV)
    with pytest.raises(keys.KeyStoreError, match=f"encrypted; set {keys.PASSPHRASE_ENV}"):
        keys.load_private(made.private_path)


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    made = keys.generate(tmp_path / "op.pem")
    made.private_path.chmod(0o644)
    with pytest.raises(keys.KeyStoreError, match="permissions 0644 are too open"):
        keys.load_private(made.private_path)


def test_missing_key_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(keys.KeyStoreError, match="mamori keys generate"):
        keys.load_private(tmp_path / "none.pem")


@given(data=st.binary(max_size=200), flip=st.integers(0, 199))
def test_a_signature_holds_for_its_data_only(data: bytes, flip: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    sig = keys.sign(key, data)
    assert keys.check(key.public_key(), data, sig)
    if data:
        i = flip % len(data)
        changed = data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]
        assert not keys.check(key.public_key(), changed, sig)
    assert not keys.check(Ed25519PrivateKey.generate().public_key(), data, sig)
    assert not keys.check(key.public_key(), data, "not base64!")


@given(offset=st.integers(0, 200), bit=st.integers(0, 7))
def test_a_damaged_public_key_file_is_refused_or_reads_as_another_key(
    tmp_path_factory: pytest.TempPathFactory, offset: int, bit: int
) -> None:
    """Never an unexpected exception: a verifier must name the bad file, not crash."""
    folder = tmp_path_factory.mktemp("pub")
    made = keys.generate(folder / "op.pem")
    data = bytearray(made.public_path.read_bytes())
    data[offset % len(data)] ^= 1 << bit
    made.public_path.write_bytes(bytes(data))
    try:
        key = keys.load_public(made.public_path)
    except keys.KeyStoreError as exc:
        assert str(made.public_path) in str(exc)
    else:
        assert isinstance(keys.fingerprint(key), str)
